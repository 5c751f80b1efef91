// `stowage gc --delete`: each finding removed the way its owner would. Storage through the driver's
// Controller service (DeleteSnapshot / DeleteVolume, carrying the Secret its class names, as
// `stowage down --purge` and the provisioner do), never behind the driver's back. API objects by
// deleting them; their finalizers are removed only when their driver is not registered (nobody
// else ever will), and the line says so. A finalizer that keeps a live object (kubernetes.io/
// pv-protection on a Bound PV) is reported, not forced.
import type { PersistentVolume } from '../../control/api/types/core.js';
import type { VolumeSnapshotContent } from '../../control/api/types/snapshot.js';
import { CsiClient } from '../../csi/client.js';
import type { ApiClient } from '../api-client.js';
import { resourceForName } from '../../control/api/registry.js';
import type { Finding } from './find.js';

export type SecretsFor = (f: Finding) => Promise<Record<string, string>>;

const CALL_TIMEOUT_MS = 120_000;

export interface DeleteResult {
  finding: Finding;
  ok: boolean;
  message: string;
}

function resource(name: string) {
  const r = resourceForName(name);
  if (r === undefined) throw new Error(`unknown resource ${name}`);
  return r;
}

async function deleteStorage(f: Finding, secrets: Record<string, string>): Promise<string> {
  if (f.endpoint === undefined) throw new Error('no endpoint to delete it through');
  const client = CsiClient.connect(`unix://${f.endpoint}`, { timeoutMs: CALL_TIMEOUT_MS });
  try {
    if (f.kind === 'Snapshot') await client.controller.DeleteSnapshot({ snapshot_id: f.name, secrets });
    else await client.controller.DeleteVolume({ volume_id: f.name, secrets });
  } finally {
    client.close();
  }
  return `${f.kind.toLowerCase()} ${f.name} deleted through ${f.driver}`;
}

async function deleteObject(api: ApiClient, f: Finding): Promise<string> {
  const obj = f.object as PersistentVolume | VolumeSnapshotContent;
  const res = resource(f.kind === 'PersistentVolume' ? 'persistentvolumes' : 'volumesnapshotcontents');
  const label = `${res.singular} ${f.name}`;
  const uid = obj.metadata.uid;
  let left = await api.delete<PersistentVolume | VolumeSnapshotContent>(res, undefined, f.name, uid === undefined ? {} : { preconditions: { uid } }).catch((err: unknown) => {
    if ((err as { status?: { code?: number } }).status?.code === 404) return undefined;
    throw err;
  });
  if (left === undefined || (left.metadata.finalizers ?? []).length === 0) return `${label} deleted`;
  const finalizers = left.metadata.finalizers ?? [];
  if (f.driverGone) {
    await api.patch(res, undefined, f.name, { metadata: { finalizers: null } }).catch((err: unknown) => {
      if ((err as { status?: { code?: number } }).status?.code !== 404) throw err;
    });
    return `${label} deleted (finalizers ${finalizers.join(', ')} removed: driver ${f.driver} is not registered)`;
  }
  // Give the controllers a moment to finish their part (the provisioner / snapshotter finalizers).
  for (let i = 0; i < 20 && left !== undefined; i++) {
    await new Promise((r) => setTimeout(r, 250));
    left = await api.find<PersistentVolume | VolumeSnapshotContent>(res, undefined, f.name);
    if (left?.metadata.uid !== uid) left = undefined;
  }
  if (left === undefined) return `${label} deleted`;
  const claim = (left as PersistentVolume).spec.claimRef;
  const held = (left.metadata.finalizers ?? []).join(', ');
  const why = f.kind === 'PersistentVolume' && claim !== undefined && (left as PersistentVolume).status?.phase === 'Bound' ? `; it is Bound: delete claim ${claim.namespace ?? 'default'}/${claim.name ?? ''} to release it` : '';
  return `${label} marked for deletion, still held by ${held}${why}`;
}

export async function deleteFindings(findings: readonly Finding[], api: ApiClient, secretsFor: SecretsFor): Promise<DeleteResult[]> {
  const results: DeleteResult[] = [];
  for (const f of findings) {
    try {
      const message = f.kind === 'Snapshot' || f.kind === 'Volume' ? await deleteStorage(f, await secretsFor(f)) : await deleteObject(api, f);
      results.push({ finding: f, ok: true, message });
    } catch (err) {
      results.push({ finding: f, ok: false, message: `${f.kind.toLowerCase()} ${f.name}: ${(err as Error).message}` });
    }
  }
  return results;
}
