// CSI endpoints (CSI_ENDPOINT, --endpoint) are unix domain sockets only.
import { isAbsolute, normalize } from 'node:path';

// sun_path is 108 bytes on Linux including the terminating NUL; longer paths
// fail deep inside bind()/connect() with an unhelpful error.
const MAX_SOCKET_PATH_BYTES = 107;

/**
 * The socket path of an endpoint given as `unix:///abs/path`,
 * `unix:/abs/path` or a plain `/abs/path`. Anything else (tcp://, relative
 * paths, a unix:// authority, empty) is rejected with an Error saying why.
 */
export function parseEndpoint(endpoint: string): string {
  const raw = endpoint.trim();
  if (raw === '') throw new Error('CSI endpoint is empty; expected unix:///path/to/csi.sock');

  let path: string;
  if (raw.startsWith('unix://')) {
    path = raw.slice('unix://'.length);
    if (!path.startsWith('/')) {
      throw new Error(`CSI endpoint "${endpoint}" has a host part or a relative path; expected unix:///absolute/path`);
    }
  } else if (raw.startsWith('unix:')) {
    path = raw.slice('unix:'.length);
  } else if (/^[a-z][a-z0-9+.-]*:/i.test(raw)) {
    throw new Error(`CSI endpoint "${endpoint}" is not a unix socket; only unix:///path endpoints are supported`);
  } else {
    path = raw;
  }

  if (!isAbsolute(path)) {
    throw new Error(`CSI endpoint "${endpoint}" is not an absolute socket path`);
  }
  path = normalize(path);
  if (path.endsWith('/')) throw new Error(`CSI endpoint "${endpoint}" names a directory, not a socket file`);
  if (Buffer.byteLength(path) > MAX_SOCKET_PATH_BYTES) {
    throw new Error(`CSI endpoint "${endpoint}" is longer than ${MAX_SOCKET_PATH_BYTES} bytes, the unix socket path limit`);
  }
  return path;
}
