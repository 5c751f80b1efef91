/**
 * koffi bindings to librbd.so.1: the image operations of the rbd backend (create, clone, resize,
 * snapshots, flatten, watchers, parents, trash). Calls that talk to the cluster run on koffi's
 * worker threads (async); only in-memory accessors (stat, option setters) are synchronous.
 */
import koffi from 'koffi';
import type { LibraryHandle, TypeObject } from 'koffi';
import { callAsync, check, isCephError, type Binding, type IoCtx, type Pointer } from '../ceph/rados.js';

const DECLS = {
  optsCreate: 'void rbd_image_options_create(_Out_ void **opts)',
  optsDestroy: 'void rbd_image_options_destroy(void *opts)',
  optsSetString: 'int rbd_image_options_set_string(void *opts, int optname, const char *optval)',
  optsSetUint64: 'int rbd_image_options_set_uint64(void *opts, int optname, uint64_t optval)',
  create4: 'int rbd_create4(void *io, const char *name, uint64_t size, void *opts)',
  clone3: 'int rbd_clone3(void *p_ioctx, const char *p_name, const char *p_snapname, void *c_ioctx, const char *c_name, void *c_opts)',
  remove: 'int rbd_remove(void *io, const char *name)',
  trashMove: 'int rbd_trash_move(void *io, const char *name, uint64_t delay)',
  trashRemove: 'int rbd_trash_remove(void *io, const char *image_id, bool force)',
  open: 'int rbd_open(void *io, const char *name, _Out_ void **image, const char *snap_name)',
  openById: 'int rbd_open_by_id(void *io, const char *id, _Out_ void **image, const char *snap_name)',
  openReadOnly: 'int rbd_open_read_only(void *io, const char *name, _Out_ void **image, const char *snap_name)',
  openByIdReadOnly: 'int rbd_open_by_id_read_only(void *io, const char *id, _Out_ void **image, const char *snap_name)',
  close: 'int rbd_close(void *image)',
  stat: 'int rbd_stat(void *image, _Out_ rbd_image_info_t *info, size_t infosize)',
  getId: 'int rbd_get_id(void *image, uint8_t *id, size_t id_len)',
  resize: 'int rbd_resize(void *image, uint64_t size)',
  snapCreate: 'int rbd_snap_create(void *image, const char *snapname)',
  snapRemove: 'int rbd_snap_remove(void *image, const char *snapname)',
  snapExists: 'int rbd_snap_exists(void *image, const char *snapname, _Out_ bool *exists)',
  snapList: 'int rbd_snap_list(void *image, void *snaps, _Inout_ int *max_snaps)',
  snapListEnd: 'void rbd_snap_list_end(void *snaps)',
  flatten: 'int rbd_flatten(void *image)',
  getParent: 'int rbd_get_parent(void *image, void *parent_image, void *parent_snap)',
  linkedSpecCleanup: 'void rbd_linked_image_spec_cleanup(void *image)',
  snapSpecCleanup: 'void rbd_snap_spec_cleanup(void *snap)',
  watchersList: 'int rbd_watchers_list(void *image, void *watchers, _Inout_ size_t *max_watchers)',
  watchersCleanup: 'void rbd_watchers_list_cleanup(void *watchers, size_t num_watchers)',
  metadataGet: 'int rbd_metadata_get(void *image, const char *key, uint8_t *value, _Inout_ size_t *val_len)',
  metadataSet: 'int rbd_metadata_set(void *image, const char *key, const char *value)',
  trashList: 'int rbd_trash_list(void *io, void *entries, _Inout_ size_t *num_entries)',
  trashListCleanup: 'void rbd_trash_list_cleanup(void *entries, size_t num_entries)',
  // Groups (group snapshots: several images cut at one point in time).
  groupCreate: 'int rbd_group_create(void *io, const char *name)',
  groupRemove: 'int rbd_group_remove(void *io, const char *name)',
  groupImageAdd: 'int rbd_group_image_add(void *group_io, const char *group_name, void *image_io, const char *image_name)',
  groupImageRemove: 'int rbd_group_image_remove(void *group_io, const char *group_name, void *image_io, const char *image_name)',
  groupSnapCreate: 'int rbd_group_snap_create(void *group_io, const char *group_name, const char *snap_name)',
  groupSnapRemove: 'int rbd_group_snap_remove(void *group_io, const char *group_name, const char *snap_name)',
  snapGetNamespaceType: 'int rbd_snap_get_namespace_type(void *image, uint64_t snap_id, _Out_ int *namespace_type)',
  snapGetGroupNamespace: 'int rbd_snap_get_group_namespace(void *image, uint64_t snap_id, void *group_snap, size_t group_snap_size)',
  snapGroupNamespaceCleanup: 'int rbd_snap_group_namespace_cleanup(void *group_snap, size_t group_snap_size)',
  snapSetById: 'int rbd_snap_set_by_id(void *image, uint64_t snap_id)',
  copy3: 'int rbd_copy3(void *image, void *dest_io, const char *destname, void *dest_opts)',
} as const;

