// The main job on Ceph: `stowage demo --part control-plane --backend rbd` starts a one-node Ceph
// cluster with `stowage ceph-dev`, runs `stowage up --backend rbd` against it and tells seed 003's
// story with seed 000's Secret, StorageClass csi-rbd-sc and PVC rbd-pvc: the rbd image is created,
// mapped (rbd-fuse + loop), formatted ext4, staged and published at the kubelet's paths; the pod
// writes hello world, is deleted and recreated and reads it back; the PVC's deletion removes the
// image from the pool. The admin key appears nowhere in what the story prints or logs.
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';
import { missingCephPackages } from '../../src/ceph/packages.js';
import { leftovers, releaseAllUnder } from '../support/host-state.js';
import { runCaptured, type Ran } from '../support/processes.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const BIN = join(ROOT, 'bin/stowage.js');
/** A cephx key as `ceph auth` prints it: base64 of 28 bytes, starting "AQ". */
const CEPH_KEY = /AQ[A-Za-z0-9+/]{36}==/;

function demo(args: readonly string[]): Promise<Ran> {
  return runCaptured(process.execPath, [BIN, 'demo', ...args], { cwd: ROOT });
}

describe('the main job on Ceph RBD: stowage demo --part control-plane --backend rbd', () => {
  it("runs seed 003's story with seed 000's objects on a ceph-dev cluster, and leaves nothing behind", { timeout: 600_000 }, async () => {
    const missing = await missingCephPackages();
    assert.deepEqual(missing, [], 'the ceph packages are installed (scripts/setup.sh)');
    const r = await demo(['--part', 'control-plane', '--backend', 'rbd', '--keep']);
    const dir = /\$ stowage up --state-dir (\S+) /.exec(r.stdout)?.[1] ?? '';
    try {
      assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
      // The cluster, and the driver's cluster list written for it.
      assert.match(r.stdout, /\n\$ stowage ceph-dev up --dir \S+\/ceph /);
      assert.match(r.stdout, /"userKey":"\*\*\*stripped\*\*\*"/);
      assert.match(r.stdout, /\n\$ stowage up --state-dir \S+ --backend rbd --ceph-config \S+\/ceph-csi-config\.json --node-name demo-node /);
      assert.match(r.stdout, /node demo-node runs the rbd\.csi\.stowage\.dev driver/);
      // Seed 000's objects.
      assert.match(r.stdout, /\n\$ stowage apply -f secret\.yaml\nsecret\/csi-rbd-secret created\n/);
      assert.match(r.stdout, /\n\$ stowage apply -f storageclass\.yaml\nstorageclass\.storage\.k8s\.io\/csi-rbd-sc created\n/);
      assert.match(r.stdout, /\nrbd-pvc +Bound +pvc-[0-9a-f-]{36} +1Gi +RWO +csi-rbd-sc +<unset> +\d+s\n/);
      // The image exists in the pool with the class's features, as seed 000's `rbd info` shows.
      assert.match(r.stdout, /\n\$ rbd info rbd\/csi-vol-[0-9a-f-]{36}\nrbd image 'csi-vol-[0-9a-f-]{36}':\n\tsize 1 GiB in 256 objects\n[\s\S]*?\tfeatures: layering\n/);
      // Staged from a loop device over the rbd-fuse image, published into the pod's directory.
      assert.match(r.stdout, /\/globalmount +\/dev\/loop\d+ +ext4\n/);
      assert.match(r.stdout, /\/volumes\/kubernetes\.io~csi\/pvc-[0-9a-f-]{36}\/mount +\/dev\/loop\d+\S* +ext4 +rw,[^\n]*discard/);
      assert.match(r.stdout, /\n\$ stowage logs test-volumes\nwrote: hello world\n/);
      assert.match(r.stdout, /\n\$ stowage exec test-volumes -- cat \/usr\/share\/nginx\/html\/index\.html\nhello world\n/);
      assert.match(r.stdout, /\n\$ stowage logs test-volumes\nfound: hello world\n/);
      // Snapshot → overwrite → restore: the restored claim holds the old bytes.
      assert.match(r.stdout, /\nrbd-pvc-snapshot +true +rbd-pvc +1536Mi +csi-snapclass +snapcontent-[0-9a-f-]{36} /);
      assert.match(r.stdout, /\n\$ stowage logs restored\nrestored: hello world\n/);
      // Reclaim policy Delete: the image is gone from the pool.
      assert.match(r.stdout, /\n\$ stowage delete pvc rbd-pvc\npersistentvolumeclaim "rbd-pvc" deleted\n\n\$ stowage get pod,pvc,pv\nNo resources found in default namespace\.\n\n\$ rbd ls rbd\n\nthe pool rbd holds 0 image\(s\)\n/);
      assert.match(r.stdout, /\n\$ stowage ceph-dev down --dir \S+\/ceph\n/);
      // Secrets: the key is in the Secret object only — not printed, not logged.
      assert.doesNotMatch(r.stdout, CEPH_KEY);
      assert.doesNotMatch(r.stderr, CEPH_KEY);
      const upLog = readFileSync(join(dir, 'up.log'), 'utf8');
      assert.match(upLog, /NodeStageVolume|node started/);
      assert.doesNotMatch(upLog, CEPH_KEY);
      assert.ok(!existsSync(join(dir, 'ceph')), 'ceph-dev down removed the cluster directory');
      // Nothing of the node is left: no rbd-fuse mount, no loop device, no staging or pod mount.
      assert.deepEqual(leftovers(dir), []);
    } finally {
      if (dir.startsWith(`${tmpdir()}/stowage-story-`)) {
        await releaseAllUnder(dir);
        await rm(dir, { recursive: true, force: true });
      }
    }
  });
});
