// The CLI against a real control plane: `stowage up` (control plane + local driver) runs as a child
// process in a temp state directory, and every check drives the real binary (`node bin/stowage.js
// …`) the way a user does: apply the seed fixtures, read kubectl's tables, describe with events, the
// 003 typo refused with its field path, delete, --server and --state-dir discovery, one-line errors.
// Whatever happens, the `up` process is stopped and nothing stays mounted or attached.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { releasePool } from '../../src/driver/backends/local/pool-release.js';
import { leftovers, releaseAllUnder } from '../support/host-state.js';
import { runCaptured, type Ran } from '../support/processes.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const BIN = join(ROOT, 'bin/stowage.js');
const SEEDS = join(ROOT, 'test/fixtures/seeds');
const NODE = 'cli-test-node';

type Run = Ran;

/** Runs the CLI; `args` come after the binary. */
function cli(args: readonly string[], options: { stdin?: string; env?: Record<string, string>; cwd?: string } = {}): Promise<Run> {
  return runCaptured(process.execPath, [BIN, ...args], { cwd: options.cwd ?? SEEDS, ...(options.env ? { env: options.env } : {}), ...(options.stdin !== undefined ? { stdin: options.stdin } : {}) });
}

/** The cells of a table line (kubectl separates cells by at least three spaces; empty cells vanish). */
function cells(line: string | undefined): string[] {
  return (line ?? '').split(/ {3,}/);
}

function rows(table: string): string[][] {
  return table.trimEnd().split('\n').map(cells);
}

async function until<T>(what: string, timeoutMs: number, probe: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(200);
  }
}