const RBD_IMAGE_OPTION_FEATURES = 1;
const RBD_IMAGE_OPTION_ORDER = 2;
const RBD_IMAGE_OPTION_DATA_POOL = 10;
const RBD_IMAGE_OPTION_CLONE_FORMAT = 12;

/** librbd's feature bits by their `rbd` names (include/rbd/features.h). */
export const FEATURES: Readonly<Record<string, bigint>> = {
  layering: 1n << 0n,
  'exclusive-lock': 1n << 2n,
  'object-map': 1n << 3n,
  'fast-diff': 1n << 4n,
  'deep-flatten': 1n << 5n,
  journaling: 1n << 6n,
};

let lib: LibraryHandle | undefined;
const bindings = new Map<string, Binding>();
let types:
  | { info: TypeObject; linkedSpec: TypeObject; snapSpec: TypeObject; snapInfo: TypeObject; watcher: TypeObject; trashInfo: TypeObject; groupNs: TypeObject }
  | undefined;

function structs() {
  types ??= {
    info: koffi.struct('rbd_image_info_t', {
      size: 'uint64_t',
      obj_size: 'uint64_t',
      num_objs: 'uint64_t',
      order: 'int',
      block_name_prefix: koffi.array('char', 24),
      parent_pool: 'int64_t',
      parent_name: koffi.array('char', 96),
    }),
    linkedSpec: koffi.struct('rbd_linked_image_spec_t', {
      pool_id: 'int64_t',
      pool_name: 'void *',
      pool_namespace: 'void *',
      image_id: 'void *',
      image_name: 'void *',
      trash: 'bool',
    }),
    snapSpec: koffi.struct('rbd_snap_spec_t', { id: 'uint64_t', namespace_type: 'int', name: 'void *' }),
    snapInfo: koffi.struct('rbd_snap_info_t', { id: 'uint64_t', size: 'uint64_t', name: 'void *' }),
    watcher: koffi.struct('rbd_image_watcher_t', { addr: 'void *', id: 'int64_t', cookie: 'uint64_t' }),
    groupNs: koffi.struct('rbd_snap_group_namespace_t', { group_pool: 'int64_t', group_name: 'void *', group_snap_name: 'void *' }),
    trashInfo: koffi.struct('rbd_trash_image_info_t', {
      id: 'void *',
      name: 'void *',
      source: 'int',
      deletion_time: 'int64_t',
      deferment_end_time: 'int64_t',
    }),
  };
  return types;
}

function fn(name: keyof typeof DECLS): Binding {
  let b = bindings.get(name);
  if (!b) {
    structs();
    try {
      lib ??= koffi.load('librbd.so.1');
    } catch (e) {
      throw new Error(`cannot load librbd.so.1 (install the librbd1 package): ${(e as Error).message}`);
    }
    b = lib.func(DECLS[name]) as unknown as Binding;
    bindings.set(name, b);
  }
  return b;
}

const run = async (name: keyof typeof DECLS, args: unknown[], op: string): Promise<number> => check(await callAsync(fn(name), args), op);

function str(ptr: unknown): string {
  return ptr ? (koffi.decode(ptr, 'char', -1) as string) : '';
}

