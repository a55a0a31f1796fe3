/** Failures of a run that end it for good: reported as an outcome, never retried. */
import type { RunStatus } from '../src/schema/job.js';

export class PermanentRunError extends Error {
  override readonly name = 'PermanentRunError';
  constructor(
    readonly status: Exclude<RunStatus, 'done'>,
    message: string,
    readonly stdoutTail: string | null = null,
    readonly stderrTail: string | null = null,
    /** How long the binary that failed ran (ms), when one ran: the run's wall time, as a finished run records its binaries'. */
    readonly binaryMs: number | null = null,
  ) {
    super(message);
  }
}
