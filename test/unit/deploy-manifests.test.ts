// Static checks of the Kubernetes manifests in deploy/: every document parses and names itself,
// the kustomizations reach every file, and the pieces that must agree do agree — the driver name,
// the CSI socket shared by the driver and its sidecars, the ServiceAccount and its bindings, the
// privileges and mount propagation of the driver container, the node-deployment flags.
//
// Each check is a function that returns a list of problems. The tests run it on the real
// manifests (no problems expected) and on deliberately broken copies (problems expected), so a
// check that silently accepts everything fails its own test.
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { basename, dirname, join, relative, resolve } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments } from 'yaml';
import { parseEndpoint } from '../../src/csi/endpoint.js';
import { DEFAULT_KUBELET_DIR, DRIVER_NAMES } from '../../src/driver/defaults.js';

/** The default driver name of `--backend local` (src/cli/driver-command.ts). */
const DRIVER_NAME = 'local.csi.stowage.dev';
const KUBELET_DIR = '/var/lib/kubelet';
const SA_TOKEN_PATH = '/var/run/secrets/kubernetes.io/serviceaccount';
/** Sidecars that talk to the API server and so need the projected ServiceAccount token. */
const API_CLIENTS = new Set(['csi-provisioner', 'csi-snapshotter', 'csi-resizer']);

// ------------------------------------------------------------------ loading

function findRepoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const pkg = join(dir, 'package.json');
    if (existsSync(pkg) && (JSON.parse(readFileSync(pkg, 'utf8')) as { name?: string }).name === 'stowage') return dir;
    const parent = dirname(dir);
    if (parent === dir) throw new Error('cannot find the repository root (package.json named stowage)');
    dir = parent;
  }
}

const ROOT = findRepoRoot();
const DEPLOY = join(ROOT, 'deploy');
const BASE = join(DEPLOY, 'kubernetes');
const OVERLAYS = join(DEPLOY, 'overlays');

type Obj = Record<string, unknown>;

interface Doc {
  file: string; // relative to deploy/
  obj: Obj;
}

/** All YAML files under `dir`, parsed: path relative to deploy/ → documents (empty ones dropped). */
function loadTree(dir: string): Map<string, Obj[]> {
  const out = new Map<string, Obj[]>();
  const walk = (d: string): void => {
    for (const name of readdirSync(d).sort()) {
      const full = join(d, name);
      if (statSync(full).isDirectory()) walk(full);
      else if (/\.ya?ml$/.test(name)) {
        const docs = parseAllDocuments(readFileSync(full, 'utf8'));
        const objs: Obj[] = [];
        for (const doc of docs) {
          if (doc.errors.length > 0) throw new Error(`${relative(DEPLOY, full)}: ${doc.errors[0]!.message}`);
          const value: unknown = doc.toJS();
          if (value === null || value === undefined) continue;
          if (typeof value !== 'object' || Array.isArray(value)) throw new Error(`${relative(DEPLOY, full)}: a document is not a mapping`);
          objs.push(value as Obj);
        }
        out.set(relative(DEPLOY, full), objs);
      }
    }
  };
  walk(dir);
  return out;
}

const isKustomizationFile = (file: string): boolean => basename(file) === 'kustomization.yaml' || basename(file) === 'kustomization.yml';

/** The Kubernetes objects of a set of files (kustomization files are kustomize's, not objects). */
function objectsOf(files: Map<string, Obj[]>, filter: (file: string) => boolean = () => true): Doc[] {
  const docs: Doc[] = [];
  for (const [file, objs] of files) {
    if (isKustomizationFile(file) || !filter(file)) continue;
    for (const obj of objs) docs.push({ file, obj });
  }
  return docs;
}

// ------------------------------------------------------------------ small typed accessors

const obj = (v: unknown): Obj => (v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Obj) : {});
const arr = (v: unknown): unknown[] => (Array.isArray(v) ? v : []);
const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);
const kindOf = (o: Obj): string | undefined => str(o['kind']);
const nameOf = (o: Obj): string | undefined => str(obj(o['metadata'])['name']);
const namespaceOf = (o: Obj): string | undefined => str(obj(o['metadata'])['namespace']);

interface Container {
  name: string;
  image: string;
  args: string[];
  env: Obj[];
  ports: Obj[];
  volumeMounts: Obj[];
  securityContext: Obj;
  livenessProbe: Obj;
}

