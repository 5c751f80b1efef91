// `stowage doctor`'s checks in order and their two renderings: one line per check
// ("ok|warn|FAIL  <check>: <finding> (fix: …)") or a JSON list of {check, status, finding, fix}.
// Any FAIL (something that blocks provisioning or mounting) makes the exit status non-zero.
import { resolve } from 'node:path';
import { DEFAULT_CEPHFS_STATE_DIR, DEFAULT_KUBELET_DIR, DEFAULT_RBD_STATE_DIR } from '../../driver/defaults.js';
import { parseEndpoint } from '../../csi/endpoint.js';
import { type CephCredentials, checkCephClusters } from './ceph-clusters.js';
import { checkCephTools } from './ceph-tools.js';
import { checkLoopDevices } from './loop-devices.js';
import { checkModules } from './modules.js';
import { checkPropagation } from './propagation.js';
import { checkSockets, socketsOf } from './sockets.js';
import { checkStaleMounts } from './stale-mounts.js';
import type { Backend, CheckResult, DoctorDeps } from './types.js';

export interface DoctorOptions {
  backend?: Backend;
  kubeletDirs?: string[];
  /** `stowage up`'s state dir, when given. */
  stateDir?: string;
  endpoint?: string;
  cephConfig?: string;
  credentials?: CephCredentials;
}

export async function runDoctor(deps: DoctorDeps, o: DoctorOptions): Promise<CheckResult[]> {
  const kubeletDirs = (o.kubeletDirs?.length ? o.kubeletDirs : [DEFAULT_KUBELET_DIR]).map((d) => resolve(d));
  const stateDirs = [...(o.stateDir ? [resolve(o.stateDir)] : []), DEFAULT_RBD_STATE_DIR, DEFAULT_CEPHFS_STATE_DIR];
  const out: CheckResult[] = [];
  out.push(...(await checkModules(deps, o.backend)));
  if (o.backend !== 'local') out.push(...(await checkCephTools(deps, o.backend)));
  if (o.cephConfig) out.push(...(await checkCephClusters(deps, o.cephConfig, o.credentials, o.backend)));
  out.push(...(await checkPropagation(deps, kubeletDirs)));
  out.push(...(await checkStaleMounts(deps, [...kubeletDirs, ...stateDirs])));
  out.push(...(await checkLoopDevices(deps, stateDirs)));
  if (o.endpoint) out.push(...(await checkSockets(deps, [parseEndpoint(o.endpoint)], o.endpoint)));
  else if (o.stateDir) out.push(...(await checkSockets(deps, await socketsOf(deps, resolve(o.stateDir)), o.stateDir)));
  return out;
}

export function formatLine(r: CheckResult): string {
  return `${r.status.padEnd(4)}  ${r.check}: ${r.finding}${r.fix ? ` (fix: ${r.fix})` : ''}`;
}

export function formatResults(results: CheckResult[], output: 'text' | 'json'): string {
  if (output === 'json') return `${JSON.stringify(results, null, 2)}\n`;
  return results.map((r) => `${formatLine(r)}\n`).join('');
}

export function exitStatus(results: CheckResult[]): number {
  return results.some((r) => r.status === 'FAIL') ? 1 : 0;
}
