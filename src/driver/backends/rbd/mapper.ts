/**
 * "Image → block device" on a node: what staging needs from a mapper, whichever of the three it
 * is (kernel-mapper.ts: krbd and rbd-nbd, fuse-mapper.ts: rbd-fuse + a loop device). The rest of
 * staging (blkid, mkfs, fsck, mount, publish) only ever sees the device a mapper hands back, so a
 * mapper is unit-tested on its own with a recording command runner, and the chain above it is the
 * same for all three.
 *
 * One device per image on a node, shared by every staging of the volume there (ceph-csi does the
 * same: an image already mapped is found and used, never mapped twice). Which mapper a staging
 * used is kept in its stash, so unstage, stats and a restarted driver's repair use the same one.
 */
import type { Logger } from 'pino';
import type { FuseTarget } from './fuse.js';
import type { MapperKind } from './map-options.js';

/** What a mapper is told about the image: the stash's fields it reads. */
export interface MapTarget {
  volumeId: string;
  /** The image, its cluster and the cephx user (named for rbd-fuse, the first mapper). */
  fuse: FuseTarget;
  /** The image's share key (one rbd-fuse mount per image and user). */
  fuseKey: string;
  /** This mapper's mapOptions / unmapOptions (already parsed and checked). */
  mapOptions?: string[];
  unmapOptions?: string[];
  /** The device a kernel mapper mapped it to, as noted in the stash after the map. */
  device?: string;
}

export interface MappedDevice {
  device: string;
  readonly: boolean;
}

export interface ImageMapper {
  readonly kind: MapperKind;
  /** The devices the image is mapped to on this node now ([] when none). */
  devices(t: MapTarget): Promise<MappedDevice[]>;
  /**
   * Maps the image unless it already is, and returns its device. secretKey is undefined in a
   * repair after a restart (only rbd-fuse keeps credentials for that).
   */
  map(t: MapTarget, secretKey: string | undefined, readonly: boolean, log: Logger): Promise<string>;
  /**
   * Undoes what map did, for a staging going away; `others` are the stagings left on the node,
   * so a device (or rbd-fuse mount) another staging still uses stays.
   */
  release(t: MapTarget, others: MapTarget[], log: Logger): Promise<void>;
  /** Makes the device show the image's new size after a controller expansion. */
  refresh(t: MapTarget, device: string): Promise<void>;
  /** undefined while the mapping serves; otherwise what is wrong with it (for volume health). */
  problem(t: MapTarget): Promise<string | undefined>;
  /** A read-only device of the image, for a read-only block publication of a read-write staging. */
  readOnlyDevice(t: MapTarget): Promise<string>;
}
