// The omap journal's name reservation under two controllers (ceph/journal.ts), against an
// in-memory fake of the two RADOS calls it makes. A name key whose UUID object is missing is
// either a reservation cut short by a crash (stale: removed by the next lookup) or one another
// controller is making right now (its object follows within milliseconds). Taking the key from
// the second would let the looker reserve the name too: two volumes for one name, which a CI run
// of rbd-controller.test.ts caught. The lookup now looks for the object again before it calls
// the key stale.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { pino } from 'pino';
import type { OpContext, VolumeRecord } from '../../src/driver/backends/backend.js';
import { OmapJournal, VOLUME_LAYOUT } from '../../src/driver/backends/ceph/journal.js';
import type { IoCtx } from '../../src/driver/backends/ceph/rados.js';

const UUID = '4f8d04c3-84e5-42f2-b585-a08171bc8aee';

/** Objects as maps of omap keys; only what byName and a stale key's removal use. */
function fakePool(): { io: IoCtx; objects: Map<string, Map<string, string>> } {
  const objects = new Map<string, Map<string, string>>();
  const io = {
    poolName: 'fake',
    async omapGet(oid: string, keys: string[]) {
      const o = objects.get(oid);
      return o === undefined ? undefined : new Map(keys.flatMap((k) => (o.has(k) ? [[k, o.get(k) ?? '']] : [])));
    },
    async write(oid: string, steps: { omapEquals?: [string, string]; omapRemove?: string[] }[]) {
      const o = objects.get(oid);
      if (o === undefined) throw Object.assign(new Error('ENOENT'), { errno: 2, code: 'ENOENT' });
      for (const s of steps) if (s.omapEquals && (o.get(s.omapEquals[0]) ?? '') !== s.omapEquals[1]) throw Object.assign(new Error('ECANCELED'), { code: 'ECANCELED' });
      for (const s of steps) for (const k of s.omapRemove ?? []) o.delete(k);
    },
  } as unknown as IoCtx;
  return { io, objects };
}

function journal(io: IoCtx): OmapJournal<VolumeRecord> {
  return new OmapJournal<VolumeRecord>(VOLUME_LAYOUT, {
    withIdPool: (_id, _ctx, use) => use(io),
    withNamePool: (_ctx, use) => use(io, (uuid) => `id-${uuid}`),
  });
}

const ctx = { log: pino({ level: 'silent' }), secrets: {} } as OpContext;

describe('ceph journal: a name key whose UUID object is missing', () => {
  it('is another controller reserving right now when the object follows: found, and the key kept', async () => {
    const { io, objects } = fakePool();
    objects.set('csi.volumes.default', new Map([['csi.volume.pvc-1', UUID]]));
    // The other controller's second write lands 100 ms into the lookup.
    setTimeout(() => objects.set(`csi.volume.${UUID}`, new Map([['csi.volname', 'pvc-1'], ['stowage.record', JSON.stringify({ id: 'x', name: 'pvc-1' })]])), 100);
    const found = await journal(io).byName('pvc-1', ctx);
    assert.equal(found?.name, 'pvc-1');
    assert.equal(found?.id, `id-${UUID}`);
    assert.equal(objects.get('csi.volumes.default')?.get('csi.volume.pvc-1'), UUID, 'the reservation stands');
  });

  it('is a reservation cut short when the object never comes: the key is removed', async () => {
    const { io, objects } = fakePool();
    objects.set('csi.volumes.default', new Map([['csi.volume.pvc-1', UUID]]));
    assert.equal(await journal(io).byName('pvc-1', ctx), undefined);
    assert.equal(objects.get('csi.volumes.default')?.has('csi.volume.pvc-1'), false, 'the stale key is gone');
  });
});
