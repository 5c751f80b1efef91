// securityContext without a node: who a container runs as (runAsUser/runAsGroup over the pod's, the
// passwd group, fsGroup and supplementalGroups as groups, runAsNonRoot), which CSI volumes get the
// fsGroup under each CSIDriver fsGroupPolicy, and SetVolumeOwnership's bits and OnRootMismatch on a
// temp dir (with this process's own group, so no privilege is needed).
import assert from 'node:assert/strict';
import { lstatSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import type { Container, PersistentVolume, Pod } from '../../src/control/api/types/core.js';
import { containerUser, passwdGroup } from '../../src/control/node/security-context.js';
import { type FsGroupPolicy, fsGroupApplies, rootNeedsChange, setVolumeOwnership } from '../../src/control/node/volume-ownership.js';

const PASSWD = 'root:x:0:0:root:/root:/bin/bash\nalice:x:1000:1001::/home/alice:/bin/sh\n';

function pod(securityContext: Record<string, unknown> | undefined): Pod {
  return { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'p', namespace: 'default', uid: 'u' }, spec: { containers: [], ...(securityContext ? { securityContext } : {}) } };
}

describe('containerUser', () => {
  const c = (sc?: Record<string, unknown>): Container => ({ name: 'main', ...(sc ? { securityContext: sc } : {}) });
  const cases: [string, Record<string, unknown> | undefined, Container, ReturnType<typeof containerUser>][] = [
    ['nothing set: root as before', undefined, c(), undefined],
    ['pod-level user, group, fsGroup, supplementalGroups', { runAsUser: 1000, runAsGroup: 3000, fsGroup: 2000, supplementalGroups: [4000] }, c(), { uid: 1000, gid: 3000, groups: [3000, 2000, 4000], home: '/home/alice' }],
    ['the container overrides the pod', { runAsUser: 1000, runAsGroup: 3000 }, c({ runAsUser: 5000 }), { uid: 5000, gid: 3000, groups: [3000], home: '/' }],
    ['no runAsGroup: the passwd primary group and home', { runAsUser: 1000 }, c(), { uid: 1000, gid: 1001, groups: [1001], home: '/home/alice' }],
    ['a user not in passwd: group 0, HOME /', { runAsUser: 777 }, c(), { uid: 777, gid: 0, groups: [0], home: '/' }],
    ['fsGroup alone: root with the extra group', { fsGroup: 2000 }, c(), { uid: 0, gid: 0, groups: [0, 2000] }],
    ['runAsNonRoot with a user is fine', { runAsNonRoot: true, runAsUser: 1000 }, c(), { uid: 1000, gid: 1001, groups: [1001], home: '/home/alice' }],
  ];
  for (const [name, psc, container, want] of cases) {
    it(name, () => assert.deepEqual(containerUser(pod(psc), container, () => PASSWD), want));
  }
  it('runAsNonRoot without a user is refused with the kubelet\'s words', () => {
    assert.throws(() => containerUser(pod({ runAsNonRoot: true }), c(), () => PASSWD), { message: 'container has runAsNonRoot and image will run as root' });
  });
  it('reads the primary group from passwd', () => {
    assert.equal(passwdGroup(1000, PASSWD), 1001);
    assert.equal(passwdGroup(42, PASSWD), undefined);
  });
});

describe('fsGroupApplies (the CSIDriver fsGroupPolicy)', () => {
  const pv = (fsType: string | undefined, accessModes: NonNullable<PersistentVolume['spec']['accessModes']>, volumeMode?: 'Block'): PersistentVolume => ({
    apiVersion: 'v1',
    kind: 'PersistentVolume',
    metadata: { name: 'pv' },
    spec: { accessModes, ...(volumeMode ? { volumeMode } : {}), csi: { driver: 'd', volumeHandle: 'h', ...(fsType ? { fsType } : {}) } },
  });
  const cases: [string, FsGroupPolicy | undefined, PersistentVolume, boolean, boolean][] = [
    ['File: always', 'File', pv(undefined, ['ReadWriteMany']), false, true],
    ['None: never', 'None', pv('ext4', ['ReadWriteOnce']), false, false],
    ['ReadWriteOnceWithFSType: fsType and RWO', 'ReadWriteOnceWithFSType', pv('ext4', ['ReadWriteOnce']), false, true],
    ['ReadWriteOnceWithFSType: no fsType', 'ReadWriteOnceWithFSType', pv(undefined, ['ReadWriteOnce']), false, false],
    ['ReadWriteOnceWithFSType: RWX', 'ReadWriteOnceWithFSType', pv('ext4', ['ReadWriteMany']), false, false],
    ['the default is ReadWriteOnceWithFSType', undefined, pv('xfs', ['ReadWriteOnce']), false, true],
    ['never a read-only volume', 'File', pv('ext4', ['ReadWriteOnce']), true, false],
    ['never a raw block volume', 'File', pv(undefined, ['ReadWriteOnce'], 'Block'), false, false],
  ];
  for (const [name, policy, volume, readOnly, want] of cases) {
    it(name, () => assert.equal(fsGroupApplies(policy, volume, readOnly), want));
  }
});

describe('setVolumeOwnership', () => {
  const gid = process.getgid?.() ?? 0;
  it('adds group rw to files, group rwx and setgid to directories, and leaves symlinks', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'stowage-ownership-'));
    try {
      mkdirSync(join(dir, 'sub'), { mode: 0o700 });
      writeFileSync(join(dir, 'sub', 'file'), 'x', { mode: 0o600 });
      symlinkSync('/etc/passwd', join(dir, 'link'));
      const before = lstatSync('/etc/passwd').mode;
      assert.ok(await rootNeedsChange(dir, gid), 'a fresh dir lacks the bits');
      assert.equal(await setVolumeOwnership(dir, gid, 'OnRootMismatch'), 4);
      assert.equal(lstatSync(join(dir, 'sub')).mode & 0o7777, 0o2770);
      assert.equal(lstatSync(join(dir, 'sub', 'file')).mode & 0o7777, 0o660);
      assert.equal(lstatSync('/etc/passwd').mode, before, 'the symlink was not followed');
      assert.equal(await rootNeedsChange(dir, gid), false);
      assert.equal(await setVolumeOwnership(dir, gid, 'OnRootMismatch'), 0, 'OnRootMismatch: root matches, no walk');
      assert.equal(await setVolumeOwnership(dir, gid, undefined), 4, 'Always: the walk again');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
