#!/usr/bin/env bash
# GPU run 16 (2-GPU host): ep-persistent tunable topk (1: every block computes the top-k, no wait), checked and
# timed against 0; compute 0 (balanced buckets) against 1 (unit stream) at T = 8, 16, 32 to set where each is the
# default; a trace of DeepSeek-V3's shape at T = 8 (buckets). Shared experts on the ep rows enabled in the device's
# copy of the table, as in runs 14-15. Output $OUT/r16.tgz.
set -u
START=$(date +%s); LIMIT=${LIMIT:-520}
left() { echo $(( LIMIT - ($(date +%s) - START) )); }
O=/tmp/r16; mkdir -p $O/t $O/c $O/ep
B=csrc/build/cuda-sm_90a; BIN=$B/moe-bench
log() { echo "== $(date +%T) [+$(( $(date +%s) - START ))s] $*"; }
nvidia-smi --query-gpu=index,name,uuid,driver_version,clocks.sm,clocks.max.sm,power.limit,temperature.gpu --format=csv > $O/smi.txt
python3 - <<'PY'
import json
p = "csrc/variants.json"
d = json.load(open(p))
for v in d["variants"]:
    if v["family"] == "ep":
        v["shared_experts"] = True
json.dump(d, open(p, "w"), indent=2)
PY
log build; make -s -C csrc -j16 cuda ARCH=sm_90a > $O/build.log 2>&1 || { tail -20 $O/build.log; exit 1; }
log built
TB="--iters 200 --warmup 20 --rounds 3 --rotate 64 --energy-ms 0"
DSV3="--hidden 7168 --inter 2048 --experts 256 --topk 8"
(
  export CUDA_VISIBLE_DEVICES=0
  for c in 0 1; do
    echo "# check G=1 topk=1 compute=$c"
    VARIANTS=ep-persistent EXTRA="--tune ep-persistent:topk=1,compute=$c" TUNABLES=0 MODELS="tiny tiny-shared qwen3-30b-a3b deepseek-v2-lite-shared gpt-oss-20b olmoe-1b-7b" \
      TOKENS="1 4 16 64" DTYPES="bf16" csrc/check_gpu.sh sm_90a 2>&1 | grep -v "^ok " | tail -6
  done
  for k in 0 1; do
    timeout 60 $BIN --backend cuda --model qwen3-30b-a3b --tokens 1 --variant persistent-flat,ep-separate,ep-persistent --tune ep-persistent:topk=$k $TB > $O/t/q-g1-T1-k$k.json 2>$O/t/q-g1-T1-k$k.err || echo "rc=$? q T1 k$k"
    timeout 120 $BIN --backend cuda $DSV3 --tokens 1 --variant separate,ep-separate,ep-persistent --tune ep-persistent:topk=$k $TB > $O/t/dsv3-g1-T1-k$k.json 2>$O/t/dsv3-g1-T1-k$k.err || echo "rc=$? dsv3 T1 k$k"
  done
) > $O/t/log.txt 2>&1 &
A0=$!
(
  export CUDA_VISIBLE_DEVICES=1
  MC="compute-sanitizer --tool memcheck"
  i=0
  for a in "--model tiny --tokens 5 --tune ep-persistent:topk=1,compute=1" "--model tiny --tokens 5 --tune ep-persistent:topk=1,compute=1" "--model tiny-shared --tokens 17 --tune ep-persistent:topk=1,compute=0" \
           "--model tiny-shared --tokens 1 --tune ep-persistent:topk=1,compute=1" "--hidden 256 --inter 64 --experts 18 --topk 3 --tokens 1 --tune ep-persistent:topk=1"; do
    i=$((i+1)); timeout 100 $MC $BIN --backend cuda $a --variant ep-persistent --iters 2 --warmup 1 --rotate 2 --energy-ms 0 > $O/c/mc$i.out 2>&1
    echo "memcheck $i $a: rc=$? $(grep -E 'ERROR SUMMARY' $O/c/mc$i.out | tr '\n' ' ') pass=$(grep -o '"pass": *[a-z]*' $O/c/mc$i.out | head -1)"; done
  timeout 120 $BIN --backend cuda $DSV3 --tokens 8 --variant ep-persistent --iters 20 --warmup 5 --rotate 64 --energy-ms 0 --trace $O/c/dsv3-g1-T8.trace.json > $O/c/dsv3-g1-T8-trace.json 2>&1
  for T in 8 16 32; do for c in 0 1; do
    timeout 60 $BIN --backend cuda --model qwen3-30b-a3b --tokens $T --variant ep-separate,ep-persistent --tune ep-persistent:compute=$c $TB > $O/c/q-g1-T$T-c$c.json 2>$O/c/q-g1-T$T-c$c.err || echo "rc=$? q T$T c$c"
  done; done
) > $O/c/log.txt 2>&1 &
A1=$!
wait $A0; log "phase A GPU0 done"; cat $O/t/log.txt
wait $A1; log "phase A GPU1 done"; cat $O/c/log.txt
for c in 0 1; do
  [ $(left) -lt 250 ] && { echo "skip G2 check c$c: time"; continue; }
  log "check G=2 topk=1 compute=$c"
  VARIANTS=ep-persistent EXTRA="--gpus 2 --tune ep-persistent:topk=1,compute=$c" TUNABLES=0 \
    MODELS="tiny tiny-shared qwen3-30b-a3b" TOKENS="1 4" DTYPES="bf16" csrc/check_gpu.sh sm_90a > $O/ep/check-c$c.txt 2>&1
  grep -v "^ok " $O/ep/check-c$c.txt | tail -6
done
for T in 1 8; do for k in 0 1; do
  [ $(left) -lt 40 ] && { echo "skip G2 T$T k$k: time"; continue; }
  timeout 40 $BIN --backend cuda --model qwen3-30b-a3b --tokens $T --gpus 2 --variant ep-separate,ep-persistent \
    --tune ep-persistent:topk=$k $TB --trace $O/ep/G2-T$T-k$k.trace.json > $O/ep/G2-T$T-k$k.json 2>$O/ep/G2-T$T-k$k.err || echo "rc=$? G2 T$T k$k"
done; done
for T in 16 32; do for c in 0 1; do
  [ $(left) -lt 40 ] && { echo "skip G2 T$T c$c: time"; continue; }
  timeout 40 $BIN --backend cuda --model qwen3-30b-a3b --tokens $T --gpus 2 --variant ep-separate,ep-persistent --tune ep-persistent:compute=$c $TB > $O/ep/G2-T$T-c$c.json 2>$O/ep/G2-T$T-c$c.err || echo "rc=$? G2 T$T c$c"
done; done
for k in 0 1; do
  [ $(left) -lt 90 ] && { echo "skip G2 dsv3 k$k: time"; continue; }
  timeout 90 $BIN --backend cuda --gpus 2 $DSV3 --tokens 1 --variant ep-separate,ep-persistent --tune ep-persistent:topk=$k $TB > $O/ep/dsv3-G2-T1-k$k.json 2>$O/ep/dsv3-G2-T1-k$k.err || echo "rc=$? G2 dsv3 k$k"; done
log "phase B done"
python3 scripts/gpu-runs/summary.py $O/t/*.json $O/c/*.json $O/ep/*.json
for f in $O/c/dsv3-g1-T8.trace.json $O/ep/G2-T1-k1.trace.json; do
  [ -f $f ] && { echo "## $f"; python3 csrc/trace_summary.py $f 2>&1 | head -40; }; done > $O/traces.txt
tar -C /tmp -czf $OUT/r16.tgz r16
log end
