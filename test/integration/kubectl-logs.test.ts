// `kubectl logs` against `stowage up`, unchanged: the API serves pods/{name}/log from the node's
// runtime files, so the real kubectl reads a container's output, follows it to the container's end,
// takes the last lines or bytes, and gets kube-apiserver's and the kubelet's refusals (a container
// that is not the pod's, no previous attempt, a pod not yet on a node).
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { needsRoot } from '../support/driver-harness.js';
import type { Ran } from '../support/processes.js';
import { startUp, type Up } from '../support/stowage-up.js';

const PODS = `apiVersion: v1
kind: Pod
metadata: {name: talker}
spec:
  containers:
  - name: main
    image: busybox
    command: [sh, -c, 'for i in 1 2 3; do echo "line $i"; done; sleep 3600']
  - name: side
    image: busybox
    command: [sh, -c, 'echo "from the side"; sleep 3600']
---
apiVersion: v1
kind: Pod
metadata: {name: counter}
spec:
  restartPolicy: Never
  containers:
  - name: main
    image: busybox
    command: [sh, -c, 'sleep 2; for i in 1 2 3 4 5; do echo "tick $i"; sleep 0.4; done']
---
apiVersion: v1
kind: Pod
metadata: {name: nowhere}
spec:
  nodeSelector: {nowhere: "true"}
  containers:
  - {name: main, image: busybox, command: [sleep, "3600"]}
`;

describe('kubectl logs through the API of `stowage up`', { skip: needsRoot }, () => {
  let up: Up;
  const kubectl = (...args: string[]): Promise<Ran> => up.kubectl(...args);

  before(async () => {
    up = await startUp('stowage-kubectl-logs-', 'logs-node', '256Mi');
    const file = join(up.dir, 'pods.yaml');
    await writeFile(file, PODS);
    const r = await kubectl('apply', '-f', file);
    assert.equal(r.code, 0, r.stderr);
    await up.until('talker to run and print its lines', async () => (await up.field('pod', 'talker', '.status.phase')) === 'Running' && (await kubectl('logs', 'talker', '-c', 'main')).stdout.includes('line 3'));
  });

  after(async () => {
    await up?.cleanup();
  });

  it('prints a container\'s output, the first container by default, another with -c', async () => {
    const first = await kubectl('logs', 'talker');
    assert.equal(first.code, 0, first.stderr);
    assert.equal(first.stdout, 'line 1\nline 2\nline 3\n');
    assert.match(first.stderr, /Defaulted container "main" out of: main, side/);
    const side = await kubectl('logs', 'talker', '-c', 'side');
    assert.equal(side.stdout, 'from the side\n');
    const pod = await kubectl('logs', 'pod/talker', '--all-containers');
    assert.equal(pod.code, 0, pod.stderr);
    // kubectl keeps its requests in a map: the containers come in any order, each one whole.
    const blocks = pod.stdout === 'from the side\nline 1\nline 2\nline 3\n' || pod.stdout === 'line 1\nline 2\nline 3\nfrom the side\n';
    assert.ok(blocks, `--all-containers printed ${JSON.stringify(pod.stdout)}`);
  });

  it('--tail and --limit-bytes cut the output as the kubelet does', async () => {
    assert.equal((await kubectl('logs', 'talker', '-c', 'main', '--tail', '1')).stdout, 'line 3\n');
    assert.equal((await kubectl('logs', 'talker', '-c', 'main', '--tail', '2')).stdout, 'line 2\nline 3\n');
    assert.equal((await kubectl('logs', 'talker', '-c', 'main', '--tail', '0')).stdout, '');
    assert.equal((await kubectl('logs', 'talker', '-c', 'main', '--limit-bytes', '9')).stdout, 'line 1\nli');
  });

  it('-f follows the output until the container ends', async () => {
    const started = Date.now();
    const r = await kubectl('logs', '-f', 'counter');
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'tick 1\ntick 2\ntick 3\ntick 4\ntick 5\n');
    // It waited for the output written after the call: the container's loop takes about 2 s.
    assert.ok(Date.now() - started > 1_000, 'kubectl logs -f returned before the container finished');
    await up.until('counter to succeed', async () => (await up.field('pod', 'counter', '.status.phase')) === 'Succeeded');
    assert.equal((await kubectl('logs', 'counter')).stdout, 'tick 1\ntick 2\ntick 3\ntick 4\ntick 5\n');
  });

  it('refuses what cannot be served with the Kubernetes messages', async () => {
    const wrong = await kubectl('logs', 'talker', '-c', 'nope');
    assert.notEqual(wrong.code, 0);
    assert.match(wrong.stderr, /container nope is not valid for pod talker/);
    const previous = await kubectl('logs', 'talker', '-c', 'main', '--previous');
    assert.notEqual(previous.code, 0);
    assert.match(previous.stderr, /Error from server \(BadRequest\): previous terminated container "main" in pod "talker" not found/);
    const pending = await kubectl('logs', 'nowhere');
    assert.notEqual(pending.code, 0);
    assert.match(pending.stderr, /Error from server \(BadRequest\): pod nowhere does not have a host assigned/);
    const missing = await kubectl('logs', 'ghost');
    assert.notEqual(missing.code, 0);
    assert.match(missing.stderr, /\(NotFound\): pods "ghost" not found/);
    const stamps = await kubectl('logs', 'talker', '-c', 'main', '--timestamps');
    assert.notEqual(stamps.code, 0);
    assert.match(stamps.stderr, /timestamps is not supported: this runtime records no time per line of output/);
  });
});
