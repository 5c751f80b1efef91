// Upgrade requests on the API server: only a WebSocket upgrade of a pod's exec is taken over
// (server/pod-exec.ts); an Upgrade header of another protocol (h2c from curl --http2, SPDY from
// an old client) is an ordinary request and gets the ordinary answer; a WebSocket upgrade of any
// other path is refused with a 400 Status, before anything is upgraded; exec's own refusals (no
// command, a pod that does not exist) come as kube-apiserver's Status before the upgrade too.
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { type ApiServer, startApiServer } from '../../src/control/server/api-server.js';
import { open, type Store } from '../../src/control/store/store.js';

function get(base: string, path: string, headers: Record<string, string>): Promise<{ code: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(`${base}${path}`, { method: 'GET', headers }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString('utf8')));
      res.on('end', () => resolve({ code: res.statusCode ?? 0, body }));
    });
    req.on('upgrade', () => reject(new Error('the server upgraded the connection')));
    req.on('error', reject);
    req.end();
  });
}

const websocket = { Connection: 'Upgrade', Upgrade: 'websocket', 'Sec-WebSocket-Version': '13', 'Sec-WebSocket-Key': 'dGhlIHNhbXBsZSBub25jZQ==', 'Sec-WebSocket-Protocol': 'v5.channel.k8s.io' };

describe('API server: upgrade requests', () => {
  let store: Store;
  let server: ApiServer;
  beforeEach(async () => {
    store = open(':memory:');
    server = await startApiServer({ store, listen: 'http://127.0.0.1:0' });
  });
  afterEach(async () => {
    await server.close();
    store.close();
  });

  it('an h2c or SPDY upgrade header is an ordinary request', async () => {
    const h2c = await get(server.url, '/version', { Connection: 'Upgrade, HTTP2-Settings', Upgrade: 'h2c', 'HTTP2-Settings': '' });
    assert.equal(h2c.code, 200);
    assert.match(h2c.body, /"gitVersion"/);
    const spdy = await get(server.url, '/api/v1/namespaces/default/pods/box/exec?command=true&stdout=true', { Connection: 'Upgrade', Upgrade: 'SPDY/3.1' });
    assert.equal(spdy.code, 404);
    assert.match(spdy.body, /pods \\"box\\" not found/);
  });

  it('a WebSocket upgrade of anything but a pod\'s exec is refused, not upgraded', async () => {
    const r = await get(server.url, '/api/v1/namespaces/default/pods', websocket);
    assert.equal(r.code, 400);
    assert.match(r.body, /only a pod's exec is served over WebSocket/);
  });

  it("exec's refusals come before the upgrade, as kube-apiserver's Status", async () => {
    const none = await get(server.url, '/api/v1/namespaces/default/pods/box/exec?stdout=true', websocket);
    assert.equal(none.code, 400);
    assert.match(none.body, /you must specify at least one command for the container/);
    const missing = await get(server.url, '/api/v1/namespaces/default/pods/box/exec?command=true&stdout=true', websocket);
    assert.equal(missing.code, 404);
    assert.deepEqual(JSON.parse(missing.body).reason, 'NotFound');
  });
});
