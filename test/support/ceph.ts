/**
 * A real Ceph cluster for the rbd backend's tests: `useCephCluster()` at the top of a test file
 * registers root hooks that bring a one-node dev cluster (src/ceph/dev-cluster.ts) up before the
 * file's tests and down after them, failures included. Never skipped: without the ceph packages
 * the `before` hook fails, saying what is missing (scripts/setup.sh installs them).
 *
 * Also here: what a test needs to look at the cluster behind the driver's back (`rbd ls`, the
 * journal's omap), through the CLI with a throwaway keyring-less admin conf.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before } from 'node:test';
import { promisify } from 'node:util';
import { DevCluster, type DevClusterInfo } from '../../src/ceph/dev-cluster.js';
import { missingCephPackages } from '../../src/ceph/packages.js';

const run = promisify(execFile);

export interface CephFixture {
  /** Set once the root `before` hook ran. */
  readonly info: DevClusterInfo;
  /** userID/userKey as a provisioner / node-stage secret carries them. */
  readonly secrets: Record<string, string>;
  /** StorageClass parameters naming the cluster and its rbd pool. */
  readonly parameters: Record<string, string>;
  /** `rbd …` against the cluster (admin), stdout. */
  rbd(args: string[]): Promise<string>;
  /** `rados …` against the cluster (admin), stdout. */
  rados(args: string[]): Promise<string>;
  /** `ceph …` against the cluster (admin), stdout. */
  ceph(args: string[]): Promise<string>;
  /** Images in the rbd pool, and those in its trash. */
  images(): Promise<{ images: string[]; trash: string[] }>;
  /** One omap value of an object of the rbd pool. */
  omapValue(object: string, key: string): Promise<string>;
  /** Keys of an omap object of the rbd pool ([] when the object does not exist). */
  omapKeys(object: string): Promise<string[]>;
  /** Objects of the rbd pool whose names start with prefix. */
  objects(prefix: string): Promise<string[]>;
  /** cephfs: the ceph-csi cephfs secrets (provisioning and mounting, both the admin here). */
  readonly cephfsSecrets: Record<string, string>;
  /** cephfs: StorageClass parameters naming the cluster and its filesystem. */
  readonly cephfsParameters: Record<string, string>;
  /** cephfs: subvolumes of a group of the test filesystem (default csi), sorted. */
  subvolumes(group?: string): Promise<string[]>;
  /** cephfs: snapshots of a subvolume ([] when it does not exist). */
  subvolumeSnapshots(subvolume: string, group?: string): Promise<string[]>;
  /** cephfs: the journal (metadata pool, namespace csi): objects starting with prefix. */
  fsObjects(prefix: string): Promise<string[]>;
  /** cephfs: keys of a journal object ([] when it does not exist). */
  fsOmapKeys(object: string): Promise<string[]>;
  /** cephfs: one omap value of a journal object. */
  fsOmapValue(object: string, key: string): Promise<string>;
}

/** The dev cluster's CephFS metadata pool and ceph-csi's journal namespace in it. */
const FS_JOURNAL = ['-p', 'cephfs_metadata', '-N', 'csi'];

let current: { info: DevClusterInfo; cluster: DevCluster } | undefined;

