// DefaultBinder: the pods/binding subresource (store.bindPod), which sets spec.nodeName only if it
// is still empty, as the API server's binding does.
import type { Pod } from '../../api/types/core.js';
import type { BindPlugin, CycleState, Status } from '../framework.js';
import { SUCCESS } from '../framework.js';
import type { PluginContext } from '../plugin-context.js';

export class DefaultBinder implements BindPlugin {
  readonly name = 'DefaultBinder';
  constructor(private readonly ctx: PluginContext) {}

  bind(_state: CycleState, pod: Pod, nodeName: string): Status {
    this.ctx.store.bindPod(pod.metadata.namespace ?? 'default', pod.metadata.name ?? '', nodeName, { uid: pod.metadata.uid ?? '' });
    return SUCCESS;
  }
}
