// The CSI wire layer end to end: a real server on a temp unix socket, called
// through CsiClient, plus checks of csi.proto against the spec's numbering.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Writable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { status } from '@grpc/grpc-js';
import { pino, type Logger } from 'pino';
import protobuf from 'protobufjs';
import { CsiClient } from '../../src/csi/client.js';
import {
  AlreadyExistsError,
  CsiError,
  DeadlineExceededError,
  InternalError,
  UnimplementedError,
} from '../../src/csi/errors.js';
import { csiDescriptorJson } from '../../src/csi/gen/descriptor.js';
import { csiRoot, messageType, type CreateVolumeRequest, type CreateVolumeRequestInput } from '../../src/csi/proto.js';
import { STRIPPED, stripSecrets } from '../../src/csi/sanitize.js';
import { cancelledAtDeadline, startCsiServer, type CallContext, type CallInfo, type CsiServer } from '../../src/csi/server.js';

interface Capture {
  logger: Logger;
  lines: () => Record<string, unknown>[];
}

function captureLogs(): Capture {
  const chunks: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      chunks.push(chunk.toString());
      done();
    },
  });
  return {
    logger: pino({ level: 'debug' }, sink),
    lines: () =>
      chunks
        .join('')
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as Record<string, unknown>),
  };
}

