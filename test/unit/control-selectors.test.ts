import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { fieldValue, matchesFields, parseFieldSelector } from '../../src/control/api/field-selector.js';
import { matchesLabels, parseLabelSelector, SelectorError, selectorMatches } from '../../src/control/api/label-selector.js';
import { resourceForName } from '../../src/control/api/registry.js';
import type { Pod } from '../../src/control/api/types/core.js';

describe('label selectors', () => {
  const labels = { app: 'db', tier: 'backend', 'example.com/owner': 'team-a' };

  it('parses and matches the string syntax', () => {
    const cases: [string, boolean][] = [
      ['', true],
      ['app=db', true],
      ['app==db', true],
      ['app!=db', false],
      ['app in (db, cache)', true],
      ['app notin (db)', false],
      ['tier,!legacy', true],
      ['!app', false],
      ['example.com/owner=team-a,app=db', true],
      ['missing!=x', true],
    ];
    for (const [text, expected] of cases) assert.equal(matchesLabels(parseLabelSelector(text), labels), expected, text);
  });

  it('refuses malformed selectors', () => {
    for (const text of ['app=db,', 'app in (a', 'bad key=x', 'app=no spaces']) assert.throws(() => parseLabelSelector(text), SelectorError, text);
  });

  it('matches structured selectors such as a PVC spec.selector', () => {
    assert.equal(selectorMatches({}, labels), true);
    assert.equal(selectorMatches({ matchLabels: { app: 'db' } }, labels), true);
    assert.equal(selectorMatches({ matchLabels: { app: 'db' }, matchExpressions: [{ key: 'tier', operator: 'In', values: ['frontend'] }] }, labels), false);
    assert.equal(selectorMatches({ matchExpressions: [{ key: 'zone', operator: 'DoesNotExist' }] }, labels), true);
    assert.equal(selectorMatches({ matchExpressions: [{ key: 'app', operator: 'Exists' }] }, undefined), false);
  });
});

describe('field selectors', () => {
  const pods = resourceForName('pods');
  assert.ok(pods);
  const pod: Pod = {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: 'web', namespace: 'default' },
    spec: { nodeName: 'node-1', containers: [] },
    status: { phase: 'Running' },
  };

  it('matches the fields a resource supports, missing fields reading as ""', () => {
    assert.equal(matchesFields(parseFieldSelector('spec.nodeName=node-1,status.phase!=Pending', pods), pod), true);
    assert.equal(matchesFields(parseFieldSelector('metadata.name==web', pods), pod), true);
    assert.equal(matchesFields(parseFieldSelector('status.podIP=', pods), pod), true);
    assert.equal(fieldValue(pod, 'spec.containers'), '');
  });

  it('refuses fields the resource does not support', () => {
    assert.throws(() => parseFieldSelector('spec.volumes=x', pods), { message: 'field label not supported: spec.volumes' });
    assert.throws(() => parseFieldSelector('nonsense', pods), SelectorError);
  });
});
