// The DiskPressure condition of the node agent (src/control/node/disk-pressure.ts), table-driven:
// the kubelet's nodefs.available<10% threshold, its reasons and messages, transition times kept while
// the status holds, and an event only when the status changes.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { diskPressureCondition, underDiskPressure } from '../../src/control/node/disk-pressure.js';

const MiB = 1024 * 1024;

describe('DiskPressure', () => {
  const thresholds: [string, number, number, boolean][] = [
    ['an empty 300Mi pool (219 MiB of 300 available)', 300 * MiB, 219 * MiB, false],
    ['exactly 10% available is not pressure (strict <)', 100 * MiB, 10 * MiB, false],
    ['just under 10% is', 100 * MiB, 10 * MiB - 1, true],
    ['two full 100Mi volumes on a 300Mi pool (19 MiB left)', 300 * MiB, 19 * MiB, true],
    ['nothing available', 300 * MiB, 0, true],
    ['a filesystem without a size never is', 0, 0, false],
  ];
  for (const [what, total, available, want] of thresholds) {
    it(what, () => assert.equal(underDiskPressure({ totalBytes: total, availableBytes: available }), want));
  }

  const t0 = '2026-12-06T05:00:00Z';
  const t1 = '2026-12-06T05:00:10Z';
  const transitions: [string, Parameters<typeof diskPressureCondition>[0], boolean, { status: string; reason: string; message: string; since: string; event: string | undefined }][] = [
    ['first report, no pressure', undefined, false, { status: 'False', reason: 'KubeletHasNoDiskPressure', message: 'kubelet has no disk pressure', since: t1, event: 'NodeHasNoDiskPressure' }],
    ['first report, pressure', undefined, true, { status: 'True', reason: 'KubeletHasDiskPressure', message: 'kubelet has disk pressure', since: t1, event: 'NodeHasDiskPressure' }],
    [
      'no change keeps the transition time, no event',
      { type: 'DiskPressure', status: 'False', lastTransitionTime: t0 },
      false,
      { status: 'False', reason: 'KubeletHasNoDiskPressure', message: 'kubelet has no disk pressure', since: t0, event: undefined },
    ],
    [
      'filling up: False → True',
      { type: 'DiskPressure', status: 'False', lastTransitionTime: t0 },
      true,
      { status: 'True', reason: 'KubeletHasDiskPressure', message: 'kubelet has disk pressure', since: t1, event: 'NodeHasDiskPressure' },
    ],
    [
      'freed: True → False',
      { type: 'DiskPressure', status: 'True', lastTransitionTime: t0 },
      false,
      { status: 'False', reason: 'KubeletHasNoDiskPressure', message: 'kubelet has no disk pressure', since: t1, event: 'NodeHasNoDiskPressure' },
    ],
  ];
  for (const [what, previous, pressure, want] of transitions) {
    it(what, () => {
      const { condition, event } = diskPressureCondition(previous, pressure, t1);
      assert.deepEqual(
        { status: condition.status, reason: condition.reason, message: condition.message, since: condition.lastTransitionTime, event },
        want,
      );
      assert.equal(condition.type, 'DiskPressure');
      assert.equal(condition.lastHeartbeatTime, t1);
    });
  }
});