function deferred<T = void>(): { promise: Promise<T>; resolve: (v: T) => void } {
  let resolve!: (v: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

const TiB = 2 ** 40;

const fullRequest: CreateVolumeRequestInput = {
  name: 'pvc-1234',
  capacity_range: { required_bytes: 5 * TiB, limit_bytes: 6 * TiB },
  volume_capabilities: [
    { mount: { fs_type: 'ext4', mount_flags: ['noatime', 'discard'] }, access_mode: { mode: 'SINGLE_NODE_WRITER' } },
    { block: {}, access_mode: { mode: 'SINGLE_NODE_MULTI_WRITER' } },
  ],
  parameters: { pool: 'fast', replicas: '3' },
  secrets: { password: 'hunter2' },
  volume_content_source: { snapshot: { snapshot_id: 'snap-9' } },
  accessibility_requirements: {
    requisite: [{ segments: { zone: 'z1' } }, { segments: { zone: 'z2', rack: 'r7' } }],
    preferred: [{ segments: { zone: 'z2', rack: 'r7' } }],
  },
  mutable_parameters: { iops: '3000' },
};

// What a handler must see for fullRequest: every field present, defaults
// filled in, int64 as numbers, enums as names, oneof names set.
const decodedFullRequest: CreateVolumeRequest = {
  name: 'pvc-1234',
  capacity_range: { required_bytes: 5 * TiB, limit_bytes: 6 * TiB },
  volume_capabilities: [
    {
      mount: { fs_type: 'ext4', mount_flags: ['noatime', 'discard'], volume_mount_group: '' },
      access_mode: { mode: 'SINGLE_NODE_WRITER' },
      access_type: 'mount',
    },
    { block: {}, access_mode: { mode: 'SINGLE_NODE_MULTI_WRITER' }, access_type: 'block' },
  ],
  parameters: { pool: 'fast', replicas: '3' },
  secrets: { password: 'hunter2' },
  volume_content_source: { snapshot: { snapshot_id: 'snap-9' }, type: 'snapshot' },
  accessibility_requirements: {
    requisite: [{ segments: { zone: 'z1' } }, { segments: { zone: 'z2', rack: 'r7' } }],
    preferred: [{ segments: { zone: 'z2', rack: 'r7' } }],
  },
  mutable_parameters: { iops: '3000' },
};

describe('CSI server and client over a unix socket', () => {
  let dir: string;
  let server: CsiServer;
  let client: CsiClient;
  let logs: Capture;
  const calls: CallInfo[] = [];
  let received: CreateVolumeRequest | undefined;
  let seenSignal: AbortSignal | undefined;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'csi-wire-'));
    logs = captureLogs();
    server = await startCsiServer({
      endpoint: `unix://${join(dir, 'csi.sock')}`,
      logger: logs.logger,
      onCall: (info) => calls.push(info),
      identity: {
        async GetPluginInfo() {
          return { name: 'test.stowage.dev', vendor_version: '1.2.3' };
        },
      },
      controller: {
        async CreateVolume(req) {
          received = req;
          if (req.name === 'taken') throw new AlreadyExistsError('volume "taken" exists with another size');
          if (req.name === 'boom') throw new Error('disk on fire');
          return {
            volume: {
              volume_id: 'vol-1',
              capacity_bytes: req.capacity_range?.required_bytes ?? 0,
              volume_context: { fs: 'ext4' },
              content_source: req.volume_content_source,
              accessible_topology: req.accessibility_requirements?.preferred ?? [],
            },
          };
        },
        async ControllerExpandVolume(_req, ctx: CallContext) {
          seenSignal = ctx.signal;
          await new Promise((resolve) => ctx.signal.addEventListener('abort', resolve, { once: true }));
          return { capacity_bytes: 1 };
        },
      },
    });
    client = CsiClient.connect(server.address, { timeoutMs: 5_000 });
    await client.waitForReady(5_000);
  });

  after(async () => {
    client.close();
    await server.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('round-trips a CreateVolumeRequest with every kind of field', async () => {
    const res = await client.controller.CreateVolume(fullRequest);
    assert.deepEqual(received, decodedFullRequest);
    assert.deepEqual(res.volume, {
      volume_id: 'vol-1',
      capacity_bytes: 5 * TiB,
      volume_context: { fs: 'ext4' },
      content_source: { snapshot: { snapshot_id: 'snap-9' }, type: 'snapshot' },
      accessible_topology: [{ segments: { zone: 'z2', rack: 'r7' } }],
    });
  });

  it('answers UNIMPLEMENTED for a missing handler and a missing service', async () => {
    await assert.rejects(client.controller.DeleteVolume({ volume_id: 'v' }), (err: unknown) => {
      assert.ok(err instanceof UnimplementedError);
      assert.equal(err.code, status.UNIMPLEMENTED);
      return true;
    });
    await assert.rejects(client.node.NodeGetInfo({}), UnimplementedError);
    await assert.rejects(client.identity.Probe({}), UnimplementedError);
  });

  it('delivers a thrown AlreadyExistsError as AlreadyExistsError with its message', async () => {
    await assert.rejects(client.controller.CreateVolume({ name: 'taken' }), (err: unknown) => {
      assert.ok(err instanceof AlreadyExistsError);
      assert.ok(err instanceof CsiError);
      assert.equal(err.code, status.ALREADY_EXISTS);
      assert.equal(err.message, 'volume "taken" exists with another size');
      return true;
    });
  });

  it('turns an unexpected error into INTERNAL with its message', async () => {
    await assert.rejects(client.controller.CreateVolume({ name: 'boom' }), (err: unknown) => {
      assert.ok(err instanceof InternalError);
      assert.equal(err.message, 'disk on fire');
      return true;
    });
  });

  it('aborts ctx.signal when the deadline passes and the client gets DEADLINE_EXCEEDED', async () => {
    await assert.rejects(
      client.controller.ControllerExpandVolume({ volume_id: 'v' }, { timeoutMs: 150 }),
      DeadlineExceededError,
    );
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.ok(seenSignal?.aborted);
    assert.ok(seenSignal.reason instanceof DeadlineExceededError);
  });

  it('cancels a call through an AbortSignal', async () => {
    const abort = new AbortController();
    const call = client.controller.ControllerExpandVolume({ volume_id: 'v' }, { signal: abort.signal });
    setTimeout(() => abort.abort(), 50);
    await assert.rejects(call, (err: unknown) => err instanceof CsiError && err.code === status.CANCELLED);
  });

  it('reports every finished call to onCall with method and code', async () => {
    await new Promise((resolve) => setTimeout(resolve, 100));
    const seen = calls.map((c) => `${c.method} ${status[c.code]}`);
    for (const expected of [
      '/csi.v1.Controller/CreateVolume OK',
      '/csi.v1.Controller/CreateVolume ALREADY_EXISTS',
      '/csi.v1.Controller/CreateVolume INTERNAL',
      '/csi.v1.Controller/DeleteVolume UNIMPLEMENTED',
      '/csi.v1.Node/NodeGetInfo UNIMPLEMENTED',
      '/csi.v1.Controller/ControllerExpandVolume DEADLINE_EXCEEDED',
      '/csi.v1.Controller/ControllerExpandVolume CANCELLED',
    ]) {
      assert.ok(seen.includes(expected), `missing ${expected} in ${seen.join(', ')}`);
    }
    assert.ok(calls.every((c) => c.seconds >= 0 && c.seconds < 10));
  });

  it('logs each call with reqId, method and stripped secrets, and errors by code name', () => {
    const lines = logs.lines();
    assert.ok(!JSON.stringify(lines).includes('hunter2'), 'a secret reached the log');
    const call = lines.find((l) => l.msg === 'GRPC call' && l.method === '/csi.v1.Controller/CreateVolume');
    assert.ok(call);
    assert.equal(typeof call.reqId, 'string');
    const request = call.request as Record<string, unknown>;
    assert.equal(request.secrets, STRIPPED);
    assert.deepEqual(request.parameters, { pool: 'fast', replicas: '3' });
    const response = lines.find((l) => l.msg === 'GRPC response' && l.reqId === call.reqId);
    assert.ok(response, 'no response line with the same reqId');
    const error = lines.find((l) => l.msg === 'GRPC error' && l.code === 'ALREADY_EXISTS');
    assert.ok(error);
    assert.equal(error.err, 'volume "taken" exists with another size');
  });
});

