#!/usr/bin/env bash
# GPU session 2026-11-28, run 13 (one H100): run 12 again with repeat: 2 (5 rounds could not reach p < 0.01): persistent-grouped through the farm (sweeps/grouped-h100.yaml and
# sweeps/grouped-shared-h100.yaml): one worker, interleaved points, paired verdicts against separate.
set -u
START=$(date +%s)
O=/tmp/r13; mkdir -p $O
log() { echo "== $(date +%T) [+$(( $(date +%s) - START ))s] $*"; }
nvidia-smi --query-gpu=index,name,uuid,driver_version,clocks.sm,clocks.max.sm,power.limit --format=csv | tee $O/smi.txt
log farm
OUT=$O/farm WAIT_S=300 SKIP_DEMO=1 timeout 380 bash scripts/gpu-host-e2e.sh sweeps/grouped-h100.yaml sweeps/grouped-shared-h100.yaml 2>&1 | grep -v "INFO: worker" | tail -70
rm -f $O/farm/*.db-*; tar -C /tmp -czf $OUT/r13.tgz r13
log end
