// The CSI call journal behind the web console's "journey of a volume": bounded (the oldest calls
// fall off), in the order calls started, only the fields it names (no secrets, no parameters), and
// filtered by volume ID or CreateVolume name.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type CsiCallObservation, CsiCallJournal } from '../../src/csi/call-journal.js';

function call(method: string, request: object, extra: Partial<CsiCallObservation> = {}): CsiCallObservation {
  return { method, endpoint: '/run/csi.sock', request, response: {}, started: Date.parse('2026-01-02T03:04:05Z'), durationMs: 12.3456, code: 0, ...extra };
}

describe('CsiCallJournal', () => {
  it('keeps the latest `capacity` calls, oldest first', () => {
    const j = new CsiCallJournal(3);
    for (let i = 1; i <= 5; i++) j.observe(call('NodeExpandVolume', { volume_id: `v${i}`, volume_path: '/p' }));
    assert.deepEqual(
      j.calls().map((c) => [c.seq, c.volumeId]),
      [
        [3, 'v3'],
        [4, 'v4'],
        [5, 'v5'],
      ],
    );
  });

  it('copies only the fields it names: secrets, parameters and contexts never enter it', () => {
    const j = new CsiCallJournal();
    j.observe(
      call(
        'NodeStageVolume',
        { volume_id: 'vol-1', staging_target_path: '/k/staging', secrets: { userKey: 'AQD-secret' }, volume_context: { pool: 'ctx-pool-value' }, publish_context: { token: 'publish-token-value' } },
        { node: 'n1' },
      ),
    );
    j.observe(call('CreateVolume', { name: 'pvc-1', parameters: { csiProvisionerSecret: 'nope' }, secrets: { key: 'AQD-secret' } }, { code: 8, message: 'not enough pool capacity' }));
    const text = JSON.stringify(j.calls());
    for (const secret of ['AQD-secret', 'nope', 'publish-token-value', 'ctx-pool-value']) assert.ok(!text.includes(secret), `${secret} must not be journaled: ${text}`);
    const [stage, create] = j.calls();
    assert.deepEqual(stage, {
      seq: 1,
      method: 'NodeStageVolume',
      endpoint: '/run/csi.sock',
      startTime: '2026-01-02T03:04:05.000Z',
      durationMs: 12.346,
      code: 'OK',
      volumeId: 'vol-1',
      node: 'n1',
      stagingTargetPath: '/k/staging',
    });
    assert.equal(create?.code, 'RESOURCE_EXHAUSTED');
    assert.equal(create?.message, 'not enough pool capacity');
    assert.equal(create?.volumeName, 'pvc-1');
  });

  it('names the volume from CreateVolume’s answer, the node from ControllerPublish’s request', () => {
    const j = new CsiCallJournal();
    j.observe({ ...call('CreateVolume', { name: 'pvc-9' }), response: { volume: { volume_id: 'id-9', capacity_bytes: 1 } } });
    j.observe(call('ControllerPublishVolume', { volume_id: 'id-9', node_id: 'n2' }, { node: 'n1' }));
    j.observe(call('NodePublishVolume', { volume_id: 'id-9', staging_target_path: '/s', target_path: '/t' }, { node: 'n2' }));
    j.observe(call('NodePublishVolume', { volume_id: 'other', target_path: '/t2' }));
    const mine = j.calls('id-9');
    assert.deepEqual(
      mine.map((c) => [c.method, c.node ?? '', c.targetPath ?? '']),
      [
        ['CreateVolume', '', ''],
        ['ControllerPublishVolume', 'n2', ''],
        ['NodePublishVolume', 'n2', '/t'],
      ],
    );
    assert.deepEqual(
      j.calls('pvc-9').map((c) => c.method),
      ['CreateVolume'],
    );
  });

  it('leaves out calls about no volume, snapshot or node (Probe, capabilities), and stats polls that succeed', () => {
    const j = new CsiCallJournal();
    j.observe(call('Probe', {}));
    j.observe(call('NodeGetVolumeStats', { volume_id: 'id-1', volume_path: '/p' }));
    j.observe(call('NodeGetVolumeStats', { volume_id: 'id-1', volume_path: '/p' }, { code: 5, message: 'gone' }));
    j.observe(call('ControllerGetCapabilities', {}));
    j.observe(call('CreateSnapshot', { name: 'snap-1', source_volume_id: 'id-1' }, { response: { snapshot: { snapshot_id: 's-1' } } }));
    assert.deepEqual(
      j.calls().map((c) => [c.method, c.volumeId, c.snapshotId, c.code]),
      [
        ['NodeGetVolumeStats', 'id-1', undefined, 'NOT_FOUND'],
        ['CreateSnapshot', 'id-1', 's-1', 'OK'],
      ],
    );
  });

  it('refuses a capacity that is not a positive integer', () => {
    assert.throws(() => new CsiCallJournal(0), /positive integer/);
  });
});
