import { Command } from 'commander';
import { registerDemoCommand } from './demo-command.js';
import { registerDriverCommand } from './driver-command.js';

const program = new Command();
program.name('stowage').description('Kubernetes-style persistent storage: CSI driver and embedded control plane').version('0.1.0');
registerDriverCommand(program);
registerDemoCommand(program);
(await import('./ceph-dev-command.js')).registerCephDevCommand(program);

program.parseAsync(process.argv).catch((e: Error) => {
  process.stderr.write(`stowage: ${e.message}\n`);
  process.exit(1);
});
