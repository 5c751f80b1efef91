// `stowage get -o yaml|json` leaves metadata.managedFields out, as kubectl does, and shows them
// with --show-managed-fields: every write now records them, and they would drown the object. The
// CLI's own writes are recorded under its program name, "stowage".
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ApiClient } from '../../src/cli/api-client.js';
import { parseTargets, runGet } from '../../src/cli/get-command.js';
import { type ApiServer, startApiServer } from '../../src/control/server/api-server.js';
import { open, type Store } from '../../src/control/store/store.js';

describe('stowage get and managedFields', () => {
  let store: Store;
  let server: ApiServer;
  before(async () => {
    store = open(':memory:');
    server = await startApiServer({ store, listen: 'http://127.0.0.1:0' });
    const res = await fetch(`${server.url}/api/v1/namespaces/default/configmaps?fieldManager=seeder`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'c' }, data: { k: 'v' } }),
    });
    assert.equal(res.status, 201);
  });
  after(async () => {
    await server.close();
    store.close();
  });

  const cases: { args: string[]; output: string; show: boolean; managed: boolean }[] = [
    { args: ['configmap', 'c'], output: 'yaml', show: false, managed: false },
    { args: ['configmap', 'c'], output: 'yaml', show: true, managed: true },
    { args: ['configmap'], output: 'json', show: false, managed: false },
    { args: ['configmap'], output: 'json', show: true, managed: true },
  ];
  it('writes as manager "stowage" (its User-Agent\'s program name)', async () => {
    const client = new ApiClient({ server: server.url });
    const resource = parseTargets(['configmap'])[0]?.resource;
    assert.ok(resource);
    const patched = await client.patch(resource, 'default', 'c', { data: { k: 'w' } });
    assert.deepEqual(patched.metadata.managedFields?.map((e) => e.manager).sort(), ['seeder', 'stowage']);
  });

  for (const c of cases) {
    it(`get ${c.args.join(' ')} -o ${c.output}${c.show ? ' --show-managed-fields' : ''}`, async () => {
      let text = '';
      await runGet(new ApiClient({ server: server.url }), parseTargets(c.args), {
        output: c.output,
        headers: true,
        showManagedFields: c.show,
        namespace: 'default',
        out: (s) => {
          text += s;
        },
        err: () => undefined,
      });
      assert.match(text, /seeder|\bname: c\b|"name": "c"/);
      assert.equal(/managedFields/.test(text), c.managed);
      assert.equal(/seeder/.test(text), c.managed);
    });
  }
});
