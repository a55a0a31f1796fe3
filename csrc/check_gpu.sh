#!/usr/bin/env bash
# check_gpu.sh — on a GPU host: build the CUDA moe-bench and run every GPU
# variant's correctness check (against the fp64 CPU oracle) over the presets
# and token counts below, then every tunable of every variant at a range of its
# values (a short timing run rides along; this is a correctness gate, not a
# benchmark). Variants and presets come from the binary's --list (the variant
# table); nothing here lists them again. A preset runs with the variants whose
# row takes it (limits, dtypes, shared experts), as the coordinator would.
# Usage: csrc/check_gpu.sh [ARCH=sm_90a] [BUILD_DIR]   (also: make -C csrc check-gpu)
# Env:   MODELS="name ..." TOKENS="1 4 16 64" DTYPES="bf16 fp16"   (default: every preset)
#        BIG_TOKENS="1 16"   token counts for the large presets (weights over 3 GB)
#        TUNABLES=0          skip the tunable sweep;  EXTRA="..." more moe-bench flags
#        VARIANTS="a,b"      only these CUDA variants (default: every one);  TUNE_DTYPE=bf16  the tunable sweep's dtype
#        TUNE_SHAPES="ARGS;ARGS"  shapes of the tunable sweep (default: Qwen3 T=4; hidden 2880 T=9)
#        VARIANTS="name,..."  only these CUDA variants (presets and tunable sweep); default: every one
#        FP8_SCALES=channel|tensor|block  what an fp8 scale covers in the fp8 runs (--fp8-scales; default: the
#                            binary's, channel); variants whose row does not take the mode are left out as for a dtype
set -u
cd "$(dirname "$0")"
ARCH=${1:-sm_90a}
BUILD=${2:-build/cuda-$ARCH}
make -s cuda ARCH="$ARCH" BUILD="$BUILD" >/dev/null || { echo "FAIL: build"; exit 1; }
BIN="$BUILD/moe-bench"
LIST=$("$BIN" --list)
q() { echo "$LIST" | python3 -c "import json,sys; d=json.load(sys.stdin)['table']; $1"; }
V=$(q 'print(",".join(v["name"] for v in d["variants"] if v["backend"] == "cuda"))')
ONLY=${VARIANTS:-$V}
for v in ${ONLY//,/ }; do case ",$V," in *",$v,"*) ;; *) echo "FAIL: VARIANTS names $v, not a CUDA variant of this build ($V)"; exit 2;; esac; done
ALL_MODELS=$(q 'print(" ".join(p["name"] for p in d["presets"]))')
MODELS=${MODELS:-$ALL_MODELS}
TOKENS=${TOKENS:-"1 4 16 64"}
DTYPES=${DTYPES:-"bf16 fp16"}
BIG_TOKENS=${BIG_TOKENS:-"1 16"}
TUNE_SHAPES=${TUNE_SHAPES:-"--model qwen3-30b-a3b --tokens 4;--hidden 2880 --inter 1000 --experts 24 --topk 3 --tokens 9"}
SC=${FP8_SCALES:-channel}
# --fp8-scales for a run of dtype $1 (fp8 only, and only when FP8_SCALES is given)
scales() { if [ "$1" = fp8 ] && [ -n "${FP8_SCALES:-}" ]; then echo "--fp8-scales $FP8_SCALES"; fi; }
ERR=$(mktemp)
trap 'rm -f "$ERR"' EXIT
fails=0; n=0

# run LABEL ARGS...: exit 0, every variant's check passes, every expert hit (or, with
# REFUSABLE=TEXT in the environment, exit 2 with TEXT in the message).
run() {
  local label=$1; shift
  n=$((n+1))
  local out rc line verdict
  out=$(timeout 600 "$BIN" --backend cuda --iters 5 --warmup 2 --rotate 8 --energy-ms 0 ${EXTRA:-} "$@" 2>"$ERR"); rc=$?
  line=$(echo "$out" | python3 -c '
import json, sys
d = json.load(sys.stdin)
print(" ".join("%s:%s(%.2e,%d cases,%d/%d experts%s)" % (r["variant"], "ok" if r["check"]["pass"] else "FAIL",
      r["check"]["rel_err"] if r["check"]["rel_err"] is not None else float("nan"), r["check"]["cases"],
      r["check"]["experts_hit"], r["check"]["experts"],
      "".join(",%s=%d" % (k, t["value"]) for k, t in r["tunables"].items() if t["source"] == "flag")) for r in d["results"]))
print("PASS" if d["check"]["pass"] and all(r["check"]["experts_hit"] == r["check"]["experts"] for r in d["results"]) else "FAIL")' 2>&1)
  verdict=$(echo "$line" | tail -1)
  if [ $rc -eq 2 ] && [ -n "${REFUSABLE:-}" ] && grep -q "$REFUSABLE" "$ERR"; then
    echo "ok $label refused: $(cat "$ERR")"
  elif [ $rc -ne 0 ] || [ "$verdict" != "PASS" ]; then
    fails=$((fails+1)); echo "FAIL rc=$rc $label: $(echo "$line" | head -1) $(head -c 400 "$ERR")"
  else
    echo "ok $label: $(echo "$line" | head -1)"
  fi
}
# refuse LABEL ARGS...: exit 2 with one stderr line (a refusal the table cannot know: device limits)
refuse() {
  local label=$1; shift
  n=$((n+1))
  "$BIN" --backend cuda "$@" >/dev/null 2>"$ERR"; local rc=$?
  if [ $rc -eq 2 ] && [ "$(wc -l <"$ERR")" -eq 1 ]; then echo "ok $label refused: $(cat "$ERR")"
  else fails=$((fails+1)); echo "FAIL $label: rc=$rc, want 2: $(head -c 300 "$ERR")"; fi
}

# The CUDA variants whose table row takes preset $1 at T=$2 in dtype $3 (limits, dtypes, shared experts: the
# rule of unsupportedReason); the others refuse it by design and are left out of that run.
takes() {
  q "
p = [p for p in d['presets'] if p['name'] == '$1'][0]
req = dict(hidden=p['hidden'], inter=p['inter'], experts=p['experts'], topk=p['topk'], tokens=$2)
def ok(lim, f, x):
    l = lim.get(f) or {}
    return x >= l.get('min', x) and x <= l.get('max', x) and x % l.get('multiple_of', 1) == 0 and (not l.get('power_of_two') or x & (x - 1) == 0)
only = '$ONLY'.split(',')
print(','.join(v['name'] for v in d['variants'] if v['backend'] == 'cuda' and v['name'] in only and '$3' in v['dtypes']
      and all(ok(d['limits'], f, x) and ok(v['limits'], f, x) for f, x in req.items())
      and (not p.get('shared_experts') or v.get('shared_experts'))
      and ('$3' != 'fp8' or '$SC' in v.get('fp8_scales', ['channel']))))"
}
for m in $MODELS; do
  big=$(q "p=[p for p in d['presets'] if p['name']=='$m'][0]; print(1 if p['experts']*3*p['inter']*p['hidden']*2 > 3e9 else 0)")
  toks=$TOKENS; [ "$big" = 1 ] && toks=$BIG_TOKENS
  for dt in $DTYPES; do
    for T in $toks; do
      vm=$(takes "$m" "$T" "$dt")
      if [ -z "$vm" ]; then echo "-- $m $dt T=$T: no CUDA variant takes it"; continue; fi
      run "$m $dt$([ "$dt" = fp8 ] && [ -n "${FP8_SCALES:-}" ] && echo "/$SC") T=$T" --model "$m" --dtype "$dt" $(scales "$dt") --tokens "$T" --variant "$vm"
    done
  done
done

if [ "${TUNABLES:-1}" != 0 ]; then
  # Every tunable of every variant at its listed values (ranges: min, a middle value, max up to
  # 1024), the variants sharing a (tunable, value) in one process, on Qwen3-30B-A3B at T=4 and on
  # an odd shape (hidden 2880 as gpt-oss, T=9). A value the shape or device cannot take must be
  # refused with exit 2 naming it.
  PLAN=$(CHECK_ONLY=$ONLY CHECK_TUNE_DTYPE=${TUNE_DTYPE:-bf16} CHECK_SC=$SC q '
import os
only, tune_dtype, sc = os.environ["CHECK_ONLY"].split(","), os.environ["CHECK_TUNE_DTYPE"], os.environ["CHECK_SC"]
groups = {}
for v in d["variants"]:
    if v["backend"] != "cuda" or v["name"] not in only or tune_dtype not in v["dtypes"]: continue
    if tune_dtype == "fp8" and sc not in v.get("fp8_scales", ["channel"]): continue
    for name, t in v["tunables"].items():
        if "values" in t: vals = t["values"]
        else:
            m = t.get("multiple_of", 1); hi = min(t["max"], 1024); mid = (t["min"] + hi) // 2 // m * m
            vals = sorted({t["min"], mid, hi})
        for x in vals: groups.setdefault((name, x), []).append(v["name"])
for (name, x), vs in groups.items(): print(",".join(vs), name, x)')
  while read -r vars name val; do
    [ -z "$vars" ] && continue
    IFS=';' read -ra shapes <<< "$TUNE_SHAPES"
    for shape in "${shapes[@]}"; do
      REFUSABLE="tunable $name=$val" run "$name=$val [$shape] $vars" $shape --dtype "${TUNE_DTYPE:-bf16}" $(scales "${TUNE_DTYPE:-bf16}") --variant "$vars" --tune "$name=$val"
    done
  done <<< "$PLAN"
  case ",$ONLY," in *,persistent-splitk,*)
    refuse "splitk blocks_per_sm=4 threads=512" --model qwen3-30b-a3b --variant persistent-splitk --tune threads=512,blocks_per_sm=4;; esac
fi

echo "check_gpu: $((n-fails))/$n configurations passed (variants: $ONLY)"
[ $fails -eq 0 ]
