// The pod volume types that need no CSI driver: emptyDir, hostPath, configMap and secret, and
// subPath resolution for every volume, as the kubelet does them.
import { chmod, lstat, mkdir, readdir, realpath, rename, rm, rmdir, stat, writeFile } from 'node:fs/promises';
import { dirname, isAbsolute, join, relative, sep } from 'node:path';
import type { Logger } from 'pino';
import type { Mounter } from '../../driver/mount/mount.js';
import type { ConfigMap, Secret, Volume } from '../api/types/core.js';
import { quantityValue } from '../api/quantity.js';
import { sourceKinds, unsupportedReason } from './unsupported-volumes.js';
import { rootNeedsChange, setVolumeOwnership } from './volume-ownership.js';
import { CONFIG_MAP_PLUGIN_DIR, EMPTY_DIR_PLUGIN_DIR, type NodeLayout, SECRET_PLUGIN_DIR } from './layout.js';

/** A volume the pod spec asks for that cannot be set up; the message goes into a FailedMount event. */
export class PodVolumeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PodVolumeError';
  }
}

interface KeyToPath {
  key: string;
  path: string;
  mode?: number;
}

interface ProjectedSource {
  items?: KeyToPath[];
  defaultMode?: number;
  optional?: boolean;
}

export type ConfigMapVolumeSource = ProjectedSource & { name?: string };
export type SecretVolumeSource = ProjectedSource & { secretName?: string };

export interface PodVolumeLookups {
  configMap(namespace: string, name: string): ConfigMap | undefined;
  secret(namespace: string, name: string): Secret | undefined;
}

/** hostPath `type` checks, with the kubelet's wording. */
async function checkHostPath(path: string, type: string): Promise<void> {
  if (!isAbsolute(path)) throw new PodVolumeError(`hostPath ${JSON.stringify(path)} must be an absolute path`);
  const info = await stat(path).catch(() => undefined);
  switch (type) {
    case '':
      return;
    case 'DirectoryOrCreate':
      if (info === undefined) await mkdir(path, { recursive: true, mode: 0o755 });
      else if (!info.isDirectory()) throw new PodVolumeError(`hostPath type check failed: ${path} is not a directory`);
      return;
    case 'FileOrCreate':
      if (info === undefined) {
        // As in Kubernetes, the parent directory is not created.
        await writeFile(path, '', { flag: 'wx', mode: 0o644 }).catch((err: NodeJS.ErrnoException) => {
          if (err.code !== 'EEXIST') throw new PodVolumeError(`hostPath type check failed: cannot create file ${path}: ${err.code ?? err.message}`);
        });
      } else if (!info.isFile()) throw new PodVolumeError(`hostPath type check failed: ${path} is not a file`);
      return;
    case 'Directory':
      if (info?.isDirectory() !== true) throw new PodVolumeError(`hostPath type check failed: ${path} is not a directory`);
      return;
    case 'File':
      if (info?.isFile() !== true) throw new PodVolumeError(`hostPath type check failed: ${path} is not a file`);
      return;
    case 'Socket':
      if (info?.isSocket() !== true) throw new PodVolumeError(`hostPath type check failed: ${path} is not a socket file`);
      return;
    case 'CharDevice':
      if (info?.isCharacterDevice() !== true) throw new PodVolumeError(`hostPath type check failed: ${path} is not a character device`);
      return;
    case 'BlockDevice':
      if (info?.isBlockDevice() !== true) throw new PodVolumeError(`hostPath type check failed: ${path} is not a block device`);
      return;
    default:
      throw new PodVolumeError(`hostPath type ${JSON.stringify(type)} is not supported`);
  }
}

/**
 * Where a volumeMount with subPath points: inside the volume, never outside it. The subPath is
 * created as a directory when missing (as the kubelet does); symlinks may not lead out.
 */
export async function resolveSubPath(volumePath: string, subPath: string): Promise<string> {
  if (subPath === '') return volumePath;
  if (isAbsolute(subPath) || subPath.split('/').includes('..') || subPath.includes('\0')) {
    throw new PodVolumeError(`subPath ${JSON.stringify(subPath)} must be a relative path without ".."`);
  }
  const wanted = join(volumePath, subPath);
  if ((await lstat(wanted).catch(() => undefined)) === undefined) await mkdir(wanted, { recursive: true, mode: 0o755 });
  const [base, real] = await Promise.all([realpath(volumePath), realpath(wanted)]);
  const rel = relative(base, real);
  if (rel.startsWith(`..${sep}`) || rel === '..' || isAbsolute(rel)) throw new PodVolumeError(`subPath ${JSON.stringify(subPath)} leads outside the volume`);
  return real;
}

function decoded(values: Record<string, string> | undefined): Map<string, Buffer> {
  return new Map(Object.entries(values ?? {}).map(([k, v]) => [k, Buffer.from(v, 'base64')]));
}

export class PodVolumes {
  constructor(
    private readonly layout: NodeLayout,
    private readonly mounter: Mounter,
    private readonly lookups: PodVolumeLookups,
    private readonly log: Logger,
  ) {}

