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
  constructor(readonly root: string) {}

  get volumesDir(): string {
    return join(this.root, 'volumes');
  }

  get snapshotsDir(): string {
    return join(this.root, 'snapshots');
  }

  get volumeRecordsDir(): string {
    return join(this.root, 'meta', 'volumes');
  }

  get snapshotRecordsDir(): string {
    return join(this.root, 'meta', 'snapshots');
  }

  /** IDs are validated UUIDs before they get here, so joining them is safe. */
  volumePath(id: string, storage: Storage): string {
    return join(this.volumesDir, storage === 'subvolume' ? id : `${id}.img`);
  }

  snapshotPath(id: string, storage: Storage): string {
    return join(this.snapshotsDir, storage === 'subvolume' ? id : `${id}.img`);
  }
}
