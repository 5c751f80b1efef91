// Pod: the defaulting and validation Stowage needs (containers, volumes and their mounts) and
// Kubernetes' rule that a pod's spec is immutable except for a few fields.
import { isDeepStrictEqual } from 'node:util';
import { z } from 'zod';
import { podQOSClass } from '../qos.js';
import { canonicalizeQuantityField, canonicalizeResourceList, compareQuantities, isQuantity } from '../quantity.js';
import type { Container, Pod, Volume } from '../types/core.js';
import { carryOver, validateLabel, validateLabels, validateQuantity, validateResourceList, validateSubdomain, supportedValue } from '../validation/common.js';
import { child, duplicate, type FieldError, forbidden, index, invalid, notFound, required } from '../validation/field-errors.js';
import { atomic, bool, closed, conditions, int, kindSchema, mergeByKey, resourceList, str, stringMap } from '../validation/schemas.js';
import { defineStrategy } from './strategy.js';

/** Every volume source a pod volume may have; exactly one must be set. */
const VOLUME_SOURCES = [
  'hostPath',
  'emptyDir',
  'gcePersistentDisk',
  'awsElasticBlockStore',
  'gitRepo',
  'secret',
  'nfs',
  'iscsi',
  'glusterfs',
  'persistentVolumeClaim',
  'rbd',
  'flexVolume',
  'cinder',
  'cephfs',
  'flocker',
  'downwardAPI',
  'fc',
  'azureFile',
  'configMap',
  'vsphereVolume',
  'quobyte',
  'azureDisk',
  'photonPersistentDisk',
  'projected',
  'portworxVolume',
  'scaleIO',
  'storageos',
  'csi',
  'ephemeral',
  'image',
] as const;

const RESTART_POLICIES = ['Always', 'Never', 'OnFailure'] as const;
const PULL_POLICIES = ['Always', 'IfNotPresent', 'Never'] as const;
const PROTOCOLS = ['SCTP', 'TCP', 'UDP'] as const;
const PROPAGATIONS = ['Bidirectional', 'HostToContainer', 'None'] as const;
const HOST_PATH_TYPES = ['', 'BlockDevice', 'CharDevice', 'Directory', 'DirectoryOrCreate', 'File', 'FileOrCreate', 'Socket'] as const;
const PHASES = ['Failed', 'Pending', 'Running', 'Succeeded', 'Unknown'] as const;
const TOLERATION_OPERATORS = ['Equal', 'Exists'] as const;
const TAINT_EFFECTS = ['NoExecute', 'NoSchedule', 'PreferNoSchedule'] as const;

const ATOMIC_MERGED_BY_IP = { 'x-kubernetes-list-type': 'atomic', 'x-kubernetes-patch-merge-key': 'ip', 'x-kubernetes-patch-strategy': 'merge' };

/** A part of the pod this server does not look into: any object. */
const opaque = z.looseObject({}).optional();

// Every field of Kubernetes' Container and PodSpec is named (closed): ?fieldValidation can tell a
// typo from a field.
const container = closed(z.looseObject({
  name: str,
  image: str,
  imagePullPolicy: str,
  command: atomic(z.array(z.string())).optional(),
  args: atomic(z.array(z.string())).optional(),
  ports: mergeByKey(z.array(z.looseObject({ name: str, containerPort: int, hostPort: int, protocol: str })), 'containerPort', ['containerPort', 'protocol']).optional(),
  env: mergeByKey(z.array(z.looseObject({ name: str, value: str, valueFrom: z.looseObject({}).optional() })), 'name').optional(),
  envFrom: atomic(z.array(z.looseObject({ prefix: str }))).optional(),
  resources: z.looseObject({ requests: resourceList, limits: resourceList }).optional(),
  volumeMounts: mergeByKey(z.array(z.looseObject({ name: str, mountPath: str, readOnly: bool, subPath: str, mountPropagation: str })), 'mountPath').optional(),
  volumeDevices: mergeByKey(z.array(z.looseObject({ name: str, devicePath: str })), 'devicePath').optional(),
  workingDir: str,
  resizePolicy: atomic(z.array(z.looseObject({ resourceName: str, restartPolicy: str }))).optional(),
  restartPolicy: str,
  livenessProbe: opaque,
  readinessProbe: opaque,
  startupProbe: opaque,
  lifecycle: opaque,
  terminationMessagePath: str,
  terminationMessagePolicy: str,
  securityContext: opaque,
  stdin: bool,
  stdinOnce: bool,
  tty: bool,
}));

