#!/usr/bin/env bash
# GPU run 15 (2-GPU host): ep-persistent's bucket compute split into balanced ranges (gate/up: (bucket, unit) pairs;
# down: (bucket, 64-column tile) pairs, a block's neighbours joined), and tunable own_first (the own tokens' slots
# streamed before the wait for the peers'). Shared experts on the ep rows enabled in the device's copy of the table
# (run 14 checked them). Phase A in parallel (GPU 0: oracle checks at G=1, then G=1 timing; GPU 1: memcheck and the
# tunable sweep); phase B both GPUs: G=2 checks and timing. Output $OUT/r15.tgz.
set -u
START=$(date +%s); LIMIT=${LIMIT:-570}
left() { echo $(( LIMIT - ($(date +%s) - START) )); }
O=/tmp/r15; mkdir -p $O/t $O/c $O/ep
B=csrc/build/cuda-sm_90a; BIN=$B/moe-bench
log() { echo "== $(date +%T) [+$(( $(date +%s) - START ))s] $*"; }
nvidia-smi --query-gpu=index,name,uuid,driver_version,clocks.sm,clocks.max.sm,power.limit,temperature.gpu --format=csv > $O/smi.txt
python3 - <<'PY'
import json
p = "csrc/variants.json"
d = json.load(open(p))
for v in d["variants"]:
    if v["family"] == "ep":
        v["shared_experts"] = True
json.dump(d, open(p, "w"), indent=2)
PY
log build; make -s -C csrc -j16 cuda ARCH=sm_90a > $O/build.log 2>&1 || { tail -20 $O/build.log; exit 1; }
log built
TB="--iters 200 --warmup 20 --rounds 3 --rotate 64 --energy-ms 0"
DSV3="--hidden 7168 --inter 2048 --experts 256 --topk 8"
SH="tiny-shared deepseek-v2-lite-shared qwen3-next-80b-a3b-shared"
(
  export CUDA_VISIBLE_DEVICES=0
  echo "# check G=1 compute=0 (balanced buckets)"
  VARIANTS=ep-persistent EXTRA="--tune ep-persistent:compute=0" TUNABLES=0 MODELS="tiny tiny-shared qwen3-30b-a3b deepseek-v2-lite-shared gpt-oss-20b" \
    TOKENS="1 4 16 64" DTYPES="bf16 fp16" csrc/check_gpu.sh sm_90a 2>&1 | grep -v "^ok " | tail -6
  echo "# check G=1 own_first=1"
  VARIANTS=ep-persistent EXTRA="--tune ep-persistent:own_first=1" TUNABLES=0 MODELS="tiny $SH qwen3-30b-a3b" \
    TOKENS="1 4 16" BIG_TOKENS="1 4" DTYPES="bf16" csrc/check_gpu.sh sm_90a 2>&1 | grep -v "^ok " | tail -6
  for T in 1 8; do
    timeout 150 $BIN --backend cuda $DSV3 --tokens $T --variant separate,ep-separate,ep-persistent $TB > $O/t/dsv3-g1-T$T.json 2>$O/t/dsv3-g1-T$T.err || echo "rc=$? dsv3 G1 T$T"; done
  timeout 100 $BIN --backend cuda --model qwen3-30b-a3b --tokens 64 --variant separate,ep-separate,ep-persistent --tune ep-persistent:compute=0 $TB > $O/t/q-g1-T64-c0.json 2>$O/t/q-g1-T64-c0.err || echo "rc=$? q T64"
  timeout 100 $BIN --backend cuda --model qwen3-30b-a3b --tokens 64 --variant ep-persistent $TB > $O/t/q-g1-T64-c1.json 2>$O/t/q-g1-T64-c1.err || echo "rc=$? q T64 c1"
  timeout 60 $BIN --backend cuda $DSV3 --tokens 1 --variant ep-persistent --iters 20 --warmup 5 --rotate 64 --energy-ms 0 --trace $O/t/dsv3-g1-T1.trace.json > /dev/null 2>&1
) > $O/t/log.txt 2>&1 &
A0=$!
(
  export CUDA_VISIBLE_DEVICES=1
  MC="compute-sanitizer --tool memcheck"
  for a in "--model tiny --tokens 17 --tune ep-persistent:compute=0" "--hidden 7168 --inter 256 --experts 16 --topk 4 --tokens 3 --tune ep-persistent:compute=0" \
           "--model tiny-shared --tokens 17 --tune ep-persistent:compute=0,down_tile=128" "--model tiny-shared --tokens 17 --tune ep-persistent:own_first=1" "--model tiny --tokens 5 --tune ep-persistent:own_first=1"; do
    timeout 100 $MC $BIN --backend cuda $a --variant ep-persistent --iters 2 --warmup 1 --rotate 2 --energy-ms 0 > $O/c/mc.out 2>&1
    echo "memcheck $a: rc=$? $(grep -E 'ERROR SUMMARY' $O/c/mc.out | tr '\n' ' ') pass=$(grep -o '"pass": *[a-z]*' $O/c/mc.out | head -1)"; grep -m3 "Invalid\|error" $O/c/mc.out; done
  echo "# ep-persistent every tunable, tiny and tiny-shared"
  VARIANTS=ep-persistent MODELS="tiny tiny-shared" TOKENS="1 4" DTYPES=bf16 TUNE_SHAPES="--model tiny-shared --tokens 4;--model qwen3-30b-a3b --tokens 2;$DSV3 --tokens 2" csrc/check_gpu.sh sm_90a 2>&1 | grep -v "^ok " | tail -8
) > $O/c/log.txt 2>&1 &
A1=$!
wait $A0; log "phase A GPU0 done"; cat $O/t/log.txt
wait $A1; log "phase A GPU1 done"; cat $O/c/log.txt
for e in "compute=0" "own_first=1"; do
  [ $(left) -lt 250 ] && { echo "skip G2 check $e: time"; continue; }
  log "check G=2 $e"
  VARIANTS=ep-persistent EXTRA="--gpus 2 --tune ep-persistent:$e" TUNABLES=0 \
    MODELS="tiny tiny-shared deepseek-v2-lite-shared qwen3-30b-a3b" TOKENS="1 4" DTYPES="bf16" csrc/check_gpu.sh sm_90a > $O/ep/check-$e.txt 2>&1
  grep -v "^ok " $O/ep/check-$e.txt | tail -6
