// The Kubernetes manifests of the Ceph backends (deploy/ceph/{rbd,cephfs}), checked the way a
// cluster would meet them: the real kubectl renders every kustomization under deploy/ (bases,
// examples, overlays), and each rendered object is checked for what a user would trip over —
// an unknown kind, a dangling name, a sidecar dialling another socket than the driver's, a flag the
// pinned sidecar version does not accept, RBAC that is missing a rule or grants one nobody uses, a
// CSIDriver or sidecar set that disagrees with what the driver itself advertises (asked over CSI,
// by starting the driver with the manifest's own arguments), and objects our API server refuses.
//
// Each check returns a list of problems; tests run it on the rendered manifests (none expected)
// and on deliberately broken copies (the problem expected), so no check can pass by accepting all.
import assert from 'node:assert/strict';
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments } from 'yaml';
import { CsiClient } from '../../src/csi/client.js';
import { parseEndpoint } from '../../src/csi/endpoint.js';
import { type ApiServer, startApiServer } from '../../src/control/server/api-server.js';
import { open, type Store } from '../../src/control/store/store.js';
import { DRIVER_NAMES } from '../../src/driver/defaults.js';

const KUBECTL = '/usr/bin/kubectl';
const KUBELET_DIR = '/var/lib/kubelet';
const SA_TOKEN_PATH = '/var/run/secrets/kubernetes.io/serviceaccount';
const CEPH_BACKENDS = ['rbd', 'cephfs'] as const;
type CephBackend = (typeof CEPH_BACKENDS)[number];

// ------------------------------------------------------------------ the pinned sidecars

interface Sidecar {
  /** The image tag every manifest pins. */
  version: string;
  /** Flags the pinned version accepts (without dashes), from its cmd/*.go and README. */
  flags: string[];
  /** Accepted by the pinned version but deprecated: the Ceph bases must not use them. */
  deprecated: string[];
  /** Talks to the API server (gets the projected token; elects a leader in the controller). */
  apiClient: boolean;
}

/** klog / component-base logging flags every current sidecar takes. */
const LOG_FLAGS = ['v', 'vmodule', 'logging-format'];
/** Leader election, as csi-lib-utils/leaderelection wires it into the controller sidecars. */
const LEADER_FLAGS = ['leader-election', 'leader-election-namespace', 'leader-election-lease-duration', 'leader-election-renew-deadline', 'leader-election-retry-period'];
const CLIENT_FLAGS = ['kubeconfig', 'kube-api-qps', 'kube-api-burst', 'version', 'feature-gates', 'http-endpoint', 'metrics-path', 'timeout'];

/**
 * registry.k8s.io/sig-storage/<name>:<version> → what that version accepts. Written from the flag
 * definitions in each sidecar's cmd/<name>/main.go and its README (the sources at hand were of the
 * pinned release line or somewhat older; the pinned releases' CHANGELOGs name no removed flag, and
 * flags removed earlier — --enable-leader-election, --leader-election-type, --connection-timeout of
 * the provisioner — are left out). An allow-list, not the full list: before adding a flag or
 * bumping a version, look the flag up in that version's source.
 */
const SIDECARS: Record<string, Sidecar> = {
  'csi-provisioner': {
    version: 'v6.4.0',
    apiClient: true,
    deprecated: ['metrics-address'],
    flags: [
      'csi-address', ...LOG_FLAGS, ...LEADER_FLAGS, ...CLIENT_FLAGS, 'master', 'metrics-address', 'enable-pprof',
      'kube-api-capacity-qps', 'kube-api-capacity-burst', 'volume-name-prefix', 'volume-name-uuid-length', 'retry-interval-start', 'retry-interval-max', 'worker-threads',
      'cloning-protection-threads', 'default-fstype', 'extra-create-metadata', 'strict-topology', 'immediate-topology',
      'enable-capacity', 'capacity-ownerref-level', 'capacity-threads', 'capacity-poll-interval', 'capacity-for-immediate-binding',
      'node-deployment', 'node-deployment-immediate-binding', 'node-deployment-base-delay', 'node-deployment-max-delay',
      'controller-publish-readonly', 'automaxprocs',
    ],
  },
  'csi-resizer': {
    version: 'v2.3.0',
    apiClient: true,
    deprecated: ['metrics-address'],
    flags: [
      'csi-address', ...LOG_FLAGS, ...LEADER_FLAGS, ...CLIENT_FLAGS, 'master', 'metrics-address',
      'resync-period', 'workers', 'extra-modify-metadata', 'retry-interval-start', 'retry-interval-max', 'handle-volume-inuse-error', 'automaxprocs',
    ],
  },
  'csi-snapshotter': {
    version: 'v8.7.0',
    apiClient: true,
    deprecated: ['metrics-address'],
    flags: [
      'csi-address', ...LOG_FLAGS, ...LEADER_FLAGS, ...CLIENT_FLAGS, 'metrics-address',
      'resync-period', 'snapshot-name-prefix', 'snapshot-name-uuid-length', 'groupsnapshot-name-prefix', 'groupsnapshot-name-uuid-length',
      'retry-interval-start', 'retry-interval-max', 'worker-threads', 'extra-create-metadata', 'node-deployment',
    ],
  },
  'csi-node-driver-registrar': {
    version: 'v2.17.0',
    apiClient: false,
    deprecated: ['connection-timeout', 'health-port'],
    flags: ['csi-address', 'v', 'vmodule', 'timeout', 'plugin-registration-path', 'kubelet-registration-path', 'health-port', 'http-endpoint', 'connection-timeout', 'version', 'mode', 'enable-pprof'],
  },
  livenessprobe: {
    version: 'v2.20.0',
    apiClient: false,
    deprecated: ['health-port', 'metrics-address'],
    flags: ['csi-address', ...LOG_FLAGS, 'probe-timeout', 'health-port', 'metrics-address', 'http-endpoint', 'metrics-path'],
  },
};
const SIDECAR_REGISTRY = 'registry.k8s.io/sig-storage/';

// ------------------------------------------------------------------ loading and rendering

function findRepoRoot(): string {
  for (let dir = dirname(fileURLToPath(import.meta.url)); dir !== dirname(dir); dir = dirname(dir)) {
    const pkg = join(dir, 'package.json');
    if (existsSync(pkg) && (JSON.parse(readFileSync(pkg, 'utf8')) as { name?: string }).name === 'stowage') return dir;
  }
  throw new Error('cannot find the repository root (package.json named stowage)');
}

const ROOT = findRepoRoot();
const DEPLOY = join(ROOT, 'deploy');

type Obj = Record<string, unknown>;
const obj = (v: unknown): Obj => (v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Obj) : {});
const arr = (v: unknown): unknown[] => (Array.isArray(v) ? v : []);
const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);
const kindOf = (o: Obj): string => str(o['kind']) ?? '';
const nameOf = (o: Obj): string => str(obj(o['metadata'])['name']) ?? '';
const namespaceOf = (o: Obj): string | undefined => str(obj(o['metadata'])['namespace']);
const idOf = (o: Obj): string => `${kindOf(o)}/${namespaceOf(o) ? `${namespaceOf(o)}/` : ''}${nameOf(o)}`;
const clone = <T>(v: T): T => structuredClone(v);

/** Every directory under deploy/ whose kustomization.yaml is a Kustomization (Components are rendered through the overlays that use them). */
function kustomizationDirs(dir = DEPLOY): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir).sort()) {
    const full = join(dir, name);
    if (statSync(full).isDirectory()) out.push(...kustomizationDirs(full));
    else if (name === 'kustomization.yaml' && /^kind:\s*Kustomization\s*$/m.test(readFileSync(full, 'utf8'))) out.push(dir);
  }
  return out;
}

function parseDocs(text: string, source: string): Obj[] {
  return parseAllDocuments(text).flatMap((doc) => {
    if (doc.errors.length > 0) throw new Error(`${source}: ${doc.errors[0]!.message}`);
    const v: unknown = doc.toJS();
    return v === null || v === undefined ? [] : [obj(v)];
  });
}

/** `kubectl kustomize <dir>` with the real kubectl: the objects `kubectl apply -k <dir>` would send. */
function render(dir: string): Obj[] {
  const out = execFileSync(KUBECTL, ['kustomize', dir], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 60_000 });
  return parseDocs(out, `kubectl kustomize ${relative(ROOT, dir)}`);
}

// ------------------------------------------------------------------ containers and flags

interface Container {
  name: string;
  image: string;
  args: string[];
  raw: Obj;
}

const podSpecOf = (workload: Obj): Obj => obj(obj(obj(workload['spec'])['template'])['spec']);
const containersOf = (workload: Obj): Container[] =>
  arr(podSpecOf(workload)['containers']).map((c) => ({ name: str(obj(c)['name']) ?? '', image: str(obj(c)['image']) ?? '', args: arr(obj(c)['args']).map(String), raw: obj(c) }));
