// CSI sockets: the driver's endpoint (--endpoint) or those of a `stowage up` state dir
// (nodes/<node>/plugins/<driver>/csi.sock, plugins/<driver>/controller.sock) exist and answer
// the Identity Probe, which is what kubelet's registrar and the sidecars need first.
import { join } from 'node:path';
import type { CheckResult, DoctorDeps } from './types.js';
import { result } from './types.js';

const PROBE_TIMEOUT_MS = 3_000;

export async function socketsOf(deps: DoctorDeps, stateDir: string): Promise<string[]> {
  const out: string[] = [];
  for (const node of await deps.reader.list(join(stateDir, 'nodes'))) {
    for (const driver of await deps.reader.list(join(stateDir, 'nodes', node, 'plugins'))) out.push(join(stateDir, 'nodes', node, 'plugins', driver, 'csi.sock'));
  }
  for (const driver of await deps.reader.list(join(stateDir, 'plugins'))) out.push(join(stateDir, 'plugins', driver, 'controller.sock'));
  return out;
}

export async function checkSockets(deps: DoctorDeps, sockets: string[], from: string): Promise<CheckResult[]> {
  if (sockets.length === 0) return [result('csi sockets', 'FAIL', `none under ${from}`, 'start the driver (`stowage up`, or `stowage driver --endpoint ...`)')];
  const out: CheckResult[] = [];
  for (const s of sockets) {
    const check = `csi socket ${s}`;
    if (!(await deps.reader.isSocket(s))) {
      out.push(result(check, 'FAIL', 'missing (or not a socket)', 'start the driver with this --endpoint; kubelet\'s registrar and the sidecars dial it'));
      continue;
    }
    const why = await deps.probe(s, PROBE_TIMEOUT_MS);
    out.push(why === undefined ? result(check, 'ok', 'answers Probe: ready') : result(check, 'FAIL', `does not answer Probe: ${why}`, 'restart the driver; a socket file left by a dead driver is removed when it starts'));
  }
  return out;
}
