import { Collector } from '../collector/collector.js';
import { createRedis } from '../queue/connection.js';
import { databaseUrl } from '../config.js';
import { startHttpServer, type HttpServer } from '../http/server.js';
import { createLogger, type LogFormat } from '../util/log.js';
import { redactUrl } from '../util/redact.js';
import { onShutdown, withDb, withRedis } from './context.js';

export interface ServeOptions {
  /** Also serve the reports over HTTP on this port. */
  http?: number;
  /** Address the HTTP server binds (default 127.0.0.1). */
  host?: string;
  /** POST confirmed regressions to this webhook (notify/notifier.ts). */
  notify?: string;
  /** With notify: one message per finished sweep. */
  notifyDigest?: boolean;
  /** --log-format / MOEFARM_LOG_FORMAT (default pretty). */
  logFormat?: LogFormat;
}

export async function serve(opts: ServeOptions = {}): Promise<void> {
  const log = createLogger({ name: 'collector', ...(opts.logFormat ? { format: opts.logFormat } : {}) });
  await withRedis(() =>
    withDb(async (db) => {
      // The HTTP server first: when it cannot listen (port taken, unknown address) the command fails
      // before a collector has started, so nothing is left running.
      let http: HttpServer | null = null;
      if (opts.http !== undefined) {
        const host = opts.host ?? '127.0.0.1';
        http = await startHttpServer({ dbUrl: databaseUrl(), port: opts.http, host, log: (l) => log.error({ event: 'http' }, l) }).catch((err: unknown) => {
          throw new Error(`--http ${opts.http}: cannot listen on ${host}: ${(err as Error).message}`);
        });
        log.info({ event: 'http', url: http.url }, `http: reports at ${http.url}/`);
      }
      const connection = createRedis();
      connection.on('error', (e) => log.error({ reason: e.message }, `redis: ${e.message}`));
      let fatal: (err: Error) => void = () => {};
      const failed = new Promise<Error>((resolveFatal) => (fatal = resolveFatal));
      let notifier: import('../notify/notifier.js').Notifier | null = null;
      let notifyConn: ReturnType<typeof createRedis> | null = null;
      if (opts.notify !== undefined) {
        const { Notifier, webhookOrigin } = await import('../notify/notifier.js');
        notifyConn = createRedis();
        notifyConn.on('error', () => {}); // the collector's connection logs Redis errors
        notifier = new Notifier({ url: opts.notify, digest: opts.notifyDigest ?? false, dbUrl: databaseUrl(), redis: notifyConn, log });
        log.info({ event: 'notify', webhook: webhookOrigin(opts.notify), digest: opts.notifyDigest ?? false }, `notify: confirmed regressions go to ${webhookOrigin(opts.notify)}${opts.notifyDigest ? ' (one message per sweep)' : ''}`);
      }
      const n = notifier;
      const collector = new Collector({ db, connection, log, onFatal: (err) => fatal(err), ...(n ? { onSweepFinished: (id: string) => n.sweepFinished(id) } : {}) });
      log.info({ event: 'start', database: redactUrl(databaseUrl()) }, `writing results to ${redactUrl(databaseUrl())}`);
      const stop = async () => {
        try {
          await http?.close();
        } catch {
          /* stopping anyway */
        }
        await collector.close();
        await notifier?.close();
        notifyConn?.disconnect();
      };
      // A signal stops it gracefully; a fatal error (the database file gone) stops it and exits with the error.
      const err = await Promise.race([onShutdown(stop, () => process.exit(130)).then(() => null), failed]);
      if (err) {
        await stop();
        connection.disconnect();
        log.error({ event: 'stop', recorded: collector.recorded, duplicates: collector.duplicates }, `stopped (${collector.recorded} recorded, ${collector.duplicates} duplicates ignored); results not written stay in Redis`);
        throw err;
      }
      connection.disconnect();
      log.info({ event: 'stop', recorded: collector.recorded, duplicates: collector.duplicates }, `stopped (${collector.recorded} recorded, ${collector.duplicates} duplicates ignored)`);
    }),
  );
}