describe('CSI server lifecycle', () => {
  let dir: string;
  const quiet = pino({ level: 'silent' });

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'csi-life-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('replaces a stale socket file left by a dead process', async () => {
    const socketPath = join(dir, 'stale.sock');
    // A process that dies without cleaning up leaves its socket file behind.
    spawnSync(process.execPath, [
      '-e',
      `require('net').createServer().listen(${JSON.stringify(socketPath)}, () => process.kill(process.pid, 'SIGKILL'))`,
    ]);
    assert.ok((await stat(socketPath)).isSocket());

    const server = await startCsiServer({
      endpoint: socketPath,
      logger: quiet,
      identity: { GetPluginInfo: async () => ({ name: 'stale.test' }) },
    });
    const client = new CsiClient(`unix:${socketPath}`);
    try {
      assert.equal((await client.identity.GetPluginInfo({})).name, 'stale.test');
      assert.equal((await stat(socketPath)).mode & 0o777, 0o660);
    } finally {
      client.close();
      await server.stop();
    }
  });

  it('refuses to replace something that is not a socket', async () => {
    const path = join(dir, 'not-a-socket');
    await writeFile(path, 'precious');
    await assert.rejects(startCsiServer({ endpoint: path, logger: quiet, identity: {} }), /not a socket/);
    assert.equal(await readFile(path, 'utf8'), 'precious');
  });

  it('stop() waits for an in-flight call, then removes the socket', async () => {
    const socketPath = join(dir, 'stop.sock');
    const entered = deferred();
    const release = deferred();
    const server = await startCsiServer({
      endpoint: socketPath,
      logger: quiet,
      identity: {
        async GetPluginInfo() {
          entered.resolve();
          await release.promise;
          return { name: 'slow.test' };
        },
      },
    });
    const client = CsiClient.connect(socketPath);
    try {
      const call = client.identity.GetPluginInfo({});
      await entered.promise;
      let stopped = false;
      const stopping = server.stop().then(() => (stopped = true));
      await new Promise((resolve) => setTimeout(resolve, 100));
      assert.equal(stopped, false, 'stop() returned while a call was in flight');
      release.resolve();
      assert.equal((await call).name, 'slow.test');
      await stopping;
      await assert.rejects(stat(socketPath), { code: 'ENOENT' });
    } finally {
      client.close();
    }
  });

  it('stop() cancels calls that outlive the grace period', async () => {
    const socketPath = join(dir, 'grace.sock');
    let signal: AbortSignal | undefined;
    const server = await startCsiServer({
      endpoint: socketPath,
      logger: quiet,
      shutdownGraceMs: 100,
      identity: {
        async GetPluginInfo(_req, ctx) {
          signal = ctx.signal;
          return new Promise(() => {});
        },
      },
    });
    const client = CsiClient.connect(socketPath);
    try {
      const call = client.identity.GetPluginInfo({});
      call.catch(() => {});
      await new Promise((resolve) => setTimeout(resolve, 50));
      await server.stop();
      await assert.rejects(call, CsiError);
      await assert.rejects(stat(socketPath), { code: 'ENOENT' });
      await new Promise((resolve) => setTimeout(resolve, 20));
      assert.ok(signal?.aborted);
    } finally {
      client.close();
    }
  });
});

