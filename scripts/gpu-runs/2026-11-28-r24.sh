#!/usr/bin/env bash
# GPU run 24 (4-GPU host): after run 23, dispatch back to 0 by default and route=1 kept: route 0 / 1 with dispatch=0
# on 4 GPUs (run 23 timed only 0,0 and 1,1 there) and on 2, alternated; the G = 2 defaults check that run 23's make
# race lost; then the farm, Qwen3 T = 1 on 1, 2, 4 GPUs, with the defaults as submitted. Output $OUT/r24.tgz.
set -u
START=$(date +%s)
O=/tmp/r24; mkdir -p $O/c $O/t
B=csrc/build/cuda-sm_90a; BIN=$B/moe-bench
log() { echo "== $(date +%T) [+$(( $(date +%s) - START ))s] $*"; }
nvidia-smi --query-gpu=index,name,uuid,clocks.sm,power.limit,temperature.gpu --format=csv > $O/smi.txt
log build; make -s -C csrc -j32 cuda ARCH=sm_90a > $O/build.log 2>&1 || { tail -20 $O/build.log; exit 1; }
log built
( export CUDA_VISIBLE_DEVICES=0,1
  VARIANTS=ep-separate,ep-persistent EXTRA="--gpus 2" TUNABLES=0 MODELS="tiny-shared qwen3-30b-a3b deepseek-v2-lite-shared" TOKENS="1 2 8 64" DTYPES="bf16" \
    csrc/check_gpu.sh sm_90a > $O/c/g2.txt 2>&1 ) &
( export CUDA_VISIBLE_DEVICES=2,3
  VARIANTS=ep-persistent EXTRA="--gpus 2 --tune ep-persistent:dispatch=1" TUNABLES=0 MODELS="qwen3-30b-a3b tiny" TOKENS="1 2" DTYPES="bf16" \
    csrc/check_gpu.sh sm_90a > $O/c/g2-d1.txt 2>&1 ) &
wait; log checks; for f in $O/c/*.txt; do echo "# $f"; grep -v "^ok " $f | tail -4; done
TB="--iters 200 --warmup 20 --rounds 3 --rotate 64 --energy-ms 0"
for rep in 1 2; do for g in 4 2; do for r in 0 1; do
  timeout 60 $BIN --backend cuda --gpus $g --model qwen3-30b-a3b --tokens 1 --variant ep-persistent --tune ep-persistent:route=$r,dispatch=0 $TB > $O/t/q-G$g-T1-r$r-$rep.json 2>$O/t/q-G$g-T1-r$r-$rep.err || echo "rc=$? G$g r$r"
done; done; done
log "by hand"; python3 scripts/gpu-runs/summary.py $O/t/*.json
log farm
OUT=$O/farm WAIT_S=${WAIT_S:-200} GPUS=all POOL=gpu4 SKIP_DEMO=1 timeout 240 bash scripts/gpu-host-e2e.sh sweeps/ep-qwen3-t1-4gpu.yaml 2>&1 | grep -v "INFO: worker" | tail -16
rm -f $O/farm/*.db-*; tar -C /tmp -czf $OUT/r24.tgz r24
log end