/** A pod's spec; also the spec of the workloads' pod templates (pod-template.ts). */
export const podSpecSchema = closed(
    z.looseObject({
      containers: mergeByKey(z.array(container), 'name').optional(),
      initContainers: mergeByKey(z.array(container), 'name').optional(),
      volumes: mergeByKey(
        z.array(
          z.looseObject({
            name: str,
            persistentVolumeClaim: z.looseObject({ claimName: str, readOnly: bool }).optional(),
            hostPath: z.looseObject({ path: str, type: str }).optional(),
          }),
        ),
        'name',
        ['name'],
        true,
      ).optional(),
      imagePullSecrets: mergeByKey(z.array(z.looseObject({ name: str })), 'name').optional(),
      topologySpreadConstraints: mergeByKey(
        z.array(z.looseObject({ maxSkew: int, topologyKey: str, whenUnsatisfiable: str })),
        'topologyKey',
        ['topologyKey', 'whenUnsatisfiable'],
      ).optional(),
      nodeName: str,
      nodeSelector: stringMap,
      restartPolicy: str,
      terminationGracePeriodSeconds: int,
      activeDeadlineSeconds: int,
      schedulerName: str,
      priorityClassName: str,
      priority: int,
      tolerations: atomic(z.array(z.looseObject({ key: str, operator: str, value: str, effect: str, tolerationSeconds: int }))).optional(),
      ephemeralContainers: mergeByKey(z.array(z.looseObject({ name: str })), 'name').optional(),
      hostAliases: mergeByKey(z.array(z.looseObject({ ip: str, hostnames: atomic(z.array(z.string())).optional() })), 'ip').optional(),
      readinessGates: atomic(z.array(z.looseObject({ conditionType: str }))).optional(),
      resourceClaims: mergeByKey(z.array(z.looseObject({ name: str })), 'name', ['name'], true).optional(),
      schedulingGates: mergeByKey(z.array(z.looseObject({ name: str })), 'name').optional(),
      affinity: opaque,
      automountServiceAccountToken: bool,
      dnsConfig: opaque,
      dnsPolicy: str,
      enableServiceLinks: bool,
      hostIPC: bool,
      hostNetwork: bool,
      hostPID: bool,
      hostUsers: bool,
      hostname: str,
      os: opaque,
      overhead: resourceList,
      preemptionPolicy: str,
      resources: opaque,
      runtimeClassName: str,
      securityContext: opaque,
      serviceAccount: str,
      serviceAccountName: str,
      setHostnameAsFQDN: bool,
      shareProcessNamespace: bool,
      subdomain: str,
    }),
  );

const schema = kindSchema({
  spec: podSpecSchema.optional(),
  status: z
    .looseObject({
      phase: str,
      conditions: conditions(),
      // Upstream's odd pair: merged by ip for patches, atomic for server-side apply.
      podIPs: z.array(z.looseObject({ ip: str })).meta(ATOMIC_MERGED_BY_IP).optional(),
      hostIPs: z.array(z.looseObject({ ip: str })).meta(ATOMIC_MERGED_BY_IP).optional(),
    })
    .optional(),
});

/** A limit without a request is also the request, as the API server defaults a pod's containers. */
export function defaultRequestsFromLimits(c: Container): void {
  const limits = c.resources?.limits;
  if (c.resources === undefined || limits === undefined) return;
  for (const [name, q] of Object.entries(limits)) {
    c.resources.requests ??= {};
    c.resources.requests[name] ??= q;
  }
}

function defaultContainer(c: Container): void {
  if (c.image !== undefined) {
    const tag = c.image.includes('@') ? 'digest' : (/:([^/:]+)$/.exec(c.image)?.[1] ?? 'latest');
    c.imagePullPolicy ??= tag === 'latest' ? 'Always' : 'IfNotPresent';
  }
  c.terminationMessagePath ??= '/dev/termination-log';
  c.terminationMessagePolicy ??= 'File';
  c.resources ??= {};
  canonicalizeResourceList(c.resources.requests);
  canonicalizeResourceList(c.resources.limits);
  for (const p of c.ports ?? []) p.protocol ??= 'TCP';
}