const mountsOf = (c: Container): Obj[] => arr(c.raw['volumeMounts']).map(obj);
const volumeOf = (workload: Obj, name: string): Obj | undefined => arr(podSpecOf(workload)['volumes']).map(obj).find((v) => v['name'] === name);
const hostPathOf = (v: Obj | undefined): string | undefined => str(obj(v?.['hostPath'])['path']);
const workloads = (objs: Obj[]): Obj[] => objs.filter((o) => kindOf(o) === 'Deployment' || kindOf(o) === 'DaemonSet');

/** Every `--name[=value]` of an argument list, in order; `--name value` pairs are not used in our manifests and count as two flags. */
function flagsOf(args: string[]): { name: string; value: string | undefined }[] {
  return args.flatMap((a) => {
    const m = /^--?([^=]+)(?:=(.*))?$/.exec(a);
    return m ? [{ name: m[1]!, value: m[2] }] : [];
  });
}
const flag = (args: string[], name: string): string | undefined => {
  const f = flagsOf(args).find((x) => x.name === name);
  return f ? (f.value ?? 'true') : undefined;
};
const flagOn = (args: string[], name: string): boolean => {
  const v = flag(args, name);
  return v !== undefined && v !== 'false';
};

/** The driver container: its arguments start with the `driver` command. */
const driverOf = (workload: Obj): Container | undefined => containersOf(workload).find((c) => c.args[0] === 'driver');
/** A sidecar's name in SIDECARS, from its image. */
const sidecarOf = (c: Container): string | undefined => (c.image.startsWith(SIDECAR_REGISTRY) ? c.image.slice(SIDECAR_REGISTRY.length).split(':')[0] : undefined);

// ------------------------------------------------------------------ the checks

/** apiVersion → the kinds a deploy/ kustomization may render, and whether each is namespaced. */
const KNOWN_KINDS: Record<string, Record<string, boolean>> = {
  v1: { Namespace: false, ServiceAccount: true, ConfigMap: true, Secret: true, PersistentVolumeClaim: true, Pod: true },
  'apps/v1': { Deployment: true, DaemonSet: true },
  'rbac.authorization.k8s.io/v1': { ClusterRole: false, ClusterRoleBinding: false, Role: true, RoleBinding: true },
  'storage.k8s.io/v1': { CSIDriver: false, StorageClass: false },
  'snapshot.storage.k8s.io/v1': { VolumeSnapshotClass: false },
};
/** Kinds an examples kustomization may leave without a namespace (they go to the user's current one). */
const USER_NAMESPACE_KINDS = new Set(['PersistentVolumeClaim', 'Pod']);

function checkKinds(objs: Obj[]): string[] {
  const problems: string[] = [];
  const seen = new Set<string>();
  for (const o of objs) {
    const api = str(o['apiVersion']) ?? '';
    const namespaced = KNOWN_KINDS[api]?.[kindOf(o)];
    if (namespaced === undefined) problems.push(`${idOf(o)}: ${api} ${kindOf(o)} is not a kind these manifests should contain`);
    if (!nameOf(o)) problems.push(`${api} ${kindOf(o)}: no metadata.name`);
    if (namespaced === false && namespaceOf(o) !== undefined) problems.push(`${idOf(o)}: cluster-scoped, but has a namespace`);
    if (namespaced === true && namespaceOf(o) === undefined && !USER_NAMESPACE_KINDS.has(kindOf(o))) problems.push(`${idOf(o)}: namespaced, but has no namespace`);
    if (seen.has(idOf(o))) problems.push(`${idOf(o)}: rendered twice`);
    seen.add(idOf(o));
  }
  return problems;
}

/** Names that point at other objects point at ones that exist (in the same rendering, or in `also`). */
function checkReferences(objs: Obj[], also: Obj[] = []): string[] {
  const problems: string[] = [];
  const all = [...objs, ...also];
  const has = (kind: string, name: string, ns?: string) => all.some((o) => kindOf(o) === kind && nameOf(o) === name && namespaceOf(o) === ns);
  const namespaces = new Set(all.filter((o) => kindOf(o) === 'Namespace').map(nameOf));
  for (const o of objs) {
    const ns = namespaceOf(o);
    if (ns !== undefined && !namespaces.has(ns)) problems.push(`${idOf(o)}: namespace ${ns} is not created by these manifests`);
  }
  for (const w of workloads(objs)) {
    const ns = namespaceOf(w);
    const spec = podSpecOf(w);
    const sa = str(spec['serviceAccountName']) ?? 'default';
    if (!has('ServiceAccount', sa, ns)) problems.push(`${idOf(w)}: ServiceAccount ${ns}/${sa} is not defined`);
    for (const v of arr(spec['volumes']).map(obj)) {
      const cm = str(obj(v['configMap'])['name']);
      if (cm && !has('ConfigMap', cm, ns)) problems.push(`${idOf(w)}: volume ${String(v['name'])} names ConfigMap ${ns}/${cm}, which is not defined`);
    }
    const volumes = new Set(arr(spec['volumes']).map((v) => str(obj(v)['name'])));
    for (const c of containersOf(w)) for (const m of mountsOf(c)) if (!volumes.has(str(m['name']))) problems.push(`${idOf(w)} ${c.name}: mounts undefined volume ${String(m['name'])}`);
  }
  for (const b of objs.filter((o) => kindOf(o) === 'RoleBinding' || kindOf(o) === 'ClusterRoleBinding')) {
    const ref = obj(b['roleRef']);
    const refKind = str(ref['kind']) ?? '';
    if (!has(refKind, str(ref['name']) ?? '', refKind === 'Role' ? namespaceOf(b) : undefined)) problems.push(`${idOf(b)}: roleRef ${refKind} ${String(ref['name'])} is not defined`);
    for (const s of arr(b['subjects']).map(obj)) {
      if (s['kind'] === 'ServiceAccount' && !has('ServiceAccount', str(s['name']) ?? '', str(s['namespace']))) problems.push(`${idOf(b)}: subject ServiceAccount ${String(s['namespace'])}/${String(s['name'])} is not defined`);
    }
  }
  // A class's secrets exist where the class says.
  for (const o of objs.filter((x) => kindOf(x) === 'StorageClass' || kindOf(x) === 'VolumeSnapshotClass')) {
    const params = obj(o['parameters']);
    for (const key of Object.keys(params).filter((k) => k.endsWith('-secret-name'))) {
      const name = String(params[key]);
      const ns = str(params[key.replace(/-name$/, '-namespace')]);
      if (!has('Secret', name, ns)) problems.push(`${idOf(o)}: ${key} names Secret ${ns}/${name}, which is not defined`);
    }
  }
  return problems;
}

/** One driver name everywhere: CSIDriver, GetPluginInfo (via --driver-name or the backend default), registrar path, classes. */
function checkDriverName(objs: Obj[], driverName: string): string[] {
  const problems: string[] = [];
  const drivers = objs.filter((o) => kindOf(o) === 'CSIDriver');
  if (drivers.length !== 1 || nameOf(drivers[0]!) !== driverName) problems.push(`expected one CSIDriver ${driverName}, found ${drivers.map(nameOf).join(', ') || 'none'}`);
  for (const w of workloads(objs)) {
    const d = driverOf(w);
    if (!d) {
      problems.push(`${idOf(w)}: no driver container`);
      continue;
    }
    const backend = flag(d.args, 'backend') ?? 'local';
    const served = flag(d.args, 'driver-name') ?? DRIVER_NAMES[backend as keyof typeof DRIVER_NAMES];
    if (served !== driverName) problems.push(`${idOf(w)}: the driver registers as ${String(served)}, not ${driverName}`);
    for (const c of containersOf(w)) {
      const reg = flag(c.args, 'kubelet-registration-path');
      if (reg !== undefined && !reg.split('/').includes(driverName)) problems.push(`${idOf(w)} ${c.name}: --kubelet-registration-path ${reg} is not in the ${driverName} plugin directory`);
    }
  }
  for (const o of objs) {
    if (kindOf(o) === 'StorageClass' && o['provisioner'] !== driverName) problems.push(`${idOf(o)}: provisioner ${String(o['provisioner'])}, not ${driverName}`);
    if (kindOf(o) === 'VolumeSnapshotClass' && o['driver'] !== driverName) problems.push(`${idOf(o)}: driver ${String(o['driver'])}, not ${driverName}`);
  }
  return problems;
}

