/**
 * Running one conformance suite against every backend. A conformance file calls `testBackends()`
 * once at its top level (this registers the Ceph cluster's root hooks: the rbd runs need one) and
 * wraps its suite in `for (const b of backends) describe(`… [${b.name}]`, …)`.
 *
 * What differs between backends is said here, not guessed in each test:
 * - `defaultFs`: the filesystem a mount volume without fs_type gets (local: btrfs, rbd: ext4,
 *   cephfs: ceph);
 * - `namedFs`: an fs_type a test may name explicitly (ext4; cephfs: ceph, its only filesystem);
 * - `block`: raw block volumes are served (cephfs: no; the block files check the refusal instead);
 * - `deviceFs`: mount volumes are filesystems on a device (ext4/xfs: fsck, growing, inode counts,
 *   xfs's minimum size); cephfs volumes are subvolumes with a quota;
 * - `multiNodeWriter`: MULTI_NODE_*_WRITER mount volumes (cephfs: RWX);
 * - `lists`: whether the secret-less list/get RPCs are served (rbd: no, like ceph-csi);
 * - `inspect`: the backend's own view of a volume or snapshot, for checks that used
 *   ControllerGetVolume / ListSnapshots only to look: local asks the driver, rbd reads the record
 *   the driver keeps in the pool's omap, cephfs the one in the filesystem's metadata pool.
 */
import { NotFoundError } from '../../src/csi/errors.js';
import { useCephCluster, type CephFixture } from './ceph.js';
import { startTestDriver, type TestDriver, type TestDriverOptions } from './driver-harness.js';

export interface VolumeView {
  volume_id: string;
  capacity_bytes: number;
  source?: { kind: 'snapshot' | 'volume'; id: string };
  /** The backing storage exists. */
  healthy: boolean;
}

export interface SnapshotView {
  snapshot_id: string;
  source_volume_id: string;
  size_bytes: number;
  ready_to_use: boolean;
}

export interface TestBackendSpec {
  name: 'local' | 'rbd' | 'cephfs';
  defaultFs: string;
  namedFs: string;
  block: boolean;
  deviceFs: boolean;
  multiNodeWriter: boolean;
  /** ListVolumes, ControllerGetVolume, GetCapacity, ListSnapshots are served. */
  lists: boolean;
  start(opts?: TestDriverOptions): Promise<TestDriver>;
  /** undefined when the volume does not exist. */
  volume(drv: TestDriver, id: string): Promise<VolumeView | undefined>;
  snapshots(drv: TestDriver, filter?: { snapshot_id?: string; source_volume_id?: string }): Promise<SnapshotView[]>;
  /** IDs of every volume the backend holds. */
  volumeIds(drv: TestDriver): Promise<string[]>;
}

interface StoredVolume {
  id: string;
  state: string;
  capacityBytes: number;
  source?: { kind: 'snapshot' | 'volume'; id: string };
  volumeContext: Record<string, string>;
}

interface StoredSnapshot {
  id: string;
  state: string;
  sourceVolumeId: string;
  sizeBytes: number;
}

const local: TestBackendSpec = {
  name: 'local',
  defaultFs: 'btrfs',
  namedFs: 'ext4',
  block: true,
  deviceFs: true,
  multiNodeWriter: false,
  lists: true,
  start: (opts = {}) => startTestDriver(opts),
  async volume(drv, id) {
    try {
      const got = await drv.client.controller.ControllerGetVolume({ volume_id: id });
      const v = got.volume!;
      const source = v.content_source?.snapshot
        ? { kind: 'snapshot' as const, id: v.content_source.snapshot.snapshot_id }
        : v.content_source?.volume
          ? { kind: 'volume' as const, id: v.content_source.volume.volume_id }
          : undefined;
      return { volume_id: v.volume_id, capacity_bytes: v.capacity_bytes, ...(source ? { source } : {}), healthy: got.status?.volume_condition?.abnormal !== true };
    } catch (e) {
      if (e instanceof NotFoundError) return undefined;
      throw e;
    }
  },
  async snapshots(drv, filter = {}) {
    const res = await drv.client.controller.ListSnapshots(filter);
    return res.entries.map((e) => e.snapshot!);
  },
  async volumeIds(drv) {
    const res = await drv.client.controller.ListVolumes({});
    return res.entries.map((e) => e.volume!.volume_id);
  },
};