function podSpecOf(workload: Obj): Obj {
  return obj(obj(obj(workload['spec'])['template'])['spec']);
}

function containersOf(podSpec: Obj): Container[] {
  return arr(podSpec['containers']).map((c) => {
    const o = obj(c);
    return {
      name: str(o['name']) ?? '',
      image: str(o['image']) ?? '',
      args: arr(o['args']).map(String),
      env: arr(o['env']).map(obj),
      ports: arr(o['ports']).map(obj),
      volumeMounts: arr(o['volumeMounts']).map(obj),
      securityContext: obj(o['securityContext']),
      livenessProbe: obj(o['livenessProbe']),
    };
  });
}

/** A flag's value from a Go-style (`--f=v`, `--f v`, `-f=v`) or commander-style argument list. */
function flag(args: string[], name: string): string | undefined {
  const bare = name.replace(/^-+/, '');
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    const m = /^--?([^=]+)(?:=(.*))?$/.exec(a);
    if (!m || m[1] !== bare) continue;
    if (m[2] !== undefined) return m[2];
    const next = args[i + 1];
    return next !== undefined && !next.startsWith('-') ? next : 'true';
  }
  return undefined;
}

const flagOn = (args: string[], name: string): boolean => {
  const v = flag(args, name);
  return v !== undefined && v !== 'false';
};

function volumeByName(podSpec: Obj, name: string): Obj | undefined {
  return arr(podSpec['volumes']).map(obj).find((v) => v['name'] === name);
}

const hostPathOf = (volume: Obj | undefined): string | undefined => str(obj(volume?.['hostPath'])['path']);

/** The env var's fieldRef path, if it is set from the downward API. */
const envFieldPath = (c: Container, name: string): string | undefined =>
  str(obj(obj(obj(c.env.find((e) => e['name'] === name))['valueFrom'])['fieldRef'])['fieldPath']);

/** The driver's own container: the one whose arguments start with the `driver` command. */
function driverContainer(podSpec: Obj): Container | undefined {
  return containersOf(podSpec).find((c) => c.args[0] === 'driver');
}

function daemonSets(docs: Doc[]): Obj[] {
  return docs.filter((d) => kindOf(d.obj) === 'DaemonSet').map((d) => d.obj);
}

// ------------------------------------------------------------------ the checks

function checkIdentity(docs: Doc[]): string[] {
  const problems: string[] = [];
  for (const { file, obj: o } of docs) {
    const what = `${file} (${String(kindOf(o) ?? '?')}/${String(nameOf(o) ?? '?')})`;
    if (!str(o['apiVersion'])) problems.push(`${what}: no apiVersion`);
    if (!kindOf(o)) problems.push(`${what}: no kind`);
    if (!nameOf(o)) problems.push(`${what}: no metadata.name`);
  }
  return problems;
}

function checkDriverName(docs: Doc[], driver: string): string[] {
  const problems: string[] = [];
  const csiDrivers = docs.filter((d) => kindOf(d.obj) === 'CSIDriver');
  if (csiDrivers.length !== 1) problems.push(`expected exactly one CSIDriver, found ${csiDrivers.length}`);
  for (const d of csiDrivers) if (nameOf(d.obj) !== driver) problems.push(`${d.file}: CSIDriver is named ${String(nameOf(d.obj))}, not ${driver}`);

  const classes = docs.filter((d) => kindOf(d.obj) === 'StorageClass');
  if (classes.length === 0) problems.push('no StorageClass');
  for (const d of classes) {
    if (d.obj['provisioner'] !== driver) problems.push(`${d.file}: StorageClass ${String(nameOf(d.obj))} has provisioner ${String(d.obj['provisioner'])}, not ${driver}`);
  }
  const snapClasses = docs.filter((d) => kindOf(d.obj) === 'VolumeSnapshotClass');
  if (snapClasses.length === 0) problems.push('no VolumeSnapshotClass');
  for (const d of snapClasses) {
    if (d.obj['driver'] !== driver) problems.push(`${d.file}: VolumeSnapshotClass ${String(nameOf(d.obj))} has driver ${String(d.obj['driver'])}, not ${driver}`);
  }

  const sets = daemonSets(docs);
  if (sets.length !== 1) problems.push(`expected exactly one DaemonSet, found ${sets.length}`);
  for (const ds of sets) {
    const spec = podSpecOf(ds);
    const registrars = containersOf(spec).filter((c) => flag(c.args, '--kubelet-registration-path') !== undefined);
    if (registrars.length !== 1) problems.push(`expected one node-driver-registrar (--kubelet-registration-path), found ${registrars.length}`);
    for (const r of registrars) {
      const path = flag(r.args, '--kubelet-registration-path')!;
      if (!path.split('/').includes(driver)) problems.push(`${r.name}: --kubelet-registration-path ${path} does not contain ${driver}`);
    }
    const d = driverContainer(spec);
    const explicit = d && flag(d.args, '--driver-name');
    if (explicit !== undefined && explicit !== driver) problems.push(`driver container: --driver-name ${String(explicit)}, not ${driver}`);
  }
  return problems;
}

