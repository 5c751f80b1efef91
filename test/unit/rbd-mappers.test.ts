// The rbd node's kernel mappers (krbd, rbd-nbd) and ceph-csi's mounter / mapOptions parameters,
// against a recording command runner and a fake /sys: the exact commands and their order for map
// and unmap, the keyfile (0600, there only while `rbd map` runs), a timeout → DEADLINE_EXCEEDED
// naming the image and the time (and the map undone), a missing module → FAILED_PRECONDITION
// saying how to load it, and malformed options → INVALID_ARGUMENT. This machine has neither
// module, so nothing here maps for real; rbd-fuse stays what the integration tests stage with.
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { status } from '@grpc/grpc-js';
import pino from 'pino';
import { CsiError } from '../../src/csi/errors.js';
import { CommandFailedError, CommandTimeoutError } from '../../src/driver/mount/exec.js';
import { defaultMapper, KernelMapper } from '../../src/driver/backends/rbd/kernel-mapper.js';
import { mapperOfParameter, optionsFor, parseMapOptions } from '../../src/driver/backends/rbd/map-options.js';
import type { MapTarget } from '../../src/driver/backends/rbd/mapper.js';
import { fakeHost, RecordingRunner, type Script } from '../support/recording-runner.js';

const log = pino({ level: 'silent' });
const KEY = 'AQBzc3RvcmFnZXRlc3RrZXkAAAAAAAAAAAAAAAAAAA==';
const MONS = '[v1:10.0.0.1:6789],[v1:10.0.0.2:6789]';

function target(over: Partial<MapTarget> = {}): MapTarget {
  return {
    volumeId: '0001-0002-c1-0000000000000003-uuid',
    fuse: { clusterID: 'c1', monitors: ['10.0.0.1:6789', '10.0.0.2:6789'], pool: 'rbd', image: 'csi-vol-1', user: 'csi' },
    fuseKey: 'k1',
    mapOptions: [],
    unmapOptions: [],
    ...over,
  };
}

const LOADED = fakeHost(['/sys/module/rbd', '/sys/module/nbd'], { '/sys/block/rbd0/ro': '0\n', '/sys/block/nbd0/ro': '1\n' });
const NO_MODULES = fakeHost([], { '/proc/sys/kernel/osrelease': '6.18.44-test\n' });

const krbdListed = JSON.stringify([
  { id: '0', pool: 'rbd', namespace: '', name: 'csi-vol-1', snap: '-', device: '/dev/rbd0' },
  { id: '1', pool: 'rbd', namespace: '', name: 'csi-vol-2', snap: '-', device: '/dev/rbd1' },
]);
const nbdListed = JSON.stringify([{ id: 7, pool: 'rbd', namespace: '', image: 'csi-vol-1', snap: '-', device: '/dev/nbd0' }]);

/** rbd answers: the device list (per device type), and what map/unmap do. */
function rbdScript(o: { listed?: Record<string, string>; map?: Script; unmap?: Script; modprobe?: Script }): Script {
  return (cmd, args) => {
    if (cmd === 'modprobe') return o.modprobe?.(cmd, args) ?? new CommandFailedError('modprobe', args, 1, `modprobe: FATAL: Module ${args[0]} not found in directory /lib/modules/6.18.44-test`);
    if (args[0] === 'device' && args[1] === 'list') return { stdout: o.listed?.[args[args.length - 1]!] ?? '[]' };
    if (args.includes('map')) return o.map?.(cmd, args) ?? { stdout: args.includes('nbd') ? '/dev/nbd0\n' : '/dev/rbd0\n' };
    if (args[0] === 'unmap') return o.unmap?.(cmd, args);
    return undefined;
  };
}

async function expectStatus(p: Promise<unknown>, code: status): Promise<CsiError> {
  const e = await p.then(
    () => assert.fail('expected an error'),
    (x: unknown) => x,
  );
  assert.ok(e instanceof CsiError, `a CsiError, not ${String(e)}`);
  assert.equal(e.code, code, e.message);
  return e;
}

