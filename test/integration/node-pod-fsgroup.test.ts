// securityContext end to end through YAML and the CLI: the container's process runs with
// runAsUser / runAsGroup and fsGroup + supplementalGroups as its groups (`id` through `stowage
// exec`), a claim belongs to the fsGroup as its CSIDriver's fsGroupPolicy says (File, as `up`
// registers its drivers: an ext4 volume and a subvolume without an fsType alike) with setgid
// directories so what the pod creates does too, an emptyDir gets the group, and fsGroupChangePolicy OnRootMismatch skips the walk when the root already matches.
import assert from 'node:assert/strict';
import { chownSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { needsRoot } from '../support/driver-harness.js';
import { startUp, until, type UpSession } from '../support/up-session.js';

const SETUP = `apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata:
  name: ext4
provisioner: local.csi.stowage.dev
parameters:
  csi.storage.k8s.io/fstype: ext4
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: owned
spec:
  storageClassName: ext4
  accessModes: [ReadWriteOnce]
  resources:
    requests:
      storage: 64Mi
---
apiVersion: v1
kind: Secret
metadata:
  name: token
stringData:
  token: s3cret
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: plain
spec:
  accessModes: [ReadWriteOnce]
  resources:
    requests:
      storage: 64Mi
`;

const pod = (name: string, policy?: string): string => `apiVersion: v1
kind: Pod
metadata:
  name: ${name}
spec:
  terminationGracePeriodSeconds: 1
  securityContext:
    runAsUser: 1000
    runAsGroup: 3000
    fsGroup: 2000
    supplementalGroups: [4000]${policy ? `\n    fsGroupChangePolicy: ${policy}` : ''}
  containers:
  - name: main
    image: busybox
    command: ["sh", "-c", "trap 'exit 0' TERM; touch /data/${name}; mkdir -p /data/dir-${name}; touch /scratch/made; while true; do sleep 0.2; done"]
    volumeMounts: [{name: data, mountPath: /data}, {name: other, mountPath: /other}, {name: scratch, mountPath: /scratch}, {name: token, mountPath: /token}]
  volumes:
  - name: token
    secret:
      secretName: token
      defaultMode: 0440
  - name: data
    persistentVolumeClaim:
      claimName: owned
  - name: other
    persistentVolumeClaim:
      claimName: plain
  - name: scratch
    emptyDir: {}
`;

describe('securityContext: runAsUser, runAsGroup, fsGroup, supplementalGroups', { skip: needsRoot, timeout: 300_000 }, () => {
  let up: UpSession;

  before(async () => {
    up = await startUp('stowage-fsgroup-', 'fsgroup-node');
    await up.apply(SETUP);
  });

  after(async () => {
    if (up) assert.deepEqual(await up.stop(), [], 'nothing may stay mounted or attached');
  });

  const running = (name: string) =>
    until(`pod ${name} to run`, 90_000, async () => {
      const p = await up.pod(name);
      return p?.status?.phase === 'Running' ? p : undefined;
    });

  const target = async (uid: string, claim: string): Promise<string> => {
    const pv = JSON.parse((await up.cli('get', 'pvc', claim, '-o', 'json')).stdout).spec.volumeName as string;
    return join(up.dir, 'nodes', up.node, 'pods', uid, 'volumes/kubernetes.io~csi', pv, 'mount');
  };

  it('runs the process with the IDs, and what it creates belongs to the fsGroup', async () => {
    await up.apply(pod('first'));
    const first = await running('first');
    const exec = async (script: string) => (await up.cli('exec', 'first', '--', 'sh', '-c', script)).stdout.trim();
    assert.equal(await exec('id -u'), '1000');
    assert.equal(await exec('id -g'), '3000');
    assert.deepEqual((await exec('id -G')).split(/\s+/).sort(), ['2000', '3000', '4000']);
    const passwdHome = readFileSync('/etc/passwd', 'utf8').split('\n').map((l) => l.split(':')).find((f) => f[2] === '1000')?.[5];
    assert.equal(await exec('echo $HOME'), passwdHome || '/', 'HOME is the user\'s, not root\'s');

    const data = await target(first.metadata.uid ?? '', 'owned');
    await until('the pod to create its file', 30_000, async () => statSync(join(data, 'dir-first'), { throwIfNoEntry: false }));
    const root = statSync(data);
    assert.equal(root.gid, 2000, 'the volume root belongs to the fsGroup');
    assert.equal(root.mode & 0o2070, 0o2070, 'setgid and group rwx on the root');
    const created = statSync(join(data, 'first'));
    assert.deepEqual([created.uid, created.gid], [1000, 2000], 'a file the pod created: its user, the fsGroup');
    assert.equal(statSync(join(data, 'dir-first')).gid, 2000);
    assert.equal(statSync(join(data, 'lost+found')).gid, 2000, 'what was there before got the group too');

    // The embedded nodes register their drivers with fsGroupPolicy File, as deploy/'s CSIDriver
    // manifests do: a volume without an fsType (a btrfs subvolume of the default class) gets it too.
    // (ReadWriteOnceWithFSType and None are table-tested in node-security-context.)
    const other = statSync(await target(first.metadata.uid ?? '', 'plain'));
    assert.equal(other.gid, 2000, 'a volume without fsType gets the fsGroup too (fsGroupPolicy File)');
    assert.equal(await exec('touch /other/x 2>/dev/null && echo wrote || echo denied'), 'wrote', 'and user 1000 can write to it through the group');

    assert.equal(await exec('stat -c %g /scratch/made'), '2000', 'emptyDir files belong to the fsGroup');
    assert.equal(await exec('cat /token/token'), 's3cret', 'a 0440 secret file is readable through the fsGroup');
    // A file the pod's fsGroup does not own, put there behind its back, for the next two pods.
    writeFileSync(join(data, 'foreign'), 'x', { mode: 0o600 });
    chownSync(join(data, 'foreign'), 0, 0);
    assert.equal(statSync(join(data, 'foreign')).gid, 0);
    assert.equal((await up.cli('delete', 'pod', 'first')).code, 0);
  });

  it('fsGroupChangePolicy OnRootMismatch skips the walk when the root matches; the default walks', async () => {
    await up.apply(pod('lazy', 'OnRootMismatch'));
    const lazy = await running('lazy');
    const lazyData = await target(lazy.metadata.uid ?? '', 'owned');
    assert.equal(statSync(join(lazyData, 'foreign')).gid, 0, 'OnRootMismatch: the root matched, nothing was walked');
    assert.equal((await up.cli('delete', 'pod', 'lazy')).code, 0);

    await up.apply(pod('eager'));
    const eager = await running('eager');
    const eagerData = await target(eager.metadata.uid ?? '', 'owned');
    assert.equal(statSync(join(eagerData, 'foreign')).gid, 2000, 'Always (the default): every file gets the group');
    assert.equal(statSync(join(eagerData, 'foreign')).mode & 0o060, 0o060, 'and group read-write');
    assert.equal((await up.cli('delete', 'pod', 'eager')).code, 0);
  });

  it('refuses runAsNonRoot without a user as the kubelet does', async () => {
    await up.apply(`apiVersion: v1
kind: Pod
metadata:
  name: rooted
spec:
  securityContext:
    runAsNonRoot: true
  containers:
  - name: main
    image: busybox
    command: ["sleep", "60"]
`);
    const waiting = await until('CreateContainerConfigError', 60_000, async () => {
      const p = await up.pod('rooted');
      const s = ((p?.status?.['containerStatuses'] ?? []) as { state: { waiting?: { reason: string; message: string } } }[])[0];
      return s?.state.waiting?.reason === 'CreateContainerConfigError' ? s.state.waiting : undefined;
    });
    assert.equal(waiting.message, 'container has runAsNonRoot and image will run as root');
    assert.equal((await up.cli('delete', 'pod', 'rooted')).code, 0);
  });
});
