// The seeds' YAML examples (test/fixtures/seeds) against the control plane's API: the ones the
// issue names apply unchanged, the seed's typo gives Kubernetes' exact message, unserved kinds
// and invalid YAML are refused clearly, and every fixture is byte-faithful to its seed.
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { parseManifests } from '../../src/control/api/manifest.js';
import type { KubeObject } from '../../src/control/api/types/meta.js';
import { errorMessage } from '../../src/control/api/validation/field-errors.js';
import { BadRequestError, InvalidError } from '../../src/control/store/errors.js';
import { open } from '../../src/control/store/store.js';

function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) dir = dirname(dir);
  return dir;
}

const FIXTURES = join(repoRoot(), 'test', 'fixtures', 'seeds');
// The seeds sit in shared/ beside the checkout (as CI lays it out), or where the variable says.
const SEEDS =
  [process.env['STOWAGE_SEEDS_DIR'], join(repoRoot(), '..', 'shared', 'seeds'), '/work/shared/seeds'].find(
    (d): d is string => d !== undefined && existsSync(d),
  ) ?? join(repoRoot(), '..', 'shared', 'seeds');

function load(file: string): KubeObject[] {
  return parseManifests(readFileSync(join(FIXTURES, file), 'utf8'), file);
}

/** Fixtures the issue requires to apply unchanged, plus the other valid objects of served kinds. */
const APPLY = [
  '000-csi-config-map.yaml',
  '000-secret.yaml',
  '000-storageclass.yaml',
  '000-pvc.yaml',
  '002-hostpath-pv.yaml',
  '002-hostpath-pvc.yaml',
  '002-limitrange.yaml',
  '002-rook-pvc.yaml',
  '002-rook-pod.yaml',
  '003-nfs-pv.yaml',
  '003-nfs-pod.yaml',
  '004-storageclass.yaml',
  '004-disk-pvc.yaml',
];
/** The seeds' apps/v1 Deployments (several share a name: each is tried as a dry run). */
const WORKLOADS = [
  '002-deployment-httpserver-resources.yaml',
  '002-deployment-httpserver.yaml',
  '002-deployment-nginx-emptydir.yaml',
  '002-deployment-nginx-node-affinity.yaml',
  '002-deployment-nginx-pod-affinity.yaml',
  '002-deployment-nginx-tolerations.yaml',
  '002-deployment-nginx.yaml',
  '004-disk-deployment.yaml',
];
/** Same names as earlier fixtures (the seed shows the same objects twice). */
const APPLY_SEPARATELY = ['002-rook-test-pvc.yaml', '002-rook-test-pod.yaml'];
const TABS = ['002-deployment-httpserver-nodeselector.yaml', '002-pod-priority.yaml', '002-hostpath-pod.yaml'];
const UNSERVED = [
  '002-calico-ippool.yaml',
  '002-endpoints-kube-controller-manager.yaml',
  '002-endpoints-kube-scheduler.yaml',
  '002-priorityclass.yaml',
  '004-disk-attacher-service.yaml',
  '004-disk-provisioner-service.yaml',
  // apps/v1beta1, removed from Kubernetes in 1.16: refused as kube-apiserver refuses it.
  '004-disk-attacher-statefulset.yaml',
  '004-disk-plugin-daemonset.yaml',
  '004-disk-provisioner-statefulset.yaml',
];
const TYPO = '003-nfs-pvc.yaml';
const BROKEN_SPLIT = '003-flexvolume-pod.yaml';

