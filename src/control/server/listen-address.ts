// Where the API server listens: "http://HOST:PORT" (HOST an IP literal or localhost; PORT may be
// 0) or "unix:///path". Anything but loopback or a unix socket is reachable from other machines,
// so the server demands a token for it.
import { isIP } from 'node:net';
import { isAbsolute } from 'node:path';

export type ListenAddress = { kind: 'tcp'; host: string; port: number } | { kind: 'unix'; path: string };

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
    throw new Error(`listen address "${listen}" is neither http://HOST:PORT nor unix:///path`);
  }
  if (url.protocol !== 'http:') throw new Error(`listen address "${listen}": only http:// and unix:// are supported`);
  if (url.pathname !== '/' || url.search !== '' || url.username !== '') throw new Error(`listen address "${listen}" must be just http://HOST:PORT`);
  const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
  if (host !== 'localhost' && isIP(host) === 0) throw new Error(`listen address "${listen}": HOST must be an IP address or localhost`);
  if (url.port === '') throw new Error(`listen address "${listen}" has no port (use :0 for any free port)`);
  return { kind: 'tcp', host, port: Number(url.port) };
}

/** Whether a TCP host is reachable only from this machine. */
export function isLoopback(host: string): boolean {
  if (host === 'localhost' || host === '::1') return true;
  const v4 = host.startsWith('::ffff:') ? host.slice('::ffff:'.length) : host;
  return isIP(v4) === 4 && v4.startsWith('127.');
}
