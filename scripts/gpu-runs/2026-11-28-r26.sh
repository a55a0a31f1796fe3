#!/usr/bin/env bash
# GPU run 26 (one H200; prepared, NOT yet run: the session's GPU time ran out): run 25 found the unit stream 12%
# slower at T = 8 (163.5 against 144.8 us a block in the trace; 186 against 167 us a layer) and about 1.8 us slower
# at T = 1 (with returns=0 route=0) in this session's binary than in its first commit's (2638215). Candidates,
# prepared by 2026-11-28-r26-prep.sh (run it here first, then carry .device-carry): ab-fix, nothing of the returns
# held live across the stream; ab-nort, return_rows compiled out. Alternated with HEAD and the session's first
# commit, Qwen3 on one GPU; each checked against the oracle before timing. Output $OUT/r26.tgz.
set -u
START=$(date +%s)
O=/tmp/r26; mkdir -p $O/t
log() { echo "== $(date +%T) [+$(( $(date +%s) - START ))s] $*"; }
log build
for d in csrc .device-carry/ab-base/csrc .device-carry/ab-fix/csrc .device-carry/ab-nort/csrc; do
  make -s -C $d -j16 cuda ARCH=sm_90a > $O/build-${d//\//_}.log 2>&1 &
done
wait; log built
HEAD=csrc/build/cuda-sm_90a/moe-bench
BASE=.device-carry/ab-base/csrc/build/cuda-sm_90a/moe-bench
FIX=.device-carry/ab-fix/csrc/build/cuda-sm_90a/moe-bench
NORT=.device-carry/ab-nort/csrc/build/cuda-sm_90a/moe-bench
TB="--iters 200 --warmup 20 --rounds 3 --rotate 64 --energy-ms 0"
for rep in 1 2; do
  for b in BASE HEAD FIX NORT; do ${!b} --backend cuda --model qwen3-30b-a3b --tokens 8 --variant ep-persistent $TB > $O/t/$b-T8-$rep.json 2>/dev/null; done
  for b in BASE HEAD FIX; do ${!b} --backend cuda --model qwen3-30b-a3b --tokens 1 --variant ep-persistent $TB > $O/t/$b-T1-$rep.json 2>/dev/null; done
done
log timed
python3 scripts/gpu-runs/summary.py $O/t/*.json
tar -C /tmp -czf $OUT/r26.tgz r26
log end
