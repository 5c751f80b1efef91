/**
 * The clusters the rbd backend may reach: ceph-csi's cluster list (the `config.json` of its
 * `ceph-csi-config` ConfigMap), so an existing deployment's file works unchanged:
 *
 *   [{"clusterID": "<id>", "monitors": ["10.0.0.1:6789", ...], "rbd": {...}, "cephFS": {...}}]
 *
 * StorageClasses name a cluster by clusterID; volume IDs carry it too. Fields this driver does not
 * use (cephFS, readAffinity, ...) are ignored; settings it cannot honour (an rbd radosNamespace)
 * are refused at start rather than silently dropped.
 */
import { type FSWatcher, watch } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { InvalidArgumentError } from '../../../csi/errors.js';

export interface CephCluster {
  clusterID: string;
  /** "host:port" (or "[v1:host:port]" / "v2:host:port") of each monitor. */
  monitors: string[];
}

/**
 * mon_host for a cluster's monitors. A bare "host:port" is what ceph-csi's lists hold and means
 * the legacy (v1) protocol unless the port is msgr2's 3300; Ceph itself only guesses right for
 * the two well-known ports, so bare entries are spelt out ("[v1:host:port]"). Entries that name
 * their protocol ("v2:…", "[v2:…,v1:…]") and IPv6 addresses are passed as they are.
 */
export function monHost(monitors: string[]): string {
  return monitors
    .map((m) => {
      const bare = /^([A-Za-z0-9.-]+):(\d+)$/.exec(m);
      if (!bare) return m;
      return `[${bare[2] === '3300' ? 'v2' : 'v1'}:${m}]`;
    })
    .join(',');
}

/** What a running driver says when the file it follows changes. */
export interface ConfigReloadLog {
  info(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

export class ClusterConfig {
  private byId: Map<string, CephCluster>;

  constructor(clusters: CephCluster[]) {
    this.byId = new Map(clusters.map((c) => [c.clusterID, c]));
  }

  /**
   * Follows the file: when it changes, the new list replaces this one in place (every backend
   * holding this object sees it at its next call). Kubernetes updates a mounted ConfigMap by
   * swapping a symlink in its directory, so the directory is watched (fs.watch), with a periodic
   * re-read as the safety net for events the watch misses. A file that no longer parses or
   * cannot be read leaves the last good list in use and is logged. Returns the stopper.
   */
  follow(file: string, log: ConfigReloadLog, pollMs = 30_000): () => void {
    let last = JSON.stringify(this.clusters);
    let timer: NodeJS.Timeout | undefined;
    let stopped = false;
    const reload = async (): Promise<void> => {
      let next: ClusterConfig;
      try {
        next = await ClusterConfig.load(file);
      } catch (e) {
        log.error({ file, err: (e as Error).message }, 'the ceph config changed but cannot be used; keeping the clusters it had');
        return;
      }
      const text = JSON.stringify(next.clusters);
      if (stopped || text === last) return;
      last = text;
      this.byId = next.byId;
      log.info({ file, clusters: next.clusters.map((c) => c.clusterID) }, 'ceph config reloaded');
    };
    const soon = (): void => {
      clearTimeout(timer);
      timer = setTimeout(() => void reload(), 200);
      timer.unref();
    };
    let watcher: FSWatcher | undefined;
    try {
      watcher = watch(dirname(file), { persistent: false }, soon);
      watcher.on('error', () => watcher?.close());
    } catch {
      // No inotify (or the directory went away): the periodic re-read still follows the file.
    }
    const poll = setInterval(() => void reload(), pollMs);
    poll.unref();
    return () => {
      stopped = true;
      clearTimeout(timer);
      clearInterval(poll);
      watcher?.close();
    };
  }

  static async load(file: string): Promise<ClusterConfig> {
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch (e) {
      throw new Error(`cannot read the ceph config ${file}: ${(e as Error).message}`);
    }
    return ClusterConfig.parse(text, file);
  }

  /** Parses the file's text; errors name the file and the entry. */
  static parse(text: string, source = 'ceph config'): ClusterConfig {
    let raw: unknown;
    try {
      raw = JSON.parse(text);
    } catch (e) {
      throw new Error(`${source} is not JSON: ${(e as Error).message}`);
    }
    if (!Array.isArray(raw)) throw new Error(`${source} must be a JSON list of clusters ([{"clusterID": ..., "monitors": [...]}])`);
    const clusters: CephCluster[] = [];
    raw.forEach((entry: unknown, i) => {
      const where = `${source} entry ${i}`;
      if (typeof entry !== 'object' || entry === null) throw new Error(`${where} is not an object`);
      const e = entry as Record<string, unknown>;
      const id = e['clusterID'];
      if (typeof id !== 'string' || id === '') throw new Error(`${where}: clusterID must be a non-empty string`);
      // The ID travels inside volume IDs (at most 128 bytes with 64 bytes of fixed fields).
      if (Buffer.byteLength(id) > 64 || !/^[\x21-\x7e]+$/.test(id)) {
        throw new Error(`${where}: clusterID "${id}" must be at most 64 printable characters without spaces`);
      }
      const monitors = e['monitors'];
      if (!Array.isArray(monitors) || monitors.length === 0 || !monitors.every((m) => typeof m === 'string' && m.trim() !== '')) {
        throw new Error(`${where} (${id}): monitors must be a non-empty list of "host:port" strings`);
      }
      const rbd = e['rbd'];
      if (typeof rbd === 'object' && rbd !== null) {
        const ns = (rbd as Record<string, unknown>)['radosNamespace'];
        if (typeof ns === 'string' && ns !== '') throw new Error(`${where} (${id}): rbd.radosNamespace is not supported by this driver`);
      }
      if (clusters.some((c) => c.clusterID === id)) throw new Error(`${where}: clusterID "${id}" is listed twice`);
      clusters.push({ clusterID: id, monitors: monitors.map((m: string) => m.trim()) });
    });
    if (clusters.length === 0) throw new Error(`${source} lists no cluster`);
    return new ClusterConfig(clusters);
  }

  /** The cluster a request names, or INVALID_ARGUMENT listing the known ones. */
  require(clusterID: string): CephCluster {
    const c = this.get(clusterID);
    if (!c) throw new InvalidArgumentError(`clusterID "${clusterID}" is not in the ceph config (known: ${this.clusters.map((x) => x.clusterID).join(', ')})`);
    return c;
  }

  get(clusterID: string): CephCluster | undefined {
    return this.byId.get(clusterID);
  }

  get clusters(): CephCluster[] {
    return [...this.byId.values()];
  }
}
