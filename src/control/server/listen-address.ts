// Where the API server listens: "https://HOST:PORT", "http://HOST:PORT" (HOST an IP literal or
// localhost; PORT may be 0) or "unix:///path". Plain http is for loopback only: anything reachable
// from other machines is served over TLS and demands a token (api-server.ts enforces both).
import { isIP } from 'node:net';
import { isAbsolute } from 'node:path';

export type ListenAddress = { kind: 'tcp'; secure: boolean; host: string; port: number } | { kind: 'unix'; path: string };

export function parseListenAddress(listen: string): ListenAddress {
  if (listen.startsWith('unix://') || listen.startsWith('unix:')) {
    const path = listen.startsWith('unix://') ? listen.slice('unix://'.length) : listen.slice('unix:'.length);
    if (!isAbsolute(path)) throw new Error(`listen address "${listen}" needs an absolute socket path: unix:///path/to/api.sock`);
    return { kind: 'unix', path };
  }
  let url: URL;
  try {
    url = new URL(listen);
  } catch {
    throw new Error(`listen address "${listen}" is neither https://HOST:PORT, http://HOST:PORT nor unix:///path`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new Error(`listen address "${listen}": only https://, http:// and unix:// are supported`);
  const scheme = url.protocol.slice(0, -1);
  if (url.pathname !== '/' || url.search !== '' || url.username !== '') throw new Error(`listen address "${listen}" must be just ${scheme}://HOST:PORT`);
  const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
  if (host !== 'localhost' && isIP(host) === 0) throw new Error(`listen address "${listen}": HOST must be an IP address or localhost`);
  // URL drops a scheme's default port (443 for https): an explicit one is still explicit.
  const explicitDefault = url.port === '' && new RegExp(`:${scheme === 'https' ? 443 : 80}/?$`).test(listen);
  if (url.port === '' && !explicitDefault) throw new Error(`listen address "${listen}" has no port (use :0 for any free port)`);
  return { kind: 'tcp', secure: scheme === 'https', host, port: explicitDefault ? (scheme === 'https' ? 443 : 80) : Number(url.port) };
}

/** Whether a TCP host is reachable only from this machine. */
export function isLoopback(host: string): boolean {
  if (host === 'localhost' || host === '::1') return true;
  const v4 = host.startsWith('::ffff:') ? host.slice('::ffff:'.length) : host;
  return isIP(v4) === 4 && v4.startsWith('127.');
}
