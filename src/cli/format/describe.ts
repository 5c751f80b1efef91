// `describe` output, kubectl's layout: "Field:\tvalue" lines aligned by Go's tabwriter (padding 2,
// nesting by two spaces per level), labels and annotations one per line, and an Events table
// (Type Reason Age From Message) of the Event objects about the object.
import type { ResourceInfo } from '../../control/api/registry.js';
import type { ConfigMap, Event, PersistentVolume, PersistentVolumeClaim, Pod, ResourceQuota, Secret } from '../../control/api/types/core.js';
import type { KubeObject } from '../../control/api/types/meta.js';
import type { NodeSelector } from '../../control/api/types/core.js';
import type { StorageClass } from '../../control/api/types/storage.js';
import { eventFirstSeen, eventLastSeen, isDefaultClass, pvcClass, pvClass } from './columns.js';
import { accessModes, age, DESCRIBE_TABWRITER, tabwrite } from './table.js';

export const LAST_APPLIED_ANNOTATION = 'kubectl.kubernetes.io/last-applied-configuration';
const MAX_ANNOTATION_LEN = 140;

/** What describe shows besides the object itself. */
export interface DescribeContext {
  /** Events about the object (any order). */
  events: readonly Event[];
  /** Pods of the object's namespace (for a PVC's "Used By"). */
  pods?: readonly Pod[];
  now?: number;
}

/**
 * kubectl's PrefixWriter over tabbedString: text accumulates in sections that are aligned
 * separately (kubectl flushes its tabwriter before the events table).
 */
class Writer {
  private readonly sections: string[] = [''];

  write(level: number, text: string): void {
    this.sections[this.sections.length - 1] += '  '.repeat(level) + text;
  }

  /** Text without the level prefix (kubectl's WriteLine). */
  line(text = ''): void {
    this.sections[this.sections.length - 1] += `${text}\n`;
  }

  flush(): void {
    this.sections.push('');
  }

  toString(): string {
    return this.sections.map((s) => tabwrite(s, DESCRIBE_TABWRITER)).join('');
  }
}

function printLabels(w: Writer, title: string, labels: Record<string, string> | undefined): void {
  w.write(0, `${title}:\t`);
  const keys = Object.keys(labels ?? {}).sort();
  if (keys.length === 0) {
    w.line('<none>');
    return;
  }
  keys.forEach((k, i) => {
    if (i > 0) w.write(0, '\t');
    w.line(`${k}=${labels?.[k] ?? ''}`);
  });
}

function printAnnotations(w: Writer, title: string, annotations: Record<string, string> | undefined): void {
  w.write(0, `${title}:\t`);
  const keys = Object.keys(annotations ?? {})
    .filter((k) => k !== LAST_APPLIED_ANNOTATION)
    .sort();
  if (keys.length === 0) {
    w.line('<none>');
    return;
  }
  keys.forEach((k, i) => {
    if (i > 0) w.write(0, '\t');
    const value = (annotations?.[k] ?? '').replace(/\n$/, '');
    if (value.length + k.length + 2 > MAX_ANNOTATION_LEN || value.includes('\n')) {
      w.line(`${k}:`);
      for (const s of value.split('\n')) w.line(s.length > MAX_ANNOTATION_LEN - 2 ? `${s.slice(0, MAX_ANNOTATION_LEN - 5)}...` : s);
    } else {
      w.line(`${k}: ${value}`);
    }
  });
}

/** Go's %v of a string slice: [a b]. */
function goSlice(items: readonly string[] | undefined): string {
  return `[${(items ?? []).join(' ')}]`;
}

/** labels.FormatLabels: k=v,k2=v2 sorted, or <none>. */
function formatMap(map: Record<string, string> | undefined): string {
  const keys = Object.keys(map ?? {}).sort();
  return keys.length === 0 ? '<none>' : keys.map((k) => `${k}=${map?.[k] ?? ''}`).join(',');
}

function statusLine(obj: KubeObject, phase: string | undefined, now: number): string {
  return obj.metadata.deletionTimestamp ? `Terminating (lasts ${age(obj.metadata.deletionTimestamp, now)})` : (phase ?? '');
}