function checkServiceAccounts(docs: Doc[]): string[] {
  const problems: string[] = [];
  const accounts = new Set(docs.filter((d) => kindOf(d.obj) === 'ServiceAccount').map((d) => `${String(namespaceOf(d.obj))}/${String(nameOf(d.obj))}`));
  const roles = new Set(docs.filter((d) => kindOf(d.obj) === 'Role').map((d) => `Role:${String(namespaceOf(d.obj))}/${String(nameOf(d.obj))}`));
  const clusterRoles = new Set(docs.filter((d) => kindOf(d.obj) === 'ClusterRole').map((d) => `ClusterRole:${String(nameOf(d.obj))}`));
  const bound = new Set<string>();

  for (const d of docs.filter((x) => kindOf(x.obj) === 'RoleBinding' || kindOf(x.obj) === 'ClusterRoleBinding')) {
    const ref = obj(d.obj['roleRef']);
    const refKind = str(ref['kind']);
    const key = refKind === 'Role' ? `Role:${String(namespaceOf(d.obj))}/${String(ref['name'])}` : `ClusterRole:${String(ref['name'])}`;
    if (!(refKind === 'Role' ? roles : clusterRoles).has(key)) problems.push(`${d.file}: ${String(kindOf(d.obj))} ${String(nameOf(d.obj))} refers to missing ${key}`);
    for (const s of arr(d.obj['subjects']).map(obj)) {
      if (s['kind'] !== 'ServiceAccount') continue;
      const sa = `${String(s['namespace'] ?? namespaceOf(d.obj))}/${String(s['name'])}`;
      if (!accounts.has(sa)) problems.push(`${d.file}: ${String(nameOf(d.obj))} binds missing ServiceAccount ${sa}`);
      bound.add(sa);
    }
  }

  const workloads = docs.filter((d) => ['DaemonSet', 'Deployment', 'StatefulSet'].includes(kindOf(d.obj) ?? ''));
  for (const d of workloads) {
    const sa = `${String(namespaceOf(d.obj))}/${str(podSpecOf(d.obj)['serviceAccountName']) ?? 'default'}`;
    if (!accounts.has(sa)) problems.push(`${d.file}: ${String(nameOf(d.obj))} uses ServiceAccount ${sa}, which is not defined`);
    if (!bound.has(sa)) problems.push(`${d.file}: ServiceAccount ${sa} of ${String(nameOf(d.obj))} is not bound to any role`);
  }
  return problems;
}

/** The socket volume: the driver's --endpoint directory, and every --csi-address on that volume. */
function checkSockets(ds: Obj): string[] {
  const problems: string[] = [];
  const spec = podSpecOf(ds);
  const driver = driverContainer(spec);
  if (!driver) return ['no driver container (args starting with `driver`)'];
  const endpoint = flag(driver.args, '--endpoint');
  if (!endpoint) return ['driver container has no --endpoint'];
  const socket = parseEndpoint(endpoint);
  const socketDir = dirname(socket);
  const mount = driver.volumeMounts.find((m) => m['mountPath'] === socketDir);
  if (!mount) return [`driver container mounts nothing at ${socketDir}, the directory of its --endpoint ${endpoint}`];
  const volumeName = String(mount['name']);
  const hostDir = hostPathOf(volumeByName(spec, volumeName));
  if (!hostDir) problems.push(`socket volume ${volumeName} is not a hostPath`);

  const sidecars = containersOf(spec).filter((c) => flag(c.args, '--csi-address') !== undefined);
  if (sidecars.length === 0) problems.push('no sidecar has --csi-address');
  for (const c of sidecars) {
    const address = parseEndpoint(flag(c.args, '--csi-address')!);
    const m = c.volumeMounts.find((vm) => vm['mountPath'] === dirname(address));
    if (!m) problems.push(`${c.name}: nothing mounted at ${dirname(address)}, the directory of its --csi-address ${address}`);
    else if (m['name'] !== volumeName) problems.push(`${c.name}: ${dirname(address)} is volume ${String(m['name'])}, not the driver's socket volume ${volumeName}`);
    if (basename(address) !== basename(socket)) problems.push(`${c.name}: --csi-address ${address} names another socket than the driver's ${socket}`);
    const registration = flag(c.args, '--kubelet-registration-path');
    if (registration !== undefined && hostDir && registration !== join(hostDir, basename(socket))) {
      problems.push(`${c.name}: --kubelet-registration-path ${registration} is not the socket's host path ${join(hostDir, basename(socket))}`);
    }
  }
  return problems;
}

