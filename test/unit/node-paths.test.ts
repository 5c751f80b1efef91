/**
 * Path safety of the Node service by construction (issue 11): NodePaths.resolve against a temp
 * tree, table-driven — only paths strictly beneath a kubelet root, parents resolved, never a
 * symlink as the last component, never the driver's own storage — and the fd-walking operations
 * (mount/beneath.ts) when the tree changes between the check and the work.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, realpathSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { InvalidArgumentError } from '../../src/csi/errors.js';
import { NodePaths } from '../../src/driver/backends/node-paths.js';
import { ExecRunner } from '../../src/driver/mount/exec.js';
import { Mounter, parseMountInfo } from '../../src/driver/mount/mount.js';
import { umount2 } from '../../src/driver/mount/syscalls.js';
import { requirePath } from '../../src/driver/validate.js';
import { pino } from 'pino';

const isRoot = process.getuid?.() === 0;

function mountPoints(): string[] {
  return parseMountInfo(readFileSync('/proc/self/mountinfo', 'utf8')).map((m) => m.mountPoint);
}

describe('NodePaths: what a CO may name', () => {
  let t: string;
  let root: string;
  let own: string;
  let outside: string;
  let paths: NodePaths;

  before(() => {
    t = realpathSync(mkdtempSync(join(tmpdir(), 'stowage-paths-')));
    root = join(t, 'kubelet');
    own = join(root, 'own');
    outside = join(t, 'outside');
    for (const d of ['pods/p1/volumes/kubernetes.io~csi/pv1', 'plugins/kubernetes.io/csi/drv/hash', 'own/meta', 'own/pool']) mkdirSync(join(root, d), { recursive: true });
    mkdirSync(join(outside, 'x'), { recursive: true });
    writeFileSync(join(root, 'file.txt'), '');
    symlinkSync(outside, join(root, 'lnk-out'));
    symlinkSync(join(root, 'pods'), join(root, 'lnk-in'));
    symlinkSync(join(own, 'meta'), join(root, 'lnk-meta'));
    symlinkSync(join(own, 'pool'), join(root, 'lnk-pool'));
    symlinkSync(join(t, 'nowhere'), join(root, 'dangling'));
    symlinkSync('/dev/null', join(root, 'devlink'));
    symlinkSync(root, join(t, 'root-link'));
    if (isRoot) execFileSync('mknod', [join(root, 'null'), 'c', '1', '3']);
    paths = new NodePaths([join(t, 'root-link')], [own]);
  });

  after(() => rmSync(t, { recursive: true, force: true }));

  const ok = (p: () => string, want: () => string) => ({ p, want });
  const no = (p: () => string, why: RegExp) => ({ p, why });
  const cases: Record<string, ReturnType<typeof ok> | ReturnType<typeof no>> = {
    'a staging path as kubelet makes it (globalmount missing)': ok(
      () => join(root, 'plugins/kubernetes.io/csi/drv/hash/globalmount'),
      () => join(root, 'plugins/kubernetes.io/csi/drv/hash/globalmount'),
    ),
    'a publish target (its parent made by kubelet)': ok(
      () => join(root, 'pods/p1/volumes/kubernetes.io~csi/pv1/mount'),
      () => join(root, 'pods/p1/volumes/kubernetes.io~csi/pv1/mount'),
    ),
    'missing directories beneath the root': ok(() => join(root, 'new/deep/dir'), () => join(root, 'new/deep/dir')),
    'through the root given as a symlink': ok(() => join(t, 'root-link', 'pods', 'p1'), () => join(root, 'pods', 'p1')),
    'a parent symlink that stays beneath the root': ok(() => join(root, 'lnk-in', 'p1', 'x'), () => join(root, 'pods', 'p1', 'x')),
    'an existing empty file (a block target)': ok(() => join(root, 'file.txt'), () => join(root, 'file.txt')),
    'the root itself': no(() => root, /outside the kubelet directories/),
    '/proc/self': no(() => '/proc/self', /outside the kubelet directories/),
    '/usr/local': no(() => '/usr/local', /outside/),
    '/var/lib': no(() => '/var/lib', /outside/),
    '/sys/kernel': no(() => '/sys/kernel', /outside/),
    '/boot/x': no(() => '/boot/x', /outside/),
    '/dev/null': no(() => '/dev/null', /outside/),
    '/': no(() => '/', /names no file/),
    'a sibling of the root sharing its prefix': no(() => `${root}-evil/x`, /outside/),
    'a parent symlink leading out of the root': no(() => join(root, 'lnk-out', 'x'), /outside the kubelet directories \(it resolves to/),
    'a symlink as the last component (inside)': no(() => join(root, 'lnk-in'), /is a symlink/),
    'a symlink as the last component (to /dev/null)': no(() => join(root, 'devlink'), /is a symlink/),
    'a parent symlink to the pool meta': no(() => join(root, 'lnk-meta', 'x'), /inside the driver's own storage/),
    'a symlink to the pool root': no(() => join(root, 'lnk-pool'), /is a symlink|own storage/),
    'the own dir': no(() => own, /inside the driver's own storage/),
    'beneath the own dir': no(() => join(own, 'pool', 'volumes'), /inside the driver's own storage/),
    'a dangling parent symlink': no(() => join(root, 'dangling', 'x'), /symlink that leads nowhere/),
    'a dangling symlink as the last component': no(() => join(root, 'dangling'), /is a symlink/),
    'a file where a directory must be': no(() => join(root, 'file.txt', 'x'), /file where a directory must be/),
  };

  for (const [name, c] of Object.entries(cases)) {
    it(name, async () => {
      const p = c.p();
      if ('want' in c) {
        assert.equal(await paths.resolve('target_path', requirePath('target_path', p)), c.want());
      } else {
        await assert.rejects(paths.resolve('target_path', requirePath('target_path', p)), (e: unknown) => {
          assert.ok(e instanceof InvalidArgumentError, `not INVALID_ARGUMENT: ${String(e)}`);
          assert.match(e.message, c.why);
          assert.match(e.message, /^target_path "/, 'names the field and the path');
          assert.match(e.message, /root-link \(--kubelet-dir\)/, 'names the allowed roots');
          return true;
        });
      }
    });
  }

  it('a device node inside the root', { skip: !isRoot && 'needs root (mknod)' }, async () => {
    await assert.rejects(paths.resolve('staging_target_path', join(root, 'null')), /neither a directory nor a file/);
  });

  it('a path above the own dir (mounting there would hide the pool)', async () => {
    const p = new NodePaths([root], [join(root, 'a', 'pool')]);
    await assert.rejects(p.resolve('staging_target_path', join(root, 'a')), /above the driver's own storage/);
  });

  it('no kubelet directory exists: everything is refused', async () => {
    const p = new NodePaths([join(t, 'no-such-root')], []);
    await assert.rejects(p.resolve('staging_target_path', join(t, 'no-such-root', 'x')), /no kubelet directory exists/);
  });

  it('a component longer than NAME_MAX is INVALID_ARGUMENT before any lookup', () => {
    assert.throws(() => requirePath('target_path', join(root, 'x'.repeat(300))), InvalidArgumentError);
  });
});

describe('NodePaths: the work goes through fds, never through a swapped path', () => {
  let t: string;
  let root: string;
  let outside: string;
  let paths: NodePaths;

  before(() => {
    t = realpathSync(mkdtempSync(join(tmpdir(), 'stowage-beneath-')));
    root = join(t, 'kubelet');
    outside = join(t, 'outside');
    mkdirSync(join(root, 'a', 'b'), { recursive: true });
    mkdirSync(join(outside, 'b'), { recursive: true });
    paths = new NodePaths([root], []);
  });

  after(() => rmSync(t, { recursive: true, force: true }));

  /** Replaces root/a by a symlink to outside, as a pod writing into a kubelet directory could. */
  function swap(): void {
    renameSync(join(root, 'a'), join(root, `a-moved-${Date.now()}`));
    symlinkSync(outside, join(root, 'a'));
  }

  function unswap(): void {
    rmSync(join(root, 'a'));
    mkdirSync(join(root, 'a', 'b'), { recursive: true });
  }

  it('ensureDir makes missing directories beneath the root', async () => {
    await paths.ensureDir(join(root, 'a', 'b', 'c', 'd'));
    assert.ok(existsSync(join(root, 'a', 'b', 'c', 'd')));
  });

  it('a parent swapped for a symlink after the check: ensureDir, ensureFile and remove refuse, nothing made outside', async () => {
    const checked = await paths.resolve('target_path', join(root, 'a', 'b', 'new'));
    swap();
    try {
      for (const [what, call] of [
        ['ensureDir', () => paths.ensureDir(checked)],
        ['ensureFile', () => paths.ensureFile(checked)],
        ['remove', () => paths.remove(join(root, 'a', 'b'))],
      ] as const) {
        await assert.rejects(call(), (e: unknown) => e instanceof InvalidArgumentError && /not safe to use/.test(e.message), what);
      }
      assert.equal(existsSync(join(outside, 'b', 'new')), false, 'nothing created through the symlink');
      assert.ok(existsSync(join(outside, 'b')), 'nothing removed through the symlink');
    } finally {
      unswap();
    }
  });

  it('the last component swapped for a symlink: withPinned refuses it', async () => {
    const target = join(root, 'a', 'b', 'last');
    await paths.ensureDir(target);
    rmSync(target, { recursive: true });
    symlinkSync(join(outside, 'b'), target);
    try {
      await assert.rejects(paths.withPinned(target, async () => assert.fail('must not run')), /symlink/);
    } finally {
      rmSync(target);
    }
  });

  it('swapped between pinning and mount(2): the mount lands on the pinned directory, not outside', { skip: !isRoot && 'needs root (mount)' }, async () => {
    const mounter = new Mounter(new ExecRunner(pino({ level: 'silent' })));
    const source = join(t, 'source');
    mkdirSync(source, { recursive: true });
    writeFileSync(join(source, 'marker'), 'volume');
    const target = join(root, 'a', 'b', 'mnt');
    await paths.ensureDir(target);
    let moved = '';
    try {
      await paths.withPinned(target, async (pinned) => {
        swap();
        moved = join(root, readdirMoved());
        mkdirSync(join(outside, 'b', 'mnt'), { recursive: true });
        await mounter.bindMount(source, pinned, { readonly: true });
      });
      const points = mountPoints();
      assert.ok(points.includes(join(moved, 'b', 'mnt')), 'mounted on the directory that was pinned');
      assert.equal(points.includes(join(outside, 'b', 'mnt')), false, 'nothing mounted outside the root');
      assert.equal(readFileSync(join(moved, 'b', 'mnt', 'marker'), 'utf8'), 'volume');
      // The read-only flag went to the new mount (set through the pinned parent), not to the directory under it.
      assert.throws(() => writeFileSync(join(moved, 'b', 'mnt', 'x'), 'x'), /EROFS/);
    } finally {
      if (moved) await umount2(join(moved, 'b', 'mnt'), 0).catch(() => undefined);
      unswap();
    }
  });

  function readdirMoved(): string {
    const names = execFileSync('ls', [root], { encoding: 'utf8' }).split('\n');
    const m = names.filter((n) => n.startsWith('a-moved-')).sort().at(-1);
    assert.ok(m);
    return m;
  }
});
