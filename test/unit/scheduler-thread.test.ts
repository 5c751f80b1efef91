// The scheduler on a thread of its own (scheduler/thread.ts): the copy of the store it reads
// (MirrorStore), its writes sent to the store's thread and answered later (ThreadStore), and the
// thread itself against a real store: pods placed, idle() true only once the bindings are stored,
// Events and log lines arriving through the control plane's recorder and logger, a thread that
// dies started again, and stop(). The scheduler's behaviour on the thread is tested by running the
// scheduler suites both ways (control-controllers-scheduler, scheduler-preemption,
// scheduler-affinity-e2e).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Worker } from 'node:worker_threads';
import { pino } from 'pino';
import type { Node, Pod } from '../../src/control/api/types/core.js';
import type { KubeObject, WatchEvent } from '../../src/control/api/types/meta.js';
import { EventBroadcaster } from '../../src/control/controllers/events.js';
import { ApiError } from '../../src/control/store/errors.js';
import { open } from '../../src/control/store/store.js';
import { type FromWorker, type RowMessage, SchedulerThread } from '../../src/control/scheduler/thread.js';
import { MirrorStore, ThreadStore } from '../../src/control/scheduler/thread-worker.js';
import { pod, settle, waitFor } from './control-controllers-helpers.js';

const text = (o: KubeObject): string => JSON.stringify(o);
const nodeObj = (name: string, rv: number, labels: Record<string, string> = {}): Node => ({ apiVersion: 'v1', kind: 'Node', metadata: { name, resourceVersion: String(rv), labels } });
const podObj = (ns: string, name: string, rv: number, nodeName?: string): Pod => ({
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: { namespace: ns, name, resourceVersion: String(rv), uid: `uid-${name}` },
  spec: { containers: [{ name: 'c', image: 'x' }], ...(nodeName === undefined ? {} : { nodeName }) },
});

describe('MirrorStore: the copy the scheduler thread reads', () => {
  const cases: { name: string; rows: RowMessage[]; expect: { resource: string; keys: string[] }[] }[] = [
    { name: 'an added object is listed and found', rows: [[11, 'nodes', 'ADDED', text(nodeObj('n2', 11))]], expect: [{ resource: 'nodes', keys: ['n1', 'n2'] }] },
    {
      name: 'a modified object replaces its copy',
      rows: [[11, 'nodes', 'MODIFIED', text(nodeObj('n1', 11, { disk: 'ssd' }))]],
      expect: [{ resource: 'nodes', keys: ['n1'] }],
    },
    { name: 'a deleted object goes', rows: [[11, 'pods', 'DELETED', text(podObj('ns', 'p1', 11))]], expect: [{ resource: 'pods', keys: [] }] },
    { name: 'a resource not copied is passed over', rows: [[11, 'secrets', 'ADDED', text({ apiVersion: 'v1', kind: 'Secret', metadata: { namespace: 'ns', name: 's' } })]], expect: [{ resource: 'nodes', keys: ['n1'] }] },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const m = new MirrorStore(
        [
          ['nodes', [text(nodeObj('n1', 5))]],
          ['pods', [text(podObj('ns', 'p1', 6))]],
        ],
        10,
      );
      const seen: WatchEvent[] = [];
      m.watch('nodes', {}, (ev) => seen.push(ev));
      m.watch('pods', {}, (ev) => seen.push(ev));
      m.apply(c.rows);
      for (const e of c.expect) {
        const listed = m.list(e.resource);
        assert.deepEqual(listed.items.map((o) => (o.metadata.namespace ? `${o.metadata.namespace}/${o.metadata.name}` : o.metadata.name)).sort(), e.keys);
        assert.equal(listed.resourceVersion, '11');
      }
      const copied = c.rows.filter(([, r]) => r === 'nodes' || r === 'pods');
      assert.deepEqual(
        seen.map((ev) => [ev.type, ev.object.metadata.name]),
        copied.map(([, , type, t]) => [type, (JSON.parse(t) as KubeObject).metadata.name]),
      );
    });
  }

  it('finds objects by namespace and name, and refuses a resource it does not copy, saying which', () => {
    const m = new MirrorStore([['nodes', [text(nodeObj('n1', 5))]], ['pods', [text(podObj('ns', 'p1', 6))]]], 10);
    assert.equal(m.get('nodes', undefined, 'n1')?.metadata.name, 'n1');
    assert.equal(m.get('pods', 'ns', 'p1')?.metadata.uid, 'uid-p1');
    assert.equal(m.get('pods', 'other', 'p1'), undefined);
    assert.throws(() => m.list('secrets'), /secrets are not copied to the scheduler's thread/);
  });
});

