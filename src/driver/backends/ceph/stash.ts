/**
 * What the node remembers about each staging (like ceph-csi's image-meta.json): NodeUnstage,
 * NodeUnpublish, NodeGetVolumeStats and NodeExpandVolume carry no secrets, so whatever they need
 * (the volume's record, the image, the rbd-fuse mount, the mount options) is written here by
 * NodeStage, before it changes anything. One file per (volume, staging path); sharing (of an
 * rbd-fuse mount, of a loop device) is counted by listing these files, never by counters in memory,
 * so a restarted driver sees exactly what is staged.
 */
import { createHash } from 'node:crypto';
import { mkdir, open, readdir, readFile, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { VolumeRecord } from '../backend.js';
import type { FuseTarget } from '../rbd/fuse.js';
import type { MapperKind } from '../rbd/map-options.js';

export interface Stash {
  version: 1;
  volumeId: string;
  stagingPath: string;
  volume: VolumeRecord;
  fuse: FuseTarget;
  /** The rbd-fuse mount's key (see FuseMounts.key); for every mapper, the image's share key. */
  fuseKey: string;
  /** How the image became a block device here (absent in stashes older than the choice: fuse). */
  mapper?: MapperKind;
  /** The class's mapOptions / unmapOptions for that mapper. */
  mapOptions?: string[];
  unmapOptions?: string[];
  /** The kernel device it was mapped to (krbd, rbd-nbd), noted once mapped: a dead rbd-nbd's device is no longer listed. */
  device?: string;
  accessType: 'mount' | 'block';
  /** Resolved: never '' (the backend's default filled in). '' for block. */
  fsType: string;
  mountFlags: string[];
  readonly: boolean;
}

/** What every stash has (the cephfs backend keeps its own kind in a StashDir too). */
export interface StashBase {
  version: 1;
  volumeId: string;
  stagingPath: string;
}

export class StashDir<S extends StashBase = Stash> {
  constructor(private readonly dir: string) {}

  private file(volumeId: string, stagingPath: string): string {
    const h = createHash('sha256').update(`${volumeId}\0${stagingPath}`).digest('hex').slice(0, 32);
    return join(this.dir, `${h}.json`);
  }

  async get(volumeId: string, stagingPath: string): Promise<S | undefined> {
    return read<S>(this.file(volumeId, stagingPath));
  }

  /** Every staging on this node. */
  async list(): Promise<S[]> {
    let names: string[];
    try {
      names = await readdir(this.dir);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw e;
    }
    const out: S[] = [];
    for (const n of names.filter((x) => x.endsWith('.json')).sort()) {
      const s = await read<S>(join(this.dir, n));
      if (s) out.push(s);
    }
    return out;
  }

  async ofVolume(volumeId: string): Promise<S[]> {
    return (await this.list()).filter((s) => s.volumeId === volumeId);
  }

  /** Durable before it returns (temp file, fsync, rename, directory fsync). */
  async put(s: S): Promise<void> {
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    const final = this.file(s.volumeId, s.stagingPath);
    const tmp = `${final}.tmp`;
    const fh = await open(tmp, 'w', 0o600);
    try {
      await fh.writeFile(JSON.stringify(s, null, 2));
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, final);
    const d = await open(this.dir, 'r');
    try {
      await d.sync();
    } finally {
      await d.close();
    }
  }

  async remove(volumeId: string, stagingPath: string): Promise<void> {
    await rm(this.file(volumeId, stagingPath), { force: true });
  }
}

async function read<S extends StashBase>(path: string): Promise<S | undefined> {
  try {
    const s = JSON.parse(await readFile(path, 'utf8')) as S;
    return s.version === 1 ? s : undefined;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    // A torn write cannot happen (rename), so anything unreadable is someone else's file.
    return undefined;
  }
}
