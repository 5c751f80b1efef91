// One clear reason for a volume source the embedded node agent cannot mount, instead of a generic
// refusal: network filesystems and disks that need kernel support this machine lacks (nfs, iscsi…)
// say so, the ones it has but the agent does not mount point to a CSI driver.
import { existsSync, readFileSync } from 'node:fs';

/** Kernel support each in-tree source needs, and how to find it. */
const NEEDS: Record<string, { what: string; present: () => boolean }> = {
  nfs: { what: 'no nfs filesystem (not in /proc/filesystems)', present: () => hasFilesystem('nfs') },
  iscsi: { what: 'no iSCSI initiator (no iscsi_tcp module, no iscsiadm)', present: () => existsSync('/sys/module/iscsi_tcp') && (existsSync('/usr/sbin/iscsiadm') || existsSync('/sbin/iscsiadm')) },
  glusterfs: { what: 'no glusterfs client (no mount.glusterfs)', present: () => existsSync('/sbin/mount.glusterfs') || existsSync('/usr/sbin/mount.glusterfs') },
  fc: { what: 'no Fibre Channel host (no /sys/class/fc_host)', present: () => existsSync('/sys/class/fc_host') },
};

function hasFilesystem(name: string): boolean {
  try {
    return readFileSync('/proc/filesystems', 'utf8')
      .split('\n')
      .some((line) => line.split('\t').at(-1)?.trim() === name);
  } catch {
    return false;
  }
}

/** The source kinds of a volume (its keys other than the name). */
export function sourceKinds(volume: object, ignore: readonly string[] = ['name']): string[] {
  return Object.keys(volume).filter((k) => !ignore.includes(k));
}

/** Why a volume of this source kind cannot be set up on this node. */
export function unsupportedReason(kind: string): string {
  const need = NEEDS[kind];
  if (need !== undefined && !need.present()) return `${kind} volumes cannot be mounted on this node: it has ${need.what}`;
  return `${kind} volumes are not mounted by the embedded node agent (it mounts CSI, hostPath, local, emptyDir, configMap and secret volumes): use a CSI driver for ${kind}`;
}