describe("ThreadStore: the scheduler thread's writes", () => {
  const setup = () => {
    const mirror = new MirrorStore([['pods', [text(podObj('ns', 'p1', 6))]], ['persistentvolumeclaims', []]], 10);
    const posted: FromWorker[] = [];
    const failures: [string, string][] = [];
    let current: string | undefined = 'ns/p1';
    const store = new ThreadStore(
      mirror,
      (m) => posted.push(m),
      () => current,
      (key, err) => failures.push([key, err.reason]),
    );
    const ids = () => posted.flatMap((m) => (m.t === 'write' ? [m.id] : []));
    return { store, posted, failures, ids, setCurrent: (k: string | undefined) => (current = k) };
  };

  it('sends each write at once, and runs afterWrites once all of the attempt’s writes succeeded', () => {
    const { store, posted, ids } = setup();
    store.update({ apiVersion: 'v1', kind: 'PersistentVolumeClaim', metadata: { namespace: 'ns', name: 'c1' }, spec: {} });
    store.bindPod('ns', 'p1', 'n1', { uid: 'uid-p1' });
    assert.deepEqual(
      posted.map((m) => (m.t === 'write' ? m.op : m.t)),
      ['update', 'bindPod'],
    );
    let ran = 0;
    store.afterWrites(() => ran++);
    const [a, b] = ids();
    store.answered(a as number, undefined);
    assert.equal(ran, 0, 'one write still unanswered');
    store.answered(b as number, undefined);
    assert.equal(ran, 1);
    assert.equal(store.whenWritten('ns/p1', () => undefined), false, 'nothing pending any more');
  });

  it('reports the first failure of an attempt with its pod and reason, and then never runs afterWrites', () => {
    const { store, failures, ids } = setup();
    store.bindPod('ns', 'p1', 'n1', { uid: 'uid-p1' });
    store.update({ apiVersion: 'v1', kind: 'PersistentVolumeClaim', metadata: { namespace: 'ns', name: 'c1' }, spec: {} });
    let ran = 0;
    store.afterWrites(() => ran++);
    let answeredAll = 0;
    assert.equal(
      store.whenWritten('ns/p1', () => answeredAll++),
      true,
    );
    const [a, b] = ids();
    store.answered(a as number, { code: 409, reason: 'Conflict', message: 'pod p1 is already assigned to node "n2"' });
    store.answered(b as number, { code: 409, reason: 'Conflict', message: 'the object has been modified' });
    assert.deepEqual(failures, [['ns/p1', 'Conflict']]);
    assert.equal(ran, 0);
    assert.equal(answeredAll, 1, 'whenWritten runs once every write is answered, failed or not');
  });

  it('runs afterWrites at once when the attempt made no write, and answers reads from the copy', () => {
    const { store, setCurrent } = setup();
    let ran = 0;
    store.afterWrites(() => ran++);
    assert.equal(ran, 1);
    setCurrent(undefined);
    assert.equal(store.get('pods', 'ns', 'p1')?.metadata.uid, 'uid-p1');
    // The object as sent is the result of an update (the store's copy comes with the change).
    const sent = { apiVersion: 'v1', kind: 'PersistentVolumeClaim', metadata: { namespace: 'ns', name: 'c1' }, spec: {} };
    assert.equal(store.update(sent), sent);
  });

  it('turns an answer back into an ApiError with its code', () => {
    let got: ApiError | undefined;
    const s = new ThreadStore(
      new MirrorStore([['pods', []]], 1),
      () => undefined,
      () => 'ns/x',
      (_k, err) => (got = err),
    );
    s.delete('pods', 'ns', 'x', { preconditions: { uid: 'u' } });
    s.answered(1, { code: 404, reason: 'NotFound', message: 'pods "x" not found' });
    assert.ok(got instanceof ApiError);
    assert.equal(got.code, 404);
    assert.equal(got.message, 'pods "x" not found');
  });
});

