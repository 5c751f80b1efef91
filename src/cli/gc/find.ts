// `stowage gc`'s judgement, pure: given what the drivers hold (their listings) and what the API
// holds (PVs, VolumeSnapshotContents, which drivers are registered), which of them are orphans —
// storage nobody refers to, and API objects whose storage or driver is gone — and which of those
// are old enough to touch. No I/O here, so every rule is unit-tested against plain objects.
import type { PersistentVolume } from '../../control/api/types/core.js';
import type { VolumeSnapshotContent } from '../../control/api/types/snapshot.js';

/** One volume or snapshot a driver holds. */
export interface BackendItem {
  id: string;
  /** Where it lives, for people: a node, a cluster/pool, an endpoint. */
  where: string;
  /** When it was made (RFC 3339), when the driver says; otherwise when gc first saw it unreferenced. */
  createdAt?: string;
  /** Reserved in the driver's journal but not complete (a CreateVolume in flight): never touched. */
  inFlight?: boolean;
  /** A member of a group snapshot: it goes with its group (DeleteVolumeGroupSnapshot), never alone. */
  groupSnapshotId?: string;
  /** How to delete it: the CSI endpoint that listed it. */
  endpoint?: string;
  /** The Secret whose data the delete call carries (the class it was found through); else the driver's classes'. */
  secretRef?: { name: string; namespace: string };
}

/** What one driver holds, and whether the listing is the whole truth. */
export interface Inventory {
  driver: string;
  volumes: BackendItem[];
  snapshots: BackendItem[];
  /** Every place the driver keeps volumes was listed: a handle missing from `volumes` is gone. */
  volumesComplete: boolean;
  snapshotsComplete: boolean;
  /** Whether the listing covers where an ID would live (a backend listing a few pools); every ID when absent. */
  covers?: (id: string) => boolean;
}

export interface ApiState {
  pvs: readonly PersistentVolume[];
  contents: readonly VolumeSnapshotContent[];
  /** Names of the CSIDriver objects. */
  csiDrivers: readonly string[];
  /** Driver names some CSINode lists. */
  nodeDrivers: readonly string[];
}

export type FindingKind = 'Snapshot' | 'Volume' | 'VolumeSnapshotContent' | 'PersistentVolume';

export interface Finding {
  kind: FindingKind;
  driver: string;
  /** Volume / snapshot ID, or the object's name. */
  name: string;
  where: string;
  /** undefined when unknown. */
  ageMs: number | undefined;
  why: string;
  /** Younger than the grace period: listed, never deleted. */
  young: boolean;
  /** Listed, never deleted: a create in flight (or abandoned), a member of a group snapshot. */
  neverTouched?: boolean;
  /** An API object whose driver is not registered: its finalizers are removed when it is deleted. */
  driverGone?: boolean;
  /** Backend items: the endpoint to delete them through, and the Secret to carry. */
  endpoint?: string;
  secretRef?: { name: string; namespace: string };
  /** API objects: the object as listed (for preconditions and messages). */
  object?: PersistentVolume | VolumeSnapshotContent;
}

/** Deletion order: what depends on something goes first (snapshots before their volumes, objects last). */
const ORDER: Record<FindingKind, number> = { Snapshot: 0, Volume: 1, VolumeSnapshotContent: 2, PersistentVolume: 3 };

export function snapshotHandleOf(c: VolumeSnapshotContent): string | undefined {
  return c.status?.snapshotHandle ?? c.spec.source.snapshotHandle;
}

function ageOf(timestamp: string | undefined, now: number): number | undefined {
  if (timestamp === undefined) return undefined;
  const t = Date.parse(timestamp);
  return Number.isNaN(t) ? undefined : Math.max(0, now - t);
}

export interface FindOptions {
  now: number;
  graceMs: number;
}

