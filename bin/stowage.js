#!/usr/bin/env node
// Entry point for `npx stowage`; the compiled CLI lives in dist/ (built by `npm ci` via the prepare script).
import module from 'node:module';

// Caches compiled bytecode between runs: the driver's socket is up ~40% sooner on a warm start.
module.enableCompileCache?.();

if (process.argv[2] === 'driver') {
  // The driver is a long-running daemon whose start-up time and memory count, so it skips the
  // client commands' entry (dist/src/cli/main.js): that loads the control plane's HTTP client, and
  // an ESM import of node:http pulls in undici (~60 ms of start-up, several MB), none of it used here.
  const { Command } = await import('commander');
  const { registerDriverCommand } = await import('../dist/src/cli/driver-command.js');
  const program = new Command();
  program.name('stowage').version('0.1.0');
  // The client commands' program-wide flags, accepted (and ignored) here as they are by the full CLI.
  program.option('--state-dir <dir>').option('--server <url>').option('--token <token>').option('-n, --namespace <namespace>');
  registerDriverCommand(program);
  program.parseAsync(process.argv).catch((e) => {
    process.stderr.write(`stowage: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exit(1);
  });
} else {
  await import('../dist/src/cli/main.js');
}
