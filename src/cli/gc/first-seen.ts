// Ages for what a driver lists without a creation time (CSI's ListVolumes has none): the time gc
// first saw the item unreferenced, kept in <state>/gc-first-seen.json. That is never older than the
// item itself, so the grace period errs on the side of keeping: an unreferenced volume is deleted
// only by a gc run at least --grace-period after the run that first saw it. Entries of items that
// are no longer orphans are dropped at each run.
import { readFile, rename, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { Inventory } from './find.js';

export const FIRST_SEEN_FILE = 'gc-first-seen.json';

type Ledger = Record<string, string>;

function key(driver: string, kind: 'volume' | 'snapshot', id: string): string {
  return `${driver}/${kind}/${id}`;
}

async function read(path: string): Promise<Ledger> {
  try {
    const parsed = JSON.parse(await readFile(path, 'utf8')) as unknown;
    return parsed !== null && typeof parsed === 'object' ? (parsed as Ledger) : {};
  } catch {
    return {};
  }
}

/**
 * Gives every listed item without createdAt the time it was first seen (now, for new ones), and
 * rewrites the ledger with the items listed this time. `orphan(driver, kind, id)` says which items
 * are unreferenced: only those are remembered. Without a state directory the ledger is not kept
 * (every such item is then new, and kept by any grace period above zero).
 */
export async function applyFirstSeen(
  stateDir: string | undefined,
  inventories: Inventory[],
  orphan: (driver: string, kind: 'volume' | 'snapshot', id: string) => boolean,
  now: number,
  warn: (message: string) => void = () => undefined,
): Promise<void> {
  const path = stateDir === undefined || !existsSync(stateDir) ? undefined : join(stateDir, FIRST_SEEN_FILE);
  const old = path === undefined ? {} : await read(path);
  const next: Ledger = {};
  const stamp = new Date(now).toISOString();
  for (const inv of inventories) {
    for (const [kind, items] of [
      ['volume', inv.volumes],
      ['snapshot', inv.snapshots],
    ] as const) {
      for (const item of items) {
        if (item.createdAt !== undefined || item.inFlight || !orphan(inv.driver, kind, item.id)) continue;
        const k = key(inv.driver, kind, item.id);
        item.createdAt = old[k] ?? stamp;
        next[k] = item.createdAt;
      }
    }
  }
  if (path === undefined) return;
  const tmp = `${path}.tmp`;
  try {
    await writeFile(tmp, `${JSON.stringify(next, null, 1)}\n`, { mode: 0o600 });
    await rename(tmp, path);
  } catch (err) {
    // Not remembered: the next run sees them as new again, which only ever keeps more.
    warn(`cannot remember when volumes were first seen (${(err as Error).message}): their age starts again at the next run`);
  }
}
