import { join } from 'node:path';
import type { AccessType } from '../backend.js';

/**
 * Where things live inside the pool. Volumes without a filesystem type (or btrfs) are subvolumes
 * with a qgroup limit; ext4/xfs and raw block volumes are sparse image files on loop devices.
 */
export type Storage = 'subvolume' | 'image';

export function storageFor(accessType: AccessType, fsType: string): Storage {
  return accessType === 'mount' && (fsType === '' || fsType === 'btrfs') ? 'subvolume' : 'image';
}

export class PoolLayout {
  /**
   * @param root the btrfs filesystem holding volumes and snapshots
   * @param metaRoot where the journals live. For a pool image this is the directory beside
   *   pool.img, on the host's filesystem: on btrfs, creating a subvolume turns the next fsync into
   *   a full transaction commit, which made every journal write cost ~25 ms under load.
   */
  constructor(
    readonly root: string,
    private readonly metaRoot: string = join(root, 'meta'),
  ) {}

  get volumesDir(): string {
    return join(this.root, 'volumes');
  }

  get snapshotsDir(): string {
    return join(this.root, 'snapshots');
  }

  get volumeRecordsDir(): string {
    return join(this.metaRoot, 'volumes');
  }

  get snapshotRecordsDir(): string {
    return join(this.metaRoot, 'snapshots');
  }

  /** IDs are validated UUIDs before they get here, so joining them is safe. */
  volumePath(id: string, storage: Storage): string {
    return join(this.volumesDir, storage === 'subvolume' ? id : `${id}.img`);
  }

  snapshotPath(id: string, storage: Storage): string {
    return join(this.snapshotsDir, storage === 'subvolume' ? id : `${id}.img`);
  }
}
