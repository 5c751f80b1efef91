// GET /api/v1/namespaces/{ns}/pods/{name}/log: a container's output, as kube-apiserver serves it
// (through the kubelet) for `kubectl logs` and the web console. The pods of `stowage up` run on
// this machine, so the server reads the runtime's log file of the container's attempt itself;
// where that file lives is the caller's (`PodLogLocator`), so this file knows nothing of the
// runtime's layout. PodLogOptions: container, previous, follow, tailLines and limitBytes are
// served; the runtime records no per-line times, so sinceSeconds, sinceTime and timestamps are
// refused with a 400 that says so rather than answered wrongly. Messages are kube-apiserver's and
// the kubelet's own.
import { open, stat } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { resourceForName, type ResourceInfo } from '../api/registry.js';
import type { Pod } from '../api/types/core.js';
import { BadRequestError, MethodNotAllowedError, NotFoundError } from '../store/errors.js';
import type { Store } from '../store/store.js';

/** The log file of a container's attempt on its node, or undefined when this server cannot see it. */
export type PodLogLocator = (pod: Pod, container: string, attempt: number) => string | undefined;

/** How often a follow looks for new output and for the container's end. */
const FOLLOW_POLL_MS = 250;
const CHUNK = 64 * 1024;

interface ContainerStatusLike {
  name: string;
  restartCount?: number;
  state?: { running?: object; waiting?: { reason?: string }; terminated?: object };
}

interface LogOptions {
  container: string | undefined;
  previous: boolean;
  follow: boolean;
  tailLines: number | undefined;
  limitBytes: number | undefined;
}

function boolParam(query: URLSearchParams, name: string): boolean {
  const v = query.get(name);
  if (v === null || v === '' || v === 'false' || v === '0') return false;
  if (v === 'true' || v === '1') return true;
  throw new BadRequestError(`invalid value for ${name}: "${v}"`);
}

function intParam(query: URLSearchParams, name: string, min: number): number | undefined {
  const v = query.get(name);
  if (v === null || v === '') return undefined;
  if (!/^-?\d+$/.test(v)) throw new BadRequestError(`invalid value for ${name}: "${v}"`);
  const n = Number(v);
  if (n < min) throw new BadRequestError(`${name}: Invalid value: ${n}: must be ${min === 0 ? 'greater than or equal to 0' : 'greater than 0'}`);
  return n;
}

export function parseLogOptions(query: URLSearchParams): LogOptions {
  for (const unsupported of ['sinceSeconds', 'sinceTime']) {
    if (query.get(unsupported)) throw new BadRequestError(`${unsupported} is not supported: this runtime records no time per line of output`);
  }
  if (boolParam(query, 'timestamps')) throw new BadRequestError('timestamps is not supported: this runtime records no time per line of output');
  return {
    container: query.get('container') || undefined,
    previous: boolParam(query, 'previous'),
    follow: boolParam(query, 'follow'),
    tailLines: intParam(query, 'tailLines', 0),
    limitBytes: intParam(query, 'limitBytes', 1),
  };
}

/** The container a request names, as kube-apiserver's LogLocation chooses and refuses it. */
export function logContainer(pod: Pod, wanted: string | undefined): string {
  const name = pod.metadata.name ?? '';
  const containers = pod.spec.containers.map((c) => c.name);
  const inits = (pod.spec.initContainers ?? []).map((c) => c.name);
  if (wanted === undefined) {
    if (containers.length === 1) return containers[0] as string;
    const initPart = inits.length > 0 ? ` or one of the init containers: [${inits.join(' ')}]` : '';
    throw new BadRequestError(`a container name must be specified for pod ${name}, choose one of: [${containers.join(' ')}]${initPart}`);
  }
  if (!containers.includes(wanted) && !inits.includes(wanted)) throw new BadRequestError(`container ${wanted} is not valid for pod ${name}`);
  return wanted;
}

function statusOf(pod: Pod, container: string): ContainerStatusLike | undefined {
  const status = pod.status as { containerStatuses?: ContainerStatusLike[]; initContainerStatuses?: ContainerStatusLike[] } | undefined;
  return [...(status?.initContainerStatuses ?? []), ...(status?.containerStatuses ?? [])].find((s) => s.name === container);
}

