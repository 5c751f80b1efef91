// Where a volume's mount point lands inside a container's root: symlinks in the root resolve as the
// container would see them, so a mount point never lands outside the root (on the host).
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { resolveInRoot } from '../../src/control/node/runtime/container-init.js';

describe('resolveInRoot', () => {
  let root: string;
  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'stowage-resolve-'));
    await mkdir(join(root, 'real', 'dir'), { recursive: true });
    await symlink('/real', join(root, 'abs')); // absolute: restarts at the container's root
    await symlink('real/dir', join(root, 'rel'));
    await symlink('../../../../..', join(root, 'up')); // climbs past the root: stops at it
    await symlink('loop', join(root, 'loop'));
  });
  after(() => rm(root, { recursive: true, force: true }));

  it('keeps plain and missing paths under the root', () => {
    assert.equal(resolveInRoot(root, '/data'), join(root, 'data'));
    assert.equal(resolveInRoot(root, '/a/./b/'), join(root, 'a', 'b'));
  });

  it('resolves absolute and relative links inside the root', () => {
    assert.equal(resolveInRoot(root, '/abs/x'), join(root, 'real', 'x'));
    assert.equal(resolveInRoot(root, '/rel/x'), join(root, 'real', 'dir', 'x'));
  });

  it('never leaves the root through .. or links', () => {
    assert.equal(resolveInRoot(root, '/../../etc/passwd'), join(root, 'etc', 'passwd'));
    assert.equal(resolveInRoot(root, '/up/etc'), join(root, 'etc'));
  });

  it('gives up on link loops', () => {
    assert.throws(() => resolveInRoot(root, '/loop/x'), /too many levels of symbolic links/);
  });
});