/** kubectl's DescribeEvents: "Events:  <none>", or the table sorted by last time seen. */
function printEvents(w: Writer, events: readonly Event[], now: number): void {
  if (events.length === 0) {
    w.write(0, 'Events:\t<none>\n');
    return;
  }
  w.flush();
  const sorted = [...events].sort((a, b) => Date.parse(eventLastSeen(a) ?? '') - Date.parse(eventLastSeen(b) ?? ''));
  w.write(0, 'Events:\n  Type\tReason\tAge\tFrom\tMessage\n');
  w.write(1, '----\t------\t----\t----\t-------\n');
  for (const e of sorted) {
    const first = age(eventFirstSeen(e), now);
    const interval = (e.count ?? 1) > 1 ? `${age(eventLastSeen(e), now)} (x${e.count} over ${first})` : first;
    const from = e.source?.component || e.reportingComponent || '';
    w.write(1, `${e.type ?? ''}\t${e.reason ?? ''}\t${interval}\t${from}\t${(e.message ?? '').trim()}\n`);
  }
}

function printNodeAffinity(w: Writer, required: NodeSelector | undefined): void {
  w.write(0, 'Node Affinity:\t');
  if (required === undefined) {
    w.line('<none>');
    return;
  }
  w.line('');
  w.write(1, 'Required Terms:\t');
  if (required.nodeSelectorTerms.length === 0) {
    w.line('<none>');
    return;
  }
  w.line('');
  required.nodeSelectorTerms.forEach((term, i) => {
    w.write(2, `Term ${i}:\t`);
    const reqs = term.matchExpressions ?? [];
    if (reqs.length === 0) w.line('<none>');
    reqs.forEach((req, j) => {
      if (j > 0) w.write(2, '\t');
      const values = req.values && req.values.length > 0 ? ` [${req.values.join(', ')}]` : '';
      w.write(0, `${req.key} ${req.operator.toLowerCase()}${values}\n`);
    });
  });
}

function printPvSource(w: Writer, pv: PersistentVolume): void {
  const spec = pv.spec ?? {};
  if (spec.csi) {
    const c = spec.csi;
    w.write(2, `Type:\tCSI (a Container Storage Interface (CSI) volume source)\n    Driver:\t${c.driver}\n    FSType:\t${c.fsType ?? ''}\n    VolumeHandle:\t${c.volumeHandle}\n    ReadOnly:\t${c.readOnly ?? false}\n`);
    w.write(2, 'VolumeAttributes:\t');
    const keys = Object.keys(c.volumeAttributes ?? {}).sort();
    if (keys.length === 0) w.line('<none>');
    keys.forEach((k, i) => {
      if (i > 0) w.write(2, '\t');
      const line = `${k}=${c.volumeAttributes?.[k] ?? ''}`;
      w.write(0, `${line.length > MAX_ANNOTATION_LEN ? `${line.slice(0, MAX_ANNOTATION_LEN)}...` : line}\n`);
    });
  } else if (spec.hostPath) {
    w.write(2, `Type:\tHostPath (bare host directory volume)\n    Path:\t${spec.hostPath.path}\n    HostPathType:\t${spec.hostPath.type ?? '<none>'}\n`);
  } else if (spec.nfs) {
    w.write(2, `Type:\tNFS (an NFS mount that lasts the lifetime of a pod)\n    Server:\t${spec.nfs.server}\n    Path:\t${spec.nfs.path}\n    ReadOnly:\t${spec.nfs.readOnly ?? false}\n`);
  } else if (spec.local) {
    w.write(2, `Type:\tLocalVolume (a persistent volume backed by local storage on a node)\n    Path:\t${spec.local.path}\n`);
  } else {
    const other = Object.keys(spec).find((k) => !PV_SPEC_FIELDS.has(k));
    w.write(2, `Type:\t${other ?? '<unknown>'}\n`);
  }
}

const PV_SPEC_FIELDS = new Set(['capacity', 'accessModes', 'claimRef', 'persistentVolumeReclaimPolicy', 'storageClassName', 'mountOptions', 'volumeMode', 'nodeAffinity', 'volumeAttributesClassName']);

