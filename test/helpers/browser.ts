/**
 * The headless Chromium that the report tests drive through playwright-core.
 *
 * Which one, in order:
 * - MOEFARM_CHROMIUM=/path/to/chromium: that one (it must exist);
 * - /usr/bin/chromium (Debian's `chromium` package) when installed;
 * - otherwise, or with MOEFARM_CHROMIUM=bundled, the Chromium that the npm
 *   package @sparticuz/chromium carries inside itself (brotli-compressed in
 *   its bin/ folder), unpacked once into the test cache. Nothing is
 *   downloaded: the package's files came with `npm ci` from the registry.
 *
 * The global setup resolves it once and hands the path to the test files in
 * MOEFARM_CHROMIUM.
 */
import { existsSync, mkdtempSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { chromium, type Browser } from 'playwright-core';
import { TEST_CACHE } from './env.js';

const DEBIAN_CHROMIUM = '/usr/bin/chromium';

/**
 * Flags for a headless browser on a machine whose only network is loopback:
 * without the background-networking ones Chromium keeps trying to reach
 * Google's hosts. --no-sandbox: the tests run as root in CI.
 */
const FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];

/** The package's own folder and version (its exports do not include package.json; build/ folders carry stubs). */
function bundledPackage(): { dir: string; version: string } {
  const name = '@sparticuz/chromium';
  for (let dir = dirname(createRequire(import.meta.url).resolve(name)); dirname(dir) !== dir; dir = dirname(dir)) {
    const file = join(dir, 'package.json');
    if (!existsSync(file)) continue;
    const pkg = JSON.parse(readFileSync(file, 'utf8')) as { name?: unknown; version?: unknown };
    if (pkg.name === name && typeof pkg.version === 'string') return { dir, version: pkg.version };
  }
  throw new Error(`${name}: its package.json was not found`);
}

/**
 * Unpacks the npm package's Chromium into TEST_CACHE/chromium-<version>/ once.
 * The package unpacks into os.tmpdir() (it was made for serverless functions),
 * so TMPDIR points at a fresh folder while it works, and that folder is then
 * renamed into place: a concurrent run cannot see half a browser.
 */
async function bundledChromium(): Promise<string> {
  const pkg = bundledPackage();
  const final = join(TEST_CACHE, `chromium-${pkg.version}`);
  if (existsSync(join(final, 'chromium'))) return join(final, 'chromium');
  const work = mkdtempSync(join(TEST_CACHE, '.chromium-'));
  const saved = process.env['TMPDIR'];
  process.env['TMPDIR'] = work;
  try {
    const { default: Chromium } = await import('@sparticuz/chromium');
    await Chromium.executablePath(join(pkg.dir, 'bin'));
  } finally {
    if (saved === undefined) delete process.env['TMPDIR'];
    else process.env['TMPDIR'] = saved;
  }
  try {
    renameSync(work, final);
  } catch {
    rmSync(work, { recursive: true, force: true }); // another run put it there first
  }
  const exe = join(final, 'chromium');
  if (!existsSync(exe)) throw new Error(`@sparticuz/chromium ${pkg.version}: unpacked, but ${exe} is missing`);
  return exe;
}

/** The Chromium executable to use, by the rules at the top of this file; `from` says which rule chose it. */
export async function resolveChromium(): Promise<{ path: string; from: string }> {
  const wanted = process.env['MOEFARM_CHROMIUM'];
  if (wanted && wanted !== 'bundled') {
    if (!existsSync(wanted)) throw new Error(`MOEFARM_CHROMIUM=${wanted}: no such file (unset it to use ${DEBIAN_CHROMIUM} or the npm package's Chromium, or set it to "bundled")`);
    return { path: wanted, from: 'MOEFARM_CHROMIUM' };
  }
  if (!wanted && existsSync(DEBIAN_CHROMIUM)) return { path: DEBIAN_CHROMIUM, from: 'the Debian package' };
  return { path: await bundledChromium(), from: 'the npm package @sparticuz/chromium' };
}

export async function launchChromium(): Promise<Browser> {
  const { path } = await resolveChromium();
  return chromium.launch({ executablePath: path, args: FLAGS });
}
