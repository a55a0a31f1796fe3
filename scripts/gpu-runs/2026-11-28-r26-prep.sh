#!/usr/bin/env bash
# Prepares GPU run 26 here (the GPU host has no git): three copies of csrc under .device-carry/ (carry it):
#   ab-base  the session's first commit, 2638215 (the stream's speed before this session's changes);
#   ab-fix   csrc with 2026-11-28-r26-live-across-stream.patch (a.returns read where used, the slot count read back
#            from shared memory: nothing held live across the stream for the returns);
#   ab-nort  csrc with return_rows compiled out (is its mere presence in the kernel the cause?).
set -eu
cd "$(dirname "$0")/../.."
rm -rf .device-carry/ab-base .device-carry/ab-fix .device-carry/ab-nort
mkdir -p .device-carry/ab-base .device-carry/ab-fix .device-carry/ab-nort
git archive 2638215 csrc | tar -x -C .device-carry/ab-base
git archive HEAD csrc | tar -x -C .device-carry/ab-fix
git archive HEAD csrc | tar -x -C .device-carry/ab-nort
patch -s -d .device-carry/ab-fix -p1 < scripts/gpu-runs/2026-11-28-r26-live-across-stream.patch
python3 - .device-carry/ab-nort/csrc/src/cuda/ep.cu <<'PY'
import sys
p = sys.argv[1]
s = open(p).read()
s = s.replace("    if (a.returns) {\n      __syncthreads();", "    if (false) {\n      __syncthreads();")
s = s.replace("!returned", "!false").replace("if (returned) {", "if (false) {")
open(p, "w").write(s)
PY
grep -c "if (false)" .device-carry/ab-nort/csrc/src/cuda/ep.cu
