// initContainers without a node: which step comes next (init-containers.ts), the pod status the
// agent reports from it (phase, Initialized, initContainerStatuses), and the STATUS column kubectl
// and `stowage get pod` print for it (Init:0/2, Init:Error, Init:CrashLoopBackOff, PodInitializing).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { buildTable } from '../../src/control/api/printers/table.js';
import { resourceForName } from '../../src/control/api/registry.js';
import type { Container, Pod } from '../../src/control/api/types/core.js';
import { nextInitStep } from '../../src/control/node/init-containers.js';
import { computePodStatus, type ContainerView } from '../../src/control/node/pod-status.js';
import type { ContainerStatus } from '../../src/control/node/runtime-api.js';

const c = (name: string): Container => ({ name, image: 'busybox', command: ['true'] });

function pod(restartPolicy: Pod['spec']['restartPolicy'], inits = 2): Pod {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: 'p', namespace: 'default', uid: 'u' },
    spec: { restartPolicy, initContainers: Array.from({ length: inits }, (_, i) => c(`init${i}`)), containers: [c('app')] },
  };
}

const running: ContainerStatus = { state: 'running', attempt: 0, pid: 1 };
const completed: ContainerStatus = { state: 'exited', attempt: 0, exitCode: 0, reason: 'Completed' };
const failed: ContainerStatus = { state: 'exited', attempt: 0, exitCode: 3, reason: 'Error' };

describe('nextInitStep', () => {
  const cases: [string, Pod['spec']['restartPolicy'], (ContainerStatus | undefined)[], ReturnType<typeof nextInitStep>][] = [
    ['nothing started: the first', 'Always', [undefined, undefined], { kind: 'run', index: 0 }],
    ['the first running: watch it', 'Always', [running, undefined], { kind: 'run', index: 0 }],
    ['the first completed: the second', 'Always', [completed, undefined], { kind: 'run', index: 1 }],
    ['all completed: done', 'Never', [completed, completed], { kind: 'done' }],
    ['failed under Always: restart it', 'Always', [failed, undefined], { kind: 'run', index: 0 }],
    ['failed under OnFailure: restart it', 'OnFailure', [completed, failed], { kind: 'run', index: 1 }],
    ['failed under Never: the pod fails', 'Never', [completed, failed], { kind: 'failed', index: 1 }],
  ];
  for (const [name, policy, statuses, want] of cases) {
    it(name, () => assert.deepEqual(nextInitStep(pod(policy), statuses), want));
  }
  it('a pod without init containers is done', () => assert.deepEqual(nextInitStep(pod('Always', 0), []), { kind: 'done' }));
});

/** The STATUS cell `get pod` prints for the status the agent computes from these views. */
function printed(p: Pod, inits: ContainerView[], app: ContainerView): { phase: string; status: string; initialized: string } {
  const status = computePodStatus({ pod: p, views: [app], initViews: inits, volumesReady: true, hostIP: '127.0.0.1', now: '2026-01-01T00:00:00Z' });
  const resource = resourceForName('pods');
  assert.ok(resource);
  const withStatus: Pod = { ...p, status };
  const table = buildTable(resource, [withStatus], { now: Date.parse('2026-01-01T00:00:10Z') });
  return { phase: status.phase ?? '', status: String(table.rows[0]?.cells[2]), initialized: status.conditions?.find((x) => x.type === 'Initialized')?.status ?? '' };
}

describe('pod status and the STATUS column with init containers', () => {
  const p = pod('Always');
  const [i0, i1] = p.spec.initContainers ?? [];
  const app = p.spec.containers[0]!;
  const initializing: ContainerView = { container: app, status: undefined, waiting: { reason: 'PodInitializing' } };
  const cases: [string, Pod, ContainerView[], ContainerView, { phase: string; status: string; initialized: string }][] = [
    ['none started', p, [{ container: i0!, status: undefined, waiting: { reason: 'PodInitializing' } }, { container: i1!, status: undefined, waiting: { reason: 'PodInitializing' } }], initializing, { phase: 'Pending', status: 'Init:0/2', initialized: 'False' }],
    ['the first running', p, [{ container: i0!, status: running }, { container: i1!, status: undefined, waiting: { reason: 'PodInitializing' } }], initializing, { phase: 'Pending', status: 'Init:0/2', initialized: 'False' }],
    ['the second running', p, [{ container: i0!, status: completed }, { container: i1!, status: running }], initializing, { phase: 'Pending', status: 'Init:1/2', initialized: 'False' }],
    ['the first in back-off', p, [{ container: i0!, status: failed, last: failed, waiting: { reason: 'CrashLoopBackOff' } }, { container: i1!, status: undefined }], initializing, { phase: 'Pending', status: 'Init:CrashLoopBackOff', initialized: 'False' }],
    ['the first failed under Never', pod('Never'), [{ container: i0!, status: failed }, { container: i1!, status: undefined }], initializing, { phase: 'Failed', status: 'Init:Error', initialized: 'False' }],
    ['all done, the app being created', p, [{ container: i0!, status: completed }, { container: i1!, status: completed }], initializing, { phase: 'Pending', status: 'PodInitializing', initialized: 'True' }],
    ['all done, the app running', p, [{ container: i0!, status: completed }, { container: i1!, status: completed }], { container: app, status: running }, { phase: 'Running', status: 'Running', initialized: 'True' }],
  ];
  for (const [name, thePod, inits, appView, want] of cases) {
    it(name, () => assert.deepEqual(printed(thePod, inits, appView), want));
  }
});
