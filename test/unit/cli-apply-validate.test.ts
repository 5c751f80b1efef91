// `stowage apply --validate` as kubectl's: strict by default (an unknown field is refused with the
// server's strict decoding error, nothing created), warn (created without the field, the server's
// warning printed as kubectl prints it), ignore (created, silent); an unknown mode is refused.
// Through the real binary against a real API server on a store.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { warningTexts } from '../../src/cli/api-client.js';
import { type ApiServer, startApiServer } from '../../src/control/server/api-server.js';
import { open, type Store } from '../../src/control/store/store.js';
import { runCaptured } from '../support/processes.js';

const BIN = fileURLToPath(new URL('../../../bin/stowage.js', import.meta.url));

const manifest = (name: string) => `apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: ${name}
spec:
  accessModes: [ReadWriteOnce]
  resources:
    requests:
      storage: 1Gi
  storageClasName: typo
`;

describe('stowage apply --validate', () => {
  let store: Store;
  let server: ApiServer;
  let dir = '';
  const apply = (name: string, ...flags: string[]) => {
    const file = join(dir, `${name}.yaml`);
    writeFileSync(file, manifest(name));
    return runCaptured(process.execPath, [BIN, '--server', server.url, 'apply', '-f', file, ...flags]);
  };

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'stowage-validate-'));
    store = open(':memory:');
    server = await startApiServer({ store, listen: 'http://127.0.0.1:0' });
  });
  after(async () => {
    await server.close();
    store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('strict (the default): the typo is refused and nothing is created', async () => {
    const r = await apply('strict');
    assert.equal(r.code, 1);
    assert.match(r.stderr, /strict decoding error: unknown field "spec\.storageClasName"/);
    assert.equal(store.get('persistentvolumeclaims', 'default', 'strict'), undefined);
  });

  it('warn: created without the field, and the warning printed as kubectl prints it', async () => {
    const r = await apply('warned', '--validate=warn');
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'persistentvolumeclaim/warned created\n');
    assert.equal(r.stderr, 'Warning: unknown field "spec.storageClasName"\n');
    assert.ok(store.get('persistentvolumeclaims', 'default', 'warned'));
  });

  it('ignore (or false): created, nothing said', async () => {
    const r = await apply('ignored', '--validate=false');
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stderr, '');
  });

  it('an unknown mode is refused in kubectl\'s words', async () => {
    const r = await apply('bad', '--validate=maybe');
    assert.equal(r.code, 1);
    assert.equal(r.stderr, 'error: invalid - validate option "maybe"; must be one of: strict (or true), warn, ignore (or false)\n');
  });

  it('reads RFC 7234 warning headers as kube-apiserver writes them', () => {
    assert.deepEqual(warningTexts('299 - "unknown field \\"spec.x\\""'), ['unknown field "spec.x"']);
    assert.deepEqual(warningTexts(['299 - "a"', '299 - "b, c"']), ['a', 'b, c']);
    assert.deepEqual(warningTexts('299 - "one", 299 - "two"'), ['one', 'two']);
    assert.deepEqual(warningTexts(undefined), []);
  });
});
