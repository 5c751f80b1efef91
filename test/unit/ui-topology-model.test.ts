// The web console's topology model (ui/src/model.ts, the same file the browser bundle uses), on
// in-memory objects: the chain class → claim → volume → backend volume → node → pod, the staging
// and publish paths from the CSI call journal (an unstage takes the label away), red objects only
// while their latest event is a Warning, and the namespace, class and node filters.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { buildTopology, type Filters, shortPath, type TopologyInput, warnings } from '../../ui/src/model.js';
import type { CsiCall, KEvent, KObject } from '../../ui/src/types.js';

const ALL: Filters = { namespace: '', storageClass: '', node: '' };

function claim(ns: string, name: string, sc: string, pv?: string): KObject {
  return { metadata: { name, namespace: ns }, spec: { storageClassName: sc, ...(pv ? { volumeName: pv } : {}), resources: { requests: { storage: '1Gi' } } }, status: { phase: pv ? 'Bound' : 'Pending' } };
}
function pv(name: string, ns: string, claimName: string, handle: string, node: string): KObject {
  return {
    metadata: { name },
    spec: {
      claimRef: { namespace: ns, name: claimName },
      capacity: { storage: '1Gi' },
      csi: { driver: 'local.csi.stowage.dev', volumeHandle: handle, volumeAttributes: { pool: 'p1' } },
      nodeAffinity: { required: { nodeSelectorTerms: [{ matchExpressions: [{ key: 'topology.stowage.dev/node', operator: 'In', values: [node] }] }] } },
    },
    status: { phase: 'Bound' },
  };
}
function pod(ns: string, name: string, uid: string, node: string, claimName: string): KObject {
  return { metadata: { name, namespace: ns, uid }, spec: { nodeName: node, volumes: [{ name: 'v', persistentVolumeClaim: { claimName } }] }, status: { phase: 'Running' } };
}
function call(method: string, volumeId: string, node: string, extra: Partial<CsiCall> = {}): CsiCall {
  return { seq: 0, method, volumeId, node, endpoint: '/s', startTime: '2026-01-01T00:00:00Z', durationMs: 1, code: 'OK', ...extra };
}
function event(kind: string, ns: string, name: string, type: string, reason: string, at: string, message = reason): KEvent {
  return { metadata: { name: `${name}.${at}`, namespace: ns || 'default' }, involvedObject: { kind, name, namespace: ns }, type, reason, message, lastTimestamp: at };
}

const STAGE = '/k/plugins/kubernetes.io/csi/pv/pv-a/globalmount';
const PUBLISH = '/k/pods/uid-a/volumes/kubernetes.io~csi/pv-a/mount';

function cluster(): TopologyInput {
  return {
    classes: [{ metadata: { name: 'fast' } }, { metadata: { name: 'slow' } }],
    claims: [claim('default', 'a', 'fast', 'pv-a'), claim('team', 'b', 'slow', 'pv-b')],
    volumes: [pv('pv-a', 'default', 'a', 'h-a', 'n1'), pv('pv-b', 'team', 'b', 'h-b', 'n2')],
    pods: [pod('default', 'web', 'uid-a', 'n1', 'a'), pod('team', 'job', 'uid-b', 'n2', 'b')],
    nodes: [{ metadata: { name: 'n1' } }, { metadata: { name: 'n2' } }],
    events: [],
    calls: [call('NodeStageVolume', 'h-a', 'n1', { stagingTargetPath: STAGE }), call('NodePublishVolume', 'h-a', 'n1', { stagingTargetPath: STAGE, targetPath: PUBLISH })],
  };
}

