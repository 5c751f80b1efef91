// What the cephfs backend answers for the Ceph failures a real dev cluster cannot produce on
// demand (the volumes module is always on in Pacific), and how it reads the MDS's session list.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { status } from '@grpc/grpc-js';
import { cephfsError } from '../../src/driver/backends/cephfs/cephfs-backend.js';
import { parseSessions } from '../../src/driver/backends/cephfs/mds-sessions.js';
import { CephError, UnansweredMgrCommand } from '../../src/driver/backends/ceph/rados.js';

const where = { clusterID: 'c1', monitors: ['10.0.0.1:6789'], user: 'admin' };

describe('cephfs: Ceph errors as gRPC statuses', () => {
  it('the volumes module off → FAILED_PRECONDITION naming `ceph mgr module enable volumes`', () => {
    for (const e of [
      new CephError('mgr command "fs subvolume create"', 95, "Module 'volumes' is not enabled (required by command 'fs subvolume create'): use `ceph mgr module enable volumes` to enable it"),
      new CephError('mgr command "fs subvolume create"', 22, "No handler found for 'fs subvolume create'"),
    ]) {
      const s = cephfsError(e, where);
      assert.equal(s.code, status.FAILED_PRECONDITION, e.message);
      assert.match(s.message, /ceph mgr module enable volumes/);
      assert.match(s.message, /c1/);
    }
  });

  it('the module’s EAGAIN (a clone not ready) → ABORTED; its EINVAL → INVALID_ARGUMENT with its words', () => {
    const busy = cephfsError(new CephError('mgr command "fs subvolume rm"', 11, "subvolume 'csi-vol-x' is not ready for operation rm"), where);
    assert.equal(busy.code, status.ABORTED);
    const bad = cephfsError(new CephError('mgr command "fs subvolume create"', 22, 'Invalid pool layout'), where);
    assert.equal(bad.code, status.INVALID_ARGUMENT);
    assert.match(bad.message, /Invalid pool layout/);
  });

  it('a mgr that did not answer: UNAVAILABLE naming the mgr (not an OSD) when never sent, ABORTED "retry the same call" when it may still take effect', () => {
    const refused = cephfsError(new CephError('mgr command "fs subvolume create"', 110, 'not sent: 4 earlier mgr commands are still unanswered past their deadline'), where);
    assert.equal(refused.code, status.UNAVAILABLE);
    assert.match(refused.message, /active mgr of ceph cluster c1/);
    assert.doesNotMatch(refused.message, /OSD/);
    const late = cephfsError(new UnansweredMgrCommand('mgr command "fs subvolume snapshot clone"', Promise.resolve(), 10_000, 'limit'), where);
    assert.equal(late.code, status.ABORTED);
    assert.match(late.message, /within 10\.0 s; the command may still take effect/);
    assert.match(late.message, /retry the same call/);
  });

  it('connection and permission failures as for rbd: UNAVAILABLE naming the monitors, PERMISSION_DENIED naming the user', () => {
    const down = cephfsError(new CephError('rados_connect', 110), where);
    assert.equal(down.code, status.UNAVAILABLE);
    assert.match(down.message, /10\.0\.0\.1:6789/);
    const denied = cephfsError(new CephError('mgr command "fs subvolume create"', 13, 'access denied'), where);
    assert.equal(denied.code, status.PERMISSION_DENIED);
    assert.match(denied.message, /client\.admin/);
  });
});

describe('cephfs: MDS session lists', () => {
  it('reads mount roots, entities and hosts, from one MDS or several answers concatenated', () => {
    const one = JSON.stringify([
      { id: 4191, entity: { name: { type: 'client', num: 4191 } }, client_metadata: { root: '/volumes/csi/csi-vol-a/u', hostname: 'node-a', entity_id: 'k8s', pid: '812' } },
      { id: 4200, client_metadata: { hostname: 'node-b' } },
    ]);
    const two = JSON.stringify([{ id: 5, client_metadata: { root: '/volumes/csi/csi-vol-b/u/sub', entity_id: 'admin' } }]);
    const all = parseSessions(`${one}\n${two}`);
    assert.deepEqual(all, [
      { id: 4191, entity: 'client.k8s', host: 'node-a', root: '/volumes/csi/csi-vol-a/u', pid: 812 },
      { id: 4200, entity: '', host: 'node-b', root: '/', pid: 0 },
      { id: 5, entity: 'client.admin', host: '', root: '/volumes/csi/csi-vol-b/u/sub', pid: 0 },
    ]);
    assert.deepEqual(parseSessions('[]'), []);
  });
});
