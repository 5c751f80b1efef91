/**
 * The driver's log destination (src/log/batched-stdout.ts), in a real child process writing to a
 * real pipe: what an operator reading the driver's stdout sees.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { pathToFileURL } from 'node:url';

const destination = pathToFileURL(join(import.meta.dirname, '..', '..', 'src', 'log', 'batched-stdout.js')).href;

/** Runs an ES module snippet in a child node; `BatchedStdout` and `pino` are in scope. */
function child(body: string) {
  const code = `import { BatchedStdout } from ${JSON.stringify(destination)}; import { pino } from 'pino';\n${body}`;
  // cwd: the repository, so that the child resolves 'pino' as the driver does.
  return spawn(process.execPath, ['--input-type=module', '-e', code], { cwd: join(import.meta.dirname, '..', '..', '..'), stdio: ['ignore', 'pipe', 'pipe'] });
}

function collect(stream: NodeJS.ReadableStream): Promise<string> {
  return new Promise((resolve) => {
    let text = '';
    stream.on('data', (c: Buffer) => (text += c.toString('utf8')));
    stream.on('end', () => resolve(text));
  });
}

describe('BatchedStdout (the driver log destination)', () => {
  it('loses no line logged just before the process exits, and keeps their order', async () => {
    const proc = child(`
      const log = pino({ level: 'info' }, new BatchedStdout(1));
      for (let i = 0; i < 2000; i++) log.info({ i }, 'line');
      process.exit(0);`);
    const [out, err] = await Promise.all([collect(proc.stdout!), collect(proc.stderr!)]);
    const code = await new Promise((resolve) => (proc.exitCode !== null ? resolve(proc.exitCode) : proc.once('exit', resolve)));
    assert.equal(code, 0, err);
    const lines = out.trimEnd().split('\n').map((l) => JSON.parse(l) as { i: number; msg: string });
    assert.equal(lines.length, 2000);
    assert.deepEqual(
      lines.map((l) => l.i),
      Array.from({ length: 2000 }, (_, i) => i),
    );
  });

  it('writes the lines of later turns as they come, not only at exit', async () => {
    const proc = child(`
      const log = pino({ level: 'info' }, new BatchedStdout(1));
      log.info('first');
      setTimeout(() => { log.info('second'); setTimeout(() => process.exit(0), 5000); }, 50);`);
    const seen = await new Promise<string>((resolve, reject) => {
      let text = '';
      proc.stdout!.on('data', (c: Buffer) => {
        text += c.toString('utf8');
        if (text.includes('"second"')) resolve(text);
      });
      proc.once('exit', () => reject(new Error(`exited before logging both lines: ${text}`)));
    });
    proc.kill();
    assert.match(seen, /"first"[\s\S]*"second"/);
  });

  it('keeps the process running when nobody reads its stdout any more', async () => {
    const proc = child(`
      const log = pino({ level: 'info' }, new BatchedStdout(1));
      let n = 0;
      const timer = setInterval(() => log.info({ n: n++ }, 'tick'), 2);
      setTimeout(() => { clearInterval(timer); process.stderr.write('still here'); process.exit(0); }, 400);`);
    // Close our end of the pipe as soon as the first line arrives: the child's next writes fail with EPIPE.
    proc.stdout!.once('data', () => proc.stdout!.destroy());
    const err = await collect(proc.stderr!);
    const code = await new Promise((resolve) => (proc.exitCode !== null ? resolve(proc.exitCode) : proc.once('exit', resolve)));
    assert.equal(code, 0, err);
    assert.equal(err, 'still here');
  });
});