export interface ImageOptions {
  features?: bigint;
  /** log2 of the object size (22 = 4 MiB). */
  order?: number;
  dataPool?: string;
  /** Clones only: 2 = clone v2 (no protected snapshots; a parent snapshot can be removed into the trash). */
  cloneFormat?: 1 | 2;
}

function withOptions<T>(o: ImageOptions, use: (opts: Pointer) => Promise<T>): Promise<T> {
  const out: Pointer[] = [null];
  fn('optsCreate')(out);
  const opts = out[0];
  const setU64 = (k: number, v: bigint) => check(fn('optsSetUint64')(opts, k, v), 'rbd_image_options_set_uint64');
  try {
    if (o.features !== undefined) setU64(RBD_IMAGE_OPTION_FEATURES, o.features);
    if (o.order !== undefined) setU64(RBD_IMAGE_OPTION_ORDER, BigInt(o.order));
    if (o.cloneFormat !== undefined) setU64(RBD_IMAGE_OPTION_CLONE_FORMAT, BigInt(o.cloneFormat));
    if (o.dataPool) check(fn('optsSetString')(opts, RBD_IMAGE_OPTION_DATA_POOL, o.dataPool), 'rbd_image_options_set_string data_pool');
  } catch (e) {
    fn('optsDestroy')(opts);
    throw e;
  }
  return use(opts).finally(() => fn('optsDestroy')(opts));
}

export async function createImage(io: IoCtx, name: string, size: number, o: ImageOptions): Promise<void> {
  await withOptions(o, (opts) => run('create4', [io.handle, name, BigInt(size), opts], `rbd_create4 ${io.poolName}/${name}`));
}

export async function cloneImage(parent: IoCtx, parentName: string, snap: string, child: IoCtx, childName: string, o: ImageOptions): Promise<void> {
  await withOptions(o, (opts) =>
    run('clone3', [parent.handle, parentName, snap, child.handle, childName, opts], `rbd_clone3 ${parent.poolName}/${parentName}@${snap} → ${child.poolName}/${childName}`),
  );
}

/** Removes the image; ENOENT when it is not there. ENOTEMPTY when it still has snapshots. */
export async function removeImage(io: IoCtx, name: string): Promise<void> {
  await run('remove', [io.handle, name], `rbd_remove ${io.poolName}/${name}`);
}

export async function trashMove(io: IoCtx, name: string): Promise<void> {
  await run('trashMove', [io.handle, name, 0n], `rbd_trash_move ${io.poolName}/${name}`);
}

export async function trashRemove(io: IoCtx, id: string): Promise<void> {
  await run('trashRemove', [io.handle, id, false], `rbd_trash_remove ${io.poolName}/${id}`);
}

/** cls_rbd's TrashImageState (cls/rbd/cls_rbd_types.h), encoded as a u8. */
export const TrashState = { NORMAL: 0, MOVING: 1, REMOVING: 2, RESTORING: 3 } as const;
export type TrashState = (typeof TrashState)[keyof typeof TrashState];

/**
 * Sets the state of a trash entry, as cls_client::trash_state_set does: cls "rbd" method
 * "trash_state_set" on the pool's rbd_trash object, arguments (id: string, state: u8,
 * expect_state: u8). A no-op when already in state; ESTALE when in neither.
 */
export async function trashStateSet(io: IoCtx, id: string, state: TrashState, expect: TrashState): Promise<void> {
  const idBytes = Buffer.from(id, 'utf8');
  const input = Buffer.alloc(4 + idBytes.length + 2);
  input.writeUInt32LE(idBytes.length, 0);
  idBytes.copy(input, 4);
  input.writeUInt8(state, 4 + idBytes.length);
  input.writeUInt8(expect, 5 + idBytes.length);
  await io.exec('rbd_trash', 'rbd', 'trash_state_set', input, 16);
}

export interface TrashEntry {
  id: string;
  name: string;
  /** RBD_TRASH_IMAGE_SOURCE_*: 0 = moved there by a user (us). */
  source: number;
}

