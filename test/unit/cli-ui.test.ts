// `stowage ui`'s address: the state directory's kubeconfig (server and token) unless --kubeconfig
// or --server say otherwise, the token URL-encoded in the fragment, and a one-line error when the
// server is only a unix socket (browsers speak https).
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { GlobalFlags } from '../../src/cli/connection.js';
import { CliError } from '../../src/cli/errors.js';
import { renderKubeconfig } from '../../src/cli/kubeconfig.js';
import { consoleUrl } from '../../src/cli/ui-command.js';

describe('stowage ui', () => {
  let dir = '';
  let state = '';
  let empty = '';
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'stowage-cli-ui-'));
    state = join(dir, 'state');
    empty = join(dir, 'empty');
    mkdirSync(state);
    mkdirSync(empty);
    delete process.env['STOWAGE_TOKEN'];
    writeFileSync(join(state, 'kubeconfig'), renderKubeconfig({ server: 'https://127.0.0.1:6443', token: 'own-token' }));
    writeFileSync(join(dir, 'other.kubeconfig'), renderKubeconfig({ server: 'https://10.0.0.5:6443', token: 'other/token+x' }));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  const cases: [string, () => GlobalFlags, string | RegExp][] = [
    ['the state directory’s kubeconfig', () => ({ stateDir: state }), 'https://127.0.0.1:6443/ui/#token=own-token'],
    ['--kubeconfig FILE', () => ({ stateDir: empty, kubeconfig: join(dir, 'other.kubeconfig') }), 'https://10.0.0.5:6443/ui/#token=other%2Ftoken%2Bx'],
    ['--server and --token', () => ({ stateDir: empty, server: 'https://example.test:7443/', token: 't' }), 'https://example.test:7443/ui/#token=t'],
    ['a server without a token', () => ({ stateDir: empty, server: 'http://127.0.0.1:8080' }), 'http://127.0.0.1:8080/ui/'],
    ['a unix socket', () => ({ stateDir: empty, server: 'unix:///run/api.sock' }), /is not one/],
  ];
  for (const [name, flags, want] of cases) {
    it(name, async () => {
      if (typeof want === 'string') assert.equal(await consoleUrl(flags()), want);
      else await assert.rejects(consoleUrl(flags()), (err: unknown) => err instanceof CliError && want.test(err.message));
    });
  }
});
