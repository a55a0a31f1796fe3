#!/usr/bin/env bash
# GPU run 20 (4-GPU host): correctness of this session's ep-persistent code before any timing:
#   returns=1 (compute=1: each partial-sum row sent home by the last block that adds into it; return_rows) and
#   balance=2 (compute=0: the down pairs split even in cost too), both with the ranges now computed by block 0
#   (block_ranges). G = 1 presets (bf16, fp16), memcheck, an edge shape with fewer units than blocks; then G = 2
#   and G = 4. Output $OUT/r20.tgz.
set -u
START=$(date +%s)
O=/tmp/r20; mkdir -p $O/c $O/m
B=csrc/build/cuda-sm_90a; BIN=$B/moe-bench
log() { echo "== $(date +%T) [+$(( $(date +%s) - START ))s] $*"; }
nvidia-smi --query-gpu=index,name,uuid,driver_version,clocks.sm,clocks.max.sm,power.limit,temperature.gpu --format=csv | tee $O/smi.txt; nvidia-smi topo -m >> $O/smi.txt
log build; make -s -C csrc -j32 cuda ARCH=sm_90a > $O/build.log 2>&1 || { tail -20 $O/build.log; exit 1; }
log built
R1="--tune ep-persistent:compute=1,returns=1"; B2="--tune ep-persistent:compute=0,balance=2"
EDGE="--hidden 2048 --inter 8 --experts 16 --topk 2"            # fewer units than blocks: empty block ranges
SMALL="--hidden 2048 --inter 64 --experts 16 --topk 4 --shared-experts 2 --shared-inter 32"
( export CUDA_VISIBLE_DEVICES=0
  VARIANTS=ep-persistent EXTRA="$R1" TUNABLES=0 MODELS="qwen3-30b-a3b deepseek-v2-lite deepseek-v2-lite-shared" TOKENS="1 5 33" DTYPES="bf16 fp16" \
    csrc/check_gpu.sh sm_90a > $O/c/g1-r1.txt 2>&1 ) &
( export CUDA_VISIBLE_DEVICES=1
  VARIANTS=ep-persistent EXTRA="$B2" TUNABLES=0 MODELS="tiny tiny-shared qwen3-30b-a3b deepseek-v2-lite-shared" TOKENS="1 4 16 64" DTYPES="bf16" \
    csrc/check_gpu.sh sm_90a > $O/c/g1-b2.txt 2>&1
  VARIANTS=ep-persistent EXTRA="$B2" TUNABLES=0 MODELS="tiny-shared" TOKENS="3 17" DTYPES="fp16" csrc/check_gpu.sh sm_90a > $O/c/g1-b2-fp16.txt 2>&1 ) &
