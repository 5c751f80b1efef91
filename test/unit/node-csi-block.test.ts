// The node agent's CSI calls against a recording fake driver: a raw block PV is staged and
// published at the kubelet's volumeDevices paths with a block capability, recorded (block record,
// the pod's device symlink) so that publishedOf/staged find it again and teardown undoes it; and
// the access mode the kubelet picks: ReadWriteOncePod as SINGLE_NODE_SINGLE_WRITER only when the
// driver advertises SINGLE_NODE_MULTI_WRITER, SINGLE_NODE_WRITER otherwise; and a CSI ephemeral
// inline volume, published without staging under the kubelet's volume handle.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, lstatSync, readlinkSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { pino } from 'pino';
import type { CsiClient } from '../../src/csi/client.js';
import type { PersistentVolume } from '../../src/control/api/types/core.js';
import { NodeCsiVolumes } from '../../src/control/node/csi-volumes.js';
import { NodeLayout } from '../../src/control/node/layout.js';

interface Call {
  rpc: string;
  req: Record<string, unknown>;
}

function fakeDriver(caps: string[]): { client: CsiClient; calls: Call[] } {
  const calls: Call[] = [];
  const rec = (rpc: string) => async (req: Record<string, unknown>) => {
    calls.push({ rpc, req });
    // The driver creates a block publish target (a file), as the spec says.
    if (rpc === 'NodePublishVolume' && (req['volume_capability'] as { block?: object }).block) await writeFile(String(req['target_path']), '');
    if (rpc === 'NodeUnpublishVolume') await rm(String(req['target_path']), { force: true });
    return {};
  };
  const node = {
    NodeGetCapabilities: async () => ({ capabilities: caps.map((type) => ({ rpc: { type } })) }),
    NodeStageVolume: rec('NodeStageVolume'),
    NodePublishVolume: rec('NodePublishVolume'),
    NodeUnpublishVolume: rec('NodeUnpublishVolume'),
    NodeUnstageVolume: rec('NodeUnstageVolume'),
  };
  return { client: { node } as unknown as CsiClient, calls };
}

function pv(name: string, accessModes: NonNullable<PersistentVolume['spec']['accessModes']>, volumeMode?: 'Block'): PersistentVolume {
  return {
    apiVersion: 'v1',
    kind: 'PersistentVolume',
    metadata: { name },
    spec: { accessModes, ...(volumeMode ? { volumeMode } : {}), csi: { driver: 'd.example', volumeHandle: `h-${name}` } },
  };
}

const input = (volume: PersistentVolume, podUid = 'pod-1') => ({ pv: volume, podUid, readOnly: false, publishContext: {}, stageSecrets: {}, publishSecrets: {} });

