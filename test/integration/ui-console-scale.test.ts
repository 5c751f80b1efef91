// How long the web console takes to draw a cluster of 1000 claims (each bound to its own
// pre-made volume, spread over 3 nodes) in a real chromium: from navigation to every claim in the
// graph, with the layout's share, printed (not asserted: a shared two-core machine's timings are
// not a pass/fail criterion). The claims use a class with no provisioner, so no storage is made.
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type Browser, chromium } from 'playwright-core';
import { startUp, type Up } from '../support/stowage-up.js';

const CLAIMS = 1000;
const NODES = ['scale-node', 'scale-node-2', 'scale-node-3'];

function manifests(): string {
  const docs: string[] = [
    'apiVersion: storage.k8s.io/v1\nkind: StorageClass\nmetadata: {name: static}\nprovisioner: kubernetes.io/no-provisioner\nvolumeBindingMode: Immediate',
    ...NODES.slice(1).map((n) => `apiVersion: v1\nkind: Node\nmetadata: {name: ${n}, labels: {kubernetes.io/hostname: ${n}}}`),
  ];
  for (let i = 0; i < CLAIMS; i++) {
    const node = NODES[i % NODES.length];
    docs.push(
      `apiVersion: v1\nkind: PersistentVolume\nmetadata: {name: pv-${i}}\nspec:\n  capacity: {storage: 1Gi}\n  accessModes: [ReadWriteOnce]\n  storageClassName: static\n  claimRef: {namespace: default, name: claim-${i}}\n  csi: {driver: example.csi.k8s.io, volumeHandle: vol-${i}}\n  nodeAffinity:\n    required:\n      nodeSelectorTerms:\n      - matchExpressions: [{key: topology.stowage.dev/node, operator: In, values: [${node}]}]`,
      `apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata: {name: claim-${i}, namespace: default}\nspec:\n  storageClassName: static\n  volumeName: pv-${i}\n  accessModes: [ReadWriteOnce]\n  resources: {requests: {storage: 1Gi}}`,
    );
  }
  return `${docs.join('\n---\n')}\n`;
}

describe('the web console with 1000 claims and 3 nodes', () => {
  let up: Up;
  let browser: Browser;

  before(async () => {
    up = await startUp('stowage-ui-scale-', NODES[0] ?? '');
    const file = join(up.dir, 'scale.yaml');
    await writeFile(file, manifests());
    await up.ok('apply', '-f', file);
    await up.until('every claim to bind', async () => (await up.ok('get', 'pvc', '--no-headers')).split('\n').filter((l) => /\bBound\b/.test(l)).length === CLAIMS, 180_000);
    browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--no-sandbox'] });
  });

  after(async () => {
    await browser?.close().catch(() => undefined);
    await up?.cleanup();
  });

  it('draws every claim, and prints how long it took', async () => {
    const url = (await up.ok('ui')).trim();
    const page = await browser.newPage({ ignoreHTTPSErrors: true, viewport: { width: 1280, height: 800 } });
    const t0 = Date.now();
    await page.goto(url);
    await page.locator(`[data-node="claim:default/claim-${CLAIMS - 1}"]`).waitFor({ state: 'attached', timeout: 120_000 });
    await page.locator('[data-node^="claim:"]').nth(CLAIMS - 1).waitFor({ state: 'attached', timeout: 120_000 });
    const total = Date.now() - t0;
    const layouts = await page.evaluate(() => performance.getEntriesByName('stowage:layout').map((e) => Math.round(e.duration)));
    const nav = await page.evaluate(() => Math.round((performance.getEntriesByType('navigation' as never)[0] as unknown as { domContentLoadedEventEnd?: number } | undefined)?.domContentLoadedEventEnd ?? 0));
    const marks = await page.evaluate(() => Object.fromEntries(['stowage:synced', 'stowage:drawn'].map((m) => [m, Math.round(performance.getEntriesByName(m)[0]?.startTime ?? -1)])));
    const drawn = await page.locator('[data-node]').count();
    process.stdout.write(`ui-console-scale: ${CLAIMS} claims, ${NODES.length} nodes: ${drawn} objects drawn ${total} ms after navigation (in the page's clock: DOMContentLoaded ${nav} ms, every collection listed ${marks['stowage:synced']} ms, first graph painted ${marks['stowage:drawn']} ms; layouts ${layouts.join(', ')} ms)\n`);
    assert.ok(drawn >= CLAIMS * 3 + NODES.length, `claims, volumes, backend volumes and nodes are all drawn: ${drawn}`);
    await page.close();
  });
});
