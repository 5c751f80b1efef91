// The console's capacity per Ceph pool, end to end: a one-node Ceph cluster (`stowage ceph-dev`),
// `stowage up --backend rbd --ceph-config FILE` against it, seed 000's Secret, StorageClass
// csi-rbd-sc (for our driver and this cluster) and 1Gi claim rbd-pvc applied with the CLI, then
// chromium signed in from `stowage ui`'s address. The capacity view's "Ceph pools" table shows the
// rbd pool with its class, provisioned at least the claim's size and a non-zero free read from
// Ceph; a cephfs class's row is its filesystem's data pool (`fs dump`); a class naming a cluster
// the config does not list is a row saying so; a pool name with markup is shown as text. No key
// in what the endpoint answers. Deleting the claim brings provisioned back to 0. Screenshots to
// test-artifacts/ui/.
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { type Browser, chromium, type Page } from 'playwright-core';
import { useCephCluster } from '../support/ceph.js';
import { startUp, type Up } from '../support/stowage-up.js';

const ceph = useCephCluster();
const ARTIFACTS = fileURLToPath(new URL('../../../test-artifacts/ui/', import.meta.url));
const CHROMIUM = '/usr/bin/chromium';
const GI = 1024 ** 3;
const XSS = '<img src=x onerror="window.__xss=1">';

const secretParams = ['provisioner', 'controller-expand', 'node-stage'].flatMap((p) => [`   csi.storage.k8s.io/${p}-secret-name: csi-rbd-secret`, `   csi.storage.k8s.io/${p}-secret-namespace: default`]).join('\n');
const storageClass = (name: string, clusterID: string, pool: string): string => `apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata:
   name: ${name}
provisioner: rbd.csi.stowage.dev
parameters:
   clusterID: ${JSON.stringify(clusterID)}
   pool: ${JSON.stringify(pool)}
   imageFeatures: layering
${secretParams}
   csi.storage.k8s.io/fstype: ext4
reclaimPolicy: Delete
allowVolumeExpansion: true
`;

/** Seed 000's objects for this cluster: the Secret (the dev cluster's user), class csi-rbd-sc, claim rbd-pvc. */
function seed000(): string {
  const secret = `apiVersion: v1
kind: Secret
metadata:
  name: csi-rbd-secret
  namespace: default
stringData:
  userID: ${ceph.info.userID}
  userKey: ${ceph.info.userKey}
`;
  const pvc = `apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: rbd-pvc
spec:
  accessModes:
    - ReadWriteOnce
  resources:
    requests:
      storage: 1Gi
  storageClassName: csi-rbd-sc
`;
  return [secret, storageClass('csi-rbd-sc', ceph.info.clusterID, ceph.info.pool), pvc].join('---\n');
}

/** A cephfs class with its provisioner Secret (adminID/adminKey), naming the dev cluster's filesystem. */
function cephfsClass(): string {
  return `apiVersion: v1
kind: Secret
metadata:
  name: csi-cephfs-secret
  namespace: default
stringData:
  adminID: ${ceph.info.userID}
  adminKey: ${ceph.info.userKey}
---
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata:
  name: cephfs-sc
provisioner: cephfs.csi.stowage.dev
parameters:
  clusterID: ${JSON.stringify(ceph.info.clusterID)}
  fsName: ${ceph.info.fsName}
  csi.storage.k8s.io/provisioner-secret-name: csi-cephfs-secret
  csi.storage.k8s.io/provisioner-secret-namespace: default
reclaimPolicy: Delete
`;
}

interface Row {
  filesystem?: string;
  clusterID: string;
  pool: string;
  storageClasses: string[];
  provisionedBytes: number;
  usedBytes?: number;
  freeBytes?: number;
  error?: string;
}