( export CUDA_VISIBLE_DEVICES=2
  MC="compute-sanitizer --tool memcheck"; i=0
  while read -r tune a; do
    i=$((i+1)); timeout 90 $MC $BIN --backend cuda $a --variant ep-persistent --tune "ep-persistent:$tune" --iters 2 --warmup 1 --rotate 2 --energy-ms 0 > $O/m/mc$i.out 2>&1
    echo "memcheck $i $tune $a: rc=$? $(grep -E 'ERROR SUMMARY' $O/m/mc$i.out | tr '\n' ' ') pass=$(grep -o '"pass": *[a-z]*' $O/m/mc$i.out | head -1)"
  done <<LIST
compute=1,returns=1 --model tiny --tokens 3
compute=1,returns=1 $SMALL --tokens 3
compute=1,returns=1 $SMALL --tokens 17
compute=1,returns=1,fence=0 $SMALL --tokens 5
compute=1,returns=1 $EDGE --tokens 1
compute=0,balance=2 --model tiny-shared --tokens 17
compute=0,balance=2 --hidden 7168 --inter 256 --experts 16 --topk 4 --tokens 9
LIST
) > $O/m/log.txt 2>&1 &
( export CUDA_VISIBLE_DEVICES=3
  for t in 1 2 7; do for f in 0 1; do
    $BIN --backend cuda $EDGE --tokens $t --variant ep-persistent --tune ep-persistent:compute=1,returns=1,fence=$f --iters 20 --warmup 2 --rotate 4 --energy-ms 0 2>&1 | grep -o '"pass": *[a-z]*' | head -1 | sed "s/^/edge T=$t fence=$f /"
  done; done
  for t in 1 9; do $BIN --backend cuda $SMALL --tokens $t --variant ep-persistent --tune ep-persistent:compute=1,returns=1 --iters 20 --warmup 2 --rotate 4 --energy-ms 0 2>&1 | grep -o '"pass": *[a-z]*' | head -1 | sed "s/^/small T=$t /"; done
) > $O/c/edge.txt 2>&1 &
wait
log "G=1 checks"; for f in $O/c/g1-*.txt; do echo "# $f"; grep -v "^ok " $f | tail -4; done; cat $O/m/log.txt $O/c/edge.txt
( export CUDA_VISIBLE_DEVICES=0,1
  VARIANTS=ep-persistent EXTRA="--gpus 2 $R1" TUNABLES=0 MODELS="qwen3-30b-a3b deepseek-v2-lite-shared" TOKENS="1 8" DTYPES="bf16" csrc/check_gpu.sh sm_90a > $O/c/g2-r1.txt 2>&1
  for t in 1 3; do $BIN --backend cuda --gpus 2 $EDGE --tokens $t --variant ep-persistent --tune ep-persistent:compute=1,returns=1 --iters 20 --warmup 2 --rotate 4 --energy-ms 0 2>&1 | grep -o '"pass": *[a-z]*' | head -1 | sed "s/^/G2 edge T=$t /"; done >> $O/c/g2-r1.txt
  $BIN --backend cuda --gpus 2 $SMALL --tokens 5 --variant ep-persistent --tune ep-persistent:compute=1,returns=1 --iters 20 --warmup 2 --rotate 4 --energy-ms 0 2>&1 | grep -o '"pass": *[a-z]*' | head -1 | sed "s/^/G2 small T=5 /" >> $O/c/g2-r1.txt ) &
( export CUDA_VISIBLE_DEVICES=2,3
  VARIANTS=ep-persistent EXTRA="--gpus 2 $B2" TUNABLES=0 MODELS="tiny-shared qwen3-30b-a3b" TOKENS="8 64" DTYPES="bf16" csrc/check_gpu.sh sm_90a > $O/c/g2-b2.txt 2>&1 ) &
wait
log "G=2 checks"; for f in $O/c/g2-*.txt; do echo "# $f"; grep -v "^ok " $f | tail -6; done
VARIANTS=ep-persistent EXTRA="--gpus 4 $R1" TUNABLES=0 MODELS="qwen3-30b-a3b deepseek-v2-lite-shared" TOKENS="1 8" DTYPES="bf16" csrc/check_gpu.sh sm_90a > $O/c/g4-r1.txt 2>&1
$BIN --backend cuda --gpus 4 $SMALL --tokens 3 --variant ep-persistent --tune ep-persistent:compute=1,returns=1 --iters 20 --warmup 2 --rotate 4 --energy-ms 0 2>&1 | grep -o '"pass": *[a-z]*' | head -1 | sed "s/^/G4 small T=3 /" >> $O/c/g4-r1.txt
VARIANTS=ep-persistent EXTRA="--gpus 4 $B2" TUNABLES=0 MODELS="tiny-shared" TOKENS="8" DTYPES="bf16" csrc/check_gpu.sh sm_90a > $O/c/g4-b2.txt 2>&1
log "G=4 checks"; for f in $O/c/g4-*.txt; do echo "# $f"; grep -v "^ok " $f | tail -6; done
tar -C /tmp -czf $OUT/r20.tgz r20
log end
