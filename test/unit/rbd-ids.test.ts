/**
 * The rbd backend's pure parts: ceph-csi volume IDs (strict decoding: anything malformed is "not
 * ours", never a crash), parameters that must agree with what an ID says, and the ceph-csi
 * cluster list.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ClusterConfig, monHost } from '../../src/driver/backends/ceph/cluster-config.js';
import { InvalidArgumentError } from '../../src/csi/errors.js';
import { decodeId, encodeId, requireAgreement } from '../../src/driver/backends/ceph/volume-id.js';

const FSID = 'f640c054-52a1-46a5-b091-85c5ba706ba9';
const UUID = '1b4e28ba-2fa1-11d2-883f-0016d3cca427';

describe('rbd volume IDs (ceph-csi format)', () => {
  it('encodes version, clusterID length, clusterID, 16-hex pool ID and UUID', () => {
    assert.equal(encodeId({ clusterID: FSID, poolId: 1, uuid: UUID }), `0001-0024-${FSID}-0000000000000001-${UUID}`);
    assert.equal(encodeId({ clusterID: 'rook-ceph', poolId: 2, uuid: UUID }), `0001-0009-rook-ceph-0000000000000002-${UUID}`);
  });

  it('decodes what it encodes, and IDs ceph-csi issued', () => {
    for (const c of [
      { clusterID: FSID, poolId: 1, uuid: UUID },
      { clusterID: 'rook-ceph', poolId: 0x7fffffff, uuid: UUID },
      { clusterID: 'a-b-c-0001-0002', poolId: 0, uuid: UUID },
    ]) {
      assert.deepEqual(decodeId(encodeId(c)), c);
    }
    // From a ceph-csi deployment (Nomad example in ceph-csi's docs).
    assert.deepEqual(decodeId('0001-0024-7635de36-ab1f-4a70-98a2-a1bd80ba77c4-0000000000000006-6e696bba-064f-11ec-a251-0242ac110002'), {
      clusterID: '7635de36-ab1f-4a70-98a2-a1bd80ba77c4',
      poolId: 6,
      uuid: '6e696bba-064f-11ec-a251-0242ac110002',
    });
  });

  it('anything malformed is not an ID (csi-sanity fakes, truncation, padding, case, wrong lengths)', () => {
    const good = encodeId({ clusterID: FSID, poolId: 1, uuid: UUID });
    for (const bad of [
      '',
      'fake-vol-id',
      'fake-vol-id-1234567890',
      good.slice(0, -1),
      `${good}0`,
      `x${good}`,
      good.toUpperCase(),
      good.replace('0001-0024', '0002-0024'),
      good.replace('0001-0024', '0001-0023'),
      good.replace('0001-0024', '0001-0025'),
      good.replace('-0000000000000001-', '-000000000000001-'),
      good.replace('-0000000000000001-', '-00000000000000g1-'),
      good.replace(UUID, UUID.replace(/-/g, '_')),
      `0001-0000--0000000000000001-${UUID}`,
      'a'.repeat(129),
    ]) {
      assert.equal(decodeId(bad), undefined, `decodeId(${JSON.stringify(bad)})`);
    }
  });

  it('refuses to encode what could not be decoded', () => {
    assert.throws(() => encodeId({ clusterID: FSID, poolId: 1, uuid: 'not-a-uuid' }), RangeError);
    assert.throws(() => encodeId({ clusterID: FSID, poolId: -1, uuid: UUID }), RangeError);
    assert.throws(() => encodeId({ clusterID: 'c'.repeat(80), poolId: 1, uuid: UUID }), RangeError);
  });
});

describe('parameters that repeat what an ID says', () => {
  it('absent or equal is fine; anything else is INVALID_ARGUMENT naming both values', () => {
    const table: [string | undefined, boolean][] = [
      [undefined, true],
      ['main', true],
      ['other', false],
      ['', false],
      ['Main', false],
    ];
    for (const [given, ok] of table) {
      const call = () => requireAgreement('clusterID', given, 'main', 'the cluster of source volume v', 'why');
      if (ok) assert.doesNotThrow(call, String(given));
      else {
        assert.throws(call, (e: unknown) => e instanceof InvalidArgumentError && e.message.includes(`"${given}"`) && e.message.includes('"main"'), String(given));
      }
    }
  });
});

describe('the ceph-csi cluster list (--ceph-config)', () => {
  it('reads clusterID → monitors and ignores the fields it does not use', () => {
    const cfg = ClusterConfig.parse(
      JSON.stringify([
        { clusterID: FSID, monitors: ['10.0.0.1:6789', ' 10.0.0.2:6789 '], cephFS: { subvolumeGroup: 'csi' }, rbd: { radosNamespace: '' } },
        { clusterID: 'other', monitors: ['[v2:10.1.0.1:3300,v1:10.1.0.1:6789]'] },
      ]),
    );
    assert.deepEqual(cfg.get(FSID)?.monitors, ['10.0.0.1:6789', '10.0.0.2:6789']);
    assert.deepEqual(cfg.clusters.map((c) => c.clusterID), [FSID, 'other']);
    assert.equal(cfg.get('nope'), undefined);
  });

  it('refuses malformed lists with a message naming the problem', () => {
    const cases: [string, RegExp][] = [
      ['not json', /not JSON/],
      ['{}', /JSON list/],
      ['[]', /lists no cluster/],
      ['[{"monitors":["a:1"]}]', /clusterID must be/],
      ['[{"clusterID":"x"}]', /monitors must be/],
      ['[{"clusterID":"x","monitors":[]}]', /monitors must be/],
      ['[{"clusterID":"x","monitors":[""]}]', /monitors must be/],
      ['[{"clusterID":"has space","monitors":["a:1"]}]', /printable/],
      ['[{"clusterID":"x","monitors":["a:1"]},{"clusterID":"x","monitors":["b:1"]}]', /listed twice/],
      ['[{"clusterID":"x","monitors":["a:1"],"rbd":{"radosNamespace":"ns"}}]', /radosNamespace/],
    ];
    for (const [text, re] of cases) assert.throws(() => ClusterConfig.parse(text, 'cfg.json'), re, text);
  });
});

describe('monitor addresses', () => {
  it('spells out the protocol of bare host:port entries, leaves explicit ones alone', () => {
    assert.equal(monHost(['10.0.0.1:6789', 'mon-b:40123', '10.0.0.3:3300']), '[v1:10.0.0.1:6789],[v1:mon-b:40123],[v2:10.0.0.3:3300]');
    assert.equal(monHost(['[v2:10.0.0.1:3300,v1:10.0.0.1:6789]', 'v1:10.0.0.2:6789', '[::1]:6789']), '[v2:10.0.0.1:3300,v1:10.0.0.1:6789],v1:10.0.0.2:6789,[::1]:6789');
  });
});
