// ImageLocality on in-memory nodes: image names normalized as the runtime reports them, sizes scaled
// by how many nodes hold the image, clamped to 23 MiB .. 1000 MiB per container, 0..100.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Node } from '../../src/control/api/types/core.js';
import { CycleState } from '../../src/control/scheduler/framework.js';
import type { PluginContext } from '../../src/control/scheduler/plugin-context.js';
import { ImageLocality, imageScore, normalizedImageName } from '../../src/control/scheduler/plugins/image-locality.js';
import { ctr, info, node, podOf } from './scheduler-helpers.js';

const MiB = 1024 * 1024;
const withImages = (n: Node, images: { names: string[]; sizeBytes: number }[]): Node => ({ ...n, status: { ...n.status, images } as Node['status'] });

describe('ImageLocality', () => {
  it('normalizes names without a tag to :latest', () => {
    const table: [string, string][] = [
      ['busybox', 'busybox:latest'],
      ['busybox:1.36', 'busybox:1.36'],
      ['registry:5000/app', 'registry:5000/app:latest'],
      ['registry:5000/app:v1', 'registry:5000/app:v1'],
    ];
    for (const [name, want] of table) assert.equal(normalizedImageName(name), want);
  });

  it('clamps and scales the summed image sizes', () => {
    const table: [number, number, number][] = [
      [0, 1, 0],
      [23 * MiB, 1, 0],
      [1000 * MiB, 1, 100],
      [5000 * MiB, 1, 100],
      [(23 + 977 / 2) * MiB, 1, 50],
      [1000 * MiB, 2, 49], // two containers: the ceiling doubles
    ];
    for (const [sum, containers, want] of table) assert.equal(imageScore(sum, containers), want, `${sum / MiB} MiB × ${containers}`);
  });

  it('prefers the node holding the image, less so when every node holds it', () => {
    const big = { names: ['docker.io/library/app:v1', 'app:v1'], sizeBytes: 500 * MiB };
    const a = withImages(node('a'), [big]);
    const b = node('b');
    const p = podOf('p', [ctr('c', undefined, undefined, { image: 'app:v1' })]);
    const score = (nodes: Node[], on: Node): number => {
      const plugin = new ImageLocality({ nodes: { list: () => nodes } } as unknown as PluginContext);
      const state = new CycleState();
      plugin.preScore(state, p);
      return plugin.score(state, p, info(on));
    };
    // held by 1 of 2 nodes: 250 MiB counts → (250 - 23) * 100 / 977 = 23
    assert.equal(score([a, b], a), 23);
    assert.equal(score([a, b], b), 0);
    // held by both: 500 MiB each → 48
    const b2 = withImages(b, [big]);
    assert.equal(score([a, b2], a), 48);
  });
});
