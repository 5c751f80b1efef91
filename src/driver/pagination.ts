import { AbortedError, InvalidArgumentError } from '../csi/errors.js';

const TOKEN_PREFIX = 'after:';

/**
 * Pages through records sorted by ID. The token names the first ID of the next page, so a page
 * stays correct when entries before it are deleted between calls (an offset would skip some).
 * A token we did not issue is ABORTED, as the spec asks.
 */
export function paginate<T extends { id: string }>(
  sorted: T[],
  startingToken: string,
  maxEntries: number,
): { page: T[]; nextToken: string } {
  if (!Number.isInteger(maxEntries) || maxEntries < 0) {
    throw new InvalidArgumentError(`max_entries must not be negative (got ${maxEntries})`);
  }
  let start = 0;
  if (startingToken !== '') {
    if (!startingToken.startsWith(TOKEN_PREFIX)) {
      throw new AbortedError(`starting_token "${startingToken}" was not issued by this plugin`);
    }
    const from = startingToken.slice(TOKEN_PREFIX.length);
    start = sorted.findIndex((r) => r.id >= from);
    if (start < 0) start = sorted.length;
  }
  const end = maxEntries > 0 ? Math.min(sorted.length, start + maxEntries) : sorted.length;
  const next = sorted[end];
  return { page: sorted.slice(start, end), nextToken: next ? `${TOKEN_PREFIX}${next.id}` : '' };
}
