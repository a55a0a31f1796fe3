#!/usr/bin/env bash
# GPU session 2026-11-28, run 2 (one H100): T = 1 bf16 by hand (t1path 1 and 3 alternating, beside separate),
# then through the farm: the t1path tune, separate vs persistent-flat t1path=3, the fp8 scales sweep.
set -u
START=$(date +%s)
O=/tmp/r2; mkdir -p $O
B=csrc/build/cuda-sm_90a; BIN=$B/moe-bench
log() { echo "== $(date +%T) [+$(( $(date +%s) - START ))s] $*"; }
nvidia-smi --query-gpu=index,name,uuid,driver_version,clocks.sm,clocks.max.sm,power.limit,temperature.gpu --format=csv | tee $O/smi.txt
log build; make -s -C csrc -j16 cuda ARCH=sm_90a > $O/build.log 2>&1 || { tail -20 $O/build.log; exit 1; }
TB="--iters 200 --warmup 20 --rounds 3 --rotate 64 --energy-ms 0"
for rep in 1 2; do for P in 1 3; do
  timeout 120 $BIN --backend cuda --model qwen3-30b-a3b --tokens 1 --variant separate,persistent-flat --tune persistent-flat:t1path=$P $TB > $O/t1-P$P-r$rep.json 2>$O/t1-P$P-r$rep.err || echo "rc=$? t1 P$P r$rep"
done; done
for P in 1 3; do timeout 120 $BIN --backend cuda --model qwen3-30b-a3b --tokens 1 --variant persistent-flat --tune persistent-flat:t1path=$P --iters 50 --warmup 10 --rotate 64 --energy-ms 0 --trace $O/t1-P$P.trace.json > $O/t1-P$P-trace.json 2>&1; python3 csrc/trace_summary.py $O/t1-P$P.trace.json > $O/t1-P$P.trace.txt 2>&1; done
python3 - $O <<'PY'
import json, glob, sys
for f in sorted(glob.glob(sys.argv[1] + "/t1-P?-r?.json")):
    d = json.load(open(f))
    for r in d["results"]:
        st = r.get("stats") or {}
        print(f.split("/")[-1], r["variant"], "pass=%s" % r["check"]["pass"], "median=%.2f p90=%.2f" % (st["median"], st["p90"]), "mhz=%s" % (sorted(x for x in (r.get("sm_clock_mhz") or []) if x == x)[len(r.get("sm_clock_mhz") or [])//2:][:1]))
PY
log "farm"
OUT=$O/farm WAIT_S=400 SKIP_DEMO=1 bash scripts/gpu-host-e2e.sh sweeps/tune-flat-t1-h100.yaml sweeps/flat-t1-h100.yaml sweeps/fp8-scales-h100.yaml 2>&1 | tail -120
rm -f $O/farm/*.db-* ; tar -C /tmp -czf $OUT/r2.tgz r2
log end
