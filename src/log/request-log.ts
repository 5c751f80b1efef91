import { AsyncLocalStorage } from 'node:async_hooks';
import type { Logger } from 'pino';

/**
 * The logger of the RPC being served, carried through every await of its work, so that lines
 * logged deep down (the command runner, the mount layer) carry the call's request ID without
 * threading a logger through every function.
 */
const current = new AsyncLocalStorage<Logger>();

export function runWithRequestLog<T>(log: Logger, fn: () => T): T {
  return current.run(log, fn);
}

/** The current RPC's logger, or the fallback outside any RPC. */
export function requestLog(fallback: Logger): Logger {
  return current.getStore() ?? fallback;
}
