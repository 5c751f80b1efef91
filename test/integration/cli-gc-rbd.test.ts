// `stowage gc --ceph-config` on `stowage up --backend rbd` against ceph-dev: the rbd driver does not
// advertise ListVolumes, so gc reads the pool's journal (omap) with the class's provisioner Secret.
// The scenario (orphans listed and deleted, in-flight and foreign records left) is shared with
// cephfs: test/support/gc-ceph-scenario.ts.
import { useCephCluster } from '../support/ceph.js';
import { gcCephScenario } from '../support/gc-ceph-scenario.js';

const ceph = useCephCluster();

gcCephScenario(ceph, {
  backend: 'rbd',
  driver: 'rbd.csi.stowage.dev',
  parameters: (c) => ({ ...c.parameters, imageFeatures: 'layering' }),
  secrets: (c) => c.secrets,
  journal: (c) => ['-p', c.parameters['pool'] ?? ''],
  where: (c) => `${c.info.clusterID}/${c.parameters['pool'] ?? ''}`,
  volumes: async (c) => (await c.images()).images.filter((i) => i.startsWith('csi-vol-')),
  // Snapshots are images of their own (csi-snap-<uuid>), clones of the source.
  snapshots: async (c) => (await c.images()).images.filter((i) => i.startsWith('csi-snap-')),
  groupSnapshots: true,
});
