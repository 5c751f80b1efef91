// The status write every controller that keeps an object's status makes: nothing when the status
// is already what was worked out, a conflict (the object changed since it was read) is another
// try with backoff, and an object deleted meanwhile needs nothing more.
import type { KubeObject } from '../api/types/meta.js';
import { ConflictError, NotFoundError } from '../store/errors.js';
import { jsonEqual } from '../store/json.js';
import type { Store } from '../store/store.js';
import type { SyncResult } from './controller.js';

export function writeStatus(store: Store, obj: KubeObject & { status?: unknown }, status: object): SyncResult | undefined {
  if (jsonEqual(status, obj.status ?? {})) return undefined;
  try {
    store.update({ ...obj, status }, { subresource: 'status' });
  } catch (err) {
    if (err instanceof ConflictError) return { requeue: true };
    if (!(err instanceof NotFoundError)) throw err;
  }
  return undefined;
}
