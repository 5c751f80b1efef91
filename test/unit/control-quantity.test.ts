import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  bytesToQuantity,
  canonicalQuantity,
  compareQuantities,
  isQuantity,
  parseQuantity,
  QUANTITY_FORMAT_MESSAGE,
  quantityValue,
} from '../../src/control/api/quantity.js';

describe('quantities', () => {
  it('parses every suffix family to exact values', () => {
    const cases: [string | number, number][] = [
      ['1Ki', 1024],
      ['1Mi', 1024 ** 2],
      ['1Gi', 1024 ** 3],
      ['1Ti', 1024 ** 4],
      ['1k', 1e3],
      ['1M', 1e6],
      ['1G', 1e9],
      ['1T', 1e12],
      ['1500m', 2],
      ['1.5Gi', 1.5 * 1024 ** 3],
      ['0.5', 1],
      ['100', 100],
      ['2e3', 2000],
      [5, 5],
    ];
    for (const [text, value] of cases) assert.equal(quantityValue(text), value, String(text));
    assert.equal(parseQuantity('250m').nanos, 250_000_000n);
    assert.equal(parseQuantity('1n').nanos, 1n);
  });

  it('prints the canonical form Kubernetes stores', () => {
    const cases: [string | number, string][] = [
      ['1024Mi', '1Gi'],
      ['1536Mi', '1536Mi'],
      ['0.5Gi', '512Mi'],
      ['100Mi', '100Mi'],
      ['1000m', '1'],
      ['0.5', '500m'],
      ['1.5', '1500m'],
      ['1500M', '1500M'],
      ['2000M', '2G'],
      ['512', '512'],
      ['0', '0'],
      ['1e3', '1e3'],
      ['0.5Ki', '512'],
      [1, '1'],
    ];
    for (const [text, canonical] of cases) assert.equal(canonicalQuantity(text), canonical, String(text));
  });

  it('compares exactly across suffix families', () => {
    assert.equal(compareQuantities('1Gi', '1073741824'), 0);
    assert.equal(compareQuantities('1G', '1Gi'), -1);
    assert.equal(compareQuantities('2Gi', '2000Mi'), 1);
    assert.equal(compareQuantities('100m', '0.1'), 0);
  });

  it('rejects malformed quantities with Kubernetes messages', () => {
    assert.throws(() => parseQuantity('1 Gi'), { message: QUANTITY_FORMAT_MESSAGE });
    assert.throws(() => parseQuantity('1K'), { message: "unable to parse quantity's suffix" });
    // apimachinery's scanner: a second "." is where the suffix would start, and is not a suffix.
    assert.throws(() => parseQuantity('1.2.3'), { message: QUANTITY_FORMAT_MESSAGE });
    assert.throws(() => parseQuantity('.e-10'), { message: 'unable to parse numeric part of quantity' });
    assert.equal(isQuantity('10Gi'), true);
    assert.equal(isQuantity('ten'), false);
    assert.equal(isQuantity(undefined), false);
  });

  it('turns byte counts into binary quantities for PV capacities', () => {
    assert.equal(bytesToQuantity(1024 ** 3), '1Gi');
    assert.equal(bytesToQuantity(5 * 1024 ** 2), '5Mi');
    assert.equal(bytesToQuantity(1000), '1k');
    assert.equal(bytesToQuantity(1500), '1500');
    assert.throws(() => bytesToQuantity(1.5));
  });
});
