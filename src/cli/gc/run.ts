// `stowage gc`, put together: read the API (PVs, contents, registered drivers, classes), list what
// every driver holds (gc/csi-inventory.ts, plus backend-specific listers for drivers that do not
// advertise ListVolumes), judge (gc/find.ts), print the table, and with --delete remove what is
// older than the grace period (gc/delete.ts) after a confirmation — asked on a terminal, or given
// with --yes — and a second look at the API, so nothing that became referenced meanwhile goes.
import { createInterface } from 'node:readline/promises';
import type { Node, PersistentVolume, Secret } from '../../control/api/types/core.js';
import type { VolumeSnapshotClass, VolumeSnapshotContent } from '../../control/api/types/snapshot.js';
import type { CSIDriver, CSINode, StorageClass } from '../../control/api/types/storage.js';
import { humanDuration } from '../../control/api/printers/values.js';
import { resourceForName, type ResourceInfo } from '../../control/api/registry.js';
import { decodeSecret } from '../../control/controllers/provisioner.js';
import { EMBEDDED_NODE_ANNOTATION } from '../../control/node/embedded-nodes.js';
import type { ApiClient } from '../api-client.js';
import { CliError } from '../errors.js';
import { formatTable } from '../format/table.js';
import { type EndpointListing, inventoriesOf, listEndpoint, stateDirEndpoints, type Endpoint } from './csi-inventory.js';
import { deleteFindings } from './delete.js';
import { type ApiState, type Finding, findOrphans, type Inventory } from './find.js';
import { applyFirstSeen } from './first-seen.js';

export const PROVISIONER_SECRET_NAME = 'csi.storage.k8s.io/provisioner-secret-name';
export const PROVISIONER_SECRET_NAMESPACE = 'csi.storage.k8s.io/provisioner-secret-namespace';
export const SNAPSHOTTER_SECRET_NAME = 'csi.storage.k8s.io/snapshotter-secret-name';
export const SNAPSHOTTER_SECRET_NAMESPACE = 'csi.storage.k8s.io/snapshotter-secret-namespace';

/** What the API holds that gc reads (besides ApiState): classes for secrets and backend listers. */
export interface ApiView extends ApiState {
  storageClasses: StorageClass[];
  snapshotClasses: VolumeSnapshotClass[];
  embeddedNodes: string[];
}

/** Lists a driver that does not list itself over CSI (rbd, cephfs: ListVolumes carries no secrets). */
export type BackendLister = (api: ApiView, readSecret: (name: string, namespace: string) => Promise<Record<string, string>>) => Promise<{ inventories: Inventory[]; warnings: string[] }>;

export interface GcOptions {
  graceMs: number;
  delete: boolean;
  yes: boolean;
  /** CSI endpoints given with --endpoint; otherwise the state directory's. */
  endpoints: string[];
  /** The state directory (endpoints, first-seen ledger), when there is one. */
  stateDir?: string;
  listers?: BackendLister[];
  out?: NodeJS.WritableStream;
  err?: NodeJS.WritableStream;
  /** Asks the question on a terminal; undefined when there is none. */
  confirm?: (question: string) => Promise<boolean>;
}

function res(name: string): ResourceInfo {
  const r = resourceForName(name);
  if (r === undefined) throw new Error(`unknown resource ${name}`);
  return r;
}

export async function readApi(api: ApiClient): Promise<ApiView> {
  const [pvs, contents, drivers, csiNodes, nodes, scs, vscs] = await Promise.all([
    api.list<PersistentVolume>(res('persistentvolumes')),
    api.list<VolumeSnapshotContent>(res('volumesnapshotcontents')),
    api.list<CSIDriver>(res('csidrivers')),
    api.list<CSINode>(res('csinodes')),
    api.list<Node>(res('nodes')),
    api.list<StorageClass>(res('storageclasses')),
    api.list<VolumeSnapshotClass>(res('volumesnapshotclasses')),
  ]);
  return {
    pvs: pvs.items,
    contents: contents.items,
    csiDrivers: drivers.items.map((d) => d.metadata.name ?? ''),
    nodeDrivers: [...new Set(csiNodes.items.flatMap((n) => n.spec.drivers.map((d) => d.name)))],
    storageClasses: scs.items,
    snapshotClasses: vscs.items,
    embeddedNodes: nodes.items.filter((n) => n.metadata.annotations?.[EMBEDDED_NODE_ANNOTATION] === 'true').map((n) => n.metadata.name ?? ''),
  };
}

