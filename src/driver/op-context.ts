// What a backend call gets from the CSI call it serves: the call's logger, its secrets (never
// logged) and its cancellation signal. One builder for the Controller and GroupController services.
import type { CallContext } from '../csi/server.js';
import type { OpContext } from './backends/backend.js';

export function opContext(ctx: CallContext, secrets: Record<string, string> | undefined, extra: Partial<OpContext> = {}): OpContext {
  return {
    log: ctx.log,
    secrets: secrets ?? {},
    ...extra,
    // A getter: the call's signal (and its deadline timer) is only made for work that waits on it.
    get signal() {
      return ctx.signal;
    },
  };
}
