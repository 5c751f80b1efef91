#!/usr/bin/env node
// Entry point for `npx stowage`; the compiled CLI lives in dist/ (built by `npm ci` via the prepare script).
//
// The Node version is checked before anything else is loaded: dist/ imports what only Node 24 has
// (node:util's getSystemErrorMessage among others), and under an older Node such an import fails
// while the module graph is linked, with a SyntaxError that does not say which Node is needed. So
// this file has no static import at all: every module comes through a dynamic import() after the
// check. The machine's own Node (Debian's, 20) is the one most likely to run it by mistake.
const MIN_NODE_MAJOR = 24;
const foundNode = process.versions.node;
if (Number(foundNode.split('.')[0]) < MIN_NODE_MAJOR) {
  process.stderr.write(`stowage needs Node >= ${MIN_NODE_MAJOR} (found ${foundNode}); run npm ci or use node_modules/.bin/node\n`);
  process.exit(1);
}

const { default: module } = await import('node:module');

const isDriver = process.argv[2] === 'driver';
if (isDriver) {
  // The driver is a daemon that idles most of its life, so it trades a little peak speed for
  // memory, set here rather than as node flags so that every way of starting it (npx, `node
  // bin/stowage.js`, the container's entrypoint) gets them. Measured with bench/driver-bench.ts
  // and bench/startup-bench.ts: no loss of throughput or start-up time, about 10 MB less idle RSS.
  //  - --semi-space-growth-factor=1: the young generation stops growing, at 2 MB instead of the
  //    8 MB it reaches during start-up otherwise (--max-semi-space-size cannot be set once the heap
  //    exists); its collections stay short: our calls allocate little that lives.
  //  - --no-opt: no TurboFan. Maglev still optimizes the hot paths, which spend their time in
  //    syscalls and http2 anyway; TurboFan's code pages (~5 MB of the binary) stay untouched.
  // Flags the user gave node for the same thing win.
  const given = `${process.execArgv.join(' ')} ${process.env.NODE_OPTIONS ?? ''}`;
  const flags = [];
  if (!/semi-space/.test(given)) flags.push('--semi-space-growth-factor=1');
  if (!/--(no-)?(opt|turbofan)\b/.test(given)) flags.push('--no-opt');
  if (flags.length > 0) {
    // V8 accepts code cache only if it was made under the same flags, and Node's own modules come
    // with a code cache made under the defaults: every built-in loaded after the change would be
    // compiled from source (~50 ms more to the socket). node:http2 brings nearly all the built-ins
    // the driver uses, so it is loaded first (loading the few others too would grow the young
    // generation to 4 MB before the flag holds it).
    await import('node:http2');
    (await import('node:v8')).setFlagsFromString(flags.join(' '));
  }
}

// Caches compiled bytecode between runs: the driver's socket is up ~40% sooner on a warm start.
module.enableCompileCache?.();

if (isDriver) {
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
