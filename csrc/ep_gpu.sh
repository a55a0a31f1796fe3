#!/usr/bin/env bash
# ep_gpu.sh — on a host with several GPUs: the expert-parallel figures of csrc/BENCHMARKS.md ("EP on CUDA").
#   1. the link first: tools/nvlink_rtt (flag ping-pong and payload+flag round trip, each per release protocol;
#      peer copies) -> OUTDIR/nvlink_rtt.jsonl
#   2. for every GPU count G in GPUS (default: 1, 2 and 4 where the host has them), Qwen3-30B-A3B and DeepSeek-V3's
#      routed experts (7168, 2048, 256 experts, top-8), T per GPU in TOKENS (default 1 8 64), bf16:
#      ep-separate and ep-persistent interleaved in one process (check against the fp64 oracle over all G x T
#      tokens first; exit 1 on a failed check) -> OUTDIR/<shape>-G<g>-T<t>.json
#      and at G=1 also the single-GPU `separate` at the same T (the 1-GPU figure of the ordinary kernels).
# Every run under `timeout`; a failed point prints rc= and the script goes on.
# Usage: csrc/ep_gpu.sh OUTDIR [ARCH=sm_90a]     env: GPUS, TOKENS, ITERS (200), ROUNDS (3), EXTRA (more flags), POINT_S (600: the limit of one point)
set -u
cd "$(dirname "$0")"
OUTDIR=${1:?OUTDIR}; ARCH=${2:-sm_90a}
BUILD=build/cuda-$ARCH
make -s cuda ARCH="$ARCH" BUILD="$BUILD" >/dev/null || { echo "FAIL: build"; exit 1; }
BIN="$BUILD/moe-bench"
mkdir -p "$OUTDIR"
case $ARCH in sm_90a) GC="arch=compute_90a,code=sm_90a" ;; *) GC="arch=compute_${ARCH#sm_},code=$ARCH" ;; esac
NGPU=$(nvidia-smi --query-gpu=index --format=csv,noheader | wc -l)
nvidia-smi topo -m > "$OUTDIR/topo.txt" 2>&1
if [ "$NGPU" -ge 2 ]; then
  nvcc -O3 -std=c++17 -gencode "$GC" -o "$BUILD/nvlink_rtt" tools/nvlink_rtt.cu && \
    timeout 300 "$BUILD/nvlink_rtt" 10000 > "$OUTDIR/nvlink_rtt.jsonl" || echo "rc=$? for nvlink_rtt"
fi
GPUS=${GPUS:-$(for g in 1 2 4; do [ "$g" -le "$NGPU" ] && printf '%s ' $g; done)}
SHAPES=("qwen3:--model qwen3-30b-a3b" "dsv3:--hidden 7168 --inter 2048 --experts 256 --topk 8")
for g in $GPUS; do
  for sh in "${SHAPES[@]}"; do
    name=${sh%%:*}; args=${sh#*:}
    for T in ${TOKENS:-1 8 64}; do
      V=ep-separate,ep-persistent
      [ "$g" = 1 ] && V=$V,separate
      f="$OUTDIR/$name-G$g-T$T"
      timeout "${POINT_S:-600}" "$BIN" --backend cuda $args --dtype bf16 --tokens "$T" --gpus "$g" --variant "$V" \
        --iters ${ITERS:-200} --warmup 20 --rounds ${ROUNDS:-3} ${EXTRA:-} >"$f.json" 2>"$f.err" || echo "rc=$? for $f"
      python3 - "$f.json" <<'EOF' || true
import json, sys
try:
    d = json.load(open(sys.argv[1]))
except Exception as e:
    print(sys.argv[1], "unreadable:", e); sys.exit(0)
c = d["config"]
for r in d["results"]:
    ep = r.get("ep") or {}
    med = (r.get("stats") or {}).get("median")
    fence = (r.get("tunables") or {}).get("fence")
    print(f'{c["hidden"]}x{c["inter"]}x{c["experts"]} G={c["gpus"]} T={c["tokens"]} {r["variant"]:14s} check={r["check"]["pass"]} '
          f'rel={r["check"]["rel_err"]:.2e} median={med} us comm={ep.get("comm")} per_gpu={ep.get("per_gpu_median_us")} '
          f'spread={ep.get("spread_us")}' + (f' fence={fence["value"]}' if fence else ''))
EOF
    done
  done
done
