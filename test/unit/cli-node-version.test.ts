// bin/stowage.js under a Node older than 24 must say which Node it needs, not die on an import
// only Node 24 can link (issue 11, finding 6). The machine's own Node (/usr/bin/node: Debian's 20,
// here and in CI) is the real case and is preferred; where it is missing or new enough, the check is
// driven by Node 24 with process.versions.node replaced before the entry point runs (--import of a
// data: module), which exercises the same code path.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { runCaptured } from '../support/processes.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const BIN = join(ROOT, 'bin/stowage.js');
const SYSTEM_NODE = '/usr/bin/node';

function majorOf(version: string): number {
  return Number(version.replace(/^v/, '').split('.')[0]);
}

/** The system Node's version, when it is an old one; undefined otherwise. */
async function oldSystemNode(): Promise<string | undefined> {
  if (!existsSync(SYSTEM_NODE)) return undefined;
  const ran = await runCaptured(SYSTEM_NODE, ['--version']);
  const version = ran.stdout.trim().replace(/^v/, '');
  return ran.code === 0 && majorOf(version) < 24 ? version : undefined;
}

const expected = (found: string): string => `stowage needs Node >= 24 (found ${found}); run npm ci or use node_modules/.bin/node\n`;

describe('bin/stowage.js checks the Node version first', () => {
  it('under the machine’s old Node: one line naming the Node it needs, exit 1', async (t) => {
    const found = await oldSystemNode();
    if (found === undefined) {
      t.skip(`${SYSTEM_NODE} is missing or not older than 24; the faked version below covers the check`);
      return;
    }
    for (const args of [['--help'], ['driver', '--help'], ['up', '--state-dir', '/nonexistent']]) {
      const ran = await runCaptured(SYSTEM_NODE, [BIN, ...args], { cwd: ROOT });
      assert.equal(ran.code, 1, `${args.join(' ')}: ${ran.stderr}`);
      assert.equal(ran.stderr, expected(found), args.join(' '));
      assert.equal(ran.stdout, '');
    }
  });

  it('under a Node that reports an old version (faked): the same message, before any import', async () => {
    const fake = "Object.defineProperty(process.versions, 'node', { value: '20.11.1' });";
    const ran = await runCaptured(process.execPath, ['--import', `data:text/javascript,${encodeURIComponent(fake)}`, BIN, '--help'], { cwd: ROOT });
    assert.equal(ran.code, 1, ran.stderr);
    assert.equal(ran.stderr, expected('20.11.1'));
    assert.equal(ran.stdout, '');
  });

  it('under Node 24 it runs', async () => {
    assert.ok(majorOf(process.versions.node) >= 24, `the tests themselves run on Node 24, not ${process.versions.node}`);
    const ran = await runCaptured(process.execPath, [BIN, '--help'], { cwd: ROOT });
    assert.equal(ran.code, 0, ran.stderr);
    assert.match(ran.stdout, /^Usage: stowage/);
  });
});
