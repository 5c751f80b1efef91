// What the drivers hold, asked the portable way: each CSI endpoint's ListVolumes / ListSnapshots
// (where the driver advertises them), paginated. Endpoints are the ones given (--endpoint) or
// those of a `stowage up` state directory: <state>/plugins/<driver>/controller.sock (Ceph
// backends' cluster-wide controller) and <state>/nodes/<node>/plugins/<driver>/csi.sock (the local
// backend's per-node plugin, whose pool is that node's). A driver's listing is complete only when
// every endpoint of it answered: otherwise a missing volume may merely be on a node that did not.
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { CsiClient } from '../../csi/client.js';
import type { BackendItem, Inventory } from './find.js';

export interface Endpoint {
  socket: string;
  /** For the WHERE column: the node, "controller", or the socket path. */
  where: string;
  /** The driver the path names (<…>/plugins/<driver>/…), until GetPluginInfo says. */
  driverHint?: string;
}

/** What gc learned about one endpoint. */
export interface EndpointListing {
  endpoint: Endpoint;
  driver?: string;
  /** Set when listing failed (the endpoint did not answer, or a list call failed). */
  error?: string;
  /** It serves the Controller service (what DeleteVolume / DeleteSnapshot go to). */
  hasController: boolean;
  listsVolumes: boolean;
  listsSnapshots: boolean;
  volumes: BackendItem[];
  snapshots: BackendItem[];
}

const PAGE = 500;
const CALL_TIMEOUT_MS = 30_000;

function subdirs(dir: string): string[] {
  try {
    return readdirSync(dir, { withFileTypes: true })
      .filter((d) => d.isDirectory())
      .map((d) => d.name)
      .sort();
  } catch {
    return [];
  }
}

/** The CSI sockets of a `stowage up` state directory. */
export function stateDirEndpoints(stateDir: string): Endpoint[] {
  const out: Endpoint[] = [];
  for (const driver of subdirs(join(stateDir, 'plugins'))) {
    const socket = join(stateDir, 'plugins', driver, 'controller.sock');
    if (existsSync(socket)) out.push({ socket, where: 'controller', driverHint: driver });
  }
  for (const node of subdirs(join(stateDir, 'nodes'))) {
    for (const driver of subdirs(join(stateDir, 'nodes', node, 'plugins'))) {
      const socket = join(stateDir, 'nodes', node, 'plugins', driver, 'csi.sock');
      if (existsSync(socket)) out.push({ socket, where: node, driverHint: driver });
    }
  }
  return out;
}

function isoOf(ts: { seconds: number | string; nanos?: number } | null | undefined): string | undefined {
  if (ts === null || ts === undefined) return undefined;
  const ms = Number(ts.seconds) * 1000 + Math.floor((ts.nanos ?? 0) / 1e6);
  return ms > 0 ? new Date(ms).toISOString() : undefined;
}

export async function listEndpoint(endpoint: Endpoint): Promise<EndpointListing> {
  const client = CsiClient.connect(`unix://${endpoint.socket}`, { timeoutMs: CALL_TIMEOUT_MS });
  const listing: EndpointListing = { endpoint, hasController: false, listsVolumes: false, listsSnapshots: false, volumes: [], snapshots: [], ...(endpoint.driverHint === undefined ? {} : { driver: endpoint.driverHint }) };
  try {
    listing.driver = (await client.identity.GetPluginInfo({})).name;
    const plugin = await client.identity.GetPluginCapabilities({});
    if (!plugin.capabilities.some((c) => c.service?.type === 'CONTROLLER_SERVICE')) return listing;
    listing.hasController = true;
    const caps = new Set((await client.controller.ControllerGetCapabilities({})).capabilities.flatMap((c) => (c.rpc ? [String(c.rpc.type)] : [])));
    const base = { where: endpoint.where, endpoint: endpoint.socket };
    if (caps.has('LIST_VOLUMES')) {
      let token = '';
      do {
        const page = await client.controller.ListVolumes({ max_entries: PAGE, starting_token: token });
        for (const e of page.entries) if (e.volume) listing.volumes.push({ id: e.volume.volume_id, ...base });
        token = page.next_token;
      } while (token !== '');
      listing.listsVolumes = true;
    }
    if (caps.has('LIST_SNAPSHOTS')) {
      let token = '';
      do {
        const page = await client.controller.ListSnapshots({ max_entries: PAGE, starting_token: token });
        for (const e of page.entries) {
          if (!e.snapshot) continue;
          const createdAt = isoOf(e.snapshot.creation_time);
          listing.snapshots.push({ id: e.snapshot.snapshot_id, ...base, ...(createdAt === undefined ? {} : { createdAt }) });
        }
        token = page.next_token;
      } while (token !== '');
      listing.listsSnapshots = true;
    }
  } catch (err) {
    listing.error = (err as Error).message;
  } finally {
    client.close();
  }
  return listing;
}

/** One inventory per driver that lists something; complete only if none of its endpoints failed. */
export function inventoriesOf(listings: readonly EndpointListing[]): Inventory[] {
  const drivers = new Map<string, EndpointListing[]>();
  for (const l of listings) {
    if (l.driver === undefined) continue;
    drivers.set(l.driver, [...(drivers.get(l.driver) ?? []), l]);
  }
  const out: Inventory[] = [];
  for (const [driver, ls] of drivers) {
    const failed = ls.some((l) => l.error !== undefined);
    const listsVolumes = ls.some((l) => l.listsVolumes);
    const listsSnapshots = ls.some((l) => l.listsSnapshots);
    if (!listsVolumes && !listsSnapshots) continue;
    out.push({
      driver,
      volumes: ls.flatMap((l) => l.volumes),
      snapshots: ls.flatMap((l) => l.snapshots),
      volumesComplete: listsVolumes && !failed,
      snapshotsComplete: listsSnapshots && !failed,
    });
  }
  return out;
}
