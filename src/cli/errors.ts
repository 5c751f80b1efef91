// How the client commands fail: one line on stderr, worded as kubectl words it, and a non-zero
// exit. Commands throw CliError (or let ApiStatusError / ConnectionError through); main.ts prints
// errorLine(err) and exits with its code.
import { ApiStatusError, ConnectionError } from './api-client.js';

/** An error whose message is already the line to print. */
export class CliError extends Error {
  readonly exitCode: number;

  constructor(message: string, exitCode = 1) {
    super(message);
    this.name = 'CliError';
    this.exitCode = exitCode;
  }
}

/** Several failures of one command (apply -f of a directory…), one line each. */
export class ReportedErrors extends CliError {
  constructor(lines: readonly string[]) {
    super(lines.join('\n'));
    this.name = 'ReportedErrors';
  }
}

/**
 * The server's error as kubectl prints it: `Error from server (NotFound): persistentvolumeclaims
 * "x" not found`, or for validation `The PersistentVolumeClaim "x" is invalid: spec.…: …`.
 * `context` ("error when creating \"pvc.yaml\"") is put before the server's message.
 */
export function statusLine(err: ApiStatusError, context?: string): string {
  const s = err.status;
  const causes = s.details?.causes ?? [];
  if (s.reason === 'Invalid' && causes.length > 0 && (s.details?.kind || s.details?.name)) {
    const list = causes.map((c) => (c.field ? `${c.field}: ${c.message ?? ''}` : (c.message ?? '')));
    return `The ${s.details?.kind ?? ''} "${s.details?.name ?? ''}" is invalid: ${list.length === 1 ? list[0] : `[${list.join(', ')}]`}`;
  }
  if (s.reason === 'Unauthorized') return 'error: You must be logged in to the server (Unauthorized)';
  const message = oneLine(context ? `${context}: ${s.message ?? ''}` : (s.message ?? ''));
  return s.reason && s.reason !== 'Unknown' ? `Error from server (${s.reason}): ${message}` : `Error from server: ${message}`;
}

function oneLine(text: string): string {
  return text.replace(/\s*\n\s*/g, ' ').trim();
}

/** The one line to print for any error a command throws. */
export function errorLine(err: unknown, context?: string): string {
  if (err instanceof CliError) return err.message;
  if (err instanceof ApiStatusError) return statusLine(err, context);
  if (err instanceof ConnectionError && err.verbatim) return oneLine(err.message);
  // ConnectionError, ResourceTypeError, ManifestError and anything unexpected: kubectl's "error: …".
  const message = err instanceof Error ? err.message : String(err);
  return `error: ${oneLine(context ? `${context}: ${message}` : message)}`;
}

export function exitCodeOf(err: unknown): number {
  return err instanceof CliError ? err.exitCode : 1;
}

/** Wraps a client command's action so that whatever it throws is reported in kubectl's words. */
export function clientAction<A extends unknown[]>(action: (...args: A) => Promise<void>): (...args: A) => Promise<void> {
  return async (...args: A) => {
    try {
      await action(...args);
    } catch (err) {
      if (err instanceof CliError) throw err;
      throw new CliError(errorLine(err), exitCodeOf(err));
    }
  };
}