describe('stripSecrets', () => {
  it('strips CreateVolumeRequest.secrets and keeps parameters, without touching the input', () => {
    const before = structuredClone(fullRequest);
    const out = stripSecrets('CreateVolumeRequest', fullRequest);
    assert.equal(out.secrets, STRIPPED);
    assert.deepEqual(out.parameters, { pool: 'fast', replicas: '3' });
    assert.deepEqual(out.mutable_parameters, { iops: '3000' });
    assert.deepEqual(out.volume_capabilities, fullRequest.volume_capabilities);
    assert.deepEqual(fullRequest, before);
    assert.notEqual(out.volume_capabilities, fullRequest.volume_capabilities, 'not a deep copy');
  });

  it('strips NodeStageVolumeRequest.secrets given a reflection type', () => {
    const req = { volume_id: 'v', secrets: { key: 'k' }, volume_context: { a: 'b' }, publish_context: { c: 'd' } };
    const out = stripSecrets(messageType('csi.v1.NodeStageVolumeRequest'), req);
    assert.deepEqual(out, { volume_id: 'v', secrets: STRIPPED, volume_context: { a: 'b' }, publish_context: { c: 'd' } });
    assert.deepEqual(req.secrets, { key: 'k' });
  });

  it('finds secrets inside nested, repeated and map-valued messages', () => {
    const inner = new protobuf.Type('Inner')
      .add(new protobuf.Field('token', 1, 'string', undefined, undefined, { '(csi_secret)': true }))
      .add(new protobuf.Field('note', 2, 'string'));
    const outer = new protobuf.Type('Outer')
      .add(new protobuf.Field('one', 1, 'Inner'))
      .add(new protobuf.Field('many', 2, 'Inner', 'repeated'))
      .add(new protobuf.MapField('byName', 3, 'string', 'Inner'));
    const root = new protobuf.Root().add(inner).add(outer);
    root.resolveAll();
    const secret = { token: 't', note: 'n' };
    const out = stripSecrets(root.lookupType('Outer'), { one: secret, many: [secret, secret], byName: { a: secret } });
    const clean = { token: STRIPPED, note: 'n' };
    assert.deepEqual(out, { one: clean, many: [clean, clean], byName: { a: clean } });
    assert.equal(secret.token, 't');
  });
});

