/**
 * The worker's and the collector's logs: one structured line per event
 * (pino), human-readable by default (pino-pretty, one line each, coloured on a
 * terminal), JSON lines with `--log-format json` or MOEFARM_LOG_FORMAT=json.
 * Both go to stderr: stdout is a command's output. Every string that reaches
 * a line passes through redactText first, so a Redis or database URL with a
 * password in a message, a field or an error never shows it.
 */
import { isatty } from 'node:tty';
import { pino, type DestinationStream, type Logger } from 'pino';
import { prettyFactory } from 'pino-pretty';
import { redactText } from './redact.js';

export const LOG_FORMATS = ['pretty', 'json'] as const;
export type LogFormat = (typeof LOG_FORMATS)[number];

/** What the worker and the collector log through (a pino Logger is one). */
export interface Log {
  info(fields: object, msg: string): void;
  warn(fields: object, msg: string): void;
  error(fields: object, msg: string): void;
}

/** Logs nothing: for tests and embedded uses that report otherwise. */
export const silentLog: Log = { info: () => {}, warn: () => {}, error: () => {} };

export interface LoggerOptions {
  /** Default pretty. */
  format?: LogFormat;
  /** The component: `worker`, `collector`, `http`. */
  name: string;
  /** Lowest level written (default info). */
  level?: 'debug' | 'info' | 'warn' | 'error';
  /** Where lines go (default stderr, written synchronously so nothing is lost when the process exits). */
  write?: (line: string) => void;
}

export function createLogger(opts: LoggerOptions): Logger {
  const write = opts.write ?? ((line: string) => process.stderr.write(line));
  const format = opts.format ?? 'pretty';
  let destination: DestinationStream;
  if (format === 'json') {
    destination = { write };
  } else {
    const pretty = prettyFactory({
      colorize: opts.write === undefined && isatty(2),
      singleLine: true,
      errorLikeObjectKeys: [],
      translateTime: 'SYS:HH:MM:ss.l',
      ignore: 'pid,hostname,name',
      messageFormat: '{name}: {msg}',
    });
    destination = { write: (line: string) => write(pretty(line)) };
  }
  return pino(
    {
      name: opts.name,
      level: opts.level ?? 'info',
      base: { pid: process.pid },
      timestamp: pino.stdTimeFunctions.isoTime,
      hooks: {
        logMethod(args, method) {
          method.apply(this, args.map((a) => redactValue(a, 0)) as typeof args);
        },
      },
    },
    destination,
  );
}

/** Strings redacted wherever they sit (fields, nested objects, arrays, error messages), a few levels deep. */
function redactValue(value: unknown, depth: number): unknown {
  if (typeof value === 'string') return redactText(value);
  if (depth > 4 || value === null || typeof value !== 'object') return value;
  // An error is its message: a stack would break the one-line-per-event rule.
  if (value instanceof Error) return redactText(value.message);
  if (Array.isArray(value)) return value.map((v) => redactValue(v, depth + 1));
  if (value instanceof Date) return value;
  return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, redactValue(v, depth + 1)]));
}
