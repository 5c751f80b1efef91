// Where strategic merge patch learns how to merge a list: the kinds' zod schemas, rendered once per
// kind as JSON Schema (z.toJSONSchema), whose x-kubernetes-patch-strategy /
// x-kubernetes-patch-merge-key / x-kubernetes-list-type annotations come from the schemas' meta
// (validation/schemas.ts). There is no second table: what OpenAPI shows is what patches do.
//
// A path the schemas do not describe has no patch metadata: its lists are replaced, its maps
// merged, as upstream does for fields without struct tags.
import { z } from 'zod';
import { strategyFor } from './kinds/strategies.js';
import type { ResourceInfo } from './registry.js';

interface JsonSchemaNode {
  properties?: Record<string, JsonSchemaNode>;
  additionalProperties?: JsonSchemaNode | boolean;
  items?: JsonSchemaNode;
  anyOf?: JsonSchemaNode[];
  'x-kubernetes-patch-strategy'?: string;
  'x-kubernetes-patch-merge-key'?: string;
  'x-kubernetes-list-type'?: string;
}

/** The patch metadata at one place of a kind's objects, and the way to the places under it. */
export class PatchMeta {
  static readonly NONE = new PatchMeta(undefined);

  constructor(private readonly node: JsonSchemaNode | undefined) {}

  /** The member `name` of an object here (a struct field, or a map's values). */
  field(name: string): PatchMeta {
    const node = this.node;
    if (node === undefined) return PatchMeta.NONE;
    const fromProperties = node.properties !== undefined && Object.hasOwn(node.properties, name) ? node.properties[name] : undefined;
    if (fromProperties !== undefined) return new PatchMeta(fromProperties);
    return typeof node.additionalProperties === 'object' ? new PatchMeta(node.additionalProperties) : PatchMeta.NONE;
  }

  /** The elements of a list here. */
  items(): PatchMeta {
    return this.node?.items === undefined ? PatchMeta.NONE : new PatchMeta(this.node.items);
  }

  /** "merge", "retainKeys", both, or none (replace). */
  get strategies(): string[] {
    return (this.node?.['x-kubernetes-patch-strategy'] ?? '').split(',').filter((s) => s !== '');
  }

  get mergeKey(): string | undefined {
    return this.node?.['x-kubernetes-patch-merge-key'];
  }

  get listType(): string | undefined {
    return this.node?.['x-kubernetes-list-type'];
  }

  /** Whether the schemas describe this place at all. */
  get known(): boolean {
    return this.node !== undefined;
  }
}

/** Groups whose kinds are CustomResourceDefinitions upstream: no strategic merge patch for them. */
const CUSTOM_RESOURCE_GROUPS = new Set(['snapshot.storage.k8s.io']);

/** Whether kube-apiserver takes strategic merge patches for the resource (built-in kinds only). */
export function supportsStrategicMerge(resource: ResourceInfo): boolean {
  return !CUSTOM_RESOURCE_GROUPS.has(resource.group);
}

const cache = new Map<string, PatchMeta>();

/** The patch metadata at the top of the resource's objects. */
export function patchMetaFor(resource: ResourceInfo): PatchMeta {
  const key = `${resource.apiVersion}|${resource.kind}`;
  let meta = cache.get(key);
  if (meta === undefined) {
    const node = z.toJSONSchema(strategyFor(resource).schema, { io: 'input', unrepresentable: 'any' }) as JsonSchemaNode;
    meta = new PatchMeta(node);
    cache.set(key, meta);
  }
  return meta;
}
