/**
 * The mapper for nodes without the rbd and nbd kernel modules: an rbd-fuse mount of the image
 * (fuse.ts: one per image and user) and a loop device on the image's file. The device is shared
 * by every staging of the volume on the node; the rbd-fuse mount by every staging of its image and
 * user. It keeps its credentials while mounted, so a restarted driver can remount a dead rbd-fuse
 * without secrets (node-staging.ts' repair).
 */
import { stat } from 'node:fs/promises';
import { basename, dirname } from 'node:path';
import type { Logger } from 'pino';
import type { LoopDevices } from '../../mount/loop.js';
import type { FuseMounts } from './fuse.js';
import type { ImageMapper, MappedDevice, MapTarget } from './mapper.js';

export class FuseMapper implements ImageMapper {
  readonly kind = 'fuse' as const;

  constructor(
    readonly fuse: FuseMounts,
    private readonly loops: LoopDevices,
  ) {}

  /** The image's file on its rbd-fuse mount. */
  file(t: MapTarget): string {
    return this.fuse.imageFile(t.fuseKey, t.fuse.image);
  }

  /**
   * Loop devices on the image's file. After its rbd-fuse mount was replaced, the kernel names an
   * old device's file relative to the detached mount, so a device recorded in sysfs by image name
   * under our fuse directory counts too.
   */
  async devices(t: MapTarget): Promise<MappedDevice[]> {
    const file = this.file(t);
    const image = basename(file);
    return (await this.loops.list())
      .filter((l) => {
        const b = l.backingFile.replace(/ \(deleted\)$/, '');
        return b === file || (b.endsWith(`/${image}`) && (b === `/${image}` || b.startsWith(`${dirname(dirname(file))}/`)));
      })
      .map((l) => ({ device: l.device, readonly: l.readonly }));
  }

  async map(t: MapTarget, secretKey: string | undefined, readonly: boolean, log: Logger): Promise<string> {
    const file = await this.fuse.ensure(t.fuse, secretKey, log);
    return (await this.devices(t))[0]?.device ?? (await this.loops.attach(file, { readonly }));
  }

  async release(t: MapTarget, others: MapTarget[], log: Logger): Promise<void> {
    if (!others.some((o) => o.volumeId === t.volumeId)) {
      for (const d of await this.devices(t)) await this.loops.detach(d.device);
    }
    if (!others.some((o) => o.fuseKey === t.fuseKey)) await this.fuse.release(t.fuseKey, log);
  }

  /** rbd-fuse runs with attr_timeout=0: this stat asks it, and it asks librbd, for the new size. */
  async refresh(t: MapTarget, device: string): Promise<void> {
    await stat(this.file(t));
    await this.loops.refreshCapacity(device);
  }

  async problem(t: MapTarget): Promise<string | undefined> {
    const state = await this.fuse.state(t.fuseKey);
    return state === 'ok' ? undefined : `the rbd-fuse mount of image ${t.fuse.pool}/${t.fuse.image} is ${state}`;
  }

  async readOnlyDevice(t: MapTarget): Promise<string> {
    return this.loops.attach(this.file(t), { readonly: true });
  }
}
