// mountPropagation end to end through YAML and the CLI: a mount the node makes below a volume after
// the container started appears inside a container that mounted the volume with HostToContainer,
// and not inside one with the default (None); Bidirectional is refused by the API for an
// unprivileged container, as Kubernetes does, and for a privileged one what the container mounts
// below the volume appears on the node.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { promisify } from 'node:util';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { needsRoot } from '../support/driver-harness.js';
import { mountAt, unmount } from '../support/host-state.js';
import { startUp, until, type UpSession } from '../support/up-session.js';

const CLAIM = `apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: shared
spec:
  accessModes: [ReadWriteOnce]
  resources:
    requests:
      storage: 64Mi
`;

const pod = (name: string, propagation?: string, privileged = false): string => `apiVersion: v1
kind: Pod
metadata:
  name: ${name}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: busybox
    command: ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 0.2; done"]${privileged ? '\n    securityContext: {privileged: true}' : ''}
    volumeMounts:
    - name: data
      mountPath: /data${propagation ? `\n      mountPropagation: ${propagation}` : ''}
  volumes:
  - name: data
    persistentVolumeClaim:
      claimName: shared
`;

describe('mountPropagation', { skip: needsRoot, timeout: 300_000 }, () => {
  let up: UpSession;
  const hostMounts: string[] = [];

  before(async () => {
    up = await startUp('stowage-propagation-', 'prop-node');
    await up.apply(CLAIM);
  });

  after(async () => {
    for (const m of hostMounts) await unmount(m).catch(() => undefined);
    if (up) assert.deepEqual(await up.stop(), [], 'nothing may stay mounted or attached');
  });

  const running = (name: string) =>
    until(`pod ${name} to run`, 90_000, async () => {
      const p = await up.pod(name);
      return p?.status?.phase === 'Running' ? p : undefined;
    });

  /** Mounts a tmpfs with a marker file below the pod's published volume, on the node. */
  const mountOnNode = async (uid: string, marker: string): Promise<string> => {
    const pv = JSON.parse((await up.cli('get', 'pvc', 'shared', '-o', 'json')).stdout).spec.volumeName as string;
    const sub = join(up.dir, 'nodes', up.node, 'pods', uid, 'volumes/kubernetes.io~csi', pv, 'mount', `sub-${marker}`);
    mkdirSync(sub, { recursive: true });
    await promisify(execFile)('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', sub]);
    hostMounts.push(sub);
    writeFileSync(join(sub, 'marker'), marker);
    return sub;
  };

  it('HostToContainer sees a mount the node makes later; None does not', async () => {
    await up.apply(`${pod('follower', 'HostToContainer')}---\n${pod('isolated')}`);
    const [follower, isolated] = [await running('follower'), await running('isolated')];
    const subF = await mountOnNode(follower.metadata.uid ?? '', 'follower');
    const subI = await mountOnNode(isolated.metadata.uid ?? '', 'isolated');

    const seen = await up.cli('exec', 'follower', '--', 'sh', '-c', 'cat /data/sub-follower/marker');
    assert.equal(seen.stdout, 'follower', `HostToContainer: the node's new mount is in the container (${seen.stderr})`);
    const unseen = await up.cli('exec', 'isolated', '--', 'sh', '-c', 'cat /data/sub-isolated/marker 2>/dev/null || echo absent');
    assert.equal(unseen.stdout, 'absent\n', 'None: the container keeps its own view');

    await unmount(subF);
    await unmount(subI);
    hostMounts.length = 0;
    const gone = await up.cli('exec', 'follower', '--', 'sh', '-c', 'cat /data/sub-follower/marker 2>/dev/null || echo absent');
    assert.equal(gone.stdout, 'absent\n', 'HostToContainer: the unmount comes in too');
    assert.equal((await up.cli('delete', 'pod', 'follower', 'isolated')).code, 0);
  });

  it('Bidirectional: refused by the API for an unprivileged container; a privileged one\'s mount reaches the node', async () => {
    await assert.rejects(up.apply(pod('both', 'Bidirectional')), /spec\.containers\[0\]\.volumeMounts\[0\]\.mountPropagation: Forbidden: Bidirectional mount propagation is available only to privileged containers/);
    const script = "trap 'umount /data/from-ctr; exit 0' TERM; mkdir -p /data/from-ctr && mount -t tmpfs -o size=1m tmpfs /data/from-ctr && echo bidi > /data/from-ctr/marker; while true; do sleep 0.2; done";
    await up.apply(
      pod('both', 'Bidirectional', true).replace(`command: ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 0.2; done"]`, `command: ["sh", "-c", ${JSON.stringify(script)}]`),
    );
    const both = await running('both');
    const pv = JSON.parse((await up.cli('get', 'pvc', 'shared', '-o', 'json')).stdout).spec.volumeName as string;
    const onNode = join(up.dir, 'nodes', up.node, 'pods', both.metadata.uid ?? '', 'volumes/kubernetes.io~csi', pv, 'mount', 'from-ctr');
    await until('the container\'s mount to appear on the node', 30_000, async () => (existsSync(join(onNode, 'marker')) ? true : undefined));
    assert.equal(readFileSync(join(onNode, 'marker'), 'utf8'), 'bidi\n', 'the node sees the tmpfs the container mounted');
    assert.ok(mountAt(onNode), `${onNode} is a mount point in the node's table`);
    assert.equal((await up.cli('delete', 'pod', 'both')).code, 0);
    assert.equal(mountAt(onNode), undefined, 'the container unmounted it on its way out, and the node saw that too');
  });
});
