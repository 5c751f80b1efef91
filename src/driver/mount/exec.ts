/**
 * The single gate through which the driver runs external commands.
 *
 * Arguments always travel as an argv array (spawn, never a shell), so IDs
 * and paths from callers cannot be interpreted as shell syntax. Secrets passed
 * in RunOptions.secrets are masked in logs and error messages.
 */
import { spawn } from 'node:child_process';
import type { Readable } from 'node:stream';
import type { Logger } from 'pino';
import { requestLog } from '../../log/request-log.js';

export interface RunOptions {
  /** Kill the command after this long (default 60 s). */
  timeoutMs?: number;
  /** Written to the command's stdin; stdin is closed either way. */
  input?: string;
  /** Values replaced by "***stripped***" wherever args or output are logged or reported. */
  secrets?: string[];
  /** Merged over the driver's environment. */
  env?: Record<string, string>;
  /** Exit codes that count as success (default [0]). */
  okExitCodes?: number[];
}

export interface RunResult {
  stdout: string;
  stderr: string;
  exitCode: number;
}

export interface CommandRunner {
  run(cmd: string, args: string[], opts?: RunOptions): Promise<RunResult>;
}

const STRIPPED = '***stripped***';
const DEFAULT_TIMEOUT_MS = 60_000;
/** Time a command gets to exit after SIGTERM before it is SIGKILLed. */
const KILL_GRACE_MS = 2_000;
const STDERR_TAIL_CHARS = 2_000;
/** Bounds memory if a tool goes haywire; far above anything the driver's tools print. */
const MAX_OUTPUT_BYTES = 64 * 1024 * 1024;

export function stripSecrets(text: string, secrets: readonly string[] = []): string {
  let out = text;
  for (const secret of secrets) {
    if (secret !== '') out = out.split(secret).join(STRIPPED);
  }
  return out;
}

export class CommandFailedError extends Error {
  override readonly name = 'CommandFailedError';
  constructor(
    readonly cmd: string,
    /** Arguments with secrets already stripped. */
    readonly args: string[],
    /** null when the command never ran or died from a signal. */
    readonly exitCode: number | null,
    /** Last part of stderr, secrets stripped. */
    readonly stderr: string,
    cause?: unknown,
  ) {
    const status = exitCode === null ? 'did not exit normally' : `exited with code ${exitCode}`;
    super(`${[cmd, ...args].join(' ')} ${status}${stderr ? `: ${stderr}` : ''}`, { cause });
  }
}

export class CommandTimeoutError extends Error {
  override readonly name = 'CommandTimeoutError';
  constructor(
    readonly cmd: string,
    readonly args: string[],
    readonly timeoutMs: number,
  ) {
    super(`${[cmd, ...args].join(' ')} timed out after ${timeoutMs} ms`);
  }
}

export class ExecRunner implements CommandRunner {
  constructor(private readonly logger: Logger) {}

  run(cmd: string, args: string[], opts: RunOptions = {}): Promise<RunResult> {
    const secrets = opts.secrets ?? [];
    const shownArgs = args.map((a) => stripSecrets(a, secrets));
    const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    const okExitCodes = opts.okExitCodes ?? [0];
    const started = performance.now();

    return new Promise<RunResult>((resolve, reject) => {
      const child = spawn(cmd, args, {
        // LC_ALL=C keeps tool output parseable regardless of the host locale.
        env: { ...process.env, LC_ALL: 'C', ...opts.env },
        // Own process group, so a timeout also kills helpers the command spawned
        // (mount → mount.ceph…), which would otherwise hold its output pipes open.
        detached: true,
      });
      const killGroup = (signal: NodeJS.Signals) => {
        try {
          if (child.pid !== undefined) process.kill(-child.pid, signal);
        } catch {
          // ESRCH: already gone
        }
      };
      const stdout = collect(child.stdout, () => killGroup('SIGKILL'));
      const stderr = collect(child.stderr, () => killGroup('SIGKILL'));
      let timedOut = false;
      let killTimer: NodeJS.Timeout | undefined;
      const termTimer = setTimeout(() => {
        timedOut = true;
        killGroup('SIGTERM');
        killTimer = setTimeout(() => killGroup('SIGKILL'), KILL_GRACE_MS);
      }, timeoutMs);

      // Only the message: Node's spawn error also carries the raw (unstripped) argv.
      let spawnError: Error | undefined;
      child.on('error', (err) => (spawnError ??= new Error(stripSecrets(err.message, secrets))));
      child.on('close', (code) => {
        clearTimeout(termTimer);
        clearTimeout(killTimer);
        const exitCode = spawnError ? null : code;
        requestLog(this.logger).debug(
          { cmd, args: shownArgs, durationMs: Math.round(performance.now() - started), exitCode, timedOut },
          'exec',
        );
        if (timedOut) {
          reject(new CommandTimeoutError(cmd, shownArgs, timeoutMs));
        } else if (exitCode !== null && okExitCodes.includes(exitCode) && !stdout.overflow && !stderr.overflow) {
          resolve({ stdout: stdout.text(), stderr: stderr.text(), exitCode });
        } else {
          const tail = stripSecrets(stderr.text(), secrets).trim().slice(-STDERR_TAIL_CHARS);
          const overflow = stdout.overflow || stderr.overflow ? new Error(`output exceeded ${MAX_OUTPUT_BYTES} bytes`) : undefined;
          reject(new CommandFailedError(cmd, shownArgs, exitCode, tail, spawnError ?? overflow));
        }
      });
      // Without this a command that reads stdin would wait forever.
      child.stdin.on('error', () => {}).end(opts.input ?? '');
    });
  }
}

/** Buffers a stream, calling onOverflow (once) if it passes MAX_OUTPUT_BYTES. */
function collect(stream: Readable, onOverflow: () => void): { text(): string; overflow: boolean } {
  const chunks: Buffer[] = [];
  let size = 0;
  const out = { text: () => Buffer.concat(chunks).toString('utf8'), overflow: false };
  stream.on('data', (chunk: Buffer) => {
    size += chunk.length;
    if (size <= MAX_OUTPUT_BYTES) chunks.push(chunk);
    else if (!out.overflow) {
      out.overflow = true;
      onOverflow();
    }
  });
  return out;
}
