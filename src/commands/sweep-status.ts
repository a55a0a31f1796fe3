import { setTimeout as sleep } from 'node:timers/promises';
import { renderProgress, sweepProgress } from '../results/progress.js';
import { withDb, withRedis } from './context.js';

export async function sweepStatus(id: string, opts: { watch?: boolean; json?: boolean }): Promise<void> {
  await withRedis((redis) =>
    withDb(async (db) => {
      const tty = process.stdout.isTTY && !opts.json;
      let lastLines = 0;
      for (;;) {
        const s = await sweepProgress(db, redis, id);
        if (opts.json) {
          process.stdout.write(JSON.stringify(s) + '\n');
        } else {
          const text = renderProgress(s);
          if (tty && lastLines) process.stdout.write(`\x1b[${lastLines}A\x1b[J`);
          process.stdout.write(text + '\n');
          lastLines = text.split('\n').length;
        }
        if (!opts.watch || s.finished) return;
        await sleep(1000);
      }
    }, { mustExist: true }),
  );
}