describe('SchedulerThread against a store', () => {
  const start = (before: (store: ReturnType<typeof open>) => void = () => undefined) => {
    const store = open(':memory:');
    const lines: Record<string, unknown>[] = [];
    const logger = pino({ level: 'debug' }, { write: (l: string) => lines.push(JSON.parse(l) as Record<string, unknown>) });
    const events = new EventBroadcaster({ store, logger: pino({ level: 'silent' }), maxDelayMs: 0 });
    for (const n of ['n1', 'n2']) store.create({ apiVersion: 'v1', kind: 'Node', metadata: { name: n, labels: { 'kubernetes.io/hostname': n } } });
    before(store);
    const t = new SchedulerThread({ store, events, logger, resyncMs: 0, backoff: { maxDelayMs: 200 }, csiTimeoutMs: undefined });
    const stop = async () => {
      await t.stop();
      events.close();
      store.close();
    };
    return { store, t, lines, stop };
  };
  const nodeOf = (store: ReturnType<typeof open>, name: string) => (store.get('pods', 'default', name) as Pod | undefined)?.spec.nodeName;

  it('places pods, records their Scheduled events here, and is idle only once the bindings are stored', async () => {
    const { store, t, lines, stop } = start();
    try {
      t.start();
      for (const name of ['a', 'b', 'c']) store.create(pod(name, []));
      assert.equal(t.idle(), false, 'the pods are not on the thread yet');
      await settle(() => t.idle());
      assert.deepEqual(
        ['a', 'b', 'c'].map((n) => nodeOf(store, n)),
        ['n1', 'n2', 'n1'],
      );
      await waitFor(() => store.list('events', { fieldSelector: 'reason=Scheduled' }).items.length === 3, 'three Scheduled events');
      const ev = store.list('events', { fieldSelector: 'involvedObject.name=b' }).items[0];
      assert.equal(ev?.message, 'Successfully assigned default/b to n2');
      assert.equal(ev?.source?.component, 'default-scheduler');
      // The thread's log lines come through this logger, marked as the scheduler thread's.
      assert.ok(lines.some((l) => l['msg'] === 'scheduled' && l['thread'] === 'scheduler' && l['pod'] === 'default/b'));
    } finally {
      await stop();
    }
  });

  it('places the pods already in the store, and is not idle before it has', async () => {
    const { store, t, stop } = start((s) => {
      for (const name of ['x', 'y']) s.create(pod(name, []));
    });
    try {
      t.start();
      assert.equal(t.idle(), false, 'the thread has not built its scheduler yet');
      await settle(() => t.idle());
      assert.deepEqual(
        ['x', 'y'].map((n) => nodeOf(store, n)),
        ['n1', 'n2'],
      );
    } finally {
      await stop();
    }
  });

  it('holds pods back until start()', async () => {
    const { store, t, stop } = start();
    try {
      store.create(pod('early', []));
      await new Promise((r) => setTimeout(r, 200));
      assert.equal(nodeOf(store, 'early'), undefined);
      t.start();
      await waitFor(() => nodeOf(store, 'early'), 'early placed after start');
    } finally {
      await stop();
    }
  });

  it('starts a thread that died again, from a fresh copy, and says so', async () => {
    const { store, t, lines, stop } = start();
    try {
      t.start();
      store.create(pod('before', []));
      await waitFor(() => nodeOf(store, 'before'), 'placed before the crash');
      const worker = (t as unknown as { worker: Worker }).worker;
      await worker.terminate();
      // Changes made while no thread runs are in the next thread's copy.
      store.create(pod('during', []));
      await waitFor(() => nodeOf(store, 'during'), 'placed by the new thread', 15_000);
      assert.ok(lines.some((l) => l['msg'] === 'the scheduler thread exited; starting it again' && l['level'] === 50));
      await settle(() => t.idle());
    } finally {
      await stop();
    }
  });

  it('stop() ends the thread; later writes to the store are not sent anywhere', async () => {
    const { store, t, stop } = start();
    t.start();
    const worker = (t as unknown as { worker: Worker }).worker;
    const exited = new Promise<number>((r) => worker.once('exit', r));
    await t.stop();
    await exited;
    store.create(pod('after', []));
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(nodeOf(store, 'after'), undefined);
    await stop();
  });
});
