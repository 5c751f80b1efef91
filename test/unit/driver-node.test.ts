/**
 * The CSI Node service (src/driver/node.ts) against an in-memory backend
 * (test/support/fake-backend.ts), over a real CSI socket, without root and without mounting: the
 * kubelet root is a temp dir (NodePaths), and the fake records stagings and publications instead of
 * mounting. Table-driven: each row a request, the state before, the status a CO would get and the
 * state after; then the in-flight rules and one whole volume life through both services.
 */
import { status } from '@grpc/grpc-js';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, realpathSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { NodeCallers } from '../../src/csi/client.js';
import type { VolumeCapabilityInput } from '../../src/csi/types.js';
import { NodePaths } from '../../src/driver/backends/node-paths.js';
import { codeName, outcome, startHarness, type Harness } from '../support/csi-call.js';
import { FAKE_TOPOLOGY_KEY, FakeBackend } from '../support/fake-backend.js';

const GiB = 1024 ** 3;
const mount = (mode = 'SINGLE_NODE_WRITER', fs_type = ''): VolumeCapabilityInput => ({ mount: { fs_type }, access_mode: { mode } }) as VolumeCapabilityInput;
const block = (mode = 'SINGLE_NODE_WRITER'): VolumeCapabilityInput => ({ block: {}, access_mode: { mode } }) as VolumeCapabilityInput;

/** Kubelet-shaped paths beneath the test's root. */
interface Paths {
  root: string;
  /** Outside every kubelet root. */
  outside: string;
  staging(id: string): string;
  target(id: string, pod?: string): string;
}

function layout(dir: string): Paths {
  const base = realpathSync(dir);
  const root = join(base, 'kubelet');
  mkdirSync(root, { recursive: true });
  mkdirSync(join(base, 'outside'), { recursive: true });
  return {
    root,
    outside: join(base, 'outside'),
    staging: (id) => join(root, 'plugins/kubernetes.io/csi/fake.stowage.io', id, 'globalmount'),
    target: (id, pod = 'pod-1') => join(root, 'pods', pod, 'volumes/kubernetes.io~csi', id, 'mount'),
  };
}

interface Row {
  name: string;
  before?: (b: FakeBackend, p: Paths) => void | Promise<void>;
  call: (c: NodeCallers, p: Paths) => Promise<unknown>;
  code: status;
  message?: RegExp;
  after?: (b: FakeBackend, p: Paths, response: unknown) => void;
}

/** vol-a (mount), vol-blk (block): known to the backend, nothing staged. */
function seeded(b: FakeBackend): void {
  b.addVolume({ id: 'vol-a', name: 'pvc-a', capacityBytes: 2 * GiB });
  b.addVolume({ id: 'vol-blk', name: 'pvc-blk', accessType: 'block', capacityBytes: GiB });
}

/** vol-a staged and published at the usual paths, through the service itself. */
async function stagedAndPublished(h: Harness, p: Paths): Promise<void> {
  await h.client.node.NodeStageVolume({ volume_id: 'vol-a', staging_target_path: p.staging('vol-a'), volume_capability: mount() });
  await h.client.node.NodePublishVolume({
    volume_id: 'vol-a',
    staging_target_path: p.staging('vol-a'),
    target_path: p.target('vol-a'),
    volume_capability: mount(),
  });
}

function runRows(harness: () => Harness, paths: () => Paths, rows: Row[]): void {
  for (const row of rows) {
    it(row.name, async () => {
      const h = harness();
      const p = paths();
      const b = new FakeBackend();
      seeded(b);
      h.use(b, new NodePaths([p.root], []));
      await row.before?.(b, p);
      b.faults.calls.length = 0;
      const got = await outcome(row.call(h.client.node, p));
      assert.equal(codeName(got.code), codeName(row.code), `status (details: ${got.details})`);
      if (row.message) assert.match(got.details, row.message);
      row.after?.(b, p, got.response);
    });
  }
}

/** Validation rows must not reach the backend's node work. */
const untouched = (b: FakeBackend) =>
  assert.deepEqual(
    b.faults.calls.filter((c) => !c.startsWith('nodeVolume') && !c.startsWith('volumes.')),
    [],
    'no node work was done',
  );

