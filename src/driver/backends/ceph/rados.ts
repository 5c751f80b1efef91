/**
 * koffi bindings to librados.so.2: a connection (rados_t), pool I/O contexts and the omap
 * operations the journal needs. Everything that can wait on the network (connect, pool lookups,
 * operate) runs through koffi's async variant on a worker thread, so the event loop keeps serving;
 * only calls that merely build an operation in memory are synchronous.
 *
 * Secrets: the cephx key is handed to librados with rados_conf_set("key"), in memory. It never
 * appears in an argv, a file or a log line.
 */
import { constants as osConstants } from 'node:os';
import koffi from 'koffi';
import type { LibraryHandle } from 'koffi';
import { runAsync } from '../../mount/native-async.js';
import { monHost } from './cluster-config.js';
import { CephError } from './ceph-error.js';
import { awaitAnswer, type MgrPatience, UnansweredMgrCommand } from './mgr-wait.js';

export { CephError, isCephError } from './ceph-error.js';
export { UnansweredMgrCommand, type MgrPatience } from './mgr-wait.js';

/** A C pointer as koffi hands it out. */
export type Pointer = unknown;

type AsyncCallback = (err: unknown, result: unknown) => void;
export interface Binding {
  (...args: unknown[]): unknown;
  async(...args: [...unknown[], AsyncCallback]): void;
}

const DECLS = {
  create2: 'int rados_create2(_Out_ void **pcluster, const char *clustername, const char *name, uint64_t flags)',
  confSet: 'int rados_conf_set(void *cluster, const char *option, const char *value)',
  connect: 'int rados_connect(void *cluster)',
  shutdown: 'void rados_shutdown(void *cluster)',
  poolLookup: 'int64_t rados_pool_lookup(void *cluster, const char *pool_name)',
  poolReverseLookup: 'int rados_pool_reverse_lookup(void *cluster, int64_t id, uint8_t *buf, size_t maxlen)',
  ioctxCreate2: 'int rados_ioctx_create2(void *cluster, int64_t pool_id, _Out_ void **ioctx)',
  ioctxDestroy: 'void rados_ioctx_destroy(void *io)',
  createWriteOp: 'void *rados_create_write_op()',
  releaseWriteOp: 'void rados_release_write_op(void *op)',
  writeOpCreate: 'void rados_write_op_create(void *op, int exclusive, const char *category)',
  writeOpRemove: 'void rados_write_op_remove(void *op)',
  writeOpOmapSet2:
    'void rados_write_op_omap_set2(void *op, const char **keys, const char **vals, const size_t *key_lens, const size_t *val_lens, size_t num)',
  writeOpOmapRmKeys2: 'void rados_write_op_omap_rm_keys2(void *op, const char **keys, const size_t *key_lens, size_t keys_len)',
  writeOpOmapCmp2:
    'void rados_write_op_omap_cmp2(void *op, const char *key, uint8_t comparison_operator, const char *val, size_t key_len, size_t val_len, void *prval)',
  writeOpOperate2: 'int rados_write_op_operate2(void *op, void *io, const char *oid, void *mtime, int flags)',
  createReadOp: 'void *rados_create_read_op()',
  releaseReadOp: 'void rados_release_read_op(void *op)',
  readOpOmapGetValsByKeys2:
    'void rados_read_op_omap_get_vals_by_keys2(void *op, const char **keys, size_t num_keys, const size_t *key_lens, void *iter, void *prval)',
  readOpOmapGetVals2:
    'void rados_read_op_omap_get_vals2(void *op, const char *start_after, const char *filter_prefix, uint64_t max_return, void *iter, void *pmore, void *prval)',
  readOpOperate: 'int rados_read_op_operate(void *op, void *io, const char *oid, int flags)',
  omapGetNext2: 'int rados_omap_get_next2(void *iter, _Out_ void **key, _Out_ void **val, _Out_ size_t *key_len, _Out_ size_t *val_len)',
  omapGetEnd: 'void rados_omap_get_end(void *iter)',
  exec: 'int rados_exec(void *io, const char *oid, const char *cls, const char *method, const uint8_t *in_buf, size_t in_len, uint8_t *buf, size_t out_len)',
  ioctxSetNamespace: 'void rados_ioctx_set_namespace(void *io, const char *nspace)',
  monCommand:
    'int rados_mon_command(void *cluster, const char **cmd, size_t cmdlen, const char *inbuf, size_t inbuflen, _Out_ void **outbuf, _Out_ size_t *outbuflen, _Out_ void **outs, _Out_ size_t *outslen)',
  mgrCommand:
    'int rados_mgr_command(void *cluster, const char **cmd, size_t cmdlen, const char *inbuf, size_t inbuflen, _Out_ void **outbuf, _Out_ size_t *outbuflen, _Out_ void **outs, _Out_ size_t *outslen)',
  bufferFree: 'void rados_buffer_free(void *buf)',
} as const;

