#!/usr/bin/env bash
# GPU run 23 (4-GPU host): ep-persistent route=1 (T = 1: tagged logits, no router grid barrier) and dispatch=1
# (block 0 alone sends the rows when they are <= 32 KiB, no arrival chain), both defaults as submitted, checked at
# G = 1, 2, 4 (both fence values), memcheck; then by hand each (route, dispatch) pair in its own process, alternated
# (Qwen3 T = 1 on 1, 2, 4 GPUs; DeepSeek-V3's shape T = 1 on 2), traces; the H200's copy bandwidth for the floor;
# the G = 2 defaults check that run 22 lost to the make race; then the farm, Qwen3 T = 1 on 1, 2, 4 GPUs.
# Output $OUT/r23.tgz.
set -u
START=$(date +%s)
O=/tmp/r23; mkdir -p $O/c $O/m $O/t
B=csrc/build/cuda-sm_90a; BIN=$B/moe-bench
log() { echo "== $(date +%T) [+$(( $(date +%s) - START ))s] $*"; }
nvidia-smi --query-gpu=index,name,uuid,driver_version,clocks.sm,clocks.max.sm,power.limit,temperature.gpu --format=csv | tee $O/smi.txt
log build; make -s -C csrc -j32 cuda ARCH=sm_90a > $O/build.log 2>&1 || { tail -20 $O/build.log; exit 1; }
nvcc -O3 -gencode arch=compute_90a,code=sm_90a csrc/tools/copy_bw.cu -o /tmp/copy_bw >> $O/build.log 2>&1
log built
SMALL="--hidden 2048 --inter 64 --experts 16 --topk 4 --shared-experts 2 --shared-inter 32"
( export CUDA_VISIBLE_DEVICES=0
  VARIANTS=ep-separate,ep-persistent TUNABLES=0 MODELS="tiny tiny-shared qwen3-30b-a3b deepseek-v2-lite-shared olmoe-1b-7b" TOKENS="1 3 8" DTYPES="bf16 fp16" \
    csrc/check_gpu.sh sm_90a > $O/c/g1.txt 2>&1
  VARIANTS=ep-persistent EXTRA="--tune ep-persistent:fence=0" TUNABLES=0 MODELS="tiny qwen3-30b-a3b" TOKENS="1 3" DTYPES="bf16" csrc/check_gpu.sh sm_90a > $O/c/g1-f0.txt 2>&1 ) &
( export CUDA_VISIBLE_DEVICES=1
  MC="compute-sanitizer --tool memcheck"; i=0
  while read -r a; do
    i=$((i+1)); timeout 90 $MC $BIN --backend cuda $a --variant ep-persistent --iters 2 --warmup 1 --rotate 2 --energy-ms 0 > $O/m/mc$i.out 2>&1
    echo "memcheck $i $a: rc=$? $(grep -E 'ERROR SUMMARY' $O/m/mc$i.out | tr '\n' ' ') pass=$(grep -o '"pass": *[a-z]*' $O/m/mc$i.out | head -1)"
  done <<LIST
--model tiny --tokens 1
--model tiny --tokens 1
$SMALL --tokens 1
--model tiny-shared --tokens 1 --tune ep-persistent:compute=0
--model tiny --tokens 6
LIST
  /tmp/copy_bw 4 20 > $O/m/copy_bw.txt 2>&1
) > $O/m/log.txt 2>&1 &
( export CUDA_VISIBLE_DEVICES=2,3
  VARIANTS=ep-separate,ep-persistent EXTRA="--gpus 2" TUNABLES=0 MODELS="tiny-shared qwen3-30b-a3b deepseek-v2-lite-shared" TOKENS="1 2 8 64" DTYPES="bf16" \
    csrc/check_gpu.sh sm_90a > $O/c/g2.txt 2>&1
  VARIANTS=ep-persistent EXTRA="--gpus 2 --tune ep-persistent:fence=0" TUNABLES=0 MODELS="qwen3-30b-a3b" TOKENS="1 2" DTYPES="bf16" csrc/check_gpu.sh sm_90a > $O/c/g2-f0.txt 2>&1 ) &
wait
log "G=1, G=2 checks"; for f in $O/c/*.txt; do echo "# $f"; grep -v "^ok " $f | tail -4; done; cat $O/m/log.txt; tail -3 $O/m/copy_bw.txt
VARIANTS=ep-separate,ep-persistent EXTRA="--gpus 4" TUNABLES=0 MODELS="tiny-shared qwen3-30b-a3b" TOKENS="1 2 8" DTYPES="bf16" csrc/check_gpu.sh sm_90a > $O/c/g4.txt 2>&1
log "G=4 checks"; grep -v "^ok " $O/c/g4.txt | tail -4
TB="--iters 200 --warmup 20 --rounds 3 --rotate 64 --energy-ms 0"
run() {  # NAME GPUS ARGS...
  local name=$1 g=$2; shift 2
  timeout 120 $BIN --backend cuda --gpus $g "$@" $TB > $O/t/$name.json 2> $O/t/$name.err || echo "rc=$? $name"
}
for rep in 1 2; do for g in 1 2; do for rd in 0,0 1,0 0,1 1,1; do
  run q-G$g-T1-rd${rd/,/}-$rep $g --model qwen3-30b-a3b --tokens 1 --variant ep-persistent --tune ep-persistent:route=${rd%,*},dispatch=${rd#*,}
done; done; done
for rep in 1 2; do for rd in 0,0 1,1; do
  run q-G4-T1-rd${rd/,/}-$rep 4 --model qwen3-30b-a3b --tokens 1 --variant ep-persistent --tune ep-persistent:route=${rd%,*},dispatch=${rd#*,}
done; done
for rd in 0,0 1,1; do run q-G2-T1-rd${rd/,/}-trace 2 --model qwen3-30b-a3b --tokens 1 --variant ep-persistent --tune ep-persistent:route=${rd%,*},dispatch=${rd#*,} --trace $O/t/q-G2-T1-rd${rd/,/}.trace.json; done
for rd in 0,0 1,1; do run dsv3-G2-T1-rd${rd/,/} 2 --hidden 7168 --inter 2048 --experts 256 --topk 8 --tokens 1 --variant ep-persistent --tune ep-persistent:route=${rd%,*},dispatch=${rd#*,}; done
log "by hand"
python3 scripts/gpu-runs/summary.py $O/t/*.json
for f in $O/t/*.trace.json; do echo "## $f"; python3 csrc/trace_summary.py $f 2>&1 | grep -E "span|router|topk|dispatch|wait:ep-peer-tokens"; done > $O/traces.txt
cat $O/traces.txt
log farm
OUT=$O/farm WAIT_S=${WAIT_S:-200} GPUS=all POOL=gpu4 SKIP_DEMO=1 timeout 240 bash scripts/gpu-host-e2e.sh sweeps/ep-qwen3-t1-4gpu.yaml 2>&1 | grep -v "INFO: worker" | tail -25
rm -f $O/farm/*.db-*; tar -C /tmp -czf $OUT/r23.tgz r23
log end
