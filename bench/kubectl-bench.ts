/**
 * kubectl against Stowage's API, beside Stowage's own CLI doing the same work in the same run:
 * `kubectl apply -f` of N PersistentVolumeClaims (one multi-document file) next to `stowage apply
 * -f` of the same file, and `kubectl get pvc` of M claims next to `stowage get pvc`. Both clients
 * talk to the same API server over loopback HTTP, so the ratio is about what each client asks of
 * the server (kubectl: discovery, OpenAPI, a GET and a create or patch per object; tables built by
 * the server) and what the server does for it. Not a test: it prints the figures.
 *
 *   node dist/bench/kubectl-bench.js [--apply 1000] [--get 10000] [--repeat 3]
 *
 * No driver runs: the claims name a class nobody provisions, so they stay Pending and the work
 * measured is the API's alone. Everything lives in a temp dir removed at the end.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs, promisify } from 'node:util';
import { pino } from 'pino';
import { stringify } from 'yaml';
import type { PersistentVolumeClaim } from '../src/control/api/types/core.js';
import { type ControlPlane, startControlPlane } from '../src/control/control-plane.js';

const run = promisify(execFile);
const BIN = fileURLToPath(new URL('../../bin/stowage.js', import.meta.url));

function claim(name: string): PersistentVolumeClaim {
  return {
    apiVersion: 'v1',
    kind: 'PersistentVolumeClaim',
    metadata: { name, labels: { bench: 'kubectl' } },
    spec: { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '1Gi' } }, storageClassName: 'nobody-provisions-this' },
  };
}

async function timed(what: string, cmd: string, args: string[], env: NodeJS.ProcessEnv): Promise<number> {
  const start = performance.now();
  try {
    await run(cmd, args, { env, maxBuffer: 256 << 20 });
  } catch (e) {
    const err = e as { stderr?: string; message: string };
    throw new Error(`${what} failed: ${err.stderr?.trim() || err.message}`);
  }
  return (performance.now() - start) / 1000;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] ?? NaN;
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { apply: { type: 'string', default: '1000' }, get: { type: 'string', default: '10000' }, repeat: { type: 'string', default: '3' } } });
  const nApply = Number(values.apply);
  const nGet = Number(values.get);
  const repeat = Number(values.repeat);
  const dir = await mkdtemp(join(tmpdir(), 'stowage-kbench-'));
  let plane: ControlPlane | undefined;
  try {
    plane = await startControlPlane({
      stateDir: dir,
      listen: ['http://127.0.0.1:0'],
      logger: pino({ level: 'warn' }, pino.destination(2)),
      // Only a controller with nothing to do here: the figures are the API's.
      controllers: { controllers: ['csi-capacity'], scheduler: false, resyncMs: 0 },
    });
    const server = plane.url;
    const kubeconfig = join(dir, 'kubeconfig');
    await writeFile(
      kubeconfig,
      stringify({
        apiVersion: 'v1',
        kind: 'Config',
        clusters: [{ name: 'bench', cluster: { server } }],
        users: [{ name: 'bench', user: {} }],
        contexts: [{ name: 'bench', context: { cluster: 'bench', user: 'bench' } }],
        'current-context': 'bench',
      }),
      { mode: 0o600 },
    );
    const env = { ...process.env, KUBECONFIG: kubeconfig, HOME: dir };
    for (const ns of ['by-kubectl', 'by-stowage', 'listed']) plane.store.create({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns } });
    const file = join(dir, 'claims.yaml');
    await writeFile(file, Array.from({ length: nApply }, (_, i) => stringify(claim(`claim-${i}`))).join('---\n'));

    const kApply = await timed('kubectl apply', 'kubectl', ['apply', '-f', file, '-n', 'by-kubectl'], env);
    const sApply = await timed('stowage apply', process.execPath, [BIN, 'apply', '-f', file, '-n', 'by-stowage', '--server', server], env);
    // Again: nothing changed, both clients compare and send nothing (kubectl: a GET each).
    const kReapply = await timed('kubectl apply (unchanged)', 'kubectl', ['apply', '-f', file, '-n', 'by-kubectl'], env);
    const sReapply = await timed('stowage apply (unchanged)', process.execPath, [BIN, 'apply', '-f', file, '-n', 'by-stowage', '--server', server], env);

    for (let i = 0; i < nGet; i++) {
      const c = claim(`listed-${i}`);
      c.metadata.namespace = 'listed';
      plane.store.create(c);
    }
    await plane.store.flushed();
    const kGet: number[] = [];
    const sGet: number[] = [];
    for (let r = 0; r < repeat; r++) {
      kGet.push(await timed('kubectl get', 'kubectl', ['get', 'pvc', '-n', 'listed'], env));
      sGet.push(await timed('stowage get', process.execPath, [BIN, 'get', 'pvc', '-n', 'listed', '--server', server], env));
    }
    const line = (what: string, k: number, s: number) =>
      `${what.padEnd(34)} kubectl ${k.toFixed(2).padStart(7)} s   stowage ${s.toFixed(2).padStart(7)} s   kubectl/stowage ${(k / s).toFixed(2)}\n`;
    process.stdout.write(`kubectl ${(await run('kubectl', ['version', '--client', '-o', 'json'], { env })).stdout.match(/"gitVersion":\s*"([^"]+)"/)?.[1] ?? '?'} against ${server}\n`);
    process.stdout.write(line(`apply -f (${nApply} PVCs, create)`, kApply, sApply));
    process.stdout.write(line(`apply -f (${nApply} PVCs, unchanged)`, kReapply, sReapply));
    process.stdout.write(line(`get pvc (${nGet} PVCs, median of ${repeat})`, median(kGet), median(sGet)));
  } finally {
    await plane?.stop().catch(() => undefined);
    await rm(dir, { recursive: true, force: true });
  }
}

await main();
