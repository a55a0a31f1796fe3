#!/usr/bin/env bash
# End to end on a GPU host with no Node.js, no Redis and no network, from what
# scripts/gpu-host-bundle.sh packed into .device-carry/: Redis, the collector
# into SQLite, one CUDA worker (GPU 0, or the GPUS given; WITHOUT clock or power permission:
# the host's settings are never changed), the sweeps given (default
# sweeps/gpu-env.yaml; several may be named: all are submitted at once, the one worker runs them in
# turn), then `moefarm demo` (CUDA backend; SKIP_DEMO=1 skips it). Everything it
# prints and the databases go to $OUT (or ./e2e-out); each sweep's compare, list and report go to
# $OUT/<sweep file name>/. The sweeps' sources travel as bundles through Redis like anywhere else;
# `dir:` builds are relative to the worktree root (for sweeps/ab-h100.yaml:
# .device-carry/ab-base/csrc against csrc/). WAIT_S bounds the wait for all of them (480).
set -uo pipefail
root=$(pwd)
out=${OUT:-$root/e2e-out}
mkdir -p "$out"
sweeps=("${@:-sweeps/gpu-env.yaml}")
B=$(mktemp -d /tmp/moefarm-host.XXXX)
xz -dc .device-carry/node.xz > "$B/node" && chmod +x "$B/node"
mkdir -p "$B/redis" "$B/app"
tar -C "$B/redis" -xJf .device-carry/redis.tar.xz
tar -C "$B/app" -xJf .device-carry/app.tar.xz
export PATH="$B:/usr/local/cuda/bin:$PATH"
export LD_LIBRARY_PATH="$B/redis/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
"$B/redis/usr/bin/redis-server" --port 6399 --bind 127.0.0.1 --daemonize yes --save '' --appendonly no --dir "$B" --logfile "$B/redis.log"
sleep 0.5
export REDIS_URL=redis://127.0.0.1:6399 MOEFARM_CACHE="$B/cache" MOEFARM_CSRC="$root/csrc" DATABASE_URL="file:$out/farm.db"
M=("$B/node" "$B/app/bundle/cli.mjs")
log() { echo "== $(date +%T) $*"; }

log "nvidia-smi (read-only)"; nvidia-smi --query-gpu=name,uuid,driver_version,clocks.sm,clocks.max.sm,power.limit --format=csv
"${M[@]}" serve >"$out/collector.log" 2>&1 &
collector=$!
# POOL and GPUS name the worker's pool and its GPUs (default: pool h100-e2e, GPU 0; GPUS=all for one worker
# owning every GPU of the host, as the multi-GPU sweeps want).
"${M[@]}" worker --pool "${POOL:-h100-e2e}" --backend cuda $([ -n "${GPUS:-}" ] && echo "--gpus $GPUS" || echo "--gpu 0") --arch sm_90a >"$out/worker.log" 2>&1 &
worker=$!
sleep 4
log "moefarm workers"; "${M[@]}" workers | tee "$out/workers.txt"
ids=()
for sweep in "${sweeps[@]}"; do
  log "submit $sweep"
  ids+=("$("${M[@]}" sweep submit "$root/$sweep" --json | tee -a "$out/submit.json" | sed -n 's/.*"sweepId":"\([^"]*\)".*/\1/p')")
done
deadline=$(( $(date +%s) + ${WAIT_S:-480} ))
for i in "${!sweeps[@]}"; do
  while [ "$(date +%s)" -lt "$deadline" ]; do
    "${M[@]}" sweep status "${ids[$i]}" --json > "$out/status.json" 2>/dev/null
    grep -q '"finished":true' "$out/status.json" && break
    sleep 2
  done
done
for i in "${!sweeps[@]}"; do
  id=${ids[$i]}
  d="$out/$(basename "${sweeps[$i]}" .yaml)"
  mkdir -p "$d"
  log "status ${sweeps[$i]}"; "${M[@]}" sweep status "$id" | tee "$d/status.txt"
  log "compare ${sweeps[$i]}"; "${M[@]}" results compare --sweep "$id" | tee "$d/compare.txt"
  "${M[@]}" results compare --sweep "$id" --by-condition > "$d/compare-by-condition.txt"
  "${M[@]}" results list --sweep "$id" --limit 200 > "$d/list.txt"
  "${M[@]}" results list --sweep "$id" --limit 200 --json > "$d/list.json"
  "${M[@]}" results compare --sweep "$id" --csv > "$d/compare.csv"
  "${M[@]}" report --sweep "$id" -o "$d/report.html"
  if grep -q '^  tune:' "$root/${sweeps[$i]}"; then
    # A tuning sweep (matrix.tune): the decisions, and the winners written into a copy of the tuning table.
    # The winners go into the table of this host's GPU model (TUNE_TABLE overrides): entries are keyed by the
    # device name the binary reports, so an H200's would be misfiled in the H100's table.
    mkdir -p "$d/tuning" && cp "$root"/csrc/tuning/*.json "$d/tuning/"
    gpu=$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1)
    case "$gpu" in *H100*) table=h100-sxm.json ;; *H200*) table=h200.json ;; *) table=$(echo "$gpu" | tr 'A-Z ' 'a-z-' | tr -cd 'a-z0-9-').json ;; esac
    log "tune ${sweeps[$i]} -> tuning/${TUNE_TABLE:-$table}"; "${M[@]}" tune --sweep "$id" --out "$d/tuning/${TUNE_TABLE:-$table}" | tee "$d/tune.txt"
  fi
done
kill -TERM "$worker" "$collector"; wait "$worker" "$collector"
log "worker log"; tail -20 "$out/worker.log"

if [ -z "${SKIP_DEMO:-}" ]; then
  log "moefarm demo (CUDA backend, its own database)"
  DATABASE_URL="file:$out/demo.db" "${M[@]}" demo 2>&1 | tee "$out/demo.txt" | tail -25
fi
"$B/redis/usr/bin/redis-cli" -p 6399 shutdown nosave >/dev/null 2>&1
log "done"
