// PersistentVolume: defaulting, validation and update rules of Kubernetes' PV strategy.
import { isDeepStrictEqual } from 'node:util';
import { z } from 'zod';
import { canonicalizeResourceList } from '../quantity.js';
import { rfc3339 } from '../time.js';
import type { PersistentVolume, PersistentVolumeSpec } from '../types/core.js';
import {
  immutable,
  validateAccessModes,
  validateClassName,
  validateDriverName,
  validateNodeSelector,
  validateQuantity,
  validateSecretReference,
  validateVolumeMode, supportedValue } from '../validation/common.js';
import { child, type FieldError, forbidden, invalid, key, notSupported, required } from '../validation/field-errors.js';
import { bool, kindSchema, nodeSelector, objectReference, resourceList, secretReference, str, stringMap, strings } from '../validation/schemas.js';
import { defineStrategy } from './strategy.js';

/** Every volume source a PV may have; exactly one must be set. */
const PV_SOURCES = [
  'gcePersistentDisk',
  'awsElasticBlockStore',
  'hostPath',
  'glusterfs',
  'nfs',
  'rbd',
  'iscsi',
  'cinder',
  'cephfs',
  'fc',
  'flocker',
  'flexVolume',
  'azureFile',
  'vsphereVolume',
  'quobyte',
  'azureDisk',
  'photonPersistentDisk',
  'portworxVolume',
  'scaleIO',
  'local',
  'storageos',
  'csi',
] as const;

const HOST_PATH_TYPES = ['', 'BlockDevice', 'CharDevice', 'Directory', 'DirectoryOrCreate', 'File', 'FileOrCreate', 'Socket'] as const;
const RECLAIM_POLICIES = ['Delete', 'Recycle', 'Retain'] as const;
const PHASES = ['Available', 'Bound', 'Failed', 'Pending', 'Released'] as const;

const opaque = z.looseObject({}).optional();
const schema = kindSchema({
  spec: z
    .looseObject({
      capacity: resourceList,
      accessModes: strings,
      claimRef: objectReference,
      persistentVolumeReclaimPolicy: str,
      storageClassName: str,
      mountOptions: strings,
      volumeMode: str,
      nodeAffinity: z.looseObject({ required: nodeSelector }).optional(),
      hostPath: z.looseObject({ path: str, type: str }).optional(),
      nfs: z.looseObject({ server: str, path: str, readOnly: bool }).optional(),
      local: z.looseObject({ path: str, fsType: str }).optional(),
      csi: z
        .looseObject({
          driver: str,
          volumeHandle: str,
          readOnly: bool,
          fsType: str,
          volumeAttributes: stringMap,
          controllerPublishSecretRef: secretReference,
          nodeStageSecretRef: secretReference,
          nodePublishSecretRef: secretReference,
          controllerExpandSecretRef: secretReference,
          nodeExpandSecretRef: secretReference,
        })
        .optional(),
      ...Object.fromEntries(PV_SOURCES.filter((s) => !['hostPath', 'nfs', 'local', 'csi'].includes(s)).map((s) => [s, opaque])),
    })
    .optional(),
  status: z.looseObject({ phase: str, message: str, reason: str, lastPhaseTransitionTime: str }).optional(),
});

/** The volume source part of a spec, for the immutability check. */
function sourceOf(spec: PersistentVolumeSpec): Record<string, unknown> {
  return Object.fromEntries(PV_SOURCES.filter((s) => spec[s] !== undefined).map((s) => [s, spec[s]]));
}

/** Rejects ".." path elements, as Kubernetes' validatePathNoBacksteps does. */
function noBacksteps(path: string, value: string): FieldError[] {
  return value.split('/').includes('..') ? [invalid(path, value, "must not contain '..'")] : [];
}