export function findOrphans(inventories: readonly Inventory[], api: ApiState, opts: FindOptions): Finding[] {
  const findings: Finding[] = [];
  const young = (ageMs: number | undefined): boolean => ageMs === undefined || ageMs < opts.graceMs;
  const registered = new Set([...api.csiDrivers, ...api.nodeDrivers]);
  const byDriver = new Map(inventories.map((i) => [i.driver, i]));

  for (const inv of inventories) {
    const volumeRefs = new Set(api.pvs.filter((pv) => pv.spec.csi?.driver === inv.driver).map((pv) => pv.spec.csi?.volumeHandle));
    const snapshotRefs = new Set(api.contents.filter((c) => c.spec.driver === inv.driver).map(snapshotHandleOf));
    const backendFinding = (kind: 'Volume' | 'Snapshot', item: BackendItem, why: string): Finding => {
      const ageMs = ageOf(item.createdAt, opts.now);
      return { kind, driver: inv.driver, name: item.id, where: item.where, ageMs, why, young: young(ageMs), ...(item.endpoint === undefined ? {} : { endpoint: item.endpoint }), ...(item.secretRef === undefined ? {} : { secretRef: item.secretRef }) };
    };
    // What is still being made is shown (an abandoned create is findable) but never a target.
    const kept = (kind: 'Volume' | 'Snapshot', item: BackendItem, why: string): Finding => ({ ...backendFinding(kind, item, why), neverTouched: true });
    const inFlight = (kind: 'Volume' | 'Snapshot', item: BackendItem): Finding => kept(kind, item, `reserved in the driver's journal, not complete (a Create${kind} in flight or abandoned)`);
    for (const s of inv.snapshots) {
      if (snapshotRefs.has(s.id)) continue;
      if (s.inFlight) findings.push(inFlight('Snapshot', s));
      else if (s.groupSnapshotId !== undefined) findings.push(kept('Snapshot', s, `no VolumeSnapshotContent refers to it, but it is a member of group snapshot ${s.groupSnapshotId} (DeleteVolumeGroupSnapshot removes it)`));
      else findings.push(backendFinding('Snapshot', s, 'no VolumeSnapshotContent refers to it'));
    }
    for (const v of inv.volumes) {
      if (volumeRefs.has(v.id)) continue;
      findings.push(v.inFlight ? inFlight('Volume', v) : backendFinding('Volume', v, 'no PersistentVolume refers to it'));
    }
  }

  const objectFinding = (kind: 'PersistentVolume' | 'VolumeSnapshotContent', obj: PersistentVolume | VolumeSnapshotContent, driver: string, why: string, driverGone: boolean): Finding => {
    const ageMs = ageOf(obj.metadata.creationTimestamp, opts.now);
    return { kind, driver, name: obj.metadata.name ?? '', where: 'api', ageMs, why, young: young(ageMs), ...(driverGone ? { driverGone } : {}), object: obj };
  };
  const notRegistered = (driver: string): string => `driver ${driver} is not registered (no CSIDriver, no CSINode lists it)`;

  for (const pv of api.pvs) {
    const csi = pv.spec.csi;
    if (csi === undefined) continue;
    if (!registered.has(csi.driver)) {
      findings.push(objectFinding('PersistentVolume', pv, csi.driver, notRegistered(csi.driver), true));
      continue;
    }
    // Already being deleted, or released to a reclaim Delete: the provisioner's job, not ours.
    if (pv.metadata.deletionTimestamp !== undefined) continue;
    if (pv.status?.phase === 'Released' && pv.spec.persistentVolumeReclaimPolicy === 'Delete') continue;
    const inv = byDriver.get(csi.driver);
    if (inv?.volumesComplete !== true || inv.covers?.(csi.volumeHandle) === false) continue;
    if (!inv.volumes.some((v) => v.id === csi.volumeHandle)) findings.push(objectFinding('PersistentVolume', pv, csi.driver, `volume ${csi.volumeHandle} does not exist in the driver`, false));
  }

  for (const c of api.contents) {
    const driver = c.spec.driver;
    if (!registered.has(driver)) {
      findings.push(objectFinding('VolumeSnapshotContent', c, driver, notRegistered(driver), true));
      continue;
    }
    const handle = snapshotHandleOf(c);
    if (handle === undefined || c.metadata.deletionTimestamp !== undefined) continue;
    const inv = byDriver.get(driver);
    if (inv?.snapshotsComplete !== true || inv.covers?.(handle) === false) continue;
    if (!inv.snapshots.some((s) => s.id === handle)) findings.push(objectFinding('VolumeSnapshotContent', c, driver, `snapshot ${handle} does not exist in the driver`, false));
  }

  return findings.sort((a, b) => ORDER[a.kind] - ORDER[b.kind] || a.driver.localeCompare(b.driver) || a.name.localeCompare(b.name));
}