function describePvc(w: Writer, pvc: PersistentVolumeClaim, ctx: DescribeContext, now: number): void {
  const name = pvc.metadata.name ?? '';
  w.write(0, `Name:\t${name}\n`);
  w.write(0, `Namespace:\t${pvc.metadata.namespace ?? ''}\n`);
  w.write(0, `StorageClass:\t${pvcClass(pvc)}\n`);
  w.write(0, `Status:\t${statusLine(pvc, pvc.status?.phase, now)}\n`);
  w.write(0, `Volume:\t${pvc.spec?.volumeName ?? ''}\n`);
  printLabels(w, 'Labels', pvc.metadata.labels);
  printAnnotations(w, 'Annotations', pvc.metadata.annotations);
  w.write(0, `Finalizers:\t${goSlice(pvc.metadata.finalizers)}\n`);
  const bound = Boolean(pvc.spec?.volumeName);
  w.write(0, `Capacity:\t${bound ? (pvc.status?.capacity?.['storage'] ?? '') : ''}\n`);
  w.write(0, `Access Modes:\t${bound ? accessModes(pvc.status?.accessModes) : ''}\n`);
  if (pvc.spec?.volumeMode) w.write(0, `VolumeMode:\t${pvc.spec.volumeMode}\n`);
  const source = pvc.spec?.dataSource;
  if (source) {
    w.write(0, 'DataSource:\n');
    if (source.apiGroup) w.write(1, `APIGroup:\t${source.apiGroup}\n`);
    w.write(1, `Kind:\t${source.kind}\n`);
    w.write(1, `Name:\t${source.name}\n`);
  }
  const users = (ctx.pods ?? []).filter((p) => (p.spec?.volumes ?? []).some((v) => v.persistentVolumeClaim?.claimName === name)).map((p) => p.metadata.name ?? '');
  w.write(0, 'Used By:\t');
  if (users.length === 0) w.line('<none>');
  users.sort().forEach((u, i) => {
    if (i > 0) w.write(0, '\t');
    w.line(u);
  });
  const conditions = pvc.status?.conditions ?? [];
  if (conditions.length > 0) {
    w.write(0, 'Conditions:\n');
    w.write(1, 'Type\tStatus\tLastProbeTime\tLastTransitionTime\tReason\tMessage\n');
    w.write(1, '----\t------\t-----------------\t------------------\t------\t-------\n');
    for (const c of conditions) {
      w.write(1, `${c.type} \t${c.status} \t${c.lastProbeTime ?? ''} \t${c.lastTransitionTime ?? ''} \t${c.reason ?? ''} \t${c.message ?? ''}\n`);
    }
  }
  printEvents(w, ctx.events, now);
}

function describePv(w: Writer, pv: PersistentVolume, ctx: DescribeContext, now: number): void {
  w.write(0, `Name:\t${pv.metadata.name ?? ''}\n`);
  printLabels(w, 'Labels', pv.metadata.labels);
  printAnnotations(w, 'Annotations', pv.metadata.annotations);
  w.write(0, `Finalizers:\t${goSlice(pv.metadata.finalizers)}\n`);
  w.write(0, `StorageClass:\t${pvClass(pv)}\n`);
  w.write(0, `Status:\t${statusLine(pv, pv.status?.phase, now)}\n`);
  const ref = pv.spec?.claimRef;
  w.write(0, `Claim:\t${ref ? `${ref.namespace ?? ''}/${ref.name ?? ''}` : ''}\n`);
  w.write(0, `Reclaim Policy:\t${pv.spec?.persistentVolumeReclaimPolicy ?? ''}\n`);
  w.write(0, `Access Modes:\t${accessModes(pv.spec?.accessModes)}\n`);
  if (pv.spec?.volumeMode) w.write(0, `VolumeMode:\t${pv.spec.volumeMode}\n`);
  w.write(0, `Capacity:\t${pv.spec?.capacity?.['storage'] ?? '0'}\n`);
  printNodeAffinity(w, pv.spec?.nodeAffinity?.required);
  w.write(0, `Message:\t${pv.status?.message ?? ''}\n`);
  w.write(0, 'Source:\n');
  printPvSource(w, pv);
  printEvents(w, ctx.events, now);
}

function describeStorageClass(w: Writer, sc: StorageClass, ctx: DescribeContext, now: number): void {
  const annotations = { ...sc.metadata.annotations };
  delete annotations[LAST_APPLIED_ANNOTATION];
  w.write(0, `Name:\t${sc.metadata.name ?? ''}\n`);
  w.write(0, `IsDefaultClass:\t${isDefaultClass(sc) ? 'Yes' : 'No'}\n`);
  w.write(0, `Annotations:\t${formatMap(annotations)}\n`);
  w.write(0, `Provisioner:\t${sc.provisioner}\n`);
  w.write(0, `Parameters:\t${formatMap(sc.parameters)}\n`);
  w.write(0, `AllowVolumeExpansion:\t${sc.allowVolumeExpansion === undefined ? '<unset>' : sc.allowVolumeExpansion ? 'True' : 'False'}\n`);
  if ((sc.mountOptions ?? []).length === 0) {
    w.write(0, 'MountOptions:\t<none>\n');
  } else {
    w.write(0, 'MountOptions:\n');
    for (const option of sc.mountOptions ?? []) w.write(1, `${option}\n`);
  }
  if (sc.reclaimPolicy) w.write(0, `ReclaimPolicy:\t${sc.reclaimPolicy}\n`);
  if (sc.volumeBindingMode) w.write(0, `VolumeBindingMode:\t${sc.volumeBindingMode}\n`);
  if (sc.allowedTopologies) {
    w.write(0, 'AllowedTopologies:\t');
    if (sc.allowedTopologies.length === 0) w.line('<none>');
    else w.line('');
    sc.allowedTopologies.forEach((term, i) => {
      w.write(1, `Term ${i}:\t`);
      const exprs = term.matchLabelExpressions ?? [];
      if (exprs.length === 0) w.line('<none>');
      exprs.forEach((e, j) => {
        if (j > 0) w.write(1, '\t');
        w.write(0, `${e.key} in [${e.values.join(', ')}]\n`);
      });
    });
  }
  printEvents(w, ctx.events, now);
}

