// One node taken down by `stowage down`, as a kubelet's node shutdown does it, from what is on the
// node's disk (nothing here needs the agent that set it up, nor that agent's memory):
//   1. every container of every pod with runtime state stops: SIGTERM, the pod's grace period (or
//      the caller's), then SIGKILL — concurrently across pods, so N pods cost one grace period;
//   2. the pods' runtime state goes (their shims and logs): a later `up` starts them afresh, as a
//      kubelet does after a reboot; the Pod objects stay in the store;
//   3. every published CSI volume is unpublished and every staged one unstaged through the node's
//      driver, from the vol_data.json records (csi-volumes.ts); emptyDir, configMap and secret
//      volumes that are mounts are unmounted, their data left where a restarted pod finds it.
// Each step goes on past a failure and reports it: one stuck volume must not keep the others
// mounted. What failed is returned; the caller decides whether the node may be released.
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'pino';
import type { CsiClient } from '../../csi/client.js';
import type { Mounter } from '../../driver/mount/mount.js';
import type { Pod } from '../api/types/core.js';
import { CONFIG_MAP_PLUGIN_DIR, EMPTY_DIR_PLUGIN_DIR, NodeLayout, SECRET_PLUGIN_DIR } from './layout.js';
import { NodeCsiVolumes } from './csi-volumes.js';
import type { ContainerRuntime } from './runtime-api.js';

export interface DrainOptions {
  nodeName: string;
  rootDir: string;
  /** The node's pods in the store, for their grace periods (a pod not there gets `graceSeconds` or 30 s). */
  pods: readonly Pod[];
  runtime: ContainerRuntime & { listContainers(podUid: string): Promise<string[]> };
  /** The node's CSI client for a driver, or undefined when that driver is not running. */
  nodeClient: (driverName: string) => CsiClient | undefined;
  mounter: Mounter;
  logger: Logger;
  /** Overrides every pod's terminationGracePeriodSeconds. */
  graceSeconds?: number;
}

export interface DrainReport {
  node: string;
  pods: number;
  containersStopped: number;
  unpublished: number;
  unstaged: number;
  unmounted: number;
  /** What could not be done, one line each. */
  failures: string[];
}

const DEFAULT_GRACE_SECONDS = 30;

export async function drainNode(o: DrainOptions): Promise<DrainReport> {
  const layout = new NodeLayout(o.rootDir);
  const log = o.logger.child({ node: o.nodeName });
  const csi = new NodeCsiVolumes({ layout, nodeClient: o.nodeClient, logger: log });
  const report: DrainReport = { node: o.nodeName, pods: 0, containersStopped: 0, unpublished: 0, unstaged: 0, unmounted: 0, failures: [] };
  const byUid = new Map(o.pods.map((p) => [p.metadata.uid ?? '', p]));
  const uids = [...new Set([...(await readdir(layout.podsDir).catch(() => [] as string[])), ...(await o.runtime.listPods())])].sort();
  report.pods = uids.length;

  // 1 and 2: containers, all pods at once.
  await Promise.all(
    uids.map(async (uid) => {
      const pod = byUid.get(uid);
      const grace = o.graceSeconds ?? pod?.spec.terminationGracePeriodSeconds ?? DEFAULT_GRACE_SECONDS;
      const names = await o.runtime.listContainers(uid).catch(() => [] as string[]);
      await Promise.all(
        names.map(async (name) => {
          try {
            const status = await o.runtime.status(uid, name);
            if (status?.state === 'running' || status?.state === 'unknown') {
              await o.runtime.stopContainer(uid, name, grace);
              report.containersStopped++;
            }
          } catch (err) {
            report.failures.push(`pod ${describePod(uid, pod)}: container ${name} could not be stopped: ${(err as Error).message}`);
          }
        }),
      );
      try {
        await o.runtime.removePod(uid);
      } catch (err) {
        report.failures.push(`pod ${describePod(uid, pod)}: runtime state could not be removed: ${(err as Error).message}`);
      }
    }),
  );

  // 3: volumes. Published first (a staged volume is unstaged only once no pod has it published).
  for (const uid of uids) {
    for (const record of await csi.publishedOf(uid).catch(() => [])) {
      try {
        await csi.tearDown(uid, record);
        report.unpublished++;
      } catch (err) {
        report.failures.push(`volume ${record.pvName} of pod ${describePod(uid, byUid.get(uid))}: ${(err as Error).message}`);
      }
    }
    for (const plugin of [EMPTY_DIR_PLUGIN_DIR, CONFIG_MAP_PLUGIN_DIR, SECRET_PLUGIN_DIR]) {
      const dir = layout.podVolumesDir(uid, plugin);
      for (const name of await readdir(dir).catch(() => [] as string[])) {
        const path = join(dir, name);
        try {
          if (await o.mounter.isMountPoint(path)) {
            await o.mounter.unmount(path);
            report.unmounted++;
          }
        } catch (err) {
          report.failures.push(`${path}: ${(err as Error).message}`);
        }
      }
    }
  }
  for (const record of await csi.staged().catch(() => [])) {
    try {
      await csi.unstage(record);
      report.unstaged++;
    } catch (err) {
      report.failures.push(`volume ${record.pvName}: ${(err as Error).message}`);
    }
  }
  for (const name of await csi.stagingNames().catch(() => [] as string[])) {
    await csi.forgetUnrecorded(name).catch((err: unknown) => report.failures.push(`staging of ${name}: ${(err as Error).message}`));
  }
  log.info({ ...report, failures: report.failures.length }, 'node drained');
  return report;
}

function describePod(uid: string, pod: Pod | undefined): string {
  return pod === undefined ? uid : `${pod.metadata.namespace ?? 'default'}/${pod.metadata.name ?? ''}`;
}
