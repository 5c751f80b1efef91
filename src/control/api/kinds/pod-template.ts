// What the workload kinds (StatefulSet, Deployment, ReplicaSet, DaemonSet, Job) share: the pod
// template's schema, its defaulting and validation (the pod's own, reported under
// spec.template.spec), and apps/v1's rules for selectors, replicas and restart policies.
import { isDeepStrictEqual } from 'node:util';
import { z } from 'zod';
import { selectorMatches } from '../label-selector.js';
import type { PodTemplateSpec } from '../types/apps.js';
import type { Pod } from '../types/core.js';
import type { LabelSelector } from '../types/meta.js';
import { validateLabels, validateLabelSelector } from '../validation/common.js';
import { type FieldError, forbidden, invalid, notSupported, required } from '../validation/field-errors.js';
import { atomic, conditions, int, objectMeta, str } from '../validation/schemas.js';
import { podSpecSchema, podStrategy } from './pod.js';

export const podTemplateSchema = z.looseObject({ metadata: objectMeta.optional(), spec: podSpecSchema.optional() }).optional();

/** Kubernetes' IntOrString: 1 or "25%". */
export const intOrString = z.union([z.number().int(), z.string()]).optional();

/** Workload status conditions (with lastUpdateTime, which the pods' conditions lack). */
export const workloadConditions = conditions;

export const statusCounts = (names: readonly string[]) => Object.fromEntries(names.map((n) => [n, int]));

export { atomic, str };

function asPod(template: PodTemplateSpec): Pod {
  return { apiVersion: 'v1', kind: 'Pod', metadata: template.metadata ?? {}, spec: template.spec } as Pod;
}

/** The pod defaults, applied to the template as Kubernetes' defaulters apply them. */
export function defaultTemplate(template: PodTemplateSpec | undefined): void {
  if (template === undefined) return;
  template.spec ??= { containers: [] };
  podStrategy.defaults?.(asPod(template));
}

/**
 * The template's pod validation under spec.template, plus what apps/v1 and batch/v1 add: the
 * labels valid, the restart policy one of `restartPolicies`. A StatefulSet's template skips the
 * pod's own validation (`podSpec: false`), as upstream's ValidatePodTemplateSpecForStatefulSet
 * does: its mounts name volumes that only the claim templates will provide.
 */
export function validateTemplate(template: PodTemplateSpec | undefined, restartPolicies: readonly string[], { podSpec = true } = {}): FieldError[] {
  if (template === undefined) return [required('spec.template')];
  const errs = !podSpec
    ? []
    : podStrategy
        .validate(asPod(template))
        .filter((e) => !e.field.startsWith('status.'))
        .map((e) => ({ ...e, field: `spec.template.${e.field}` }));
  errs.push(...validateLabels('spec.template.metadata.labels', template.metadata?.labels));
  const policy = template.spec?.restartPolicy;
  if (policy !== undefined && !restartPolicies.includes(policy)) errs.push(notSupported('spec.template.spec.restartPolicy', policy, restartPolicies));
  return errs;
}

/** A required, non-empty selector that matches the template's labels (ValidateDeploymentSpec &c.). */
export function validateSelector(selector: LabelSelector | undefined, template: PodTemplateSpec | undefined, kind: string): FieldError[] {
  if (selector === undefined) return [required('spec.selector')];
  const errs = validateLabelSelector('spec.selector', selector);
  const empty = Object.keys(selector.matchLabels ?? {}).length === 0 && (selector.matchExpressions ?? []).length === 0;
  if (empty) errs.push(invalid('spec.selector', selector, `empty selector is invalid for ${kind}`));
  else if (errs.length === 0 && !selectorMatches(selector, template?.metadata?.labels)) {
    errs.push(invalid('spec.template.metadata.labels', template?.metadata?.labels ?? {}, '`selector` does not match template `labels`'));
  }
  return errs;
}

export function validateNonNegative(path: string, value: number | undefined): FieldError[] {
  return value !== undefined && value < 0 ? [invalid(path, value, 'must be greater than or equal to 0')] : [];
}

/** apps/v1: the selector may not change once set. */
export function validateSelectorUnchanged(selector: LabelSelector | undefined, old: LabelSelector | undefined): FieldError[] {
  return isDeepStrictEqual(selector, old) ? [] : [invalid('spec.selector', selector ?? {}, 'field is immutable')];
}

/** An IntOrString that must be a non-negative integer or a percentage. */
export function validateIntOrPercent(path: string, value: number | string | undefined): FieldError[] {
  if (value === undefined) return [];
  if (typeof value === 'number') return validateNonNegative(path, value);
  if (!/^[0-9]+%$/.test(value)) return [invalid(path, value, "a valid percent string must be a numeric string followed by an ending '%' (e.g. '1%',  or '93%', regex used for validation is '[0-9]+%')")];
  return [];
}

export const forbiddenSpecUpdate = (detail: string): FieldError => forbidden('spec', detail);
