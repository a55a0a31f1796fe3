#!/usr/bin/env bash
# GPU session 2026-11-28, run 11 (one H100): persistent-grouped after run 10 (top-k over the grid; tunables order
# and prefetch: prefetch=1 slower everywhere). Here each gate/up warp takes all 4 n-tiles of a unit (the tokens'
# inputs read once for 4 rows, not 4 times) and a router unit is 8 experts x 32 tokens. Checks, then order 0/1
# timed beside separate and split-K, and traces.
set -u
START=$(date +%s)
O=/tmp/r11; mkdir -p $O/t
B=csrc/build/cuda-sm_90a; BIN=$B/moe-bench
log() { echo "== $(date +%T) [+$(( $(date +%s) - START ))s] $*"; }
nvidia-smi --query-gpu=index,name,uuid,driver_version,clocks.sm,clocks.max.sm,power.limit --format=csv | tee $O/smi.txt
log build; make -s -C csrc -j16 cuda ARCH=sm_90a > $O/build.log 2>&1 || { tail -20 $O/build.log; exit 1; }
MC="compute-sanitizer --tool memcheck"
log memcheck
for a in "--model tiny --tokens 3" "--model tiny --tokens 256 --tune persistent-grouped:order=1,prefetch=1" "--model tiny-shared --tokens 70 --tune persistent-grouped:order=1,prefetch=1" "--hidden 320 --inter 48 --experts 20 --topk 3 --tokens 37"; do
  timeout 120 $MC $BIN --backend cuda $a --variant persistent-grouped --iters 2 --warmup 1 --rotate 2 --energy-ms 0 > $O/mc.out 2>&1
  echo "$a: $(grep -E 'ERROR SUMMARY' $O/mc.out) pass=$(grep -o '"pass": *[a-z]*' $O/mc.out | head -1)"; done
log check
VARIANTS=persistent-grouped MODELS="tiny tiny-shared qwen3-30b-a3b deepseek-v2-lite-shared gpt-oss-20b" TOKENS="1 5 64 256" DTYPES="bf16 fp16" TUNE_SHAPES="--model qwen3-30b-a3b --tokens 20;--model tiny-shared --tokens 33" csrc/check_gpu.sh sm_90a 2>&1 | grep -v "^ok " | tail -8
TB="--iters 200 --warmup 20 --rounds 3 --rotate 64 --energy-ms 0"
log timing
for T in 64 16 128 256; do for o in 0 1; do
  timeout 150 $BIN --backend cuda --model qwen3-30b-a3b --tokens $T --variant separate,persistent-splitk-dyn,persistent-grouped --tune persistent-grouped:order=$o $TB > $O/t/q-T$T-o$o.json 2>$O/t/q-T$T-o$o.err || echo "rc=$? q T$T o$o"; done; done
for T in 4 16; do
  timeout 150 $BIN --backend cuda --model deepseek-v2-lite-shared --tokens $T --variant separate,persistent-grouped $TB > $O/t/s-T$T.json 2>$O/t/s-T$T.err || echo "rc=$? s T$T"; done
log traces
for T in 16 64; do timeout 100 $BIN --backend cuda --model qwen3-30b-a3b --tokens $T --variant persistent-grouped --iters 20 --warmup 5 --rotate 64 --energy-ms 0 --trace $O/t/g-T$T.trace.json > $O/t/g-T$T-trace.json 2>&1; python3 csrc/trace_summary.py $O/t/g-T$T.trace.json > $O/t/g-T$T.trace.txt 2>&1; head -12 $O/t/g-T$T.trace.txt; done
python3 - $O <<'PY'
import json, glob, sys
for f in sorted(glob.glob(sys.argv[1] + "/t/[qs]-T*.json")):
    try: d = json.load(open(f))
    except Exception as e: print(f, "unreadable", e); continue
    for r in d["results"]:
        st = r.get("stats") or {}
        c = r["check"]
        print(f.split("/")[-1], r["variant"], "pass=%s rel_err=%.2e" % (c["pass"], c.get("rel_err", -1)), "median=%.2f p90=%.2f" % (st.get("median", -1), st.get("p90", -1)), "GB/s=%s" % r.get("bandwidth_gbps"))
PY
tar -C /tmp -czf $OUT/r11.tgz r11
log end
