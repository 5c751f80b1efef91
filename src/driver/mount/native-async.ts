/**
 * Every native call that runs on koffi's worker threads goes through here.
 *
 * koffi queues asynchronous calls itself, but only up to `max_async_calls` (256) running and
 * queued at once; the next one throws "Too many asynchronous calls are running". A driver under
 * load reaches that easily (16 concurrent CreateVolumes, each with its ioctls, plus librados calls
 * waiting on a slow cluster), and the caller then got INTERNAL for an operation that only had to
 * wait. So the calls are admitted here, at most MAX_IN_FLIGHT at a time (well under koffi's limit,
 * shared by the syscalls and librados), and the rest wait in a FIFO in JavaScript, costing a
 * closure each instead of a worker's stack and heap.
 */

/** A koffi function: called directly it runs on this thread; `.async` runs it on a worker. */
export interface AsyncBinding<R> {
  async(...args: [...unknown[], (err: unknown, result: R) => void]): void;
}

/** Below koffi's default max_async_calls (256), leaving room for calls made outside this module. */
export const MAX_IN_FLIGHT = 128;

let inFlight = 0;
const waiting: (() => void)[] = [];

function release(): void {
  const next = waiting.shift();
  if (next !== undefined) next();
  else inFlight--;
}

/**
 * Runs the binding on a worker thread once a slot is free. `settle` turns the raw return value into
 * the result (or throws) inside koffi's callback, the only place where koffi.errno() is the
 * worker's errno; without it the promise resolves with the raw value.
 */
export function runAsync<R, T = R>(binding: AsyncBinding<R>, args: unknown[], settle?: (result: R) => T): Promise<T> {
  const start = (resolve: (r: T) => void, reject: (e: Error) => void): void => {
    try {
      binding.async(...args, (err: unknown, result: R) => {
        release();
        if (err) return reject(err instanceof Error ? err : new Error(String(err)));
        try {
          resolve(settle === undefined ? (result as unknown as T) : settle(result));
        } catch (e) {
          reject(e instanceof Error ? e : new Error(String(e)));
        }
      });
    } catch (e) {
      release();
      reject(e instanceof Error ? e : new Error(String(e)));
    }
  };
  return new Promise<T>((resolve, reject) => {
    if (inFlight < MAX_IN_FLIGHT) {
      inFlight++;
      start(resolve, reject);
    } else {
      // The slot is handed over by release(): inFlight stays counted for this call.
      waiting.push(() => start(resolve, reject));
    }
  });
}

/** Calls admitted and not yet finished, and calls waiting for a slot (tests, metrics). */
export function asyncLoad(): { inFlight: number; waiting: number } {
  return { inFlight, waiting: waiting.length };
}