let lib: LibraryHandle | undefined;
const bindings = new Map<string, Binding>();

/** librados is loaded on first use: a driver that never talks to Ceph needs no librados. */
function fn(name: keyof typeof DECLS): Binding {
  let b = bindings.get(name);
  if (!b) {
    try {
      lib ??= koffi.load('librados.so.2');
    } catch (e) {
      throw new Error(`cannot load librados.so.2 (install the librados2 package): ${(e as Error).message}`);
    }
    b = lib.func(DECLS[name]) as unknown as Binding;
    bindings.set(name, b);
  }
  return b;
}

/** What a mon or mgr command answered: its output (JSON when asked for) and status string. */
export interface CommandResult {
  out: string;
  status: string;
}


/** Runs a binding on a worker thread. */
export function callAsync(b: Binding, args: unknown[]): Promise<unknown> {
  return runAsync<unknown>(b, args);
}

/** Throws CephError for a negative return. */
export function check(result: unknown, op: string): number {
  const n = typeof result === 'bigint' ? Number(result) : (result as number);
  if (n < 0) throw new CephError(op, -n);
  return n;
}

export interface ConnectOptions {
  monitors: string[];
  /** Without the "client." prefix. */
  user: string;
  key: string;
  /** For the connection and for each monitor / OSD operation. */
  timeoutSeconds: number;
}

/** A connected cluster handle (rados_t). */
export class Rados {
  private closed = false;
  private readonly ioctxs = new Map<number | string, Promise<IoCtx>>();
  /**
   * The client mgr commands go through. librados (16.x) times a mgr command out with
   * rados_mon_op_timeout but leaves it registered with the MgrClient, pointing at the caller's
   * buffers: a reply that comes later writes into freed memory and kills the process (seen:
   * SIGSEGV in MgrClient::handle_command_reply when `fs subvolume create` took longer than the
   * timeout on a busy mgr). So mgr commands run on a second client whose librados never gives up
   * (rados_mon_op_timeout 0), and the caller's deadline is kept here instead: the caller gets
   * ETIMEDOUT, the native call finishes whenever the mgr answers, its buffers alive until then.
   */
  private mgrHandle: Promise<Pointer> | undefined;
  /** Native calls still running on either client: shutdown never frees a client under one. */
  private running = 0;
  /**
   * Mgr commands whose caller's deadline passed while librados still waits for the answer. Only
   * these count against MAX_UNANSWERED_MGR_COMMANDS: commands within their deadline are simply
   * concurrent (a CO creating volumes side by side), not unanswered.
   */
  private mgrAbandoned = 0;
  private whenIdle: (() => void) | undefined;

  private constructor(
    private readonly handle: Pointer,
    private readonly options: ConnectOptions,
  ) {}

  /** Mgr commands that may be left unanswered at once before new ones are refused (ETIMEDOUT: the mgr is not answering). */
  static readonly MAX_UNANSWERED_MGR_COMMANDS = 4;

  private async tracked<T>(call: Promise<T>): Promise<T> {
    this.running++;
    try {
      return await call;
    } finally {
      this.running--;
      if (this.running === 0) this.whenIdle?.();
    }
  }

  static async connect(o: ConnectOptions): Promise<Rados> {
    return new Rados(await Rados.open(o, o.timeoutSeconds), o);
  }

  /** A connected rados_t; monOpTimeoutSeconds 0: librados never gives up on a command itself. */
  private static async open(o: ConnectOptions, monOpTimeoutSeconds: number): Promise<Pointer> {
    const out: Pointer[] = [null];
    check(fn('create2')(out, 'ceph', `client.${o.user}`, 0n), 'rados_create2');
    const handle = out[0];
    const set = (option: string, value: string) => check(fn('confSet')(handle, option, value), `rados_conf_set ${option}`);
    try {
      set('mon_host', monHost(o.monitors));
      set('key', o.key);
      const t = String(o.timeoutSeconds);
      set('client_mount_timeout', t);
      set('rados_mon_op_timeout', String(monOpTimeoutSeconds));
      set('rados_osd_op_timeout', t);
      // librados logs to stderr by default; the driver's own logs say what matters.
      set('log_to_stderr', 'false');
      set('err_to_stderr', 'false');
      set('log_file', '');
      // No admin socket, no config file: nothing of this client is left on disk.
      set('admin_socket', '');
      check(await callAsync(fn('connect'), [handle]), 'rados_connect');
    } catch (e) {
      await callAsync(fn('shutdown'), [handle]).catch(() => undefined);
      throw e;
    }
    return handle;
  }

