#!/usr/bin/env bash
# test_cpu.sh — build the CPU moe-bench and run every CPU variant on the presets
# small enough for a CPU (tiny: all dtypes and several token counts; qwen3 and
# the others: 1 token, --iters 3 --warmup 1), checking exit code 0, check.pass
# and the JSON shape (tunables with their source, energy null with a reason on
# the CPU); fp8 weights (scales per channel, per tensor, per 128 x 128 block) and shared experts; every value of
# the fused variant's tunable; plus the usage/tunable refusals and test-only behaviours. Plain bash + python3.
# Usage: csrc/test_cpu.sh [BUILD_DIR]   (also: make -C csrc check-cpu)
set -u
cd "$(dirname "$0")"
BUILD=${1:-build/cpu}
make -s cpu BUILD="$BUILD" >/dev/null || { echo "FAIL: build"; exit 1; }
BIN="$BUILD/moe-bench"
fails=0; n=0
VARIANTS=$("$BIN" --list | python3 -c 'import json,sys; print(",".join(v["name"] for v in json.load(sys.stdin)["table"]["variants"] if v["backend"] == "cpu"))')

validate() {  # stdin: JSON; $1: expected variant count
  python3 -c '
import json, sys
d = json.load(sys.stdin)
n = int(sys.argv[1])
assert d["schema"] == "moefarm.bench/1"
assert d["check"]["pass"] is True, d["check"]
assert len(d["results"]) == n
for r in d["results"]:
    c = r["check"]
    assert c["pass"] and not c["nan"] and c["experts_hit"] == c["experts"], c
    assert len(r["samples_us"]) == d["config"]["iters"] * d["config"]["rounds"]
    assert all(isinstance(x, (int, float)) and x > 0 for x in r["samples_us"])
    assert r["stats"]["median"] > 0 and r["bandwidth_gbps"] > 0
    assert r["energy"]["joules_per_forward"] is None and r["energy"]["reason"], r["energy"]
    for name, t in r["tunables"].items():
        assert t["source"] in ("flag", "tuning_table", "default", "heuristic") and isinstance(t["value"], int), (name, t)
    if d["config"]["gpus"] > 1:  # expert parallelism: bit for bit the same layer on one device
        assert r["ep"]["gpus"] == d["config"]["gpus"] and r["ep"]["single_device"]["equal"] is True, r["ep"]
    else:
        assert r["ep"] is None
assert d["bytes_per_iter"] > 0
assert d["config"]["fp8_scales"] == (sys.argv[2] if d["config"]["dtype"] == "fp8" else None), d["config"]
' "$1" "$2"
}

run() {  # run ARGS... : expect exit 0 and a passing JSON
  n=$((n+1))
  local out rc
  out=$("$BIN" "$@" 2>/tmp/moe-test-err.$$); rc=$?
  local nv; nv=$(python3 -c 'import sys; a=sys.argv[1:]; i=a.index("--variant"); print(len(a[i+1].split(",")))' "$@")
  local sc; sc=$(python3 -c 'import sys; a=sys.argv[1:]; print(a[a.index("--fp8-scales")+1] if "--fp8-scales" in a else "channel")' "$@")
  if [ $rc -ne 0 ] || ! echo "$out" | validate "$nv" "$sc" 2>/tmp/moe-test-val.$$; then
    echo "FAIL (rc=$rc): $BIN $*"; cat /tmp/moe-test-err.$$ /tmp/moe-test-val.$$ | head -5; fails=$((fails+1))
  else
    echo "ok: $BIN $*"
  fi
}

expect_rc() {  # expect_rc CODE ARGS...: exit code CODE and exactly one stderr line
  n=$((n+1))
  local want=$1; shift
  "$BIN" "$@" >/dev/null 2>/tmp/moe-test-err.$$; local rc=$?
  local lines; lines=$(wc -l </tmp/moe-test-err.$$)
  if [ $rc -ne "$want" ] || [ "$lines" -ne 1 ]; then
    echo "FAIL (rc=$rc, want $want, $lines stderr lines): $BIN $*"; fails=$((fails+1))
  else
    echo "ok (rc=$rc: $(cat /tmp/moe-test-err.$$)): $*"
  fi
}

for dt in bf16 fp16 fp32; do
  for T in 1 4 64; do
    run --model tiny --variant "$VARIANTS" --dtype $dt --tokens $T --iters 20 --warmup 2 --rounds 2
  done