/** The last `lines` lines of a file's first `size` bytes: where to start reading. */
async function tailStart(path: string, size: number, lines: number): Promise<number> {
  if (lines === 0) return size;
  const fh = await open(path, 'r');
  try {
    let end = size;
    let seen = 0;
    // A final newline ends the last line; it is not the start of another.
    let skipFinal = true;
    while (end > 0) {
      const start = Math.max(0, end - CHUNK);
      const buf = Buffer.alloc(end - start);
      await fh.read(buf, 0, buf.length, start);
      for (let i = buf.length - 1; i >= 0; i--) {
        if (buf[i] !== 0x0a) {
          skipFinal = false;
          continue;
        }
        if (skipFinal) {
          skipFinal = false;
          continue;
        }
        seen++;
        if (seen === lines) return start + i + 1;
      }
      end = start;
    }
    return 0;
  } finally {
    await fh.close();
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

export async function handlePodLog(store: Store, locate: PodLogLocator | undefined, namespace: string, name: string, req: IncomingMessage, res: ServerResponse, query: URLSearchParams): Promise<void> {
  if (req.method !== 'GET') throw new MethodNotAllowedError(req.method ?? '', 'pods/log');
  const pods = resourceForName('pods') as ResourceInfo;
  const options = parseLogOptions(query);
  const read = (): Pod | undefined => store.get('pods', namespace, name) as Pod | undefined;
  const pod = read();
  if (pod === undefined) throw new NotFoundError(pods, name);
  const container = logContainer(pod, options.container);
  const node = pod.spec.nodeName;
  if (!node) throw new BadRequestError(`pod ${name} does not have a host assigned`);
  const status = statusOf(pod, container);
  const restarts = status?.restartCount ?? 0;
  if (options.previous && restarts === 0) throw new BadRequestError(`previous terminated container "${container}" in pod "${name}" not found`);
  const attempt = options.previous ? restarts - 1 : restarts;
  const path = locate?.(pod, container, attempt);
  const info = path === undefined ? undefined : await stat(path).catch(() => undefined);
  if (path === undefined || info === undefined) {
    const reason = status?.state?.waiting?.reason ?? 'ContainerCreating';
    throw new BadRequestError(`container "${container}" in pod "${name}" is waiting to start: ${reason}`);
  }

  res.writeHead(200, { 'Content-Type': 'text/plain', 'Cache-Control': 'no-cache', 'X-Content-Type-Options': 'nosniff' });
  let closed = false;
  res.once('close', () => {
    closed = true;
  });
  let budget = options.limitBytes ?? Number.POSITIVE_INFINITY;
  let offset = options.tailLines === undefined ? 0 : await tailStart(path, info.size, options.tailLines);
  const fh = await open(path, 'r');
  try {
    const copy = async (): Promise<void> => {
      const size = (await fh.stat()).size;
      while (offset < size && budget > 0 && !closed) {
        const n = Math.min(CHUNK, size - offset, budget);
        const buf = Buffer.alloc(n);
        const { bytesRead } = await fh.read(buf, 0, n, offset);
        if (bytesRead === 0) return;
        offset += bytesRead;
        budget -= bytesRead;
        if (!res.write(buf.subarray(0, bytesRead))) await new Promise<void>((r) => res.once('drain', r).once('close', r));
      }
    };
    await copy();
    // Follow the attempt being read until its container is no longer running (or the pod is gone,
    // a newer attempt started, or the client left): then what it wrote last is sent and the body ends.
    while (options.follow && !options.previous && budget > 0 && !closed) {
      const now = read();
      const st = now === undefined || now.metadata.uid !== pod.metadata.uid ? undefined : statusOf(now, container);
      const running = st !== undefined && (st.restartCount ?? 0) === attempt && st.state?.running !== undefined;
      await copy();
      if (!running) break;
      await sleep(FOLLOW_POLL_MS);
    }
  } finally {
    await fh.close();
  }
  res.end();
}