  /** The pool's ID, or undefined when there is no such pool. */
  async poolId(name: string): Promise<number | undefined> {
    const r = await this.tracked(callAsync(fn('poolLookup'), [this.handle, name]));
    const n = typeof r === 'bigint' ? Number(r) : (r as number);
    if (n === -osConstants.errno.ENOENT) return undefined;
    return check(n, `rados_pool_lookup ${name}`);
  }

  /** The pool's name, or undefined when there is no pool with that ID. */
  async poolName(id: number): Promise<string | undefined> {
    const buf = Buffer.alloc(512);
    const r = (await this.tracked(callAsync(fn('poolReverseLookup'), [this.handle, BigInt(id), buf, buf.length]))) as number;
    if (r === -osConstants.errno.ENOENT) return undefined;
    check(r, `rados_pool_reverse_lookup ${id}`);
    return buf.subarray(0, buf.indexOf(0)).toString('utf8');
  }

  /**
   * An I/O context on the pool (one per pool and RADOS namespace, kept for the connection's
   * lifetime). The namespace is fixed at creation: a shared context must never switch it.
   */
  ioctx(poolId: number, poolName: string, namespace = ''): Promise<IoCtx> {
    const cacheKey = namespace === '' ? poolId : `${poolId}/${namespace}`;
    let io = this.ioctxs.get(cacheKey);
    if (!io) {
      io = (async () => {
        const out: Pointer[] = [null];
        check(fn('ioctxCreate2')(this.handle, BigInt(poolId), out), `rados_ioctx_create2 ${poolName}`);
        if (namespace !== '') fn('ioctxSetNamespace')(out[0], namespace);
        return new IoCtx(out[0], poolId, namespace === '' ? poolName : `${poolName}/${namespace}`);
      })();
      io.catch(() => this.ioctxs.delete(cacheKey));
      this.ioctxs.set(cacheKey, io);
    }
    return io;
  }

  /**
   * A monitor command (the JSON form `ceph` sends, e.g. {"prefix": "fs dump", "format": "json"}).
   * Throws CephError carrying the monitor's status text for a negative return.
   */
  monCommand(cmd: Record<string, unknown>): Promise<CommandResult> {
    return this.command('monCommand', cmd);
  }

  /**
   * A command served by the active mgr (its modules: volumes' `fs subvolume …`). It waits
   * --ceph-timeout for the answer unless `patience` says otherwise (a longer wait, the caller's
   * signal); a command left unanswered throws UnansweredMgrCommand (mgr-wait.ts): it may still
   * take effect, and its `answer` settles when the mgr answers after all.
   */
  mgrCommand(cmd: Record<string, unknown>, patience: MgrPatience = {}): Promise<CommandResult> {
    return this.command('mgrCommand', cmd, patience);
  }

  private async command(which: 'monCommand' | 'mgrCommand', cmd: Record<string, unknown>, patience: MgrPatience = {}): Promise<CommandResult> {
    if (which === 'monCommand') return this.nativeCommand(which, this.handle, cmd);
    const op = `mgr command "${String(cmd['prefix'])}"`;
    if (this.closed) throw new CephError(op, 108, 'the connection is shutting down');
    // Not sent at all once the caller is gone: nothing to wait for, nothing that may happen later.
    if (patience.signal?.aborted) throw new CephError(op, osConstants.errno.ECANCELED, 'not sent: the caller stopped waiting');
    if (this.mgrAbandoned >= Rados.MAX_UNANSWERED_MGR_COMMANDS) {
      throw new CephError(op, osConstants.errno.ETIMEDOUT, `not sent: ${this.mgrAbandoned} earlier mgr commands are still unanswered past their deadline (the mgr is busy or not running)`);
    }
    this.mgrHandle ??= this.tracked(Rados.open(this.options, 0));
    this.mgrHandle.catch(() => (this.mgrHandle = undefined));
    const handle = await this.mgrHandle;
    let abandoned = false;
    const native = this.nativeCommand(which, handle, cmd).finally(() => {
      if (abandoned) this.mgrAbandoned--;
    });
    native.catch(() => undefined);
    try {
      return await awaitAnswer(native, op, {
        waitMs: patience.waitMs ?? this.options.timeoutSeconds * 1000,
        signal: patience.signal,
        onAbandon: () => {
          abandoned = true;
          this.mgrAbandoned++;
        },
      });
    } catch (e) {
      if (abandoned && e instanceof UnansweredMgrCommand) patience.onUnanswered?.(e.answer, op);
      throw e;
    }
  }

