import { createServer, type Server } from 'node:http';
import { Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { status } from '@grpc/grpc-js';
import { status as codes } from '@grpc/grpc-js';

/** csi-lib-utils' buckets, so dashboards built for the sidecars' metrics work unchanged. */
const CSI_BUCKETS = [0.1, 0.25, 0.5, 1, 2.5, 5, 10, 15, 25, 50, 120, 300, 600];

/** Go's codes.Code names (NotFound, InvalidArgument...), which csi-lib-utils puts in the label. */
const CODE_NAMES = new Map<number, string>(
  Object.entries(codes)
    .filter(([, v]) => typeof v === 'number')
    .map(([k, v]) => [v as number, k === 'OK' ? 'OK' : k.toLowerCase().replace(/(^|_)([a-z])/g, (_, __, c: string) => c.toUpperCase())]),
);

/** Prometheus metrics of the driver: one histogram of CSI operations plus process metrics. */
export class DriverMetrics {
  readonly registry = new Registry();
  private readonly operations: Histogram<'driver_name' | 'method_name' | 'grpc_status_code'>;

  constructor(private readonly driverName: string) {
    collectDefaultMetrics({ register: this.registry });
    this.operations = new Histogram({
      name: 'csi_plugin_operations_seconds',
      help: 'Time taken by CSI operations, by method and gRPC status code',
      labelNames: ['driver_name', 'method_name', 'grpc_status_code'],
      buckets: CSI_BUCKETS,
      registers: [this.registry],
    });
  }

  observe(method: string, code: status, seconds: number): void {
    this.operations.observe(
      { driver_name: this.driverName, method_name: method, grpc_status_code: CODE_NAMES.get(code) ?? String(code) },
      seconds,
    );
  }

  /** Serves /metrics on host:port (loopback unless the admin says otherwise). */
  async listen(address: string): Promise<Server> {
    const m = /^(.*):(\d+)$/.exec(address);
    if (!m) throw new Error(`--metrics-address "${address}" is not host:port`);
    const server = createServer((req, res) => {
      if (req.url !== '/metrics') {
        res.writeHead(404).end('not found\n');
        return;
      }
      this.registry.metrics().then(
        (body) => res.writeHead(200, { 'content-type': this.registry.contentType }).end(body),
        (e: Error) => res.writeHead(500).end(`${e.message}\n`),
      );
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(Number(m[2]), m[1] || '127.0.0.1', () => resolve());
    });
    return server;
  }
}