/** Registers the cluster's root hooks; call once, at the top level of a test file. */
export function useCephCluster(): CephFixture {
  before(async () => {
    const missing = await missingCephPackages();
    if (missing.length > 0) throw new Error(`the rbd tests need the ceph packages (missing: ${missing.join(' ')}); run scripts/setup.sh`);
    const dir = await mkdtemp(join(tmpdir(), 'stowage-ceph-'));
    const cluster = new DevCluster(dir, { installPackages: false });
    try {
      current = { info: await cluster.up(), cluster };
    } catch (e) {
      await cluster.down().catch(() => undefined);
      throw e;
    }
  }, { timeout: 180_000 });
  after(async () => {
    const c = current;
    current = undefined;
    await c?.cluster.down();
  }, { timeout: 120_000 });

  const info = () => {
    if (!current) throw new Error('the ceph test cluster is not up (useCephCluster must run its before hook first)');
    return current.info;
  };
  const cli = async (cmd: string, args: string[]) => {
    const { stdout } = await run(cmd, ['-c', info().conf, ...args], { timeout: 60_000, maxBuffer: 16 << 20 });
    return stdout;
  };
  const fixture: CephFixture = {
    get info() {
      return info();
    },
    get secrets() {
      return { userID: info().userID, userKey: info().userKey };
    },
    get parameters() {
      return { clusterID: info().clusterID, pool: info().pool };
    },
    rbd: (args) => cli('rbd', args),
    rados: (args) => cli('rados', args),
    ceph: (args) => cli('ceph', args),
    async images() {
      const ls = JSON.parse(await cli('rbd', ['ls', '-p', info().pool, '--format', 'json'])) as string[];
      const trash = JSON.parse(await cli('rbd', ['trash', 'ls', '-p', info().pool, '--format', 'json'])) as { name: string }[];
      return { images: ls.sort(), trash: trash.map((t) => t.name).sort() };
    },
    async omapKeys(object) {
      try {
        return (await cli('rados', ['-p', info().pool, 'listomapkeys', object])).split('\n').filter((l) => l !== '').sort();
      } catch (e) {
        if (/No such file or directory/.test((e as { stderr?: string }).stderr ?? '')) return [];
        throw e;
      }
    },
    async omapValue(object, key) {
      const dir = await mkdtemp(join(tmpdir(), 'stowage-omap-'));
      try {
        await cli('rados', ['-p', info().pool, 'getomapval', object, key, join(dir, 'value')]);
        return await readFile(join(dir, 'value'), 'utf8');
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    },
    async objects(prefix) {
      return (await cli('rados', ['-p', info().pool, 'ls'])).split('\n').filter((l) => l.startsWith(prefix)).sort();
    },
    get cephfsSecrets() {
      return { adminID: info().userID, adminKey: info().userKey, userID: info().userID, userKey: info().userKey };
    },
    get cephfsParameters() {
      return { clusterID: info().clusterID, fsName: info().fsName };
    },
    async subvolumes(group = 'csi') {
      try {
        const out = JSON.parse(await cli('ceph', ['fs', 'subvolume', 'ls', info().fsName, group, '-f', 'json'])) as { name: string }[];
        return out.map((x) => x.name).sort();
      } catch (e) {
        if (/ENOENT|does not exist/.test((e as { stderr?: string }).stderr ?? '')) return [];
        throw e;
      }
    },
    async subvolumeSnapshots(subvolume, group = 'csi') {
      try {
        const out = JSON.parse(await cli('ceph', ['fs', 'subvolume', 'snapshot', 'ls', info().fsName, subvolume, '--group_name', group, '-f', 'json'])) as { name: string }[];
        return out.map((x) => x.name).sort();
      } catch (e) {
        if (/ENOENT|does not exist/.test((e as { stderr?: string }).stderr ?? '')) return [];
        throw e;
      }
    },
    async fsObjects(prefix) {
      return (await cli('rados', [...FS_JOURNAL, 'ls'])).split('\n').filter((l) => l.startsWith(prefix)).sort();
    },
    async fsOmapKeys(object) {
      try {
        return (await cli('rados', [...FS_JOURNAL, 'listomapkeys', object])).split('\n').filter((l) => l !== '').sort();
      } catch (e) {
        if (/No such file or directory/.test((e as { stderr?: string }).stderr ?? '')) return [];
        throw e;
      }
    },
    async fsOmapValue(object, key) {
      const dir = await mkdtemp(join(tmpdir(), 'stowage-omap-'));
      try {
        await cli('rados', [...FS_JOURNAL, 'getomapval', object, key, join(dir, 'value')]);
        return await readFile(join(dir, 'value'), 'utf8');
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    },
  };
  return fixture;
}

/** The cluster an rbd test driver uses. */
export function cephOf(drv: { ceph: CephFixture | undefined }): CephFixture {
  if (!drv.ceph) throw new Error('this test driver has no ceph cluster (not the rbd backend)');
  return drv.ceph;
}
