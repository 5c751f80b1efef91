/**
 * Which clients have a subvolume mounted, asked of the MDS (`session ls`, what `ceph tell mds.*
 * session ls` prints) through libcephfs' ceph_mds_command: librados has no way to talk to an MDS.
 * A client's session carries the root it mounted (client_metadata.root: ceph-fuse -r, the kernel
 * client's path), so "mounted" means a session rooted at or below the subvolume's path.
 *
 * libcephfs is loaded on first use, like librados; the key is set in memory (ceph_conf_set), and
 * the client is initialised without mounting anything, used for one command, and shut down.
 */
import koffi from 'koffi';
import type { LibraryHandle } from 'koffi';
import { monHost } from '../rbd/cluster-config.js';
import { callAsync, check, type Binding, type Pointer } from '../rbd/rados.js';

const DECLS = {
  create: 'int ceph_create(_Out_ void **cmount, const char *id)',
  confSet: 'int ceph_conf_set(void *cmount, const char *option, const char *value)',
  init: 'int ceph_init(void *cmount)',
  mdsCommand:
    'int ceph_mds_command(void *cmount, const char *mds_spec, const char **cmd, size_t cmdlen, const char *inbuf, size_t inbuflen, _Out_ void **outbuf, _Out_ size_t *outbuflen, _Out_ void **outs, _Out_ size_t *outslen)',
  bufferFree: 'void ceph_buffer_free(void *buf)',
  shutdown: 'void ceph_shutdown(void *cmount)',
} as const;

let lib: LibraryHandle | undefined;
const bindings = new Map<string, Binding>();

function fn(name: keyof typeof DECLS): Binding {
  let b = bindings.get(name);
  if (!b) {
    try {
      lib ??= koffi.load('libcephfs.so.2');
    } catch (e) {
      throw new Error(`cannot load libcephfs.so.2 (install the libcephfs2 package): ${(e as Error).message}`);
    }
    b = lib.func(DECLS[name]) as unknown as Binding;
    bindings.set(name, b);
  }
  return b;
}

export interface MdsSession {
  /** The client's global id (client.N). */
  id: number;
  /** e.g. "client.admin". */
  entity: string;
  host: string;
  root: string;
  /** The client process's PID, when it says (ceph-fuse does); 0 otherwise. */
  pid: number;
}

export interface MdsTarget {
  monitors: string[];
  user: string;
  key: string;
  fsName: string;
  timeoutSeconds: number;
}

/**
 * libcephfs' client set-up (ceph_create/ceph_init: a CephContext, its config, the messenger) is
 * not safe to run on several threads at once: a burst of parallel DeleteVolume calls crashed the
 * driver. Queries run one at a time; each is short (one mon round, one MDS command).
 */
let queue: Promise<unknown> = Promise.resolve();

/** Sessions of every active MDS of the filesystem whose root is path or below it. */
export function mdsSessionsUnder(t: MdsTarget, path: string): Promise<MdsSession[]> {
  return serialized(async () => parseSessions(await mdsCommand(t, { prefix: 'session ls', format: 'json' })).filter((s) => s.root === path || s.root.startsWith(`${path}/`)));
}

/**
 * Evicts client sessions (by global id) from every MDS: what a dead client (a ceph-fuse killed
 * with -9) needs, or the MDS keeps its capabilities until the session times out and every other
 * client opening those files waits that long (a minute by default).
 */
export function evictSessions(t: MdsTarget, ids: number[]): Promise<void> {
  return serialized(async () => {
    for (const id of ids) await mdsCommand(t, { prefix: 'client evict', filters: [`id=${id}`] });
  });
}

function serialized<T>(work: () => Promise<T>): Promise<T> {
  const run = queue.then(work);
  queue = run.catch(() => undefined);
  return run;
}

async function mdsCommand(t: MdsTarget, cmd: Record<string, unknown>): Promise<string> {
  const out: Pointer[] = [null];
  check(fn('create')(out, t.user), 'ceph_create');
  const cmount = out[0];
  try {
    const set = (option: string, value: string) => check(fn('confSet')(cmount, option, value), `ceph_conf_set ${option}`);
    set('mon_host', monHost(t.monitors));
    set('key', t.key);
    set('client_mount_timeout', String(t.timeoutSeconds));
    set('rados_mon_op_timeout', String(t.timeoutSeconds));
    set('log_to_stderr', 'false');
    set('err_to_stderr', 'false');
    set('log_file', '');
    set('admin_socket', '');
    if (t.fsName) set('client_fs', t.fsName);
    check(await callAsync(fn('init'), [cmount]), 'ceph_init');
    const outbuf: Pointer[] = [null];
    const outlen = [0];
    const outs: Pointer[] = [null];
    const outslen = [0];
    const r = (await callAsync(fn('mdsCommand'), [
      cmount,
      '*',
      [JSON.stringify(cmd)],
      1,
      null,
      0,
      outbuf,
      outlen,
      outs,
      outslen,
    ])) as number;
    const take = (p: Pointer, len: number): string => {
      if (!p) return '';
      try {
        return len > 0 ? Buffer.from(koffi.decode(p, 'uint8_t', len) as number[]).toString('utf8') : '';
      } finally {
        fn('bufferFree')(p);
      }
    };
    const text = take(outbuf[0], Number(outlen[0]));
    take(outs[0], Number(outslen[0]));
    check(r, `mds command "${String(cmd['prefix'])}"`);
    return text;
  } finally {
    await callAsync(fn('shutdown'), [cmount]).catch(() => undefined);
  }
}

/** `session ls` of one or several MDS daemons (several answers are concatenated JSON lists). */
export function parseSessions(text: string): MdsSession[] {
  const sessions: MdsSession[] = [];
  for (const chunk of splitJsonLists(text)) {
    for (const s of JSON.parse(chunk) as Record<string, unknown>[]) {
      const meta = (s['client_metadata'] ?? {}) as Record<string, string>;
      const entity = (s['entity'] as { name?: { type?: string; num?: number } } | undefined)?.name;
      sessions.push({
        id: Number(s['id'] ?? entity?.num ?? 0),
        entity: meta['entity_id'] ? `client.${meta['entity_id']}` : '',
        host: meta['hostname'] ?? '',
        root: meta['root'] ?? '/',
        pid: Number(meta['pid'] ?? 0) || 0,
      });
    }
  }
  return sessions;
}

function splitJsonLists(text: string): string[] {
  const out: string[] = [];
  let depth = 0;
  let start = -1;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i];
    if (inString) {
      if (ch === '\\') i++;
      else if (ch === '"') inString = false;
      continue;
    }
    if (ch === '"') inString = true;
    else if (ch === '[' || ch === '{') {
      if (depth === 0 && ch === '[') start = i;
      depth++;
    } else if (ch === ']' || ch === '}') {
      depth--;
      if (depth === 0 && start >= 0) {
        out.push(text.slice(start, i + 1));
        start = -1;
      }
    }
  }
  return out;
}