/** Images in the pool's RBD trash. */
export async function trashList(io: IoCtx): Promise<TrashEntry[]> {
  const { trashInfo } = structs();
  for (let max = 32; ; max *= 4) {
    const buf = koffi.alloc(trashInfo, max);
    const count = [max];
    try {
      const r = (await callAsync(fn('trashList'), [io.handle, buf, count])) as number;
      if (r === -34 /* ERANGE */) continue;
      check(r, `rbd_trash_list ${io.poolName}`);
      const n = Number(count[0]);
      const out: TrashEntry[] = [];
      for (let i = 0; i < n; i++) {
        const e = koffi.decode(buf, i * koffi.sizeof(trashInfo), trashInfo) as Record<string, unknown>;
        out.push({ id: str(e['id']), name: str(e['name']), source: Number(e['source']) });
      }
      fn('trashListCleanup')(buf, n);
      return out;
    } finally {
      koffi.free(buf);
    }
  }
}

/** RBD_SNAP_NAMESPACE_TYPE_GROUP: a snapshot an RBD group snapshot made on a member image. */
const SNAP_NAMESPACE_GROUP = 1;

const ignoring = async (call: Promise<unknown>, ...codes: string[]): Promise<void> => {
  await call.then(
    () => undefined,
    (e: unknown) => {
      if (!isCephError(e, ...codes)) throw e;
    },
  );
};

/** An RBD group in io's pool (EEXIST: there already, fine). */
export async function groupCreate(io: IoCtx, group: string): Promise<void> {
  await ignoring(run('groupCreate', [io.handle, group], `rbd_group_create ${io.poolName}/${group}`), 'EEXIST');
}

/** Removes the group (its snapshots with it; its images stay); ENOENT is fine. */
export async function groupRemove(io: IoCtx, group: string): Promise<void> {
  await ignoring(run('groupRemove', [io.handle, group], `rbd_group_remove ${io.poolName}/${group}`), 'ENOENT');
}

export async function groupImageAdd(io: IoCtx, group: string, image: string): Promise<void> {
  await ignoring(run('groupImageAdd', [io.handle, group, io.handle, image], `rbd_group_image_add ${io.poolName}/${group} ${image}`), 'EEXIST');
}

export async function groupImageRemove(io: IoCtx, group: string, image: string): Promise<void> {
  await ignoring(run('groupImageRemove', [io.handle, group, io.handle, image], `rbd_group_image_remove ${io.poolName}/${group} ${image}`), 'ENOENT');
}

/** A snapshot of every image of the group at one point in time (writes quiesced, then one cut). */
export async function groupSnapCreate(io: IoCtx, group: string, snap: string): Promise<void> {
  await ignoring(run('groupSnapCreate', [io.handle, group, snap], `rbd_group_snap_create ${io.poolName}/${group}@${snap}`), 'EEXIST');
}

export async function groupSnapRemove(io: IoCtx, group: string, snap: string): Promise<void> {
  await ignoring(run('groupSnapRemove', [io.handle, group, snap], `rbd_group_snap_remove ${io.poolName}/${group}@${snap}`), 'ENOENT');
}

export interface ImageInfo {
  size: number;
  objectSize: number;
}

export interface ParentSpec {
  poolId: number;
  imageId: string;
  imageName: string;
  /** The parent image is in the trash (removed while it still had clones). */
  trash: boolean;
  snapName: string;
}

export interface Watcher {
  addr: string;
  /** The client's global ID (client.<id>). */
  id: number;
  cookie: bigint;
}

export interface OpenOptions {
  byId?: boolean;
  readOnly?: boolean;
}

/** An open image (rbd_image_t). close() it. */
export class Image {
  private constructor(
    private readonly handle: Pointer,
    readonly io: IoCtx,
    readonly name: string,
  ) {}

  /**
   * Opens by name, or by ID (which also finds images in the trash). A read-only open registers
   * no watch: use it to look (watchers, parents, sizes) without showing up as a user.
   */
  static async open(io: IoCtx, name: string, opts: OpenOptions = {}): Promise<Image> {
    const out: Pointer[] = [null];
    const which = opts.byId ? (opts.readOnly ? 'openByIdReadOnly' : 'openById') : opts.readOnly ? 'openReadOnly' : 'open';
    await run(which, [io.handle, name, out, null], `rbd_open ${io.poolName}/${name}`);
    return new Image(out[0], io, name);
  }