function describeSecret(w: Writer, secret: Secret, ctx: DescribeContext, now: number): void {
  w.write(0, `Name:\t${secret.metadata.name ?? ''}\n`);
  w.write(0, `Namespace:\t${secret.metadata.namespace ?? ''}\n`);
  printLabels(w, 'Labels', secret.metadata.labels);
  printAnnotations(w, 'Annotations', secret.metadata.annotations);
  w.write(0, `\nType:\t${secret.type ?? 'Opaque'}\n\n`);
  w.write(0, 'Data\n====\n');
  for (const key of Object.keys(secret.data ?? {}).sort()) {
    // Values are never shown, only their size (base64-decoded), as kubectl does.
    w.write(0, `${key}:\t${Buffer.from(secret.data?.[key] ?? '', 'base64').length} bytes\n`);
  }
  if (ctx.events.length > 0) printEvents(w, ctx.events, now);
}

function describeConfigMap(w: Writer, cm: ConfigMap, ctx: DescribeContext, now: number): void {
  w.write(0, `Name:\t${cm.metadata.name ?? ''}\n`);
  w.write(0, `Namespace:\t${cm.metadata.namespace ?? ''}\n`);
  printLabels(w, 'Labels', cm.metadata.labels);
  printAnnotations(w, 'Annotations', cm.metadata.annotations);
  w.write(0, '\nData\n====\n');
  for (const key of Object.keys(cm.data ?? {}).sort()) {
    w.write(0, `${key}:\n----\n`);
    w.write(0, `${cm.data?.[key] ?? ''}\n\n`);
  }
  w.write(0, '\nBinaryData\n====\n');
  for (const key of Object.keys(cm.binaryData ?? {}).sort()) {
    w.write(0, `${key}: ${Buffer.from(cm.binaryData?.[key] ?? '', 'base64').length} bytes\n`);
  }
  w.write(0, '\n');
  printEvents(w, ctx.events, now);
}

/** What kubectl's quota describer says of each scope it explains. */
const SCOPE_HELP: Record<string, string> = {
  Terminating: 'Matches all pods that have an active deadline. These pods have a limited lifespan on a node before being actively terminated by the system.',
  NotTerminating: 'Matches all pods that do not have an active deadline. These pods usually include long running pods whose container command is not expected to terminate.',
  BestEffort: 'Matches all pods that do not have resource requirements set. These pods have a best effort quality of service.',
  NotBestEffort: 'Matches all pods that have at least one resource requirement set. These pods have a burstable or guaranteed quality of service.',
};

/** kubectl's ResourceQuota describer: name, namespace, scopes, then used/hard of each status.hard resource (no labels, no events). */
function describeResourceQuota(w: Writer, q: ResourceQuota): void {
  w.write(0, `Name:\t${q.metadata.name ?? ''}\n`);
  w.write(0, `Namespace:\t${q.metadata.namespace ?? ''}\n`);
  const scopes = [...(q.spec?.scopes ?? [])].sort();
  if (scopes.length > 0) {
    w.write(0, `Scopes:\t${scopes.join(', ')}\n`);
    for (const scope of scopes) if (SCOPE_HELP[scope] !== undefined) w.write(0, ` * ${SCOPE_HELP[scope]}\n`);
  }
  w.write(0, 'Resource\tUsed\tHard\n');
  w.write(0, '--------\t----\t----\n');
  const hard = q.status?.hard ?? {};
  for (const name of Object.keys(hard).sort()) w.write(0, `${name}\t${String(q.status?.used?.[name] ?? '0')}\t${String(hard[name])}\n`);
}

