// The admin kubeconfig `stowage up` writes to <state-dir>/kubeconfig (0600, replaced atomically):
// cluster "stowage" (the API's https:// address and the CA that signed its certificate), user
// "admin" (the bearer token), context "stowage" in namespace default, current. kubectl and
// client-go tools use it as it is: `kubectl --kubeconfig <state-dir>/kubeconfig get ns`.
import { rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { stringify } from 'yaml';

export const KUBECONFIG_FILE = 'kubeconfig';
export const CLUSTER_NAME = 'stowage';
export const ADMIN_USER_NAME = 'admin';

export interface KubeconfigParams {
  /** "https://127.0.0.1:6443" */
  server: string;
  /** PEM of the CA that signed the server's certificate (https only). */
  caPem?: string;
  token: string;
}

/**
 * The address a kubeconfig names among those served: the first https://, else the first http://
 * (loopback only); a wildcard host becomes loopback. Undefined when there is only a unix socket,
 * which kubeconfigs cannot name.
 */
export function kubeconfigServer(urls: readonly string[]): string | undefined {
  const tcp = urls.find((u) => u.startsWith('https://')) ?? urls.find((u) => u.startsWith('http://'));
  return tcp?.replace('//0.0.0.0:', '//127.0.0.1:').replace('//[::]:', '//[::1]:');
}

export function renderKubeconfig(p: KubeconfigParams): string {
  const cluster = { server: p.server, ...(p.caPem === undefined ? {} : { 'certificate-authority-data': Buffer.from(p.caPem).toString('base64') }) };
  return stringify({
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: CLUSTER_NAME, cluster }],
    users: [{ name: ADMIN_USER_NAME, user: { token: p.token } }],
    contexts: [{ name: CLUSTER_NAME, context: { cluster: CLUSTER_NAME, user: ADMIN_USER_NAME, namespace: 'default' } }],
    'current-context': CLUSTER_NAME,
    preferences: {},
  });
}

/** Writes <stateDir>/kubeconfig (0600) atomically: a reader sees the old file or the new one. */
export async function writeKubeconfig(stateDir: string, p: KubeconfigParams): Promise<string> {
  const path = join(stateDir, KUBECONFIG_FILE);
  const tmp = `${path}.${process.pid}.tmp`;
  await writeFile(tmp, renderKubeconfig(p), { mode: 0o600 });
  await rename(tmp, path);
  return path;
}
