// kubectl's table columns for the workloads (k8s.io/kubernetes pkg/printers/internalversion:
// statefulSet, deployment, replicaSet, daemonSet and job column definitions and print functions),
// with the `-o wide` ones (CONTAINERS, IMAGES, SELECTOR) at priority 1.
import { selectorString } from '../label-selector.js';
import type { DaemonSet, Deployment, PodTemplateSpec, ReplicaSet, StatefulSet } from '../types/apps.js';
import type { Job } from '../types/batch.js';
import type { KubeObject } from '../types/meta.js';
import type { ColumnDefinition, KindColumns } from './columns.js';
import { age, humanDuration } from './values.js';

type Spec = [name: string, type: ColumnDefinition['type'], priority: number, description: string];

const NAME: Spec = ['Name', 'string', 0, 'Name must be unique within a namespace.'];
const AGE: Spec = ['Age', 'string', 0, 'CreationTimestamp is a timestamp representing the server time when this object was created.'];
const WIDE: Spec[] = [
  ['Containers', 'string', 1, 'Names of each container in the template.'],
  ['Images', 'string', 1, 'Images referenced by each container in the template.'],
  ['Selector', 'string', 1, 'Label selector for pods.'],
];

function define<T extends KubeObject>(specs: Spec[], cells: (obj: T, now: number) => string[]): KindColumns {
  return {
    columns: specs.map(([name, type, priority, description]) => ({ name, type, format: name === 'Name' ? 'name' : '', description, priority })),
    cells: cells as (obj: KubeObject, now: number) => string[],
  };
}

/** CONTAINERS and IMAGES: the template's containers, comma-separated. */
function wide(template: PodTemplateSpec | undefined, selector: string): string[] {
  const containers = template?.spec?.containers ?? [];
  return [containers.map((c) => c.name).join(','), containers.map((c) => c.image ?? '').join(','), selector === '' ? '<none>' : selector];
}

const n = (value: number | undefined): string => String(value ?? 0);

export const statefulSetColumns = define<StatefulSet>([NAME, ['Ready', 'string', 0, 'Number of the pod with ready state'], AGE, ...WIDE.slice(0, 2)], (o, now) => [
  o.metadata.name ?? '',
  `${o.status?.readyReplicas ?? 0}/${o.spec?.replicas ?? 0}`,
  age(o.metadata.creationTimestamp, now),
  ...wide(o.spec?.template, '').slice(0, 2),
]);

export const deploymentColumns = define<Deployment>(
  [
    NAME,
    ['Ready', 'string', 0, 'Number of the pod with ready state'],
    ['Up-to-date', 'string', 0, 'Total number of non-terminated pods targeted by this deployment that have the desired template spec.'],
    ['Available', 'string', 0, 'Total number of available pods (ready for at least minReadySeconds) targeted by this deployment.'],
    AGE,
    ...WIDE,
  ],
  (o, now) => [
    o.metadata.name ?? '',
    `${o.status?.readyReplicas ?? 0}/${o.spec?.replicas ?? 0}`,
    n(o.status?.updatedReplicas),
    n(o.status?.availableReplicas),
    age(o.metadata.creationTimestamp, now),
    ...wide(o.spec?.template, selectorString(o.spec?.selector)),
  ],
);

export const replicaSetColumns = define<ReplicaSet>(
  [
    NAME,
    ['Desired', 'integer', 0, 'Replicas is the number of desired replicas.'],
    ['Current', 'integer', 0, 'Replicas is the most recently observed number of replicas.'],
    ['Ready', 'integer', 0, 'The number of ready replicas for this replica set.'],
    AGE,
    ...WIDE,
  ],
  (o, now) => [
    o.metadata.name ?? '',
    n(o.spec?.replicas),
    n(o.status?.replicas),
    n(o.status?.readyReplicas),
    age(o.metadata.creationTimestamp, now),
    ...wide(o.spec?.template, selectorString(o.spec?.selector)),
  ],
);

/** NODE SELECTOR: labels.FormatLabels, keys sorted, "<none>" when empty. */
function formatLabels(labels: Record<string, string> | undefined): string {
  const entries = Object.entries(labels ?? {}).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return entries.length === 0 ? '<none>' : entries.map(([k, v]) => `${k}=${v}`).join(',');
}

export const daemonSetColumns = define<DaemonSet>(
  [
    NAME,
    ['Desired', 'integer', 0, 'The total number of nodes that should be running the daemon pod (including nodes correctly running the daemon pod).'],
    ['Current', 'integer', 0, 'The number of nodes that are running at least 1 daemon pod and are supposed to run the daemon pod.'],
    ['Ready', 'integer', 0, 'The number of nodes that should be running the daemon pod and have one or more of the daemon pod running and ready.'],
    ['Up-to-date', 'integer', 0, 'The total number of nodes that are running updated daemon pod'],
    ['Available', 'integer', 0, 'The number of nodes that should be running the daemon pod and have one or more of the daemon pod running and available (ready for at least spec.minReadySeconds)'],
    ['Node Selector', 'string', 0, 'NodeSelector is a selector which must be true for the pod to fit on a node.'],
    AGE,
    ...WIDE,
  ],
  (o, now) => [
    o.metadata.name ?? '',
    n(o.status?.desiredNumberScheduled),
    n(o.status?.currentNumberScheduled),
    n(o.status?.numberReady),
    n(o.status?.updatedNumberScheduled),
    n(o.status?.numberAvailable),
    formatLabels(o.spec?.template?.spec?.nodeSelector),
    age(o.metadata.creationTimestamp, now),
    ...wide(o.spec?.template, selectorString(o.spec?.selector)),
  ],
);

/** kubectl 1.32's job STATUS: the finished condition, else Terminating, Suspended or Running. */
export function jobStatus(job: Job): string {
  const isTrue = (type: string): boolean => (job.status?.conditions ?? []).some((c) => c.type === type && c.status === 'True');
  if (isTrue('Complete')) return 'Complete';
  if (isTrue('Failed')) return 'Failed';
  if (job.metadata.deletionTimestamp) return 'Terminating';
  if (isTrue('SuccessCriteriaMet')) return 'SuccessCriteriaMet';
  if (isTrue('FailureTarget')) return 'FailureTarget';
  if (isTrue('Suspended')) return 'Suspended';
  return 'Running';
}

function jobCompletions(job: Job): string {
  const succeeded = job.status?.succeeded ?? 0;
  if (job.spec?.completions !== undefined) return `${succeeded}/${job.spec.completions}`;
  const parallelism = job.spec?.parallelism ?? 0;
  return parallelism > 1 ? `${succeeded}/1 of ${parallelism}` : `${succeeded}/1`;
}

function jobDuration(job: Job, now: number): string {
  const start = job.status?.startTime;
  if (!start) return '';
  const end = job.status?.completionTime ? Date.parse(job.status.completionTime) : now;
  return humanDuration(end - Date.parse(start));
}

export const jobColumns = define<Job>(
  [
    NAME,
    ['Status', 'string', 0, 'Status of the job.'],
    ['Completions', 'string', 0, 'The completed pods of the job over the desired completions.'],
    ['Duration', 'string', 0, 'Time required to complete the job.'],
    AGE,
    ...WIDE,
  ],
  (o, now) => [
    o.metadata.name ?? '',
    jobStatus(o),
    jobCompletions(o),
    jobDuration(o, now),
    age(o.metadata.creationTimestamp, now),
    ...wide(o.spec?.template, selectorString(o.spec?.selector)),
  ],
);
