/**
 * The few error types the CLI maps to exit codes. Handlers throw; only
 * cli.ts turns an error into a message and an exit code.
 */

/** Bad input from the user (sweep file, flags): exit code 2. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
  readonly exitCode = 2;
}

/** A service the command needs is not there (Redis, the database): exit code 3. */
export class ServiceError extends Error {
  override readonly name = 'ServiceError';
  readonly exitCode = 3;
}

/** Any other deliberate failure with a chosen exit code. */
export class ExitError extends Error {
  override readonly name = 'ExitError';
  constructor(
    message: string,
    readonly exitCode: number,
  ) {
    super(message);
  }
}

export function exitCodeOf(err: unknown): number {
  if (err instanceof UsageError || err instanceof ServiceError || err instanceof ExitError) return err.exitCode;
  return 1;
}
