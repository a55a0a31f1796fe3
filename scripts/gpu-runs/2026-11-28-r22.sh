#!/usr/bin/env bash
# GPU run 22 (4-GPU host): the farm with the ep code as committed after runs 20-21 (balance 2, returns 1; shared experts on the ep rows, top-k in
# every block, compute auto) checked at G = 1, 2, 4, then through the farm: one worker owning the four GPUs,
# sweeps/ep-qwen3-4gpu.yaml and sweeps/ep-dsv3-4gpu.yaml. Output $OUT/r22.tgz.
set -u
START=$(date +%s)
O=/tmp/r22; mkdir -p $O/c
B=csrc/build/cuda-sm_90a; BIN=$B/moe-bench
log() { echo "== $(date +%T) [+$(( $(date +%s) - START ))s] $*"; }
nvidia-smi --query-gpu=index,name,uuid,driver_version,clocks.sm,clocks.max.sm,power.limit,temperature.gpu --format=csv | tee $O/smi.txt; nvidia-smi topo -m >> $O/smi.txt
log build; make -s -C csrc -j32 cuda ARCH=sm_90a > $O/build.log 2>&1 || { tail -20 $O/build.log; exit 1; }
log built
( export CUDA_VISIBLE_DEVICES=0
  VARIANTS=ep-separate,ep-persistent TUNABLES=0 MODELS="tiny tiny-shared qwen3-30b-a3b deepseek-v2-lite-shared" TOKENS="1 4 64" DTYPES="bf16 fp16" \
    csrc/check_gpu.sh sm_90a > $O/c/g1.txt 2>&1 ) &
( export CUDA_VISIBLE_DEVICES=2,3
  VARIANTS=ep-separate,ep-persistent EXTRA="--gpus 2" TUNABLES=0 MODELS="tiny-shared qwen3-30b-a3b deepseek-v2-lite-shared" TOKENS="1 8 64" DTYPES="bf16" \
    csrc/check_gpu.sh sm_90a > $O/c/g2.txt 2>&1 ) &
wait
log "checks G=1, G=2"; grep -v "^ok " $O/c/g1.txt | tail -4; grep -v "^ok " $O/c/g2.txt | tail -4
VARIANTS=ep-separate,ep-persistent EXTRA="--gpus 4" TUNABLES=0 MODELS="tiny-shared qwen3-30b-a3b qwen3-next-80b-a3b-shared" TOKENS="1 8" BIG_TOKENS="1" DTYPES="bf16" \
  csrc/check_gpu.sh sm_90a > $O/c/g4.txt 2>&1
log "checks G=4"; grep -v "^ok " $O/c/g4.txt | tail -4
log farm
OUT=$O/farm WAIT_S=${WAIT_S:-330} GPUS=all POOL=gpu4 SKIP_DEMO=1 timeout 380 bash scripts/gpu-host-e2e.sh sweeps/ep-qwen3-4gpu.yaml sweeps/ep-dsv3-4gpu.yaml 2>&1 | grep -v "INFO: worker" | tail -60
rm -f $O/farm/*.db-*; tar -C /tmp -czf $OUT/r22.tgz r22
log end
