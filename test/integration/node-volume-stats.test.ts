// The kubelet's volume stats, end to end on real mounts: a pod writes into its claim, and the node
// agent's NodeGetVolumeStats figures appear as kubelet_volume_stats_* gauges labelled by namespace
// and claim — at the node's metrics endpoint through the API's node proxy
// (/api/v1/nodes/<node>/proxy/metrics, what `kubectl get --raw` reads) and at /metrics — and
// disappear once the pod has gone. A node that does not exist is the API's 404.
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { after, before, describe, it } from 'node:test';
import type { Pod } from '../../src/control/api/types/core.js';
import { needsRoot } from '../support/driver-harness.js';
import { claim, deletePod, type NodeCluster, podNamed, shellPod, startNodeCluster, until } from '../support/node-cluster.js';

/** GET over the control plane's unix socket. */
function get(cluster: NodeCluster, path: string): Promise<{ status: number; body: string; type: string }> {
  const socketPath = cluster.plane.url.replace(/^unix:\/\//, '');
  return new Promise((resolve, reject) => {
    const req = request({ socketPath, path, method: 'GET' }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, type: String(res.headers['content-type'] ?? '') }));
    });
    req.on('error', reject);
    req.end();
  });
}

/** The value of one sample line, e.g. kubelet_volume_stats_used_bytes{namespace="default",persistentvolumeclaim="x"}. */
function sample(text: string, name: string, claimName: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${name}{`) && l.includes(`persistentvolumeclaim="${claimName}"`) && l.includes('namespace="default"'));
  return line === undefined ? undefined : Number(line.slice(line.lastIndexOf(' ') + 1));
}

describe('volume stats as the kubelet serves them', { skip: needsRoot, timeout: 300_000 }, () => {
  let cluster: NodeCluster;

  before(async () => {
    cluster = await startNodeCluster();
    await cluster.addNode('node-a');
  });

  after(async () => {
    await cluster?.cleanup();
  });

  it('shows what a pod wrote as kubelet_volume_stats_* of its claim, and drops it when the pod goes', async () => {
    const { plane } = cluster;
    plane.store.create(claim('measured', '64Mi'));
    plane.store.create(
      shellPod('filler', 'dd if=/dev/urandom of=/data/blob bs=1M count=12 2>/dev/null; mkdir -p /data/d; for i in $(seq 1 50); do : > /data/d/f$i; done; sync; while true; do sleep 0.2; done', {
        volumes: [{ name: 'data', persistentVolumeClaim: { claimName: 'measured' } }],
        mounts: [{ name: 'data', mountPath: '/data' }],
      }),
    );
    await until(() => (podNamed(plane, 'filler') as Pod | undefined)?.status?.phase === 'Running', 'the pod to run');
    const metrics = await until(async () => {
      const r = await get(cluster, '/api/v1/nodes/node-a/proxy/metrics');
      const used = sample(r.body, 'kubelet_volume_stats_used_bytes', 'measured');
      return r.status === 200 && used !== undefined && used >= 12 * 1024 * 1024 ? r : undefined;
    }, 'the node to report 12 MiB used');
    assert.match(metrics.type, /^text\/plain; version=0\.0\.4/);
    assert.match(metrics.body, /# HELP kubelet_volume_stats_capacity_bytes Capacity in bytes of the volume\n# TYPE kubelet_volume_stats_capacity_bytes gauge\n/);
    const capacity = sample(metrics.body, 'kubelet_volume_stats_capacity_bytes', 'measured') ?? 0;
    const available = sample(metrics.body, 'kubelet_volume_stats_available_bytes', 'measured') ?? 0;
    const used = sample(metrics.body, 'kubelet_volume_stats_used_bytes', 'measured') ?? 0;
    assert.ok(capacity >= 60 * 1024 * 1024 && capacity <= 64 * 1024 * 1024 + 4096, `capacity is the claim's 64Mi (${capacity})`);
    assert.ok(available > 0 && available <= capacity - used + 4096, `available (${available}) is what is left of capacity (${capacity}) after used (${used})`);
    const inodesUsed = sample(metrics.body, 'kubelet_volume_stats_inodes_used', 'measured');
    assert.ok(inodesUsed === undefined || inodesUsed >= 50, `the pod's 50 files count as inodes (${inodesUsed})`);
    assert.equal(sample(metrics.body, 'kubelet_volume_stats_health_status_abnormal', 'measured'), 0, 'the local driver reports the volume healthy');

    const all = await get(cluster, '/metrics');
    assert.equal(all.status, 200);
    assert.ok((sample(all.body, 'kubelet_volume_stats_used_bytes', 'measured') ?? 0) >= 12 * 1024 * 1024, '/metrics has every node\'s volumes');
    const missing = await get(cluster, '/api/v1/nodes/no-such-node/proxy/metrics');
    assert.equal(missing.status, 404);
    assert.match(missing.body, /nodes \\"no-such-node\\" not found|nodes "no-such-node" not found/);

    await deletePod(plane, 'filler');
    await until(async () => sample((await get(cluster, '/api/v1/nodes/node-a/proxy/metrics')).body, 'kubelet_volume_stats_used_bytes', 'measured') === undefined, 'the claim to leave the metrics with its pod');
  });
});