/** Embedded nodes that should have a plugin of a per-node driver but have none: that driver's listing is incomplete. */
function missingNodeListings(listings: readonly EndpointListing[], embeddedNodes: readonly string[]): EndpointListing[] {
  const perNode = new Map<string, Set<string>>();
  for (const l of listings) {
    if (l.driver === undefined || l.endpoint.where === 'controller' || !l.listsVolumes) continue;
    perNode.set(l.driver, (perNode.get(l.driver) ?? new Set()).add(l.endpoint.where));
  }
  const out: EndpointListing[] = [];
  for (const [driver, nodes] of perNode) {
    for (const node of embeddedNodes) {
      if (nodes.has(node)) continue;
      out.push({ endpoint: { socket: '', where: node }, driver, error: `node ${node} has no ${driver} plugin socket`, hasController: false, listsVolumes: false, listsSnapshots: false, volumes: [], snapshots: [] });
    }
  }
  return out;
}

function secretRefOf(params: Record<string, string> | undefined, nameKey: string, namespaceKey: string): { name: string; namespace: string } | undefined {
  const name = params?.[nameKey];
  const namespace = params?.[namespaceKey];
  // A templated reference (${pvc.name}…) names no one Secret gc could use.
  if (!name || !namespace || name.includes('${') || namespace.includes('${')) return undefined;
  return { name, namespace };
}

/** The Secret a delete of f carries: its own, else the first class of its driver that names one. */
export function deletionSecretRef(f: Finding, view: ApiView): { name: string; namespace: string } | undefined {
  if (f.secretRef !== undefined) return f.secretRef;
  if (f.kind === 'Snapshot') {
    for (const c of view.snapshotClasses.filter((c) => c.driver === f.driver)) {
      const ref = secretRefOf(c.parameters, SNAPSHOTTER_SECRET_NAME, SNAPSHOTTER_SECRET_NAMESPACE);
      if (ref) return ref;
    }
  }
  for (const c of view.storageClasses.filter((c) => c.provisioner === f.driver)) {
    const ref = secretRefOf(c.parameters, PROVISIONER_SECRET_NAME, PROVISIONER_SECRET_NAMESPACE);
    if (ref) return ref;
  }
  return undefined;
}

export function formatFindings(findings: readonly Finding[], graceMs: number): string {
  const rows = findings.map((f) => [
    f.kind,
    f.driver,
    f.name,
    f.where,
    f.ageMs === undefined ? '<unknown>' : humanDuration(f.ageMs),
    f.neverTouched ? `${f.why}: never touched` : f.young ? `${f.why}; younger than the grace period (${humanDuration(graceMs)}): kept` : f.why,
  ]);
  return formatTable([['KIND', 'DRIVER', 'ID/NAME', 'WHERE', 'AGE', 'WHY'], ...rows]);
}

const keyOf = (f: Finding): string => `${f.kind}/${f.driver}/${f.name}`;

