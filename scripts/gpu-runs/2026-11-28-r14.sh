#!/usr/bin/env bash
# GPU run 14 (2-GPU host): shared experts in ep-separate / ep-persistent (first run of that code), and
# ep-persistent's `prefetch` tunable. The repository's table still refuses shared experts on the ep rows, so this
# enables them in the device's copy only. Phase A in parallel (GPU 0: oracle checks at G=1, then G=1 timing;
# GPU 1: memcheck, then check_gpu's tunable sweep of ep-persistent, prefetch included); phase B both GPUs: G=2
# checks with shared experts, G=2 timing (shared, and qwen3 T=1/8 with prefetch 0/1, traced). Output $OUT/r14.tgz.
set -u
START=$(date +%s); LIMIT=${LIMIT:-560}
left() { echo $(( LIMIT - ($(date +%s) - START) )); }
O=/tmp/r14; mkdir -p $O/t $O/c $O/ep
B=csrc/build/cuda-sm_90a; BIN=$B/moe-bench
log() { echo "== $(date +%T) [+$(( $(date +%s) - START ))s] $*"; }
nvidia-smi --query-gpu=index,name,uuid,driver_version,clocks.sm,clocks.max.sm,power.limit,temperature.gpu --format=csv > $O/smi.txt; nvidia-smi topo -m >> $O/smi.txt
cat $O/smi.txt
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
log built
TB="--iters 200 --warmup 20 --rounds 3 --rotate 64 --energy-ms 0"
SH="tiny-shared deepseek-v2-lite-shared qwen3-next-80b-a3b-shared"
(
  export CUDA_VISIBLE_DEVICES=0
  for c in 0 1; do
    echo "# check G=1 compute=$c"
    VARIANTS=ep-separate,ep-persistent EXTRA="--tune ep-persistent:compute=$c" TUNABLES=0 \
      MODELS="$SH tiny qwen3-30b-a3b" TOKENS="1 4 16" BIG_TOKENS="1 4" DTYPES="bf16" csrc/check_gpu.sh sm_90a 2>&1 | grep -v "^ok " | tail -8
  done
  echo "# check G=1 fp16 tiny-shared"
  VARIANTS=ep-separate,ep-persistent TUNABLES=0 MODELS="tiny-shared" TOKENS="1 5" DTYPES="fp16" csrc/check_gpu.sh sm_90a 2>&1 | grep -v "^ok " | tail -4
  for T in 1 4; do for c in 0 1; do
    timeout 100 $BIN --backend cuda --model deepseek-v2-lite-shared --tokens $T --variant separate,persistent-flat,ep-separate,ep-persistent \
      --tune ep-persistent:compute=$c $TB > $O/t/g1-T$T-c$c.json 2>$O/t/g1-T$T-c$c.err || echo "rc=$? G1 T$T c$c"; done; done
  timeout 60 $BIN --backend cuda --model deepseek-v2-lite-shared --tokens 1 --variant ep-persistent --iters 20 --warmup 5 --rotate 64 \
    --energy-ms 0 --trace $O/t/epp-T1.trace.json > $O/t/epp-T1-trace.json 2>&1
) > $O/t/log.txt 2>&1 &
A0=$!
(
  export CUDA_VISIBLE_DEVICES=1
  MC="compute-sanitizer --tool memcheck"
  for a in "--model tiny-shared --tokens 3" "--model tiny-shared --tokens 17 --tune ep-persistent:compute=0" "--model tiny-shared --tokens 17 --tune ep-persistent:compute=1" "--model tiny --tokens 5 --tune ep-persistent:compute=1,prefetch=1"; do
    timeout 100 $MC $BIN --backend cuda $a --variant ep-separate,ep-persistent --iters 2 --warmup 1 --rotate 2 --energy-ms 0 > $O/c/mc.out 2>&1
    echo "memcheck $a: $(grep -E 'ERROR SUMMARY' $O/c/mc.out | tr '\n' ' ') pass=$(grep -o '"pass": *[a-z]*' $O/c/mc.out | head -1)"; done
  echo "# ep-persistent every tunable (prefetch too), tiny and tiny-shared"
  VARIANTS=ep-persistent MODELS="tiny tiny-shared" TOKENS="1 4" DTYPES=bf16 TUNE_SHAPES="--model tiny-shared --tokens 4;--model qwen3-30b-a3b --tokens 2" csrc/check_gpu.sh sm_90a 2>&1 | grep -v "^ok " | tail -8
) > $O/c/log.txt 2>&1 &
A1=$!
wait $A0; log "phase A GPU0 done"; cat $O/t/log.txt
wait $A1; log "phase A GPU1 done"; cat $O/c/log.txt
for c in 0 1; do
  [ $(left) -lt 200 ] && { echo "skip G2 check c$c: time"; continue; }
  log "check G=2 compute=$c"
  VARIANTS=ep-separate,ep-persistent EXTRA="--gpus 2 --tune ep-persistent:compute=$c" TUNABLES=0 \
    MODELS="$SH" TOKENS="1 4" BIG_TOKENS="1" DTYPES="bf16" csrc/check_gpu.sh sm_90a 2>&1 | grep -v "^ok " | tail -8
done
for T in 1 4; do
  [ $(left) -lt 60 ] && { echo "skip G2 shared T$T: time"; continue; }
  timeout 60 $BIN --backend cuda --gpus 2 --model deepseek-v2-lite-shared --tokens $T --variant ep-separate,ep-persistent $TB \
    > $O/ep/g2-shared-T$T.json 2>$O/ep/g2-shared-T$T.err || echo "rc=$? G2 shared T$T"; done
for T in 1 8; do for pf in 0 1; do
  [ $(left) -lt 40 ] && { echo "skip G2 T$T pf$pf: time"; continue; }
  timeout 60 $BIN --backend cuda --model qwen3-30b-a3b --tokens $T --gpus 2 --variant ep-separate,ep-persistent \
    --tune ep-persistent:prefetch=$pf $TB --trace $O/ep/G2-T$T-pf$pf.trace.json > $O/ep/G2-T$T-pf$pf.json 2>$O/ep/G2-T$T-pf$pf.err || echo "rc=$? G2 T$T pf$pf"
done; done
log "phase B done"
python3 scripts/gpu-runs/summary.py $O/t/g1-*.json $O/ep/*[0-9].json
for f in $O/t/epp-T1.trace.json $O/ep/G2-T1-pf0.trace.json $O/ep/G2-T1-pf1.trace.json; do
  [ -f $f ] && { echo "## $f"; python3 csrc/trace_summary.py $f 2>&1 | head -40; }; done > $O/traces.txt
head -90 $O/traces.txt
tar -C /tmp -czf $OUT/r14.tgz r14
log end