describe('the console shows capacity per Ceph pool (stowage up --backend rbd)', () => {
  let up: Up;
  let browser: Browser;
  let page: Page;
  const pageErrors: string[] = [];

  const shoot = async (name: string): Promise<void> => {
    await mkdir(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: join(ARTIFACTS, `${name}.png`), fullPage: true });
  };

  let configDir = '';

  before(async () => {
    // ceph-csi's cluster list for this cluster (seed 000's ceph-csi-config ConfigMap).
    configDir = await mkdtemp(join(tmpdir(), 'stowage-ui-ceph-config-'));
    const config = join(configDir, 'ceph-csi-config.json');
    await writeFile(config, JSON.stringify([{ clusterID: ceph.info.clusterID, monitors: ceph.info.monitors }]));
    up = await startUp('stowage-ui-ceph-', 'ceph-ui-node', '1Gi', { args: ['--backend', 'rbd', '--ceph-config', config] });
  }, { timeout: 120_000 });

  after(async () => {
    await browser?.close().catch(() => undefined);
    await up?.cleanup();
    await rm(configDir, { recursive: true, force: true });
  }, { timeout: 180_000 });

  it('shows the rbd pool with its class, provisioned ≥ the claim and non-zero free; an unknown cluster as text', { timeout: 300_000 }, async () => {
    await writeFile(join(up.dir, 'seed-000.yaml'), seed000());
    await up.ok('apply', '-f', join(up.dir, 'seed-000.yaml'));
    await writeFile(join(up.dir, 'others.yaml'), [storageClass('csi-rbd-elsewhere', 'not-in-config', 'rbd'), storageClass('csi-rbd-odd', ceph.info.clusterID, XSS)].join('---\n'));
    await up.ok('apply', '-f', join(up.dir, 'others.yaml'));
    // A CephFS class on the same cluster (no claim): its row is the filesystem's data pool, from `fs dump`.
    await writeFile(join(up.dir, 'cephfs.yaml'), cephfsClass());
    await up.ok('apply', '-f', join(up.dir, 'cephfs.yaml'));
    await up.until('rbd-pvc to be Bound', async () => (await up.field('pvc', 'rbd-pvc', '.status.phase')) === 'Bound', 120_000);

    const consoleUrl = (await up.ok('ui')).trim();
    const token = /\n\s+token: (\S+)/.exec(await readFile(join(up.state, 'kubeconfig'), 'utf8'))?.[1] ?? '';
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
    page = await browser.newPage({ ignoreHTTPSErrors: true, viewport: { width: 1280, height: 800 } });
    page.on('pageerror', (e) => pageErrors.push(e.message));
    page.on('console', (m) => {
      if (/Content Security Policy/i.test(m.text())) pageErrors.push(m.text());
    });
    await page.goto(consoleUrl);
    await page.getByTestId('user').filter({ hasText: 'system:admin' }).waitFor();

    // The endpoint: 401 without the token; with it, the pool's numbers and never the key.
    const answers = await page.evaluate(async (t) => {
      const anonymous = (await fetch('/ui/api/ceph-pools')).status;
      const res = await fetch('/ui/api/ceph-pools', { headers: { Authorization: `Bearer ${t}` } });
      return { anonymous, status: res.status, text: await res.text() };
    }, token);
    assert.equal(answers.anonymous, 401);
    assert.equal(answers.status, 200, answers.text);
    assert.ok(!answers.text.includes(ceph.info.userKey), 'the key is not in the answer');
    const rows = (JSON.parse(answers.text) as { items: Row[] }).items;
    const rbd = rows.find((r) => r.pool === ceph.info.pool && r.clusterID === ceph.info.clusterID);
    assert.ok(rbd, JSON.stringify(rows));
    assert.deepEqual(rbd.storageClasses, ['csi-rbd-sc']);
    assert.ok(rbd.provisionedBytes >= GI, `provisioned ${rbd.provisionedBytes} ≥ the claim's 1Gi`);
    assert.ok((rbd.freeBytes ?? 0) > 0, `free ${rbd.freeBytes} > 0`);
    assert.equal(rbd.error, undefined);
    const fs = rows.find((r) => r.filesystem === ceph.info.fsName);
    assert.ok(fs, JSON.stringify(rows));
    assert.deepEqual([fs.pool, fs.storageClasses, fs.provisionedBytes, fs.error], ['cephfs_data', ['cephfs-sc'], 0, undefined]);
    assert.ok((fs.freeBytes ?? 0) > 0, `cephfs data pool free ${fs.freeBytes} > 0`);
    console.log(`ceph pool ${ceph.info.pool}: used ${rbd.usedBytes} B, provisioned ${rbd.provisionedBytes} B, free ${rbd.freeBytes} B`);

    // The page: the capacity view's Ceph pools table, with the pool's bar.
    await page.getByRole('button', { name: 'Capacity' }).click();
    const table = page.getByTestId('ceph-pools');
    const row = table.locator(`tbody tr[data-cluster="${ceph.info.clusterID}"][data-pool="${ceph.info.pool}"]`);
    await row.waitFor();
    const cells = await row.locator('td').allTextContents();
    assert.equal(cells[0], ceph.info.clusterID);
    assert.equal(cells[1], ceph.info.pool);
    assert.equal(cells[2], 'csi-rbd-sc');
    assert.match(cells[3] ?? '', /^\d+(\.\d)? (B|KiB|MiB|GiB)$/, `used: ${cells.join(' | ')}`);
    const provisioned = /^(\d+(?:\.\d)?) (GiB|TiB)$/.exec(cells[4] ?? '');
    assert.ok(provisioned && Number(provisioned[1]) * (provisioned[2] === 'TiB' ? 1024 : 1) >= 1, `provisioned ≥ 1 GiB: ${cells.join(' | ')}`);
    const free = /^(\d+(?:\.\d)?) (B|KiB|MiB|GiB|TiB)$/.exec(cells[5] ?? '');
    assert.ok(free && Number(free[1]) > 0, `free > 0: ${cells.join(' | ')}`);
    const widths = await row.locator('.bar span').evaluateAll((spans) => spans.map((s) => (s as unknown as { style: { width: string } }).style.width));
    assert.equal(widths.length, 3);
    assert.ok(Number.parseFloat(widths[1] ?? '0') + Number.parseFloat(widths[0] ?? '0') > 0, `the bar shows what is provisioned: ${widths.join(', ')}`);
    assert.ok(Number.parseFloat(widths[2] ?? '0') > 0, `the bar shows free space: ${widths.join(', ')}`);

    // A class naming a cluster the config does not list: its row says so, the request did not fail.
    const elsewhere = table.locator('tbody tr').filter({ hasText: 'csi-rbd-elsewhere' });
    await elsewhere.locator('.error').filter({ hasText: 'clusterID not-in-config is not in the ceph config' }).waitFor();
    // A pool name with markup: shown as text, never run.
    const odd = table.locator('tbody tr').filter({ hasText: 'csi-rbd-odd' });
    assert.equal(await odd.locator('td').nth(1).locator('.error').textContent(), `pool ${XSS} does not exist in cluster ${ceph.info.clusterID}`);
    assert.equal(await table.locator('img').count(), 0);
    assert.equal(await page.evaluate(() => (globalThis as unknown as { __xss?: number }).__xss), undefined);

    await shoot('ceph-pools-1280x800');
    await page.setViewportSize({ width: 390, height: 844 });
    await row.waitFor();
    const overflow = await page.evaluate(() => {
      const root = (globalThis as unknown as { document: { documentElement: { scrollWidth: number; clientWidth: number } } }).document.documentElement;
      return root.scrollWidth - root.clientWidth;
    });
    assert.ok(overflow <= 0, `the page itself does not scroll sideways on a narrow screen: ${overflow}px`);
    await shoot('ceph-pools-390x844');
    assert.deepEqual(pageErrors, [], 'no script error on the page');

    // The claim goes: its image is removed, and the pool's provisioned drops (after the cache's few seconds).
    await up.ok('delete', 'pvc', 'rbd-pvc');
    await up.until('the PV to be gone', async () => (await up.ok('get', 'pv', '-o', 'name')).trim() === '', 120_000);
    await page.setViewportSize({ width: 1280, height: 800 });
    await row.locator('td').nth(4).filter({ hasText: /^0 B$/ }).waitFor({ timeout: 30_000 });
  });
});
