#!/usr/bin/env bash
# GPU session 2026-11-28, run 3 (2-GPU host): G = 1 by hand (ep-persistent compute 0/1 beside persistent-flat),
# then through the farm: the ep-persistent tune (compute x fence on 2 GPUs), ep-separate vs ep-persistent.
set -u
START=$(date +%s)
O=/tmp/r3; mkdir -p $O
B=csrc/build/cuda-sm_90a; BIN=$B/moe-bench
log() { echo "== $(date +%T) [+$(( $(date +%s) - START ))s] $*"; }
nvidia-smi --query-gpu=index,name,uuid,driver_version,clocks.sm,clocks.max.sm,power.limit --format=csv | tee $O/smi.txt; nvidia-smi topo -m | tee -a $O/smi.txt
log build; make -s -C csrc -j16 cuda ARCH=sm_90a > $O/build.log 2>&1 || { tail -20 $O/build.log; exit 1; }
for c in 0 1; do
  timeout 120 $BIN --backend cuda --model qwen3-30b-a3b --tokens 1 --gpus 1 --variant ep-separate,ep-persistent,persistent-flat --tune ep-persistent:compute=$c --iters 200 --warmup 20 --rounds 3 --rotate 64 --energy-ms 0 --trace $O/G1-T1-c$c.trace.json > $O/G1-T1-c$c.json 2>$O/G1-T1-c$c.err || echo "rc=$? c$c"
  python3 csrc/trace_summary.py $O/G1-T1-c$c.trace.json > $O/G1-T1-c$c.trace.txt 2>&1
done
python3 - $O <<'PY'
import json, glob, sys
for f in sorted(glob.glob(sys.argv[1] + "/G1-*.json")):
    if "trace" in f: continue
    d = json.load(open(f))
    for r in d["results"]:
        st = r.get("stats") or {}
        print(f.split("/")[-1], r["variant"], "pass=%s" % r["check"]["pass"], "median=%.2f p90=%.2f" % (st["median"], st["p90"]))
PY
log farm
OUT=$O/farm WAIT_S=430 GPUS=all POOL=h100x2 SKIP_DEMO=1 bash scripts/gpu-host-e2e.sh sweeps/ep-qwen3-h100x2.yaml sweeps/tune-ep-h100x2.yaml 2>&1 | grep -v "INFO: worker" | tail -80
rm -f $O/farm/*.db-*; tar -C /tmp -czf $OUT/r3.tgz r3
log end