function checkDriverContainer(ds: Obj): string[] {
  const problems: string[] = [];
  const spec = podSpecOf(ds);
  const c = driverContainer(spec);
  if (!c) return ['no driver container'];
  if (c.securityContext['privileged'] !== true) problems.push('driver container is not privileged');
  const hostMount = (hostPath: string): Obj | undefined => c.volumeMounts.find((m) => hostPathOf(volumeByName(spec, String(m['name']))) === hostPath);

  const kubelet = hostMount(KUBELET_DIR);
  if (!kubelet) problems.push(`driver container does not mount the host's ${KUBELET_DIR}`);
  else {
    if (kubelet['mountPath'] !== KUBELET_DIR) problems.push(`${KUBELET_DIR} is mounted at ${String(kubelet['mountPath'])}, not at the same path (kubelet passes host paths)`);
    if (kubelet['mountPropagation'] !== 'Bidirectional') problems.push(`${KUBELET_DIR} is not mounted with Bidirectional propagation`);
  }
  if (!hostMount('/dev')) problems.push("driver container does not mount the host's /dev (loop devices)");
  // The node service refuses paths outside its --kubelet-dir: each must be a host path mounted where kubelet sees it.
  const kubeletDirs = c.args.flatMap((a, i) => (a.startsWith('--kubelet-dir=') ? [a.slice('--kubelet-dir='.length)] : a === '--kubelet-dir' ? [c.args[i + 1] ?? ''] : []));
  for (const dir of kubeletDirs.length > 0 ? kubeletDirs : [DEFAULT_KUBELET_DIR]) {
    const m = hostMount(dir);
    if (!m || m['mountPath'] !== dir) problems.push(`driver --kubelet-dir ${dir} is not the host's ${dir} mounted at the same path: every staging and target path would be refused`);
  }

  const localDir = flag(c.args, '--local-dir');
  if (!localDir) problems.push('driver container has no --local-dir');
  else {
    const pool = c.volumeMounts.find((m) => localDir === m['mountPath'] || localDir.startsWith(`${String(m['mountPath'])}/`));
    if (!pool || !hostPathOf(volumeByName(spec, String(pool['name'])))) problems.push(`--local-dir ${localDir} is not on a hostPath volume: the pool would vanish with the container`);
    else if (pool['mountPropagation'] !== 'Bidirectional') problems.push(`--local-dir ${localDir} is not mounted Bidirectional: the pool mount would not outlive the container`);
  }

  const nodeId = flag(c.args, '--node-id');
  if (nodeId !== '$(NODE_NAME)' || envFieldPath(c, 'NODE_NAME') !== 'spec.nodeName') problems.push('driver --node-id is not the node name ($(NODE_NAME) from spec.nodeName)');

  // The livenessProbe of the driver must reach the liveness-probe sidecar's --health-port.
  const probe = containersOf(spec).find((x) => flag(x.args, '--health-port') !== undefined);
  const port = obj(c.livenessProbe['httpGet'])['port'];
  const portNumber = typeof port === 'number' ? port : c.ports.find((p) => p['name'] === port)?.['containerPort'];
  if (!probe) problems.push('no livenessprobe sidecar (--health-port)');
  else if (String(portNumber) !== flag(probe.args, '--health-port')) problems.push(`driver livenessProbe port ${String(port)} is not the livenessprobe's --health-port ${String(flag(probe.args, '--health-port'))}`);
  return problems;
}

