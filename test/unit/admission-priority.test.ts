// The Priority admission plugin through the store: the system classes, one globalDefault, and a
// new pod's spec.priority and spec.preemptionPolicy from its class, with kube-apiserver's messages.
import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it } from 'node:test';
import type { Pod } from '../../src/control/api/types/core.js';
import type { PriorityClass } from '../../src/control/api/types/scheduling.js';
import { ForbiddenError, InvalidError } from '../../src/control/store/errors.js';
import { open, type Store } from '../../src/control/store/store.js';

function pc(name: string, value: number, extra: Partial<PriorityClass> = {}): PriorityClass {
  return { apiVersion: 'scheduling.k8s.io/v1', kind: 'PriorityClass', metadata: { name }, value, ...extra };
}

function pod(name: string, spec: Partial<Pod['spec']> = {}): Pod {
  return { apiVersion: 'v1', kind: 'Pod', metadata: { name, namespace: 'default' }, spec: { containers: [{ name: 'app', image: 'busybox' }], ...spec } };
}

function message(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    return err instanceof Error ? `${err.constructor.name}: ${err.message}` : String(err);
  }
  return 'admitted';
}

describe('Priority admission', () => {
  let store: Store;
  beforeEach(() => {
    store = open(':memory:');
  });
  afterEach(() => store.close());

  it('the two system classes exist from the start, as Kubernetes defines them, and cannot be deleted or changed', () => {
    const node = store.get('priorityclasses', '', 'system-node-critical');
    const cluster = store.get('priorityclasses', '', 'system-cluster-critical');
    assert.equal(node?.value, 2000001000);
    assert.equal(cluster?.value, 2000000000);
    assert.equal(node?.preemptionPolicy, 'PreemptLowerPriority');
    assert.equal(node?.globalDefault, undefined);
    assert.equal(
      message(() => store.delete('priorityclasses', '', 'system-node-critical')),
      'ForbiddenError: priorityclasses.scheduling.k8s.io "system-node-critical" is forbidden: this is a system priority class and cannot be deleted',
    );
    assert.match(message(() => store.update({ ...(cluster as PriorityClass), value: 5 })), /InvalidError: .*value: Forbidden: may not be changed in an update/);
    assert.match(message(() => store.update({ ...(cluster as PriorityClass), globalDefault: true })), /globalDefault of system-cluster-critical PriorityClass must be false/);
    assert.ok(store.get('priorityclasses', '', 'system-node-critical'), 'still there');
  });

  const classCases: { name: string; obj: PriorityClass; want: RegExp }[] = [
    { name: 'a user value above 1e9', obj: pc('huge', 1_000_000_001), want: /value: Forbidden: maximum allowed value of a user defined priority is 1000000000/ },
    { name: 'a system- name that is not a system class', obj: pc('system-mine', 10), want: /metadata.name: Forbidden: priority class names with 'system-' prefix are reserved for system use only. error: system-mine is not a known system priority class/ },
    { name: 'an unknown preemptionPolicy', obj: pc('odd', 10, { preemptionPolicy: 'Sometimes' as 'Never' }), want: /preemptionPolicy: Unsupported value: "Sometimes"/ },
  ];
  for (const c of classCases) {
    it(`refuses ${c.name}`, () => {
      assert.throws(() => store.create(c.obj), (err: unknown) => err instanceof InvalidError && c.want.test(err.message));
    });
  }

  it('allows a user value of exactly 1e9, and only one globalDefault', () => {
    store.create(pc('top', 1_000_000_000));
    store.create(pc('default-low', 10, { globalDefault: true }));
    assert.equal(
      message(() => store.create(pc('another', 20, { globalDefault: true }))),
      'ForbiddenError: priorityclasses.scheduling.k8s.io "another" is forbidden: PriorityClass default-low is already marked as default. Only one default can exist',
    );
    const top = store.get('priorityclasses', '', 'top') as PriorityClass;
    assert.equal(
      message(() => store.update({ ...top, globalDefault: true })),
      'ForbiddenError: priorityclasses.scheduling.k8s.io "top" is forbidden: PriorityClass default-low is already marked as default. Only one default can exist',
    );
    const def = store.get('priorityclasses', '', 'default-low') as PriorityClass;
    store.update({ ...def, description: 'still the default' });
  });

  const podCases: {
    name: string;
    classes: PriorityClass[];
    spec: Partial<Pod['spec']>;
    want: { priority: number; preemptionPolicy: string; priorityClassName?: string } | string;
  }[] = [
    { name: 'no class, no default: 0 and PreemptLowerPriority', classes: [], spec: {}, want: { priority: 0, preemptionPolicy: 'PreemptLowerPriority' } },
    { name: 'a named class', classes: [pc('high', 1000, { preemptionPolicy: 'Never' })], spec: { priorityClassName: 'high' }, want: { priority: 1000, preemptionPolicy: 'Never', priorityClassName: 'high' } },
    { name: 'a system class', classes: [], spec: { priorityClassName: 'system-node-critical' }, want: { priority: 2000001000, preemptionPolicy: 'PreemptLowerPriority', priorityClassName: 'system-node-critical' } },
    {
      name: 'no class: the globalDefault one, named in the pod',
      classes: [pc('everyone', 7, { globalDefault: true, preemptionPolicy: 'Never' })],
      spec: {},
      want: { priority: 7, preemptionPolicy: 'Never', priorityClassName: 'everyone' },
    },
    { name: 'the priority it also gives, when it agrees', classes: [pc('high', 1000)], spec: { priorityClassName: 'high', priority: 1000 }, want: { priority: 1000, preemptionPolicy: 'PreemptLowerPriority', priorityClassName: 'high' } },
    { name: 'an unknown class', classes: [], spec: { priorityClassName: 'nope' }, want: 'ForbiddenError: pods "p" is forbidden: no PriorityClass with name nope was found' },
    {
      name: 'a priority that disagrees with the class',
      classes: [pc('high', 1000)],
      spec: { priorityClassName: 'high', priority: 5 },
      want: 'ForbiddenError: pods "p" is forbidden: the integer value of priority (5) must not be provided in pod spec; priority admission controller computed 1000 from the given PriorityClass name',
    },
    {
      name: 'a priority without a class',
      classes: [],
      spec: { priority: 3 },
      want: 'ForbiddenError: pods "p" is forbidden: the integer value of priority (3) must not be provided in pod spec; priority admission controller computed 0 from the given PriorityClass name',
    },
    {
      name: 'a preemptionPolicy that disagrees with the class',
      classes: [pc('gentle', 10, { preemptionPolicy: 'Never' })],
      spec: { priorityClassName: 'gentle', preemptionPolicy: 'PreemptLowerPriority' },
      want: 'ForbiddenError: pods "p" is forbidden: the string value of PreemptionPolicy (PreemptLowerPriority) must not be provided in pod spec; priority admission controller computed Never from the given PriorityClass name',
    },
  ];
  for (const c of podCases) {
    it(`pod: ${c.name}`, () => {
      for (const cls of c.classes) store.create(cls);
      if (typeof c.want === 'string') {
        assert.equal(message(() => store.create(pod('p', c.spec))), c.want);
        assert.equal(store.get('pods', 'default', 'p'), undefined);
        return;
      }
      const created = store.create(pod('p', c.spec));
      assert.equal(created.spec.priority, c.want.priority);
      assert.equal(created.spec.preemptionPolicy, c.want.preemptionPolicy);
      assert.equal(created.spec.priorityClassName, c.want.priorityClassName);
      // An update that leaves them out keeps them (they are immutable).
      const { priority: _p, preemptionPolicy: _pp, ...spec } = created.spec;
      const updated = store.update({ ...created, metadata: { ...created.metadata, labels: { a: 'b' } }, spec: spec as Pod['spec'] });
      assert.equal(updated.spec.priority, c.want.priority);
    });
  }

  it('a pod template keeps no preemptionPolicy of its own (only pods get one, from admission)', () => {
    const d = store.create({
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name: 'd', namespace: 'default' },
      spec: { selector: { matchLabels: { a: 'b' } }, template: { metadata: { labels: { a: 'b' } }, spec: { containers: [{ name: 'c', image: 'busybox' }] } } },
    });
    assert.equal((d as unknown as { spec: { template: { spec: Record<string, unknown> } } }).spec.template.spec['preemptionPolicy'], undefined);
  });

  it('dry run changes nothing and answers the same', () => {
    store.create(pc('high', 1000));
    const p = store.create(pod('p', { priorityClassName: 'high' }), { dryRun: true });
    assert.equal(p.spec.priority, 1000);
    assert.equal(store.get('pods', 'default', 'p'), undefined);
    assert.throws(() => store.create(pod('q', { priorityClassName: 'none' }), { dryRun: true }), ForbiddenError);
  });
});
