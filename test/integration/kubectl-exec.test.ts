// `kubectl exec` against `stowage up`, unchanged: the real kubectl (1.30 and later speak WebSocket,
// v5.channel.k8s.io) runs commands in a pod's container through the API server: stdout and stderr
// apart, stdin to its end (1 MiB of binary data arrives intact), the command's exit code as
// kubectl's own, and a claim's volume seen from inside the container as the seeds check it (`kubectl
// exec POD -- mount | grep …`), written and read back through exec. Refusals are kube-apiserver's: a
// container that is not the pod's, a pod that does not exist, a pod not yet on a node, a request
// that is not a WebSocket upgrade; and the kubelet's for a container that has exited. `kubectl cp` (tar through exec) copies onto the volume and back.
// A kubectl killed mid-exec takes its command in the container with it; 50 MB of output arrives whole.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { spawn } from 'node:child_process';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { needsRoot } from '../support/driver-harness.js';
import { type Ran, runCaptured } from '../support/processes.js';
import { startUp, type Up } from '../support/stowage-up.js';

const MANIFESTS = `apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: notes}
spec:
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: 64Mi}}
---
apiVersion: v1
kind: Pod
metadata: {name: box}
spec:
  containers:
  - name: main
    image: busybox
    command: [sh, -c, 'echo ready > /tmp/state; sleep 3600']
    volumeMounts:
    - {name: notes, mountPath: /data}
  - name: side
    image: busybox
    command: [sleep, "3600"]
  volumes:
  - name: notes
    persistentVolumeClaim: {claimName: notes}
---
apiVersion: v1
kind: Pod
metadata: {name: oneshot}
spec:
  restartPolicy: Never
  containers:
  - {name: done, image: busybox, command: ["true"]}
  - {name: main, image: busybox, command: [sleep, "3600"]}
---
apiVersion: v1
kind: Pod
metadata: {name: nowhere}
spec:
  nodeSelector: {nowhere: "true"}
  containers:
  - {name: main, image: busybox, command: [sleep, "3600"]}
`;