describe('stowage CLI against `stowage up`', () => {
  let dir: string;
  let up: ChildProcess | undefined;
  let upLog = '';
  let upExit: Promise<{ code: number | null; signal: NodeJS.Signals | null }> | undefined;
  let s: string[];

  /** The CLI with --state-dir pointing at the running `up`. */
  const st = (...args: string[]): Promise<Run> => cli(['--state-dir', dir, ...args]);

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'stowage-cli-'));
    s = ['--state-dir', dir];
    up = spawn(process.execPath, [BIN, 'up', '--state-dir', dir, '--pool-size', '2Gi', '--node-name', NODE], { stdio: ['ignore', 'pipe', 'pipe'] });
    up.stdout?.on('data', (c: Buffer) => (upLog += c.toString('utf8')));
    up.stderr?.on('data', (c: Buffer) => (upLog += c.toString('utf8')));
    upExit = new Promise((resolve) => up?.once('exit', (code, signal) => resolve({ code, signal })));
    let exited = false;
    void upExit.then(() => (exited = true));
    await until('stowage up to start', 90_000, async () => {
      if (exited) throw new Error(`stowage up exited early:\n${upLog}`);
      return upLog.includes('stowage is up') ? true : undefined;
    });
  });

  after(async () => {
    if (up && up.exitCode === null && up.signalCode === null) {
      up.kill('SIGINT');
      const timer = setTimeout(() => up?.kill('SIGKILL'), 40_000);
      await upExit;
      clearTimeout(timer);
    }
    // Whatever a failed test left: unmount, detach (only what is ours), release, remove.
    await releaseAllUnder(dir);
    await releasePool(join(dir, 'nodes', NODE, 'pool')).catch(() => undefined);
    const left = leftovers(dir);
    await rm(dir, { recursive: true, force: true });
    assert.deepEqual(left, [], 'nothing may stay mounted or attached');
  });

  it('registers the local driver and creates the default StorageClass', async () => {
    const info = JSON.parse(readFileSync(join(dir, 'server.json'), 'utf8')) as { url: string; pid: number };
    assert.equal(info.pid, up?.pid);
    const sc = await st('get', 'sc');
    assert.equal(sc.code, 0, sc.stderr);
    assert.deepEqual(rows(sc.stdout)[0], ['NAME', 'PROVISIONER', 'RECLAIMPOLICY', 'VOLUMEBINDINGMODE', 'ALLOWVOLUMEEXPANSION', 'AGE']);
    assert.deepEqual(rows(sc.stdout)[1]?.slice(0, 5), ['local (default)', 'local.csi.stowage.dev', 'Delete', 'Immediate', 'true']);
    const drivers = await st('get', 'csidriver');
    assert.deepEqual(rows(drivers.stdout)[1]?.slice(0, 7), ['local.csi.stowage.dev', 'false', 'false', 'true', '<unset>', 'false', 'Persistent']);
    const nodes = await st('get', 'csinode');
    assert.deepEqual(rows(nodes.stdout)[1]?.slice(0, 2), [NODE, '1']);
  });

  it('refuses a second `up` on the same state directory in one line', async () => {
    const second = await cli(['up', ...s]);
    assert.equal(second.code, 1);
    assert.match(second.stderr, new RegExp(`^error: a control plane is already running in ${dir} \\(pid ${up?.pid}, unix://.*\\)\\n$`));
  });

  it('applies the seed fixtures that must apply: created, then unchanged', async () => {
    const files = ['000-storageclass.yaml', '000-secret.yaml', '000-pvc.yaml', '002-hostpath-pv.yaml', '002-hostpath-pvc.yaml', '003-nfs-pv.yaml', '004-storageclass.yaml'];
    const args = files.flatMap((f) => ['-f', f]);
    const first = await st('apply', ...args);
    assert.equal(first.stderr, '');
    assert.equal(first.code, 0);
    assert.equal(
      first.stdout,
      [
        'storageclass.storage.k8s.io/csi-rbd-sc created',
        'secret/csi-rbd-secret created',
        'persistentvolumeclaim/rbd-pvc created',
        'persistentvolume/task-pv-volume created',
        'persistentvolumeclaim/task-pv-claim created',
        'persistentvolume/nfs-pv created',
        'storageclass.storage.k8s.io/csi-disk created',
        '',
      ].join('\n'),
    );
    const again = await st('apply', ...args);
    assert.equal(again.code, 0, again.stderr);
    assert.deepEqual(again.stdout.trimEnd().split('\n').map((l) => l.split(' ')[1]), Array(files.length).fill('unchanged'));
  });

  it('binds the hostPath PVC to its PV, and prints kubectl\'s pvc and pv tables', async () => {
    await until('task-pv-claim to be Bound', 30_000, async () => ((await st('get', 'pvc', 'task-pv-claim')).stdout.includes(' Bound ') ? true : undefined));
    const pvc = await st('get', 'pvc');
    assert.equal(pvc.code, 0, pvc.stderr);
    const table = rows(pvc.stdout);
    assert.deepEqual(table[0], ['NAME', 'STATUS', 'VOLUME', 'CAPACITY', 'ACCESS MODES', 'STORAGECLASS', 'VOLUMEATTRIBUTESCLASS', 'AGE']);
    const claim = table.find((r) => r[0] === 'task-pv-claim');
    assert.deepEqual(claim?.slice(0, 7), ['task-pv-claim', 'Bound', 'task-pv-volume', '100Mi', 'RWO', 'manual', '<unset>'], pvc.stdout);
    assert.match(claim?.[7] ?? '', /^\d+s$/);
    // The seed's claim waits for a driver nobody registered: Pending, no volume, no capacity.
    const rbd = table.find((r) => r[0] === 'rbd-pvc');
    assert.deepEqual(rbd?.slice(0, 4), ['rbd-pvc', 'Pending', 'csi-rbd-sc', '<unset>'], pvc.stdout);
    // Column positions are kubectl's: each header starts where its cells start.
    const lines = pvc.stdout.split('\n');
    const at = (header: string) => lines[0]?.indexOf(header) ?? -1;
    const claimLine = lines.find((l) => l.startsWith('task-pv-claim')) ?? '';
    assert.equal(claimLine.indexOf('task-pv-volume'), at('VOLUME'));
    assert.equal(claimLine.indexOf('manual'), at('STORAGECLASS'));

    const pv = await st('get', 'pv');
    const pvRows = rows(pv.stdout);
    assert.deepEqual(pvRows[0], ['NAME', 'CAPACITY', 'ACCESS MODES', 'RECLAIM POLICY', 'STATUS', 'CLAIM', 'STORAGECLASS', 'VOLUMEATTRIBUTESCLASS', 'REASON', 'AGE']);
    assert.deepEqual(pvRows.find((r) => r[0] === 'task-pv-volume')?.slice(0, 8), ['task-pv-volume', '100Mi', 'RWO', 'Retain', 'Bound', 'default/task-pv-claim', 'manual', '<unset>'], pv.stdout);
    assert.deepEqual(pvRows.find((r) => r[0] === 'nfs-pv')?.slice(0, 7), ['nfs-pv', '1Gi', 'RWO', 'Retain', 'Available', 'manual', '<unset>'], pv.stdout);

    const wide = await st('get', 'pv', 'nfs-pv', '-o', 'wide');
    assert.deepEqual(rows(wide.stdout)[0]?.slice(-2), ['AGE', 'VOLUMEMODE']);
    assert.equal(rows(wide.stdout)[1]?.at(-1), 'Filesystem');
    const sc = await st('get', 'sc', 'csi-rbd-sc', 'csi-disk');
    assert.deepEqual(rows(sc.stdout).slice(1).map((r) => r.slice(0, 5)), [
      ['csi-rbd-sc', 'csi.block.bigtera.com', 'Delete', 'Immediate', 'true'],
      ['csi-disk', 'diskplugin.csi.alibabacloud.com', 'Delete', 'Immediate', 'false'],
    ]);
    const secret = await st('get', 'secret', 'csi-rbd-secret');
    assert.deepEqual(rows(secret.stdout)[1]?.slice(0, 3), ['csi-rbd-secret', 'Opaque', '2']);
  });

  it('provisions a claim on the default class, and describe shows its events', async () => {
    const applied = await st('apply', '-f', '-', '-n', 'default');
    assert.equal(applied.code, 1, 'empty stdin is an error');
    const manifest = 'apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata:\n  name: cli-data\nspec:\n  accessModes: [ReadWriteOnce]\n  resources:\n    requests:\n      storage: 64Mi\n';
    const created = await cli([...s, 'apply', '-f', '-'], { stdin: manifest });
    assert.equal(created.stdout, 'persistentvolumeclaim/cli-data created\n', created.stderr);
    const claim = await until('cli-data to be Bound', 60_000, async () => {
      const r = await st('get', 'pvc', 'cli-data', '-o', 'json');
      const obj = JSON.parse(r.stdout) as { status?: { phase?: string }; spec: { volumeName?: string } };
      return obj.status?.phase === 'Bound' ? obj : undefined;
    });
    const pvName = claim.spec.volumeName ?? '';
    assert.match(pvName, /^pvc-[0-9a-f-]{36}$/);

    const described = await st('describe', 'pvc', 'cli-data');
    assert.equal(described.code, 0, described.stderr);
    const text = described.stdout;
    assert.match(text, /^Name: {10}cli-data\nNamespace: {5}default\nStorageClass: {2}local\nStatus: {8}Bound\nVolume: {8}pvc-/);
    assert.match(text, /\nFinalizers: {4}\[kubernetes\.io\/pvc-protection\]\nCapacity: {6}64Mi\nAccess Modes: {2}RWO\nVolumeMode: {4}Filesystem\n/);
    assert.match(text, /\nEvents:\n {2}Type +Reason +Age +From +Message\n {2}---- +------ +---- +---- +-------\n/);
    assert.match(text, /\n {2}Normal +ProvisioningSucceeded +\d+s +\S+ +Successfully provisioned volume pvc-/);

    const pv = await st('describe', 'pv', pvName);
    assert.match(pv.stdout, /\nClaim: +default\/cli-data\n/);
    assert.match(pv.stdout, /\n {4}Type: +CSI \(a Container Storage Interface \(CSI\) volume source\)\n {4}Driver: +local\.csi\.stowage\.dev\n/);
    assert.match(pv.stdout, new RegExp(`\\n {4}Term 0: +topology\\.stowage\\.dev/node in \\[${NODE}\\]\\n`));

    const events = await st('get', 'events');
    assert.match(events.stdout, /^LAST SEEN +TYPE +REASON +OBJECT +MESSAGE\n/);
    assert.match(events.stdout, /\n\d+s +Normal +ProvisioningSucceeded +persistentvolumeclaim\/cli-data +Successfully provisioned volume/);
  });

  it('refuses the seed 003 typo with the exact field path, exit code 1', async () => {
    const r = await st('apply', '-f', '003-nfs-pvc.yaml');
    assert.equal(r.code, 1);
    assert.equal(r.stdout, '');
    assert.equal(
      r.stderr,
      'The PersistentVolumeClaim "nfs-pvc" is invalid: spec.accessModes[0]: Unsupported value: "ReadwriteOnce": supported values: "ReadOnlyMany", "ReadWriteMany", "ReadWriteOnce", "ReadWriteOncePod"\n',
    );
  });

  it('fails in one line with a non-zero exit', async () => {
    const cases: [string[], RegExp][] = [
      [[...s, 'get', 'pvc', 'nope'], /^Error from server \(NotFound\): persistentvolumeclaims "nope" not found\n$/],
      [[...s, 'get', 'sc', 'nope'], /^Error from server \(NotFound\): storageclasses\.storage\.k8s\.io "nope" not found\n$/],
      [[...s, 'get', 'widgets'], /^error: the server doesn't have a resource type "widgets"\n$/],
      [[...s, 'describe', 'pv', 'nope'], /^Error from server \(NotFound\): persistentvolumes "nope" not found\n$/],
      [[...s, 'delete', 'pvc', 'nope'], /^Error from server \(NotFound\): persistentvolumeclaims "nope" not found\n$/],
      [[...s, 'apply', '-f', 'missing.yaml'], /^error: the path "missing\.yaml" does not exist\n$/],
      [[...s, 'apply', '-f', '002-hostpath-pod.yaml'], /^error: error parsing 002-hostpath-pod\.yaml: document 1: Tabs are not allowed as indentation at line \d+, column \d+\n$/],
      [[...s, 'apply', '-f', '004-disk-attacher-service.yaml'], /^error: resource mapping not found for name: "csi-disk-attacher" namespace: "" from "004-disk-attacher-service\.yaml": no matches for kind "Service" in version "v1"\nensure CRDs are installed first\n$/],
      [[...s, 'get', 'pvc', '-o', 'table'], /^error: unable to match a printer suitable for the output format "table", allowed formats are: wide,yaml,json,name\n$/],
      [['--state-dir', join(dir, 'nothing'), 'get', 'pvc'], new RegExp(`^error: no control plane running in ${join(dir, 'nothing')} \\(start one with \`stowage up\`\\)\\n$`)],
      [['--server', 'http://127.0.0.1:1', 'get', 'pvc'], /^error: the connection to the server 127\.0\.0\.1:1 was refused - is the control plane running \(stowage up\)\?\n$/],
    ];
    for (const [args, expected] of cases) {
      const r = await cli(args);
      assert.equal(r.code, 1, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, expected, args.join(' '));
      assert.equal(r.stdout, '', args.join(' '));
    }
  });

  it('finds the control plane through --server, --state-dir after the command, and $STOWAGE_STATE_DIR', async () => {
    const info = JSON.parse(readFileSync(join(dir, 'server.json'), 'utf8')) as { url: string };
    const viaServer = await cli(['--server', info.url, 'get', 'pv', 'nfs-pv', '-o', 'name']);
    assert.equal(viaServer.stdout, 'persistentvolume/nfs-pv\n', viaServer.stderr);
    const after = await cli(['get', 'sc', 'local', '-o', 'name', '--state-dir', dir]);
    assert.equal(after.stdout, 'storageclass.storage.k8s.io/local\n', after.stderr);
    const env = await cli(['get', 'ns', 'default', '-o', 'name'], { env: { STOWAGE_STATE_DIR: dir } });
    assert.equal(env.stdout, 'namespace/default\n', env.stderr);
    const otherNs = await st('get', 'pvc', '-n', 'kube-system');
    assert.equal(otherNs.code, 0);
    assert.equal(otherNs.stderr, 'No resources found in kube-system namespace.\n');
    const all = await st('get', 'pvc', '-A');
    assert.deepEqual(rows(all.stdout)[0]?.slice(0, 2), ['NAMESPACE', 'NAME']);
    const yaml = await st('get', 'sc', 'local', '-o', 'yaml');
    assert.match(yaml.stdout, /^allowVolumeExpansion: true\napiVersion: storage\.k8s\.io\/v1\nkind: StorageClass\nmetadata:\n/);
    assert.match(yaml.stdout, /\n {2}creationTimestamp: "\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ"\n/, 'timestamps quoted as kubectl does');
  });

  it('deletes by name and by manifest, waiting until the objects are gone', async () => {
    const claim = JSON.parse((await st('get', 'pvc', 'cli-data', '-o', 'json')).stdout) as { spec: { volumeName: string } };
    const byName = await st('delete', 'pvc', 'cli-data');
    assert.equal(byName.code, 0, byName.stderr);
    assert.equal(byName.stdout, 'persistentvolumeclaim "cli-data" deleted\n');
    assert.equal((await st('get', 'pvc', 'cli-data')).code, 1, 'gone when delete returns');
    // Reclaim policy Delete: the PV and the driver's volume go too.
    await until('the provisioned PV to be deleted', 60_000, async () => ((await st('get', 'pv', claim.spec.volumeName)).code === 1 ? true : undefined));

    const byFile = await st('delete', '-f', '002-hostpath-pvc.yaml', '-f', '002-hostpath-pv.yaml', '-f', '003-nfs-pv.yaml', '-f', '000-pvc.yaml');
    assert.equal(byFile.code, 0, byFile.stderr);
    assert.equal(
      byFile.stdout,
      ['persistentvolumeclaim "task-pv-claim" deleted', 'persistentvolume "task-pv-volume" deleted', 'persistentvolume "nfs-pv" deleted', 'persistentvolumeclaim "rbd-pvc" deleted', ''].join('\n'),
    );
    const none = await st('get', 'pvc');
    assert.equal(none.stderr, 'No resources found in default namespace.\n');
    const quiet = await st('delete', 'pvc', 'cli-data', '--ignore-not-found');
    assert.equal(quiet.code, 0);
    const sc = await st('delete', 'sc', 'csi-disk', '--wait=false');
    assert.equal(sc.stdout, 'storageclass.storage.k8s.io "csi-disk" deleted\n', sc.stderr);
  });

  it('stops cleanly on SIGINT: socket files gone, pool released', async () => {
    assert.ok(up);
    up.kill('SIGINT');
    const { code } = (await upExit) ?? { code: null };
    assert.equal(code, 0, upLog);
    assert.ok(!existsSync(join(dir, 'server.json')), 'server.json is removed');
    assert.match(upLog, /pool released/);
    assert.deepEqual(leftovers(dir), []);
    const gone = await st('get', 'pvc');
    assert.equal(gone.code, 1);
    assert.equal(gone.stderr, `error: no control plane running in ${dir} (start one with \`stowage up\`)\n`);
  });
});