/** Node-deployment flags, capacity tracking, no attacher, leader election vs leases, token mounts. */
function checkNodeDeployment(docs: Doc[], ds: Obj): string[] {
  const problems: string[] = [];
  const spec = podSpecOf(ds);
  const containers = containersOf(spec);
  const byImage = (part: string): Container | undefined => containers.find((c) => c.image.includes(`/${part}:`));
  const csiDriver = docs.find((d) => kindOf(d.obj) === 'CSIDriver')?.obj;

  const provisioner = byImage('csi-provisioner');
  if (!provisioner) problems.push('no csi-provisioner');
  else {
    for (const f of ['--node-deployment', '--strict-topology']) if (!flagOn(provisioner.args, f)) problems.push(`csi-provisioner lacks ${f}`);
    if (flag(provisioner.args, '--immediate-topology') !== 'false') problems.push('csi-provisioner lacks --immediate-topology=false');
    if (envFieldPath(provisioner, 'NODE_NAME') !== 'spec.nodeName') problems.push('csi-provisioner has no NODE_NAME from spec.nodeName');
    if (flagOn(provisioner.args, '--enable-capacity')) {
      if (obj(csiDriver?.['spec'])['storageCapacity'] !== true) problems.push('capacity is published but the CSIDriver does not set storageCapacity: true');
      if (envFieldPath(provisioner, 'NAMESPACE') !== 'metadata.namespace' || envFieldPath(provisioner, 'POD_NAME') !== 'metadata.name') {
        problems.push('csi-provisioner --enable-capacity needs NAMESPACE and POD_NAME from the downward API');
      }
    }
  }
  const snapshotter = byImage('csi-snapshotter');
  if (!snapshotter) problems.push('no csi-snapshotter');
  else {
    if (!flagOn(snapshotter.args, '--node-deployment')) problems.push('csi-snapshotter lacks --node-deployment');
    if (envFieldPath(snapshotter, 'NODE_NAME') !== 'spec.nodeName') problems.push('csi-snapshotter has no NODE_NAME from spec.nodeName');
  }
  if (byImage('csi-attacher')) problems.push('an external-attacher is deployed, but nothing is ever attached');
  if (obj(csiDriver?.['spec'])['attachRequired'] !== false) problems.push('the CSIDriver does not say attachRequired: false');

  // Every sidecar runs on every node for that node only: none may elect a leader, and no role
  // needs leases. If one ever does, the RBAC must follow.
  const electing = containers.filter((c) => flagOn(c.args, '--leader-election'));
  const leaseRules = docs
    .filter((d) => kindOf(d.obj) === 'Role' || kindOf(d.obj) === 'ClusterRole')
    .filter((d) => arr(d.obj['rules']).some((r) => arr(obj(r)['resources']).includes('leases')));
  if (electing.length > 0 && leaseRules.length === 0) problems.push(`${electing.map((c) => c.name).join(', ')} elect a leader but no role grants leases`);
  if (electing.length === 0 && leaseRules.length > 0) problems.push(`${leaseRules.map((d) => String(nameOf(d.obj))).join(', ')} grant leases that no sidecar uses`);

  // The ServiceAccount token goes only where the API is used.
  if (spec['automountServiceAccountToken'] !== false) problems.push('the pod mounts the ServiceAccount token into every container');
  for (const c of containers) {
    const mounted = c.volumeMounts.some((m) => m['mountPath'] === SA_TOKEN_PATH);
    if (API_CLIENTS.has(c.name) && !mounted) problems.push(`${c.name} talks to the API server but has no token at ${SA_TOKEN_PATH}`);
    if (!API_CLIENTS.has(c.name) && mounted) problems.push(`${c.name} does not need API credentials but has them`);
  }

  for (const c of containers) {
    if (!/:[\w][\w.-]*$/.test(c.image) || c.image.endsWith(':latest')) problems.push(`${c.name}: image ${c.image} is not pinned to a version tag`);
    if (c.name !== driverContainer(spec)?.name && !c.image.startsWith('registry.k8s.io/sig-storage/')) problems.push(`${c.name}: sidecar image ${c.image} is not from registry.k8s.io/sig-storage`);
  }
  return problems;
}