function validateSource(spec: PersistentVolumeSpec): FieldError[] {
  const present = PV_SOURCES.filter((s) => spec[s] !== undefined);
  if (present.length === 0) return [required('spec', 'must specify a volume type')];
  const errs = present.slice(1).map((s) => forbidden(`spec.${s}`, 'may not specify more than 1 volume type'));
  if (spec.hostPath) {
    if (!spec.hostPath.path) errs.push(required('spec.hostPath.path'));
    else errs.push(...noBacksteps('spec.hostPath.path', spec.hostPath.path));
    const type = spec.hostPath.type;
    errs.push(...supportedValue('spec.hostPath.type', type, HOST_PATH_TYPES));
    if (spec.mountOptions && spec.mountOptions.length > 0) errs.push(forbidden('spec.mountOptions', 'may not specify mount options for this volume type'));
  }
  if (spec.nfs) {
    if (!spec.nfs.server) errs.push(required('spec.nfs.server'));
    if (!spec.nfs.path) errs.push(required('spec.nfs.path'));
    else if (!spec.nfs.path.startsWith('/')) errs.push(invalid('spec.nfs.path', spec.nfs.path, 'must be an absolute path'));
  }
  if (spec.local) {
    if (!spec.local.path) errs.push(required('spec.local.path'));
    else errs.push(...noBacksteps('spec.local.path', spec.local.path));
    if (!spec.nodeAffinity) errs.push(required('spec.nodeAffinity', 'Local volume requires node affinity'));
  }
  if (spec.csi) {
    const csi = spec.csi;
    errs.push(...validateDriverName('spec.csi.driver', csi.driver));
    if (!csi.volumeHandle) errs.push(required('spec.csi.volumeHandle'));
    for (const ref of ['controllerPublishSecretRef', 'nodeStageSecretRef', 'nodePublishSecretRef', 'controllerExpandSecretRef', 'nodeExpandSecretRef'] as const) {
      errs.push(...validateSecretReference(`spec.csi.${ref}`, csi[ref]));
    }
  }
  return errs;
}

export const persistentVolumeStrategy = defineStrategy<PersistentVolume>({
  schema,
  prepareForCreate(pv) {
    pv.status = { phase: 'Pending', lastPhaseTransitionTime: rfc3339() };
  },
  defaults(pv) {
    pv.spec ??= {};
    pv.spec.persistentVolumeReclaimPolicy ??= 'Retain';
    pv.spec.volumeMode ??= 'Filesystem';
    if (pv.spec.hostPath) pv.spec.hostPath.type ??= '';
    canonicalizeResourceList(pv.spec.capacity);
    if (pv.status) pv.status.phase ??= 'Pending';
  },
  validate(pv) {
    const spec = pv.spec;
    const errs = validateAccessModes('spec.accessModes', spec.accessModes, '');
    const capacity = spec.capacity ?? {};
    const names = Object.keys(capacity);
    if (names.length === 0) errs.push(required('spec.capacity'));
    else if (!names.includes('storage') || names.length > 1) errs.push(notSupported('spec.capacity', names, ['storage']));
    if (capacity.storage !== undefined) errs.push(...validateQuantity(key('spec.capacity', 'storage'), capacity.storage, { positive: true }));
    const policy = spec.persistentVolumeReclaimPolicy;
    errs.push(...supportedValue('spec.persistentVolumeReclaimPolicy', policy, RECLAIM_POLICIES));
    errs.push(...validateClassName('spec.storageClassName', spec.storageClassName));
    errs.push(...validateVolumeMode('spec.volumeMode', spec.volumeMode));
    errs.push(...validateSource(spec));
    errs.push(...validateNodeSelector(child('spec.nodeAffinity', 'required'), spec.nodeAffinity?.required));
    const phase = pv.status?.phase;
    errs.push(...supportedValue('status.phase', phase, PHASES));
    return errs;
  },
  validateUpdate(pv, old) {
    const errs: FieldError[] = [];
    if (!isDeepStrictEqual(sourceOf(pv.spec), sourceOf(old.spec))) {
      errs.push(forbidden('spec.persistentvolumesource', 'spec.persistentvolumesource is immutable after creation'));
    }
    errs.push(...immutable('spec.volumeMode', pv.spec.volumeMode, old.spec.volumeMode));
    if (old.spec.nodeAffinity !== undefined) errs.push(...immutable('spec.nodeAffinity', pv.spec.nodeAffinity, old.spec.nodeAffinity));
    return errs;
  },
});
