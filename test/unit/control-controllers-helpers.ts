// Shared by the control-controllers-* unit tests: objects, a recording event sink, waiting for the
// controllers to settle, and a fake CSI driver (an in-process gRPC server on a temp socket) whose
// controller calls the tests script and record.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { pino } from 'pino';
import type { PersistentVolume, PersistentVolumeClaim, Pod } from '../../src/control/api/types/core.js';
import type { KubeObject } from '../../src/control/api/types/meta.js';
import type { CSIDriver, StorageClass } from '../../src/control/api/types/storage.js';
import { CONTROLLER_ENDPOINT_ANNOTATION } from '../../src/control/controllers/driver-registry.js';
import type { EventSink, EventType } from '../../src/control/controllers/events.js';
import type { Store } from '../../src/control/store/store.js';
import { type ControllerService, type IdentityService, type NodeService, startCsiServer } from '../../src/csi/server.js';

export const quiet = pino({ level: process.env['STOWAGE_TEST_LOG'] ?? 'silent' });

export interface RecordedEvent {
  name: string;
  kind: string;
  type: EventType;
  reason: string;
  message: string;
}

export class RecordingSink implements EventSink {
  readonly events: RecordedEvent[] = [];

  event(obj: KubeObject, type: EventType, reason: string, message: string): void {
    this.events.push({ name: obj.metadata.name ?? '', kind: obj.kind, type, reason, message });
  }

  about(name: string): RecordedEvent[] {
    return this.events.filter((e) => e.name === name);
  }

  reasons(name: string): string[] {
    return this.about(name).map((e) => e.reason);
  }
}

/** Resolves once isIdle() holds on several consecutive turns of the event loop. */
export async function settle(isIdle: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let calm = 0;
  while (calm < 5) {
    if (Date.now() > deadline) throw new Error('controllers did not settle');
    await sleep(isIdle() ? 1 : 5);
    calm = isIdle() ? calm + 1 : 0;
  }
}

/** Polls fn until it returns something truthy. */
export async function waitFor<T>(fn: () => T | undefined | null | false, what: string, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = fn();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(5);
  }
}

export function claim(name: string, spec: Partial<PersistentVolumeClaim['spec']> = {}, meta: Partial<PersistentVolumeClaim['metadata']> = {}): PersistentVolumeClaim {
  return {
    apiVersion: 'v1',
    kind: 'PersistentVolumeClaim',
    metadata: { name, namespace: 'default', ...meta },
    spec: { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '1Gi' } }, ...spec },
  };
}

export function volume(name: string, spec: Partial<PersistentVolume['spec']> = {}, meta: Partial<PersistentVolume['metadata']> = {}): PersistentVolume {
  return {
    apiVersion: 'v1',
    kind: 'PersistentVolume',
    metadata: { name, ...meta },
    spec: { capacity: { storage: '1Gi' }, accessModes: ['ReadWriteOnce'], hostPath: { path: `/mnt/${name}` }, ...spec },
  };
}

export function storageClass(name: string, provisioner: string, extra: Partial<StorageClass> = {}): StorageClass {
  return { apiVersion: 'storage.k8s.io/v1', kind: 'StorageClass', metadata: { name }, provisioner, ...extra };
}

/** A pod using the claims (the store starts every pod Pending: set other phases with a status update). */
export function pod(name: string, claims: string[]): Pod {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace: 'default' },
    spec: {
      containers: [{ name: 'c', image: 'busybox' }],
      volumes: claims.map((c, i) => ({ name: `v${i}`, persistentVolumeClaim: { claimName: c } })),
    },
  };
}

/** Registers a driver's controller endpoint the way the control plane expects (CSIDriver + annotation). */
export function csiDriverObject(name: string, endpoint: string): CSIDriver {
  return {
    apiVersion: 'storage.k8s.io/v1',
    kind: 'CSIDriver',
    metadata: { name, annotations: { [CONTROLLER_ENDPOINT_ANNOTATION]: endpoint } },
    spec: { attachRequired: false },
  };
}

export function phaseOf(store: Store, resource: 'persistentvolumes' | 'persistentvolumeclaims', name: string): string | undefined {
  const obj = resource === 'persistentvolumes' ? store.get('persistentvolumes', undefined, name) : store.get('persistentvolumeclaims', 'default', name);
  return obj?.status?.phase;
}

export interface FakeDriver {
  readonly endpoint: string;
  readonly dir: string;
  stop(): Promise<void>;
}

/** A CSI plugin in this process on a temp socket, with the given services. */
export async function startFakeDriver(
  name: string,
  services: { controller?: ControllerService; node?: NodeService; identity?: IdentityService; controllerCapabilities?: string[] },
): Promise<FakeDriver> {
  const dir = mkdtempSync(join(tmpdir(), 'stowage-fake-csi-'));
  const endpoint = `unix://${join(dir, 'csi.sock')}`;
  const caps = services.controllerCapabilities ?? ['CREATE_DELETE_VOLUME', 'SINGLE_NODE_MULTI_WRITER'];
  const server = await startCsiServer({
    endpoint,
    logger: quiet,
    shutdownGraceMs: 1000,
    identity: services.identity ?? {
      async GetPluginInfo() {
        return { name, vendor_version: '0.0.1' };
      },
      async GetPluginCapabilities() {
        return { capabilities: [{ service: { type: 'CONTROLLER_SERVICE' } }, { service: { type: 'VOLUME_ACCESSIBILITY_CONSTRAINTS' } }] };
      },
      async Probe() {
        return { ready: { value: true } };
      },
    },
    controller: {
      async ControllerGetCapabilities() {
        return { capabilities: caps.map((type) => ({ rpc: { type: type as 'CREATE_DELETE_VOLUME' } })) };
      },
      ...services.controller,
    },
    ...(services.node === undefined ? {} : { node: services.node }),
  });
  return {
    endpoint,
    dir,
    async stop() {
      await server.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
