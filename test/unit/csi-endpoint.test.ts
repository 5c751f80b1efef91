import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseEndpoint } from '../../src/csi/endpoint.js';

describe('parseEndpoint', () => {
  it('accepts the three unix socket spellings', () => {
    assert.equal(parseEndpoint('unix:///var/lib/kubelet/plugins/stowage/csi.sock'), '/var/lib/kubelet/plugins/stowage/csi.sock');
    assert.equal(parseEndpoint('unix:/csi/csi.sock'), '/csi/csi.sock');
    assert.equal(parseEndpoint('/csi/csi.sock'), '/csi/csi.sock');
    assert.equal(parseEndpoint('  unix:///csi//x/../csi.sock '), '/csi/csi.sock');
  });

  it('rejects anything that is not an absolute unix socket path, saying why', () => {
    const cases: [string, RegExp][] = [
      ['', /empty/],
      ['   ', /empty/],
      ['tcp://127.0.0.1:10000', /not a unix socket/],
      ['dns:///csi.example.com', /not a unix socket/],
      ['csi.sock', /not an absolute/],
      ['./csi.sock', /not an absolute/],
      ['unix:csi.sock', /not an absolute/],
      ['unix://csi.sock', /host part or a relative path/],
      ['unix://host/csi.sock', /host part or a relative path/],
      ['unix://', /host part or a relative path/],
      ['/', /directory/],
      [`/${'x'.repeat(120)}.sock`, /longer than 107 bytes/],
    ];
    for (const [endpoint, why] of cases) {
      assert.throws(() => parseEndpoint(endpoint), why, JSON.stringify(endpoint));
    }
  });
});
