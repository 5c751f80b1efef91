/**
 * Property-based fuzzing of the Node service through the real driver socket (issue 11): fast-check
 * generates hostile NodeStage / NodePublish / NodeUnpublish / NodeUnstage / NodeGetVolumeStats /
 * NodeExpandVolume requests — paths with "..", ".", symlinks planted beneath the kubelet dir (to
 * the outside, the pool, its journals, /dev/null, /proc/self), NUL, very long paths and names,
 * unicode, /dev and other system paths, relative paths; real, random and malformed volume IDs;
 * valid, odd and missing capabilities — and checks after every call that the driver answered
 * with a status it may give (never INTERNAL, UNKNOWN or a dead socket), and at the end that
 * nothing was created or mounted outside the kubelet dir: a sentinel tree outside it, the pool's
 * layout and journals, a list of system paths and the mount table are as they were.
 *
 * Fixed seed and a bounded budget (at most 1000 runs or 45 s of calls; about 5 s here), so a
 * failure reproduces: fast-check prints the seed and the counterexample (not shrunk: every call
 * changes the driver's state, so a shorter sequence would not mean the same).
 */
import assert from 'node:assert/strict';
import { existsSync, lstatSync, mkdirSync, readdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import fc from 'fast-check';
import type { VolumeCapabilityInput } from '../../src/csi/types.js';
import { blockCap, MiB, mountCap, status, uniqueName } from '../support/csi-helpers.js';
import { checkedCall } from '../support/csi-fuzz.js';
import { assertNoLeftovers, needsRoot, startTestDriver, type TestDriver } from '../support/driver-harness.js';
import { hostMounts, isUnder, loopsUnder } from '../support/host-state.js';

// FUZZ_SEED / FUZZ_RUNS (what `npm run fuzz` sets) explore further; the suite runs the fixed
// seed with a budget bounded in time as well, a long run only in runs.
const SEED = Number(process.env['FUZZ_SEED'] ?? 0x5a17);
const MAX_RUNS = Number(process.env['FUZZ_RUNS'] ?? 1000);
const TIME_LIMIT_MS = process.env['FUZZ_RUNS'] === undefined ? 45_000 : undefined;

/** What a Node RPC may answer to a malformed or hostile request; anything else is a bug. */
const ALLOWED = new Set([
  status.OK,
  status.INVALID_ARGUMENT,
  status.NOT_FOUND,
  status.FAILED_PRECONDITION,
  status.ALREADY_EXISTS,
  status.OUT_OF_RANGE,
  status.RESOURCE_EXHAUSTED,
]);

/** System paths a request may name; none may appear, change or get a mount. */
const SYSTEM_PATHS = ['/proc/self', '/usr/local', '/var/lib', '/sys/kernel', '/boot/x', '/dev/null', '/dev/zero', '/dev/shm/fuzz', '/etc/fuzz', '/root/fuzz', '/tmp/fuzz-x'];

/** Names of everything under dir (recursively, without following symlinks), for before/after comparisons. */
function tree(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string, prefix: string) => {
    for (const name of readdirSync(d).sort()) {
      const st = lstatSync(join(d, name));
      out.push(`${prefix}${name}${st.isDirectory() ? '/' : st.isSymbolicLink() ? '@' : ''}`);
      if (st.isDirectory()) walk(join(d, name), `${prefix}${name}/`);
    }
  };
  if (existsSync(dir)) walk(dir, '');
  return out;
}

