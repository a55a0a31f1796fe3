#!/usr/bin/env bash
# GPU run 21 (4-GPU host, right after run 20 passed): timing by hand, each tunable value in its own process
# (moe-bench refuses a variant listed twice), alternated: returns 0 / 1 (Qwen3 T = 1 and 8 on 1, 2, 4 GPUs; the
# stream) and balance 1 / 2 (DeepSeek-V3's shape T = 8 on 1, 2, 4 GPUs and Qwen3 T = 64 on one; the buckets), with
# ep-separate beside each; traces of Qwen3 T = 1 on 2 GPUs with each returns value. Output $OUT/r21.tgz.
set -u
START=$(date +%s)
O=/tmp/r21; mkdir -p $O/t
B=csrc/build/cuda-sm_90a; BIN=$B/moe-bench
log() { echo "== $(date +%T) [+$(( $(date +%s) - START ))s] $*"; }
nvidia-smi --query-gpu=index,name,clocks.sm,power.limit,temperature.gpu --format=csv > $O/smi.txt
log build; make -s -C csrc -j32 cuda ARCH=sm_90a > $O/build.log 2>&1 || { tail -20 $O/build.log; exit 1; }
log built
TB="--iters 200 --warmup 20 --rounds 3 --rotate 64 --energy-ms 0"
DSV3="--hidden 7168 --inter 2048 --experts 256 --topk 8"
run() {  # NAME GPUS ARGS...
  local name=$1 g=$2; shift 2
  timeout 120 $BIN --backend cuda --gpus $g "$@" $TB > $O/t/$name.json 2> $O/t/$name.err || echo "rc=$? $name"
}
# one GPU on GPU 3 (the buckets: DeepSeek-V3 T=8, Qwen3 T=64) while GPUs 0-2 are idle, then the multi-GPU points
( export CUDA_VISIBLE_DEVICES=3
  for b in 1 2; do run dsv3-G1-T8-b$b 1 $DSV3 --tokens 8 --variant ep-separate,ep-persistent --tune ep-persistent:balance=$b; done
  for b in 1 2; do run q-G1-T64-b$b 1 --model qwen3-30b-a3b --tokens 64 --variant ep-separate,ep-persistent --tune ep-persistent:balance=$b; done
) &
( export CUDA_VISIBLE_DEVICES=0
  for r in 0 1 0 1; do run q-G1-T1-r$r-$RANDOM 1 --model qwen3-30b-a3b --tokens 1 --variant ep-separate,ep-persistent --tune ep-persistent:returns=$r; done
  for r in 0 1; do run q-G1-T8-r$r 1 --model qwen3-30b-a3b --tokens 8 --variant ep-persistent --tune ep-persistent:returns=$r; done
) &
wait; log "one GPU"
export CUDA_VISIBLE_DEVICES=0,1,2,3
for r in 0 1 0 1; do run q-G2-T1-r$r-$RANDOM 2 --model qwen3-30b-a3b --tokens 1 --variant ep-separate,ep-persistent --tune ep-persistent:returns=$r; done
for r in 0 1; do run q-G2-T8-r$r 2 --model qwen3-30b-a3b --tokens 8 --variant ep-separate,ep-persistent --tune ep-persistent:returns=$r; done
for r in 0 1; do run q-G4-T1-r$r 4 --model qwen3-30b-a3b --tokens 1 --variant ep-separate,ep-persistent --tune ep-persistent:returns=$r; done
for r in 0 1; do run q-G4-T8-r$r 4 --model qwen3-30b-a3b --tokens 8 --variant ep-persistent --tune ep-persistent:returns=$r; done
for r in 0 1; do run q-G2-T1-r$r-trace 2 --model qwen3-30b-a3b --tokens 1 --variant ep-persistent --tune ep-persistent:returns=$r --trace $O/t/q-G2-T1-r$r.trace.json; done
log "Qwen3 returns"
for b in 1 2; do run dsv3-G2-T8-b$b 2 $DSV3 --tokens 8 --variant ep-separate,ep-persistent --tune ep-persistent:balance=$b; done
for b in 1 2; do run dsv3-G4-T8-b$b 4 $DSV3 --tokens 8 --variant ep-separate,ep-persistent --tune ep-persistent:balance=$b; done
log "DeepSeek-V3 balance"
python3 scripts/gpu-runs/summary.py $O/t/*.json
for f in $O/t/*.trace.json; do echo "## $f"; python3 csrc/trace_summary.py $f 2>&1 | grep -E "span|ep:gate-up|ep:down|ep:return|wait:ep|ep:combine|ep:slots"; done > $O/traces.txt
cat $O/traces.txt | head -80
tar -C /tmp -czf $OUT/r21.tgz r21
log end