  private async nativeCommand(which: 'monCommand' | 'mgrCommand', handle: Pointer, cmd: Record<string, unknown>): Promise<CommandResult> {
    const outbuf: Pointer[] = [null];
    const outlen = [0];
    const outs: Pointer[] = [null];
    const outslen = [0];
    const r = (await this.tracked(callAsync(fn(which), [handle, [JSON.stringify(cmd)], 1, null, 0, outbuf, outlen, outs, outslen]))) as number;
    const take = (p: Pointer, len: number): string => {
      if (!p) return '';
      try {
        return len > 0 ? Buffer.from(koffi.decode(p, 'uint8_t', len) as number[]).toString('utf8') : '';
      } finally {
        fn('bufferFree')(p);
      }
    };
    const out = take(outbuf[0], Number(outlen[0]));
    const status = take(outs[0], Number(outslen[0])).trim();
    if (r < 0) throw new CephError(`${which === 'mgrCommand' ? 'mgr' : 'mon'} command "${String(cmd['prefix'])}"`, -r, status);
    return { out, status };
  }

  /**
   * Frees the clients once no native call runs on them (waiting up to waitMs). A call still
   * running then (a mgr that never answered) keeps them allocated: false, and nothing is freed.
   */
  async shutdown(waitMs = this.options.timeoutSeconds * 2_000 + 5_000): Promise<boolean> {
    if (this.closed) return true;
    this.closed = true;
    if (this.running > 0) {
      const idle = await new Promise<boolean>((resolve) => {
        const timer = setTimeout(() => resolve(false), waitMs);
        this.whenIdle = () => {
          clearTimeout(timer);
          resolve(true);
        };
      });
      if (!idle) return false;
    }
    for (const io of this.ioctxs.values()) {
      const ctx = await io.catch(() => undefined);
      if (ctx) fn('ioctxDestroy')(ctx.handle);
    }
    this.ioctxs.clear();
    const mgr = await this.mgrHandle?.catch(() => undefined);
    if (mgr !== undefined) await callAsync(fn('shutdown'), [mgr]);
    await callAsync(fn('shutdown'), [this.handle]);
    return true;
  }
}

/** One step of an atomic write operation on an object. */
export type WriteStep =
  | { create: 'exclusive' | 'idempotent' }
  /** Fails the whole operation with ECANCELED unless key holds value ('' = the key is absent). */
  | { omapEquals: [key: string, value: string] }
  | { omapSet: Record<string, string> }
  | { omapRemove: string[] }
  | { remove: true };

const LIBRADOS_CMPXATTR_OP_EQ = 1;
const LIBRADOS_CREATE_EXCLUSIVE = 1;

/** An I/O context on one pool. */
export class IoCtx {
  constructor(
    readonly handle: Pointer,
    readonly poolId: number,
    readonly poolName: string,
  ) {}

  /**
   * Runs the steps as one atomic operation on oid: all happen or none. Throws CephError
   * (ECANCELED for a failed omapEquals, EEXIST for an exclusive create of an existing object,
   * ENOENT for omap steps on a missing object).
   */
  async write(oid: string, steps: WriteStep[]): Promise<void> {
    const op = fn('createWriteOp')();
    try {
      for (const step of steps) {
        if ('create' in step) fn('writeOpCreate')(op, step.create === 'exclusive' ? LIBRADOS_CREATE_EXCLUSIVE : 0, null);
        else if ('omapEquals' in step) {
          const [k, v] = step.omapEquals;
          fn('writeOpOmapCmp2')(op, k, LIBRADOS_CMPXATTR_OP_EQ, v, Buffer.byteLength(k), Buffer.byteLength(v), null);
        } else if ('omapSet' in step) {
          const entries = Object.entries(step.omapSet);
          if (entries.length === 0) continue;
          const keys = entries.map(([k]) => k);
          const vals = entries.map(([, v]) => v);
          fn('writeOpOmapSet2')(
            op,
            keys,
            vals,
            keys.map((k) => Buffer.byteLength(k)),
            vals.map((v) => Buffer.byteLength(v)),
            entries.length,
          );
        } else if ('omapRemove' in step) {
          if (step.omapRemove.length === 0) continue;
          fn('writeOpOmapRmKeys2')(op, step.omapRemove, step.omapRemove.map((k) => Buffer.byteLength(k)), step.omapRemove.length);
        } else fn('writeOpRemove')(op);
      }
      check(await callAsync(fn('writeOpOperate2'), [op, this.handle, oid, null, 0]), `write ${this.poolName}/${oid}`);
    } finally {
      fn('releaseWriteOp')(op);
    }
  }

