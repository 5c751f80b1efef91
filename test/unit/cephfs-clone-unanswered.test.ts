// Fault injection for CephFS clones: a mgr that answers `fs subvolume snapshot clone` too late
// (as Pacific's does while its cloner threads are busy) and carries it out anyway. Whatever the
// order, a CO's retry finds that one clone (or starts it once, EEXIST being "started"), and a
// DeleteVolume is held until the late command is answered, so no clone is made after it.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { status } from '@grpc/grpc-js';
import { pino } from 'pino';
import { awaitAnswer, UnansweredMgrCommand, type MgrPatience } from '../../src/driver/backends/ceph/mgr-wait.js';
import { CephError, type CommandResult } from '../../src/driver/backends/ceph/rados.js';
import { cephfsError } from '../../src/driver/backends/cephfs/cephfs-backend.js';
import { cloneAndWait, stopClone, type CloneSource } from '../../src/driver/backends/cephfs/clone-flow.js';
import { Subvolumes, type MgrClient } from '../../src/driver/backends/cephfs/subvolumes.js';
import { UnansweredCommands } from '../../src/driver/backends/cephfs/unanswered.js';

const MiB = 1024 * 1024;
const log = pino({ level: 'silent' });
const where = { clusterID: 'c1', monitors: ['10.0.0.1:6789'], user: 'admin' };
const ENOENT = 2;
const EEXIST = 17;

interface FakeSubvolume {
  state: 'pending' | 'in-progress' | 'complete' | 'canceled';
  quota: number;
  snaps: Set<string>;
  /** Status asks left before a running clone moves on a state. */
  asksLeft: number;
}

/**
 * The volumes module, as far as clones go: subvolumes by group/name, clones that move from pending
 * to in-progress to complete as their status is asked, and commands that the test can make the
 * mgr carry out late (each after its own delay, the caller waiting only as its patience says).
 */
class FakeMgr implements MgrClient {
  readonly subvolumes = new Map<string, FakeSubvolume>();
  /** Clone commands carried out, and what each answered. */
  readonly clones: string[] = [];
  private readonly delays = new Map<string, number[]>();

  constructor() {
    this.subvolumes.set('csi/src', { state: 'complete', quota: 8 * MiB, snaps: new Set(['snap']), asksLeft: 0 });
  }

  /** The next command with this prefix is carried out by the mgr only after ms. */
  delayNext(prefix: string, ms: number): void {
    const list = this.delays.get(prefix) ?? [];
    list.push(ms);
    this.delays.set(prefix, list);
  }

  clonesMade(): string[] {
    return [...this.subvolumes.keys()].filter((k) => k !== 'csi/src');
  }

  async mgrCommand(cmd: Record<string, unknown>, patience: MgrPatience = {}): Promise<CommandResult> {
    const prefix = String(cmd['prefix']);
    const op = `mgr command "${prefix}"`;
    const delay = this.delays.get(prefix)?.shift() ?? 0;
    const native = (async () => {
      if (delay > 0) await sleep(delay);
      return { out: this.exec(prefix, op, cmd), status: '' };
    })();
    native.catch(() => undefined);
    try {
      return await awaitAnswer(native, op, { waitMs: patience.waitMs ?? 10_000, signal: patience.signal });
    } catch (e) {
      if (e instanceof UnansweredMgrCommand) patience.onUnanswered?.(e.answer, op);
      throw e;
    }
  }

  private exec(prefix: string, op: string, cmd: Record<string, unknown>): string {
    const key = `${String(cmd['group_name'] ?? 'csi')}/${String(cmd['sub_name'] ?? cmd['clone_name'])}`;
    const sub = this.subvolumes.get(key);
    switch (prefix) {
      case 'fs subvolume snapshot clone': {
        const target = `${String(cmd['target_group_name'])}/${String(cmd['target_sub_name'])}`;
        if (!sub?.snaps.has(String(cmd['snap_name']))) {
          this.clones.push('ENOENT');
          throw new CephError(op, ENOENT, 'snapshot does not exist');
        }
        if (this.subvolumes.has(target)) {
          this.clones.push('EEXIST');
          throw new CephError(op, EEXIST, `subvolume '${target}' exists`);
        }
        this.clones.push('started');
        this.subvolumes.set(target, { state: 'pending', quota: sub.quota, snaps: new Set(), asksLeft: 2 });
        return '';
      }
      case 'fs clone status': {
        if (!sub) throw new CephError(op, ENOENT, 'does not exist');
        if ((sub.state === 'pending' || sub.state === 'in-progress') && --sub.asksLeft <= 0) {
          sub.state = sub.state === 'pending' ? 'in-progress' : 'complete';
          sub.asksLeft = 2;
        }
        return JSON.stringify({ status: { state: sub.state } });
      }
      case 'fs clone cancel':
        if (sub && (sub.state === 'pending' || sub.state === 'in-progress')) sub.state = 'canceled';
        return '';
      case 'fs subvolume info':
        if (!sub) throw new CephError(op, ENOENT, 'does not exist');
        return JSON.stringify({ bytes_quota: sub.quota, bytes_used: 0, path: `/volumes/${key}/u`, state: sub.state });
      case 'fs subvolume resize':
        if (sub) sub.quota = Number(cmd['new_size']);
        return '';
      case 'fs subvolume rm':
        this.subvolumes.delete(key);
        return '';
      case 'fs subvolume snapshot create':
        sub?.snaps.add(String(cmd['snap_name']));
        return '';
      case 'fs subvolume snapshot rm':
        sub?.snaps.delete(String(cmd['snap_name']));
        return '';
      default:
        throw new Error(`the fake mgr does not serve ${prefix}`);
    }
  }
}