function rbd(ceph: CephFixture): TestBackendSpec {
  const record = async <T>(object: string): Promise<T | undefined> => {
    try {
      return JSON.parse(await ceph.omapValue(object, 'stowage.record')) as T;
    } catch {
      return undefined;
    }
  };
  return {
    name: 'rbd',
    defaultFs: 'ext4',
    namedFs: 'ext4',
    block: true,
    deviceFs: true,
    multiNodeWriter: false,
    lists: false,
    start: (opts = {}) => startTestDriver({ ...opts, backend: 'rbd', ceph }),
    async volume(_drv, id) {
      if (id.length < 36) return undefined;
      const rec = await record<StoredVolume>(`csi.volume.${id.slice(-36)}`);
      if (rec?.state !== 'ready' || rec.id !== id) return undefined;
      const images = (await ceph.images()).images;
      return {
        volume_id: rec.id,
        capacity_bytes: rec.capacityBytes,
        ...(rec.source ? { source: rec.source } : {}),
        healthy: images.includes(rec.volumeContext['imageName'] ?? `csi-vol-${id.slice(-36)}`),
      };
    },
    async snapshots(_drv, filter = {}) {
      const out: SnapshotView[] = [];
      for (const object of await ceph.objects('csi.snap.')) {
        const rec = await record<StoredSnapshot>(object);
        if (rec?.state !== 'ready') continue;
        if (filter.snapshot_id && rec.id !== filter.snapshot_id) continue;
        if (filter.source_volume_id && rec.sourceVolumeId !== filter.source_volume_id) continue;
        out.push({ snapshot_id: rec.id, source_volume_id: rec.sourceVolumeId, size_bytes: rec.sizeBytes, ready_to_use: true });
      }
      return out;
    },
    async volumeIds() {
      const out: string[] = [];
      for (const object of await ceph.objects('csi.volume.')) {
        const rec = await record<StoredVolume>(object);
        if (rec?.state === 'ready') out.push(rec.id);
      }
      return out;
    },
  };
}

function cephfs(ceph: CephFixture): TestBackendSpec {
  const record = async <T>(object: string): Promise<T | undefined> => {
    try {
      return JSON.parse(await ceph.fsOmapValue(object, 'stowage.record')) as T;
    } catch {
      return undefined;
    }
  };
  return {
    name: 'cephfs',
    defaultFs: 'ceph',
    namedFs: 'ceph',
    block: false,
    deviceFs: false,
    multiNodeWriter: true,
    lists: false,
    start: (opts = {}) => startTestDriver({ ...opts, backend: 'cephfs', ceph }),
    async volume(_drv, id) {
      if (id.length < 36) return undefined;
      const rec = await record<StoredVolume>(`csi.volume.${id.slice(-36)}`);
      if (rec?.state !== 'ready' || rec.id !== id) return undefined;
      const subvolumes = await ceph.subvolumes(rec.volumeContext['subvolumeGroup'] ?? 'csi');
      return {
        volume_id: rec.id,
        capacity_bytes: rec.capacityBytes,
        ...(rec.source ? { source: rec.source } : {}),
        healthy: subvolumes.includes(rec.volumeContext['subvolumeName'] ?? `csi-vol-${id.slice(-36)}`),
      };
    },
    async snapshots(_drv, filter = {}) {
      const out: SnapshotView[] = [];
      for (const object of await ceph.fsObjects('csi.snap.')) {
        const rec = await record<StoredSnapshot>(object);
        if (rec?.state !== 'ready') continue;
        if (filter.snapshot_id && rec.id !== filter.snapshot_id) continue;
        if (filter.source_volume_id && rec.sourceVolumeId !== filter.source_volume_id) continue;
        out.push({ snapshot_id: rec.id, source_volume_id: rec.sourceVolumeId, size_bytes: rec.sizeBytes, ready_to_use: true });
      }
      return out;
    },
    async volumeIds() {
      const out: string[] = [];
      for (const object of await ceph.fsObjects('csi.volume.')) {
        const rec = await record<StoredVolume>(object);
        if (rec?.state === 'ready') out.push(rec.id);
      }
      return out;
    },
  };
}

/** Every backend; registers the Ceph cluster's root hooks for the rbd and cephfs runs. */
export function testBackends(): TestBackendSpec[] {
  const ceph = useCephCluster();
  return [local, rbd(ceph), cephfs(ceph)];
}