done
for T in 1 8; do for of in 0 1; do
  [ $(left) -lt 60 ] && { echo "skip G2 T$T of$of: time"; continue; }
  timeout 60 $BIN --backend cuda --model qwen3-30b-a3b --tokens $T --gpus 2 --variant ep-separate,ep-persistent \
    --tune ep-persistent:own_first=$of $TB --trace $O/ep/G2-T$T-of$of.trace.json > $O/ep/G2-T$T-of$of.json 2>$O/ep/G2-T$T-of$of.err || echo "rc=$? G2 T$T of$of"
done; done
for T in 1 8; do
  [ $(left) -lt 90 ] && { echo "skip G2 dsv3 T$T: time"; continue; }
  timeout 90 $BIN --backend cuda --gpus 2 $DSV3 --tokens $T --variant ep-separate,ep-persistent $TB > $O/ep/dsv3-G2-T$T.json 2>$O/ep/dsv3-G2-T$T.err || echo "rc=$? G2 dsv3 T$T"; done
for T in 1 4; do for of in 0 1; do
  [ $(left) -lt 40 ] && { echo "skip G2 shared T$T: time"; continue; }
  timeout 40 $BIN --backend cuda --gpus 2 --model deepseek-v2-lite-shared --tokens $T --variant ep-separate,ep-persistent --tune ep-persistent:own_first=$of $TB \
    > $O/ep/g2-shared-T$T-of$of.json 2>$O/ep/g2-shared-T$T-of$of.err || echo "rc=$? G2 shared T$T of$of"; done; done
for c in 0 1; do
  [ $(left) -gt 40 ] && timeout 40 $BIN --backend cuda --model qwen3-30b-a3b --tokens 64 --gpus 2 --variant ep-separate,ep-persistent --tune ep-persistent:compute=$c $TB > $O/ep/G2-T64-c$c.json 2>$O/ep/G2-T64-c$c.err
done
log "phase B done"
python3 scripts/gpu-runs/summary.py $O/t/*.json $O/ep/*[0-9].json
for f in $O/t/dsv3-g1-T1.trace.json $O/ep/G2-T1-of0.trace.json $O/ep/G2-T1-of1.trace.json; do
  [ -f $f ] && { echo "## $f"; python3 csrc/trace_summary.py $f 2>&1 | head -44; }; done > $O/traces.txt
tar -C /tmp -czf $OUT/r15.tgz r15
log end
