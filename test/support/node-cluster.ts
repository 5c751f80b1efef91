// A small embedded cluster for node-agent tests: the control plane in the test process, and per
// node a real local driver (a child process, so a test can kill it), registered per node, with a
// node agent and the real pod runtime on <dir>/nodes/<node>.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { pino } from 'pino';
import type { Event, PersistentVolumeClaim, Pod } from '../../src/control/api/types/core.js';
import type { StorageClass } from '../../src/control/api/types/storage.js';
import { type ControlPlane, startControlPlane } from '../../src/control/control-plane.js';
import { registerDriver } from '../../src/control/controllers/driver-registry.js';
import { NodeAgent } from '../../src/control/node/node-agent.js';
import { PodRuntime } from '../../src/control/node/runtime/pod-runtime.js';
import { ExecRunner } from '../../src/driver/mount/exec.js';
import { Mounter } from '../../src/driver/mount/mount.js';
import { startTestDriver, type TestDriver } from './driver-harness.js';
import { mountsUnder, unmount } from './host-state.js';

export const DRIVER = 'local.csi.stowage.dev';
export const CLASS = 'local-test';

export interface TestNode {
  name: string;
  driver: TestDriver;
  agent: NodeAgent;
  runtime: PodRuntime;
  root: string;
}

export interface NodeCluster {
  dir: string;
  plane: ControlPlane;
  nodes: Map<string, TestNode>;
  addNode(name: string): Promise<TestNode>;
  /** Starts the node's agent again (after stopAgent), as a restarted kubelet. */
  restartAgent(name: string): Promise<void>;
  cleanup(): Promise<void>;
}

export async function until<T>(fn: () => T | undefined | null | false | Promise<T | undefined | null | false>, what: string, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

export async function startNodeCluster(): Promise<NodeCluster> {
  const dir = await mkdtemp(join(tmpdir(), 'stowage-nodes-'));
  const logger = pino({ level: process.env['TEST_LOG'] ?? 'silent' });
  const plane = await startControlPlane({ stateDir: join(dir, 'state'), logger, controllers: { resyncMs: 0, eventMaxDelayMs: 0, baseDelayMs: 20, maxDelayMs: 500 } });
  plane.store.create<StorageClass>({
    apiVersion: 'storage.k8s.io/v1',
    kind: 'StorageClass',
    metadata: { name: CLASS },
    provisioner: DRIVER,
    reclaimPolicy: 'Delete',
    volumeBindingMode: 'Immediate',
  });
  const nodes = new Map<string, TestNode>();

  const newAgent = (name: string, root: string, runtime: PodRuntime): NodeAgent =>
    new NodeAgent({
      store: plane.store,
      informers: plane.controllers.informers,
      registry: plane.controllers.registry,
      recorder: plane.controllers.events.recorder('kubelet'),
      nodeName: name,
      rootDir: root,
      runtime,
      mounter: new Mounter(new ExecRunner(logger)),
      logger,
      volumeStats: plane.volumeStats,
      pollMs: 200,
      restartBackoffMs: 300,
      heartbeatMs: 2_000,
      baseDelayMs: 100,
      maxDelayMs: 1_000,
    });

  return {
    dir,
    plane,
    nodes,
    async addNode(name) {
      const root = join(dir, 'nodes', name);
      // The agent's kubelet root is where it stages and publishes: the driver must accept paths there.
      const driver = await startTestDriver({ nodeId: name, poolSize: '2Gi', prefix: `stowage-${name}-`, args: ['--kubelet-dir', root] });
      await registerDriver(plane.store, { endpoint: driver.endpoint, nodeName: name, controllerPerNode: true });
      const runtime = new PodRuntime({ rootDir: root, runner: new ExecRunner(logger), logger });
      const agent = newAgent(name, root, runtime);
      await agent.start();
      const node = { name, driver, agent, runtime, root };
      nodes.set(name, node);
      return node;
    },
    async restartAgent(name) {
      const node = nodes.get(name);
      if (node === undefined) throw new Error(`no node ${name}`);
      node.agent = newAgent(name, node.root, node.runtime);
      await node.agent.start();
    },
    async cleanup() {
      // Pods first (their containers and volumes), then the agents, drivers and the plane.
      for (const pod of plane.store.list('pods').items) {
        try {
          plane.store.delete('pods', pod.metadata.namespace, pod.metadata.name ?? '', { gracePeriodSeconds: 1 });
        } catch {
          // already gone
        }
      }
      await until(() => plane.store.list('pods').items.length === 0, 'pods to be removed by their nodes', 60_000).catch(() => undefined);
      for (const node of nodes.values()) {
        await node.agent.stop().catch(() => undefined);
        for (const uid of await node.runtime.listPods().catch(() => [] as string[])) await node.runtime.removePod(uid).catch(() => undefined);
      }
      for (const m of mountsUnder(dir).reverse()) await unmount(m.mountPoint).catch(() => undefined);
      // Every driver is cleaned up even when one fails; the first failure is reported after.
      const failures: unknown[] = [];
      for (const node of nodes.values()) await node.driver.cleanup().catch((err: unknown) => failures.push(err));
      await plane.stop().catch((err: unknown) => failures.push(err));
      await rm(dir, { recursive: true, force: true });
      if (failures.length > 0) throw failures[0];
    },
  };
}

export function claim(name: string, size = '64Mi', accessModes: PersistentVolumeClaim['spec']['accessModes'] = ['ReadWriteOnce']): PersistentVolumeClaim {
  return {
    apiVersion: 'v1',
    kind: 'PersistentVolumeClaim',
    metadata: { name, namespace: 'default' },
    spec: { accessModes, resources: { requests: { storage: size } }, storageClassName: CLASS },
  };
}

/** A pod running `sh -c script` that exits on SIGTERM. */
export function shellPod(name: string, script: string, extra: { nodeName?: string; volumes?: Pod['spec']['volumes']; mounts?: NonNullable<Pod['spec']['containers'][number]['volumeMounts']>; restartPolicy?: Pod['spec']['restartPolicy'] } = {}): Pod {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace: 'default' },
    spec: {
      ...(extra.nodeName ? { nodeName: extra.nodeName } : {}),
      ...(extra.restartPolicy ? { restartPolicy: extra.restartPolicy } : {}),
      terminationGracePeriodSeconds: 5,
      containers: [{ name: 'main', image: 'busybox', command: ['sh', '-c', `trap 'exit 0' TERM; ${script}`], volumeMounts: extra.mounts ?? [] }],
      volumes: extra.volumes ?? [],
    },
  };
}

export function podNamed(plane: ControlPlane, name: string): Pod | undefined {
  return plane.store.get('pods', 'default', name);
}

export function eventsFor(plane: ControlPlane, name: string): Event[] {
  return plane.store.list('events', { namespace: 'default' }).items.filter((e) => e.involvedObject.name === name);
}

export async function deletePod(plane: ControlPlane, name: string): Promise<void> {
  plane.store.delete('pods', 'default', name);
  await until(() => podNamed(plane, name) === undefined, `pod ${name} to be removed by its node`, 60_000);
}
