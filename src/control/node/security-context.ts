// The identity a container's process runs with, from the pod's and the container's securityContext
// as the CRI runtime resolves it: runAsUser (the container's over the pod's; default root),
// runAsGroup (else the user's primary group in the root filesystem's /etc/passwd, else 0), and as
// supplementary groups the primary group, the pod's fsGroup and its supplementalGroups. The
// containers run over the node's own root filesystem, so /etc/passwd is read from the host.
import { readFileSync } from 'node:fs';
import type { Container, Pod } from '../api/types/core.js';
import type { ContainerUser } from './runtime-api.js';

interface SecurityContext {
  runAsUser?: number;
  runAsGroup?: number;
  runAsNonRoot?: boolean;
  fsGroup?: number;
  fsGroupChangePolicy?: string;
  supplementalGroups?: number[];
}

export function podSecurityContext(pod: Pod): SecurityContext {
  return (pod.spec['securityContext'] as SecurityContext | undefined) ?? {};
}

/** The passwd entry of uid (primary group, home), if the file has the user. */
function passwdEntry(uid: number, passwd: string): { gid: number; home: string } | undefined {
  for (const line of passwd.split('\n')) {
    const fields = line.split(':');
    if (fields.length >= 6 && fields[2] !== '' && Number(fields[2]) === uid) return { gid: Number(fields[3]), home: fields[5] ?? '' };
  }
  return undefined;
}

/** The primary group of uid in a passwd file, if it has the user. */
export function passwdGroup(uid: number, passwd: string): number | undefined {
  return passwdEntry(uid, passwd)?.gid;
}

function readPasswd(): string {
  try {
    return readFileSync('/etc/passwd', 'utf8');
  } catch {
    return '';
  }
}

/** A container that must not run as root but would: the kubelet's CreateContainerConfigError message. */
export class RunAsRootError extends Error {}

/** undefined: nothing is set, the process runs as root with root's groups, as before. */
export function containerUser(pod: Pod, container: Container, passwd: () => string = readPasswd): ContainerUser | undefined {
  const p = podSecurityContext(pod);
  const c = (container['securityContext'] as SecurityContext | undefined) ?? {};
  const runAsUser = c.runAsUser ?? p.runAsUser;
  const runAsGroup = c.runAsGroup ?? p.runAsGroup;
  if ((c.runAsNonRoot ?? p.runAsNonRoot) === true && (runAsUser ?? 0) === 0) {
    throw new RunAsRootError(
      runAsUser === undefined
        ? 'container has runAsNonRoot and image will run as root'
        : `container's runAsUser breaks non-root policy (pod: "${pod.metadata.name ?? ''}_${pod.metadata.namespace ?? 'default'}(${pod.metadata.uid ?? ''})", container: ${container.name})`,
    );
  }
  const extra = [...(p.fsGroup === undefined ? [] : [p.fsGroup]), ...(p.supplementalGroups ?? [])];
  if (runAsUser === undefined && runAsGroup === undefined && extra.length === 0) return undefined;
  const uid = runAsUser ?? 0;
  const entry = passwdEntry(uid, passwd());
  const gid = runAsGroup ?? entry?.gid ?? 0;
  // HOME as the runtime sets it for a user: its passwd home, else "/".
  const home = uid === 0 ? undefined : entry?.home || '/';
  return { uid, gid, groups: [...new Set([gid, ...extra])], ...(home === undefined ? {} : { home }) };
}
