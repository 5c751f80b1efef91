// `stowage gc --ceph-config` on `stowage up --backend cephfs` against ceph-dev: the journal is in
// the filesystem's metadata pool, namespace csi; volumes are subvolumes of group csi, snapshots
// subvolume snapshots of their source. Scenario: test/support/gc-ceph-scenario.ts.
import { useCephCluster } from '../support/ceph.js';
import { gcCephScenario } from '../support/gc-ceph-scenario.js';

const ceph = useCephCluster();

gcCephScenario(ceph, {
  backend: 'cephfs',
  driver: 'cephfs.csi.stowage.dev',
  parameters: (c) => c.cephfsParameters,
  secrets: (c) => c.cephfsSecrets,
  journal: () => ['-p', 'cephfs_metadata', '-N', 'csi'],
  where: (c) => `${c.info.clusterID}/${c.cephfsParameters['fsName'] ?? ''}`,
  volumes: (c) => c.subvolumes(),
  snapshots: (c, source) => c.subvolumeSnapshots(source),
});
