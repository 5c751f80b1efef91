// The Priority admission plugin: a new pod's spec.priority and spec.preemptionPolicy come from its
// priorityClassName (none: the globalDefault class, whose name it then takes; no default: 0 and
// PreemptLowerPriority); a pod that names a class that does not exist, or sets a priority or
// policy that disagrees with its class, is Forbidden. For PriorityClasses: only one globalDefault,
// and the two system classes can be neither deleted nor created differently (priority-class.ts).
import { resourceForName, type ResourceInfo } from '../api/registry.js';
import type { Pod } from '../api/types/core.js';
import type { PriorityClass } from '../api/types/scheduling.js';
import type { Reader } from './admission.js';
import { SYSTEM_PRIORITY_CLASSES } from '../api/kinds/priority-class.js';
import { ForbiddenError } from './errors.js';

const PRIORITY_CLASSES = resourceForName('priorityclasses') as ResourceInfo;
const DEFAULT_PREEMPTION_POLICY = 'PreemptLowerPriority';

/** The globalDefault class; with several (a race upstream), the one of lowest value. */
function defaultClass(reader: Reader): PriorityClass | undefined {
  let found: PriorityClass | undefined;
  for (const pc of reader.list(PRIORITY_CLASSES) as PriorityClass[]) {
    if (pc.globalDefault === true && (found === undefined || found.value > pc.value)) found = pc;
  }
  return found;
}

export function admitPodPriority(reader: Reader, resource: ResourceInfo, pod: Pod): void {
  const spec = pod.spec;
  const name = pod.metadata.name ?? '';
  let priority: number;
  let policy: string;
  if (!spec.priorityClassName) {
    const pc = defaultClass(reader);
    priority = pc?.value ?? 0;
    policy = pc?.preemptionPolicy ?? DEFAULT_PREEMPTION_POLICY;
    if (pc !== undefined) spec.priorityClassName = pc.metadata.name ?? '';
  } else {
    const pc = reader.get(PRIORITY_CLASSES, '', spec.priorityClassName) as PriorityClass | undefined;
    if (pc === undefined) throw new ForbiddenError(resource, name, `no PriorityClass with name ${spec.priorityClassName} was found`);
    priority = pc.value;
    policy = pc.preemptionPolicy ?? DEFAULT_PREEMPTION_POLICY;
  }
  if (spec.priority !== undefined && spec.priority !== priority) {
    throw new ForbiddenError(
      resource,
      name,
      `the integer value of priority (${spec.priority}) must not be provided in pod spec; priority admission controller computed ${priority} from the given PriorityClass name`,
    );
  }
  spec.priority = priority;
  if (spec.preemptionPolicy !== undefined && spec.preemptionPolicy !== policy) {
    throw new ForbiddenError(
      resource,
      name,
      `the string value of PreemptionPolicy (${spec.preemptionPolicy}) must not be provided in pod spec; priority admission controller computed ${policy} from the given PriorityClass name`,
    );
  }
  spec.preemptionPolicy = policy;
}

/** Creating a second globalDefault class, or marking another one as default, is Forbidden. */
export function admitPriorityClass(reader: Reader, resource: ResourceInfo, pc: PriorityClass, operation: 'create' | 'update'): void {
  if (pc.globalDefault !== true) return;
  const existing = defaultClass(reader);
  if (existing === undefined) return;
  if (operation === 'create' || existing.metadata.name !== pc.metadata.name) {
    throw new ForbiddenError(resource, pc.metadata.name ?? '', `PriorityClass ${existing.metadata.name ?? ''} is already marked as default. Only one default can exist`);
  }
}

/** The system classes cannot be deleted (upstream's priorityclasses REST storage). */
export function admitPriorityClassDelete(resource: ResourceInfo, name: string): void {
  if (SYSTEM_PRIORITY_CLASSES.some((c) => c.name === name)) throw new ForbiddenError(resource, name, 'this is a system priority class and cannot be deleted');
}

/** The system classes as the API server creates them at start. */
export function systemPriorityClasses(): PriorityClass[] {
  return SYSTEM_PRIORITY_CLASSES.map((c) => ({
    apiVersion: 'scheduling.k8s.io/v1',
    kind: 'PriorityClass',
    metadata: { name: c.name },
    value: c.value,
    description: c.description,
    preemptionPolicy: 'PreemptLowerPriority',
  }));
}
