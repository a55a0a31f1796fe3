#!/usr/bin/env bash
# GPU run 18 (2-GPU host): ep-persistent tunable balance (the buckets' gate/up pairs split even in cost, a unit of
# a bucket of n > 1 tokens costing 2 per group of 4): checks, then DeepSeek-V3's shape at T = 8 with 0 and 1 (one
# GPU; 1 also on two), Qwen3 T = 64 (buckets) with 0 and 1, DeepSeek-V3 T = 1 with 0 against run 16's figure of the
# kernel before (the range code made ptxas spill 112 bytes: is it cold?). Output $OUT/r18.tgz.
set -u
START=$(date +%s); LIMIT=${LIMIT:-270}
left() { echo $(( LIMIT - ($(date +%s) - START) )); }
O=/tmp/r18; mkdir -p $O/t $O/c $O/ep
B=csrc/build/cuda-sm_90a; BIN=$B/moe-bench
log() { echo "== $(date +%T) [+$(( $(date +%s) - START ))s] $*"; }
nvidia-smi --query-gpu=index,name,uuid,driver_version,clocks.sm,clocks.max.sm,power.limit,temperature.gpu --format=csv > $O/smi.txt
log build; make -s -C csrc -j16 cuda ARCH=sm_90a > $O/build.log 2>&1 || { tail -20 $O/build.log; exit 1; }
log built
TB="--iters 200 --warmup 20 --rounds 3 --rotate 64 --energy-ms 0"
DSV3="--hidden 7168 --inter 2048 --experts 256 --topk 8"
(
  export CUDA_VISIBLE_DEVICES=0
  echo "# check G=1 compute=0 balance=1"
  VARIANTS=ep-persistent EXTRA="--tune ep-persistent:compute=0,balance=1" TUNABLES=0 MODELS="tiny tiny-shared qwen3-30b-a3b deepseek-v2-lite-shared" \
    TOKENS="1 4 16 64" DTYPES="bf16" csrc/check_gpu.sh sm_90a 2>&1 | grep -v "^ok " | tail -6
  for b in 1 0; do
    timeout 100 $BIN --backend cuda $DSV3 --tokens 8 --variant ep-separate,ep-persistent --tune ep-persistent:balance=$b $TB --trace $O/t/dsv3-T8-b$b.trace.json > $O/t/dsv3-T8-b$b.json 2>$O/t/dsv3-T8-b$b.err || echo "rc=$? dsv3 T8 b$b"
  done
) > $O/t/log.txt 2>&1 &
A0=$!
(
  export CUDA_VISIBLE_DEVICES=1
  MC="compute-sanitizer --tool memcheck"
  i=0
  for a in "--model tiny --tokens 17" "--model tiny --tokens 17" "--model tiny-shared --tokens 33" "--hidden 7168 --inter 256 --experts 16 --topk 4 --tokens 9"; do
    i=$((i+1)); timeout 60 $MC $BIN --backend cuda $a --variant ep-persistent --tune ep-persistent:compute=0,balance=1 --iters 2 --warmup 1 --rotate 2 --energy-ms 0 > $O/c/mc$i.out 2>&1
    echo "memcheck $i $a: rc=$? $(grep -E 'ERROR SUMMARY' $O/c/mc$i.out | tr '\n' ' ') pass=$(grep -o '"pass": *[a-z]*' $O/c/mc$i.out | head -1)"; done
  for b in 0 1; do
    timeout 60 $BIN --backend cuda --model qwen3-30b-a3b --tokens 64 --variant ep-separate,ep-persistent --tune ep-persistent:balance=$b $TB > $O/c/q-T64-b$b.json 2>$O/c/q-T64-b$b.err || echo "rc=$? q T64 b$b"
  done
  timeout 100 $BIN --backend cuda $DSV3 --tokens 1 --variant separate,ep-separate,ep-persistent $TB > $O/c/dsv3-T1-b0.json 2>$O/c/dsv3-T1-b0.err || echo "rc=$? dsv3 T1"
) > $O/c/log.txt 2>&1 &
A1=$!
wait $A0; log "phase A GPU0 done"; cat $O/t/log.txt
wait $A1; log "phase A GPU1 done"; cat $O/c/log.txt
[ $(left) -gt 80 ] && { timeout 80 $BIN --backend cuda --gpus 2 $DSV3 --tokens 8 --variant ep-separate,ep-persistent --tune ep-persistent:balance=1 $TB > $O/ep/dsv3-G2-T8-b1.json 2>$O/ep/dsv3-G2-T8-b1.err || echo "rc=$? G2 dsv3 T8"; }
log "phase B done"
python3 scripts/gpu-runs/summary.py $O/t/*.json $O/c/*.json $O/ep/*.json
for f in $O/t/dsv3-T8-b0.trace.json $O/t/dsv3-T8-b1.trace.json; do
  [ -f $f ] && { echo "## $f"; python3 csrc/trace_summary.py $f 2>&1 | grep -E "span|ep:ffn1|ep:down |ep:topk|wait:ep-ffn1|wait:ep-down"; }; done > $O/traces.txt
cat $O/traces.txt
tar -C /tmp -czf $OUT/r18.tgz r18
log end
