// A CommandRunner that records every command (argv, options) and answers from a script, so unit
// tests can assert the exact commands a node path runs and their order without the tools or the
// kernel modules. At each call it also notes the files named by `--keyfile=` / `secretfile=`
// arguments as they are at that moment (present, mode, content): credentials must exist, 0600,
// only while the command runs.
import { readFile, stat } from 'node:fs/promises';
import type { CommandRunner, RunOptions, RunResult } from '../../src/driver/mount/exec.js';

export interface RecordedCall {
  cmd: string;
  args: string[];
  opts: RunOptions | undefined;
  /** Credential files named in args, as they were when the command ran. */
  files: { path: string; mode: number | undefined; content: string | undefined }[];
}

/** What a scripted command does: print, fail (throw), or hang up on the runner's timeout. */
export type Answer = Partial<RunResult> | Error;
export type Script = (cmd: string, args: string[]) => Answer | undefined;

export class RecordingRunner implements CommandRunner {
  readonly calls: RecordedCall[] = [];

  constructor(private readonly script: Script = () => undefined) {}

  async run(cmd: string, args: string[], opts?: RunOptions): Promise<RunResult> {
    const files: RecordedCall['files'] = [];
    for (const a of args) {
      for (const m of a.matchAll(/(?:--keyfile=|secretfile=)([^,]+)/g)) {
        const path = m[1]!;
        const st = await stat(path).catch(() => undefined);
        files.push({ path, mode: st ? st.mode & 0o777 : undefined, content: await readFile(path, 'utf8').catch(() => undefined) });
      }
    }
    this.calls.push({ cmd, args, opts, files });
    const answer = this.script(cmd, args);
    if (answer instanceof Error) throw answer;
    return { stdout: answer?.stdout ?? '', stderr: answer?.stderr ?? '', exitCode: answer?.exitCode ?? 0 };
  }

  /** The calls as "cmd arg arg…" with credential file paths replaced by <KEYFILE>. */
  lines(): string[] {
    return this.calls.map((c) => [c.cmd, ...c.args].join(' ').replace(/(--keyfile=|secretfile=)[^,\s]+/g, '$1<KEYFILE>'));
  }
}

/** A host whose /sys and /proc hold exactly the given paths (and texts). */
export function fakeHost(paths: string[], texts: Record<string, string> = {}) {
  const present = new Set([...paths, ...Object.keys(texts)]);
  return {
    exists: async (path: string) => present.has(path),
    readText: async (path: string) => texts[path],
  };
}
