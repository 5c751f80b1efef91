/**
 * ceph-csi's rbd StorageClass parameters that choose and tune the node's mapper, parsed and
 * checked in one place so CreateVolume and NodeStage refuse the same malformed values
 * (INVALID_ARGUMENT) before anything is mapped.
 *
 * - `mounter`: "rbd" (krbd, ceph-csi's default), "rbd-nbd", or ours, "fuse" (rbd-fuse + a loop
 *   device). Absent: krbd when the node's kernel has the rbd bus (/sys/bus/rbd), else fuse.
 * - `mapOptions` / `unmapOptions`: ceph-csi's format, `[krbd:|nbd:]opt[=value],…` items separated
 *   by ";"; an item without a prefix is krbd's. A value may hold ":" only in a prefixed item
 *   (`krbd:crush_location=zone:zone1`). Each option reaches `rbd map`/`rbd unmap` as one
 *   `--options` argument (argv, never a shell), so only emptiness and shape are checked.
 */
import { InvalidArgumentError } from '../../../csi/errors.js';

export type MapperKind = 'krbd' | 'nbd' | 'fuse';

/** The `mounter` values this backend takes: ceph-csi's two, and rbd-fuse. */
export const MOUNTER_VALUES: Record<string, MapperKind> = { rbd: 'krbd', 'rbd-nbd': 'nbd', fuse: 'fuse' };

export interface MapOptions {
  krbd: string[];
  nbd: string[];
}

/** One option: a name, optionally "=value"; no whitespace, "," or ";" anywhere. */
const OPTION = /^[A-Za-z0-9_.-]+(=[^\s,;=][^\s,;]*)?$/;

/** The mapper a `mounter` value asks for; undefined (absent) is decided on the node. */
export function mapperOfParameter(mounter: string | undefined): MapperKind | undefined {
  if (mounter === undefined || mounter === '') return undefined;
  const kind = MOUNTER_VALUES[mounter];
  if (!kind) throw new InvalidArgumentError(`parameter mounter "${mounter}" is not one of ${Object.keys(MOUNTER_VALUES).join(', ')}`);
  return kind;
}

/** Parses a mapOptions / unmapOptions value (`name` is the parameter, for messages). */
export function parseMapOptions(text: string | undefined, name: 'mapOptions' | 'unmapOptions'): MapOptions {
  const out: MapOptions = { krbd: [], nbd: [] };
  if (text === undefined) return out;
  if (text.trim() === '') throw new InvalidArgumentError(`parameter ${name} is empty (leave it out, or give options like "krbd:lock_on_read;nbd:try-netlink")`);
  for (const item of text.split(';')) {
    if (item.trim() === '') continue; // "a;" and ";b" are fine, as in ceph-csi
    const colon = item.indexOf(':');
    let kind: keyof MapOptions = 'krbd';
    let options = item;
    if (colon >= 0) {
      const prefix = item.slice(0, colon).trim().toLowerCase();
      if (prefix !== 'krbd' && prefix !== 'nbd') {
        throw new InvalidArgumentError(`parameter ${name}: unknown mounter type "${item.slice(0, colon).trim()}" in "${item}" (items are "krbd:options" or "nbd:options")`);
      }
      kind = prefix;
      options = item.slice(colon + 1);
    }
    const list = options.split(',').map((o) => o.trim());
    for (const o of list) {
      if (o === '') throw new InvalidArgumentError(`parameter ${name}: empty option in "${item}"`);
      if (!OPTION.test(o)) throw new InvalidArgumentError(`parameter ${name}: malformed option "${o}" in "${item}" (expected name or name=value)`);
    }
    out[kind] = list;
  }
  return out;
}

/** The options of one mapper (fuse takes none). */
export function optionsFor(kind: MapperKind, opts: MapOptions): string[] {
  return kind === 'fuse' ? [] : opts[kind];
}