describe('rbd kernel mappers', () => {
  let dir: string;
  let keyDir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'stowage-mappers-'));
    keyDir = join(dir, 'keys');
  });
  after(() => rm(dir, { recursive: true, force: true }));

  const mapCases: { name: string; kind: 'krbd' | 'nbd'; t: MapTarget; readonly: boolean; commands: string[]; device: string }[] = [
    {
      name: 'krbd: list, then map with noudev',
      kind: 'krbd',
      t: target(),
      readonly: false,
      device: '/dev/rbd0',
      commands: [
        'rbd device list --format json --device-type krbd',
        `rbd --id csi -m ${MONS} --keyfile=<KEYFILE> map rbd/csi-vol-1 --device-type krbd --options noudev`,
      ],
    },
    {
      name: 'krbd: the class\'s mapOptions after the defaults, read-only last',
      kind: 'krbd',
      t: target({ mapOptions: ['lock_on_read', 'queue_depth=1024'] }),
      readonly: true,
      device: '/dev/rbd0',
      commands: [
        'rbd device list --format json --device-type krbd',
        `rbd --id csi -m ${MONS} --keyfile=<KEYFILE> map rbd/csi-vol-1 --device-type krbd --options noudev --options lock_on_read,queue_depth=1024 --read-only`,
      ],
    },
    {
      name: 'rbd-nbd: ceph-csi\'s netlink, reattach and io timeouts',
      kind: 'nbd',
      t: target(),
      readonly: false,
      device: '/dev/nbd0',
      commands: [
        'rbd device list --format json --device-type nbd',
        `rbd --id csi -m ${MONS} --keyfile=<KEYFILE> map rbd/csi-vol-1 --device-type nbd --options try-netlink --options reattach-timeout=300 --options io-timeout=0`,
      ],
    },
    {
      name: 'rbd-nbd: a class option replaces the default of the same name',
      kind: 'nbd',
      t: target({ mapOptions: ['io-timeout=30'] }),
      readonly: false,
      device: '/dev/nbd0',
      commands: [
        'rbd device list --format json --device-type nbd',
        `rbd --id csi -m ${MONS} --keyfile=<KEYFILE> map rbd/csi-vol-1 --device-type nbd --options try-netlink --options reattach-timeout=300 --options io-timeout=30`,
      ],
    },
  ];

  for (const c of mapCases) {
    it(`map, ${c.name}; the key only in a 0600 keyfile while rbd runs`, async () => {
      const runner = new RecordingRunner(rbdScript({}));
      const m = new KernelMapper(c.kind, { runner, keyDir, host: LOADED });
      assert.equal(await m.map(c.t, KEY, c.readonly, log), c.device);
      assert.deepEqual(runner.lines(), c.commands);
      const map = runner.calls[1]!;
      assert.equal(map.files.length, 1, 'one keyfile named');
      assert.deepEqual({ mode: map.files[0]!.mode, content: map.files[0]!.content }, { mode: 0o600, content: KEY });
      assert.ok(map.files[0]!.path.startsWith(`${keyDir}/`), 'in the state directory');
      assert.equal((await stat(keyDir)).mode & 0o777, 0o700);
      assert.ok(!map.args.some((a) => a.includes(KEY)), 'the key is never an argument');
      assert.deepEqual(map.opts?.secrets, [KEY]);
      assert.ok((map.opts?.timeoutMs ?? 0) > 0, 'map has a timeout');
      assert.deepEqual(await readdir(keyDir), [], 'keyfile removed after the map');
    });
  }

  it('map of an image already mapped returns its device and maps nothing', async () => {
    for (const [kind, device] of [['krbd', '/dev/rbd0'], ['nbd', '/dev/nbd0']] as const) {
      const runner = new RecordingRunner(rbdScript({ listed: { krbd: krbdListed, nbd: nbdListed } }));
      const m = new KernelMapper(kind, { runner, keyDir, host: LOADED });
      assert.equal(await m.map(target(), KEY, false, log), device, kind);
      assert.deepEqual(runner.lines(), [`rbd device list --format json --device-type ${kind}`], kind);
      assert.deepEqual(await m.devices(target()), [{ device, readonly: kind === 'nbd' }], `${kind}: read-only from /sys/block`);
    }
  });

  const timeouts: { name: string; map: Script; words: RegExp }[] = [
    { name: 'the runner\'s timeout', map: (cmd, args) => new CommandTimeoutError(cmd, args, 75_000), words: /after 75 s/ },
    {
      name: 'rbd\'s own (seed 000: rbd: map failed ... timed out)',
      map: (cmd, args) => new CommandFailedError(cmd, args, 110, 'rbd: sysfs write failed\nrbd: map failed: (110) Connection timed out'),
      words: /\(110\) Connection timed out/,
    },
  ];
  for (const c of timeouts) {
    it(`a map that times out (${c.name}) → DEADLINE_EXCEEDED naming image and time, the map undone, no keyfile left`, async () => {
      const runner = new RecordingRunner(rbdScript({ map: c.map, unmap: (cmd, args) => new CommandFailedError(cmd, args, 22, `rbd: rbd/csi-vol-1: not a mapped image or snapshot`) }));
      const m = new KernelMapper('krbd', { runner, keyDir, host: LOADED });
      const e = await expectStatus(m.map(target(), KEY, false, log), status.DEADLINE_EXCEEDED);
      assert.match(e.message, /rbd map of image rbd\/csi-vol-1 \(krbd\) timed out/);
      assert.match(e.message, c.words);
      assert.match(e.message, /retry/);
      assert.deepEqual(runner.lines().slice(2), ['rbd unmap rbd/csi-vol-1 --device-type krbd --options noudev'], 'the image spec unmapped after the timeout');
      assert.deepEqual(await readdir(keyDir), []);
    });
  }

  const moduleCases: { kind: 'krbd' | 'nbd'; module: string; mounter: string; modprobe?: Script; why: RegExp }[] = [
    { kind: 'krbd', module: 'rbd', mounter: 'rbd', why: /modprobe rbd` failed: modprobe: FATAL: Module rbd not found/ },
    { kind: 'nbd', module: 'nbd', mounter: 'rbd-nbd', why: /modprobe nbd` failed/ },
    { kind: 'krbd', module: 'rbd', mounter: 'rbd', modprobe: (cmd, args) => new CommandFailedError(cmd, args, null, 'spawn modprobe ENOENT'), why: /no modprobe in the plugin/ },
  ];
  for (const c of moduleCases) {
    it(`${c.kind} without the ${c.module} module → FAILED_PRECONDITION naming it and how to load it; nothing mapped (${c.why.source.slice(0, 20)})`, async () => {
      const runner = new RecordingRunner(rbdScript({ ...(c.modprobe ? { modprobe: c.modprobe } : {}) }));
      const m = new KernelMapper(c.kind, { runner, keyDir, host: NO_MODULES });
      const e = await expectStatus(m.map(target(), KEY, false, log), status.FAILED_PRECONDITION);
      assert.match(e.message, new RegExp(`mounter "${c.mounter}" \\(${c.kind}\\) needs the ${c.module} kernel module`));
      assert.match(e.message, /kernel 6\.18\.44-test/);
      assert.match(e.message, c.why);
      assert.match(e.message, new RegExp(`load it on the host with \`modprobe ${c.module}\``));
      assert.match(e.message, /mounter "fuse"/);
      assert.deepEqual(runner.lines(), [`modprobe ${c.module}`], 'only the modprobe attempt');
      assert.deepEqual(await readdir(keyDir).catch(() => []), [], 'no keyfile written');
      // And nothing is mapped without the module: no rbd command at all.
      assert.deepEqual(await m.devices(target()), []);
      assert.equal(runner.calls.length, 1);
    });
  }

  it('a module that loads with modprobe is used', async () => {
    let loaded = false;
    const host = { exists: async (p: string) => p === '/sys/module/rbd' && loaded, readText: async () => undefined };
    const runner = new RecordingRunner(rbdScript({
        modprobe: () => {
          loaded = true;
          return {};
        },
      }));
    const m = new KernelMapper('krbd', { runner, keyDir, host });
    assert.equal(await m.map(target(), KEY, false, log), '/dev/rbd0');
    assert.deepEqual(runner.lines().slice(0, 2), ['modprobe rbd', 'rbd device list --format json --device-type krbd']);
  });

  const mapFailures: { name: string; stderr: string; code: status; words: RegExp }[] = [
    { name: 'a refused user', stderr: 'rbd: sysfs write failed\nrbd: map failed: (1) Operation not permitted', code: status.PERMISSION_DENIED, words: /refused client\.csi mapping rbd\/csi-vol-1/ },
    {
      name: 'features the kernel lacks',
      stderr: 'rbd: sysfs write failed\nRBD image feature set mismatch. You can disable features unsupported by the kernel with "rbd feature disable".\nrbd: map failed: (6) No such device or address',
      code: status.FAILED_PRECONDITION,
      words: /cannot map rbd\/csi-vol-1.*imageFeatures/s,
    },
    { name: 'a missing image', stderr: "rbd: error opening image csi-vol-1: (2) No such file or directory", code: status.NOT_FOUND, words: /image rbd\/csi-vol-1 does not exist/ },
  ];
  for (const c of mapFailures) {
    it(`map failure: ${c.name} → ${status[c.code]}`, async () => {
      const runner = new RecordingRunner(rbdScript({ map: (cmd, args) => new CommandFailedError(cmd, args, 1, c.stderr) }));
      const m = new KernelMapper('krbd', { runner, keyDir, host: LOADED });
      const e = await expectStatus(m.map(target(), KEY, false, log), c.code);
      assert.match(e.message, c.words);
      assert.equal(runner.calls.length, 2, 'no unmap after a refusal');
      assert.deepEqual(await readdir(keyDir), []);
    });
  }

  const releaseCases: { name: string; kind: 'krbd' | 'nbd'; t: MapTarget; others: MapTarget[]; commands: string[] }[] = [
    {
      name: 'krbd, last staging: unmap the device with noudev and the class\'s unmapOptions',
      kind: 'krbd',
      t: target({ unmapOptions: ['force'] }),
      others: [target({ volumeId: 'other', fuse: { ...target().fuse, image: 'csi-vol-2' } })],
      commands: ['rbd device list --format json --device-type krbd', 'rbd unmap /dev/rbd0 --device-type krbd --options noudev --options force'],
    },
    {
      name: 'rbd-nbd, last staging',
      kind: 'nbd',
      t: target(),
      others: [],
      commands: ['rbd device list --format json --device-type nbd', 'rbd unmap /dev/nbd0 --device-type nbd'],
    },
    { name: 'another staging of the volume left: nothing', kind: 'krbd', t: target(), others: [target()], commands: [] },
  ];
  for (const c of releaseCases) {
    it(`release, ${c.name}`, async () => {
      const runner = new RecordingRunner(rbdScript({ listed: { krbd: krbdListed, nbd: nbdListed } }));
      const m = new KernelMapper(c.kind, { runner, keyDir, host: LOADED });
      await m.release(c.t, c.others, log);
      assert.deepEqual(runner.lines(), c.commands);
      for (const call of runner.calls) assert.ok((call.opts?.timeoutMs ?? 0) > 0, 'every rbd call has a timeout');
    });
  }

  it('release of a device noted at map time but no longer listed (its rbd-nbd died): unmapped best effort', async () => {
    const runner = new RecordingRunner(rbdScript({ unmap: (cmd, args) => new CommandFailedError(cmd, args, 22, 'rbd-nbd: /dev/nbd3 is not mapped') }));
    const m = new KernelMapper('nbd', { runner, keyDir, host: LOADED });
    await m.release(target({ device: '/dev/nbd3' }), [], log);
    assert.deepEqual(runner.lines(), ['rbd device list --format json --device-type nbd', 'rbd unmap /dev/nbd3 --device-type nbd']);
  });

  const unmapFailures: { name: string; unmap: Script; code?: status }[] = [
    { name: 'already unmapped is success', unmap: (cmd, args) => new CommandFailedError(cmd, args, 22, 'rbd: /dev/rbd0: not a mapped image or snapshot') },
    { name: 'busy → FAILED_PRECONDITION', unmap: (cmd, args) => new CommandFailedError(cmd, args, 16, 'rbd: sysfs write failed\nrbd: unmap failed: (16) Device or resource busy'), code: status.FAILED_PRECONDITION },
    { name: 'timeout → DEADLINE_EXCEEDED', unmap: (cmd, args) => new CommandTimeoutError(cmd, args, 75_000), code: status.DEADLINE_EXCEEDED },
  ];
  for (const c of unmapFailures) {
    it(`unmap: ${c.name}`, async () => {
      const runner = new RecordingRunner(rbdScript({ listed: { krbd: krbdListed }, unmap: c.unmap }));
      const m = new KernelMapper('krbd', { runner, keyDir, host: LOADED });
      if (c.code === undefined) await m.release(target(), [], log);
      else {
        const e = await expectStatus(m.release(target(), [], log), c.code);
        assert.match(e.message, /rbd\/csi-vol-1|\/dev\/rbd0/);
      }
    });
  }

  it('at start, keyfiles a killed driver left mid-map are removed (its own kind only)', async () => {
    const left = join(dir, 'left');
    await mkdir(left, { recursive: true });
    for (const n of ['krbd-1.key', 'nbd-2.key', 'notes.txt']) await writeFile(join(left, n), 'x');
    await new KernelMapper('krbd', { runner: new RecordingRunner(), keyDir: left, host: LOADED }).sweepKeyfiles();
    assert.deepEqual((await readdir(left)).sort(), ['nbd-2.key', 'notes.txt']);
  });

  it('health: a mapped image is fine, an unmapped one names itself', async () => {
    const runner = new RecordingRunner(rbdScript({ listed: { krbd: krbdListed } }));
    const m = new KernelMapper('krbd', { runner, keyDir, host: LOADED });
    assert.equal(await m.problem(target()), undefined);
    assert.match((await m.problem(target({ fuse: { ...target().fuse, image: 'csi-vol-9' } }))) ?? '', /csi-vol-9 is not mapped \(krbd\)/);
    await expectStatus(m.readOnlyDevice(target()), status.FAILED_PRECONDITION);
  });
});

