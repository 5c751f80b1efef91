// Whether a state directory's control plane still runs, as `up` (refusing a second one) and every
// client (finding the server) decide it from server.json: the recorded process must exist, not be
// a zombie (killed, not yet reaped: `up` right after a kill -9 must start), and be the same process
// (a PID reused by another program after a crash is not the control plane).
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { readServerInfo } from '../../src/cli/connection.js';
import { processStartTicks } from '../../src/control/node/runtime/proc.js';

describe('server.json: is the control plane running', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'stowage-server-info-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  const record = (info: object): void => writeFileSync(join(dir, 'server.json'), JSON.stringify({ url: 'unix:/x.sock', urls: ['unix:/x.sock'], ...info }));
  const me = processStartTicks(process.pid);

  const cases: { name: string; info: () => object; running: boolean }[] = [
    { name: 'this process, its start time recorded', info: () => ({ pid: process.pid, pidStartTicks: me }), running: true },
    { name: 'this process, no start time recorded (a file from before it was)', info: () => ({ pid: process.pid }), running: true },
    { name: 'the PID, but another start time (the PID reused)', info: () => ({ pid: process.pid, pidStartTicks: (me ?? 0) + 1 }), running: false },
    { name: 'no such process', info: () => ({ pid: 2 ** 22 + 1 }), running: false },
  ];
  for (const c of cases) {
    it(c.name, async () => {
      record(c.info());
      assert.equal((await readServerInfo(dir)) !== undefined, c.running);
    });
  }

  it('a zombie (exited, its parent has not waited for it) is not running', async () => {
    // sh starts a child that exits at once, then becomes `sleep`, which never waits for it.
    const parent = spawn('sh', ['-c', 'true & echo $!; exec sleep 30'], { stdio: ['ignore', 'pipe', 'inherit'] });
    try {
      const pid = Number((await new Promise<Buffer>((resolve) => parent.stdout.once('data', resolve))).toString().trim());
      for (let i = 0; i < 100 && processStartTicks(pid) !== undefined; i++) await new Promise((r) => setTimeout(r, 20));
      // Still there as a zombie: kill(pid, 0) succeeds on it.
      assert.doesNotThrow(() => process.kill(pid, 0));
      record({ pid });
      assert.equal(await readServerInfo(dir), undefined);
    } finally {
      parent.kill('SIGKILL');
    }
  });
});
