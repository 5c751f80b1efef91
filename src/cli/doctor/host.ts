// The real host behind `stowage doctor`'s checks: files under /proc and /sys, TCP to monitors and
// the CSI Probe on a socket. Every failure becomes a value (undefined, [], an errno code or a
// reason) so a check reports it instead of throwing.
import { Socket } from 'node:net';
import { readdir, readFile, stat } from 'node:fs/promises';
import { CsiClient } from '../../csi/client.js';
import type { HostReader } from './types.js';

export const realHost: HostReader = {
  async readText(path) {
    try {
      return await readFile(path, 'utf8');
    } catch {
      return undefined;
    }
  },
  async list(dir) {
    try {
      return await readdir(dir);
    } catch {
      return [];
    }
  },
  async statError(path) {
    try {
      await stat(path);
      return undefined;
    } catch (e) {
      return (e as NodeJS.ErrnoException).code ?? 'EIO';
    }
  },
  async isSocket(path) {
    try {
      return (await stat(path)).isSocket();
    } catch {
      return false;
    }
  },
};

export function tcpConnect(host: string, port: number, timeoutMs: number): Promise<string | undefined> {
  return new Promise((resolve) => {
    const socket = new Socket();
    const done = (why: string | undefined): void => {
      socket.destroy();
      resolve(why);
    };
    socket.setTimeout(timeoutMs, () => done(`no answer within ${timeoutMs} ms`));
    socket.once('connect', () => done(undefined));
    socket.once('error', (e: NodeJS.ErrnoException) => done(e.code ?? e.message));
    socket.connect(port, host);
  });
}

export async function probeSocket(socketPath: string, timeoutMs: number): Promise<string | undefined> {
  const client = new CsiClient(socketPath, { timeoutMs });
  try {
    const res = (await client.identity.Probe({})) as { ready?: { value?: boolean } | null };
    return res.ready?.value === false ? 'Probe answered not ready' : undefined;
  } catch (e) {
    return e instanceof Error ? e.message : String(e);
  } finally {
    client.close();
  }
}
