import type { Command } from 'commander';

const PARTS = ['all', 'control-plane', 'csi'];

/**
 * The main job, in two parts. 1: seed 003's story on `stowage up` in a throwaway state directory:
 * a PVC and a pod that writes into it, deleted and recreated, reading its data back (story.ts), on
 * the local backend or, with --backend rbd, on a ceph-dev cluster with seed 000's objects. 2: a local driver
 * on a throwaway pool and one volume walked through its whole life over the CSI socket, printing
 * each step — what Kubernetes does, one call at a time.
 */
export function registerDemoCommand(program: Command): void {
  program
    .command('demo')
    .description("the main job: seed 003's story (a PVC and a pod that writes into it, deleted, recreated, reading its data back) on `stowage up`, then one volume through the CSI calls")
    .option('--part <part>', 'all, control-plane or csi', 'all')
    .option('--backend <name>', 'the story\'s driver: local (a btrfs pool, no cluster) or rbd (starts `stowage ceph-dev` and applies seed 000\'s Secret, StorageClass and PVC)', 'local')
    .option('--fs-type <type>', 'filesystem of the CSI part\'s volume: btrfs (subvolume), ext4 or xfs', 'ext4')
    .option('--keep', 'leave the temporary directories in place for inspection')
    .action(async (flags: { part: string; backend: string; fsType: string; keep?: boolean }) => {
      if (!PARTS.includes(flags.part)) throw new Error(`--part must be one of ${PARTS.join(', ')}`);
      if (flags.backend !== 'local' && flags.backend !== 'rbd') throw new Error(`--backend must be local or rbd, not ${JSON.stringify(flags.backend)}`);
      const backend = flags.backend;
      // The parts load the driver and the control plane: imported only when the demo runs.
      if (flags.part !== 'csi') await (await import('./story.js')).controlPlaneStory({ backend, ...(flags.keep ? { keep: true } : {}) });
      if (flags.part === 'control-plane') return;
      if (flags.part === 'all') process.stdout.write('\nPart 2 — the CSI driver alone: one volume walked through the CSI calls\n');
      await (await import('./csi-walkthrough.js')).csiWalkthrough(flags);
    });
}