/** Every sidecar dials the socket the driver serves, through the same volume. */
function checkSockets(w: Obj): string[] {
  const problems: string[] = [];
  const d = driverOf(w);
  const endpoint = d && flag(d.args, 'endpoint');
  if (!d || !endpoint) return [`${idOf(w)}: no driver container with --endpoint`];
  const socket = parseEndpoint(endpoint);
  const socketMount = mountsOf(d).find((m) => m['mountPath'] === dirname(socket));
  if (!socketMount) return [`${idOf(w)}: the driver mounts nothing at ${dirname(socket)}, the directory of its --endpoint`];
  const volume = String(socketMount['name']);
  const sidecars = containersOf(w).filter((c) => c.name !== d.name);
  if (sidecars.length === 0) problems.push(`${idOf(w)}: no sidecars`);
  for (const c of sidecars) {
    const address = flag(c.args, 'csi-address');
    if (!address) {
      problems.push(`${idOf(w)} ${c.name}: no --csi-address`);
      continue;
    }
    const path = parseEndpoint(address);
    const m = mountsOf(c).find((x) => x['mountPath'] === dirname(path));
    if (!m) problems.push(`${idOf(w)} ${c.name}: nothing mounted at ${dirname(path)}, the directory of its --csi-address`);
    else if (m['name'] !== volume) problems.push(`${idOf(w)} ${c.name}: ${dirname(path)} is volume ${String(m['name'])}, not the driver's socket volume ${volume}`);
    if (path.slice(dirname(path).length) !== socket.slice(dirname(socket).length)) problems.push(`${idOf(w)} ${c.name}: --csi-address ${address} names another socket than the driver's ${socket}`);
    const reg = flag(c.args, 'kubelet-registration-path');
    const hostDir = hostPathOf(volumeOf(w, volume));
    if (reg !== undefined && reg !== join(hostDir ?? '?', socket.slice(dirname(socket).length + 1))) problems.push(`${idOf(w)} ${c.name}: --kubelet-registration-path ${reg} is not the socket's host path`);
  }
  return problems;
}

/** The node plugin: privileged, Bidirectional on the kubelet dir and its state dir, /dev, /sys and /lib/modules from the host. */
function checkNodePlugin(ds: Obj): string[] {
  const problems: string[] = [];
  const d = driverOf(ds);
  if (!d) return [`${idOf(ds)}: no driver container`];
  if (obj(d.raw['securityContext'])['privileged'] !== true) problems.push(`${idOf(ds)}: the driver container is not privileged`);
  const hostMount = (host: string) => mountsOf(d).find((m) => hostPathOf(volumeOf(ds, String(m['name']))) === host);
  const kubelet = hostMount(KUBELET_DIR);
  if (!kubelet) problems.push(`${idOf(ds)}: the driver does not mount the host's ${KUBELET_DIR}`);
  else {
    if (kubelet['mountPath'] !== KUBELET_DIR) problems.push(`${idOf(ds)}: ${KUBELET_DIR} is mounted at ${String(kubelet['mountPath'])}, not at the same path`);
    if (kubelet['mountPropagation'] !== 'Bidirectional') problems.push(`${idOf(ds)}: ${KUBELET_DIR} is not mounted with Bidirectional propagation`);
  }
  for (const dir of ['/dev', '/sys', '/lib/modules']) if (!hostMount(dir)) problems.push(`${idOf(ds)}: the driver does not mount the host's ${dir}`);
  const kubeletDir = flag(d.args, 'kubelet-dir') ?? KUBELET_DIR;
  if (hostMount(kubeletDir)?.['mountPath'] !== kubeletDir) problems.push(`${idOf(ds)}: --kubelet-dir ${kubeletDir} is not the host's ${kubeletDir} mounted at the same path`);
  const stateFlag = flagsOf(d.args).find((f) => /^(rbd|cephfs)-state-dir$/.test(f.name));
  if (!stateFlag?.value) problems.push(`${idOf(ds)}: the driver has no --rbd-state-dir / --cephfs-state-dir`);
  else {
    const m = mountsOf(d).find((x) => x['mountPath'] === stateFlag.value);
    if (!m || !hostPathOf(volumeOf(ds, String(m['name'])))) problems.push(`${idOf(ds)}: --${stateFlag.name} ${stateFlag.value} is not a hostPath mount (staging records would not survive a restart)`);
    else if (m['mountPropagation'] !== 'Bidirectional') problems.push(`${idOf(ds)}: --${stateFlag.name} ${stateFlag.value} is not mounted Bidirectional (the FUSE mounts in it must be the host's)`);
  }
  if (!flagOn(d.args, 'node') || flagOn(d.args, 'controller')) problems.push(`${idOf(ds)}: the node plugin's driver must run with --node only`);
  if (podSpecOf(ds)['automountServiceAccountToken'] !== false) problems.push(`${idOf(ds)}: the node plugin mounts an API token nothing in it uses`);
  return problems;
}

/** The controller: 2 replicas, the driver with --controller only, every API sidecar electing a leader. */
function checkController(dep: Obj): string[] {
  const problems: string[] = [];
  if (obj(dep['spec'])['replicas'] !== 2) problems.push(`${idOf(dep)}: replicas is ${String(obj(dep['spec'])['replicas'])}, not 2`);
  const d = driverOf(dep);
  if (!d || !flagOn(d.args, 'controller') || flagOn(d.args, 'node')) problems.push(`${idOf(dep)}: the controller's driver must run with --controller only`);
  if (podSpecOf(dep)['automountServiceAccountToken'] !== false) problems.push(`${idOf(dep)}: the API token is mounted into every container, the driver included`);
  for (const c of containersOf(dep)) {
    const api = SIDECARS[sidecarOf(c) ?? '']?.apiClient === true;
    if (api && !flagOn(c.args, 'leader-election')) problems.push(`${idOf(dep)} ${c.name}: runs in ${String(obj(dep['spec'])['replicas'])} replicas without --leader-election`);
    const token = mountsOf(c).some((m) => m['mountPath'] === SA_TOKEN_PATH);
    if (api && !token) problems.push(`${idOf(dep)} ${c.name}: talks to the API server but has no token at ${SA_TOKEN_PATH}`);
    if (!api && token) problems.push(`${idOf(dep)} ${c.name}: has API credentials it does not use`);
  }
  return problems;
}

/** Sidecar images pinned to the tested version, and only flags that version accepts. */
function checkSidecarFlags(w: Obj, opts: { refuseDeprecated: boolean }): string[] {
  const problems: string[] = [];
  for (const c of containersOf(w)) {
    if (c.name === driverOf(w)?.name) continue;
    const name = sidecarOf(c);
    const sidecar = SIDECARS[name ?? ''];
    if (!sidecar) {
      problems.push(`${idOf(w)} ${c.name}: image ${c.image} is not one of the pinned sidecars`);
      continue;
    }
    if (c.image !== `${SIDECAR_REGISTRY}${name}:${sidecar.version}`) problems.push(`${idOf(w)} ${c.name}: image ${c.image}, but the flags were checked against ${name}:${sidecar.version}`);
    for (const f of flagsOf(c.args)) {
      if (!sidecar.flags.includes(f.name)) problems.push(`${idOf(w)} ${c.name}: --${f.name} is not a flag of ${name} ${sidecar.version}`);
      else if (opts.refuseDeprecated && sidecar.deprecated.includes(f.name)) problems.push(`${idOf(w)} ${c.name}: --${f.name} is deprecated in ${name} ${sidecar.version}`);
    }
    // csi-provisioner and csi-snapshotter refuse to start with both.
    if (flagOn(c.args, 'node-deployment') && flagOn(c.args, 'leader-election')) problems.push(`${idOf(w)} ${c.name}: --node-deployment and --leader-election together`);
    if (c.args.some((a) => !a.startsWith('-'))) problems.push(`${idOf(w)} ${c.name}: an argument is not a --flag=value: ${c.args.filter((a) => !a.startsWith('-')).join(' ')}`);
  }
  return problems;
}

/** `stowage driver --help`, parsed: the options the driver accepts. */
function driverOptions(): Set<string> {
  const help = execFileSync(process.execPath, [join(ROOT, 'bin', 'stowage.js'), 'driver', '--help'], { encoding: 'utf8' });
  return new Set([...help.matchAll(/^\s+(?:-\w, )?--([a-z][a-z0-9-]*)/gm)].map((m) => m[1]!));
}

function checkDriverFlags(w: Obj, accepted: Set<string>): string[] {
  const d = driverOf(w);
  if (!d) return [`${idOf(w)}: no driver container`];
  return flagsOf(d.args.slice(1))
    .filter((f) => !accepted.has(f.name))
    .map((f) => `${idOf(w)}: the driver does not accept --${f.name}`);
}

// ------------------------------------------------------------------ RBAC

/** One permission: where it applies (the cluster, or a namespace), group, resource, verb. */
const grant = (scope: string, group: string, resource: string, verb: string) => `${scope} ${group || 'core'}/${resource} ${verb}`;
type Rule = [group: string, resources: string[], verbs: string[]];
const R = (group: string, resources: string[], verbs: string[]): Rule => [group, resources, verbs];
const WATCH = ['get', 'list', 'watch'];
const EVENTS = R('', ['events'], ['list', 'watch', 'create', 'update', 'patch']);
const SECRETS_GET = R('', ['secrets'], ['get']);
const LEASES = R('coordination.k8s.io', ['leases'], ['get', 'watch', 'list', 'delete', 'update', 'create']);

