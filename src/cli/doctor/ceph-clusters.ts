// Per clusterID of ceph-csi's config.json (--ceph-config): the monitors answer on TCP, and, only
// when credentials are given (a user and a keyfile path: the key itself never travels in argv or
// logs), the cluster's version against the client's and whether the mgr `volumes` module that
// cephfs provisioning needs is on. Without credentials the line says what was not checked.
import { monHost } from '../../driver/backends/ceph/cluster-config.js';
import type { Backend, CheckResult, DoctorDeps } from './types.js';
import { result } from './types.js';
import { clientVersion, parseCephVersion } from './ceph-tools.js';

export interface CephCredentials {
  user: string;
  keyfile: string;
}

interface ClusterEntry {
  clusterID: string;
  monitors: string[];
}

const MON_TIMEOUT_MS = 2_000;

export function parseClusters(text: string): ClusterEntry[] {
  const data: unknown = JSON.parse(text);
  if (!Array.isArray(data)) throw new Error('expected a JSON list of {"clusterID", "monitors"}');
  return data.map((c: unknown, i) => {
    const e = c as Partial<ClusterEntry>;
    if (typeof e?.clusterID !== 'string' || !Array.isArray(e.monitors) || !e.monitors.every((m) => typeof m === 'string')) {
      throw new Error(`entry ${i}: expected {"clusterID": string, "monitors": [string]}`);
    }
    return { clusterID: e.clusterID, monitors: e.monitors };
  });
}

/** "10.0.0.1:6789", "v2:10.0.0.1:3300", "[v2:h:3300,v1:h:6789]", "[::1]:6789" → host and port of each address. */
export function monitorAddresses(entry: string): { host: string; port: number }[] {
  const inner = entry.startsWith('[v') ? entry.slice(1, -1) : entry;
  return inner.split(',').flatMap((a) => {
    const m = /^(?:v[12]:)?(\[[^\]]+\]|[^:]+):(\d+)(?:\/\d+)?$/.exec(a.trim());
    if (!m?.[1] || !m[2]) return [];
    return [{ host: m[1].replace(/^\[|\]$/g, ''), port: Number(m[2]) }];
  });
}

export async function checkCephClusters(deps: DoctorDeps, configFile: string, creds: CephCredentials | undefined, backend: Backend | undefined): Promise<CheckResult[]> {
  const text = await deps.reader.readText(configFile);
  if (text === undefined) return [result('ceph config', 'FAIL', `${configFile} cannot be read`, 'point --ceph-config at the config.json of the ceph-csi-config ConfigMap')];
  let clusters: ClusterEntry[];
  try {
    clusters = parseClusters(text);
  } catch (e) {
    return [result('ceph config', 'FAIL', `${configFile}: ${(e as Error).message}`, 'fix the ceph-csi-config ConfigMap\'s config.json')];
  }
  if (clusters.length === 0) return [result('ceph config', 'FAIL', `${configFile} lists no clusters`, 'add {"clusterID": ..., "monitors": [...]} for each cluster')];
  if (creds && (await deps.reader.readText(creds.keyfile)) === undefined) {
    return [result('ceph credentials', 'FAIL', `--ceph-keyfile ${creds.keyfile} cannot be read`, 'give a file holding the key of --ceph-user (the secret\'s userKey)')];
  }
  const client = creds ? await clientVersion(deps) : undefined;
  const out: CheckResult[] = [];
  for (const c of clusters) {
    const addrs = c.monitors.flatMap(monitorAddresses);
    const down: string[] = [];
    for (const a of addrs) {
      const why = await deps.tcpConnect(a.host, a.port, MON_TIMEOUT_MS);
      if (why !== undefined) down.push(`${a.host}:${a.port} ${why}`);
    }
    const check = `ceph cluster ${c.clusterID} monitors`;
    if (addrs.length === 0) out.push(result(check, 'FAIL', 'no monitor addresses', 'list the monitors ("host:6789") in config.json'));
    else if (down.length === addrs.length) out.push(result(check, 'FAIL', `none of ${addrs.length} reachable (${down.join('; ')})`, 'check the addresses in config.json and the firewall (ports 3300, 6789) from this node'));
    else if (down.length > 0) out.push(result(check, 'warn', `${addrs.length - down.length}/${addrs.length} reachable (${down.join('; ')})`, 'check the monitors that do not answer'));
    else out.push(result(check, 'ok', `${addrs.length}/${addrs.length} reachable`));
    if (creds === undefined) {
      out.push(result(`ceph cluster ${c.clusterID}`, 'warn', 'cluster version and mgr volumes module not checked: no credentials', 'pass --ceph-user and --ceph-keyfile (a file holding the key)'));
      continue;
    }
    if (down.length === addrs.length) continue;
    out.push(...(await clusterDetails(deps, c, creds, client, backend)));
  }
  return out;
}

async function clusterDetails(deps: DoctorDeps, c: ClusterEntry, creds: CephCredentials, client: string | undefined, backend: Backend | undefined): Promise<CheckResult[]> {
  const base = ['-m', monHost(c.monitors), '--id', creds.user, '--keyfile', creds.keyfile, '--connect-timeout', '10', '--format', 'json'];
  const out: CheckResult[] = [];
  try {
    const v = parseCephVersion((await deps.runner.run('ceph', [...base, 'version'], { timeoutMs: 20_000 })).stdout);
    const check = `ceph cluster ${c.clusterID} version`;
    if (!v) out.push(result(check, 'warn', 'the cluster did not say its version', 'check the credentials'));
    else if (client && Number(client.split('.')[0]) < Number(v.split('.')[0])) {
      out.push(result(check, 'warn', `cluster ${v}, client ${client}: the client is older than the cluster`, 'upgrade the node\'s Ceph client packages to the cluster\'s release'));
    } else out.push(result(check, 'ok', `cluster ${v}${client ? `, client ${client}` : ''}`));
  } catch (e) {
    out.push(result(`ceph cluster ${c.clusterID} version`, 'FAIL', `cannot talk to the cluster: ${(e as Error).message}`, 'check --ceph-user, --ceph-keyfile and the monitors'));
    return out;
  }
  try {
    const mods = JSON.parse((await deps.runner.run('ceph', [...base, 'mgr', 'module', 'ls'], { timeoutMs: 20_000 })).stdout) as { always_on_modules?: unknown; enabled_modules?: unknown };
    const on = [mods.always_on_modules, mods.enabled_modules].flatMap((l) => (Array.isArray(l) ? l : []));
    const check = `ceph cluster ${c.clusterID} mgr volumes`;
    if (on.includes('volumes')) out.push(result(check, 'ok', 'enabled'));
    else out.push(result(check, backend === 'cephfs' ? 'FAIL' : 'warn', 'the mgr volumes module is off: cephfs volumes cannot be provisioned', 'ceph mgr module enable volumes'));
  } catch (e) {
    out.push(result(`ceph cluster ${c.clusterID} mgr volumes`, 'warn', `not checked: ${(e as Error).message}`, 'check the user\'s mgr caps ("allow r")'));
  }
  return out;
}