/** "volumeBindingMode" → "Volume Binding Mode", as kubectl's generic describer titles fields. */
export function fieldTitle(key: string): string {
  const spaced = key
    .replace(/([a-z0-9])([A-Z])/g, '$1 $2')
    .replace(/([A-Z]+)([A-Z][a-z])/g, '$1 $2')
    .replace(/[_-]+/g, ' ');
  return spaced.charAt(0).toUpperCase() + spaced.slice(1);
}

/** A value the generic describer prints: nested mappings indent, lists of scalars one per line. */
function printValue(w: Writer, level: number, key: string, value: unknown): void {
  const title = fieldTitle(key);
  if (value !== null && typeof value === 'object' && !Array.isArray(value)) {
    w.write(level, `${title}:\n`);
    for (const [k, v] of Object.entries(value)) printValue(w, level + 1, k, v);
    return;
  }
  if (Array.isArray(value)) {
    w.write(level, `${title}:\n`);
    for (const item of value) {
      if (item !== null && typeof item === 'object' && !Array.isArray(item)) {
        const entries = Object.entries(item as Record<string, unknown>);
        for (const [k, v] of entries) {
          if (v !== null && typeof v === 'object') printValue(w, level + 1, k, v);
          else w.write(level + 1, `${fieldTitle(k)}:\t${String(v)}\n`);
        }
      } else {
        w.write(level + 1, `${String(item)}\n`);
      }
    }
    return;
  }
  w.write(level, `${title}:\t${String(value)}\n`);
}

/** kubectl's describer for kinds without their own: metadata, then every field by name. */
function describeGeneric(w: Writer, resource: ResourceInfo, obj: KubeObject, ctx: DescribeContext, now: number): void {
  w.write(0, `Name:\t${obj.metadata.name ?? ''}\n`);
  if (resource.namespaced) w.write(0, `Namespace:\t${obj.metadata.namespace ?? ''}\n`);
  printLabels(w, 'Labels', obj.metadata.labels);
  printAnnotations(w, 'Annotations', obj.metadata.annotations);
  w.write(0, `API Version:\t${obj.apiVersion}\n`);
  w.write(0, `Kind:\t${obj.kind}\n`);
  const meta = obj.metadata;
  w.write(0, 'Metadata:\n');
  if (meta.creationTimestamp) w.write(1, `Creation Timestamp:\t${meta.creationTimestamp}\n`);
  if (meta.deletionTimestamp) w.write(1, `Deletion Timestamp:\t${meta.deletionTimestamp}\n`);
  if (meta.finalizers && meta.finalizers.length > 0) {
    w.write(1, 'Finalizers:\n');
    for (const f of meta.finalizers) w.write(2, `${f}\n`);
  }
  if (meta.ownerReferences && meta.ownerReferences.length > 0) {
    w.write(1, 'Owner References:\n');
    for (const r of meta.ownerReferences) w.write(2, `${r.kind}:\t${r.name}\n`);
  }
  w.write(1, `Resource Version:\t${meta.resourceVersion ?? ''}\n`);
  w.write(1, `UID:\t${meta.uid ?? ''}\n`);
  for (const [key, value] of Object.entries(obj)) {
    if (key === 'apiVersion' || key === 'kind' || key === 'metadata') continue;
    if (resource.plural === 'secrets' && (key === 'data' || key === 'stringData')) continue;
    printValue(w, 0, key, value);
  }
  printEvents(w, ctx.events, now);
}

/** The full `describe` text of one object. */
export function describeObject(resource: ResourceInfo, obj: KubeObject, ctx: DescribeContext): string {
  const w = new Writer();
  const now = ctx.now ?? Date.now();
  switch (resource.plural) {
    case 'persistentvolumeclaims':
      describePvc(w, obj as PersistentVolumeClaim, ctx, now);
      break;
    case 'persistentvolumes':
      describePv(w, obj as PersistentVolume, ctx, now);
      break;
    case 'storageclasses':
      describeStorageClass(w, obj as StorageClass, ctx, now);
      break;
    case 'secrets':
      describeSecret(w, obj as Secret, ctx, now);
      break;
    case 'configmaps':
      describeConfigMap(w, obj as ConfigMap, ctx, now);
      break;
    case 'resourcequotas':
      describeResourceQuota(w, obj as ResourceQuota);
      break;
    default:
      describeGeneric(w, resource, obj, ctx, now);
  }
  return w.toString();
}