  /** Opens, runs use, closes. undefined (use not run) when the image does not exist. */
  static async with<T>(io: IoCtx, name: string, use: (img: Image) => Promise<T>, opts: OpenOptions = {}): Promise<T | undefined> {
    let img: Image;
    try {
      img = await Image.open(io, name, opts);
    } catch (e) {
      if (isCephError(e, 'ENOENT')) return undefined;
      throw e;
    }
    try {
      return await use(img);
    } finally {
      await img.close();
    }
  }

  private get label(): string {
    return `${this.io.poolName}/${this.name}`;
  }

  stat(): ImageInfo {
    const info: Record<string, unknown> = {};
    check(fn('stat')(this.handle, info, koffi.sizeof(structs().info)), `rbd_stat ${this.label}`);
    return { size: Number(info['size']), objectSize: Number(info['obj_size']) };
  }

  id(): string {
    const buf = Buffer.alloc(64);
    check(fn('getId')(this.handle, buf, buf.length), `rbd_get_id ${this.label}`);
    return buf.subarray(0, buf.indexOf(0)).toString('utf8');
  }

  async resize(size: number): Promise<void> {
    await run('resize', [this.handle, BigInt(size)], `rbd_resize ${this.label}`);
  }

  async snapCreate(snap: string): Promise<void> {
    await run('snapCreate', [this.handle, snap], `rbd_snap_create ${this.label}@${snap}`);
  }

  /** Removes a snapshot; one with clone v2 children moves to the snapshot trash instead. */
  async snapRemove(snap: string): Promise<void> {
    await run('snapRemove', [this.handle, snap], `rbd_snap_remove ${this.label}@${snap}`);
  }

  snapExists(snap: string): boolean {
    const out = [false];
    check(fn('snapExists')(this.handle, snap, out), `rbd_snap_exists ${this.label}@${snap}`);
    return out[0] === true;
  }

  /** Names of the image's (user) snapshots. */
  async snapList(): Promise<string[]> {
    const { snapInfo } = structs();
    for (let max = 16; ; max *= 4) {
      const buf = koffi.alloc(snapInfo, max);
      const count = [max];
      try {
        const r = (await callAsync(fn('snapList'), [this.handle, buf, count])) as number;
        if (r === -34 /* ERANGE */) continue;
        check(r, `rbd_snap_list ${this.label}`);
        const names: string[] = [];
        for (let i = 0; i < r; i++) names.push(str((koffi.decode(buf, i * koffi.sizeof(snapInfo), snapInfo) as { name: unknown }).name));
        fn('snapListEnd')(buf);
        return names;
      } finally {
        koffi.free(buf);
      }
    }
  }

  /** ID of the snapshot group snapshot `snap` of group `group` made on this image, if it has one. */
  async groupSnapId(group: string, snap: string): Promise<bigint | undefined> {
    const { snapInfo, groupNs } = structs();
    let ids: bigint[] = [];
    for (let max = 16; ; max *= 4) {
      const buf = koffi.alloc(snapInfo, max);
      const count = [max];
      try {
        const r = (await callAsync(fn('snapList'), [this.handle, buf, count])) as number;
        if (r === -34 /* ERANGE */) continue;
        check(r, `rbd_snap_list ${this.label}`);
        ids = [];
        for (let i = 0; i < r; i++) ids.push(BigInt((koffi.decode(buf, i * koffi.sizeof(snapInfo), snapInfo) as { id: number | bigint }).id));
        fn('snapListEnd')(buf);
        break;
      } finally {
        koffi.free(buf);
      }
    }
    for (const id of ids) {
      const type = [0];
      if ((fn('snapGetNamespaceType')(this.handle, id, type) as number) < 0 || type[0] !== SNAP_NAMESPACE_GROUP) continue;
      const ns = koffi.alloc(groupNs, 1);
      try {
        check(fn('snapGetGroupNamespace')(this.handle, id, ns, koffi.sizeof(groupNs)), `rbd_snap_get_group_namespace ${this.label}`);
        const v = koffi.decode(ns, groupNs) as { group_name: unknown; group_snap_name: unknown };
        const match = str(v.group_name) === group && str(v.group_snap_name) === snap;
        fn('snapGroupNamespaceCleanup')(ns, koffi.sizeof(groupNs));
        if (match) return id;
      } finally {
        koffi.free(ns);
      }
    }
    return undefined;
  }