function validateVolumes(volumes: readonly Volume[]): FieldError[] {
  const errs: FieldError[] = [];
  const seen = new Set<string>();
  volumes.forEach((v, i) => {
    const p = index('spec.volumes', i);
    if (!v.name) errs.push(required(child(p, 'name')));
    else {
      errs.push(...validateLabel(child(p, 'name'), v.name));
      if (seen.has(v.name)) errs.push(duplicate(child(p, 'name'), v.name));
      seen.add(v.name);
    }
    const sources = VOLUME_SOURCES.filter((s) => v[s] !== undefined);
    if (sources.length === 0) errs.push(required(p, 'must specify a volume type'));
    for (const extra of sources.slice(1)) errs.push(forbidden(child(p, extra), 'may not specify more than 1 volume type'));
    if (v.persistentVolumeClaim && !v.persistentVolumeClaim.claimName) errs.push(required(child(p, 'persistentVolumeClaim.claimName')));
    const inline = v['csi'] as { driver?: string } | undefined;
    if (inline !== undefined && !inline.driver) errs.push(required(child(p, 'csi.driver')));
    // Kubernetes' validateEphemeralVolumeSource: a template is required, its metadata holds only labels and annotations.
    if (v.ephemeral !== undefined) {
      const template = v.ephemeral.volumeClaimTemplate;
      if (template === undefined || template === null) errs.push(required(child(p, 'ephemeral.volumeClaimTemplate')));
      else {
        if (template.spec === undefined || template.spec === null) errs.push(required(child(p, 'ephemeral.volumeClaimTemplate.spec')));
        for (const field of Object.keys(template.metadata ?? {})) {
          if (field !== 'labels' && field !== 'annotations') errs.push(forbidden(child(p, `ephemeral.volumeClaimTemplate.metadata.${field}`), 'field not allowed in an ephemeral volume template'));
        }
      }
    }
    // The kubelet sizes the volume from it: a quantity, as Kubernetes' type demands.
    if (v.emptyDir?.sizeLimit !== undefined) errs.push(...validateQuantity(child(p, 'emptyDir.sizeLimit'), v.emptyDir.sizeLimit));
    if (v.hostPath) {
      if (!v.hostPath.path) errs.push(required(child(p, 'hostPath.path')));
      const type = v.hostPath.type;
      errs.push(...supportedValue(child(p, 'hostPath.type'), type, HOST_PATH_TYPES));
    }
  });
  return errs;
}

/** A request above the limit of the same resource is invalid (ValidateResourceRequirements). */
function requestsWithinLimits(path: string, c: Container): FieldError[] {
  const errs: FieldError[] = [];
  for (const [name, request] of Object.entries(c.resources?.requests ?? {})) {
    const limit = c.resources?.limits?.[name];
    if (limit === undefined || !isQuantity(request) || !isQuantity(limit)) continue;
    if (compareQuantities(request, limit) > 0) errs.push(invalid(path, String(request), `must be less than or equal to ${name} limit of ${String(limit)}`));
  }
  return errs;
}

function validateContainer(c: Container, p: string, volumes: ReadonlySet<string>): FieldError[] {
  const errs: FieldError[] = [];
  if (!c.name) errs.push(required(child(p, 'name')));
  else errs.push(...validateLabel(child(p, 'name'), c.name));
  if (!c.image) errs.push(required(child(p, 'image')));
  errs.push(...supportedValue(child(p, 'imagePullPolicy'), c.imagePullPolicy, PULL_POLICIES));
  (c.ports ?? []).forEach((port, i) => {
    const pp = index(child(p, 'ports'), i);
    if (!Number.isInteger(port.containerPort) || port.containerPort < 1 || port.containerPort > 65535) {
      errs.push(invalid(child(pp, 'containerPort'), port.containerPort ?? 0, 'must be between 1 and 65535, inclusive'));
    }
    errs.push(...supportedValue(child(pp, 'protocol'), port.protocol, PROTOCOLS));
  });
  errs.push(...validateResourceList(child(p, 'resources.requests'), c.resources?.requests));
  errs.push(...validateResourceList(child(p, 'resources.limits'), c.resources?.limits));
  errs.push(...requestsWithinLimits(child(p, 'resources.requests'), c));
  (c.volumeMounts ?? []).forEach((m, i) => {
    const mp = index(child(p, 'volumeMounts'), i);
    if (!m.name) errs.push(required(child(mp, 'name')));
    else if (!volumes.has(m.name)) errs.push(notFound(child(mp, 'name'), m.name));
    if (!m.mountPath) errs.push(required(child(mp, 'mountPath')));
    errs.push(...supportedValue(child(mp, 'mountPropagation'), m.mountPropagation, PROPAGATIONS));
    const privileged = (c['securityContext'] as { privileged?: boolean } | undefined)?.privileged === true;
    if (m.mountPropagation === 'Bidirectional' && !privileged) errs.push(forbidden(child(mp, 'mountPropagation'), 'Bidirectional mount propagation is available only to privileged containers'));
  });
  (c.volumeDevices ?? []).forEach((d, i) => {
    const dp = index(child(p, 'volumeDevices'), i);
    if (!d.name) errs.push(required(child(dp, 'name')));
    else if (!volumes.has(d.name)) errs.push(notFound(child(dp, 'name'), d.name));
    if (!d.devicePath) errs.push(required(child(dp, 'devicePath')));
  });
  return errs;
}

