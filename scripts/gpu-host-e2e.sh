#!/usr/bin/env bash
# End to end on a GPU host with no Node.js, no Redis and no network, from what
# scripts/gpu-host-bundle.sh packed into .device-carry/: Redis, the collector
# into SQLite, one CUDA worker for GPU 0 (WITHOUT clock or power permission:
# the host's settings are never changed), the sweep given (default
# sweeps/gpu-env.yaml), then `moefarm demo` (CUDA backend; SKIP_DEMO=1 skips it). Everything it
# prints and the databases go to $OUT (or ./e2e-out). The sweep's sources travel as bundles
# through Redis like anywhere else; `dir:` builds are relative to the worktree root (for
# sweeps/ab-h100.yaml: .device-carry/ab-base/csrc against csrc/). WAIT_S bounds the wait (480).
set -uo pipefail
root=$(pwd)
out=${OUT:-$root/e2e-out}
mkdir -p "$out"
sweep=${1:-sweeps/gpu-env.yaml}
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
"${M[@]}" worker --pool h100-e2e --backend cuda --gpu 0 --arch sm_90a >"$out/worker.log" 2>&1 &
worker=$!
sleep 4
log "moefarm workers"; "${M[@]}" workers | tee "$out/workers.txt"
log "submit $sweep"
id=$("${M[@]}" sweep submit "$root/$sweep" --json | tee "$out/submit.json" | sed -n 's/.*"sweepId":"\([^"]*\)".*/\1/p')
for _ in $(seq $(( ${WAIT_S:-480} / 2 ))); do
  "${M[@]}" sweep status "$id" --json > "$out/status.json" 2>/dev/null
  grep -q '"finished":true' "$out/status.json" && break
  sleep 2
done
log "status"; "${M[@]}" sweep status "$id" | tee "$out/status.txt"
log "compare"; "${M[@]}" results compare --sweep "$id" | tee "$out/compare.txt"
"${M[@]}" results compare --sweep "$id" --by-condition | tee "$out/compare-by-condition.txt"
log "list"; "${M[@]}" results list --sweep "$id" --limit 100 | tee "$out/list.txt"
if grep -q '^  tune:' "$root/$sweep"; then
  # A tuning sweep (matrix.tune): the decisions, and the winners written into a copy of the tuning table.
  mkdir -p "$out/tuning" && cp "$root"/csrc/tuning/*.json "$out/tuning/"
  log "tune"; "${M[@]}" tune --sweep "$id" --out "$out/tuning/h100-sxm.json" | tee "$out/tune.txt"
fi
"${M[@]}" results list --sweep "$id" --limit 100 --json > "$out/list.json"
"${M[@]}" results compare --sweep "$id" --csv > "$out/compare.csv"
"${M[@]}" report --sweep "$id" -o "$out/report.html"
kill -TERM "$worker" "$collector"; wait "$worker" "$collector"
log "worker log"; tail -20 "$out/worker.log"

if [ -z "${SKIP_DEMO:-}" ]; then
  log "moefarm demo (CUDA backend, its own database)"
  DATABASE_URL="file:$out/demo.db" "${M[@]}" demo 2>&1 | tee "$out/demo.txt" | tail -25
fi
"$B/redis/usr/bin/redis-cli" -p 6399 shutdown nosave >/dev/null 2>&1
log "done"
