#!/usr/bin/env bash
# GPU session 2026-11-28, run 5 (4-GPU host): ep-separate vs ep-persistent (new defaults) through the farm on 1, 2
# and 4 GPUs, Qwen3 T = 1 and 8.
set -u
START=$(date +%s)
O=/tmp/r5; mkdir -p $O
log() { echo "== $(date +%T) [+$(( $(date +%s) - START ))s] $*"; }
nvidia-smi --query-gpu=index,name,uuid,driver_version,clocks.max.sm,power.limit --format=csv | tee $O/smi.txt; nvidia-smi topo -m | tee -a $O/smi.txt
log farm
OUT=$O/farm WAIT_S=${WAIT_S:-170} GPUS=all POOL=h100x4 SKIP_DEMO=1 timeout 200 bash scripts/gpu-host-e2e.sh sweeps/ep-qwen3-h100x4.yaml 2>&1 | grep -v "INFO: worker" | tail -40
rm -f $O/farm/*.db-*; tar -C /tmp -czf $OUT/r5.tgz r5
log end