describe('kubectl exec through the API of `stowage up`', { skip: needsRoot }, () => {
  let up: Up;
  const kubectl = (args: string[], stdin?: string | Buffer): Promise<Ran> =>
    runCaptured('/usr/bin/kubectl', ['--kubeconfig', join(up.state, 'kubeconfig'), ...args], { env: { HOME: up.dir }, ...(stdin === undefined ? {} : { stdin }) });

  before(async () => {
    up = await startUp('stowage-kubectl-exec-', 'exec-node', '256Mi');
    const file = join(up.dir, 'box.yaml');
    await writeFile(file, MANIFESTS);
    const r = await kubectl(['apply', '-f', file]);
    assert.equal(r.code, 0, r.stderr);
    await up.until('box to run', async () => (await up.field('pod', 'box', '.status.phase')) === 'Running');
  });

  after(async () => {
    await up?.cleanup();
  });

  it('runs a command in the container: stdout and stderr apart, the container chosen with -c', async () => {
    const r = await kubectl(['exec', 'box', '-c', 'main', '--', 'sh', '-c', 'cat /tmp/state; echo to-stderr >&2; echo "$0"']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'ready\nsh\n');
    assert.equal(r.stderr, 'to-stderr\n');
    // Without -c kubectl picks the first container and says so.
    const first = await kubectl(['exec', 'box', '--', 'cat', '/tmp/state']);
    assert.equal(first.stdout, 'ready\n');
    assert.match(first.stderr, /Defaulted container "main" out of: main, side/);
    // The side container has no such file: it is another container.
    const side = await kubectl(['exec', 'box', '-c', 'side', '--', 'cat', '/tmp/state']);
    assert.equal(side.code, 1);
    assert.match(side.stderr, /No such file or directory/);
  });

  it("passes stdin to its end, binary-safe, and exits with the command's code", async () => {
    const data = randomBytes(1024 * 1024);
    const r = await kubectl(['exec', '-i', 'box', '-c', 'main', '--', 'md5sum'], data);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.split(' ')[0], createHash('md5').update(data).digest('hex'));
    const failed = await kubectl(['exec', 'box', '-c', 'main', '--', 'sh', '-c', 'echo partial; exit 3']);
    assert.equal(failed.code, 3);
    assert.equal(failed.stdout, 'partial\n');
    assert.match(failed.stderr, /command terminated with exit code 3/);
  });

  it("sees the claim's volume mounted inside the container, and data written through exec stays on it", async () => {
    const mounts = await kubectl(['exec', 'box', '-c', 'main', '--', 'sh', '-c', 'mount | grep " /data "']);
    assert.equal(mounts.code, 0, mounts.stderr);
    assert.match(mounts.stdout, / on \/data type (btrfs|ext4|xfs) \(rw/);
    const wrote = await kubectl(['exec', '-i', 'box', '-c', 'main', '--', 'sh', '-c', 'cat > /data/note && sync'], 'kept on the volume\n');
    assert.equal(wrote.code, 0, wrote.stderr);
    const read = await kubectl(['exec', 'box', '-c', 'main', '--', 'cat', '/data/note']);
    assert.equal(read.stdout, 'kept on the volume\n');
    // kubectl cp is tar through exec: onto the volume and back.
    const local = join(up.dir, 'report.txt');
    await writeFile(local, 'copied in with kubectl cp\n');
    const copied = await kubectl(['cp', local, 'box:/data/report.txt', '-c', 'main']);
    assert.equal(copied.code, 0, copied.stderr);
    assert.equal((await kubectl(['exec', 'box', '-c', 'main', '--', 'cat', '/data/report.txt'])).stdout, 'copied in with kubectl cp\n');
    const back = join(up.dir, 'note-back.txt');
    const fetched = await kubectl(['cp', 'box:/data/note', back, '-c', 'main']);
    assert.equal(fetched.code, 0, fetched.stderr);
    assert.equal(await readFile(back, 'utf8'), 'kept on the volume\n');
  });

  it("ends the command in the container when kubectl is killed mid-exec, and streams output larger than memory should hold", async () => {
    // A unique command line to find in /proc: the container's process seen from the host.
    const running = async (): Promise<boolean> => {
      for (const pid of await readdir('/proc').catch(() => [] as string[])) {
        if (!/^\d+$/.test(pid)) continue;
        const cmdline = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
        if (cmdline === 'sleep\u00003607\u0000') return true;
      }
      return false;
    };
    const client = spawn('/usr/bin/kubectl', ['--kubeconfig', join(up.state, 'kubeconfig'), 'exec', 'box', '-c', 'side', '--', 'sleep', '3607'], { stdio: 'ignore', env: { ...process.env, HOME: up.dir } });
    const gone = new Promise((resolve) => client.once('exit', resolve));
    await up.until('the command to run in the container', running);
    client.kill('SIGKILL');
    await gone;
    await up.until('the command in the container to end with its client', async () => !(await running()), 10_000);
    const big = await kubectl(['exec', 'box', '-c', 'main', '--', 'sh', '-c', 'head -c 50000000 /dev/zero | tr "\\0" x']);
    assert.equal(big.code, 0, big.stderr);
    assert.equal(big.stdout.length, 50_000_000);
    assert.ok(/^x+$/.test(big.stdout));
  });

  it('refuses what cannot be served with the Kubernetes messages', async () => {
    const wrong = await kubectl(['exec', 'box', '-c', 'nope', '--', 'true']);
    assert.notEqual(wrong.code, 0);
    assert.match(wrong.stderr, /container nope is not valid for pod box/);
    const missing = await kubectl(['exec', 'ghost', '--', 'true']);
    assert.notEqual(missing.code, 0);
    assert.match(missing.stderr, /\(NotFound\): pods "ghost" not found/);
    const pending = await kubectl(['exec', 'nowhere', '--', 'true']);
    assert.notEqual(pending.code, 0);
    assert.match(pending.stderr, /pod nowhere does not have a host assigned|unable to upgrade connection: pod does not exist|Pending/);
    // A container that has exited, in a pod still running: the kubelet's refusal, before the
    // upgrade, as kubectl shows it (its WebSocket attempt refused, then its SPDY fallback).
    await up.until('oneshot/done to exit', async () => {
      const statuses = JSON.parse((await up.field('pod', 'oneshot', '.status.containerStatuses')) || '[]') as { name: string; state?: { terminated?: object } }[];
      return statuses.some((c) => c.name === 'done' && c.state?.terminated !== undefined);
    });
    const exited = await kubectl(['exec', 'oneshot', '-c', 'done', '--', 'true']);
    assert.equal(exited.code, 1);
    assert.equal(exited.stderr, 'error: unable to upgrade connection: container not found ("done")\n');
    const alive = await kubectl(['exec', 'oneshot', '-c', 'main', '--', 'true']);
    assert.equal(alive.code, 0, alive.stderr);
    // A plain request (no WebSocket upgrade), as an old SPDY client without its upgrade headers.
    const plain = await kubectl(['create', '--raw', '/api/v1/namespaces/default/pods/box/exec?command=true&stdout=true&container=main', '-f', '-'], '{}');
    assert.notEqual(plain.code, 0);
    assert.match(plain.stderr, /Upgrade request required/);
  });
});
