// CSIDriver: how Kubernetes should talk to a CSI driver (attach or not, pod info on mount, …).
import { z } from 'zod';
import type { CSIDriver } from '../types/storage.js';
import { immutable, supportedValue } from '../validation/common.js';
import { child, type FieldError, index } from '../validation/field-errors.js';
import { isCSIDriverName } from '../validation/names.js';
import { bool, kindSchema, str, strings } from '../validation/schemas.js';
import { defineStrategy } from './strategy.js';

const LIFECYCLE_MODES = ['Ephemeral', 'Persistent'] as const;
const FS_GROUP_POLICIES = ['File', 'None', 'ReadWriteOnceWithFSType'] as const;

const schema = kindSchema({
  spec: z
    .looseObject({
      attachRequired: bool,
      podInfoOnMount: bool,
      volumeLifecycleModes: strings,
      storageCapacity: bool,
      fsGroupPolicy: str,
      requiresRepublish: bool,
      seLinuxMount: bool,
    })
    .optional(),
});

export const csiDriverStrategy = defineStrategy<CSIDriver>({
  schema,
  nameCheck: isCSIDriverName,
  defaults(driver) {
    driver.spec ??= {};
    const spec = driver.spec;
    spec.attachRequired ??= true;
    spec.podInfoOnMount ??= false;
    spec.volumeLifecycleModes ??= ['Persistent'];
    spec.storageCapacity ??= false;
    spec.fsGroupPolicy ??= 'ReadWriteOnceWithFSType';
    spec.requiresRepublish ??= false;
    spec.seLinuxMount ??= false;
  },
  validate(driver) {
    const spec = driver.spec;
    const errs: FieldError[] = (spec.volumeLifecycleModes ?? []).flatMap((mode, i) => supportedValue(index('spec.volumeLifecycleModes', i), mode, LIFECYCLE_MODES));
    errs.push(...supportedValue(child('spec', 'fsGroupPolicy'), spec.fsGroupPolicy, FS_GROUP_POLICIES));
    return errs;
  },
  validateUpdate(driver, old) {
    return [
      ...immutable('spec.attachRequired', driver.spec.attachRequired, old.spec.attachRequired),
      ...immutable('spec.fsGroupPolicy', driver.spec.fsGroupPolicy, old.spec.fsGroupPolicy),
      ...immutable('spec.volumeLifecycleModes', driver.spec.volumeLifecycleModes, old.spec.volumeLifecycleModes),
    ];
  },
});
