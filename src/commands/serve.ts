import { Collector } from '../collector/collector.js';
import { createRedis } from '../queue/connection.js';
import { databaseUrl } from '../config.js';
import { redactUrl } from '../util/redact.js';
import { onShutdown, withDb, withRedis } from './context.js';

export async function serve(): Promise<void> {
  await withRedis(() =>
    withDb(async (db) => {
      const connection = createRedis();
      connection.on('error', (e) => process.stderr.write(`collector: redis: ${e.message}\n`));
      const collector = new Collector({ db, connection, log: (l) => process.stderr.write(l + '\n') });
      process.stderr.write(`collector: writing results to ${redactUrl(databaseUrl())}\n`);
      await onShutdown(
        () => collector.close(),
        () => process.exit(130),
      );
      connection.disconnect();
      process.stderr.write(`collector: stopped (${collector.recorded} recorded, ${collector.duplicates} duplicates ignored)\n`);
    }),
  );
}