  /**
   * Calls an object class method (rados_exec), e.g. cls "rbd" method "trash_state_set" on
   * "rbd_trash"; input is the method's Ceph-encoded arguments. Returns what the method wrote.
   */
  async exec(oid: string, cls: string, method: string, input: Buffer, maxOut = 4096): Promise<Buffer> {
    const out = Buffer.alloc(maxOut);
    const r = (await callAsync(fn('exec'), [this.handle, oid, cls, method, input, input.length, out, out.length])) as number;
    const n = check(r, `${cls}.${method} on ${this.poolName}/${oid}`);
    return out.subarray(0, n);
  }

  /** The values of keys on oid (absent keys are left out); undefined when the object does not exist. */
  async omapGet(oid: string, keys: string[]): Promise<Map<string, string> | undefined> {
    return this.read(oid, (op, iter, prval) =>
      fn('readOpOmapGetValsByKeys2')(op, keys, keys.length, keys.map((k) => Buffer.byteLength(k)), iter, prval),
    );
  }

  /** Every key of oid starting with prefix (in key order); undefined when the object does not exist. */
  async omapList(oid: string, prefix: string): Promise<Map<string, string> | undefined> {
    const all = new Map<string, string>();
    let after = '';
    for (;;) {
      const more = koffi.alloc('uint8_t', 1);
      try {
        const page = await this.read(oid, (op, iter, prval) => fn('readOpOmapGetVals2')(op, after, prefix, 1000n, iter, more, prval));
        if (!page) return undefined;
        for (const [k, v] of page) all.set(k, v);
        const last = [...page.keys()].at(-1);
        if (!(koffi.decode(more, 'uint8_t') as number) || last === undefined) return all;
        after = last;
      } finally {
        koffi.free(more);
      }
    }
  }

  /**
   * One read operation. The iterator and return-value pointers are written when the operation
   * runs, not when it is built, so they live in memory allocated here, not in koffi's temporaries.
   */
  private async read(oid: string, build: (op: Pointer, iter: Pointer, prval: Pointer) => void): Promise<Map<string, string> | undefined> {
    const op = fn('createReadOp')();
    const iterPtr = koffi.alloc('void *', 1);
    const prval = koffi.alloc('int', 1);
    try {
      koffi.encode(iterPtr, 'void *', null);
      build(op, iterPtr, prval);
      const r = (await callAsync(fn('readOpOperate'), [op, this.handle, oid, 0])) as number;
      if (r === -osConstants.errno.ENOENT) return undefined;
      check(r, `read ${this.poolName}/${oid}`);
      check(koffi.decode(prval, 'int') as number, `omap read ${this.poolName}/${oid}`);
      const iter = koffi.decode(iterPtr, 'void *') as Pointer;
      const out = new Map<string, string>();
      if (!iter) return out;
      try {
        for (;;) {
          const k: Pointer[] = [null];
          const v: Pointer[] = [null];
          const kl = [0];
          const vl = [0];
          check(fn('omapGetNext2')(iter, k, v, kl, vl), `omap iterate ${oid}`);
          if (!k[0]) break;
          const key = koffi.decode(k[0], 'char', Number(kl[0])) as string;
          const val = Number(vl[0]) === 0 ? '' : (koffi.decode(v[0], 'char', Number(vl[0])) as string);
          out.set(key, val);
        }
      } finally {
        fn('omapGetEnd')(iter);
      }
      return out;
    } finally {
      fn('releaseReadOp')(op);
      koffi.free(iterPtr);
      koffi.free(prval);
    }
  }
}
