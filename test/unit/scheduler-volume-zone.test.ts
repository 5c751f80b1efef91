// VolumeZone on in-memory objects: a bound PV's zone/region labels against the node's, with
// kube-scheduler's "node(s) had no available volume zone".
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { PersistentVolume, PersistentVolumeClaim } from '../../src/control/api/types/core.js';
import { CycleState } from '../../src/control/scheduler/framework.js';
import type { PluginContext } from '../../src/control/scheduler/plugin-context.js';
import { VolumeZone } from '../../src/control/scheduler/plugins/volume-zone.js';
import { ctr, info, node, podOf } from './scheduler-helpers.js';

function fixture(pvLabels: Record<string, string>): { plugin: VolumeZone; pod: ReturnType<typeof podOf> } {
  const pvc: PersistentVolumeClaim = { apiVersion: 'v1', kind: 'PersistentVolumeClaim', metadata: { name: 'data', namespace: 'default', uid: 'c1' }, spec: { volumeName: 'pv1' }, status: { phase: 'Bound' } };
  const pv: PersistentVolume = { apiVersion: 'v1', kind: 'PersistentVolume', metadata: { name: 'pv1', labels: pvLabels }, spec: { capacity: { storage: '1Gi' } } } as PersistentVolume;
  const ctx = { pvcs: { getByName: (_ns: string, name: string) => (name === 'data' ? pvc : undefined) }, pvs: { get: (name: string) => (name === 'pv1' ? pv : undefined), byIndex: () => [] }, classes: { get: () => undefined } } as unknown as PluginContext;
  return { plugin: new VolumeZone(ctx), pod: podOf('p', [ctr('c')], { volumes: [{ name: 'd', persistentVolumeClaim: { claimName: 'data' } }] }) };
}

describe('VolumeZone', () => {
  const zone = 'topology.kubernetes.io/zone';
  const betaZone = 'failure-domain.beta.kubernetes.io/zone';
  const cases: { name: string; pv: Record<string, string>; node: Record<string, string>; ok: boolean }[] = [
    { name: 'same zone', pv: { [zone]: 'a' }, node: { [zone]: 'a' }, ok: true },
    { name: 'another zone', pv: { [zone]: 'a' }, node: { [zone]: 'b' }, ok: false },
    { name: 'one of the PV\'s zones', pv: { [zone]: 'a__b' }, node: { [zone]: 'b' }, ok: true },
    { name: 'a node without topology labels takes it', pv: { [zone]: 'a' }, node: {}, ok: true },
    { name: 'a node with a region but no zone', pv: { [zone]: 'a' }, node: { 'topology.kubernetes.io/region': 'r' }, ok: false },
    { name: 'the PV\'s beta label against the node\'s GA label', pv: { [betaZone]: 'a' }, node: { [zone]: 'a' }, ok: true },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const { plugin, pod } = fixture(c.pv);
      const state = new CycleState();
      assert.equal(plugin.preFilter(state, pod).code, 'Success');
      assert.deepEqual(plugin.filter(state, pod, info(node('n', { labels: c.node }))).reasons, c.ok ? [] : ['node(s) had no available volume zone']);
    });
  }
  it('a PV without zone labels skips the plugin', () => {
    const { plugin, pod } = fixture({});
    assert.equal(plugin.preFilter(new CycleState(), pod).code, 'Skip');
  });
});
