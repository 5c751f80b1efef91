// Leader election Leases, as client-go's leaderelection writes them for kube-controller-manager and
// kube-scheduler: kube-system/<component>, holderIdentity "<hostname>_<uuid>", leaseDurationSeconds
// 15, acquireTime at acquisition, renewTime moved every retry period (2 s), leaseTransitions counted
// when the holder changes. Why: clients and tools read these Leases to see who leads (and a second
// process on one store would see the first one holds them). `stowage up` still refuses a second
// `up` on the same state directory; this only makes the leases exist and move, as on a cluster.
import { hostname } from 'node:os';
import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import type { Lease } from '../api/types/coordination.js';
import { microTime } from '../node/node-lease.js';
import { AlreadyExistsError, ConflictError } from '../store/errors.js';
import type { Store } from '../store/store.js';

/** client-go's defaults as kube-controller-manager and kube-scheduler use them. */
export const LEADER_LEASE_DURATION_SECONDS = 15;
export const LEADER_RETRY_PERIOD_MS = 2_000;
export const LEADER_NAMESPACE = 'kube-system';

export interface LeaderLeaseOptions {
  store: Store;
  /** The Lease's name: kube-controller-manager or kube-scheduler. */
  name: string;
  logger: Logger;
  identity?: string;
  retryPeriodMs?: number;
  now?: () => Date;
}

export class LeaderLease {
  readonly identity: string;
  private readonly o: LeaderLeaseOptions;
  private timer: NodeJS.Timeout | undefined;
  private leading = false;

  constructor(options: LeaderLeaseOptions) {
    this.o = options;
    this.identity = options.identity ?? `${hostname()}_${randomUUID()}`;
  }

  /**
   * One round of tryAcquireOrRenew: take the lease when it is free, expired or ours, and move its
   * renewTime. Returns whether this process holds it.
   */
  tryAcquireOrRenew(): boolean {
    const { store, name } = this.o;
    const now = (this.o.now ?? (() => new Date()))();
    const stamp = microTime(now);
    for (let attempt = 0; attempt < 3; attempt++) {
      const lease = store.get('leases', LEADER_NAMESPACE, name) as Lease | undefined;
      try {
        if (lease === undefined) {
          store.create<Lease>({
            apiVersion: 'coordination.k8s.io/v1',
            kind: 'Lease',
            metadata: { name, namespace: LEADER_NAMESPACE },
            spec: { holderIdentity: this.identity, leaseDurationSeconds: LEADER_LEASE_DURATION_SECONDS, acquireTime: stamp, renewTime: stamp, leaseTransitions: 0 },
          });
          return this.became(true);
        }
        const spec = lease.spec ?? {};
        const ours = spec.holderIdentity === this.identity;
        const renewed = Date.parse(spec.renewTime ?? '');
        const expired = !spec.holderIdentity || Number.isNaN(renewed) || renewed + (spec.leaseDurationSeconds ?? LEADER_LEASE_DURATION_SECONDS) * 1000 < now.getTime();
        if (!ours && !expired) return this.became(false);
        store.update<Lease>({
          ...lease,
          spec: ours
            ? { ...spec, renewTime: stamp, leaseDurationSeconds: LEADER_LEASE_DURATION_SECONDS }
            : { ...spec, holderIdentity: this.identity, leaseDurationSeconds: LEADER_LEASE_DURATION_SECONDS, acquireTime: stamp, renewTime: stamp, leaseTransitions: (spec.leaseTransitions ?? 0) + 1 },
        });
        return this.became(true);
      } catch (err) {
        if (!(err instanceof ConflictError || err instanceof AlreadyExistsError)) throw err;
      }
    }
    return this.became(false);
  }

  private became(leading: boolean): boolean {
    if (leading !== this.leading) this.o.logger.info({ lease: `${LEADER_NAMESPACE}/${this.o.name}`, identity: this.identity }, leading ? 'acquired the leader lease' : 'lost the leader lease');
    this.leading = leading;
    return leading;
  }

  /** Acquires now and renews every retry period. */
  start(): void {
    const round = (): void => {
      try {
        this.tryAcquireOrRenew();
      } catch (err) {
        this.o.logger.warn({ err, lease: this.o.name }, 'leader lease renewal failed');
      }
    };
    round();
    this.timer = setInterval(round, this.o.retryPeriodMs ?? LEADER_RETRY_PERIOD_MS);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
  }
}
