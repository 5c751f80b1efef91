import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { describe, it } from 'node:test';
import { pino } from 'pino';
import { CommandFailedError, CommandTimeoutError, ExecRunner, stripSecrets } from '../../src/driver/mount/exec.js';

/** A runner whose debug log lines are collected in `lines`. */
function runnerWithLog(): { runner: ExecRunner; lines: string[] } {
  const lines: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      lines.push(chunk.toString());
      done();
    },
  });
  return { runner: new ExecRunner(pino({ level: 'debug' }, sink)), lines };
}

describe('ExecRunner', () => {
  it('returns stdout, stderr and the exit code', async () => {
    const { runner } = runnerWithLog();
    const r = await runner.run('sh', ['-c', 'echo out; echo err >&2']);
    assert.deepEqual(r, { stdout: 'out\n', stderr: 'err\n', exitCode: 0 });
  });

  it('passes arguments verbatim, never through a shell', async () => {
    const { runner } = runnerWithLog();
    const nasty = '$(touch /tmp/pwned); `id` && rm -rf / ; "quoted" \'single\'';
    const r = await runner.run('printf', ['%s', nasty]);
    assert.equal(r.stdout, nasty);
  });

  it('feeds input on stdin and closes it otherwise', async () => {
    const { runner } = runnerWithLog();
    assert.equal((await runner.run('cat', [], { input: 'hello' })).stdout, 'hello');
    assert.equal((await runner.run('cat', [])).stdout, ''); // would hang if stdin stayed open
  });

  it('merges env over the process environment', async () => {
    const { runner } = runnerWithLog();
    const r = await runner.run('sh', ['-c', 'echo "$STOWAGE_TEST_VAR:${PATH:+has-path}"'], { env: { STOWAGE_TEST_VAR: 'x' } });
    assert.equal(r.stdout, 'x:has-path\n');
  });

  it('accepts listed non-zero exit codes', async () => {
    const { runner } = runnerWithLog();
    assert.equal((await runner.run('sh', ['-c', 'exit 2'], { okExitCodes: [0, 2] })).exitCode, 2);
  });

  it('fails with the command, exit code and stderr tail, secrets stripped', async () => {
    const { runner, lines } = runnerWithLog();
    const secret = 'hunter2-s3cret';
    const err = await runner
      .run('sh', ['-c', 'echo "bad key $0" >&2; exit 3', `key=${secret}`], { secrets: [secret] })
      .catch((e: unknown) => e);
    assert.ok(err instanceof CommandFailedError);
    assert.equal(err.exitCode, 3);
    assert.equal(err.cmd, 'sh');
    assert.deepEqual(err.args.at(-1), 'key=***stripped***');
    assert.match(err.stderr, /bad key key=\*\*\*stripped\*\*\*/);
    const everything = [err.message, err.stderr, String(err.cause ?? ''), ...err.args, ...lines].join('\n');
    assert.ok(!everything.includes(secret), everything);
    assert.ok(lines.some((l) => l.includes('"exitCode":3') && l.includes('***stripped***')));
  });

  it('fails with exitCode null when the command does not exist', async () => {
    const { runner } = runnerWithLog();
    const err = await runner.run('/nonexistent/stowage-cmd', []).catch((e: unknown) => e);
    assert.ok(err instanceof CommandFailedError);
    assert.equal(err.exitCode, null);
  });

  it('kills a command that outlives its timeout', async () => {
    const { runner } = runnerWithLog();
    const started = performance.now();
    const err = await runner.run('sleep', ['5'], { timeoutMs: 200 }).catch((e: unknown) => e);
    assert.ok(err instanceof CommandTimeoutError, String(err));
    assert.equal(err.timeoutMs, 200);
    assert.ok(performance.now() - started < 2000);
  });

  it('SIGKILLs a command that ignores SIGTERM', async () => {
    const { runner } = runnerWithLog();
    const started = performance.now();
    const err = await runner.run('sh', ['-c', "trap '' TERM; sleep 10"], { timeoutMs: 100 }).catch((e: unknown) => e);
    assert.ok(err instanceof CommandTimeoutError);
    assert.ok(performance.now() - started < 5000);
  });
});

describe('stripSecrets', () => {
  it('replaces every occurrence and ignores empty secrets', () => {
    assert.equal(stripSecrets('a=XY b=XY', ['XY', '']), 'a=***stripped*** b=***stripped***');
  });
});