/** What each sidecar needs, cluster-wide, for the flags it runs with (the sidecars' documented rules, trimmed to what those flags use). */
function sidecarRules(name: string, args: string[], classSecrets: boolean): Rule[] {
  const secrets = classSecrets ? [SECRETS_GET] : [];
  switch (name) {
    case 'csi-provisioner':
      return [
        R('', ['persistentvolumes'], ['get', 'list', 'watch', 'create', 'patch', 'delete']),
        R('', ['persistentvolumeclaims'], ['get', 'list', 'watch', 'update']),
        R('storage.k8s.io', ['storageclasses', 'volumeattributesclasses'], WATCH),
        R('snapshot.storage.k8s.io', ['volumesnapshots'], ['get', 'list', 'watch', 'update']),
        R('snapshot.storage.k8s.io', ['volumesnapshotcontents'], ['get', 'list']),
        EVENTS,
        ...secrets,
        ...(flagOn(args, 'feature-gates') && /Topology=true/.test(flag(args, 'feature-gates') ?? '') ? [R('storage.k8s.io', ['csinodes'], WATCH), R('', ['nodes'], WATCH)] : []),
      ];
    case 'csi-resizer':
      return [
        R('', ['persistentvolumes'], ['get', 'list', 'watch', 'patch']),
        R('', ['persistentvolumeclaims'], WATCH),
        R('', ['persistentvolumeclaims/status'], ['patch']),
        R('storage.k8s.io', ['volumeattributesclasses'], WATCH),
        EVENTS,
        ...secrets,
        ...(flag(args, 'handle-volume-inuse-error') === 'false' ? [] : [R('', ['pods'], WATCH)]),
      ];
    case 'csi-snapshotter':
      return [
        R('snapshot.storage.k8s.io', ['volumesnapshotclasses'], WATCH),
        R('snapshot.storage.k8s.io', ['volumesnapshotcontents'], ['get', 'list', 'watch', 'update', 'patch']),
        R('snapshot.storage.k8s.io', ['volumesnapshotcontents/status'], ['update', 'patch']),
        R('groupsnapshot.storage.k8s.io', ['volumegroupsnapshotclasses', 'volumegroupsnapshotcontents'], WATCH),
        EVENTS,
        ...secrets,
      ];
    default:
      return [];
  }
}

/** Every permission a ServiceAccount holds through the rendered Roles and ClusterRoles bound to it. */
function grantsOf(objs: Obj[], ns: string, sa: string): Set<string> {
  const out = new Set<string>();
  for (const b of objs.filter((o) => kindOf(o) === 'RoleBinding' || kindOf(o) === 'ClusterRoleBinding')) {
    if (!arr(b['subjects']).map(obj).some((s) => s['kind'] === 'ServiceAccount' && s['name'] === sa && s['namespace'] === ns)) continue;
    const ref = obj(b['roleRef']);
    const scope = kindOf(b) === 'RoleBinding' ? `namespace:${namespaceOf(b)}` : 'cluster';
    const role = objs.find((o) => kindOf(o) === ref['kind'] && nameOf(o) === ref['name'] && (ref['kind'] !== 'Role' || namespaceOf(o) === namespaceOf(b)));
    for (const rule of arr(role?.['rules']).map(obj)) {
      for (const g of arr(rule['apiGroups']).map(String)) for (const r of arr(rule['resources']).map(String)) for (const v of arr(rule['verbs']).map(String)) out.add(grant(scope, g, r, v));
    }
  }
  return out;
}

/** Each workload's ServiceAccount holds exactly what its sidecars need: nothing missing, nothing more. */
function checkRbac(objs: Obj[]): string[] {
  const problems: string[] = [];
  const classSecrets = true; // The Ceph classes always name secrets (ceph-csi's secrets carry the Ceph user).
  for (const w of workloads(objs)) {
    const ns = namespaceOf(w) ?? '';
    const sa = str(podSpecOf(w)['serviceAccountName']) ?? 'default';
    const expected = new Set<string>();
    for (const c of containersOf(w)) {
      const name = sidecarOf(c);
      if (!name) continue;
      for (const [g, rs, vs] of sidecarRules(name, c.args, classSecrets)) for (const r of rs) for (const v of vs) expected.add(grant('cluster', g, r, v));
      if (flagOn(c.args, 'leader-election')) {
        const leNs = flag(c.args, 'leader-election-namespace') ?? ns;
        for (const r of LEASES[1]) for (const v of LEASES[2]) expected.add(grant(`namespace:${leNs}`, LEASES[0], r, v));
      }
    }
    const granted = grantsOf(objs, ns, sa);
    for (const g of expected) if (!granted.has(g)) problems.push(`${idOf(w)}: ServiceAccount ${sa} lacks ${g}`);
    for (const g of granted) if (!expected.has(g)) problems.push(`${idOf(w)}: ServiceAccount ${sa} is granted ${g}, which none of its containers needs`);
  }
  return problems;
}

// ------------------------------------------------------------------ the driver, asked directly

interface Advertised {
  name: string;
  plugin: string[];
  controller: string[];
}

/**
 * Starts the driver container of `w` as the pod would: its own arguments, with every path beneath
 * one of its volume mounts moved into a temp dir (ConfigMap volumes written out from the rendered
 * ConfigMap), the metrics address on loopback, $(VAR) filled in. Returns what it advertises.
 */