export async function runGc(api: ApiClient, opts: GcOptions): Promise<void> {
  const out = opts.out ?? process.stdout;
  const err = opts.err ?? process.stderr;
  const readSecret = async (name: string, namespace: string): Promise<Record<string, string>> => decodeSecret(await api.get<Secret>(res('secrets'), namespace, name));

  const look = async (): Promise<{ view: ApiView; findings: Finding[] }> => {
    const view = await readApi(api);
    const endpoints: Endpoint[] = opts.endpoints.length > 0 ? opts.endpoints.map((s) => ({ socket: s.replace(/^unix:(\/\/)?/, ''), where: s })) : opts.stateDir === undefined ? [] : stateDirEndpoints(opts.stateDir);
    const listings = await Promise.all(endpoints.map(listEndpoint));
    if (opts.endpoints.length === 0) listings.push(...missingNodeListings(listings, view.embeddedNodes));
    for (const l of listings) if (l.error !== undefined) err.write(`warning: ${l.endpoint.socket || l.endpoint.where}: ${l.error}; volumes of ${l.driver ?? 'its driver'} that are gone are not reported\n`);
    const inventories = inventoriesOf(listings);
    const listed = new Set(inventories.map((i) => i.driver));
    for (const lister of opts.listers ?? []) {
      const extra = await lister(view, readSecret);
      for (const w of extra.warnings) err.write(`warning: ${w}\n`);
      for (const inv of extra.inventories.filter((i) => !listed.has(i.driver))) {
        // Deleted through the driver's Controller service: the endpoint of it that answered.
        const controller = listings.find((l) => l.driver === inv.driver && l.hasController && l.error === undefined)?.endpoint.socket;
        if (controller !== undefined) for (const item of [...inv.volumes, ...inv.snapshots]) item.endpoint ??= controller;
        inventories.push(inv);
      }
    }
    const now = Date.now();
    const orphans = new Set(findOrphans(inventories, view, { now, graceMs: 0 }).map(keyOf));
    await applyFirstSeen(opts.stateDir, inventories, (driver, kind, id) => orphans.has(`${kind === 'volume' ? 'Volume' : 'Snapshot'}/${driver}/${id}`), now, (w) => err.write(`warning: ${w}\n`));
    return { view, findings: findOrphans(inventories, view, { now, graceMs: opts.graceMs }) };
  };

  const first = await look();
  if (first.findings.length === 0) {
    out.write('No orphans found.\n');
    return;
  }
  out.write(formatFindings(first.findings, opts.graceMs));
  if (!opts.delete) return;

  const deletable = (f: Finding): boolean => !f.young && !f.neverTouched;
  const targets = first.findings.filter(deletable);
  if (targets.length === 0) {
    out.write('nothing to delete: everything listed is younger than the grace period or still being made\n');
    return;
  }
  if (!opts.yes) {
    if (opts.confirm === undefined) throw new CliError('error: --delete needs a confirmation: run it on a terminal, or pass --yes');
    if (!(await opts.confirm(`Delete these ${targets.length} (the rows not marked "kept")? [y/N] `))) {
      out.write('nothing deleted\n');
      return;
    }
  }
  // A second look: anything that gained a reference (or lost its orphan status) since is spared.
  const second = await look();
  const again = new Map(second.findings.filter(deletable).map((f) => [keyOf(f), f]));
  const still = targets.flatMap((f) => {
    const current = again.get(keyOf(f));
    return current === undefined ? [] : [current];
  });
  for (const f of targets) if (!again.has(keyOf(f))) out.write(`${f.kind.toLowerCase()} ${f.name}: no longer an orphan, kept\n`);
  const results = await deleteFindings(still, api, async (f) => {
    const ref = deletionSecretRef(f, second.view);
    return ref === undefined ? {} : readSecret(ref.name, ref.namespace);
  });
  for (const r of results) (r.ok ? out : err).write(`${r.ok ? '' : 'error: '}${r.message}\n`);
  const failed = results.filter((r) => !r.ok).length;
  if (failed > 0) throw new CliError(`error: ${failed} of ${results.length} could not be deleted`);
}

/** A y/N question on the terminal, or undefined when stdin is not one. */
export function terminalConfirm(): ((question: string) => Promise<boolean>) | undefined {
  if (!process.stdin.isTTY) return undefined;
  return async (question) => {
    const rl = createInterface({ input: process.stdin, output: process.stderr });
    try {
      return /^y(es)?$/i.test((await rl.question(question)).trim());
    } finally {
      rl.close();
    }
  };
}