describe('seed fixtures', () => {
  it('every fixture file is classified by this test', () => {
    const files = readdirSync(FIXTURES).filter((f) => f.endsWith('.yaml')).sort();
    const known = [...APPLY, ...WORKLOADS, ...APPLY_SEPARATELY, ...TABS, ...UNSERVED, TYPO, BROKEN_SPLIT].sort();
    assert.deepEqual(files, known);
  });

  it('the storage objects apply unchanged, with Kubernetes defaults', () => {
    const store = open(':memory:');
    try {
      for (const file of APPLY) {
        for (const obj of load(file)) {
          const stored = store.create(obj);
          assert.ok(stored.metadata.uid, `${file}: stored with a uid`);
        }
      }
      const sc = store.get('storageclasses', undefined, 'csi-rbd-sc');
      assert.equal(sc?.provisioner, 'csi.block.bigtera.com');
      assert.equal(sc?.volumeBindingMode, 'Immediate');
      assert.deepEqual(sc?.mountOptions, ['discard']);
      const pvc = store.get('persistentvolumeclaims', 'default', 'rbd-pvc');
      assert.equal(pvc?.spec.volumeMode, 'Filesystem');
      assert.equal(pvc?.status?.phase, 'Pending');
      const hostPath = store.get('persistentvolumes', undefined, 'task-pv-volume');
      assert.equal(hostPath?.spec.persistentVolumeReclaimPolicy, 'Retain');
      assert.deepEqual(hostPath?.spec.hostPath, { path: '/mnt/data', type: '' });
      const secret = store.get('secrets', 'default', 'csi-rbd-secret');
      assert.equal(secret?.stringData, undefined);
      assert.equal(Buffer.from(secret?.data?.['userID'] ?? '', 'base64').toString(), 'admin');
      const disk = store.get('storageclasses', undefined, 'csi-disk');
      assert.equal(disk?.parameters?.['zoneId'], 'cn-beijing-c');
      const pod = store.get('pods', 'default', 'test-volumes');
      assert.equal(pod?.spec.restartPolicy, 'Always');

      for (const file of APPLY_SEPARATELY) {
        for (const obj of load(file)) {
          store.delete(obj.kind === 'Pod' ? 'pods' : 'persistentvolumeclaims', 'default', obj.metadata.name ?? '');
          store.create(obj);
        }
      }
      assert.equal(store.get('persistentvolumeclaims', 'default', 'rook-ceph')?.spec.resources?.requests?.['storage'], '10Mi');
    } finally {
      store.close();
    }
  });

  it('the workloads apply unchanged, with Kubernetes defaults', () => {
    const store = open(':memory:');
    try {
      for (const file of WORKLOADS) {
        for (const obj of load(file)) {
          const stored = store.create(obj, { dryRun: true }) as KubeObject & { spec: { template: { spec: { restartPolicy?: string } } } };
          assert.equal(stored.spec.template.spec.restartPolicy, 'Always', `${file}: the pod template defaulted`);
        }
      }
      const [deployment] = load('004-disk-deployment.yaml');
      const stored = store.create(deployment as KubeObject) as KubeObject & { spec: { replicas?: number; strategy?: unknown } };
      assert.equal(stored.spec.replicas, 1);
      assert.deepEqual(stored.spec.strategy, { type: 'RollingUpdate', rollingUpdate: { maxUnavailable: '25%', maxSurge: '25%' } });
    } finally {
      store.close();
    }
  });

  it("seed 003's ReadwriteOnce typo gets Kubernetes' exact field error", () => {
    const store = open(':memory:');
    try {
      const [pvc] = load(TYPO);
      assert.ok(pvc);
      let err: unknown;
      try {
        store.create(pvc);
      } catch (e) {
        err = e;
      }
      assert.ok(err instanceof InvalidError);
      assert.deepEqual(err.causes.map(errorMessage), [
        'spec.accessModes[0]: Unsupported value: "ReadwriteOnce": supported values: "ReadOnlyMany", "ReadWriteMany", "ReadWriteOnce", "ReadWriteOncePod"',
      ]);
      assert.equal(
        err.message,
        'PersistentVolumeClaim "nfs-pvc" is invalid: spec.accessModes[0]: Unsupported value: "ReadwriteOnce": supported values: "ReadOnlyMany", "ReadWriteMany", "ReadWriteOnce", "ReadWriteOncePod"',
      );
    } finally {
      store.close();
    }
  });

  it('kinds the control plane does not serve are refused by name', () => {
    const store = open(':memory:');
    try {
      for (const file of UNSERVED) {
        for (const obj of load(file)) {
          assert.throws(() => store.create(obj), (err: unknown) => {
            assert.ok(err instanceof BadRequestError, file);
            assert.equal(err.message, `no matches for kind "${obj.kind}" in version "${obj.apiVersion}"`);
            return true;
          });
        }
      }
    } finally {
      store.close();
    }
  });

  it('invalid YAML in the seeds is reported with its position', () => {
    for (const file of TABS) assert.throws(() => load(file), /Tabs are not allowed as indentation at line \d+, column \d+/, file);
    assert.throws(() => load(BROKEN_SPLIT), new RegExp(`${BROKEN_SPLIT}: document 1: .* at line 8`));
  });

  it('every fixture is byte-identical to its seed lines (README table)', (t) => {
    if (!existsSync(SEEDS)) {
      t.skip(`seeds not found at ${SEEDS}`);
      return;
    }
    const seedLines = new Map(
      readdirSync(SEEDS)
        .filter((f) => f.endsWith('.txt'))
        .map((f) => [f.slice(0, 3), readFileSync(join(SEEDS, f), 'utf8').split('\n')]),
    );
    const rows = readFileSync(join(FIXTURES, 'README.md'), 'utf8')
      .split('\n')
      .map((line) => line.split('|').map((c) => c.trim()))
      .filter((cells) => cells[1]?.endsWith('.yaml') && cells[2] !== '—');
    assert.equal(rows.length, readdirSync(FIXTURES).filter((f) => f.endsWith('.yaml')).length - 1, 'every fixture but the written Secret has a row');
    for (const [, file = '', seed = '', ranges = '', indents = ''] of rows) {
      const lines = seedLines.get(seed);
      assert.ok(lines, `${file}: seed ${seed}`);
      const shifts = indents.split(',').map((s) => Number(s.trim()));
      const out = ranges.split(',').flatMap((range, i) => {
        const [from = 0, to = 0] = range.trim().split('-').map(Number);
        const shift = shifts[i] ?? 0;
        return lines.slice(from - 1, to).map((line) => {
          if (line === '' || shift === 0) return line;
          if (shift > 0) return ' '.repeat(shift) + line;
          assert.ok(line.startsWith(' '.repeat(-shift)), `${file}: line lacks ${-shift} spaces`);
          return line.slice(-shift);
        });
      });
      assert.equal(readFileSync(join(FIXTURES, file), 'utf8'), `${out.join('\n')}\n`, file);
    }
  });
});