describe('csi.proto matches the CSI v1.12 spec', () => {
  it('is what gen/descriptor.ts holds (else run npm run gen:csi)', () => {
    interface DescriptorJson {
      nested: { google: { nested: { protobuf: { nested: Record<string, protobuf.AnyNestedObject> } } } };
    }
    const require = createRequire(import.meta.url);
    const descriptor = require('protobufjs/google/protobuf/descriptor.json') as DescriptorJson;
    protobuf.common('descriptor', descriptor.nested.google.nested.protobuf.nested);
    const root = new protobuf.Root();
    // From dist/test/unit back to the source tree: the .proto is the source of truth.
    root.loadSync(fileURLToPath(new URL('../../../src/csi/csi.proto', import.meta.url)), { keepCase: true });
    // Through JSON, as the generator writes it: toJSON() objects have protobufjs prototypes.
    assert.deepEqual(JSON.parse(JSON.stringify(root.toJSON())), JSON.parse(csiDescriptorJson));
  });

  const ids = (name: string): Record<string, number> =>
    Object.fromEntries(Object.entries(messageType(name).fields).map(([n, f]) => [n, f.id]));
  // Spread: protobufjs enum values objects inherit from their reverse (id -> name) map.
  const values = (name: string): Record<string, number> => ({ ...csiRoot.lookupEnum(name).values });

  it('numbers CreateVolumeRequest fields 1..8', () => {
    assert.deepEqual(ids('CreateVolumeRequest'), {
      name: 1,
      capacity_range: 2,
      volume_capabilities: 3,
      parameters: 4,
      secrets: 5,
      volume_content_source: 6,
      accessibility_requirements: 7,
      mutable_parameters: 8,
    });
  });

  it('numbers NodeStageVolumeRequest and NodePublishVolumeRequest fields', () => {
    assert.deepEqual(ids('NodeStageVolumeRequest'), {
      volume_id: 1,
      publish_context: 2,
      staging_target_path: 3,
      volume_capability: 4,
      secrets: 5,
      volume_context: 6,
    });
    assert.deepEqual(ids('NodePublishVolumeRequest'), {
      volume_id: 1,
      publish_context: 2,
      staging_target_path: 3,
      target_path: 4,
      volume_capability: 5,
      readonly: 6,
      secrets: 7,
      volume_context: 8,
    });
  });

  it('numbers Volume, Snapshot and VolumeCapability fields', () => {
    assert.deepEqual(ids('Volume'), { capacity_bytes: 1, volume_id: 2, volume_context: 3, content_source: 4, accessible_topology: 5 });
    assert.deepEqual(ids('Snapshot'), {
      size_bytes: 1,
      snapshot_id: 2,
      source_volume_id: 3,
      creation_time: 4,
      ready_to_use: 5,
      group_snapshot_id: 6,
    });
    assert.deepEqual(ids('VolumeCapability'), { block: 1, mount: 2, access_mode: 3 });
    assert.deepEqual(ids('VolumeCapability.MountVolume'), { fs_type: 1, mount_flags: 2, volume_mount_group: 3 });
  });

  it('numbers the AccessMode and capability enums', () => {
    assert.deepEqual(values('csi.v1.VolumeCapability.AccessMode.Mode'), {
      UNKNOWN: 0,
      SINGLE_NODE_WRITER: 1,
      SINGLE_NODE_READER_ONLY: 2,
      MULTI_NODE_READER_ONLY: 3,
      MULTI_NODE_SINGLE_WRITER: 4,
      MULTI_NODE_MULTI_WRITER: 5,
      SINGLE_NODE_SINGLE_WRITER: 6,
      SINGLE_NODE_MULTI_WRITER: 7,
    });
    const rpc = values('csi.v1.ControllerServiceCapability.RPC.Type');
    assert.equal(rpc.MODIFY_VOLUME, 14);
    assert.equal(rpc.GET_SNAPSHOT, 15);
    assert.deepEqual(values('csi.v1.NodeServiceCapability.RPC.Type'), {
      UNKNOWN: 0,
      STAGE_UNSTAGE_VOLUME: 1,
      GET_VOLUME_STATS: 2,
      EXPAND_VOLUME: 3,
      VOLUME_CONDITION: 4,
      SINGLE_NODE_MULTI_WRITER: 5,
      VOLUME_MOUNT_GROUP: 6,
    });
  });

  it('declares the custom options with the spec numbers', () => {
    const ext = (name: string): [string | undefined, number] => {
      const field = csiRoot.lookup(`csi.v1.${name}`);
      assert.ok(field instanceof protobuf.Field, name);
      return [field.extend, field.id];
    };
    assert.deepEqual(ext('csi_secret'), ['google.protobuf.FieldOptions', 1059]);
    assert.deepEqual(ext('alpha_field'), ['google.protobuf.FieldOptions', 1060]);
    assert.deepEqual(ext('alpha_enum'), ['google.protobuf.EnumOptions', 1060]);
    assert.deepEqual(ext('alpha_enum_value'), ['google.protobuf.EnumValueOptions', 1060]);
    assert.deepEqual(ext('alpha_message'), ['google.protobuf.MessageOptions', 1060]);
    assert.deepEqual(ext('alpha_method'), ['google.protobuf.MethodOptions', 1060]);
    assert.deepEqual(ext('alpha_service'), ['google.protobuf.ServiceOptions', 1060]);
  });

  it('marks every secrets field csi_secret and nothing else', () => {
    const secretFields: string[] = [];
    const walk = (ns: protobuf.NamespaceBase): void => {
      for (const nested of ns.nestedArray) {
        if (nested instanceof protobuf.Type) {
          for (const f of nested.fieldsArray) if (f.options?.['(csi_secret)'] === true) secretFields.push(`${nested.name}.${f.name}`);
        }
        if (nested instanceof protobuf.Namespace) walk(nested);
      }
    };
    walk(csiRoot.lookup('csi.v1') as protobuf.Namespace);
    assert.equal(secretFields.length, 19);
    assert.ok(secretFields.every((f) => f.endsWith('.secrets')));
  });

  it('has the v1.12 services, methods and alpha markers', () => {
    const methods = (s: string): string[] => Object.keys(csiRoot.lookupService(`csi.v1.${s}`).methods);
    assert.deepEqual(methods('Identity'), ['GetPluginInfo', 'GetPluginCapabilities', 'Probe']);
    assert.equal(methods('Controller').length, 15);
    assert.deepEqual(methods('GroupController'), [
      'GroupControllerGetCapabilities',
      'CreateVolumeGroupSnapshot',
      'DeleteVolumeGroupSnapshot',
      'GetVolumeGroupSnapshot',
    ]);
    assert.deepEqual(methods('Node'), [
      'NodeStageVolume',
      'NodeUnstageVolume',
      'NodePublishVolume',
      'NodeUnpublishVolume',
      'NodeGetVolumeStats',
      'NodeExpandVolume',
      'NodeGetCapabilities',
      'NodeGetInfo',
    ]);
    const controller = csiRoot.lookupService('csi.v1.Controller').methods;
    assert.equal(controller.GetSnapshot?.options?.['(alpha_method)'], true);
    assert.equal(controller.ControllerModifyVolume?.options?.['(alpha_method)'], undefined, 'GA since v1.12');
    const metadata = csiRoot.lookupService('csi.v1.SnapshotMetadata');
    assert.equal(metadata.options?.['(alpha_service)'], true);
    assert.equal(metadata.methods.GetMetadataDelta?.responseStream, true);
  });
});

describe('a cancellation at the deadline', () => {
  // The client's deadline runs from its send, the server's from its receipt: the client's cancel
  // comes a little early, and is still its deadline passing.
  const cases: [string, number, number, number, boolean][] = [
    ['no deadline', Number.POSITIVE_INFINITY, 0, 10, false],
    ['150 ms call, cancelled 50 ms before the server’s deadline', 1150, 1000, 1100, true],
    ['150 ms call, cancelled half-way', 1150, 1000, 1075, false],
    ['10 s call, cancelled 1 s before', 11_000, 1000, 10_000, true],
    ['10 s call, cancelled 2 s before (on purpose)', 11_000, 1000, 9_000, false],
    ['after the deadline', 1150, 1000, 1200, true],
  ];
  for (const [name, deadline, receivedAt, now, want] of cases) it(name, () => assert.equal(cancelledAtDeadline(deadline, receivedAt, now), want));
});
