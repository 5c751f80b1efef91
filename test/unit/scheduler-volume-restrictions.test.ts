// VolumeRestrictions' NoDiskConflict on in-memory pods: which inline disks two pods on one node
// cannot share, with kube-scheduler's "node(s) had no available disk". (ReadWriteOncePod is tested
// through the controllers in control-controllers-ephemeral and node-pod-ephemeral.)
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Volume } from '../../src/control/api/types/core.js';
import { CycleState } from '../../src/control/scheduler/framework.js';
import type { PluginContext } from '../../src/control/scheduler/plugin-context.js';
import { VolumeRestrictions, volumesConflict } from '../../src/control/scheduler/plugins/volume-restrictions.js';
import { ctr, info, node, podOf } from './scheduler-helpers.js';

const v = (source: Record<string, unknown>): Volume => ({ name: 'd', ...source });
const rbd = (image: string, readOnly = false, monitors = ['10.0.0.1:6789'], pool?: string): Volume => v({ rbd: { monitors, image, readOnly, ...(pool ? { pool } : {}) } });

describe('VolumeRestrictions: NoDiskConflict', () => {
  const cases: { name: string; a: Volume; b: Volume; conflict: boolean }[] = [
    { name: 'one GCE PD read-write twice', a: v({ gcePersistentDisk: { pdName: 'pd' } }), b: v({ gcePersistentDisk: { pdName: 'pd' } }), conflict: true },
    { name: 'one GCE PD read-only twice', a: v({ gcePersistentDisk: { pdName: 'pd', readOnly: true } }), b: v({ gcePersistentDisk: { pdName: 'pd', readOnly: true } }), conflict: false },
    { name: 'two GCE PDs', a: v({ gcePersistentDisk: { pdName: 'pd1' } }), b: v({ gcePersistentDisk: { pdName: 'pd2' } }), conflict: false },
    { name: 'one EBS volume, even read-only', a: v({ awsElasticBlockStore: { volumeID: 'vol-1', readOnly: true } }), b: v({ awsElasticBlockStore: { volumeID: 'vol-1', readOnly: true } }), conflict: true },
    { name: 'one iSCSI IQN, one side writable', a: v({ iscsi: { iqn: 'iqn.x', readOnly: true } }), b: v({ iscsi: { iqn: 'iqn.x' } }), conflict: true },
    { name: 'one RBD image, monitors overlapping', a: rbd('img'), b: rbd('img', false, ['10.0.0.2:6789', '10.0.0.1:6789']), conflict: true },
    { name: 'one RBD image, both read-only', a: rbd('img', true), b: rbd('img', true), conflict: false },
    { name: 'one RBD image name in another pool', a: rbd('img'), b: rbd('img', false, undefined, 'other'), conflict: false },
    { name: 'one RBD image name, other monitors', a: rbd('img'), b: rbd('img', false, ['10.9.9.9:6789']), conflict: false },
    { name: 'different kinds of disk', a: v({ gcePersistentDisk: { pdName: 'x' } }), b: v({ iscsi: { iqn: 'x' } }), conflict: false },
  ];
  for (const c of cases) it(c.name, () => assert.equal(volumesConflict(c.a, c.b), c.conflict));

  it('filter: a node where another pod uses the disk is refused', () => {
    const plugin = new VolumeRestrictions({} as PluginContext);
    const mine = podOf('mine', [ctr('c')], { volumes: [rbd('img')] });
    const theirs = podOf('theirs', [ctr('c')], { volumes: [rbd('img')] });
    const other = podOf('other', [ctr('c')], { volumes: [rbd('another')] });
    assert.deepEqual(plugin.filter(new CycleState(), mine, info(node('n'), [theirs])).reasons, ['node(s) had no available disk']);
    assert.equal(plugin.filter(new CycleState(), mine, info(node('n'), [other])).code, 'Success');
  });
});