function checkStorageClasses(docs: Doc[]): string[] {
  const problems: string[] = [];
  for (const d of docs.filter((x) => kindOf(x.obj) === 'StorageClass')) {
    const name = String(nameOf(d.obj));
    if (d.obj['volumeBindingMode'] !== 'WaitForFirstConsumer') problems.push(`${name}: a node-local class must use WaitForFirstConsumer`);
    const params = obj(d.obj['parameters']);
    // The local backend rejects every parameter that is not a csi.storage.k8s.io/* key.
    for (const key of Object.keys(params)) if (!key.startsWith('csi.storage.k8s.io/')) problems.push(`${name}: parameter ${key} is not accepted by the local backend`);
    const fstype = params['csi.storage.k8s.io/fstype'];
    if (fstype !== undefined && !['btrfs', 'ext4', 'xfs'].includes(String(fstype))) problems.push(`${name}: fstype ${String(fstype)} is not btrfs, ext4 or xfs`);
  }
  return problems;
}

/**
 * Every YAML file is reachable: it is a kustomization, or the kustomization in its own directory
 * lists it (as a resource or a patch). Every path a kustomization names exists.
 */
function checkKustomizations(files: Map<string, Obj[]>): string[] {
  const problems: string[] = [];
  const referenced = new Set<string>();
  const directories = new Set<string>();
  for (const [file, docs] of files) {
    directories.add(dirname(file));
    if (!isKustomizationFile(file)) continue;
    const k = docs[0] ?? {};
    const dir = dirname(file);
    const refs: string[] = [
      ...arr(k['resources']).map(String),
      ...arr(k['components']).map(String),
      ...arr(k['patchesStrategicMerge']).map(String),
      ...arr(k['patches']).map((p) => str(obj(p)['path'])).filter((p): p is string => p !== undefined),
    ];
    for (const ref of refs) {
      const target = join(dir, ref);
      const full = join(DEPLOY, target);
      if (files.has(target)) referenced.add(target);
      else if (!(existsSync(full) && statSync(full).isDirectory() && existsSync(join(full, 'kustomization.yaml')))) {
        problems.push(`${file}: ${ref} is neither a file here nor a directory with a kustomization.yaml`);
      }
    }
  }
  for (const file of files.keys()) {
    if (isKustomizationFile(file) || referenced.has(file)) continue;
    const k = [...files.keys()].find((f) => isKustomizationFile(f) && dirname(f) === dirname(file));
    problems.push(k ? `${file} is not listed in ${k}` : `${file} is in a directory without a kustomization.yaml`);
  }
  return problems;
}

// ------------------------------------------------------------------ the real manifests

const files = new Map([...loadTree(BASE), ...(existsSync(OVERLAYS) ? loadTree(OVERLAYS) : [])]);
const rootKustomization = 'kubernetes/kustomization.yaml';
/** What `kubectl apply -k deploy/kubernetes` creates: the files its kustomization lists. */
const baseFiles = new Set(arr(files.get(rootKustomization)?.[0]?.['resources']).map((r) => join('kubernetes', String(r))));
const base = objectsOf(files, (f) => baseFiles.has(f));
const everything = objectsOf(files);
const component = 'kubernetes/components/single-node-resizer';

/** The DaemonSet of the single-node overlay: the base one with the component's containers merged in by name. */
function singleNodeDaemonSet(): Obj {
  const ds = structuredClone(daemonSets(base)[0]!);
  const patch = (files.get(`${component}/daemonset-patch.yaml`) ?? [])[0] ?? {};
  const spec = podSpecOf(ds);
  const containers = arr(spec['containers']).map(obj);
  for (const c of arr(podSpecOf(patch)['containers']).map(obj)) {
    const i = containers.findIndex((x) => x['name'] === c['name']);
    if (i >= 0) containers[i] = { ...containers[i], ...c };
    else containers.push(c);
  }
  spec['containers'] = containers;
  return ds;
}

const clone = <T>(v: T): T => structuredClone(v);
const onlyDaemonSet = (docs: Doc[]): Obj => daemonSets(docs)[0]!;