async function askDriver(w: Obj, objs: Obj[]): Promise<Advertised> {
  const d = driverOf(w)!;
  const dir = mkdtempSync(join(tmpdir(), 'stowage-deploy-'));
  let child: ChildProcess | undefined;
  let client: CsiClient | undefined;
  const output: string[] = [];
  try {
    const mounts = mountsOf(d).map((m) => ({ path: String(m['mountPath']), name: String(m['name']), local: join(dir, String(m['name'])) }));
    for (const m of mounts) {
      mkdirSync(m.local, { recursive: true });
      const cm = str(obj(volumeOf(w, m.name)?.['configMap'])['name']);
      if (cm) {
        const map = objs.find((o) => kindOf(o) === 'ConfigMap' && nameOf(o) === cm && namespaceOf(o) === namespaceOf(w));
        for (const [file, text] of Object.entries(obj(map?.['data']))) writeFileSync(join(m.local, file), String(text));
      }
    }
    const relocate = (path: string): string => {
      const m = mounts.filter((x) => path === x.path || path.startsWith(`${x.path}/`)).sort((a, b) => b.path.length - a.path.length)[0];
      if (!m) throw new Error(`${idOf(w)}: the driver's path ${path} is on no volume of the pod (it would be lost with the container)`);
      return m.local + path.slice(m.path.length);
    };
    const env: Record<string, string> = { NODE_NAME: 'node-1', POD_NAME: 'pod-1', NAMESPACE: namespaceOf(w) ?? '' };
    const args = d.args.map((a) => {
      let v = a.replace(/\$\((\w+)\)/g, (_, n: string) => env[n] ?? '');
      const m = /^(--[^=]+)=(.*)$/.exec(v);
      if (!m) return v;
      if (m[1] === '--endpoint') v = `${m[1]}=unix://${relocate(parseEndpoint(m[2]!))}`;
      else if (m[1] === '--metrics-address') v = `${m[1]}=127.0.0.1:0`;
      else if (m[2]!.startsWith('/')) v = `${m[1]}=${relocate(m[2]!)}`;
      return v;
    });
    child = spawn(process.execPath, [join(ROOT, 'bin', 'stowage.js'), ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout?.on('data', (b: Buffer) => output.push(b.toString()));
    child.stderr?.on('data', (b: Buffer) => output.push(b.toString()));
    let exited = false;
    child.once('exit', () => (exited = true));
    const endpoint = flag(args, 'endpoint')!;
    client = new CsiClient(endpoint, { timeoutMs: 5_000 });
    const deadline = Date.now() + 30_000;
    for (;;) {
      if (exited) throw new Error(`${idOf(w)}: the driver exited with its manifest arguments:\n${output.join('')}`);
      if (Date.now() > deadline) throw new Error(`${idOf(w)}: the driver was not ready within 30 s:\n${output.join('')}`);
      if (existsSync(parseEndpoint(endpoint))) {
        const ready = await client.identity.Probe({}).then((p) => p.ready?.value === true, () => false);
        if (ready) break;
      }
      await sleep(100);
    }
    const info = await client.identity.GetPluginInfo({});
    const plugin = (await client.identity.GetPluginCapabilities({})).capabilities ?? [];
    const serves = plugin.some((c) => c.service?.type === 'CONTROLLER_SERVICE');
    const controller = serves ? ((await client.controller.ControllerGetCapabilities({})).capabilities ?? []).map((c) => String(c.rpc?.type)) : [];
    return {
      name: String(info.name),
      plugin: plugin.map((c) => String(c.service?.type ?? (c.volume_expansion ? `VOLUME_EXPANSION_${String(c.volume_expansion.type)}` : '?'))),
      controller,
    };
  } finally {
    client?.close();
    if (child && child.exitCode === null) {
      const done = new Promise((r) => child!.once('exit', r));
      child.kill('SIGTERM');
      const killer = setTimeout(() => child!.kill('SIGKILL'), 10_000);
      await done;
      clearTimeout(killer);
    }
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The sidecars, their flags and the CSIDriver agree with what the driver advertises. */
function checkAgainstDriver(objs: Obj[], controller: Advertised, node: Advertised): string[] {
  const problems: string[] = [];
  const csiDriver = objs.find((o) => kindOf(o) === 'CSIDriver');
  const spec = obj(csiDriver?.['spec']);
  const dep = objs.find((o) => kindOf(o) === 'Deployment');
  const containers = dep ? containersOf(dep) : [];
  const has = (sidecar: string) => containers.find((c) => sidecarOf(c) === sidecar);
  for (const a of [controller, node]) if (a.name !== nameOf(csiDriver ?? {})) problems.push(`the driver calls itself ${a.name}, the CSIDriver is ${nameOf(csiDriver ?? {})}`);
  if (!controller.plugin.includes('CONTROLLER_SERVICE')) problems.push('the controller Deployment\'s driver serves no Controller service');
  if (node.plugin.includes('CONTROLLER_SERVICE')) problems.push('the node plugin\'s driver serves the Controller service too');

  const publish = controller.controller.includes('PUBLISH_UNPUBLISH_VOLUME');
  if (spec['attachRequired'] !== publish) problems.push(`CSIDriver attachRequired is ${String(spec['attachRequired'])}, but the driver ${publish ? 'has' : 'has no'} PUBLISH_UNPUBLISH_VOLUME`);
  if (Boolean(has('csi-attacher')) !== publish) problems.push(publish ? 'the driver publishes volumes but no csi-attacher runs' : 'a csi-attacher runs, but the driver has no ControllerPublishVolume');
  const capacity = controller.controller.includes('GET_CAPACITY');
  const provisioner = has('csi-provisioner');
  if (!provisioner) problems.push('no csi-provisioner');
  else {
    if (flagOn(provisioner.args, 'enable-capacity') !== capacity) problems.push(`csi-provisioner --enable-capacity is ${flagOn(provisioner.args, 'enable-capacity')}, but the driver ${capacity ? 'has' : 'has no'} GET_CAPACITY`);
    if (!flagOn(provisioner.args, 'extra-create-metadata')) problems.push('csi-provisioner lacks --extra-create-metadata');
    const topology = controller.plugin.includes('VOLUME_ACCESSIBILITY_CONSTRAINTS');
    const topologyFlags = ['strict-topology', 'immediate-topology'].filter((f) => flag(provisioner.args, f) !== undefined);
    if (!topology && topologyFlags.length > 0) problems.push(`csi-provisioner has --${topologyFlags.join(', --')}, but the driver has no VOLUME_ACCESSIBILITY_CONSTRAINTS`);
  }
  if (spec['storageCapacity'] !== capacity) problems.push(`CSIDriver storageCapacity is ${String(spec['storageCapacity'])}, but the driver ${capacity ? 'has' : 'has no'} GET_CAPACITY`);
  const expand = controller.controller.includes('EXPAND_VOLUME');
  if (Boolean(has('csi-resizer')) !== expand) problems.push(expand ? 'the driver expands volumes but no csi-resizer runs' : 'a csi-resizer runs, but the driver has no EXPAND_VOLUME');
  const snapshots = controller.controller.includes('CREATE_DELETE_SNAPSHOT');
  if (Boolean(has('csi-snapshotter')) !== snapshots) problems.push(snapshots ? 'the driver takes snapshots but no csi-snapshotter runs' : 'a csi-snapshotter runs, but the driver has no CREATE_DELETE_SNAPSHOT');
  if (!has('livenessprobe')) problems.push('the controller has no livenessprobe');
  return problems;
}

// ------------------------------------------------------------------ our own API server

/** Kinds our API server serves, and those it does not (yet): every rendered kind must be in one list. */
const SERVED_KINDS = new Set(['Namespace', 'ConfigMap', 'Secret', 'PersistentVolumeClaim', 'Pod', 'CSIDriver', 'StorageClass', 'VolumeSnapshotClass']);
const NOT_SERVED_KINDS = new Set(['ServiceAccount', 'Role', 'RoleBinding', 'ClusterRole', 'ClusterRoleBinding', 'Deployment', 'DaemonSet']);
const PLURALS: Record<string, string> = {
  Namespace: 'namespaces', ConfigMap: 'configmaps', Secret: 'secrets', PersistentVolumeClaim: 'persistentvolumeclaims', Pod: 'pods',
  CSIDriver: 'csidrivers', StorageClass: 'storageclasses', VolumeSnapshotClass: 'volumesnapshotclasses',
};
const DRY_RUN_UNSUPPORTED = 'dryRun is not supported by this server';

function collectionPath(o: Obj, ns: string | undefined): string {
  const api = String(o['apiVersion']);
  const prefix = api === 'v1' ? '/api/v1' : `/apis/${api}`;
  return `${prefix}${ns ? `/namespaces/${ns}` : ''}/${PLURALS[kindOf(o)]}`;
}

/**
 * Sends each object of a served kind to a fresh API server on an in-memory store, namespaces first
 * (as kubectl apply orders them): with ?dryRun=All while the server refuses dryRun only as
 * unsupported, else for real (the store is thrown away). Returns what the server refused.
 */
async function sendToServer(objs: Obj[]): Promise<{ problems: string[]; sent: number }> {
  const store: Store = open(':memory:');
  const server: ApiServer = await startApiServer({ store, listen: 'http://127.0.0.1:0' });
  const problems: string[] = [];
  let sent = 0;
  try {
    const served = objs.filter((o) => SERVED_KINDS.has(kindOf(o)));
    served.sort((a, b) => Number(kindOf(b) === 'Namespace') - Number(kindOf(a) === 'Namespace'));
    let dryRun = true;
    for (const o of served) {
      const ns = namespaceOf(o) ?? (USER_NAMESPACE_KINDS.has(kindOf(o)) ? 'default' : undefined);
      const post = (query: string) => fetch(`${server.url}${collectionPath(o, ns)}${query}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(o) });
      let res = dryRun ? await post('?dryRun=All') : undefined;
      if (res?.status === 400 && ((await res.clone().json()) as { message?: string }).message === DRY_RUN_UNSUPPORTED) {
        dryRun = false;
        res = undefined;
      }
      // A namespace must really exist for the objects in it to be validated after it.
      if (!res || (res.ok && kindOf(o) === 'Namespace')) res = await post('');
      const text = await res.text();
      if (res.status !== 201 && res.status !== 200) problems.push(`${idOf(o)}: ${res.status} ${text}`);
      sent++;
    }
  } finally {
    await server.close();
    store.close();
  }
  return { problems, sent };
}

/**
 * The fields of the workload kinds our API server does not validate yet (Deployment, DaemonSet),
 * from Kubernetes' apps/v1 and core/v1 types: a misspelt key (`mountPropogation`) or value
 * (`Bidirectionnal`) that kubectl kustomize passes through unchanged is caught here.
 */
const WORKLOAD_FIELDS: Record<string, string[]> = {
  Deployment: ['replicas', 'selector', 'template', 'strategy', 'minReadySeconds', 'revisionHistoryLimit', 'paused', 'progressDeadlineSeconds'],
  DaemonSet: ['selector', 'template', 'updateStrategy', 'minReadySeconds', 'revisionHistoryLimit'],
  podSpec: [
    'volumes', 'initContainers', 'containers', 'ephemeralContainers', 'restartPolicy', 'terminationGracePeriodSeconds', 'activeDeadlineSeconds',
    'dnsPolicy', 'nodeSelector', 'serviceAccountName', 'automountServiceAccountToken', 'nodeName', 'hostNetwork', 'hostPID', 'hostIPC',
    'shareProcessNamespace', 'securityContext', 'imagePullSecrets', 'hostname', 'subdomain', 'affinity', 'schedulerName', 'tolerations',
    'hostAliases', 'priorityClassName', 'priority', 'dnsConfig', 'readinessGates', 'runtimeClassName', 'enableServiceLinks',
    'preemptionPolicy', 'overhead', 'topologySpreadConstraints', 'setHostnameAsFQDN', 'os', 'hostUsers', 'schedulingGates', 'resourceClaims',
  ],
  container: [
    'name', 'image', 'command', 'args', 'workingDir', 'ports', 'envFrom', 'env', 'resources', 'resizePolicy', 'restartPolicy', 'volumeMounts',
    'volumeDevices', 'livenessProbe', 'readinessProbe', 'startupProbe', 'lifecycle', 'terminationMessagePath', 'terminationMessagePolicy',
    'imagePullPolicy', 'securityContext', 'stdin', 'stdinOnce', 'tty',
  ],
  securityContext: [
    'capabilities', 'privileged', 'seLinuxOptions', 'windowsOptions', 'runAsUser', 'runAsGroup', 'runAsNonRoot', 'readOnlyRootFilesystem',
    'allowPrivilegeEscalation', 'procMount', 'seccompProfile', 'appArmorProfile',
  ],
  volumeMount: ['name', 'readOnly', 'recursiveReadOnly', 'mountPath', 'subPath', 'mountPropagation', 'subPathExpr'],
  volume: ['name', 'hostPath', 'emptyDir', 'configMap', 'secret', 'projected', 'persistentVolumeClaim', 'downwardAPI', 'csi', 'ephemeral'],
  port: ['name', 'containerPort', 'hostPort', 'protocol', 'hostIP'],
};
const MOUNT_PROPAGATION = ['None', 'HostToContainer', 'Bidirectional'];
const HOST_PATH_TYPES = ['', 'DirectoryOrCreate', 'Directory', 'FileOrCreate', 'File', 'Socket', 'CharDevice', 'BlockDevice'];

function checkWorkloadFields(w: Obj): string[] {
  const problems: string[] = [];
  const unknown = (where: string, o: Obj, fields: string[]) => {
    for (const k of Object.keys(o)) if (!fields.includes(k)) problems.push(`${idOf(w)}: ${where} has no field ${k}`);
  };
  unknown('spec', obj(w['spec']), WORKLOAD_FIELDS[kindOf(w)] ?? []);
  const spec = podSpecOf(w);
  unknown('the pod spec', spec, WORKLOAD_FIELDS['podSpec']!);
  const volumes = arr(spec['volumes']).map(obj);
  for (const v of volumes) {
    unknown(`volume ${String(v['name'])}`, v, WORKLOAD_FIELDS['volume']!);
    if (Object.keys(v).length !== 2) problems.push(`${idOf(w)}: volume ${String(v['name'])} must have exactly one source`);
    const type = obj(v['hostPath'])['type'];
    if (type !== undefined && !HOST_PATH_TYPES.includes(String(type))) problems.push(`${idOf(w)}: volume ${String(v['name'])} has hostPath type ${String(type)}`);
  }
  for (const c of containersOf(w)) {
    unknown(`container ${c.name}`, c.raw, WORKLOAD_FIELDS['container']!);
    unknown(`container ${c.name}'s securityContext`, obj(c.raw['securityContext']), WORKLOAD_FIELDS['securityContext']!);
    for (const p of arr(c.raw['ports']).map(obj)) unknown(`container ${c.name}'s port ${String(p['name'])}`, p, WORKLOAD_FIELDS['port']!);
    for (const m of mountsOf(c)) {
      unknown(`container ${c.name}'s mount ${String(m['name'])}`, m, WORKLOAD_FIELDS['volumeMount']!);
      const prop = m['mountPropagation'];
      if (prop !== undefined && !MOUNT_PROPAGATION.includes(String(prop))) problems.push(`${idOf(w)}: container ${c.name} mounts ${String(m['name'])} with propagation ${String(prop)}`);
      if (prop === 'Bidirectional' && obj(c.raw['securityContext'])['privileged'] !== true) problems.push(`${idOf(w)}: container ${c.name} uses Bidirectional propagation without being privileged (the API server refuses it)`);
    }
    for (const probe of ['livenessProbe', 'readinessProbe']) {
      const port = obj(obj(c.raw[probe])['httpGet'])['port'];
      if (typeof port === 'string' && !containersOf(w).some((x) => arr(x.raw['ports']).some((p) => obj(p)['name'] === port))) {
        problems.push(`${idOf(w)}: container ${c.name}'s ${probe} names port ${port}, which no container declares`);
      }
    }
  }
  const names = containersOf(w).map((c) => c.name);
  if (new Set(names).size !== names.length) problems.push(`${idOf(w)}: two containers share a name`);
  const selector = obj(obj(obj(w['spec'])['selector'])['matchLabels']);
  const labels = obj(obj(obj(obj(w['spec'])['template'])['metadata'])['labels']);
  for (const [k, v] of Object.entries(selector)) if (labels[k] !== v) problems.push(`${idOf(w)}: the selector ${k}=${String(v)} does not match the pod template's labels`);
  return problems;
}

// ------------------------------------------------------------------ the tests

const dirs = kustomizationDirs();
const rendered = new Map<string, Obj[]>();
const baseOf = (backend: CephBackend) => rendered.get(join(DEPLOY, 'ceph', backend)) ?? [];
const examplesOf = (backend: CephBackend) => rendered.get(join(DEPLOY, 'ceph', backend, 'examples')) ?? [];
const byKind = (objs: Obj[], kind: string) => objs.filter((o) => kindOf(o) === kind);

describe('deploy/ manifests rendered by kubectl kustomize', () => {
  before(() => {
    for (const dir of dirs) rendered.set(dir, render(dir));
  });

  it('kubectl kustomize renders every base, examples directory and overlay', () => {
    const names = dirs.map((d) => relative(DEPLOY, d));
    for (const expected of ['ceph/rbd', 'ceph/rbd/examples', 'ceph/cephfs', 'ceph/cephfs/examples', 'kubernetes', 'overlays/single-node']) assert.ok(names.includes(expected), `${expected} has a kustomization (found ${names.join(', ')})`);
    for (const dir of dirs) assert.ok((rendered.get(dir) ?? []).length > 0, `${relative(DEPLOY, dir)} renders objects`);
    // A broken kustomization is an error, not an empty rendering.
    const broken = mkdtempSync(join(tmpdir(), 'stowage-kustomize-'));
    try {
      writeFileSync(join(broken, 'kustomization.yaml'), 'apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - gone.yaml\n');
      assert.throws(() => render(broken), /gone\.yaml/);
    } finally {
      rmSync(broken, { recursive: true, force: true });
    }
  });

  it('every rendered object is a known apiVersion/kind, named, and namespaced as its kind requires', () => {
    for (const [dir, objs] of rendered) assert.deepEqual(checkKinds(objs), [], relative(DEPLOY, dir));
    const bad = clone(baseOf('rbd'));
    bad.push({ apiVersion: 'apps/v1beta1', kind: 'Deployment', metadata: { name: 'old', namespace: 'stowage-rbd' } });
    obj(byKind(bad, 'CSIDriver')[0]!['metadata'])['namespace'] = 'stowage-rbd';
    delete obj(byKind(bad, 'ConfigMap')[0]!['metadata'])['namespace'];
    const why = checkKinds(bad).join('\n');
    assert.match(why, /apps\/v1beta1 Deployment is not a kind/);
    assert.match(why, /CSIDriver\/stowage-rbd\/rbd\.csi\.stowage\.dev: cluster-scoped, but has a namespace/);
    assert.match(why, /ConfigMap\/ceph-csi-config: namespaced, but has no namespace/);
  });

  it('Deployments and DaemonSets (which our API server does not validate yet) use only Kubernetes\' field names and values', () => {
    for (const [dir, objs] of rendered) for (const w of workloads(objs)) assert.deepEqual(checkWorkloadFields(w), [], `${relative(DEPLOY, dir)} ${idOf(w)}`);
    const ds = clone(byKind(baseOf('rbd'), 'DaemonSet')[0]!);
    const d = driverOf(ds)!;
    d.raw['volumeMounts'] = mountsOf(d).map((m) => (m['name'] === 'state-dir' ? { name: 'state-dir', mountPath: m['mountPath'], mountPropogation: 'Bidirectional' } : m['name'] === 'kubelet-dir' ? { ...m, mountPropagation: 'Bidirectionnal' } : m));
    const reg = containersOf(ds).find((c) => sidecarOf(c) === 'csi-node-driver-registrar')!;
    reg.raw['volumeMounts'] = [...mountsOf(reg), { name: 'kubelet-dir', mountPath: KUBELET_DIR, mountPropagation: 'Bidirectional' }];
    obj(obj(obj(ds['spec'])['template'])['metadata'])['labels'] = { app: 'other' };
    const why = checkWorkloadFields(ds).join('\n');
    assert.match(why, /container stowage's mount state-dir has no field mountPropogation/);
    assert.match(why, /mounts kubelet-dir with propagation Bidirectionnal/);
    assert.match(why, /node-driver-registrar uses Bidirectional propagation without being privileged/);
    assert.match(why, /the selector app\.kubernetes\.io\/name=stowage-rbd does not match/);
  });

  it('names agree: accounts, roles, ConfigMaps, volumes, namespaces and the secrets the classes name all exist', () => {
    for (const backend of CEPH_BACKENDS) {
      assert.deepEqual(checkReferences(baseOf(backend)), [], backend);
      assert.deepEqual(checkReferences(examplesOf(backend), baseOf(backend)), [], `${backend} examples with the base`);
    }
    const bad = clone(baseOf('rbd'));
    podSpecOf(byKind(bad, 'DaemonSet')[0]!)['serviceAccountName'] = 'stowage-rbd-nodes';
    obj(byKind(bad, 'ConfigMap')[0]!['metadata'])['name'] = 'ceph-config';
    obj(byKind(bad, 'ClusterRoleBinding')[0]!['roleRef'])['name'] = 'gone';
    const why = checkReferences(bad).join('\n');
    assert.match(why, /ServiceAccount stowage-rbd\/stowage-rbd-nodes is not defined/);
    assert.match(why, /names ConfigMap stowage-rbd\/ceph-csi-config, which is not defined/);
    assert.match(why, /roleRef ClusterRole gone is not defined/);
    const examples = clone(examplesOf('rbd'));
    obj(byKind(examples, 'StorageClass')[0]!['parameters'])['csi.storage.k8s.io/node-stage-secret-namespace'] = 'default';
    assert.match(checkReferences(examples, baseOf('rbd')).join('\n'), /node-stage-secret-name names Secret default\/csi-rbd-secret, which is not defined/);
  });

  it('the rbd ConfigMap and examples are seed 000\'s, but for the driver name and the secret\'s namespace', () => {
    const seed = (file: string) => parseDocs(readFileSync(join(ROOT, 'test', 'fixtures', 'seeds', file), 'utf8'), file)[0]!;
    const base = baseOf('rbd');
    const examples = examplesOf('rbd');
    assert.deepEqual(obj(byKind(base, 'ConfigMap')[0]!['data']), obj(seed('000-csi-config-map.yaml')['data']), 'config.json is the seed\'s cluster list');
    assert.equal(nameOf(byKind(base, 'ConfigMap')[0]!), nameOf(seed('000-csi-config-map.yaml')));
    assert.deepEqual(byKind(examples, 'PersistentVolumeClaim')[0], seed('000-pvc.yaml'));
    // The seed's class, with our provisioner and the secret in the driver's namespace instead of default.
    const ns = namespaceOf(byKind(examples, 'Secret')[0]!)!;
    const expected = seed('000-storageclass.yaml');
    expected['provisioner'] = DRIVER_NAMES.rbd;
    const params = obj(expected['parameters']);
    for (const k of Object.keys(params)) if (k.endsWith('-secret-namespace')) params[k] = ns;
    assert.deepEqual(byKind(examples, 'StorageClass')[0], expected);
    const secret = byKind(examples, 'Secret')[0]!;
    assert.equal(nameOf(secret), nameOf(seed('000-secret.yaml')));
    assert.deepEqual(Object.keys(obj(secret['stringData'])).sort(), Object.keys(obj(seed('000-secret.yaml')['stringData'])).sort());
    // Every class parameter is one the backend takes (the snapshot class's clusterID names the config's cluster).
    const clusterIDs = (JSON.parse(String(obj(byKind(base, 'ConfigMap')[0]!['data'])['config.json'])) as { clusterID: string }[]).map((c) => c.clusterID);
    for (const backend of CEPH_BACKENDS) {
      const config = JSON.parse(String(obj(byKind(baseOf(backend), 'ConfigMap')[0]!['data'])['config.json'])) as { clusterID: string }[];
      for (const o of [...byKind(examplesOf(backend), 'StorageClass'), ...byKind(examplesOf(backend), 'VolumeSnapshotClass')]) {
        const id = str(obj(o['parameters'])['clusterID']);
        assert.ok(id !== undefined && config.some((c) => c.clusterID === id), `${idOf(o)}: clusterID ${String(id)} is in ${backend}'s ceph-csi-config`);
      }
    }
    assert.deepEqual(clusterIDs, ['bf27339d-a4fc-42db-a9af-3f3fed8e1f2c']);
  });

  it('the driver name is the same in the CSIDriver, both pods, the registrar path and the example classes', () => {
    for (const backend of CEPH_BACKENDS) assert.deepEqual(checkDriverName([...baseOf(backend), ...examplesOf(backend)], DRIVER_NAMES[backend]), [], backend);
    const bad = clone([...baseOf('cephfs'), ...examplesOf('cephfs')]);
    byKind(bad, 'StorageClass')[0]!['provisioner'] = 'cephfs.csi.ceph.com';
    const d = driverOf(byKind(bad, 'Deployment')[0]!)!;
    d.raw['args'] = [...d.args, '--driver-name=cephfs.csi.ceph.com'];
    const why = checkDriverName(bad, DRIVER_NAMES.cephfs).join('\n');
    assert.match(why, /provisioner cephfs\.csi\.ceph\.com, not cephfs\.csi\.stowage\.dev/);
    assert.match(why, /Deployment\/stowage-cephfs\/stowage-cephfs-controller: the driver registers as cephfs\.csi\.ceph\.com/);
  });

  it('every sidecar dials the socket the driver serves, on the same volume; the registrar names its host path', () => {
    for (const backend of CEPH_BACKENDS) for (const w of workloads(baseOf(backend))) assert.deepEqual(checkSockets(w), [], idOf(w));
    const ds = clone(byKind(baseOf('rbd'), 'DaemonSet')[0]!);
    const probe = containersOf(ds).find((c) => sidecarOf(c) === 'livenessprobe')!;
    probe.raw['args'] = probe.args.map((a) => (a.startsWith('--csi-address') ? '--csi-address=/run/csi/socket' : a));
    const reg = containersOf(ds).find((c) => sidecarOf(c) === 'csi-node-driver-registrar')!;
    reg.raw['args'] = reg.args.map((a) => (a.startsWith('--kubelet-registration-path') ? '--kubelet-registration-path=/var/lib/kubelet/plugins/rbd.csi.ceph.com/csi.sock' : a));
    const why = checkSockets(ds).join('\n');
    assert.match(why, /liveness-probe: nothing mounted at \/run\/csi/);
    assert.match(why, /node-driver-registrar: --kubelet-registration-path .* is not the socket's host path/);
  });

  it('the node plugin is privileged, Bidirectional on the kubelet dir and its state dir, with /dev, /sys and /lib/modules', () => {
    for (const backend of CEPH_BACKENDS) assert.deepEqual(checkNodePlugin(byKind(baseOf(backend), 'DaemonSet')[0]!), [], backend);
    const ds = clone(byKind(baseOf('cephfs'), 'DaemonSet')[0]!);
    const d = driverOf(ds)!;
    obj(d.raw['securityContext'])['privileged'] = false;
    d.raw['volumeMounts'] = mountsOf(d)
      .filter((m) => m['name'] !== 'lib-modules')
      .map((m) => (m['mountPath'] === KUBELET_DIR ? { ...m, mountPropagation: 'HostToContainer' } : m['name'] === 'state-dir' ? { name: 'state-dir', mountPath: m['mountPath'] } : m));
    const why = checkNodePlugin(ds).join('\n');
    assert.match(why, /not privileged/);
    assert.match(why, /\/var\/lib\/kubelet is not mounted with Bidirectional/);
    assert.match(why, /does not mount the host's \/lib\/modules/);
    assert.match(why, /--cephfs-state-dir \/var\/lib\/stowage\/cephfs is not mounted Bidirectional/);
  });

  it('the controller runs 2 replicas, its driver with --controller, and every API sidecar elects a leader with the token only it holds', () => {
    for (const backend of CEPH_BACKENDS) assert.deepEqual(checkController(byKind(baseOf(backend), 'Deployment')[0]!), [], backend);
    const dep = clone(byKind(baseOf('rbd'), 'Deployment')[0]!);
    obj(dep['spec'])['replicas'] = 1;
    const resizer = containersOf(dep).find((c) => sidecarOf(c) === 'csi-resizer')!;
    resizer.raw['args'] = resizer.args.filter((a) => !a.startsWith('--leader-election'));
    const d = driverOf(dep)!;
    d.raw['volumeMounts'] = [...mountsOf(d), { name: 'api-token', mountPath: SA_TOKEN_PATH }];
    const why = checkController(dep).join('\n');
    assert.match(why, /replicas is 1, not 2/);
    assert.match(why, /csi-resizer: runs in 1 replicas without --leader-election/);
    assert.match(why, /stowage: has API credentials it does not use/);
  });

  it('sidecar images are pinned to the checked versions and every argument is a flag that version accepts', () => {
    for (const backend of CEPH_BACKENDS) for (const w of workloads(baseOf(backend))) assert.deepEqual(checkSidecarFlags(w, { refuseDeprecated: true }), [], idOf(w));
    // The local backend's manifests too (they keep the deprecated --health-port for now).
    for (const [dir, objs] of rendered) for (const w of workloads(objs)) assert.deepEqual(checkSidecarFlags(w, { refuseDeprecated: false }), [], `${relative(DEPLOY, dir)} ${idOf(w)}`);
    const dep = clone(byKind(baseOf('rbd'), 'Deployment')[0]!);
    const prov = containersOf(dep).find((c) => sidecarOf(c) === 'csi-provisioner')!;
    prov.raw['args'] = [...prov.args, '--enable-leader-election', '--leader-election-type=leases', '--node-deployment=true'];
    const snap = containersOf(dep).find((c) => sidecarOf(c) === 'csi-snapshotter')!;
    snap.raw['image'] = `${SIDECAR_REGISTRY}csi-snapshotter:latest`;
    const probe = containersOf(dep).find((c) => sidecarOf(c) === 'livenessprobe')!;
    probe.raw['args'] = [...probe.args.filter((a) => !a.startsWith('--http-endpoint')), '--health-port=9808'];
    const why = checkSidecarFlags(dep, { refuseDeprecated: true }).join('\n');
    assert.match(why, /csi-provisioner: --enable-leader-election is not a flag of csi-provisioner v6\.4\.0/);
    assert.match(why, /--leader-election-type is not a flag/);
    assert.match(why, /csi-provisioner: --node-deployment and --leader-election together/);
    assert.match(why, /csi-snapshotter:latest, but the flags were checked against csi-snapshotter:v8\.7\.0/);
    assert.match(why, /--health-port is deprecated in livenessprobe v2\.20\.0/);
  });

  it('every driver argument is an option of `stowage driver`', () => {
    const accepted = driverOptions();
    for (const f of ['backend', 'endpoint', 'node-id', 'ceph-config', 'rbd-state-dir', 'cephfs-state-dir', 'controller', 'node', 'kubelet-dir']) assert.ok(accepted.has(f), `driver --help lists --${f}`);
    for (const [dir, objs] of rendered) for (const w of workloads(objs)) assert.deepEqual(checkDriverFlags(w, accepted), [], `${relative(DEPLOY, dir)} ${idOf(w)}`);
    const ds = clone(byKind(baseOf('rbd'), 'DaemonSet')[0]!);
    const d = driverOf(ds)!;
    d.raw['args'] = [...d.args, '--mounter=rbd-nbd'];
    assert.match(checkDriverFlags(ds, accepted).join('\n'), /does not accept --mounter/);
  });

  it('RBAC grants each ServiceAccount exactly what its sidecars need: leases in the namespace, nothing for the node plugin', () => {
    for (const backend of CEPH_BACKENDS) assert.deepEqual(checkRbac(baseOf(backend)), [], backend);
    for (const backend of CEPH_BACKENDS) {
      const node = byKind(baseOf(backend), 'DaemonSet')[0]!;
      assert.equal(grantsOf(baseOf(backend), namespaceOf(node)!, String(podSpecOf(node)['serviceAccountName'])).size, 0, `${backend}: the node plugin's account holds no permission`);
    }
    const wide = clone(baseOf('rbd'));
    const prov = byKind(wide, 'ClusterRole').find((r) => nameOf(r).endsWith('external-provisioner'))!;
    prov['rules'] = [...arr(prov['rules']), { apiGroups: [''], resources: ['secrets'], verbs: ['list'] }];
    const le = byKind(wide, 'Role')[0]!;
    le['rules'] = arr(le['rules']).map((r) => ({ ...obj(r), verbs: ['get', 'watch', 'list', 'update', 'create'] }));
    const why = checkRbac(wide).join('\n');
    assert.match(why, /is granted cluster core\/secrets list, which none of its containers needs/);
    assert.match(why, /lacks namespace:stowage-rbd coordination\.k8s\.io\/leases delete/);
    // A resizer that watches pods for in-use errors needs to read them.
    const inuse = clone(baseOf('rbd'));
    const resizer = containersOf(byKind(inuse, 'Deployment')[0]!).find((c) => sidecarOf(c) === 'csi-resizer')!;
    resizer.raw['args'] = resizer.args.filter((a) => !a.startsWith('--handle-volume-inuse-error'));
    assert.match(checkRbac(inuse).join('\n'), /lacks cluster core\/pods watch/);
  });
});

describe('deploy/ceph against the driver it deploys', () => {
  const advertised = new Map<string, Advertised>();
  before(async () => {
    await Promise.all(
      CEPH_BACKENDS.flatMap((backend) =>
        workloads(render(join(DEPLOY, 'ceph', backend))).map(async (w) => {
          advertised.set(`${backend}/${kindOf(w)}`, await askDriver(w, render(join(DEPLOY, 'ceph', backend))));
        }),
      ),
    );
  });

  it('the driver starts with each pod\'s own arguments (the ceph-csi-config it reads included) and calls itself by the CSIDriver\'s name', () => {
    for (const backend of CEPH_BACKENDS) {
      assert.equal(advertised.get(`${backend}/Deployment`)?.name, DRIVER_NAMES[backend]);
      assert.equal(advertised.get(`${backend}/DaemonSet`)?.name, DRIVER_NAMES[backend]);
    }
  });

  it('a pod whose ceph-csi-config the driver cannot read, or whose paths are on no volume, does not start', async () => {
    const objs = clone(render(join(DEPLOY, 'ceph', 'rbd')));
    obj(byKind(objs, 'ConfigMap')[0]!['data'])['config.json'] = '[{"clusterID": "x"}]';
    await assert.rejects(askDriver(byKind(objs, 'Deployment')[0]!, objs), /exited with its manifest arguments[\s\S]*monitors must be a non-empty list/);
    const lost = clone(render(join(DEPLOY, 'ceph', 'rbd')));
    const d = driverOf(byKind(lost, 'DaemonSet')[0]!)!;
    d.raw['args'] = d.args.map((a) => (a.startsWith('--rbd-state-dir') ? '--rbd-state-dir=/var/lib/elsewhere' : a));
    await assert.rejects(askDriver(byKind(lost, 'DaemonSet')[0]!, lost), /the driver's path \/var\/lib\/elsewhere is on no volume of the pod/);
  });

  it('attacher, capacity, topology, resizer and snapshotter are deployed exactly where the driver advertises them', () => {
    for (const backend of CEPH_BACKENDS) {
      const objs = render(join(DEPLOY, 'ceph', backend));
      assert.deepEqual(checkAgainstDriver(objs, advertised.get(`${backend}/Deployment`)!, advertised.get(`${backend}/DaemonSet`)!), [], backend);
    }
    // A driver that did publish volumes, or report capacity, would need the attacher and capacity tracking.
    const objs = render(join(DEPLOY, 'ceph', 'rbd'));
    const real = advertised.get('rbd/Deployment')!;
    const publishing = { ...real, controller: [...real.controller, 'PUBLISH_UNPUBLISH_VOLUME', 'GET_CAPACITY'] };
    const why = checkAgainstDriver(objs, publishing, advertised.get('rbd/DaemonSet')!).join('\n');
    assert.match(why, /attachRequired is false, but the driver has PUBLISH_UNPUBLISH_VOLUME/);
    assert.match(why, /publishes volumes but no csi-attacher runs/);
    assert.match(why, /--enable-capacity is false, but the driver has GET_CAPACITY/);
    assert.match(why, /storageCapacity is false, but the driver has GET_CAPACITY/);
  });
});

describe('deploy/ manifests through our own API server', () => {
  before(() => {
    for (const dir of dirs) if (!rendered.has(dir)) rendered.set(dir, render(dir));
  });

  it('every rendered kind is either served (and sent) or listed as not served yet', () => {
    for (const objs of rendered.values()) {
      for (const o of objs) assert.ok(SERVED_KINDS.has(kindOf(o)) !== NOT_SERVED_KINDS.has(kindOf(o)), `${kindOf(o)} is in exactly one of SERVED_KINDS and NOT_SERVED_KINDS`);
    }
  });

  it('the server accepts every object of a kind it serves (dryRun=All where it can, else into a throwaway store)', async () => {
    for (const [dir, objs] of rendered) {
      // The examples need their base's namespace.
      const base = dir.endsWith('/examples') ? (rendered.get(dirname(dir)) ?? []).filter((o) => kindOf(o) === 'Namespace') : [];
      const { problems, sent } = await sendToServer([...base, ...objs]);
      assert.deepEqual(problems, [], relative(DEPLOY, dir));
      assert.ok(sent > 0, `${relative(DEPLOY, dir)}: some objects were sent`);
    }
    // The check can fail: objects our server's schema refuses.
    const bad = clone([...baseOf('rbd'), ...examplesOf('rbd')]);
    byKind(bad, 'StorageClass')[0]!['reclaimPolicy'] = 'Sometimes';
    obj(byKind(bad, 'CSIDriver')[0]!['spec'])['attachRequired'] = 'no';
    const why = (await sendToServer(bad)).problems.join('\n');
    assert.match(why, /StorageClass\/csi-rbd-sc: 422/);
    assert.match(why, /CSIDriver\/rbd\.csi\.stowage\.dev: 422/);
  });
});
