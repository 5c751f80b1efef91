// StatefulSet (apps/v1): Kubernetes' defaults (OrderedReady, RollingUpdate partition 0, claim
// retention Retain/Retain, the claim templates defaulted as claims), validation, and the rule that
// only replicas, ordinals, template, updateStrategy, the retention policy and minReadySeconds change.
import { isDeepStrictEqual } from 'node:util';
import { z } from 'zod';
import type { StatefulSet } from '../types/apps.js';
import { supportedValue } from '../validation/common.js';
import { child, type FieldError, index, required } from '../validation/field-errors.js';
import { closed, conditions, int, kindSchema, labelSelector, objectMeta, str } from '../validation/schemas.js';
import { pvcSpecSchema } from './persistent-volume-claim.js';
import {
  defaultTemplate,
  forbiddenSpecUpdate,
  intOrString,
  podTemplateSchema,
  validateIntOrPercent,
  validateNonNegative,
  validateSelector,
  validateSelectorUnchanged,
  validateTemplate,
} from './pod-template.js';
import { defineStrategy } from './strategy.js';

const claimTemplate = z.looseObject({ apiVersion: str, kind: str, metadata: objectMeta.optional(), spec: pvcSpecSchema.optional(), status: z.looseObject({ phase: str }).optional() });

const schema = kindSchema({
  spec: closed(
    z.looseObject({
      replicas: int,
      selector: labelSelector,
      template: podTemplateSchema,
      volumeClaimTemplates: z.array(claimTemplate).optional(),
      serviceName: str,
      podManagementPolicy: str,
      updateStrategy: z.looseObject({ type: str, rollingUpdate: z.looseObject({ partition: int, maxUnavailable: intOrString }).optional() }).optional(),
      revisionHistoryLimit: int,
      minReadySeconds: int,
      persistentVolumeClaimRetentionPolicy: z.looseObject({ whenDeleted: str, whenScaled: str }).optional(),
      ordinals: z.looseObject({ start: int }).optional(),
    }),
  ).optional(),
  status: z
    .looseObject({
      observedGeneration: int,
      replicas: int,
      readyReplicas: int,
      currentReplicas: int,
      updatedReplicas: int,
      availableReplicas: int,
      currentRevision: str,
      updateRevision: str,
      collisionCount: int,
      conditions: conditions(),
    })
    .optional(),
});

const POLICIES = ['OrderedReady', 'Parallel'] as const;
const STRATEGIES = ['OnDelete', 'RollingUpdate'] as const;
const RETENTION = ['Delete', 'Retain'] as const;

export const statefulSetStrategy = defineStrategy<StatefulSet>({
  schema,
  prepareForCreate(sts) {
    sts.status = { replicas: 0, availableReplicas: 0 };
  },
  defaults(sts) {
    sts.spec ??= {} as StatefulSet['spec'];
    const spec = sts.spec;
    spec.replicas ??= 1;
    spec.podManagementPolicy ??= 'OrderedReady';
    spec.updateStrategy ??= { type: 'RollingUpdate' };
    if (spec.updateStrategy.type === undefined) spec.updateStrategy.type = 'RollingUpdate';
    if (spec.updateStrategy.type === 'RollingUpdate') {
      spec.updateStrategy.rollingUpdate ??= {};
      spec.updateStrategy.rollingUpdate.partition ??= 0;
    }
    spec.revisionHistoryLimit ??= 10;
    spec.persistentVolumeClaimRetentionPolicy ??= {};
    spec.persistentVolumeClaimRetentionPolicy.whenDeleted ??= 'Retain';
    spec.persistentVolumeClaimRetentionPolicy.whenScaled ??= 'Retain';
    defaultTemplate(spec.template);
    for (const t of spec.volumeClaimTemplates ?? []) {
      t.metadata ??= {};
      t.spec ??= {};
      // A claim's defaults, as upstream's defaulter applies them to each template.
      t.spec.volumeMode ??= 'Filesystem';
      t.status ??= {};
      t.status.phase ??= 'Pending';
    }
  },
  validate(sts) {
    const spec = sts.spec;
    const errs: FieldError[] = [];
    errs.push(...supportedValue('spec.podManagementPolicy', spec.podManagementPolicy, POLICIES));
    errs.push(...supportedValue('spec.updateStrategy.type', spec.updateStrategy?.type, STRATEGIES));
    errs.push(...validateNonNegative('spec.updateStrategy.rollingUpdate.partition', spec.updateStrategy?.rollingUpdate?.partition));
    errs.push(...validateIntOrPercent('spec.updateStrategy.rollingUpdate.maxUnavailable', spec.updateStrategy?.rollingUpdate?.maxUnavailable));
    const retention = spec.persistentVolumeClaimRetentionPolicy;
    errs.push(...supportedValue('spec.persistentVolumeClaimRetentionPolicy.whenDeleted', retention?.whenDeleted, RETENTION));
    errs.push(...supportedValue('spec.persistentVolumeClaimRetentionPolicy.whenScaled', retention?.whenScaled, RETENTION));
    errs.push(...validateNonNegative('spec.replicas', spec.replicas));
    errs.push(...validateNonNegative('spec.minReadySeconds', spec.minReadySeconds));
    errs.push(...validateNonNegative('spec.ordinals.start', spec.ordinals?.start));
    errs.push(...validateSelector(spec.selector, spec.template, 'statefulset'));
    errs.push(...validateTemplate(spec.template, ['Always'], { podSpec: false }));
    (spec.volumeClaimTemplates ?? []).forEach((t, i) => {
      const p = index('spec.volumeClaimTemplates', i);
      if (!t.metadata?.name) errs.push(required(child(p, 'metadata.name')));
    });
    return errs;
  },
  validateUpdate(sts, old) {
    const errs = validateSelectorUnchanged(sts.spec.selector, old.spec.selector);
    const strip = (s: StatefulSet['spec']): Partial<StatefulSet['spec']> => {
      const { replicas: _r, ordinals: _o, template: _t, updateStrategy: _u, persistentVolumeClaimRetentionPolicy: _p, minReadySeconds: _m, ...rest } = s;
      return rest;
    };
    if (!isDeepStrictEqual(strip(sts.spec), strip(old.spec))) {
      errs.push(
        forbiddenSpecUpdate(
          "updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden",
        ),
      );
    }
    return errs;
  },
});
