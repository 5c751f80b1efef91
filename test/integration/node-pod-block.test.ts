// Raw block volumes end to end through YAML and the CLI on the local backend: a Block claim used
// as `volumeDevices` is staged and published at the kubelet's volumeDevices paths, the device is at
// devicePath inside the container (a block device, not a file), a pattern written with dd through
// `stowage exec` is read back by a new pod after the first is deleted (and after `up` is killed
// and restarted: the pod and its device are adopted), and teardown unpublishes,
// unstages and detaches the volume's loop device. A Block claim in volumeMounts is refused as the
// kubelet refuses it.
import assert from 'node:assert/strict';
import { existsSync, lstatSync, readlinkSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { needsRoot } from '../support/driver-harness.js';
import { loopsUnder, mountAt, mountsUnder } from '../support/host-state.js';
import { startUp, until, type UpSession } from '../support/up-session.js';

const CLAIM = `apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: raw
spec:
  accessModes: [ReadWriteOnce]
  volumeMode: Block
  resources:
    requests:
      storage: 64Mi
`;

const pod = (name: string): string => `apiVersion: v1
kind: Pod
metadata:
  name: ${name}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: busybox
    command: ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 0.2; done"]
    volumeDevices:
    - name: disk
      devicePath: /dev/xvda
  volumes:
  - name: disk
    persistentVolumeClaim:
      claimName: raw
`;

const PATTERN = 'stowage-raw-block-pattern-0123456789';

describe('raw block volumes (volumeDevices) in pods', { skip: needsRoot, timeout: 300_000 }, () => {
  let up: UpSession;

  before(async () => {
    up = await startUp('stowage-block-', 'block-node');
  });

  after(async () => {
    if (up) assert.deepEqual(await up.stop(), [], 'nothing may stay mounted or attached');
  });

  const running = (name: string) =>
    until(`pod ${name} to run`, 90_000, async () => {
      const p = await up.pod(name);
      return p?.status?.phase === 'Running' ? p : undefined;
    });

  it('writes a pattern with dd, and a new pod reads it back; teardown leaves no loop device', async () => {
    const loopsBefore = loopsUnder(up.dir).length;
    await up.apply(`${CLAIM}---\n${pod('writer')}`);
    const first = await running('writer');
    const uid = first.metadata.uid ?? '';
    const pvName = JSON.parse((await up.cli('get', 'pvc', 'raw', '-o', 'json')).stdout).spec.volumeName as string;
    const root = join(up.dir, 'nodes', up.node);
    const publish = join(root, 'plugins/kubernetes.io/csi/volumeDevices/publish', pvName, uid);
    assert.ok(statSync(publish).isBlockDevice(), `the volume is published as a block device at ${publish}`);
    assert.ok(mountAt(publish), 'published by a bind mount of the device');
    assert.ok(existsSync(join(root, 'plugins/kubernetes.io/csi/volumeDevices/staging', pvName)), 'staged at the block staging path');
    const link = join(root, 'pods', uid, 'volumeDevices/kubernetes.io~csi', pvName);
    assert.ok(lstatSync(link).isSymbolicLink(), 'the pod device map path is a symlink');
    assert.equal(readlinkSync(link), publish);
    assert.equal(loopsUnder(up.dir).length, loopsBefore + 1, 'the volume is on a loop device of its own');

    const kind = await up.cli('exec', 'writer', '--', 'sh', '-c', 'test -b /dev/xvda && echo block');
    assert.equal(kind.stdout, 'block\n', kind.stderr);
    const write = await up.cli('exec', 'writer', '--', 'sh', '-c', `printf '${PATTERN}' | dd of=/dev/xvda bs=4096 count=1 conv=sync,fsync 2>/dev/null && echo written`);
    assert.equal(write.stdout, 'written\n', write.stderr);
    const hostDev = await up.cli('exec', 'writer', '--', 'sh', '-c', 'ls /dev');
    assert.doesNotMatch(hostDev.stdout, /loop/, 'the node\'s loop devices are not in the container');

    const deleted = await up.cli('delete', 'pod', 'writer');
    assert.equal(deleted.code, 0, deleted.stderr);
    assert.equal(mountAt(publish), undefined, 'unpublished');
    assert.equal(existsSync(link), false, 'the pod device link is gone');
    assert.equal(existsSync(join(root, 'plugins/kubernetes.io/csi/volumeDevices', pvName)), false, 'unstaged: its record is gone');
    assert.equal(loopsUnder(up.dir).length, loopsBefore, 'the volume\'s loop device is detached');

    await up.apply(pod('reader'));
    const reader = await running('reader');
    const read = await up.cli('exec', 'reader', '--', 'sh', '-c', `dd if=/dev/xvda bs=4096 count=1 2>/dev/null | head -c ${PATTERN.length}`);
    assert.equal(read.stdout, PATTERN, read.stderr);

    // `up` killed: the pod keeps its device; a new `up` adopts both, and teardown still works.
    await up.restart('SIGKILL');
    const adopted = await running('reader');
    const containerId = (p: typeof reader) => ((p.status?.['containerStatuses'] ?? []) as { containerID?: string }[])[0]?.containerID;
    assert.equal(containerId(adopted), containerId(reader), 'the same container, not restarted');
    const again = await up.cli('exec', 'reader', '--', 'sh', '-c', `dd if=/dev/xvda bs=4096 count=1 2>/dev/null | head -c ${PATTERN.length}`);
    assert.equal(again.stdout, PATTERN, again.stderr);
    const readerPublish = join(root, 'plugins/kubernetes.io/csi/volumeDevices/publish', pvName, reader.metadata.uid ?? '');
    assert.equal(mountsUnder(readerPublish).length, 1, 'published once, not stacked by the adopting agent');
    assert.equal((await up.cli('delete', 'pod', 'reader')).code, 0);
    assert.equal(mountAt(readerPublish), undefined);
    assert.equal(loopsUnder(up.dir).length, loopsBefore);
  });

  it('refuses a Block claim in volumeMounts with the kubelet\'s message', async () => {
    await up.apply(`apiVersion: v1
kind: Pod
metadata:
  name: wrong
spec:
  containers:
  - name: main
    image: busybox
    command: ["sleep", "60"]
    volumeMounts:
    - name: disk
      mountPath: /data
  volumes:
  - name: disk
    persistentVolumeClaim:
      claimName: raw
`);
    const events = await until('a FailedMount event', 60_000, async () => {
      const ran = await up.cli('get', 'events', '--field-selector', 'involvedObject.name=wrong', '-o', 'json');
      const items = (JSON.parse(ran.stdout) as { items: { reason: string; message: string }[] }).items;
      return items.find((e) => e.reason === 'FailedMount');
    });
    assert.equal(events.message, 'volume disk has volumeMode Block, but is specified in volumeMounts');
    assert.equal((await up.pod('wrong'))?.status?.phase, 'Pending');
    assert.equal((await up.cli('delete', 'pod', 'wrong')).code, 0);
  });
});
