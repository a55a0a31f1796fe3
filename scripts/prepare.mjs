/**
 * npm's `prepare` step: build (Prisma clients, TypeScript) after `npm ci` or
 * `npm install` in the checkout, for `npm pack`, and for a global install.
 *
 * Not again when npm only links this checkout somewhere else and it is built
 * already: `npx moefarm` inside the checkout installs the checkout itself into
 * npx's cache (npm 11 runs a project's own bin that way), and `npm link`
 * links it globally; both run `prepare`. Building there made the first
 * `npx moefarm` take 49-71 s on this project's 2-core machine under load
 * (10-14 s on a quiet one); it now takes the time npm needs to start.
 * After changing the sources, `npm run build` as always.
 */
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execFileSync } from 'node:child_process';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const linkingOnly = ['exec', 'link'].includes(process.env['npm_command'] ?? '');
if (linkingOnly && existsSync(join(root, 'dist', 'src', 'cli.js'))) {
  process.stderr.write(`moefarm: already built; npm ${process.env['npm_command']} links this checkout as it is (npm run build after changing the sources)\n`);
} else {
  execFileSync(process.platform === 'win32' ? 'npm.cmd' : 'npm', ['run', 'build'], { cwd: root, stdio: 'inherit' });
}
