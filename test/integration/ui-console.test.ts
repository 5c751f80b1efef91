// The web console end to end: a real `stowage up` (local backend), the console's URL from `stowage
// ui`, and Debian's chromium driven by playwright-core. A user signs in with the kubeconfig's token,
// sees seed 003's story (claim nfs-pvc, pod test-volumes mounting it with a subPath, here on the
// local class) connected class → claim → volume → backend volume → node → pod, watches a new claim
// appear without a reload, opens the claim's journey (CreateVolume, NodeStageVolume,
// NodePublishVolume with durations and status codes) and its snapshot/restore/clone tree, applies a
// YAML with a misspelt field and reads the API's field error (then applies, changes and deletes a
// good one), sees where the node mounted the pod's volume, deletes the pod and sees it go; strings from the cluster are shown
// as text, never as markup; data without the token is 401. Screenshots at 1280×800 and 390×844
// go to test-artifacts/ui/ (kept by CI).
import assert from 'node:assert/strict';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { type Browser, chromium, type Page } from 'playwright-core';
import { startUp, type Up } from '../support/stowage-up.js';

const ARTIFACTS = fileURLToPath(new URL('../../../test-artifacts/ui/', import.meta.url));
const CHROMIUM = '/usr/bin/chromium';

const SEED_003 = `apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: nfs-pvc
spec:
  storageClassName: local
  accessModes: [ReadWriteOnce]
  resources:
    requests:
      storage: 64Mi
---
apiVersion: v1
kind: Pod
metadata:
  name: test-volumes
spec:
  terminationGracePeriodSeconds: 2
  volumes:
  - name: nfs
    persistentVolumeClaim:
      claimName: nfs-pvc
  containers:
  - name: web
    image: busybox
    command: [sh, -c, "trap 'exit 0' TERM; echo hello > /usr/share/nginx/html/index.html; echo wrote index.html; i=0; while true; do i=$((i+1)); echo tick $i; sleep 1; done"]
    volumeMounts:
    - name: nfs
      subPath: test-volumes
      mountPath: /usr/share/nginx/html
`;

const XSS = '<img src=x onerror="window.__xss=1">';