done
run --model tiny --variant "$VARIANTS" --repeat-work 3 --rotate 2 --iters 5
run --hidden 128 --inter 64 --experts 8 --topk 2 --variant "$VARIANTS" --tokens 3 --iters 5
run --hidden 192 --inter 160 --experts 8 --topk 2 --variant "$VARIANTS" --tokens 9 --iters 3   # hidden not a power of two
for g in 1 2 4 8 16; do
  run --model tiny --variant fused --tune group=$g --tokens 17 --iters 3 --warmup 1
done
run --model tiny --variant "$VARIANTS" --tune fused:group=2 --no-tuning-table --energy-ms 0 --iters 3
run --model qwen3-30b-a3b --variant "$VARIANTS" --iters 3 --warmup 1
run --model olmoe-1b-7b --variant "$VARIANTS" --iters 3 --warmup 1 --dtype fp16
run --model deepseek-v2-lite --variant "$VARIANTS" --iters 3 --warmup 1 --tokens 2
# Expert parallelism over N simulated devices (--gpus N): each holds its own T tokens.
for G in 2 4; do
  run --model tiny --variant "$VARIANTS" --gpus $G --tokens 3 --iters 3 --warmup 1
done
run --model olmoe-1b-7b --variant "$VARIANTS" --gpus 8 --iters 2 --warmup 0 --dtype fp16
# fp8 weights (e4m3, per-output-channel scales) and shared experts, against the same fp64 oracle
for T in 1 4; do
  run --model tiny --variant "$VARIANTS" --dtype fp8 --tokens $T --iters 3 --warmup 1
  run --model tiny-shared --variant "$VARIANTS" --tokens $T --iters 3 --warmup 1
  run --model tiny-shared --variant "$VARIANTS" --dtype fp8 --tokens $T --iters 3 --warmup 1
done
run --hidden 192 --inter 160 --experts 8 --topk 2 --shared-experts 3 --shared-inter 40 --variant "$VARIANTS" --dtype fp16 --tokens 9 --iters 3
run --model qwen3-30b-a3b --variant "$VARIANTS" --dtype fp8 --iters 2 --warmup 1
run --model deepseek-v2-lite-shared --variant "$VARIANTS" --iters 2 --warmup 1
# The split combined with shared experts and fp8 (equal bit for bit to one device, checked inside the binary).
run --model tiny-shared --variant "$VARIANTS" --gpus 2 --dtype fp8 --tokens 3 --iters 3 --warmup 1
run --model tiny-shared --variant "$VARIANTS" --gpus 4 --tokens 2 --iters 3 --warmup 1
run --model tiny --variant "$VARIANTS" --gpus 4 --dtype fp8 --tokens 1 --iters 3 --warmup 1
# --fp8-scales tensor (one scale per matrix per expert) and block (128 x 128, the Qwen3-30B-A3B-FP8 checkpoint's):
# every CPU variant against the fp64 oracle, with shared experts, the split, and partial edge blocks (hidden 192 =
# 128 + 64, inter 160 = 128 + 32, shared_inter 40).
for sc in tensor block; do
  run --model tiny --variant "$VARIANTS" --dtype fp8 --fp8-scales $sc --tokens 4 --iters 3 --warmup 1
  run --model tiny-shared --variant "$VARIANTS" --dtype fp8 --fp8-scales $sc --tokens 3 --iters 3 --warmup 1
  run --hidden 192 --inter 160 --experts 8 --topk 2 --shared-experts 3 --shared-inter 40 --variant "$VARIANTS" --dtype fp8 --fp8-scales $sc --tokens 9 --iters 3
  run --model tiny-shared --variant "$VARIANTS" --gpus 2 --dtype fp8 --fp8-scales $sc --tokens 3 --iters 3 --warmup 1
