// Job (batch/v1): Kubernetes' defaults (completions and parallelism 1, backoffLimit 6, NonIndexed),
// the generated selector (batch.kubernetes.io/controller-uid) and labels on create, a restart
// policy of OnFailure or Never, and the immutable selector, template and completions.
import { isDeepStrictEqual } from 'node:util';
import { z } from 'zod';
import type { Job } from '../types/batch.js';
import { supportedValue } from '../validation/common.js';
import { type FieldError, invalid } from '../validation/field-errors.js';
import { bool, closed, conditions, int, kindSchema, labelSelector, str } from '../validation/schemas.js';
import { defaultTemplate, podTemplateSchema, validateNonNegative, validateSelector, validateTemplate } from './pod-template.js';
import { defineStrategy } from './strategy.js';

const schema = kindSchema({
  spec: closed(
    z.looseObject({
      parallelism: int,
      completions: int,
      backoffLimit: int,
      backoffLimitPerIndex: int,
      maxFailedIndexes: int,
      activeDeadlineSeconds: int,
      ttlSecondsAfterFinished: int,
      completionMode: str,
      suspend: bool,
      manualSelector: bool,
      selector: labelSelector,
      template: podTemplateSchema,
      podFailurePolicy: z.looseObject({}).optional(),
      successPolicy: z.looseObject({}).optional(),
      podReplacementPolicy: str,
      managedBy: str,
    }),
  ).optional(),
  status: z
    .looseObject({
      conditions: conditions(),
      startTime: str,
      completionTime: str,
      active: int,
      succeeded: int,
      failed: int,
      ready: int,
      terminating: int,
      completedIndexes: str,
      failedIndexes: str,
      uncountedTerminatedPods: z.looseObject({}).optional(),
    })
    .optional(),
});

export const JOB_UID_LABEL = 'batch.kubernetes.io/controller-uid';
export const JOB_NAME_LABEL = 'batch.kubernetes.io/job-name';

export const jobStrategy = defineStrategy<Job>({
  schema,
  prepareForCreate(job) {
    job.status = {};
    // generateSelector: unless manualSelector, the selector is the job's uid, and the template
    // carries it (with the legacy label names too).
    if (job.spec?.manualSelector === true) return;
    const uid = job.metadata.uid ?? '';
    const name = job.metadata.name ?? '';
    job.spec ??= {} as Job['spec'];
    job.spec.template ??= { spec: { containers: [] } };
    job.spec.template.metadata ??= {};
    job.spec.template.metadata.labels = { ...job.spec.template.metadata.labels, [JOB_UID_LABEL]: uid, [JOB_NAME_LABEL]: name, 'controller-uid': uid, 'job-name': name };
    job.spec.selector ??= { matchLabels: { [JOB_UID_LABEL]: uid } };
  },
  defaults(job) {
    job.spec ??= {} as Job['spec'];
    const spec = job.spec;
    if (spec.completions === undefined && spec.parallelism === undefined) {
      spec.completions = 1;
      spec.parallelism = 1;
    }
    spec.parallelism ??= 1;
    spec.backoffLimit ??= 6;
    spec.completionMode ??= 'NonIndexed';
    spec.suspend ??= false;
    spec.podReplacementPolicy ??= 'TerminatingOrFailed';
    defaultTemplate(spec.template);
  },
  validate(job) {
    const spec = job.spec;
    const errs: FieldError[] = [];
    errs.push(...validateNonNegative('spec.parallelism', spec.parallelism));
    errs.push(...validateNonNegative('spec.completions', spec.completions));
    errs.push(...validateNonNegative('spec.backoffLimit', spec.backoffLimit));
    if (spec.activeDeadlineSeconds !== undefined && spec.activeDeadlineSeconds <= 0) {
      errs.push(invalid('spec.activeDeadlineSeconds', spec.activeDeadlineSeconds, 'must be greater than or equal to 1'));
    }
    errs.push(...supportedValue('spec.completionMode', spec.completionMode, ['Indexed', 'NonIndexed']));
    errs.push(...validateSelector(spec.selector, spec.template, 'job'));
    errs.push(...validateTemplate(spec.template, ['OnFailure', 'Never']));
    return errs;
  },
  validateUpdate(job, old) {
    const errs: FieldError[] = [];
    if (!isDeepStrictEqual(job.spec.selector, old.spec.selector)) errs.push(invalid('spec.selector', job.spec.selector ?? {}, 'field is immutable'));
    if (!isDeepStrictEqual(job.spec.template, old.spec.template) && old.spec.suspend !== true) errs.push(invalid('spec.template', job.spec.template, 'field is immutable'));
    if (job.spec.completions !== old.spec.completions) errs.push(invalid('spec.completions', job.spec.completions ?? 0, 'field is immutable'));
    return errs;
  },
});
