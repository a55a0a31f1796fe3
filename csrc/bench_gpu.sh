#!/usr/bin/env bash
# bench_gpu.sh — on a GPU host: the BENCHMARKS.md matrix. Every variant,
# interleaved in rounds, T in {1,4,16,64}, bf16 and fp16, Qwen3-30B-A3B (or
# MODEL=...). Writes one JSON per point and a trace per point into OUTDIR; each
# JSON also carries every variant's energy per forward (its own window).
# Usage: csrc/bench_gpu.sh OUTDIR [ARCH=sm_90a]
set -u
cd "$(dirname "$0")"
OUTDIR=${1:?OUTDIR}; ARCH=${2:-sm_90a}
BUILD=build/cuda-$ARCH
make -s cuda ARCH="$ARCH" BUILD="$BUILD" >/dev/null || { echo "FAIL: build"; exit 1; }
BIN="$BUILD/moe-bench"
MODEL=${MODEL:-qwen3-30b-a3b}
V=${VARIANTS:-$("$BIN" --list | python3 -c 'import json,sys; print(",".join(v["name"] for v in json.load(sys.stdin)["table"]["variants"] if v["backend"] == "cuda"))')}
mkdir -p "$OUTDIR"
for dt in ${DTYPES:-bf16 fp16}; do
  for T in ${TOKENS:-1 4 16 64}; do
    f="$OUTDIR/$MODEL-$dt-T$T"
    timeout 300 "$BIN" --backend cuda --model "$MODEL" --dtype $dt --tokens $T --variant "$V" \
      --iters ${ITERS:-200} --warmup 20 --rounds ${ROUNDS:-3} --rotate 64 ${EXTRA:-} --trace "$f.trace.json" >"$f.json" \
      || echo "rc=$? for $f"
  done
done
