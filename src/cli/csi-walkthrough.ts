// The main job's second part: a local driver on a throwaway pool and one volume walked through
// its whole life over the CSI socket, printing each step — what Kubernetes does, one call at a time.
import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CsiClient } from '../csi/client.js';
import { releasePool } from '../driver/backends/local/pool-release.js';

export async function csiWalkthrough(flags: { fsType: string; keep?: boolean }): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'stowage-demo-'));
  const socket = join(dir, 'csi.sock');
  const poolDir = join(dir, 'pool');
  // What kubelet's root would be: the driver takes staging and target paths only beneath it.
  const kubeletDir = join(dir, 'kubelet');
  await mkdir(kubeletDir);
  const step = (n: number, what: string) => process.stdout.write(`\n[${n}] ${what}\n`);
  const show = (o: unknown) => process.stdout.write(`    ${JSON.stringify(o)}\n`);

  const bin = fileURLToPath(new URL('../../../bin/stowage.js', import.meta.url));
  const args = [bin, 'driver', '--backend', 'local', '--endpoint', `unix://${socket}`, '--node-id', 'demo-node', '--local-dir', poolDir, '--local-pool-size', '2Gi', '--kubelet-dir', kubeletDir, '--log-level', 'warn'];
  const driver = spawn(process.execPath, args, { stdio: ['ignore', 'inherit', 'inherit'] });
  const exited = new Promise<number | null>((resolve) => driver.once('exit', (code) => resolve(code)));
  const client = new CsiClient(`unix://${socket}`);
  try {
    step(1, `started: stowage driver --backend local --local-dir ${poolDir} --kubelet-dir ${kubeletDir}`);
    await client.waitForReady(10_000);
    show(await client.identity.GetPluginInfo({}));
    for (let i = 0; i < 100 && !(await client.identity.Probe({})).ready?.value; i++) await sleep(100);
    show({ probe: 'ready' });

    step(2, 'CreateVolume demo-volume, 1 GiB');
    const mount = { fs_type: flags.fsType === 'btrfs' ? '' : flags.fsType, mount_flags: [] };
    const capability = { mount, access_mode: { mode: 'SINGLE_NODE_WRITER' as const } };
    const { volume } = await client.controller.CreateVolume({
      name: 'demo-volume',
      capacity_range: { required_bytes: 1024 ** 3 },
      volume_capabilities: [capability],
    });
    show(volume);
    const volumeId = volume!.volume_id;

    const staging = join(kubeletDir, 'plugins/kubernetes.io/csi/pv/demo-volume/globalmount');
    const target = join(kubeletDir, 'pods/demo-pod/volumes/kubernetes.io~csi/demo-volume/mount');
    step(3, `NodeStageVolume → ${staging}`);
    await client.node.NodeStageVolume({ volume_id: volumeId, staging_target_path: staging, volume_capability: capability });
    step(4, `NodePublishVolume → ${target}`);
    await client.node.NodePublishVolume({ volume_id: volumeId, staging_target_path: staging, target_path: target, volume_capability: capability });

    step(5, 'write hello.txt through the published path');
    await writeFile(join(target, 'hello.txt'), 'hello world\n');
    step(6, 'read it back');
    show({ content: await readFile(join(target, 'hello.txt'), 'utf8') });
    const stats = await client.node.NodeGetVolumeStats({ volume_id: volumeId, volume_path: target });
    show(stats);

    step(7, 'NodeUnpublishVolume, NodeUnstageVolume');
    await client.node.NodeUnpublishVolume({ volume_id: volumeId, target_path: target });
    await client.node.NodeUnstageVolume({ volume_id: volumeId, staging_target_path: staging });
    step(8, 'DeleteVolume');
    await client.controller.DeleteVolume({ volume_id: volumeId });
    const left = await client.controller.ListVolumes({});
    show({ volumesLeft: left.entries.length });
    process.stdout.write('\ndemo finished: the volume lived and died through the CSI socket\n');
  } finally {
    client.close();
    driver.kill('SIGTERM');
    await exited;
    if (!flags.keep) {
      await releasePool(poolDir);
      await rm(dir, { recursive: true, force: true });
    }
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