describe('CSI volumes on the node', () => {
  const dirs: string[] = [];
  after(async () => {
    for (const d of dirs) await rm(d, { recursive: true, force: true });
  });
  const volumesWith = async (caps: string[]) => {
    const dir = await mkdtemp(join(tmpdir(), 'stowage-csi-block-'));
    dirs.push(dir);
    const layout = new NodeLayout(dir);
    const fake = fakeDriver(caps);
    return { layout, calls: fake.calls, volumes: new NodeCsiVolumes({ layout, nodeClient: () => fake.client, logger: pino({ level: 'silent' }) }) };
  };

  it('stages and publishes a raw block volume at the volumeDevices paths, finds it again, and undoes it', async () => {
    const { layout, calls, volumes } = await volumesWith(['STAGE_UNSTAGE_VOLUME']);
    const target = await volumes.setUp(input(pv('raw', ['ReadWriteOnce'], 'Block')));
    const root = layout.root;
    assert.equal(target, join(root, 'plugins/kubernetes.io/csi/volumeDevices/publish/raw/pod-1'));
    assert.deepEqual(
      calls.map((c) => [c.rpc, c.req['staging_target_path'], c.req['target_path'], JSON.stringify(c.req['volume_capability'])]),
      [
        ['NodeStageVolume', join(root, 'plugins/kubernetes.io/csi/volumeDevices/staging/raw'), undefined, '{"block":{},"access_mode":{"mode":"SINGLE_NODE_WRITER"}}'],
        ['NodePublishVolume', join(root, 'plugins/kubernetes.io/csi/volumeDevices/staging/raw'), target, '{"block":{},"access_mode":{"mode":"SINGLE_NODE_WRITER"}}'],
      ],
    );
    const link = join(root, 'pods/pod-1/volumeDevices/kubernetes.io~csi/raw');
    assert.ok(lstatSync(link).isSymbolicLink());
    assert.equal(readlinkSync(link), target);
    const [published] = await volumes.publishedOf('pod-1');
    assert.deepEqual(published, { driverName: 'd.example', volumeHandle: 'h-raw', pvName: 'raw', podUid: 'pod-1', block: true, stagingPath: join(root, 'plugins/kubernetes.io/csi/volumeDevices/staging/raw') });
    const staged = await volumes.staged();
    assert.deepEqual(staged.map((r) => [r.pvName, r.block]), [['raw', true]]);

    await volumes.tearDown('pod-1', published!);
    assert.equal(existsSync(link), false, 'the pod symlink is gone');
    assert.equal(existsSync(join(root, 'pods/pod-1/volumeDevices')), false);
    assert.deepEqual(await volumes.publishedOf('pod-1'), []);
    await volumes.unstage(staged[0]!);
    assert.deepEqual(calls.slice(2).map((c) => [c.rpc, c.req['target_path'] ?? c.req['staging_target_path']]), [
      ['NodeUnpublishVolume', target],
      ['NodeUnstageVolume', join(root, 'plugins/kubernetes.io/csi/volumeDevices/staging/raw')],
    ]);
    assert.equal(existsSync(join(root, 'plugins/kubernetes.io/csi/volumeDevices/raw')), false, 'the block record is gone');
    assert.equal(existsSync(join(root, 'plugins/kubernetes.io/csi/volumeDevices/staging/raw')), false);
    assert.equal(existsSync(join(root, 'plugins/kubernetes.io/csi/volumeDevices/publish/raw')), false);
    assert.deepEqual(await volumes.staged(), []);
  });

  it('publishes a CSI ephemeral inline volume with the kubelet\'s handle and no staging, and unpublishes it with the pod', async () => {
    const { layout, calls, volumes } = await volumesWith(['STAGE_UNSTAGE_VOLUME']);
    const target = await volumes.setUpInline({ podUid: 'pod-9', volumeName: 'scratch', driver: 'd.example', fsType: '', readOnly: false, volumeContext: { size: '1Gi' }, publishSecrets: {} });
    assert.equal(target, join(layout.root, 'pods/pod-9/volumes/kubernetes.io~csi/scratch/mount'));
    const handle = `csi-${createHash('sha256').update('pod-9scratch').digest('hex')}`;
    assert.deepEqual(
      calls.map((c) => [c.rpc, c.req['volume_id'], c.req['staging_target_path'], c.req['target_path'], c.req['volume_context']]),
      [['NodePublishVolume', handle, undefined, target, { size: '1Gi' }]],
    );
    const [published] = await volumes.publishedOf('pod-9');
    assert.deepEqual(published, { driverName: 'd.example', volumeHandle: handle, pvName: 'scratch', podUid: 'pod-9', ephemeral: true });
    assert.deepEqual(await volumes.staged(), [], 'nothing staged');
    await volumes.tearDown('pod-9', published!);
    assert.deepEqual(calls.at(-1)?.rpc, 'NodeUnpublishVolume');
    assert.deepEqual(await volumes.publishedOf('pod-9'), []);
  });

  const modes: [string, string[], NonNullable<PersistentVolume['spec']['accessModes']>, string][] = [
    ['RWOP, driver with SINGLE_NODE_MULTI_WRITER', ['STAGE_UNSTAGE_VOLUME', 'SINGLE_NODE_MULTI_WRITER'], ['ReadWriteOncePod'], 'SINGLE_NODE_SINGLE_WRITER'],
    ['RWOP, driver without it', ['STAGE_UNSTAGE_VOLUME'], ['ReadWriteOncePod'], 'SINGLE_NODE_WRITER'],
    ['RWO, driver with SINGLE_NODE_MULTI_WRITER', ['SINGLE_NODE_MULTI_WRITER'], ['ReadWriteOnce'], 'SINGLE_NODE_MULTI_WRITER'],
    ['RWO, driver without it', [], ['ReadWriteOnce'], 'SINGLE_NODE_WRITER'],
    ['RWX', ['SINGLE_NODE_MULTI_WRITER'], ['ReadWriteMany'], 'MULTI_NODE_MULTI_WRITER'],
  ];
  for (const [name, caps, accessModes, want] of modes) {
    it(`access mode: ${name} → ${want}`, async () => {
      const { calls, volumes } = await volumesWith(caps);
      await volumes.setUp(input(pv('fs', accessModes)));
      assert.ok(calls.length > 0);
      for (const c of calls) assert.equal((c.req['volume_capability'] as { access_mode: { mode: string } }).access_mode.mode, want, c.rpc);
    });
  }
});
