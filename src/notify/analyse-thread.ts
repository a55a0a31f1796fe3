/**
 * The notifier's analysis, off the collector's event loop: given a finished
 * sweep, it reads the database and runs the statistics (comparison, history,
 * run-level tests: bootstraps of 2,000 resamples) in this worker thread with
 * its own connection, and answers with the confirmed regressions
 * (notify/regressions.ts). The collector only hands it a sweep id.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { openDb } from '../db/client.js';
import { findRegressions, type SweepRegressions } from './regressions.js';

export interface AnalyseMessage {
  id: number;
  sweepId: string;
}

export type AnalyseReply = { id: number; result: SweepRegressions } | { id: number; error: string };

const port = parentPort;
if (!port) throw new Error('analyse-thread.js runs as a worker thread of the notifier');
const { dbUrl } = workerData as { dbUrl: string };
const db = await openDb({ url: dbUrl, migrate: false });

port.on('message', (m: AnalyseMessage) => {
  void findRegressions(db, m.sweepId).then(
    (result) => port.postMessage({ id: m.id, result } satisfies AnalyseReply),
    (err: unknown) => port.postMessage({ id: m.id, error: (err as Error).message ?? String(err) } satisfies AnalyseReply),
  );
});