describe('the web console in a real browser', () => {
  let up: Up;
  let browser: Browser;
  let page: Page;
  let consoleUrl = '';
  let token = '';
  const pageErrors: string[] = [];

  const shoot = async (name: string): Promise<void> => {
    await mkdir(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: join(ARTIFACTS, `${name}.png`), fullPage: false });
  };
  const edge = (from: string, to: string) => page.locator(`[data-edge="${from}->${to}"]`);
  const node = (id: string) => page.locator(`[data-node="${id}"]`);

  before(async () => {
    up = await startUp('stowage-ui-console-', 'ui-node');
    consoleUrl = (await up.ok('ui')).trim();
    token = /\n\s+token: (\S+)/.exec(await readFile(join(up.state, 'kubeconfig'), 'utf8'))?.[1] ?? '';
    assert.ok(token !== '', 'the kubeconfig holds the admin token');
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
    page = await browser.newPage({ ignoreHTTPSErrors: true, viewport: { width: 1280, height: 800 } });
    page.on('pageerror', (e) => pageErrors.push(e.message));
    // The page lives within its Content-Security-Policy: a violation is a bug (an inline style, an eval…).
    page.on('console', (m) => {
      if (/Content Security Policy/i.test(m.text())) pageErrors.push(m.text());
    });
  });

  after(async () => {
    await browser?.close().catch(() => undefined);
    await up?.cleanup();
  });

  it('`stowage ui` prints the https address of /ui/ with the token in the fragment', () => {
    assert.match(consoleUrl, /^https:\/\/127\.0\.0\.1:\d+\/ui\/#token=/);
    assert.equal(decodeURIComponent(consoleUrl.split('#token=')[1] ?? ''), token);
  });

  it('serves the page to anyone, but no data without the token (401)', async () => {
    const res = await page.goto(consoleUrl.split('#')[0] ?? '');
    assert.equal(res?.status(), 200);
    assert.match(res?.headers()['content-type'] ?? '', /^text\/html/);
    assert.match(res?.headers()['content-security-policy'] ?? '', /script-src 'self'/);
    const statuses = await page.evaluate(async () => {
      const out: number[] = [];
      for (const path of ['/api/v1/persistentvolumeclaims', '/ui/api/csi-calls', '/api/v1/pods?watch=1']) out.push((await fetch(path)).status);
      out.push((await fetch('/ui/console.js')).status);
      return out;
    });
    assert.deepEqual(statuses, [401, 401, 401, 200]);
  });

  it('signs in with the kubeconfig token (a wrong one is refused)', async () => {
    await page.locator('#token').fill('not-the-token');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('alert').filter({ hasText: 'Unauthorized' }).waitFor();
    await page.locator('#token').fill(token);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByTestId('user').filter({ hasText: 'system:admin' }).waitFor();
    assert.equal(await page.evaluate(() => sessionStorage.getItem('stowage.token')), token);
  });

  it('signs in from `stowage ui`’s address, and takes the token out of the address bar', async () => {
    const other = await browser.newPage({ ignoreHTTPSErrors: true });
    try {
      await other.goto(consoleUrl);
      await other.getByTestId('user').filter({ hasText: 'system:admin' }).waitFor();
      assert.equal(new URL(other.url()).hash, '', 'no token left in the address');
      // A reload keeps the tab signed in (sessionStorage), with nothing in the address.
      await other.reload();
      await other.getByTestId('user').filter({ hasText: 'system:admin' }).waitFor();
      await other.getByRole('button', { name: 'Sign out' }).click();
      await other.locator('#token').waitFor();
      assert.equal(await other.evaluate(() => sessionStorage.getItem('stowage.token')), null);
    } finally {
      await other.close();
    }
  });

  it('draws seed 003’s claim, volume, backend volume, node and pod connected', async () => {
    await writeFile(join(up.dir, 'seed-003.yaml'), SEED_003);
    await up.ok('apply', '-f', join(up.dir, 'seed-003.yaml'));
    await up.until('the pod to run', async () => (await up.field('pod', 'test-volumes', '.status.phase')) === 'Running');
    const pv = await up.field('pvc', 'nfs-pvc', '.spec.volumeName');
    const handle = await up.field('pv', pv, '.spec.csi.volumeHandle');
    assert.ok(pv !== '' && handle !== '');
    const chain = [`class:local`, `claim:default/nfs-pvc`, `volume:${pv}`, `backend:${handle}`, `node:ui-node`, `pod:default/test-volumes`];
    for (let i = 0; i + 1 < chain.length; i++) await edge(chain[i] ?? '', chain[i + 1] ?? '').waitFor({ state: 'attached', timeout: 20_000 });
    // The staging and publish paths come from the journal of the node agent's CSI calls.
    await edge(`backend:${handle}`, 'node:ui-node').locator('text').filter({ hasText: 'staged' }).waitFor({ timeout: 20_000 });
    const published = await edge('node:ui-node', 'pod:default/test-volumes').locator('path title').textContent({ timeout: 20_000 });
    assert.match(published ?? '', /\/pods\/[0-9a-f-]+\/volumes\/kubernetes\.io~csi\//);
    await shoot('topology-1280x800');
  });

  it('shows a new claim without a reload', async () => {
    await writeFile(join(up.dir, 'late.yaml'), 'apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata: {name: late-claim}\nspec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 32Mi}}}\n');
    await up.ok('apply', '-f', join(up.dir, 'late.yaml'));
    await node('claim:default/late-claim').waitFor({ timeout: 15_000 });
    await edge('class:local', 'claim:default/late-claim').waitFor({ state: 'attached', timeout: 15_000 });
  });

  it('opens a claim’s journey: CreateVolume, NodeStageVolume and NodePublishVolume with durations and codes', async () => {
    await node('claim:default/nfs-pvc').click();
    const journey = page.getByTestId('journey');
    await journey.waitFor();
    for (const method of ['CreateVolume', 'NodeStageVolume', 'NodePublishVolume']) {
      const row = journey.locator(`tr[data-what="${method}"]`).first();
      await row.waitFor({ timeout: 15_000 });
      const cells = await row.locator('td').allTextContents();
      assert.match(cells[3] ?? '', /^\d+\.\d$/, `${method} has a duration: ${cells.join(' | ')}`);
      assert.equal(cells[4], 'OK', `${method}'s status code`);
    }
    // The claim's own events are in the same timeline (the provisioner's).
    await journey.locator('tr[data-what="ProvisioningSucceeded"]').first().waitFor({ timeout: 15_000 });
    await journey.getByTestId('usage').filter({ hasText: 'on ui-node' }).waitFor({ timeout: 30_000 });
    await shoot('journey-1280x800');
  });

  it('shows the claim’s snapshot, the claim restored from it and its clone as a tree, and the snapshot’s CSI call', async () => {
    const yaml = `apiVersion: snapshot.storage.k8s.io/v1
kind: VolumeSnapshotClass
metadata: {name: local-snapshots}
driver: local.csi.stowage.dev
deletionPolicy: Delete
---
apiVersion: snapshot.storage.k8s.io/v1
kind: VolumeSnapshot
metadata: {name: nfs-snap}
spec:
  volumeSnapshotClassName: local-snapshots
  source: {persistentVolumeClaimName: nfs-pvc}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: restored}
spec:
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: 64Mi}}
  dataSourceRef: {apiGroup: snapshot.storage.k8s.io, kind: VolumeSnapshot, name: nfs-snap}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: cloned}
spec:
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: 64Mi}}
  dataSourceRef: {kind: PersistentVolumeClaim, name: nfs-pvc}
`;
    await writeFile(join(up.dir, 'snapshots.yaml'), yaml);
    await up.ok('apply', '-f', join(up.dir, 'snapshots.yaml'));
    const journey = page.getByTestId('journey');
    const snap = journey.getByTestId('snapshot').filter({ hasText: 'nfs-snap' });
    await snap.filter({ hasText: 'ready' }).waitFor({ timeout: 30_000 });
    await snap.getByRole('button', { name: 'claim restored' }).waitFor({ timeout: 10_000 });
    await journey.getByRole('button', { name: 'claim cloned' }).waitFor({ timeout: 10_000 });
    await journey.locator('tr[data-what="CreateSnapshot"]').first().waitFor({ timeout: 15_000 });
    assert.equal(await journey.locator('tr[data-what="CreateSnapshot"] td').nth(4).textContent(), 'OK');
  });

  it('shows an object with a Warning event in red with its message, as text, never as markup', async () => {
    const event = {
      apiVersion: 'v1',
      kind: 'Event',
      metadata: { name: 'late-claim.xss', namespace: 'default' },
      involvedObject: { kind: 'PersistentVolumeClaim', name: 'late-claim', namespace: 'default', apiVersion: 'v1' },
      reason: 'ProvisioningFailed',
      message: XSS,
      type: 'Warning',
      lastTimestamp: new Date(Date.now() + 60_000).toISOString().replace(/\.\d+Z$/, 'Z'),
      count: 1,
      source: { component: 'ui-test' },
    };
    await writeFile(join(up.dir, 'event.json'), JSON.stringify(event));
    await up.ok('apply', '-f', join(up.dir, 'event.json'));
    const claim = node('claim:default/late-claim');
    await page.locator('[data-node="claim:default/late-claim"].bad').waitFor({ timeout: 15_000 });
    assert.match((await claim.locator('title').first().textContent()) ?? '', /ProvisioningFailed: <img src=x onerror="window\.__xss=1">/);
    assert.equal(await page.locator('img').count(), 0, 'no element was made from the message');
    assert.equal(await page.evaluate(() => (globalThis as unknown as { __xss?: number }).__xss), undefined);
  });

  it('applies YAML with a misspelt field and shows the API’s field error inline', async () => {
    await page.getByRole('button', { name: 'Apply YAML' }).click();
    await page
      .locator('#yaml')
      .fill('apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata:\n  name: typo\nspec:\n  accessModes: [ReadWriteOnce]\n  resourcez:\n    requests: {storage: 1Mi}\n');
    await page.getByRole('button', { name: 'Apply', exact: true }).click();
    const error = page.getByTestId('outcomes').getByRole('alert');
    await error.waitFor();
    assert.match((await error.textContent()) ?? '', /unknown field "spec\.resourcez"/);
    assert.equal(await up.field('pvc', 'typo', '.metadata.name'), '', 'nothing was created');
    await shoot('apply-error-1280x800');
    // And a good one is applied.
    await page.locator('#yaml').fill('apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: from-console\ndata: {a: b}\n');
    await page.getByRole('button', { name: 'Apply', exact: true }).click();
    await page.getByTestId('outcomes').filter({ hasText: 'ConfigMap from-console applied' }).waitFor();
    assert.equal(await up.field('configmap', 'from-console', '.data.a'), 'b');
    // Applied again with a change: merged into the existing object.
    await page.locator('#yaml').fill('apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: from-console\ndata: {a: c}\n');
    await page.getByRole('button', { name: 'Apply', exact: true }).click();
    await up.until('the change to land', async () => (await up.field('configmap', 'from-console', '.data.a')) === 'c', 10_000);
    // And deleted by the same YAML.
    await page.getByRole('button', { name: 'Delete', exact: true }).click();
    await page.getByTestId('outcomes').filter({ hasText: 'ConfigMap from-console deleted' }).waitFor();
    assert.equal(await up.field('configmap', 'from-console', '.metadata.name'), '');
  });

  it('deletes a pod and sees it go', async () => {
    await page.getByRole('button', { name: 'Pods', exact: true }).click();
    const row = page.locator('tr[data-pod="default/test-volumes"]');
    await row.waitFor();
    // Where the node mounted its volume: the publish path of the journal, below the pod's directory.
    const uid = await up.field('pod', 'test-volumes', '.metadata.uid');
    await row.getByTestId('mounts').filter({ hasText: `/pods/${uid}/volumes/kubernetes.io~csi/` }).waitFor({ timeout: 10_000 });
    // Its events, all of them, under it when its name is clicked.
    await row.getByRole('button', { name: 'default/test-volumes' }).click();
    const events = page.locator('tr[data-events="default/test-volumes"]');
    await events.filter({ hasText: 'Scheduled: Successfully assigned default/test-volumes to ui-node' }).waitFor();
    await events.filter({ hasText: 'Started' }).waitFor();
    // Its output, from the API's pods/log, followed: lines the container prints later arrive live.
    const logText = events.getByTestId('log-text');
    await logText.filter({ hasText: 'wrote index.html' }).waitFor({ timeout: 15_000 });
    const ticks = async (): Promise<number> => Math.max(0, ...[...((await logText.textContent()) ?? '').matchAll(/tick (\d+)/g)].map((m) => Number(m[1])));
    const before = await ticks();
    await up.until('two more lines of output without a reload', async () => (await ticks()) >= before + 2, 15_000);
    assert.equal(await events.getByTestId('log-state').textContent(), 'following…');
    await shoot('pods-1280x800');
    await row.getByRole('button', { name: 'Delete' }).click();
    await row.getByRole('button', { name: 'Confirm delete' }).click();
    await row.waitFor({ state: 'detached', timeout: 60_000 });
    assert.equal(await up.field('pod', 'test-volumes', '.metadata.name'), '');
    await page.getByRole('button', { name: 'Topology' }).click();
    await node('pod:default/test-volumes').waitFor({ state: 'detached', timeout: 15_000 });
  });

  it('looks right on a narrow screen (390×844)', async () => {
    await page.setViewportSize({ width: 390, height: 844 });
    await page.getByRole('button', { name: 'Topology' }).click();
    await node('claim:default/nfs-pvc').waitFor();
    await shoot('topology-390x844');
    const overflow = await page.evaluate(() => {
      const root = (globalThis as unknown as { document: { documentElement: { scrollWidth: number; clientWidth: number } } }).document.documentElement;
      return root.scrollWidth - root.clientWidth;
    });
    assert.ok(overflow <= 0, `the page itself does not scroll sideways (the graph scrolls in its box): ${overflow}px`);
    await page.getByRole('button', { name: 'Capacity' }).click();
    // The node's pool for the local class: its volumes' sizes provisioned, and what its CSIStorageCapacity offers.
    const pool = page.getByTestId('capacity').locator('tbody tr').filter({ hasText: 'ui-node' }).filter({ hasText: 'local' });
    await pool.waitFor();
    const cells = await pool.locator('td').allTextContents();
    assert.match(cells[3] ?? '', /^\d+(\.\d)? (MiB|GiB)$/, `provisioned: ${cells.join(' | ')}`);
    assert.match(cells[4] ?? '', /^\d+(\.\d)? (MiB|GiB)$/, `free: ${cells.join(' | ')}`);
    await shoot('capacity-390x844');
    await page.getByRole('button', { name: 'Apply YAML' }).click();
    await shoot('apply-390x844');
    await page.setViewportSize({ width: 1280, height: 800 });
    await shoot('capacity-1280x800');
    assert.deepEqual(pageErrors, [], 'no script error on the page');
  });
});
