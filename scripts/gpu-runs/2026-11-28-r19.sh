#!/usr/bin/env bash
# GPU run 19 (the 2-GPU host of run 18, still warm, its build in place): the stream against the buckets with
# balance=1 at Qwen3 T = 16 and 32, one process per compute value, compute=0 on GPU 0 and compute=1 on GPU 1 at the
# same time (so the two values ran on different GPUs of the same model). As run, in one line:
B=csrc/build/cuda-sm_90a/moe-bench; make -s -C csrc -j16 cuda ARCH=sm_90a >/dev/null 2>&1; for T in 16 32; do for c in 0 1; do CUDA_VISIBLE_DEVICES=$((c)) timeout 40 $B --backend cuda --model qwen3-30b-a3b --tokens $T --variant ep-separate,ep-persistent --tune ep-persistent:compute=$c,balance=1 --iters 200 --warmup 20 --rounds 3 --rotate 64 --energy-ms 0 > /tmp/q$T-c$c.json 2>/dev/null & done; wait; done; python3 scripts/gpu-runs/summary.py /tmp/q*-c*.json
