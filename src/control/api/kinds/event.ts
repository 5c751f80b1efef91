// Event (core/v1): an event lives in the namespace of the object it is about.
import { supportedValue } from '../validation/common.js';
import { z } from 'zod';
import type { Event } from '../types/core.js';
import { type FieldError, invalid, required } from '../validation/field-errors.js';
import { int, kindSchema, objectReference, str } from '../validation/schemas.js';
import { defineStrategy } from './strategy.js';

const TYPES = ['Normal', 'Warning'] as const;

const schema = kindSchema({
  involvedObject: objectReference,
  reason: str,
  message: str,
  type: str,
  source: z.looseObject({ component: str, host: str }).optional(),
  firstTimestamp: str,
  lastTimestamp: str,
  count: int,
  reportingComponent: str,
  reportingInstance: str,
  eventTime: str,
  series: z.looseObject({ count: int, lastObservedTime: str }).optional(),
  action: str,
  related: objectReference,
});

export const eventStrategy = defineStrategy<Event>({
  schema,
  validate(event) {
    const errs: FieldError[] = [];
    const involved = event.involvedObject as Event['involvedObject'] | undefined;
    if (involved === undefined) return [required('involvedObject')];
    const namespace = event.metadata.namespace ?? '';
    // Events about cluster-scoped objects go to "default", as old clients put them.
    const matches = involved.namespace ? involved.namespace === namespace : namespace === '' || namespace === 'default';
    if (!matches) errs.push(invalid('involvedObject.namespace', involved.namespace ?? '', 'does not match event.namespace'));
    errs.push(...supportedValue('type', event.type, TYPES));
    return errs;
  },
});