  /** Reads from now on come from the snapshot with this ID (any namespace): the image is read-only. */
  async snapSetById(id: bigint): Promise<void> {
    await run('snapSetById', [this.handle, id], `rbd_snap_set_by_id ${this.label}@${id}`);
  }

  /** A new image with this image's data (as of the snapshot set), a full copy. */
  async copyTo(io: IoCtx, name: string, o: ImageOptions): Promise<void> {
    await withOptions(o, (opts) => run('copy3', [this.handle, io.handle, name, opts], `rbd_copy3 ${this.label} → ${io.poolName}/${name}`));
  }

  /** An image-metadata value, or undefined when the key is not set. */
  async metadataGet(key: string): Promise<string | undefined> {
    for (let size = 256; ; size *= 4) {
      const buf = Buffer.alloc(size);
      const len = [size];
      const r = (await callAsync(fn('metadataGet'), [this.handle, key, buf, len])) as number;
      if (r === -2 /* ENOENT */) return undefined;
      if (r === -34 /* ERANGE */ && size < 1 << 20) continue;
      check(r, `rbd_metadata_get ${this.label} ${key}`);
      // librbd copies the value as a C string and sets val_len only for ERANGE: up to the NUL.
      const end = buf.indexOf(0);
      return buf.subarray(0, end < 0 ? Math.min(Number(len[0]), size) : end).toString('utf8');
    }
  }

  async metadataSet(key: string, value: string): Promise<void> {
    await run('metadataSet', [this.handle, key, value], `rbd_metadata_set ${this.label} ${key}`);
  }

  async flatten(): Promise<void> {
    await run('flatten', [this.handle], `rbd_flatten ${this.label}`);
  }

  /** The image's parent (it is a clone), or undefined. */
  async parent(): Promise<ParentSpec | undefined> {
    const { linkedSpec, snapSpec } = structs();
    const p = koffi.alloc(linkedSpec, 1);
    const s = koffi.alloc(snapSpec, 1);
    try {
      const r = (await callAsync(fn('getParent'), [this.handle, p, s])) as number;
      if (r === -2 /* ENOENT: not a clone */) return undefined;
      check(r, `rbd_get_parent ${this.label}`);
      const ps = koffi.decode(p, linkedSpec) as Record<string, unknown>;
      const ss = koffi.decode(s, snapSpec) as Record<string, unknown>;
      const out = {
        poolId: Number(ps['pool_id']),
        imageId: str(ps['image_id']),
        imageName: str(ps['image_name']),
        trash: ps['trash'] === true,
        snapName: str(ss['name']),
      };
      fn('linkedSpecCleanup')(p);
      fn('snapSpecCleanup')(s);
      return out;
    } finally {
      koffi.free(p);
      koffi.free(s);
    }
  }

  /** Clients watching the image (each open image, krbd mapping or rbd-nbd/rbd-fuse process). */
  async watchers(): Promise<Watcher[]> {
    const { watcher } = structs();
    for (let max = 8; ; max *= 4) {
      const buf = koffi.alloc(watcher, max);
      const count = [max];
      try {
        const r = (await callAsync(fn('watchersList'), [this.handle, buf, count])) as number;
        if (r === -34 /* ERANGE */) continue;
        check(r, `rbd_watchers_list ${this.label}`);
        const n = Number(count[0]);
        const out: Watcher[] = [];
        for (let i = 0; i < n; i++) {
          const w = koffi.decode(buf, i * koffi.sizeof(watcher), watcher) as Record<string, unknown>;
          out.push({ addr: str(w['addr']), id: Number(w['id']), cookie: BigInt(w['cookie'] as bigint) });
        }
        fn('watchersCleanup')(buf, n);
        return out;
      } finally {
        koffi.free(buf);
      }
    }
  }

  async close(): Promise<void> {
    await run('close', [this.handle], `rbd_close ${this.label}`);
  }
}