const VOLUME = '0001-0002-c1-0000000000000001-aaaaaaaa-0000-0000-0000-000000000001';
const CLONE = 'csi-vol-aaaaaaaa-0000-0000-0000-000000000001';
const SRC: CloneSource = { subvolume: 'src', group: 'csi', snap: 'snap', temporary: false };

/** One CreateVolume's clone, as cephfs-backend.ts runs it: first the earlier calls' unanswered commands, then the clone. */
async function createVolume(mgr: FakeMgr, tracker: UnansweredCommands, patience: MgrPatience): Promise<void> {
  if ((await tracker.settle(VOLUME, { signal: patience.signal, limitMs: 2_000 })) > 0) throw new Error('earlier commands still unanswered');
  const sv = new Subvolumes(mgr, 'fs', 'csi', { ...patience, onUnanswered: (answer) => tracker.add(VOLUME, answer) });
  await cloneAndWait({ volumeId: VOLUME, sv, name: CLONE, src: SRC, capacityBytes: 16 * MiB, signal: patience.signal, log, firstIntervalMs: 5, maxIntervalMs: 10 });
}

async function expectAborted(p: Promise<unknown>): Promise<void> {
  const e = await p.then(
    () => assert.fail('the first call cannot succeed'),
    (x: unknown) => x,
  );
  const s = cephfsError(e, where);
  assert.equal(s.code, status.ABORTED, s.message);
  assert.match(s.message, /may still take effect/);
  assert.match(s.message, /retry the same call/);
}

describe('cephfs clones against a mgr that answers the clone command late and carries it out', () => {
  it('the caller’s wait ends first: ABORTED; the retry waits for that answer, finds the clone and waits for it: one clone, grown to size', async () => {
    const mgr = new FakeMgr();
    const tracker = new UnansweredCommands();
    mgr.delayNext('fs subvolume snapshot clone', 150);
    await expectAborted(createVolume(mgr, tracker, { waitMs: 30 }));
    assert.equal(tracker.count(VOLUME), 1, 'the unanswered command is remembered under the volume ID');
    assert.deepEqual(mgr.clonesMade(), [], 'the mgr has not carried it out yet');

    await createVolume(mgr, tracker, { waitMs: 2_000 });
    assert.deepEqual(mgr.clones, ['started'], 'one clone command carried out, none sent again');
    assert.deepEqual(mgr.clonesMade(), [`csi/${CLONE}`]);
    const made = mgr.subvolumes.get(`csi/${CLONE}`)!;
    assert.equal(made.state, 'complete');
    assert.equal(made.quota, 16 * MiB, 'grown from the source’s 8 MiB to the requested size');
  });

  it('the caller’s deadline passes mid-wait: ABORTED, and the command is remembered', async () => {
    const mgr = new FakeMgr();
    const tracker = new UnansweredCommands();
    mgr.delayNext('fs subvolume snapshot clone', 150);
    const abort = new AbortController();
    setTimeout(() => abort.abort(), 30);
    await expectAborted(createVolume(mgr, tracker, { waitMs: 60_000, signal: abort.signal }));
    assert.equal(tracker.count(VOLUME), 1);
    await tracker.settle(VOLUME, { limitMs: 2_000 });
    assert.deepEqual(mgr.clonesMade(), [`csi/${CLONE}`], 'carried out after the caller left; the next call finds it');
  });

  it('a driver that forgot the first command (restarted) sends it again: the mgr makes the first, answers the second EEXIST, taken as started: one clone', async () => {
    const mgr = new FakeMgr();
    mgr.delayNext('fs subvolume snapshot clone', 100);
    mgr.delayNext('fs subvolume snapshot clone', 200);
    await expectAborted(createVolume(mgr, new UnansweredCommands(), { waitMs: 30 }));
    await createVolume(mgr, new UnansweredCommands(), { waitMs: 2_000 });
    assert.deepEqual(mgr.clones, ['started', 'EEXIST']);
    assert.deepEqual(mgr.clonesMade(), [`csi/${CLONE}`], 'one clone, not two');
    assert.equal(mgr.subvolumes.get(`csi/${CLONE}`)!.state, 'complete');
  });

  it('DeleteVolume while the clone command is unanswered: held (ABORTED) until the mgr answers, then the clone is cancelled and removed: nothing left', async () => {
    const mgr = new FakeMgr();
    const tracker = new UnansweredCommands();
    mgr.delayNext('fs subvolume snapshot clone', 200);
    await expectAborted(createVolume(mgr, tracker, { waitMs: 30 }));
    // A DeleteVolume that does not wait long enough is held: it would remove nothing, and the
    // mgr would then make the clone no journal names.
    assert.equal(await tracker.settle(VOLUME, { limitMs: 20 }), 1, 'still unanswered: DeleteVolume answers ABORTED');
    assert.deepEqual(mgr.clonesMade(), []);
    // The CO's retry of DeleteVolume waits it out, then stops and removes what the late command made.
    assert.equal(await tracker.settle(VOLUME, { limitMs: 2_000 }), 0);
    const sv = new Subvolumes(mgr, 'fs', 'csi');
    assert.deepEqual(mgr.clonesMade(), [`csi/${CLONE}`], 'the late command made the clone');
    await stopClone(sv, CLONE, VOLUME, { log, limitMs: 1_000 });
    assert.equal(mgr.subvolumes.get(`csi/${CLONE}`)!.state, 'canceled');
    await sv.remove(CLONE);
    assert.deepEqual(mgr.clonesMade(), [], 'nothing left in the group');
  });
});
