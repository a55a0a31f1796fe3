#!/usr/bin/env bash
# Prepared for the next GPU session (not yet run): shared experts in ep-separate and ep-persistent (ep.cu, "Shared
# experts"). The code is compiled in CI for sm_90a/sm_89/sm_80 but has never run on a GPU, so the repository's
# table still refuses shared experts on the ep rows. This script enables them in the device's copy of the table
# only, then: memcheck, the oracle check on every shared preset at G = 1 (and G = 2 where the host has 2 GPUs),
# both compute modes of ep-persistent, and a timing beside separate and persistent-flat. When every check passes,
# set "shared_experts": true on both ep rows of csrc/variants.json (and the tests that expect the refusal:
# test/variants.test.ts, test/sweep.test.ts), and record the figures in csrc/BENCHMARKS.md.
# Run from the repository root on the GPU host: bash scripts/gpu-runs/next-ep-shared.sh  (writes $OUT/ep-shared.tgz)
set -u
START=$(date +%s)
O=/tmp/ep-shared; mkdir -p $O/t
B=csrc/build/cuda-sm_90a; BIN=$B/moe-bench
log() { echo "== $(date +%T) [+$(( $(date +%s) - START ))s] $*"; }
NG=$(nvidia-smi -L | wc -l)
nvidia-smi --query-gpu=index,name,uuid,driver_version,clocks.sm,clocks.max.sm,power.limit --format=csv | tee $O/smi.txt
python3 - <<'PY'
import json
p = "csrc/variants.json"
d = json.load(open(p))
for v in d["variants"]:
    if v["family"] == "ep":
        v["shared_experts"] = True
json.dump(d, open(p, "w"), indent=2)
print("this copy's table: shared experts enabled on", [v["name"] for v in d["variants"] if v["family"] == "ep"])
PY
log build; make -s -C csrc -j16 cuda ARCH=sm_90a > $O/build.log 2>&1 || { tail -20 $O/build.log; exit 1; }
MC="compute-sanitizer --tool memcheck"
log memcheck
for a in "--model tiny-shared --tokens 3" "--model tiny-shared --tokens 17 --tune ep-persistent:compute=0" "--model tiny-shared --tokens 17 --tune ep-persistent:compute=1"; do
  timeout 150 $MC $BIN --backend cuda $a --variant ep-separate,ep-persistent --iters 2 --warmup 1 --rotate 2 --energy-ms 0 > $O/mc.out 2>&1
  echo "$a: $(grep -E 'ERROR SUMMARY' $O/mc.out | tr '\n' ' ') pass=$(grep -o '"pass": *[a-z]*' $O/mc.out | head -1)"; done
log check G=1
for c in 0 1; do
  VARIANTS=ep-separate,ep-persistent EXTRA="--tune ep-persistent:compute=$c" TUNABLES=0 \
    MODELS="tiny-shared deepseek-v2-lite-shared qwen3-next-80b-a3b-shared tiny qwen3-30b-a3b" TOKENS="1 4 16" \
    DTYPES="bf16 fp16" csrc/check_gpu.sh sm_90a 2>&1 | grep -v "^ok " | tail -6
done
if [ "$NG" -ge 2 ]; then
  log check G=2
  for c in 0 1; do
    VARIANTS=ep-separate,ep-persistent EXTRA="--gpus 2 --tune ep-persistent:compute=$c" TUNABLES=0 \
      MODELS="tiny-shared deepseek-v2-lite-shared qwen3-next-80b-a3b-shared" TOKENS="1 4" DTYPES="bf16" \
      csrc/check_gpu.sh sm_90a 2>&1 | grep -v "^ok " | tail -6
  done
fi
TB="--iters 200 --warmup 20 --rounds 3 --rotate 64 --energy-ms 0"
log timing G=1
for T in 1 4; do for c in 0 1; do
  timeout 150 $BIN --backend cuda --model deepseek-v2-lite-shared --tokens $T --variant separate,persistent-flat,ep-separate,ep-persistent \
    --tune ep-persistent:compute=$c $TB > $O/t/g1-T$T-c$c.json 2>$O/t/g1-T$T-c$c.err || echo "rc=$? G1 T$T c$c"; done; done
if [ "$NG" -ge 2 ]; then
  log timing G=2
  for T in 1 4; do
    timeout 150 $BIN --backend cuda --gpus 2 --model deepseek-v2-lite-shared --tokens $T --variant ep-separate,ep-persistent $TB \
      > $O/t/g2-T$T.json 2>$O/t/g2-T$T.err || echo "rc=$? G2 T$T"; done
fi
log trace
timeout 100 $BIN --backend cuda --model deepseek-v2-lite-shared --tokens 1 --variant ep-persistent --iters 20 --warmup 5 --rotate 64 \
  --energy-ms 0 --trace $O/t/epp-T1.trace.json > $O/t/epp-T1-trace.json 2>&1
python3 csrc/trace_summary.py $O/t/epp-T1.trace.json > $O/t/epp-T1.trace.txt 2>&1; head -24 $O/t/epp-T1.trace.txt
python3 scripts/gpu-runs/summary.py $O/t/g*-T*.json
tar -C /tmp -czf $OUT/ep-shared.tgz ep-shared
log end