describe('rbd mounter and map options (ceph-csi\'s StorageClass parameters)', () => {
  const mounters: [string | undefined, string | undefined][] = [
    ['rbd', 'krbd'],
    ['rbd-nbd', 'nbd'],
    ['fuse', 'fuse'],
    [undefined, undefined],
  ];
  for (const [param, kind] of mounters) {
    it(`mounter ${param ?? '(absent)'} → ${kind ?? 'decided on the node'}`, () => assert.equal(mapperOfParameter(param), kind));
  }
  it('an unknown mounter → INVALID_ARGUMENT naming the values', () => {
    assert.throws(() => mapperOfParameter('krbd2'), (e: CsiError) => e.code === status.INVALID_ARGUMENT && /"krbd2" is not one of rbd, rbd-nbd, fuse/.test(e.message));
  });

  it('absent mounter: krbd where /sys/bus/rbd exists, rbd-fuse elsewhere', async () => {
    assert.equal(await defaultMapper(fakeHost(['/sys/bus/rbd'])), 'krbd');
    assert.equal(await defaultMapper(fakeHost([])), 'fuse');
  });

  const good: [string, { krbd: string[]; nbd: string[] }][] = [
    ['lock_on_read,queue_depth=1024', { krbd: ['lock_on_read', 'queue_depth=1024'], nbd: [] }],
    ['krbd:lock_on_read;nbd:try-netlink,io-timeout=30', { krbd: ['lock_on_read'], nbd: ['try-netlink', 'io-timeout=30'] }],
    ['krbd:read_from_replica=localize,crush_location=zone:zone1', { krbd: ['read_from_replica=localize', 'crush_location=zone:zone1'], nbd: [] }],
    ['KRBD: alloc_size=65536 ;', { krbd: ['alloc_size=65536'], nbd: [] }],
    [';nbd:io-timeout=30;', { krbd: [], nbd: ['io-timeout=30'] }],
  ];
  for (const [text, want] of good) {
    it(`mapOptions "${text}" parses`, () => assert.deepEqual(parseMapOptions(text, 'mapOptions'), want));
  }
  it('absent options are none; fuse takes none', () => {
    assert.deepEqual(parseMapOptions(undefined, 'unmapOptions'), { krbd: [], nbd: [] });
    assert.deepEqual(optionsFor('fuse', { krbd: ['a'], nbd: ['b'] }), []);
    assert.deepEqual(optionsFor('nbd', { krbd: ['a'], nbd: ['b'] }), ['b']);
  });

  const bad: [string, RegExp][] = [
    ['', /unmapOptions is empty/],
    ['  ', /unmapOptions is empty/],
    ['crush_location=zone:zone1', /unknown mounter type "crush_location=zone"/],
    ['rbd:force', /unknown mounter type "rbd"/],
    ['krbd:force,,lock_on_read', /empty option/],
    ['krbd:', /empty option/],
    ['nbd:io timeout=3', /malformed option "io timeout=3"/],
    ['krbd:queue_depth=', /malformed option "queue_depth="/],
    ['krbd:=1', /malformed option "=1"/],
  ];
  for (const [text, re] of bad) {
    it(`unmapOptions "${text}" → INVALID_ARGUMENT`, () => {
      assert.throws(() => parseMapOptions(text, 'unmapOptions'), (e: CsiError) => e.code === status.INVALID_ARGUMENT && re.test(e.message) && /unmapOptions/.test(e.message));
    });
  }
});