describe('deploy/kubernetes manifests', () => {
  it('every YAML document parses and has apiVersion, kind and metadata.name', () => {
    assert.ok(files.size >= 10, `expected the deploy tree, found ${files.size} YAML files`);
    assert.deepEqual(checkIdentity(everything), []);
    assert.match(checkIdentity([{ file: 'x.yaml', obj: { apiVersion: 'v1', kind: 'ConfigMap', metadata: {} } }]).join('\n'), /no metadata\.name/);
  });

  it('the kustomizations list every file, and the root one every top-level manifest', () => {
    assert.deepEqual(checkKustomizations(files), []);
    const topLevel = [...files.keys()].filter((f) => dirname(f) === 'kubernetes' && !isKustomizationFile(f));
    assert.deepEqual([...baseFiles].sort(), topLevel.sort());

    const dropped = clone(files);
    const k = dropped.get(rootKustomization)![0]!;
    k['resources'] = arr(k['resources']).filter((r) => r !== 'csidriver.yaml');
    assert.match(checkKustomizations(dropped).join('\n'), /kubernetes\/csidriver\.yaml is not listed in kubernetes\/kustomization\.yaml/);
    const dangling = clone(files);
    dangling.get(rootKustomization)![0]!['resources'] = [...arr(k['resources']), 'gone.yaml'];
    assert.match(checkKustomizations(dangling).join('\n'), /gone\.yaml is neither/);
  });

  it('the driver name is the same everywhere, and is the CLI default for the local backend', () => {
    assert.equal(DRIVER_NAMES.local, DRIVER_NAME, 'the name `stowage driver --backend local` registers by default');
    assert.deepEqual(checkDriverName(base, DRIVER_NAME), []);
    assert.deepEqual(checkDriverName(everything.filter((d) => kindOf(d.obj) !== 'DaemonSet' || baseFiles.has(d.file)), DRIVER_NAME), []);

    const renamed = clone(base);
    renamed.find((d) => kindOf(d.obj) === 'StorageClass')!.obj['provisioner'] = 'hostpath.csi.k8s.io';
    assert.match(checkDriverName(renamed, DRIVER_NAME).join('\n'), /has provisioner hostpath\.csi\.k8s\.io/);
    const snap = clone(base);
    snap.find((d) => kindOf(d.obj) === 'VolumeSnapshotClass')!.obj['driver'] = 'other.csi';
    assert.match(checkDriverName(snap, DRIVER_NAME).join('\n'), /VolumeSnapshotClass .* has driver other\.csi/);
  });

  it('the DaemonSet ServiceAccount exists and is bound; every binding points at a defined role', () => {
    assert.deepEqual(checkServiceAccounts(base), []);
    assert.deepEqual(checkServiceAccounts(everything.filter((d) => kindOf(d.obj) !== 'DaemonSet' || baseFiles.has(d.file))), []);

    const renamed = clone(base);
    podSpecOf(onlyDaemonSet(renamed))['serviceAccountName'] = 'stowage-controller';
    assert.match(checkServiceAccounts(renamed).join('\n'), /uses ServiceAccount stowage-system\/stowage-controller, which is not defined/);
    const unbound = clone(base).filter((d) => kindOf(d.obj) !== 'RoleBinding' && kindOf(d.obj) !== 'ClusterRoleBinding');
    assert.match(checkServiceAccounts(unbound).join('\n'), /is not bound to any role/);
  });

  it('every sidecar dials the socket the driver serves, on the same volume', () => {
    const ds = onlyDaemonSet(base);
    assert.deepEqual(checkSockets(ds), []);
    assert.deepEqual(checkSockets(singleNodeDaemonSet()), []);
    assert.ok(containersOf(podSpecOf(ds)).filter((c) => flag(c.args, '--csi-address')).length >= 4);

    const moved = clone(ds);
    const snapshotter = arr(podSpecOf(moved)['containers']).map(obj).find((c) => c['name'] === 'csi-snapshotter')!;
    snapshotter['args'] = arr(snapshotter['args']).map((a) => (String(a).startsWith('--csi-address') ? '--csi-address=/run/csi/socket' : a));
    assert.match(checkSockets(moved).join('\n'), /csi-snapshotter: nothing mounted at \/run\/csi/);
    const registrar = clone(ds);
    const reg = arr(podSpecOf(registrar)['containers']).map(obj).find((c) => c['name'] === 'node-driver-registrar')!;
    reg['args'] = arr(reg['args']).map((a) => (String(a).startsWith('--kubelet-registration-path') ? '--kubelet-registration-path=/var/lib/kubelet/plugins/other/csi.sock' : a));
    assert.match(checkSockets(registrar).join('\n'), /is not the socket's host path/);
  });

  it('the driver container is privileged, with Bidirectional propagation on the kubelet dir and the pool, and --kubelet-dir is that dir', () => {
    const ds = onlyDaemonSet(base);
    assert.deepEqual(checkDriverContainer(ds), []);

    const unprivileged = clone(ds);
    obj(arr(podSpecOf(unprivileged)['containers']).map(obj).find((c) => c['name'] === 'stowage')!['securityContext'])['privileged'] = false;
    assert.match(checkDriverContainer(unprivileged).join('\n'), /not privileged/);
    const private_ = clone(ds);
    for (const m of arr(arr(podSpecOf(private_)['containers']).map(obj).find((c) => c['name'] === 'stowage')!['volumeMounts']).map(obj)) delete m['mountPropagation'];
    const why = checkDriverContainer(private_).join('\n');
    assert.match(why, /\/var\/lib\/kubelet is not mounted with Bidirectional/);
    assert.match(why, /--local-dir .* is not mounted Bidirectional/);
    // A --kubelet-dir the container does not see at the same path: the node service would refuse every path.
    const elsewhere = clone(ds);
    const driver = arr(podSpecOf(elsewhere)['containers']).map(obj).find((c) => c['name'] === 'stowage')!;
    driver['args'] = arr(driver['args']).map((a) => (String(a).startsWith('--kubelet-dir') ? '--kubelet-dir=/var/lib/k0s/kubelet' : a));
    assert.match(checkDriverContainer(elsewhere).join('\n'), /--kubelet-dir \/var\/lib\/k0s\/kubelet is not the host's/);
  });

  it('the controller sidecars run per node: provisioner and snapshotter in node-deployment mode, no attacher, no leader election', () => {
    assert.deepEqual(checkNodeDeployment(base, onlyDaemonSet(base)), []);
    assert.deepEqual(checkNodeDeployment(everything, singleNodeDaemonSet()), []);

    const central = clone(base);
    const prov = arr(podSpecOf(onlyDaemonSet(central))['containers']).map(obj).find((c) => c['name'] === 'csi-provisioner')!;
    prov['args'] = [...arr(prov['args']).filter((a) => !String(a).startsWith('--node-deployment')), '--leader-election'];
    const why = checkNodeDeployment(central, onlyDaemonSet(central)).join('\n');
    assert.match(why, /csi-provisioner lacks --node-deployment/);
    assert.match(why, /elect a leader but no role grants leases/);
    const leaky = clone(base);
    podSpecOf(onlyDaemonSet(leaky))['automountServiceAccountToken'] = true;
    assert.match(checkNodeDeployment(leaky, onlyDaemonSet(leaky)).join('\n'), /mounts the ServiceAccount token into every container/);
  });

  it('every StorageClass waits for the first consumer and passes only parameters the local backend takes', () => {
    assert.deepEqual(checkStorageClasses(everything), []);
    const immediate = clone(base);
    const sc = immediate.find((d) => kindOf(d.obj) === 'StorageClass')!.obj;
    sc['volumeBindingMode'] = 'Immediate';
    obj(sc['parameters'])['pool'] = 'fast';
    const why = checkStorageClasses(immediate).join('\n');
    assert.match(why, /must use WaitForFirstConsumer/);
    assert.match(why, /parameter pool is not accepted/);
  });

  it('the single-node resizer component patches the DaemonSet and StorageClasses it means to', () => {
    const k = (files.get(`${component}/kustomization.yaml`) ?? [])[0] ?? {};
    assert.equal(k['kind'], 'Component');
    const scPatch = arr(k['patches']).map(obj).find((p) => obj(p['target'])['kind'] === 'StorageClass');
    assert.ok(scPatch, 'the component turns on allowVolumeExpansion');
    const selector = str(obj(scPatch['target'])['labelSelector']) ?? '';
    const [key, value] = selector.split('=');
    for (const d of base.filter((x) => kindOf(x.obj) === 'StorageClass')) {
      assert.equal(obj(obj(d.obj['metadata'])['labels'])[key!], value, `${String(nameOf(d.obj))} is matched by the component's StorageClass patch`);
    }
    const patch = (files.get(`${component}/daemonset-patch.yaml`) ?? [])[0] ?? {};
    const ds = onlyDaemonSet(base);
    assert.equal(nameOf(patch), nameOf(ds));
    assert.equal(namespaceOf(patch), namespaceOf(ds));
    assert.ok(containersOf(podSpecOf(singleNodeDaemonSet())).some((c) => c.name === 'csi-resizer'));
    assert.ok(!containersOf(podSpecOf(ds)).some((c) => c.image.includes('/csi-resizer:')), 'the base deployment runs no resizer');
    const overlay = (files.get('overlays/single-node/kustomization.yaml') ?? [])[0] ?? {};
    assert.deepEqual(arr(overlay['components']).map((c) => resolve('/deploy/overlays/single-node', String(c))), [resolve('/deploy', component)]);
  });
});