describe('the console’s topology model', () => {
  it('links class → claim → volume → backend volume → node → pod, with the journal’s paths on the node edges', () => {
    const g = buildTopology(cluster(), ALL);
    const ids = new Set(g.edges.map((e) => e.id));
    for (const id of ['class:fast->claim:default/a', 'claim:default/a->volume:pv-a', 'volume:pv-a->backend:h-a', 'backend:h-a->node:n1', 'node:n1->pod:default/web']) assert.ok(ids.has(id), `${id} in ${[...ids].join(', ')}`);
    const staged = g.edges.find((e) => e.id === 'backend:h-a->node:n1');
    assert.equal(staged?.title, STAGE);
    assert.match(staged?.label ?? '', /^staged …/);
    assert.equal(g.edges.find((e) => e.id === 'node:n1->pod:default/web')?.title, PUBLISH);
    // b's volume is on n2 because its pod runs there; never staged in the journal, so no path.
    assert.equal(g.edges.find((e) => e.id === 'backend:h-b->node:n2')?.label, undefined);
    assert.match(g.nodes.find((n) => n.id === 'backend:h-a')?.title ?? '', /pool=p1/);
  });

  it('takes the staging path away once the journal has the volume unstaged', () => {
    const input = cluster();
    input.calls.push(call('NodeUnpublishVolume', 'h-a', 'n1', { targetPath: PUBLISH }), call('NodeUnstageVolume', 'h-a', 'n1', { stagingTargetPath: STAGE }));
    input.pods = input.pods.filter((p) => p.metadata.name !== 'web');
    const g = buildTopology(input, ALL);
    assert.equal(g.edges.find((e) => e.id === 'backend:h-a->node:n1'), undefined);
  });

  const filterCases: [string, Filters, string[]][] = [
    ['no filter', ALL, ['claim:default/a', 'claim:team/b', 'pod:default/web', 'pod:team/job', 'node:n1', 'node:n2', 'class:fast', 'class:slow']],
    ['namespace team', { ...ALL, namespace: 'team' }, ['claim:team/b', 'pod:team/job', 'volume:pv-b', 'class:slow', 'node:n1', 'node:n2']],
    ['class fast', { ...ALL, storageClass: 'fast' }, ['claim:default/a', 'pod:default/web', 'volume:pv-a', 'class:fast', 'node:n1', 'node:n2']],
    ['node n2', { ...ALL, node: 'n2' }, ['claim:team/b', 'pod:team/job', 'volume:pv-b', 'class:slow', 'node:n2']],
  ];
  for (const [name, filters, want] of filterCases) {
    it(`filters: ${name}`, () => {
      const got = buildTopology(cluster(), filters)
        .nodes.filter((n) => n.kind !== 'backend')
        .map((n) => n.id);
      assert.deepEqual(new Set(got), new Set([...want, ...(name === 'no filter' ? ['volume:pv-a', 'volume:pv-b'] : [])]));
    });
  }

  const warningCases: [string, KEvent[], string | undefined][] = [
    ['no events', [], undefined],
    ['a Warning last', [event('PersistentVolumeClaim', 'default', 'a', 'Normal', 'Provisioning', '2026-01-01T00:00:01Z'), event('PersistentVolumeClaim', 'default', 'a', 'Warning', 'ProvisioningFailed', '2026-01-01T00:00:02Z', '<b>no space</b>')], 'ProvisioningFailed: <b>no space</b>'],
    ['a Warning, then a Normal event', [event('PersistentVolumeClaim', 'default', 'a', 'Warning', 'ProvisioningFailed', '2026-01-01T00:00:01Z'), event('PersistentVolumeClaim', 'default', 'a', 'Normal', 'ProvisioningSucceeded', '2026-01-01T00:00:02Z')], undefined],
    ['a Warning about another claim of the same name elsewhere', [event('PersistentVolumeClaim', 'team', 'a', 'Warning', 'X', '2026-01-01T00:00:01Z')], undefined],
  ];
  for (const [name, events, want] of warningCases) {
    it(`red only while the latest event is a Warning: ${name}`, () => {
      const g = buildTopology({ ...cluster(), events }, ALL);
      assert.equal(g.nodes.find((n) => n.id === 'claim:default/a')?.warning, want);
    });
  }

  it('keeps warnings per object', () => {
    assert.deepEqual([...warnings([event('Pod', 'default', 'web', 'Warning', 'FailedMount', '2026-01-01T00:00:00Z', 'm')])], [['Pod/default/web', 'FailedMount: m']]);
  });

  const paths: [string, string][] = [
    ['/a', '/a'],
    ['/k/plugins/x/globalmount', '…/x/globalmount'],
    ['/k/pv/pvc-0123456789abcdef0123456789/globalmount', '…9abcdef0123456789/globalmount'],
  ];
  for (const [path, want] of paths) it(`shortens ${path} to at most 30 characters`, () => assert.equal(shortPath(path), want));
});