describe('stowage up: failures', () => {
  it('reports a start failure in one line on stderr, exit 1', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'stowage-cli-fail-'));
    try {
      const r = await cli(['up', '--state-dir', dir, '--no-local-driver', '--listen', 'http://0.0.0.0:0']);
      assert.equal(r.code, 1);
      assert.match(r.stderr, /^error: stowage up failed: refusing to serve plain http on http:\/\/0\.0\.0\.0:0: [^\n]*\n$/);
      assert.ok(!existsSync(join(dir, 'server.json')));
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

/**
 * The README's main command as npm runs it, without its set-up step (done before the suite): the
 * rest of `scripts.main` through `sh -c` with node_modules/.bin first on PATH, as npm does.
 */
function npmRunMain(): Promise<Run> {
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> };
  const setup = 'bash scripts/setup.sh && ';
  const main = pkg.scripts['main'] ?? '';
  assert.ok(main.startsWith(setup), `scripts.main starts with the set-up: ${main}`);
  const command = main.slice(setup.length);
  return runCaptured('sh', ['-c', command], { cwd: ROOT, env: { PATH: `${join(ROOT, 'node_modules/.bin')}:${process.env['PATH'] ?? ''}` } });
}

describe('the main job: npm run main (stowage demo)', () => {
  it("runs seed 003's story: a pod writes into its volume, comes back and reads it, and nothing is left behind", async () => {
    const r = await npmRunMain();
    const dir = /\$ stowage up --state-dir (\S+) /.exec(r.stdout)?.[1] ?? '';
    try {
      assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
      assert.match(r.stdout, /\n\$ stowage apply -f pvc\.yaml\npersistentvolumeclaim\/local-pvc created\n/);
      assert.match(r.stdout, /\nlocal-pvc +Bound +pvc-[0-9a-f-]{36} +1Gi +RWO +csi-local-sc +<unset> +\d+s\n/);
      assert.match(r.stdout, /\npvc-[0-9a-f-]{36} +1Gi +RWO +Delete +Bound +default\/local-pvc +csi-local-sc +<unset> +\d+s\n/);
      assert.match(r.stdout, /\n {2}Normal +ProvisioningSucceeded +/);
      // Seed 003's story: the pod runs on the node with its volume at the kubelet's paths…
      assert.match(r.stdout, /\ntest-volumes +1\/1 +Running +0 +\d+s +127\.0\.0\.1 +demo-node +/);
      assert.match(r.stdout, /\n\$ ls \S+\/nodes\/demo-node\/pods\/[0-9a-f-]{36}\/volumes\/kubernetes\.io~csi\/pvc-[0-9a-f-]{36}\nmount\nvol_data\.json\n/);
      assert.match(r.stdout, /\/mount +\/dev\/loop\d+\S* +ext4 +rw,[^\n]*discard/);
      // …writes hello world, is deleted and recreated, and finds it again.
      assert.match(r.stdout, /\n\$ stowage logs test-volumes\nwrote: hello world\n/);
      assert.match(r.stdout, /\n\$ stowage exec test-volumes -- cat \/usr\/share\/nginx\/html\/index\.html\nhello world\n/);
      assert.match(r.stdout, /\n\$ stowage logs test-volumes\nfound: hello world\n/);
      // The claim grown while the pod ran; the recreated pod's df shows the grown ext4.
      assert.match(r.stdout, /\n\$ stowage apply -f pvc-grown\.yaml\npersistentvolumeclaim\/local-pvc configured\n/);
      assert.match(r.stdout, /\nlocal-pvc +Bound +pvc-[0-9a-f-]{36} +1536Mi +RWO +csi-local-sc +<unset> +\d+s\n/);
      assert.match(r.stdout, /\n\$ stowage exec test-volumes -- df -h \/usr\/share\/nginx\/html\n.*\n\/dev\/loop\d+ +1\.[45]G /);
      assert.match(r.stdout, /\n\$ stowage delete pvc local-pvc\npersistentvolumeclaim "local-pvc" deleted\n\n\$ stowage get pod,pvc,pv\nNo resources found in default namespace\.\n\nthe driver holds 0 volume\(s\)\n/);
      // Part 2: one volume through the CSI calls, ending with none left.
      assert.match(r.stdout, /\[8\] DeleteVolume\n {4}\{"volumesLeft":0\}\n/);
      assert.match(r.stdout, /\ndemo finished: the volume lived and died through the CSI socket\n/);
      assert.ok(dir.startsWith(tmpdir()), r.stdout);
      assert.deepEqual(leftovers(dir), []);
      assert.ok(!existsSync(dir), `${dir} is removed`);
    } finally {
      if (dir.startsWith(`${tmpdir()}/stowage-story-`)) {
        await releaseAllUnder(dir);
        await rm(dir, { recursive: true, force: true });
      }
    }
  });
});
