// The control plane's PKI (server/pki.ts): the names the serving certificate covers, files kept
// owner-only and reused across restarts, the serving certificate (never the CA) remade when its
// names change, it nears expiry or its key is not its own, and a chain that node's TLS client
// accepts for every name and refuses for others.
import assert from 'node:assert/strict';
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { mkdtempSync, rmSync, statSync, writeFileSync, readFileSync } from 'node:fs';
import { createServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from 'node:tls';
import { after, before, describe, it } from 'node:test';
import { canonicalIp, certificateNames, ensurePki, subjectNames } from '../../src/control/server/pki.js';

const DAY = 24 * 60 * 60 * 1000;

describe('PKI: subject names', () => {
  const interfaces = {
    lo: [{ address: '127.0.0.1', netmask: '255.0.0.0', family: 'IPv4', mac: '00:00:00:00:00:00', internal: true, cidr: '127.0.0.1/8' }],
    eth0: [
      { address: '10.0.0.5', netmask: '255.255.255.0', family: 'IPv4', mac: '02:00:00:00:00:01', internal: false, cidr: '10.0.0.5/24' },
      { address: 'fe80::1', netmask: 'ffff:ffff:ffff:ffff::', family: 'IPv6', mac: '02:00:00:00:00:01', internal: false, cidr: 'fe80::1/64', scopeid: 2 },
    ],
  } as unknown as NodeJS.Dict<import('node:os').NetworkInterfaceInfo[]>;
  const base = { dns: ['localhost', 'vm1'], ips: ['0:0:0:0:0:0:0:1', '127.0.0.1'] };
  const cases: { name: string; hosts: string[]; want: { dns: string[]; ips: string[] } }[] = [
    { name: 'loopback only', hosts: ['127.0.0.1'], want: base },
    { name: 'an IP listen host', hosts: ['192.168.1.20'], want: { dns: base.dns, ips: ['0:0:0:0:0:0:0:1', '127.0.0.1', '192.168.1.20'] } },
    { name: 'an IPv6 listen host, bracketed', hosts: ['[2001:db8::7]'], want: { dns: base.dns, ips: ['0:0:0:0:0:0:0:1', '127.0.0.1', '2001:db8:0:0:0:0:0:7'] } },
    { name: 'localhost adds nothing', hosts: ['localhost'], want: base },
    { name: 'a wildcard: every address of the machine', hosts: ['0.0.0.0'], want: { dns: base.dns, ips: ['0:0:0:0:0:0:0:1', '10.0.0.5', '127.0.0.1', 'fe80:0:0:0:0:0:0:1'] } },
  ];
  for (const c of cases) {
    it(c.name, () => assert.deepEqual(subjectNames(c.hosts, 'VM1', interfaces), c.want));
  }

  const spellings: [string, string][] = [
    ['::1', '0:0:0:0:0:0:0:1'],
    ['0:0:0:0:0:0:0:1', '0:0:0:0:0:0:0:1'],
    ['2001:DB8::0007', '2001:db8:0:0:0:0:0:7'],
    ['::ffff:1.2.3.4', '0:0:0:0:0:ffff:102:304'],
    ['10.1.2.3', '10.1.2.3'],
  ];
  for (const [ip, want] of spellings) it(`spells ${ip} as ${want}`, () => assert.equal(canonicalIp(ip), want));
});

describe('PKI: files, reuse and renewal', () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'stowage-pki-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('makes a CA and a serving certificate it signed, owner-only, with the wanted names', async () => {
    const pki = await ensurePki(dir, ['127.0.0.1']);
    assert.equal(pki.renewed, true);
    assert.equal(statSync(join(dir, 'pki')).mode & 0o777, 0o700);
    for (const f of ['ca.crt', 'ca.key', 'serving.crt', 'serving.key']) assert.equal(statSync(join(dir, 'pki', f)).mode & 0o777, 0o600, f);
    const ca = new X509Certificate(pki.caPem);
    const cert = new X509Certificate(pki.certPem);
    assert.equal(ca.ca, true);
    assert.equal(cert.ca, false);
    assert.ok(cert.checkIssued(ca) && cert.verify(ca.publicKey));
    assert.deepEqual(certificateNames(pki.certPem), subjectNames(['127.0.0.1']));
  });

  it('reuses both on restart with the same names', async () => {
    const first = await ensurePki(dir, ['127.0.0.1']);
    const again = await ensurePki(dir, ['127.0.0.1']);
    assert.equal(again.renewed, false);
    assert.equal(again.certPem, first.certPem);
    assert.equal(again.keyPem, first.keyPem);
  });

  it('remakes only the serving certificate when the names change', async () => {
    const before = await ensurePki(dir, ['127.0.0.1']);
    const moved = await ensurePki(dir, ['127.0.0.1', '10.9.8.7']);
    assert.equal(moved.renewed, true);
    assert.equal(moved.caPem, before.caPem, 'the CA in kubeconfigs stays valid');
    assert.ok(certificateNames(moved.certPem).ips.includes('10.9.8.7'));
  });

  it('remakes the serving certificate within 30 days of its expiry', async () => {
    const now = await ensurePki(dir, ['127.0.0.1']);
    const later = new Date(Date.now() + 340 * DAY);
    const renewed = await ensurePki(dir, ['127.0.0.1'], later);
    assert.equal(renewed.renewed, true);
    assert.equal(renewed.caPem, now.caPem);
    assert.ok(new Date(new X509Certificate(renewed.certPem).validTo).getTime() > later.getTime() + 300 * DAY);
    // Back to today: that certificate is not valid yet, so it is remade again.
    assert.equal((await ensurePki(dir, ['127.0.0.1'])).renewed, true);
  });

  it('remakes the serving certificate when its key is not its own', async () => {
    const good = await ensurePki(dir, ['127.0.0.1']);
    writeFileSync(join(dir, 'pki', 'serving.key'), readFileSync(join(dir, 'pki', 'ca.key')));
    const fixed = await ensurePki(dir, ['127.0.0.1']);
    assert.equal(fixed.renewed, true);
    assert.notEqual(fixed.certPem, good.certPem);
    assert.ok(new X509Certificate(fixed.certPem).checkPrivateKey(createPrivateKey(fixed.keyPem)));
  });

  it('serves TLS that a client trusting only the CA accepts for its names and refuses for others', async () => {
    const pki = await ensurePki(dir, ['127.0.0.1']);
    const server = createServer({ cert: pki.certPem, key: pki.keyPem }, (_req, res) => res.end('ok'));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as AddressInfo).port;
    const handshake = (servername: string | undefined): Promise<string> =>
      new Promise((resolve) => {
        const socket = connect({ host: '127.0.0.1', port, ca: pki.caPem, ...(servername === undefined ? {} : { servername }) }, () => {
          socket.end();
          resolve('ok');
        });
        socket.once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
      });
    try {
      assert.equal(await handshake(undefined), 'ok', 'by IP 127.0.0.1');
      assert.equal(await handshake('localhost'), 'ok');
      assert.equal(await handshake('example.com'), 'ERR_TLS_CERT_ALTNAME_INVALID');
      const stranger = await new Promise<string>((resolve) => {
        const socket = connect({ host: '127.0.0.1', port }, () => resolve('ok'));
        socket.once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
      });
      assert.equal(stranger, 'UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'without the CA the chain is not trusted');
    } finally {
      server.close();
    }
  });
});
