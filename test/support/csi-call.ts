/**
 * The driver's Controller and Node services over a real CSI socket (src/csi/server.ts and
 * client.ts in a temp dir), on a backend each test swaps in. Going through the wire rather than
 * calling handlers keeps the tests honest about what a CO sends (absent fields arrive as ''/0/null,
 * enums as names, int64 as numbers) and about the one error-to-status conversion the server makes
 * (a plain Error is INTERNAL, not its message's guess). One server per test file; each row gets
 * fresh services (and locks) on its own FakeBackend through use().
 */
import { status } from '@grpc/grpc-js';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { CsiClient } from '../../src/csi/client.js';
import { CsiError } from '../../src/csi/errors.js';
import { startCsiServer, type ControllerService, type CsiServer, type NodeService } from '../../src/csi/server.js';
import type { NodePaths } from '../../src/driver/backends/node-paths.js';
import type { Backend } from '../../src/driver/backends/backend.js';
import { controllerService } from '../../src/driver/controller.js';
import { InFlight } from '../../src/driver/inflight.js';
import { nodeService } from '../../src/driver/node.js';

export interface Harness {
  client: CsiClient;
  /** A scratch directory for the test (kubelet roots and the like); removed by stop(). */
  dir: string;
  /** Serves the next calls from fresh services on this backend (node paths for the Node service). */
  use(backend: Backend, paths?: NodePaths): void;
  stop(): Promise<void>;
}

/** Forwards every handler of a service to whatever `current()` is at call time. */
function forwarding<S extends object>(names: readonly string[], current: () => S | undefined): S {
  const out: Record<string, unknown> = {};
  for (const name of names) {
    out[name] = (req: unknown, ctx: unknown) => {
      const s = current() as Record<string, (r: unknown, c: unknown) => Promise<unknown>> | undefined;
      if (!s?.[name]) throw new CsiError(status.UNIMPLEMENTED, `${name}: no service in use`);
      return s[name](req, ctx);
    };
  }
  return out as S;
}

const CONTROLLER_RPCS = [
  'ControllerGetCapabilities',
  'CreateVolume',
  'DeleteVolume',
  'ValidateVolumeCapabilities',
  'ListVolumes',
  'ControllerGetVolume',
  'GetCapacity',
  'ControllerExpandVolume',
  'CreateSnapshot',
  'DeleteSnapshot',
  'ListSnapshots',
  'GetSnapshot',
] as const;
const NODE_RPCS = [
  'NodeGetCapabilities',
  'NodeGetInfo',
  'NodeStageVolume',
  'NodeUnstageVolume',
  'NodePublishVolume',
  'NodeUnpublishVolume',
  'NodeGetVolumeStats',
  'NodeExpandVolume',
] as const;

export async function startHarness(): Promise<Harness> {
  const dir = await mkdtemp(join(tmpdir(), 'stowage-fake-'));
  let controller: ControllerService | undefined;
  let node: NodeService | undefined;
  const server: CsiServer = await startCsiServer({
    endpoint: `unix://${join(dir, 'csi.sock')}`,
    logger: pino({ level: 'silent' }),
    identity: {},
    controller: forwarding<ControllerService>(CONTROLLER_RPCS, () => controller),
    node: forwarding<NodeService>(NODE_RPCS, () => node),
    shutdownGraceMs: 1_000,
  });
  const client = CsiClient.connect(server.address, { timeoutMs: 5_000 });
  await client.waitForReady(5_000);
  return {
    client,
    dir,
    use(backend, paths) {
      const inflight = new InFlight();
      controller = controllerService({ backend, inflight });
      node = paths ? nodeService({ backend, inflight, paths }) : undefined;
    },
    async stop() {
      client.close();
      await server.stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

export type Outcome<R> = { code: status; response?: R; details: string };

/** What the client sees of one call: the response (code OK) or the status. Never throws a CsiError. */
export async function outcome<R>(call: Promise<R>): Promise<Outcome<R>> {
  try {
    return { code: status.OK, response: await call, details: '' };
  } catch (e) {
    if (e instanceof CsiError) return { code: e.code, details: e.message };
    throw e;
  }
}

/** The name of a status code, for assertion messages ('ABORTED' rather than 10). */
export const codeName = (c: status): string => status[c] ?? String(c);
