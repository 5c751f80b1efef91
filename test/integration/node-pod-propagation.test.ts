// mountPropagation end to end through YAML and the CLI: a mount the node makes below a volume after
// the container started appears inside a container that mounted the volume with HostToContainer,
// and not inside one with the default (None); Bidirectional is refused with a clear reason: by the
// API, as Kubernetes does, unless the container is privileged, and then by the node (containers
// here cannot mount onto the node).
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { promisify } from 'node:util';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { needsRoot } from '../support/driver-harness.js';
import { unmount } from '../support/host-state.js';
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

  it('refuses Bidirectional with a reason: the API for an unprivileged container, the node for a privileged one', async () => {
    await assert.rejects(up.apply(pod('both', 'Bidirectional')), /spec\.containers\[0\]\.volumeMounts\[0\]\.mountPropagation: Forbidden: Bidirectional mount propagation is available only to privileged containers/);
    await up.apply(pod('both', 'Bidirectional', true));
    const waiting = await until('CreateContainerConfigError', 60_000, async () => {
      const p = await up.pod('both');
      const s = ((p?.status?.['containerStatuses'] ?? []) as { state: { waiting?: { reason: string; message: string } } }[])[0];
      return s?.state.waiting?.reason === 'CreateContainerConfigError' ? s.state.waiting : undefined;
    });
    assert.match(waiting.message, /mountPropagation Bidirectional is not supported by the embedded runtime/);
    assert.equal((await up.cli('delete', 'pod', 'both')).code, 0);
  });
});
