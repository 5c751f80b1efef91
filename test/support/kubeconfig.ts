// The kubeconfig a test hands the real kubectl: one cluster, one user, one current context, as
// `stowage up` writes its own (src/cli/kubeconfig.ts) but for servers a test starts itself.
import { writeFileSync } from 'node:fs';
import { stringify } from 'yaml';

export interface TestKubeconfig {
  server: string;
  /** PEM of the CA an https:// server's certificate chains to. */
  caPem?: string;
  token?: string;
  /** The context's namespace; default "default". */
  namespace?: string;
}

/** Writes the kubeconfig (0600) to path and returns path. */
export function writeKubeconfig(path: string, c: TestKubeconfig): string {
  const cluster = { server: c.server, ...(c.caPem === undefined ? {} : { 'certificate-authority-data': Buffer.from(c.caPem).toString('base64') }) };
  const config = {
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: 'stowage', cluster }],
    users: [{ name: 'me', user: c.token === undefined ? {} : { token: c.token } }],
    contexts: [{ name: 'stowage', context: { cluster: 'stowage', user: 'me', namespace: c.namespace ?? 'default' } }],
    'current-context': 'stowage',
  };
  writeFileSync(path, stringify(config), { mode: 0o600 });
  return path;
}
