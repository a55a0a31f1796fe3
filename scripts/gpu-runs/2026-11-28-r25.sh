#!/usr/bin/env bash
# GPU run 25 (one H200): is the unit stream at T = 8 slower since this session's changes? The farm's ep-persistent
# Qwen3 T = 8 went from 168.2 us (run 17) to 186.6 (run 22) on one GPU. The binary of the session's first commit
# (2638215, in .device-carry/ab-base/csrc) against this one, alternated, T = 8 and T = 1, one GPU; this one also with
# returns=0. Output $OUT/r25.tgz.
set -u
START=$(date +%s)
O=/tmp/r25; mkdir -p $O/t
log() { echo "== $(date +%T) [+$(( $(date +%s) - START ))s] $*"; }
nvidia-smi --query-gpu=index,name,clocks.sm,power.limit,temperature.gpu --format=csv > $O/smi.txt
log build
make -s -C csrc -j16 cuda ARCH=sm_90a > $O/build.log 2>&1 &
make -s -C .device-carry/ab-base/csrc -j16 cuda ARCH=sm_90a > $O/build-base.log 2>&1 &
wait; log built
NEW=csrc/build/cuda-sm_90a/moe-bench; OLD=.device-carry/ab-base/csrc/build/cuda-sm_90a/moe-bench
TB="--iters 200 --warmup 20 --rounds 3 --rotate 64 --energy-ms 0"
for rep in 1 2; do for t in 8 1; do
  $OLD --backend cuda --model qwen3-30b-a3b --tokens $t --variant ep-persistent $TB > $O/t/old-T$t-$rep.json 2>/dev/null
  $NEW --backend cuda --model qwen3-30b-a3b --tokens $t --variant ep-persistent $TB > $O/t/new-T$t-$rep.json 2>/dev/null
  $NEW --backend cuda --model qwen3-30b-a3b --tokens $t --variant ep-persistent --tune ep-persistent:returns=0,route=0 $TB > $O/t/new0-T$t-$rep.json 2>/dev/null
done; done
log timed
python3 scripts/gpu-runs/summary.py $O/t/*.json
$NEW --backend cuda --model qwen3-30b-a3b --tokens 8 --variant ep-persistent $TB --trace $O/t/new-T8.trace.json > /dev/null 2>&1
$OLD --backend cuda --model qwen3-30b-a3b --tokens 8 --variant ep-persistent $TB --trace $O/t/old-T8.trace.json > /dev/null 2>&1
for f in $O/t/*.trace.json; do echo "## $f"; python3 csrc/trace_summary.py $f 2>&1 | grep -E "span|topk|slots|stream|down|return|wait"; done
tar -C /tmp -czf $OUT/r25.tgz r25
log end
