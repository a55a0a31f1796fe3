// Bundles the CLI (dist/src/cli.js) and its pure-JS dependencies into one
// ESM file for hosts that have Node.js but no npm access (a GPU host with no
// network). better-sqlite3 stays outside: it is a native addon, carried as is.
import { build } from 'esbuild';

const outfile = process.argv[2] ?? 'bundle/cli.mjs';
await build({
  entryPoints: ['dist/src/cli.js'],
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'esm',
  outfile,
  external: ['better-sqlite3', 'pg-native'],
  // CommonJS dependencies call require(); give the ESM bundle one.
  banner: { js: "import { createRequire as __moefarmRequire } from 'node:module'; const require = __moefarmRequire(import.meta.url);" },
  logLevel: 'warning',
});
