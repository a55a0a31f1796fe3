#!/usr/bin/env bash
# GPU session 2026-11-28, run 1 (2-GPU host): build; phase A in parallel (GPU 0 timing, GPU 1 correctness);
# phase B both GPUs (EP). Everything into $OUT/r1.tgz + $OUT/r1.log.
set -u
START=$(date +%s); LIMIT=${LIMIT:-540}
left() { echo $(( LIMIT - ($(date +%s) - START) )); }
O=/tmp/r1; mkdir -p $O/t $O/c $O/ep
B=csrc/build/cuda-sm_90a; BIN=$B/moe-bench
log() { echo "== $(date +%T) [+$(( $(date +%s) - START ))s] $*"; }
nvidia-smi --query-gpu=index,name,uuid,driver_version,clocks.sm,clocks.max.sm,power.limit,temperature.gpu --format=csv > $O/smi.txt; nvidia-smi topo -m >> $O/smi.txt
cat $O/smi.txt
log build; make -s -C csrc -j16 cuda ARCH=sm_90a > $O/build.log 2>&1 || { tail -20 $O/build.log; exit 1; }
nvcc -O3 -std=c++17 -gencode arch=compute_90a,code=sm_90a -o $B/nvlink_rtt csrc/tools/nvlink_rtt.cu >> $O/build.log 2>&1
log built
V6=persistent-simple,persistent-multiwarp,persistent-roundrobin,persistent-batched,persistent-splitk,persistent-splitk-dyn
TB="--iters 200 --warmup 20 --rounds 3 --rotate 64 --energy-ms 0"
# ---- phase A, GPU 0: timing
(
  export CUDA_VISIBLE_DEVICES=0
  for rep in 1 2; do for P in 1 3; do
    timeout 120 $BIN --backend cuda --model qwen3-30b-a3b --tokens 1 --variant separate,persistent-flat --tune persistent-flat:t1path=$P $TB > $O/t/t1-P$P-r$rep.json 2>$O/t/t1-P$P-r$rep.err || echo "rc=$? t1 P$P r$rep"
  done; done
  for P in 1 3; do timeout 120 $BIN --backend cuda --model qwen3-30b-a3b --tokens 1 --variant persistent-flat --tune persistent-flat:t1path=$P --iters 50 --warmup 10 --rotate 64 --energy-ms 0 --trace $O/t/t1-P$P.trace.json > $O/t/t1-P$P-trace.json 2>&1; done
  for m in deepseek-v2-lite-shared deepseek-v2-lite; do for T in 1 4; do
    timeout 200 $BIN --backend cuda --model $m --tokens $T --variant separate,persistent-flat,$V6 $TB --trace $O/t/$m-T$T.trace.json > $O/t/$m-T$T.json 2>$O/t/$m-T$T.err || echo "rc=$? $m T$T"
  done; done
  for sc in channel tensor block; do for T in 1 4; do
    timeout 120 $BIN --backend cuda --model qwen3-30b-a3b --dtype fp8 --fp8-scales $sc --tokens $T --variant separate,persistent-flat $TB > $O/t/fp8-$sc-T$T.json 2>$O/t/fp8-$sc-T$T.err || echo "rc=$? fp8 $sc T$T"
  done; done
  timeout 120 $BIN --backend cuda --model qwen3-30b-a3b --dtype fp8 --tokens 1 --variant separate,persistent-flat --tune persistent-flat:t1path=3 $TB > $O/t/fp8-channel-T1-P3.json 2>&1
) > $O/t/log.txt 2>&1 &
A0=$!
# ---- phase A, GPU 1: correctness
(
  export CUDA_VISIBLE_DEVICES=1
  MC="compute-sanitizer --tool memcheck"
  echo "# memcheck t1path=3"
  for a in "--model qwen3-30b-a3b --tokens 1" "--model qwen3-30b-a3b --tokens 1 --dtype fp8" "--model qwen3-30b-a3b --tokens 1 --dtype fp8 --fp8-scales block"; do
    timeout 120 $MC $BIN --backend cuda $a --variant persistent-flat --tune persistent-flat:t1path=3 --iters 2 --warmup 1 --rotate 2 --energy-ms 0 2>&1 | grep -E "ERROR SUMMARY|\"pass\"" | head -3; done
  echo "# check t1path=3"
  VARIANTS=persistent-flat MODELS="qwen3-30b-a3b deepseek-v2-lite-shared olmoe-1b-7b tiny" TOKENS="1 4" DTYPES="bf16 fp16 fp8" TUNABLES=0 EXTRA="--tune persistent-flat:t1path=3" csrc/check_gpu.sh sm_90a
  echo "# memcheck shared os/splitk"
  for v in ${V6//,/ }; do
    timeout 120 $MC $BIN --backend cuda --model tiny-shared --tokens 3 --variant $v --iters 2 --warmup 1 --rotate 2 --energy-ms 0 2>&1 | grep -E "ERROR SUMMARY" | sed "s/^/$v tiny-shared: /"
    timeout 120 $MC $BIN --backend cuda --hidden 2880 --inter 1000 --experts 24 --topk 3 --shared-experts 2 --shared-inter 200 --tokens 9 --variant $v --iters 2 --warmup 1 --rotate 2 --energy-ms 0 2>&1 | grep -E "ERROR SUMMARY" | sed "s/^/$v 2880-shared: /"
  done
  echo "# check shared os/splitk"
  VARIANTS=$V6 MODELS="tiny-shared deepseek-v2-lite-shared" DTYPES="bf16 fp16" TUNABLES=0 csrc/check_gpu.sh sm_90a
  echo "# check ep-persistent G=1 (tunables incl. compute, fence)"
  VARIANTS=ep-persistent MODELS=tiny TOKENS="1 4" DTYPES=bf16 csrc/check_gpu.sh sm_90a
  VARIANTS=ep-persistent TUNABLES=0 MODELS="qwen3-30b-a3b olmoe-1b-7b gpt-oss-20b" TOKENS="1 8" DTYPES=bf16 EXTRA="--tune ep-persistent:compute=1" csrc/check_gpu.sh sm_90a
  timeout 200 $MC $BIN --backend cuda --model qwen3-30b-a3b --tokens 3 --gpus 1 --variant ep-persistent --tune ep-persistent:compute=1,fence=1 --iters 2 --warmup 1 --energy-ms 0 2>&1 | grep -E "ERROR SUMMARY"
  echo "# fp8 scales"
  for sc in tensor block; do
    for a in "--model tiny --tokens 3" "--model qwen3-30b-a3b --tokens 1"; do
      timeout 120 $MC $BIN --backend cuda $a --dtype fp8 --fp8-scales $sc --variant separate,persistent-flat --iters 2 --warmup 1 --rotate 2 --energy-ms 0 2>&1 | grep -E "ERROR SUMMARY" | sed "s/^/$sc $a: /"; done
    FP8_SCALES=$sc VARIANTS=separate,persistent-flat MODELS="tiny qwen3-30b-a3b gpt-oss-20b deepseek-v2-lite-shared" DTYPES=fp8 TUNE_DTYPE=fp8 TUNABLES=0 csrc/check_gpu.sh sm_90a
  done
  $BIN --backend cuda --hidden 2048 --inter 136 --experts 16 --topk 2 --dtype fp8 --fp8-scales block --variant persistent-flat; echo "rc=$? (want 2)"
) > $O/c/log.txt 2>&1 &
A1=$!
wait $A0; log "phase A GPU0 done"; cat $O/t/log.txt
wait $A1; log "phase A GPU1 done"; cat $O/c/log.txt
# ---- phase B: both GPUs
log "nvlink_rtt"; timeout 120 $B/nvlink_rtt 10000 > $O/ep/nvlink_rtt.jsonl 2>&1
python3 -c 'import json,sys; [print(d["from"], d["to"], d["test"], d["protocol"], d["payload_bytes"], d["rtt_us"], d["payload_errors"]) for d in map(json.loads, open(sys.argv[1])) if "protocol" in d]' $O/ep/nvlink_rtt.jsonl
for T in 1 8; do for c in 0 1; do for f in 0 1; do
  [ $(left) -lt 40 ] && { echo "skip G2 T$T c$c f$f: time"; continue; }
  timeout 90 $BIN --backend cuda --model qwen3-30b-a3b --tokens $T --gpus 2 --variant ep-separate,ep-persistent --tune ep-persistent:compute=$c,fence=$f $TB --trace $O/ep/G2-T$T-c$c-f$f.trace.json > $O/ep/G2-T$T-c$c-f$f.json 2>$O/ep/G2-T$T-c$c-f$f.err || echo "rc=$? G2 T$T c$c f$f"
done; done; done
log "phase B done"
python3 - $O <<'PY'
import json, glob, sys
for f in sorted(glob.glob(sys.argv[1] + "/*/*.json")):
    if f.endswith("trace.json"): continue
    try: d = json.load(open(f))
    except Exception as e: print(f, "unreadable", e); continue
    for r in d.get("results", []):
        st = r.get("stats") or {}; ep = r.get("ep") or {}
        print(f.split("/")[-1], r["variant"], "pass=%s" % r["check"]["pass"], "rel=%s" % r["check"]["rel_err"], "median=%s" % st.get("median"), "p90=%s" % st.get("p90"), "ep.compute=%s" % ep.get("compute"), "per_gpu=%s" % ep.get("per_gpu_median_us"))
PY
tar -C /tmp -czf $OUT/r1.tgz r1
log end
