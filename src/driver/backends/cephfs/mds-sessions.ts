/**
 * Which clients have a subvolume mounted, asked of the MDS (`session ls`, what `ceph tell mds.*
 * session ls` prints) through libcephfs' ceph_mds_command: librados has no way to talk to an MDS.
 * A client's session carries the root it mounted (client_metadata.root: ceph-fuse -r, the kernel
 * client's path), so "mounted" means a session rooted at or below the subvolume's path.
 *
 * The command runs in a short-lived child process (this file run as a script, the request on its
 * stdin, the key included: never in argv): libcephfs sets up a whole client (CephContext,
 * messenger) beside the driver's librados connections, and doing that inside the driver while
 * librados calls ran on other threads crashed it under a burst of DeleteVolume calls. A child
 * that dies costs one refused call, not the node's driver.
 */
import { fileURLToPath, pathToFileURL } from 'node:url';
import koffi from 'koffi';
import type { LibraryHandle } from 'koffi';
import type { CommandRunner } from '../../mount/exec.js';
import { monHost } from '../ceph/cluster-config.js';
import { callAsync, check, CephError, type Binding, type Pointer } from '../ceph/rados.js';

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
export function mdsSessionsUnder(runner: CommandRunner, t: MdsTarget, path: string): Promise<MdsSession[]> {
  return serialized(async () =>
    parseSessions(await inChild(runner, t, { prefix: 'session ls', format: 'json' })).filter((s) => s.root === path || s.root.startsWith(`${path}/`)),
  );
}

/**
 * Evicts client sessions (by global id) from every MDS: what a dead client (a ceph-fuse killed
 * with -9) needs, or the MDS keeps its capabilities until the session times out and every other
 * client opening those files waits that long (a minute by default).
 */
export function evictSessions(runner: CommandRunner, t: MdsTarget, ids: number[]): Promise<void> {
  return serialized(async () => {
    for (const id of ids) await inChild(runner, t, { prefix: 'client evict', filters: [`id=${id}`] });
  });
}

const SELF = fileURLToPath(import.meta.url);

/** Runs one MDS command in a child process; a failure comes back as the CephError it was. */
async function inChild(runner: CommandRunner, t: MdsTarget, cmd: Record<string, unknown>): Promise<string> {
  const r = await runner.run(process.execPath, [SELF], {
    input: JSON.stringify({ target: t, cmd }),
    secrets: [t.key],
    timeoutMs: (t.timeoutSeconds + 5) * 1000,
    okExitCodes: [0, 3],
  });
  if (r.exitCode === 3) {
    const e = JSON.parse(r.stdout) as { op: string; errno: number; detail: string };
    throw new CephError(e.op, e.errno, e.detail);
  }
  return r.stdout;
}

function serialized<T>(work: () => Promise<T>): Promise<T> {
  const run = queue.then(work);
  queue = run.catch(() => undefined);
  return run;
}

export async function mdsCommand(t: MdsTarget, cmd: Record<string, unknown>): Promise<string> {
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

/** The child: reads {target, cmd} from stdin, prints the output (exit 0) or the CephError as JSON (exit 3). */
async function childMain(): Promise<void> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  const { target, cmd } = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { target: MdsTarget; cmd: Record<string, unknown> };
  try {
    process.stdout.write(await mdsCommand(target, cmd));
    process.exit(0);
  } catch (e) {
    if (e instanceof CephError) {
      process.stdout.write(JSON.stringify({ op: e.op, errno: e.errno, detail: e.detail }));
      process.exit(3);
    }
    process.stderr.write(`${(e as Error).message}\n`);
    process.exit(1);
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) await childMain();
