#!/usr/bin/env bash
# GPU session 2026-11-28, run 4 (one H100): the shared-expert prefetch moved after the router (one chunk):
# correctness, then the farm: A/B of persistent-flat (HEAD vs worktree), shared experts against separate.
set -u
START=$(date +%s)
O=/tmp/r4; mkdir -p $O
B=csrc/build/cuda-sm_90a; BIN=$B/moe-bench
log() { echo "== $(date +%T) [+$(( $(date +%s) - START ))s] $*"; }
nvidia-smi --query-gpu=index,name,uuid,driver_version,clocks.sm,clocks.max.sm,power.limit --format=csv | tee $O/smi.txt
log build; make -s -C csrc -j16 cuda ARCH=sm_90a > $O/build.log 2>&1 || { tail -20 $O/build.log; exit 1; }
MC="compute-sanitizer --tool memcheck"
for a in "--model deepseek-v2-lite-shared --tokens 1" "--model tiny-shared --tokens 3" "--model deepseek-v2-lite-shared --tokens 1 --dtype fp8" "--model tiny-shared --tokens 3 --dtype fp8"; do
  timeout 100 $MC $BIN --backend cuda $a --variant persistent-flat --iters 2 --warmup 1 --rotate 2 --energy-ms 0 2>&1 | grep -E "ERROR SUMMARY" | sed "s/^/$a: /"; done
VARIANTS=persistent-flat MODELS="tiny-shared deepseek-v2-lite-shared qwen3-30b-a3b" TOKENS="1 4 16" DTYPES="bf16 fp8" TUNABLES=0 csrc/check_gpu.sh sm_90a 2>&1 | tail -20
log farm
OUT=$O/farm WAIT_S=330 SKIP_DEMO=1 bash scripts/gpu-host-e2e.sh sweeps/ab-flat-h100.yaml sweeps/shared-h100.yaml 2>&1 | grep -v "INFO: worker" | tail -60
rm -f $O/farm/*.db-*; tar -C /tmp -czf $OUT/r4.tgz r4
log end