  /** Sets up one non-PVC volume of a pod and returns its path on the host; undefined for PVC volumes. */
  async setUp(uid: string, namespace: string, volume: Volume, fsGroup?: number): Promise<string | undefined> {
    if (volume.persistentVolumeClaim !== undefined) return undefined;
    if (volume.hostPath !== undefined) {
      await checkHostPath(volume.hostPath.path, volume.hostPath.type ?? '');
      return volume.hostPath.path;
    }
    if (volume.emptyDir !== undefined) return this.emptyDir(uid, volume.name, volume.emptyDir, fsGroup);
    const configMap = volume['configMap'] as ConfigMapVolumeSource | undefined;
    if (configMap !== undefined) {
      const cm = this.lookups.configMap(namespace, configMap.name ?? '');
      if (cm === undefined && configMap.optional !== true) throw new PodVolumeError(`configmap "${configMap.name ?? ''}" not found`);
      const files = new Map<string, Buffer>([
        ...[...Object.entries(cm?.data ?? {})].map(([k, v]) => [k, Buffer.from(v, 'utf8')] as [string, Buffer]),
        ...decoded(cm?.binaryData),
      ]);
      return this.projected(uid, CONFIG_MAP_PLUGIN_DIR, volume.name, files, configMap, false, fsGroup);
    }
    const secret = volume['secret'] as SecretVolumeSource | undefined;
    if (secret !== undefined) {
      const s = this.lookups.secret(namespace, secret.secretName ?? '');
      if (s === undefined && secret.optional !== true) throw new PodVolumeError(`secret "${secret.secretName ?? ''}" not found`);
      const files = new Map([...decoded(s?.data), ...Object.entries(s?.stringData ?? {}).map(([k, v]) => [k, Buffer.from(v, 'utf8')] as [string, Buffer])]);
      return this.projected(uid, SECRET_PLUGIN_DIR, volume.name, files, secret, true, fsGroup);
    }
    const kinds = sourceKinds(volume);
    if (kinds.length === 0) throw new PodVolumeError(`volume "${volume.name}": no volume source`);
    throw new PodVolumeError(`MountVolume.SetUp failed for volume "${volume.name}" : ${unsupportedReason(kinds[0] ?? '')}`);
  }

  private async emptyDir(uid: string, name: string, source: { medium?: string; sizeLimit?: string }, fsGroup: number | undefined): Promise<string> {
    const path = this.layout.volumeDir(uid, EMPTY_DIR_PLUGIN_DIR, name);
    await mkdir(path, { recursive: true, mode: 0o777 });
    if (source.medium === 'Memory') {
      if (!(await this.mounter.isMountPoint(path))) {
        const size = source.sizeLimit !== undefined ? quantityValue(source.sizeLimit) : undefined;
        await this.mounter.mount('tmpfs', path, 'tmpfs', ['mode=0777', ...(size !== undefined && size > 0 ? [`size=${size}`] : [])]);
      }
    } else if (source.medium !== undefined && source.medium !== '') {
      throw new PodVolumeError(`emptyDir medium ${JSON.stringify(source.medium)} is not supported (use "" or "Memory")`);
    }
    // emptyDir is world-writable, as in Kubernetes; with the pod's fsGroup it gets that group too
    // (the walk only when its root does not have it yet: this runs at every sync).
    await chmod(path, fsGroup === undefined ? 0o777 : 0o2777);
    if (fsGroup !== undefined && (await rootNeedsChange(path, fsGroup))) await setVolumeOwnership(path, fsGroup, undefined);
    return path;
  }

  /**
   * configMap and secret volumes: the keys (or the listed items) as files, written atomically each
   * time the pod is synced. Secrets live on a tmpfs, never on the node's disk.
   */
  private async projected(uid: string, plugin: string, name: string, files: Map<string, Buffer>, source: ProjectedSource, memory: boolean, fsGroup: number | undefined): Promise<string> {
    const path = this.layout.volumeDir(uid, plugin, name);
    await mkdir(path, { recursive: true, mode: 0o755 });
    if (memory && !(await this.mounter.isMountPoint(path))) await this.mounter.mount('tmpfs', path, 'tmpfs', ['mode=0755', 'size=16m']);
    const mode = source.defaultMode ?? 0o644;
    const wanted = new Map<string, { data: Buffer; mode: number }>();
    if (source.items !== undefined && source.items.length > 0) {
      for (const item of source.items) {
        const data = files.get(item.key);
        if (data === undefined) {
          if (source.optional === true) continue;
          throw new PodVolumeError(`volume "${name}": key "${item.key}" not found`);
        }
        if (isAbsolute(item.path) || item.path.split('/').includes('..')) throw new PodVolumeError(`volume "${name}": item path ${JSON.stringify(item.path)} must be relative without ".."`);
        wanted.set(item.path, { data, mode: item.mode ?? mode });
      }
    } else {
      for (const [key, data] of files) wanted.set(key, { data, mode });
    }
    for (const [rel, file] of wanted) {
      const target = join(path, rel);
      await mkdir(dirname(target), { recursive: true, mode: 0o755 });
      const tmp = `${target}.${process.pid}.tmp`;
      await writeFile(tmp, file.data, { mode: file.mode });
      await rename(tmp, target);
    }
    // As the kubelet does for these read-only volumes: the pod's fsGroup may read them.
    if (fsGroup !== undefined) await setVolumeOwnership(path, fsGroup, undefined, true);
    return path;
  }

  /** Removes a pod's non-CSI volumes (unmounting its tmpfs first). Never follows into hostPaths. */
  async tearDownAll(uid: string): Promise<void> {
    for (const plugin of [EMPTY_DIR_PLUGIN_DIR, CONFIG_MAP_PLUGIN_DIR, SECRET_PLUGIN_DIR]) {
      const dir = this.layout.podVolumesDir(uid, plugin);
      for (const name of await readdir(dir).catch(() => [] as string[])) {
        const path = join(dir, name);
        if (await this.mounter.isMountPoint(path)) await this.mounter.unmount(path);
        // Only after it is no mount point: what is left is the pod's own scratch data.
        if (await this.mounter.isMountPoint(path)) throw new PodVolumeError(`${path} is still mounted`);
        await rm(path, { recursive: true, force: true });
      }
      await rmdir(dir).catch(() => undefined);
    }
    this.log.debug({ pod: uid }, 'pod volumes torn down');
  }
}
