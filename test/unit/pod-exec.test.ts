// pods/{name}/exec over WebSocket, against the real API server with a stand-in executor (the
// command runs on this machine, in a process group of its own, as the node runtime starts it): what
// a kubectl user would trip on when the connection misbehaves. A slow client holds the command's
// output back instead of the server buffering all of it; a client that goes away ends the command
// and everything it started; a malformed frame closes that one connection and the server goes on.
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { WebSocket } from 'ws';
import { type ApiServer, startApiServer } from '../../src/control/server/api-server.js';
import { PROTOCOL_V5 } from '../../src/control/server/pod-exec.js';
import { open, type Store } from '../../src/control/store/store.js';

const POD = {
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: { name: 'box', namespace: 'default' },
  spec: { nodeName: 'node-1', containers: [{ name: 'main', image: 'busybox' }] },
};

interface Session {
  ws: WebSocket;
  /** Bytes per stream (1 stdout, 2 stderr), and the error stream's Status once it came. */
  received: Map<number, number>;
  text: Map<number, string>;
  status: Promise<{ status: string }>;
  closed: Promise<number>;
}

function exec(base: string, command: string[], stdin = false): Promise<Session> {
  const query = new URLSearchParams([...command.map((c): [string, string] => ['command', c]), ['stdout', 'true'], ['stderr', 'true'], ['stdin', String(stdin)]]);
  const ws = new WebSocket(`${base.replace(/^http/, 'ws')}/api/v1/namespaces/default/pods/box/exec?${query}`, [PROTOCOL_V5]);
  const received = new Map<number, number>();
  const text = new Map<number, string>();
  let gotStatus: (s: { status: string }) => void = () => undefined;
  const status = new Promise<{ status: string }>((resolve) => {
    gotStatus = resolve;
  });
  ws.on('message', (data: Buffer) => {
    const id = data[0] ?? -1;
    if (id === 3) gotStatus(JSON.parse(data.subarray(1).toString()) as { status: string });
    received.set(id, (received.get(id) ?? 0) + data.length - 1);
    if (data.length < 200) text.set(id, (text.get(id) ?? '') + data.subarray(1).toString());
  });
  const closed = new Promise<number>((resolve) => ws.once('close', (code) => resolve(code)));
  return new Promise((resolve, reject) => {
    ws.once('open', () => resolve({ ws, received, text, status, closed }));
    ws.once('error', reject);
  });
}

async function until(what: string, check: () => boolean, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('pods/exec over WebSocket: connections that misbehave', () => {
  let store: Store;
  let server: ApiServer;
  let children: ChildProcess[];

  beforeEach(async () => {
    store = open(':memory:');
    store.create(POD);
    children = [];
    server = await startApiServer({
      store,
      listen: 'http://127.0.0.1:0',
      podExec: (_pod, _container, command, stdin) => {
        const child = spawn(command[0] ?? 'false', command.slice(1), { stdio: 'pipe', detached: true });
        if (!stdin) child.stdin.end();
        children.push(child);
        return child;
      },
    });
  });
  afterEach(async () => {
    // Every group, whatever became of its leader (a leftover would outlive the test).
    for (const c of children) {
      try {
        if (c.pid !== undefined) process.kill(-c.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    await server.close();
    store.close();
  });

  it("holds a slow client's output back in the command, then delivers all of it", async () => {
    const size = 48 * 1024 * 1024;
    const s = await exec(server.url, ['sh', '-c', `head -c ${size} /dev/zero; echo done >&2`]);
    s.ws.pause(); // the client stops reading
    await sleep(1500);
    const child = children[0];
    assert.ok(child !== undefined);
    // Without backpressure the server would have read (and held) all of it, and the command be done.
    assert.equal(child.exitCode, null, 'the command finished while its client read nothing: the server buffered its output');
    s.ws.resume();
    assert.deepEqual(await s.status, { metadata: {}, status: 'Success' });
    assert.equal(s.received.get(1), size);
    assert.equal(s.text.get(2), 'done\n');
    assert.equal(await s.closed, 1000);
  });

  it('ends the command and what it started when the client goes away', async () => {
    const s = await exec(server.url, ['sh', '-c', 'sleep 300 & echo $!; wait']);
    await until('the background pid', () => /^\d+\n$/.test(s.text.get(1) ?? ''));
    const pid = Number(s.text.get(1));
    assert.ok(alive(pid));
    s.ws.terminate();
    await until('the command started by the exec to end', () => !alive(pid));
  });

  it('leaves what the command left writing in the background no reader once the client goes', async () => {
    // The command itself exits at once; `yes` goes on writing to the exec's stdout.
    const s = await exec(server.url, ['sh', '-c', 'yes & echo "pid $!" >&2; exit 0']);
    await until('the background pid', () => /^pid \d+\n$/.test(s.text.get(2) ?? ''));
    const pid = Number((s.text.get(2) ?? '').slice(4));
    s.ws.terminate();
    await until('the background writer to end (SIGPIPE)', () => !alive(pid));
  });

  it('takes input the command stopped reading without stalling: a client that goes is still seen going', async () => {
    // The command reads nothing for a while (its pipe fills: the server stops reading the client),
    // then closes its stdin and sleeps: the input waiting for it meets a broken pipe.
    const s = await exec(server.url, ['sh', '-c', 'echo "pid $$"; sleep 1; exec 0<&-; exec sleep 300'], true);
    await until('the pid', () => /^pid \d+\n$/.test(s.text.get(1) ?? ''));
    const pid = Number((s.text.get(1) ?? '').slice(4));
    const piece = Buffer.alloc(32 * 1024 + 1);
    for (let i = 0; i < 256; i++) s.ws.send(piece); // 8 MiB, stream 0 (stdin)
    await sleep(1500);
    s.ws.terminate();
    await until('the command to end with its client', () => !alive(pid));
  });

  it('closes a connection that sends a malformed frame, and serves the next one', async () => {
    const s = await exec(server.url, ['sleep', '300']);
    // A masked binary frame with RSV1 set (no extension negotiated: a protocol error).
    const socket = (s.ws as unknown as { _socket: { write(b: Buffer): void } })._socket;
    socket.write(Buffer.from([0xc2, 0x80, 1, 2, 3, 4]));
    await s.closed;
    await until('the command of the broken connection to end', () => children[0]?.signalCode === 'SIGKILL');
    const next = await exec(server.url, ['echo', 'still here']);
    assert.deepEqual(await next.status, { metadata: {}, status: 'Success' });
    assert.equal(next.text.get(1), 'still here\n');
  });
});
