#!/usr/bin/env bash
# GPU run 27 (4-GPU host; prepared, NOT yet run): after run 26 decided on the stream's fix (apply the patch first if
# it won, and check it), the farm: DeepSeek-V3's routed shape at 64 tokens per GPU on 1, 2 and 4 GPUs (never run
# through the farm) and Qwen3-30B-A3B's full sweep again (its T=8 rows carry the regression of run 25). The
# defaults are checked at G = 2 first. Output $OUT/r27.tgz.
set -u
START=$(date +%s)
O=/tmp/r27; mkdir -p $O/c
log() { echo "== $(date +%T) [+$(( $(date +%s) - START ))s] $*"; }
nvidia-smi --query-gpu=index,name,uuid,driver_version,clocks.sm,clocks.max.sm,power.limit,temperature.gpu --format=csv | tee $O/smi.txt
log build; make -s -C csrc -j32 cuda ARCH=sm_90a > $O/build.log 2>&1 || { tail -20 $O/build.log; exit 1; }
log built
( export CUDA_VISIBLE_DEVICES=0,1
  VARIANTS=ep-separate,ep-persistent EXTRA="--gpus 2" TUNABLES=0 MODELS="tiny-shared qwen3-30b-a3b" TOKENS="1 8 64" DTYPES="bf16" \
    csrc/check_gpu.sh sm_90a > $O/c/g2.txt 2>&1 )
log checks; grep -v "^ok " $O/c/g2.txt | tail -4
OUT=$O/farm WAIT_S=${WAIT_S:-480} GPUS=all POOL=gpu4 SKIP_DEMO=1 timeout 530 bash scripts/gpu-host-e2e.sh sweeps/ep-dsv3-t64-4gpu.yaml sweeps/ep-qwen3-4gpu.yaml 2>&1 | grep -v "INFO: worker" | tail -50
rm -f $O/farm/*.db-*; tar -C /tmp -czf $OUT/r27.tgz r27
log end