describe('driver node service', () => {
  let h: Harness;
  let p: Paths;
  before(async () => {
    h = await startHarness();
    p = layout(h.dir);
  });
  after(() => h.stop());

  describe('argument validation: INVALID_ARGUMENT', () => {
    runRows(
      () => h,
      () => p,
      [
        { name: 'NodeStageVolume without volume_id', call: (c, p) => c.NodeStageVolume({ staging_target_path: p.staging('x'), volume_capability: mount() }), code: status.INVALID_ARGUMENT, message: /volume_id is required/, after: untouched },
        { name: 'NodeStageVolume without staging_target_path', call: (c) => c.NodeStageVolume({ volume_id: 'vol-a', volume_capability: mount() }), code: status.INVALID_ARGUMENT, message: /staging_target_path is required/, after: untouched },
        { name: 'NodeStageVolume without volume_capability', call: (c, p) => c.NodeStageVolume({ volume_id: 'vol-a', staging_target_path: p.staging('vol-a') }), code: status.INVALID_ARGUMENT, message: /volume_capability is required/, after: untouched },
        {
          name: 'NodeStageVolume with a relative staging path',
          call: (c) => c.NodeStageVolume({ volume_id: 'vol-a', staging_target_path: 'kubelet/globalmount', volume_capability: mount() }),
          code: status.INVALID_ARGUMENT,
          message: /not an absolute path/,
          after: untouched,
        },
        {
          name: 'NodeStageVolume with a staging path outside the kubelet roots',
          call: (c, p) => c.NodeStageVolume({ volume_id: 'vol-a', staging_target_path: join(p.outside, 'globalmount'), volume_capability: mount() }),
          code: status.INVALID_ARGUMENT,
          message: /accepts only paths beneath/,
          after: (b, p) => {
            untouched(b);
            assert.ok(!existsSync(join(p.outside, 'globalmount')));
          },
        },
        {
          name: 'NodeStageVolume with ".." in the staging path',
          call: (c, p) => c.NodeStageVolume({ volume_id: 'vol-a', staging_target_path: `${p.root}/../outside/x`, volume_capability: mount() }),
          code: status.INVALID_ARGUMENT,
          message: /contains "\.\."/,
          after: untouched,
        },
        {
          name: 'NodeStageVolume with the kubelet root itself',
          call: (c, p) => c.NodeStageVolume({ volume_id: 'vol-a', staging_target_path: p.root, volume_capability: mount() }),
          code: status.INVALID_ARGUMENT,
          after: untouched,
        },
        {
          name: 'NodeStageVolume with an unknown access mode',
          call: (c, p) => c.NodeStageVolume({ volume_id: 'vol-a', staging_target_path: p.staging('vol-a'), volume_capability: { mount: {}, access_mode: { mode: 'UNKNOWN' } } }),
          code: status.INVALID_ARGUMENT,
          message: /access_mode/,
          after: untouched,
        },
        { name: 'NodeUnstageVolume without volume_id', call: (c, p) => c.NodeUnstageVolume({ staging_target_path: p.staging('x') }), code: status.INVALID_ARGUMENT, after: untouched },
        { name: 'NodeUnstageVolume without staging_target_path', call: (c) => c.NodeUnstageVolume({ volume_id: 'vol-a' }), code: status.INVALID_ARGUMENT, after: untouched },
        {
          name: 'NodeUnstageVolume outside the kubelet roots',
          call: (c, p) => c.NodeUnstageVolume({ volume_id: 'vol-a', staging_target_path: join(p.outside, 'x') }),
          code: status.INVALID_ARGUMENT,
          message: /accepts only paths beneath/,
          after: untouched,
        },
        {
          name: 'NodePublishVolume without volume_id',
          call: (c, p) => c.NodePublishVolume({ staging_target_path: p.staging('x'), target_path: p.target('x'), volume_capability: mount() }),
          code: status.INVALID_ARGUMENT,
          after: untouched,
        },
        {
          name: 'NodePublishVolume without target_path',
          call: (c, p) => c.NodePublishVolume({ volume_id: 'vol-a', staging_target_path: p.staging('vol-a'), volume_capability: mount() }),
          code: status.INVALID_ARGUMENT,
          message: /target_path is required/,
          after: untouched,
        },
        {
          name: 'NodePublishVolume without volume_capability',
          call: (c, p) => c.NodePublishVolume({ volume_id: 'vol-a', staging_target_path: p.staging('vol-a'), target_path: p.target('vol-a') }),
          code: status.INVALID_ARGUMENT,
          after: untouched,
        },
        {
          name: 'NodePublishVolume to a target outside the kubelet roots',
          call: (c, p) => c.NodePublishVolume({ volume_id: 'vol-a', staging_target_path: p.staging('vol-a'), target_path: join(p.outside, 'mnt'), volume_capability: mount() }),
          code: status.INVALID_ARGUMENT,
          message: /target_path .* accepts only paths beneath/,
          after: untouched,
        },
        { name: 'NodeUnpublishVolume without volume_id', call: (c, p) => c.NodeUnpublishVolume({ target_path: p.target('x') }), code: status.INVALID_ARGUMENT, after: untouched },
        { name: 'NodeUnpublishVolume without target_path', call: (c) => c.NodeUnpublishVolume({ volume_id: 'vol-a' }), code: status.INVALID_ARGUMENT, after: untouched },
        {
          name: 'NodeUnpublishVolume outside the kubelet roots',
          call: (c, p) => c.NodeUnpublishVolume({ volume_id: 'vol-a', target_path: join(p.outside, 'mnt') }),
          code: status.INVALID_ARGUMENT,
          after: (b, p) => {
            untouched(b);
            assert.ok(existsSync(p.outside), 'nothing outside the roots was removed');
          },
        },
        { name: 'NodeGetVolumeStats without volume_id', call: (c, p) => c.NodeGetVolumeStats({ volume_path: p.target('x') }), code: status.INVALID_ARGUMENT, after: untouched },
        { name: 'NodeGetVolumeStats without volume_path', call: (c) => c.NodeGetVolumeStats({ volume_id: 'vol-a' }), code: status.INVALID_ARGUMENT, message: /volume_path is required/, after: untouched },
        { name: 'NodeExpandVolume without volume_id', call: (c, p) => c.NodeExpandVolume({ volume_path: p.target('x') }), code: status.INVALID_ARGUMENT, after: untouched },
        { name: 'NodeExpandVolume without volume_path', call: (c) => c.NodeExpandVolume({ volume_id: 'vol-a' }), code: status.INVALID_ARGUMENT, message: /volume_path is required/, after: untouched },
        {
          name: 'NodeExpandVolume with required_bytes above limit_bytes',
          call: (c, p) => c.NodeExpandVolume({ volume_id: 'vol-a', volume_path: p.target('vol-a'), capacity_range: { required_bytes: 2 * GiB, limit_bytes: GiB } }),
          code: status.INVALID_ARGUMENT,
          after: untouched,
        },
      ],
    );
  });

  describe('stage and publish', () => {
    runRows(
      () => h,
      () => p,
      [
        {
          name: 'NodeStageVolume of an unknown volume is NOT_FOUND',
          call: (c, p) => c.NodeStageVolume({ volume_id: 'vol-nope', staging_target_path: p.staging('vol-nope'), volume_capability: mount() }),
          code: status.NOT_FOUND,
          after: (b) => assert.equal(b.staged.size, 0),
        },
        {
          name: 'NodeStageVolume stages the volume at the canonical path',
          call: (c, p) => c.NodeStageVolume({ volume_id: 'vol-a', staging_target_path: `${p.staging('vol-a')}/`, volume_capability: mount() }),
          code: status.OK,
          after: (b, p) => assert.equal(b.staged.get('vol-a')?.stagingPath, p.staging('vol-a')),
        },
        {
          name: 'NodeStageVolume again at the same path is OK and stages once',
          before: (b, p) => void b.staged.set('vol-a', { stagingPath: p.staging('vol-a'), capability: { accessType: 'mount', fsType: '', mountFlags: [], accessMode: 'SINGLE_NODE_WRITER' } }),
          call: (c, p) => c.NodeStageVolume({ volume_id: 'vol-a', staging_target_path: p.staging('vol-a'), volume_capability: mount() }),
          code: status.OK,
          after: (b) => assert.equal(b.staged.size, 1),
        },
        {
          name: 'NodeStageVolume of a mount volume as block is FAILED_PRECONDITION',
          call: (c, p) => c.NodeStageVolume({ volume_id: 'vol-a', staging_target_path: p.staging('vol-a'), volume_capability: block() }),
          code: status.FAILED_PRECONDITION,
          message: /mount volume and cannot be used as block/,
          after: (b) => assert.equal(b.staged.size, 0),
        },
        {
          name: 'NodeStageVolume with another fs type than the volume has is FAILED_PRECONDITION',
          call: (c, p) => c.NodeStageVolume({ volume_id: 'vol-a', staging_target_path: p.staging('vol-a'), volume_capability: mount('SINGLE_NODE_WRITER', 'xfs') }),
          code: status.FAILED_PRECONDITION,
          message: /fs type ext4, not xfs/,
        },
        {
          name: 'NodeStageVolume with an access mode the backend cannot serve is INVALID_ARGUMENT',
          call: (c, p) => c.NodeStageVolume({ volume_id: 'vol-a', staging_target_path: p.staging('vol-a'), volume_capability: mount('MULTI_NODE_MULTI_WRITER') }),
          code: status.INVALID_ARGUMENT,
        },
        {
          name: 'NodeUnstageVolume of a volume never staged is OK',
          call: (c, p) => c.NodeUnstageVolume({ volume_id: 'vol-nope', staging_target_path: p.staging('vol-nope') }),
          code: status.OK,
        },
        {
          name: 'NodePublishVolume without staging_target_path is FAILED_PRECONDITION',
          call: (c, p) => c.NodePublishVolume({ volume_id: 'vol-a', target_path: p.target('vol-a'), volume_capability: mount() }),
          code: status.FAILED_PRECONDITION,
          message: /stage the volume first/,
          after: (b) => assert.equal(b.published.size, 0),
        },
        {
          name: 'NodePublishVolume before NodeStageVolume is FAILED_PRECONDITION',
          call: (c, p) => c.NodePublishVolume({ volume_id: 'vol-a', staging_target_path: p.staging('vol-a'), target_path: p.target('vol-a'), volume_capability: mount() }),
          code: status.FAILED_PRECONDITION,
          message: /not staged/,
          after: (b, p) => {
            assert.equal(b.published.size, 0);
            assert.ok(!existsSync(p.target('vol-a')));
          },
        },
        {
          name: 'NodePublishVolume of an unknown volume is NOT_FOUND',
          call: (c, p) => c.NodePublishVolume({ volume_id: 'vol-nope', staging_target_path: p.staging('vol-nope'), target_path: p.target('vol-nope'), volume_capability: mount() }),
          code: status.NOT_FOUND,
        },
        {
          name: 'NodePublishVolume after stage publishes at the target',
          before: (_b, p) => h.client.node.NodeStageVolume({ volume_id: 'vol-a', staging_target_path: p.staging('vol-a'), volume_capability: mount() }).then(() => undefined),
          call: (c, p) => c.NodePublishVolume({ volume_id: 'vol-a', staging_target_path: p.staging('vol-a'), target_path: p.target('vol-a'), volume_capability: mount() }),
          code: status.OK,
          after: (b, p) => {
            assert.deepEqual(b.published.get(p.target('vol-a')), { volumeId: 'vol-a', stagingPath: p.staging('vol-a'), readonly: false });
            assert.ok(existsSync(p.target('vol-a')));
          },
        },
        {
          name: 'NodePublishVolume again with the same arguments is OK',
          before: (_b, p) => stagedAndPublished(h, p),
          call: (c, p) => c.NodePublishVolume({ volume_id: 'vol-a', staging_target_path: p.staging('vol-a'), target_path: p.target('vol-a'), volume_capability: mount() }),
          code: status.OK,
          after: (b) => assert.equal(b.published.size, 1),
        },
        {
          name: 'NodePublishVolume again read-only where it is published read-write is ALREADY_EXISTS',
          before: (_b, p) => stagedAndPublished(h, p),
          call: (c, p) =>
            c.NodePublishVolume({ volume_id: 'vol-a', staging_target_path: p.staging('vol-a'), target_path: p.target('vol-a'), volume_capability: mount(), readonly: true }),
          code: status.ALREADY_EXISTS,
        },
        {
          name: 'NodeUnpublishVolume of a target never published is OK',
          call: (c, p) => c.NodeUnpublishVolume({ volume_id: 'vol-a', target_path: p.target('vol-a', 'pod-gone') }),
          code: status.OK,
        },
        {
          name: 'NodeUnpublishVolume of an unknown volume is OK',
          call: (c, p) => c.NodeUnpublishVolume({ volume_id: 'vol-nope', target_path: p.target('vol-nope') }),
          code: status.OK,
        },
        {
          name: 'NodeUnpublishVolume removes the publication and the target',
          before: (_b, p) => stagedAndPublished(h, p),
          call: (c, p) => c.NodeUnpublishVolume({ volume_id: 'vol-a', target_path: p.target('vol-a') }),
          code: status.OK,
          after: (b, p) => {
            assert.equal(b.published.size, 0);
            assert.ok(!existsSync(p.target('vol-a')));
            assert.ok(b.staged.has('vol-a'), 'still staged');
          },
        },
      ],
    );
  });

  describe('stats and expansion', () => {
    runRows(
      () => h,
      () => p,
      [
        {
          name: 'NodeGetVolumeStats of an unknown volume is NOT_FOUND',
          call: (c, p) => c.NodeGetVolumeStats({ volume_id: 'vol-nope', volume_path: p.target('vol-nope') }),
          code: status.NOT_FOUND,
          message: /vol-nope does not exist/,
        },
        {
          name: 'NodeGetVolumeStats at a path that does not exist is NOT_FOUND',
          call: (c, p) => c.NodeGetVolumeStats({ volume_id: 'vol-a', volume_path: p.target('vol-a', 'pod-never') }),
          code: status.NOT_FOUND,
          message: /does not exist/,
        },
        {
          name: 'NodeGetVolumeStats with a relative volume_path is NOT_FOUND',
          call: (c) => c.NodeGetVolumeStats({ volume_id: 'vol-a', volume_path: 'pods/x' }),
          code: status.NOT_FOUND,
        },
        {
          name: 'NodeGetVolumeStats of a published filesystem reports bytes and inodes',
          before: (_b, p) => stagedAndPublished(h, p),
          call: (c, p) => c.NodeGetVolumeStats({ volume_id: 'vol-a', volume_path: p.target('vol-a') }),
          code: status.OK,
          after: (_b, _p, r) => {
            const usage = (r as { usage: { unit: string; total: number }[] }).usage;
            assert.deepEqual(
              usage.map((u) => [u.unit, Number(u.total)]),
              [
                ['BYTES', 2 * GiB],
                ['INODES', 1000],
              ],
            );
            assert.equal((r as { volume_condition: { abnormal: boolean } }).volume_condition.abnormal, false);
          },
        },
        {
          name: 'NodeExpandVolume of an unknown volume is NOT_FOUND',
          call: (c, p) => c.NodeExpandVolume({ volume_id: 'vol-nope', volume_path: p.target('vol-nope') }),
          code: status.NOT_FOUND,
        },
        {
          name: 'NodeExpandVolume at a path that does not exist is NOT_FOUND',
          call: (c, p) => c.NodeExpandVolume({ volume_id: 'vol-a', volume_path: p.target('vol-a', 'pod-never') }),
          code: status.NOT_FOUND,
        },
        {
          name: 'NodeExpandVolume with a capability the volume does not have is INVALID_ARGUMENT (exceeds capabilities)',
          before: (_b, p) => stagedAndPublished(h, p),
          call: (c, p) => c.NodeExpandVolume({ volume_id: 'vol-a', volume_path: p.target('vol-a'), volume_capability: { block: {}, access_mode: { mode: 'SINGLE_NODE_WRITER' } } }),
          code: status.INVALID_ARGUMENT,
          message: /is a mount volume, not block/,
          after: (b) => assert.ok(!b.faults.calls.includes('nodeExpand')),
        },
        {
          name: 'NodeExpandVolume with limit_bytes below the volume size is OUT_OF_RANGE (it would shrink)',
          before: (_b, p) => stagedAndPublished(h, p),
          call: (c, p) => c.NodeExpandVolume({ volume_id: 'vol-a', volume_path: p.target('vol-a'), capacity_range: { limit_bytes: GiB } }),
          code: status.OUT_OF_RANGE,
          message: /cannot shrink/,
          after: (b) => assert.ok(!b.faults.calls.includes('nodeExpand')),
        },
        {
          name: 'NodeExpandVolume grows the filesystem to what the controller allocated',
          before: async (b, p) => {
            await stagedAndPublished(h, p);
            b.storage.set('vol-a', 3 * GiB);
          },
          call: (c, p) => c.NodeExpandVolume({ volume_id: 'vol-a', volume_path: p.target('vol-a'), staging_target_path: p.staging('vol-a'), capacity_range: { required_bytes: 3 * GiB } }),
          code: status.OK,
          after: (b, _p, r) => {
            assert.equal(Number((r as { capacity_bytes: number }).capacity_bytes), 3 * GiB);
            assert.equal(b.nodeSize.get('vol-a'), 3 * GiB);
          },
        },
      ],
    );
  });

  it('NodeGetInfo names the node, its topology and its volume limit', async () => {
    h.use(new FakeBackend({ nodeId: 'n-7' }), new NodePaths([p.root], []));
    const info = await h.client.node.NodeGetInfo({});
    assert.equal(info.node_id, 'n-7');
    assert.deepEqual(info.accessible_topology?.segments, { [FAKE_TOPOLOGY_KEY]: 'n-7' });
    assert.equal(Number(info.max_volumes_per_node), 16);
  });

  it('while a volume stages, its publish, unstage and a second stage are ABORTED; another volume stages', async () => {
    const b = new FakeBackend();
    seeded(b);
    b.addVolume({ id: 'vol-c' });
    h.use(b, new NodePaths([p.root], []));
    const n = h.client.node;
    const hold = b.faults.blockNext('stage');
    const first = n.NodeStageVolume({ volume_id: 'vol-a', staging_target_path: p.staging('vol-a'), volume_capability: mount() });
    await hold.reached;
    const calls: Promise<unknown>[] = [
      n.NodeStageVolume({ volume_id: 'vol-a', staging_target_path: p.staging('vol-a'), volume_capability: mount() }),
      n.NodePublishVolume({ volume_id: 'vol-a', staging_target_path: p.staging('vol-a'), target_path: p.target('vol-a'), volume_capability: mount() }),
      n.NodeUnstageVolume({ volume_id: 'vol-a', staging_target_path: p.staging('vol-a') }),
      n.NodeExpandVolume({ volume_id: 'vol-a', volume_path: p.staging('vol-a') }),
    ];
    // Each outcome is attached at once: a refusal arrives before the previous one is awaited.
    for (const got of await Promise.all(calls.map((call) => outcome(call)))) {
      assert.equal(codeName(got.code), 'ABORTED', got.details);
      assert.match(got.details, /volume vol-a/);
    }
    await n.NodeStageVolume({ volume_id: 'vol-c', staging_target_path: p.staging('vol-c'), volume_capability: mount() });
    assert.ok(b.staged.has('vol-c'));
    hold.release();
    await first;
    assert.ok(b.staged.has('vol-a'));
    await n.NodeUnstageVolume({ volume_id: 'vol-a', staging_target_path: p.staging('vol-a') });
    await n.NodeUnstageVolume({ volume_id: 'vol-c', staging_target_path: p.staging('vol-c') });
    assert.equal(b.staged.size, 0, 'the locks were released');
  });

  it('a volume lives through both services: create, stage, publish, grow, stats, and back', async () => {
    const b = new FakeBackend();
    h.use(b, new NodePaths([p.root], []));
    const { controller: c, node: n } = h.client;
    const made = await c.CreateVolume({ name: 'life', volume_capabilities: [mount()], capacity_range: { required_bytes: GiB } });
    const id = made.volume!.volume_id;
    const staging = p.staging(id);
    const target = p.target(id);
    await n.NodeStageVolume({ volume_id: id, staging_target_path: staging, volume_capability: mount() });
    await n.NodePublishVolume({ volume_id: id, staging_target_path: staging, target_path: target, volume_capability: mount() });
    const grown = await c.ControllerExpandVolume({ volume_id: id, capacity_range: { required_bytes: 2 * GiB } });
    assert.equal(grown.node_expansion_required, true);
    const expanded = await n.NodeExpandVolume({ volume_id: id, volume_path: target, staging_target_path: staging });
    assert.equal(Number(expanded.capacity_bytes), 2 * GiB);
    const stats = await n.NodeGetVolumeStats({ volume_id: id, volume_path: target });
    assert.equal(Number(stats.usage[0]?.total), 2 * GiB);
    await n.NodeUnpublishVolume({ volume_id: id, target_path: target });
    await n.NodeUnstageVolume({ volume_id: id, staging_target_path: staging });
    await c.DeleteVolume({ volume_id: id });
    assert.equal(b.volumes.records.size, 0);
    assert.equal(b.storage.size, 0);
    assert.equal(b.staged.size + b.published.size, 0);
    assert.ok(!existsSync(target) && !existsSync(staging));
  });
});
