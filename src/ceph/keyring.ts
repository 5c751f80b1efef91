/**
 * cephx keys and keyring files, made here rather than with one `ceph-authtool` call per entity.
 */
import { randomBytes } from 'node:crypto';

/**
 * A new cephx secret as ceph prints it (what `ceph-authtool --gen-print-key` gives): base64 of
 * CryptoKey's encoding — u16 type (1 = AES), utime created (u32 sec, u32 nsec), u16 length, and
 * 16 random bytes — all little-endian. That is why every ceph key starts with "AQ".
 */
export function generateCephxKey(now = Date.now()): string {
  const buf = Buffer.alloc(28);
  buf.writeUInt16LE(1, 0);
  buf.writeUInt32LE(Math.floor(now / 1000), 2);
  buf.writeUInt32LE((now % 1000) * 1_000_000, 6);
  buf.writeUInt16LE(16, 10);
  randomBytes(16).copy(buf, 12);
  return buf.toString('base64');
}

export interface KeyringEntry {
  /** Entity name: mon., client.admin, osd.0… */
  entity: string;
  key: string;
  /** Capabilities by service (mon, osd, mds, mgr). */
  caps?: Record<string, string>;
}

/** A keyring file in ceph's ini format. */
export function renderKeyring(entries: KeyringEntry[]): string {
  return entries
    .map((e) =>
      [
        `[${e.entity}]`,
        `\tkey = ${e.key}`,
        ...Object.entries(e.caps ?? {}).map(([service, cap]) => `\tcaps ${service} = "${cap}"`),
      ].join('\n'),
    )
    .join('\n')
    .concat('\n');
}
