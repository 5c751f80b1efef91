// The kubelet's node status manager for one embedded node: the heartbeat that posts the Node's
// MemoryPressure, DiskPressure, PIDPressure and Ready conditions in the kubelet's order (its words
// and events; node-pressure.ts, disk-pressure.ts), its addresses, the machine's
// capacity and allocatable (node-resources.ts), and every read-modify-write of Node.status (the
// volume manager's volumesInUse goes through update() too), retried on a conflict.
import type { Logger } from 'pino';
import { filesystemStats } from '../../driver/mount/filesystem.js';
import { rfc3339 } from '../api/time.js';
import type { Node } from '../api/types/core.js';
import type { EventSink } from '../controllers/events.js';
import { ConflictError } from '../store/errors.js';
import type { Store } from '../store/store.js';
import { diskPressureCondition, underDiskPressure } from './disk-pressure.js';
import { machinePressure, pressureCondition } from './node-pressure.js';
import { DEFAULT_MAX_PODS, machineResources } from './node-resources.js';

/** The kubelet's order of the conditions it owns; others (NetworkUnavailable…) stay before them. */
const KUBELET_CONDITIONS = ['MemoryPressure', 'DiskPressure', 'PIDPressure', 'Ready'];

export const HOST_IP = '127.0.0.1';

export interface NodeStatusOptions {
  store: Store;
  recorder: EventSink;
  nodeName: string;
  /** The filesystem whose free space decides DiskPressure (the kubelet's nodefs). */
  nodefsPath: string;
  logger: Logger;
}

export class NodeStatusManager {
  private readonly store: Store;
  private readonly recorder: EventSink;
  private readonly nodeName: string;
  private readonly nodefsPath: string;
  private readonly log: Logger;

  constructor(options: NodeStatusOptions) {
    this.store = options.store;
    this.recorder = options.recorder;
    this.nodeName = options.nodeName;
    this.nodefsPath = options.nodefsPath;
    this.log = options.logger;
  }

  /** One heartbeat: the pressure conditions and Ready (events on a change), addresses, capacity and allocatable. */
  async beat(): Promise<void> {
    try {
      const now = rfc3339();
      // statfs first (it is I/O); a filesystem that cannot answer leaves the condition as it was.
      let nodefsBytes: number | undefined;
      const pressure = await filesystemStats(this.nodefsPath).then(
        (fs) => {
          nodefsBytes = fs.totalBytes;
          return underDiskPressure(fs);
        },
        (err: unknown) => {
          this.log.warn({ err, path: this.nodefsPath }, 'cannot read the node filesystem for DiskPressure');
          return undefined;
        },
      );
      const machine = await machinePressure();
      const events: string[] = [];
      this.update((node) => {
        let conditions = node.status?.conditions ?? [];
        events.length = 0;
        if (pressure !== undefined) {
          const disk = diskPressureCondition(conditions.find((c) => c.type === 'DiskPressure'), pressure, now);
          conditions = [...conditions.filter((c) => c.type !== 'DiskPressure'), disk.condition];
          if (disk.event !== undefined) events.push(disk.event);
        }
        for (const [type, under] of [['MemoryPressure', machine.memory], ['PIDPressure', machine.pid]] as const) {
          if (under === undefined) continue;
          const c = pressureCondition(type, conditions.find((x) => x.type === type), under, now);
          conditions = [...conditions.filter((x) => x.type !== type), c.condition];
          if (c.event !== undefined) events.push(c.event);
        }
        const resources = machineResources(nodefsBytes);
        const before = conditions.find((c) => c.type === 'Ready');
        // The kubelet's NodeReady event when Ready becomes True (first post, or back from Unknown/False).
        if (before?.status !== 'True') events.push('NodeReady');
        const ready = {
          type: 'Ready',
          status: 'True' as const,
          reason: 'KubeletReady',
          message: 'stowage node agent is posting ready status',
          lastHeartbeatTime: now,
          lastTransitionTime: before?.status === 'True' && before.lastTransitionTime ? before.lastTransitionTime : now,
        };
        const all = [...conditions.filter((c) => c.type !== 'Ready'), ready];
        const rank = (t: string): number => KUBELET_CONDITIONS.indexOf(t);
        return {
          ...node.status,
          conditions: [...all.filter((c) => rank(c.type) < 0), ...KUBELET_CONDITIONS.flatMap((t) => all.filter((c) => c.type === t))],
          addresses: [
            { type: 'InternalIP', address: HOST_IP },
            { type: 'Hostname', address: this.nodeName },
          ],
          // The machine's figures (node-resources.ts) win; pods and extended resources set by hand stay.
          capacity: { pods: DEFAULT_MAX_PODS, ...node.status?.capacity, ...resources },
          allocatable: { pods: DEFAULT_MAX_PODS, ...node.status?.allocatable, ...resources },
          nodeInfo: { kubeletVersion: 'stowage', containerRuntimeVersion: 'stowage://embedded', operatingSystem: 'linux', architecture: process.arch === 'x64' ? 'amd64' : process.arch },
        };
      });
      const node = events.length > 0 ? this.store.get('nodes', undefined, this.nodeName) : undefined;
      if (node !== undefined) for (const event of events) this.recorder.event(node, 'Normal', event, `Node ${this.nodeName} status is now: ${event}`);
    } catch (err) {
      this.log.warn({ err }, 'node heartbeat failed');
    }
  }


  /** Read-modify-write of this node's status; the Node is created if registration has not yet. */
  update(change: (node: Node) => Node['status'] | undefined): void {
    for (let i = 0; i < 5; i++) {
      let node = this.store.get('nodes', undefined, this.nodeName);
      try {
        if (node === undefined) {
          node = this.store.create<Node>({ apiVersion: 'v1', kind: 'Node', metadata: { name: this.nodeName, labels: { 'kubernetes.io/hostname': this.nodeName } } });
        }
        const status = change(node);
        if (status === undefined) return;
        this.store.update<Node>({ ...node, status }, { subresource: 'status' });
        return;
      } catch (err) {
        if (!(err instanceof ConflictError) || i === 4) throw err;
      }
    }
  }
}
