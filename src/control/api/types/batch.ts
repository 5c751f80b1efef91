// batch/v1 Job as it appears on the wire: the fields the embedded job controller reads and writes.
import type { PodTemplateSpec, WorkloadCondition } from './apps.js';
import type { KubeObject, LabelSelector, Time } from './meta.js';

export interface JobSpec {
  parallelism?: number;
  completions?: number;
  backoffLimit?: number;
  activeDeadlineSeconds?: number;
  ttlSecondsAfterFinished?: number;
  completionMode?: 'NonIndexed' | 'Indexed';
  suspend?: boolean;
  manualSelector?: boolean;
  selector?: LabelSelector;
  template: PodTemplateSpec;
  podReplacementPolicy?: 'TerminatingOrFailed' | 'Failed';
}

export interface JobStatus {
  conditions?: WorkloadCondition[];
  startTime?: Time;
  completionTime?: Time;
  active?: number;
  succeeded?: number;
  failed?: number;
  ready?: number;
  terminating?: number;
  uncountedTerminatedPods?: { succeeded?: string[]; failed?: string[] };
}

export interface Job extends KubeObject {
  apiVersion: 'batch/v1';
  kind: 'Job';
  spec: JobSpec;
  status?: JobStatus;
}
