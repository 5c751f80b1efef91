// resourcequota-controller: keeps each ResourceQuota's status as kube-controller-manager's does:
// status.hard = spec.hard, status.used = what the namespace uses of each hard resource (every one
// listed, 0 when unused; quota-usage.ts counts it). A namespace is recounted when one of its quotas
// changes or when a pod, claim, ConfigMap, Secret or workload object in it is added, changed or
// deleted, and every namespace with quotas every resyncMs (count/<resource> of other kinds).
// Admission (admission-quota.ts) charges status.used as it admits; this recount is what gives
// back what deletions and finished pods freed, and corrects any charge whose write then failed.
import type { Logger } from 'pino';
import type { ResourceName } from '../api/registry.js';
import type { ResourceQuota } from '../api/types/core.js';
import type { KubeObject } from '../api/types/meta.js';
import { quotaUsed, usageList } from '../store/quota-usage.js';
import type { Store } from '../store/store.js';
import { ControllerLoop, type SyncResult } from './controller.js';
import { writeStatus } from './status-write.js';
import type { Informer, InformerFactory } from './informer.js';
import type { ControllerDescriptor } from './registry.js';

export interface ResourceQuotaOptions {
  store: Store;
  informers: InformerFactory;
  logger: Logger;
  /** Full recount of every namespace with quotas. Default 30 000 ms (upstream: 5 min). */
  resyncMs?: number;
  baseDelayMs?: number;
  maxDelayMs?: number;
}

/** The kinds whose changes trigger a recount (their informers are shared with other controllers). */
const WATCHED: readonly ResourceName[] = ['pods', 'persistentvolumeclaims', 'configmaps', 'secrets', 'statefulsets', 'deployments', 'replicasets', 'daemonsets', 'jobs'];

export class ResourceQuotaController {
  readonly loop: ControllerLoop;
  private readonly store: Store;
  private readonly quotas: Informer<ResourceQuota>;
  private readonly resyncMs: number;
  private timer: NodeJS.Timeout | undefined;

  constructor(options: ResourceQuotaOptions) {
    this.store = options.store;
    this.resyncMs = options.resyncMs ?? 30_000;
    this.loop = new ControllerLoop({
      name: 'resourcequota-controller',
      logger: options.logger,
      sync: (namespace) => this.sync(namespace),
      ...(options.baseDelayMs === undefined ? {} : { baseDelayMs: options.baseDelayMs }),
      ...(options.maxDelayMs === undefined ? {} : { maxDelayMs: options.maxDelayMs }),
    });
    this.quotas = options.informers.for('resourcequotas');
    const quotaChanged = (q: ResourceQuota): void => this.loop.enqueue(q.metadata.namespace ?? '');
    this.quotas.addEventHandler({ add: quotaChanged, update: (_old, q) => quotaChanged(q), delete: quotaChanged });
    const objectChanged = (o: KubeObject): void => {
      const ns = o.metadata.namespace ?? '';
      if (this.quotas.list().some((q) => q.metadata.namespace === ns)) this.loop.enqueue(ns);
    };
    for (const r of WATCHED) options.informers.for(r).addEventHandler({ add: objectChanged, update: (_old, o) => objectChanged(o), delete: objectChanged });
  }

  start(): void {
    this.loop.start();
    this.timer = setInterval(() => {
      for (const ns of new Set(this.quotas.list().map((q) => q.metadata.namespace ?? ''))) this.loop.enqueue(ns);
    }, this.resyncMs);
    this.timer.unref();
  }

  stop(): Promise<void> {
    if (this.timer !== undefined) clearInterval(this.timer);
    return this.loop.stop();
  }

  private sync(namespace: string): SyncResult | undefined {
    const quotas = this.store.list('resourcequotas', { namespace }).items;
    if (quotas.length === 0) return undefined;
    const cache = new Map<string, KubeObject[]>();
    const objects = (plural: string): KubeObject[] => {
      let l = cache.get(plural);
      if (l === undefined) cache.set(plural, (l = this.store.list(plural, { namespace }).items));
      return l;
    };
    for (const q of quotas) {
      const status = { hard: { ...(q.spec?.hard ?? {}) }, used: usageList(quotaUsed(q, (r) => objects(r.plural))) };
      const written = writeStatus(this.store, q, status);
      if (written !== undefined) return written;
    }
    return undefined;
  }
}

export const RESOURCE_QUOTA: ControllerDescriptor = {
  name: 'resourcequota-controller',
  aliases: ['resourcequota'],
  description: "kube-controller-manager's resource quota controller: each ResourceQuota's status.hard and status.used",
  init(ctx) {
    const c = new ResourceQuotaController({ store: ctx.store, informers: ctx.informers, logger: ctx.logger, ...ctx.backoff });
    return { loops: [c.loop], start: () => c.start(), stop: () => c.stop() };
  },
};
