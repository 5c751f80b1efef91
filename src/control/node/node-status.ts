// The kubelet's node status manager for one embedded node: the heartbeat that posts the Node's
// Ready and DiskPressure conditions (the kubelet's words and events), its addresses, the machine's
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
import { DEFAULT_MAX_PODS, machineResources } from './node-resources.js';

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

  /** One heartbeat: Ready, DiskPressure (and its event on a change), addresses, capacity and allocatable. */
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
      let event: string | undefined;
      this.update((node) => {
        let conditions = node.status?.conditions ?? [];
        if (pressure !== undefined) {
          const disk = diskPressureCondition(conditions.find((c) => c.type === 'DiskPressure'), pressure, now);
          conditions = [...conditions.filter((c) => c.type !== 'DiskPressure'), disk.condition];
          event = disk.event;
        }
        const machine = machineResources(nodefsBytes);
        const before = conditions.find((c) => c.type === 'Ready');
        const ready = {
          type: 'Ready',
          status: 'True' as const,
          reason: 'KubeletReady',
          message: 'stowage node agent is posting ready status',
          lastHeartbeatTime: now,
          lastTransitionTime: before?.status === 'True' && before.lastTransitionTime ? before.lastTransitionTime : now,
        };
        return {
          ...node.status,
          conditions: [...conditions.filter((c) => c.type !== 'Ready'), ready],
          addresses: [
            { type: 'InternalIP', address: HOST_IP },
            { type: 'Hostname', address: this.nodeName },
          ],
          // The machine's figures (node-resources.ts) win; pods and extended resources set by hand stay.
          capacity: { pods: DEFAULT_MAX_PODS, ...node.status?.capacity, ...machine },
          allocatable: { pods: DEFAULT_MAX_PODS, ...node.status?.allocatable, ...machine },
          nodeInfo: { kubeletVersion: 'stowage', containerRuntimeVersion: 'stowage://embedded', operatingSystem: 'linux', architecture: process.arch === 'x64' ? 'amd64' : process.arch },
        };
      });
      if (event !== undefined) {
        const node = this.store.get('nodes', undefined, this.nodeName);
        if (node) this.recorder.event(node, 'Normal', event, `Node ${this.nodeName} status is now: ${event}`);
      }
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