/** The spec with every field a pod update may change copied from the old spec. */
function withoutMutableFields(spec: Pod['spec'], old: Pod['spec']): Pod['spec'] {
  const copy = structuredClone(spec);
  const images = (list: Container[] | undefined, from: Container[] | undefined): void => {
    if (list && from && list.length === from.length) list.forEach((c, i) => {
      carryOver(c, from[i] ?? c, 'image');
    });
  };
  images(copy.containers, old.containers);
  images(copy.initContainers, old.initContainers);
  carryOver(copy, old, 'activeDeadlineSeconds');
  carryOver(copy, old, 'terminationGracePeriodSeconds');
  const oldTolerations = old.tolerations ?? [];
  const additionsOnly = oldTolerations.every((t) => (copy.tolerations ?? []).some((n) => isDeepStrictEqual(n, t)));
  if (additionsOnly) carryOver(copy, old, 'tolerations');
  return copy;
}

export const podStrategy = defineStrategy<Pod>({
  schema,
  prepareForCreate(pod) {
    // Only pods, not templates, take requests from limits (upstream's SetDefaults_Pod).
    for (const c of [...(pod.spec?.containers ?? []), ...(pod.spec?.initContainers ?? [])]) defaultRequestsFromLimits(c);
    pod.status = { phase: 'Pending', qosClass: podQOSClass(pod) };
  },
  prepareForUpdate(pod, old) {
    // Set by the Priority admission at creation; an update that leaves them out keeps them.
    if (pod.spec !== undefined) {
      if (pod.spec.priority === undefined && old.spec?.priority !== undefined) pod.spec.priority = old.spec.priority;
      if (pod.spec.preemptionPolicy === undefined && old.spec?.preemptionPolicy !== undefined) pod.spec.preemptionPolicy = old.spec.preemptionPolicy;
    }
  },
  defaults(pod) {
    pod.spec ??= { containers: [] };
    const spec = pod.spec;
    spec.restartPolicy ??= 'Always';
    spec.terminationGracePeriodSeconds ??= 30;
    spec.dnsPolicy ??= 'ClusterFirst';
    spec.schedulerName ??= 'default-scheduler';
    spec.securityContext ??= {};
    spec.enableServiceLinks ??= true;
    for (const c of [...(spec.containers ?? []), ...(spec.initContainers ?? [])]) defaultContainer(c);
    for (const v of spec.volumes ?? []) {
      if (v.hostPath) v.hostPath.type ??= '';
      if (v.emptyDir?.sizeLimit !== undefined) v.emptyDir.sizeLimit = canonicalizeQuantityField(v.emptyDir.sizeLimit);
    }
  },
  validate(pod) {
    const spec = pod.spec;
    const volumes = spec.volumes ?? [];
    const errs = validateVolumes(volumes);
    const volumeNames = new Set(volumes.map((v) => v.name));
    const containers = spec.containers ?? [];
    if (containers.length === 0) errs.push(required('spec.containers'));
    const names = new Set<string>();
    for (const [listName, list] of [['containers', containers], ['initContainers', spec.initContainers ?? []]] as const) {
      list.forEach((c, i) => {
        const p = index(`spec.${listName}`, i);
        errs.push(...validateContainer(c, p, volumeNames));
        if (c.name && names.has(c.name)) errs.push(duplicate(child(p, 'name'), c.name));
        if (c.name) names.add(c.name);
      });
    }
    errs.push(...supportedValue('spec.restartPolicy', spec.restartPolicy, RESTART_POLICIES));
    if (spec.nodeName) errs.push(...validateSubdomain('spec.nodeName', spec.nodeName));
    if (spec.priorityClassName) errs.push(...validateSubdomain('spec.priorityClassName', spec.priorityClassName));
    errs.push(...validateLabels('spec.nodeSelector', spec.nodeSelector));
    (spec.tolerations ?? []).forEach((t, i) => {
      const p = index('spec.tolerations', i);
      errs.push(...supportedValue(child(p, 'operator'), t.operator, TOLERATION_OPERATORS));
      errs.push(...supportedValue(child(p, 'effect'), t.effect, TAINT_EFFECTS));
      if (t.operator === 'Exists' && t.value) errs.push(invalid(child(p, 'operator'), t.value, 'value must be empty when `operator` is \'Exists\''));
    });
    const phase = pod.status?.phase;
    errs.push(...supportedValue('status.phase', phase, PHASES));
    return errs;
  },
  validateUpdate(pod, old) {
    if (isDeepStrictEqual(withoutMutableFields(pod.spec, old.spec), old.spec)) return [];
    return [
      forbidden(
        'spec',
        'pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)',
      ),
    ];
  },
});
