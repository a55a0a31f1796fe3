/**
 * What a failed database write means for the message it was writing.
 *
 * - The database is away (not reachable, locked, busy, out of disk, a
 *   connection cut, a transaction timed out or lost a conflict): nothing is
 *   wrong with the data; the write is retried with backoff for as long as it
 *   takes, and the result waits in Redis.
 * - The database refused this data (anything else: a value it cannot store,
 *   a constraint, a trigger): retrying the same bytes gives the same answer.
 *   The collector isolates such a message from its batch and, after a few
 *   tries, records the run as `collector-error` with the refusal as reason.
 * - The database file is not the one opened (DatabaseMovedError): writing on
 *   would commit into a file nobody reads; the collector stops.
 *
 * Codes as Prisma's driver adapters report them (measured with both adapters):
 * a refused connection is P1001 / DatabaseNotReachable; SQLite's lock is
 * P2010 with originalCode SQLITE_BUSY; Postgres's refusals are P2010 with the
 * SQLSTATE in originalCode (22021 for a NUL byte, P0001 for a RAISE).
 */
import { ServiceError } from '../errors.js';

/** The SQLite file was deleted or replaced while open (exit code 3, as for any service that is not there). */
export class DatabaseMovedError extends ServiceError {}

/** Prisma codes that mean the server or the connection, not the data. */
const UNAVAILABLE_PRISMA = /^P1\d{3}$|^P2024$|^P2028$|^P2034$/;
/** Driver adapter error kinds of the same sort. */
const UNAVAILABLE_KINDS = new Set(['DatabaseNotReachable', 'DatabaseDoesNotExist', 'SocketTimeout', 'ConnectionClosed', 'TooManyConnections', 'TransactionWriteConflict', 'TransactionAlreadyClosed', 'DatabaseAccessDenied', 'AuthenticationFailed']);
/** SQLite result codes: locks, I/O, space, memory, a file that cannot be opened or written. */
const UNAVAILABLE_SQLITE = /^SQLITE_(BUSY|LOCKED|IOERR|FULL|CANTOPEN|NOMEM|READONLY|PROTOCOL|CORRUPT|NOTADB)/;
/**
 * SQLSTATE classes: 08 connection, 40 rollback (serialization, deadlock), 53 resources (disk full, memory),
 * 57 operator intervention (shutdown), 58 system (I/O), XX internal; and 55P03 (lock not available).
 */
const UNAVAILABLE_SQLSTATE = /^(08|40|53|57|58|XX)|^55P03$/;
const UNAVAILABLE_NODE = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN']);

interface Described {
  prismaCode?: string;
  kind?: string;
  originalCode?: string;
  code?: string;
  message?: string;
}

function describe(err: unknown): Described {
  if (typeof err !== 'object' || err === null) return { message: String(err) };
  const e = err as { code?: unknown; message?: unknown; meta?: { driverAdapterError?: { cause?: { kind?: unknown; originalCode?: unknown; code?: unknown } } } };
  const cause = e.meta?.driverAdapterError?.cause;
  const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);
  return {
    prismaCode: str(e.code),
    kind: str(cause?.kind),
    originalCode: str(cause?.originalCode) ?? str(cause?.code),
    code: str(e.code),
    message: str(e.message),
  };
}

/** True when the failure says the database is away, not that it refused this data. */
export function isDatabaseUnavailable(err: unknown): boolean {
  if (err instanceof DatabaseMovedError) return true;
  const d = describe(err);
  if (d.prismaCode && UNAVAILABLE_PRISMA.test(d.prismaCode)) return true;
  if (d.kind && UNAVAILABLE_KINDS.has(d.kind)) return true;
  if (d.originalCode && (UNAVAILABLE_SQLITE.test(d.originalCode) || UNAVAILABLE_SQLSTATE.test(d.originalCode))) return true;
  if (d.code && (UNAVAILABLE_NODE.has(d.code) || UNAVAILABLE_SQLITE.test(d.code))) return true;
  return /Connection terminated|connection (is )?closed|Can't reach database server|database is locked/i.test(d.message ?? '');
}

/** One line saying why the database refused a write: the driver's message, without Prisma's invocation banner. */
export function refusalReason(err: unknown, max = 500): string {
  const d = describe(err);
  const raw = d.message ?? String(err);
  const m = /Raw query failed\. Code: `([^`]*)`\. Message: `([\s\S]*)`/.exec(raw);
  const text = m ? `${m[2]} (code ${m[1]})` : raw.split('\n').map((l) => l.trim()).filter(Boolean).join(' ');
  return text.length > max ? text.slice(0, max) + '…' : text;
}

/** A unique constraint refused a row (Prisma P2002, or the driver adapter's UniqueConstraintViolation): it exists already. */
export function isUniqueViolation(err: unknown): boolean {
  const d = describe(err);
  return d.prismaCode === 'P2002' || d.kind === 'UniqueConstraintViolation' || d.originalCode === '23505' || d.originalCode === 'SQLITE_CONSTRAINT_PRIMARYKEY' || d.originalCode === 'SQLITE_CONSTRAINT_UNIQUE';
}