done
run --model qwen3-30b-a3b --variant "$VARIANTS" --dtype fp8 --fp8-scales block --iters 2 --warmup 1
run --model tiny --variant "$VARIANTS" --dtype fp8 --fp8-scales channel --tokens 4 --iters 3 --warmup 1
# The default is channel, bit for bit: the same check errors and bytes as an explicit --fp8-scales channel; the
# other modes change the weights (and the bytes of their scales).
n=$((n+1))
det() { "$BIN" --model tiny-shared --variant "$VARIANTS" --dtype fp8 --tokens 3 --iters 1 --warmup 0 "$@" | python3 -c '
import json,sys; d=json.load(sys.stdin); print(d["bytes_per_iter"], [(r["check"]["rel_err"], r["check"]["max_abs_err"]) for r in d["results"]])'; }
d0=$(det); d1=$(det --fp8-scales channel); d2=$(det --fp8-scales tensor); d3=$(det --fp8-scales block)
if [ -n "$d0" ] && [ "$d0" = "$d1" ] && [ "$d0" != "$d2" ] && [ "$d0" != "$d3" ] && [ "$d2" != "$d3" ]; then echo "ok: --fp8-scales channel is the default"
else echo "FAIL: --fp8-scales default/channel/tensor/block: $d0 | $d1 | $d2 | $d3"; fails=$((fails+1)); fi
# The scales themselves against the unquantized weights, in the checkpoint's layout (the oracle reads the same
# scales as the variants, so it cannot see a layout error they share).
n=$((n+1))
if g++ -O2 -std=c++17 -pthread -Isrc tools/fp8_scales_check.cpp src/common.cpp -o "$BUILD/fp8_scales_check" && "$BUILD/fp8_scales_check" >/tmp/moe-test-fsc.$$; then
  echo "ok: $(tail -1 /tmp/moe-test-fsc.$$)"; else echo "FAIL: fp8_scales_check"; grep -m5 FAIL /tmp/moe-test-fsc.$$; fails=$((fails+1)); fi
rm -f /tmp/moe-test-fsc.$$

expect_rc 2 --model tiny --tokens 0
expect_rc 2 --model tiny --bogus-flag
expect_rc 2 --model tiny --variant nosuch
expect_rc 2 --model tiny --dtype int4
expect_rc 2 --hidden 256
expect_rc 2 --model tiny --tokens 5000
expect_rc 2 --model tiny --variant fused --tune group=3
expect_rc 2 --model tiny --variant reference --tune group=2
expect_rc 2 --model tiny --variant fused --tune group
expect_rc 2 --model tiny --variant fused --tune separate:group=2
expect_rc 2 --model tiny --gpus 3
expect_rc 2 --model tiny --gpus 0
expect_rc 3 --model tiny --test-output exit3
expect_rc 2 --model tiny --shared-experts 2                 # no --shared-inter
expect_rc 2 --model tiny --shared-inter 64                  # no --shared-experts
expect_rc 2 --model tiny --shared-experts 65 --shared-inter 64
expect_rc 2 --model tiny --dtype fp4
expect_rc 2 --model tiny --fp8-scales block                 # not fp8
expect_rc 2 --model tiny --dtype fp8 --fp8-scales row
expect_rc 2 --model tiny --dtype fp8 --fp8-scales

n=$((n+1))
if "$BIN" --model tiny --test-output garbage 2>/dev/null | python3 -c 'import json,sys; json.load(sys.stdin)' 2>/dev/null; then
  echo "FAIL: garbage output parsed as JSON"; fails=$((fails+1)); else echo "ok: --test-output garbage is not JSON"; fi
n=$((n+1))
if "$BIN" --model tiny --test-output partial 2>/dev/null | python3 -c 'import json,sys; json.load(sys.stdin)' 2>/dev/null; then
  echo "FAIL: partial output parsed as JSON"; fails=$((fails+1)); else echo "ok: --test-output partial is not JSON"; fi
n=$((n+1))
if "$BIN" --model tiny --test-output nan --iters 4 | python3 -c '
import json,sys; d=json.load(sys.stdin); s=d["results"][0]["samples_us"]
assert d["test"]["nan"] is True and None in s'; then echo "ok: --test-output nan gives null samples"; else echo "FAIL: nan"; fails=$((fails+1)); fi
n=$((n+1))
if "$BIN" --list | python3 -c '
import json,sys; d=json.load(sys.stdin)
assert d["schema"] == "moefarm.list/1" and d["build"]["backends"][0] == "cpu"
assert "tiny" in [p["name"] for p in d["table"]["presets"]]
assert d["table"] == json.load(open("variants.json"))'; then echo "ok: --list"; else echo "FAIL: --list"; fails=$((fails+1)); fi
n=$((n+1))
t0=$(date +%s%N); "$BIN" --model tiny --test-sleep-ms 300 --iters 2 >/dev/null; t1=$(date +%s%N)
if [ $(( (t1-t0)/1000000 )) -ge 300 ]; then echo "ok: --test-sleep-ms"; else echo "FAIL: --test-sleep-ms"; fails=$((fails+1)); fi
rm -f /tmp/moe-test-err.$$ /tmp/moe-test-val.$$
echo "test_cpu: $((n-fails))/$n passed"
[ $fails -eq 0 ]