describe('fuzz: hostile Node requests through the driver socket [local]', { skip: needsRoot }, () => {
  let drv: TestDriver;
  let outside: string;
  let mountId = '';
  let blockId = '';
  let stagedAt = '';

  before(async () => {
    drv = await startTestDriver({ prefix: 'stowage-fuzz-' });
    outside = await mkdtemp(join(tmpdir(), 'stowage-fuzz-outside-'));
    mkdirSync(join(outside, 'x', 'globalmount'), { recursive: true });
    writeFileSync(join(outside, 'precious'), 'not the driver’s');
    // Symlinks a pod or a careless admin could leave beneath the kubelet dir.
    const links: Record<string, string> = {
      'lnk-out': outside,
      'lnk-meta': join(drv.localDir, 'meta'),
      'lnk-pool': join(drv.localDir, 'pool'),
      'lnk-local': drv.localDir,
      'lnk-devnull': '/dev/null',
      'lnk-proc': '/proc/self',
      'lnk-etc': '/etc',
      'lnk-in': join(drv.dir, 'staging'),
      'lnk-dangling': join(outside, 'nowhere'),
    };
    mkdirSync(join(drv.dir, 'staging'), { recursive: true });
    for (const [name, to] of Object.entries(links)) symlinkSync(to, join(drv.dir, name));
    const ctl = drv.client.controller;
    mountId = (await ctl.CreateVolume({ name: uniqueName('fz'), volume_capabilities: [mountCap()], capacity_range: { required_bytes: 16 * MiB } })).volume!.volume_id;
    blockId = (await ctl.CreateVolume({ name: uniqueName('fzb'), volume_capabilities: [blockCap()], capacity_range: { required_bytes: 16 * MiB } })).volume!.volume_id;
    stagedAt = drv.stagingDir('staged');
    await drv.client.node.NodeStageVolume({ volume_id: mountId, staging_target_path: stagedAt, volume_capability: mountCap() });
  });

  after(async () => {
    await drv?.cleanup();
    if (outside) await rm(outside, { recursive: true, force: true });
  });

  it(`no crash, no INTERNAL/UNKNOWN, nothing created or mounted outside the kubelet dir (seed ${SEED})`, async (t) => {
    const sentinel = () => ({
      outside: tree(outside),
      meta: tree(join(drv.localDir, 'meta')),
      pool: readdirSync(join(drv.localDir, 'pool')).sort(),
      system: SYSTEM_PATHS.map((p) => `${p}:${existsSync(p)}`),
    });
    /**
     * Mounts outside the kubelet dir that are ours — from our pool or volume loop devices (a block
     * publication shows the device's name as its root) — or on the system paths or the outside tree.
     * Other tests run on the same kernel: their mounts are none of these.
     */
    const strayMounts = () => {
      const loops = loopsUnder(drv.dir).map((l) => l.device);
      const devices = new Set(loops);
      const deviceRoots = new Set(loops.map((d) => `/${basename(d)}`));
      return hostMounts()
        .filter((m) => !isUnder(m.mountPoint, drv.dir))
        .filter((m) => SYSTEM_PATHS.includes(m.mountPoint) || isUnder(m.mountPoint, outside) || devices.has(m.source) || deviceRoots.has(m.root))
        .map((m) => `${m.mountPoint} (${m.source} ${m.root})`)
        .sort();
    };
    const sentinelBefore = sentinel();
    const strayBefore = strayMounts();

    const root = drv.dir;
    const segment = fc.oneof(
      { weight: 6, arbitrary: fc.constantFrom('staging', 'target', 'staged', 'globalmount', 'mount', 'x', 'pods', 'plugins', 'kubernetes.io~csi') },
      { weight: 5, arbitrary: fc.constantFrom('lnk-out', 'lnk-meta', 'lnk-pool', 'lnk-local', 'lnk-devnull', 'lnk-proc', 'lnk-etc', 'lnk-in', 'lnk-dangling') },
      { weight: 3, arbitrary: fc.constantFrom('..', '.', '', 'local', 'pool', 'meta', 'volumes', 'csi.sock', '...', '.hidden') },
      { weight: 2, arbitrary: fc.constantFrom('\0', 'a\0b', 'é', '日本語', '💥', ' ', '\n', '\\', '%2e%2e', 'a'.repeat(256), 'b'.repeat(255)) },
      { weight: 2, arbitrary: fc.string({ unit: 'binary', maxLength: 12 }) },
    );
    const underRoot = fc.array(segment, { minLength: 1, maxLength: 6 }).map((parts) => `${root}/${parts.join('/')}`);
    const path = fc.oneof(
      { weight: 8, arbitrary: underRoot },
      { weight: 2, arbitrary: fc.constantFrom(...SYSTEM_PATHS, '/', '/dev', '/proc', '/sys', '/boot', '/etc/passwd', outside, join(outside, 'x', 'globalmount'), join(outside, 'precious')) },
      { weight: 1, arbitrary: fc.constantFrom('', '.', 'relative/x', 'staging', './x', '//', `${root}//staging///x`, `${root}/`, root) },
      { weight: 1, arbitrary: fc.integer({ min: 1000, max: 2200 }).map((n) => `${root}/${'a/'.repeat(n)}`) },
      { weight: 1, arbitrary: fc.tuple(fc.integer({ min: 100, max: 260 }), fc.constantFrom('a', 'lnk-in', 'lnk-out', '..')).map(([n, s]) => `${root}/${`${s}/`.repeat(n)}x`) },
      { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 40 }).map((s) => `/${s}`) },
      { weight: 1, arbitrary: fc.constant(stagedAt) },
    );
    const volumeId = fc.oneof(
      { weight: 4, arbitrary: fc.constantFrom(mountId, blockId) },
      { weight: 2, arbitrary: fc.string({ unit: 'binary', maxLength: 40 }) },
      { weight: 1, arbitrary: fc.constantFrom('', '..', '../../etc', 'a/b', '\0', 'x'.repeat(200), 'fake-vol') },
    );
    const capability: fc.Arbitrary<VolumeCapabilityInput | undefined> = fc.oneof(
      { weight: 6, arbitrary: fc.constantFrom<VolumeCapabilityInput>(mountCap(), mountCap('ext4'), blockCap(), mountCap('', 'SINGLE_NODE_READER_ONLY'), mountCap('', 'SINGLE_NODE_WRITER', ['ro', 'noatime'])) },
      { weight: 1, arbitrary: fc.constantFrom<VolumeCapabilityInput | undefined>(undefined, { mount: { fs_type: '../x' }, access_mode: { mode: 'SINGLE_NODE_WRITER' } }, { access_mode: { mode: 'SINGLE_NODE_WRITER' } }) },
      { weight: 1, arbitrary: fc.string({ maxLength: 10 }).map((flag) => mountCap('', 'SINGLE_NODE_WRITER', [flag])) },
    );
    type Call = { rpc: string; req: Record<string, unknown> };
    const call: fc.Arbitrary<Call> = fc.oneof(
      fc.record({ volume_id: volumeId, staging_target_path: path, volume_capability: capability }).map((req) => ({ rpc: 'NodeStageVolume', req })),
      fc
        .record({ volume_id: volumeId, staging_target_path: fc.oneof(path, fc.constant(stagedAt)), target_path: path, volume_capability: capability, readonly: fc.boolean() })
        .map((req) => ({ rpc: 'NodePublishVolume', req })),
      fc.record({ volume_id: volumeId, target_path: path }).map((req) => ({ rpc: 'NodeUnpublishVolume', req })),
      fc.record({ volume_id: volumeId, staging_target_path: path }).map((req) => ({ rpc: 'NodeUnstageVolume', req })),
      fc.record({ volume_id: volumeId, volume_path: path, staging_target_path: fc.option(path, { nil: undefined }) }).map((req) => ({ rpc: 'NodeGetVolumeStats', req })),
      fc
        .record({ volume_id: volumeId, volume_path: path, staging_target_path: fc.option(path, { nil: undefined }), capacity_range: fc.option(fc.record({ required_bytes: fc.integer({ min: 0, max: 64 * MiB }) }), { nil: undefined }) })
        .map((req) => ({ rpc: 'NodeExpandVolume', req })),
    );

    const node = drv.rawClient.node as unknown as Record<string, (req: unknown, o?: unknown) => Promise<unknown>>;
    const seen = new Map<string, number>();
    await fc.assert(
      fc.asyncProperty(call, ({ rpc, req }) => checkedCall(node[rpc]!, rpc, req, ALLOWED, seen, () => drv.pid)),
      { seed: SEED, numRuns: MAX_RUNS, ...(TIME_LIMIT_MS === undefined ? {} : { interruptAfterTimeLimit: TIME_LIMIT_MS }), markInterruptAsFailure: false, endOnFailure: true },
    );

    // Still serving, and nothing of ours anywhere but beneath the kubelet dir.
    assert.equal((await drv.client.identity.Probe({})).ready?.value, true);
    assert.deepEqual(sentinel(), sentinelBefore, 'nothing created or removed outside the kubelet dir, in the pool or its journals');
    assert.deepEqual(strayMounts(), strayBefore, 'nothing mounted outside the kubelet dir');
    const total = [...seen.values()].reduce((a, b) => a + b, 0);
    t.diagnostic(`answers: ${[...seen].sort().map(([k, n]) => `${k}×${n}`).join(', ')}`);
    assert.ok(total >= 50, `only ${total} requests were sent`);
    // Some requests must have gone deep enough to succeed, or the generator only tests validation.
    assert.ok([...seen.keys()].some((k) => k.endsWith(' OK')), `no request succeeded: ${JSON.stringify([...seen])}`);
  });

  it('leaves no mount or loop device behind', async () => {
    await drv.cleanup();
    assertNoLeftovers(drv.dir);
  });
});
