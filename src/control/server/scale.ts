// The scale subresource (…/statefulsets/{name}/scale, deployments, replicasets): an autoscaling/v1
// Scale view of spec.replicas, as kube-apiserver serves it to `kubectl scale` and autoscalers. GET
// reads it; PUT and PATCH (JSON merge, strategic merge or JSON patch, applied to the Scale) write
// spec.replicas of the object and answer with the new Scale.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { selectorString } from '../api/label-selector.js';
import type { ResourceInfo } from '../api/registry.js';
import type { KubeObject, LabelSelector } from '../api/types/meta.js';
import { BadRequestError, ConflictError, MethodNotAllowedError, NotFoundError, UnsupportedMediaTypeError } from '../store/errors.js';
import type { Store } from '../store/store.js';
import { parseBody, readBody, sendJson, mediaType } from './http-io.js';
import { applyJsonPatch, decodeJsonPatch } from './json-patch.js';
import { mergePatch } from './merge-patch.js';
import { writeQuery } from './write-options.js';

interface Scalable extends KubeObject {
  spec?: { replicas?: number; selector?: LabelSelector };
  status?: { replicas?: number };
}

interface Scale {
  kind: 'Scale';
  apiVersion: 'autoscaling/v1';
  metadata: KubeObject['metadata'];
  spec: { replicas?: number };
  status: { replicas: number; selector?: string };
}

const PATCH_TYPES = ['application/json-patch+json', 'application/merge-patch+json', 'application/strategic-merge-patch+json'];

export function scaleOf(obj: Scalable): Scale {
  const m = obj.metadata;
  const selector = selectorString(obj.spec?.selector);
  return {
    kind: 'Scale',
    apiVersion: 'autoscaling/v1',
    metadata: { name: m.name, namespace: m.namespace, uid: m.uid, resourceVersion: m.resourceVersion, creationTimestamp: m.creationTimestamp },
    spec: { replicas: obj.spec?.replicas ?? 0 },
    status: { replicas: obj.status?.replicas ?? 0, ...(selector === '' ? {} : { selector }) },
  };
}

function replicasOf(body: unknown, resource: ResourceInfo, name: string): { replicas: number; resourceVersion: string | undefined } {
  const scale = body as Partial<Scale> | null;
  if (scale === null || typeof scale !== 'object') throw new BadRequestError('the body of the request is not a Scale');
  const replicas = scale.spec?.replicas ?? 0;
  if (!Number.isInteger(replicas)) throw new BadRequestError(`Scale.spec.replicas: must be an integer, got ${JSON.stringify(replicas)}`);
  if (scale.metadata?.name !== undefined && scale.metadata.name !== name) {
    throw new BadRequestError(`the name of the object (${scale.metadata.name}) does not match the name on the URL (${name}) of ${resource.plural}`);
  }
  return { replicas, resourceVersion: scale.metadata?.resourceVersion };
}

export async function handleScale(store: Store, resource: ResourceInfo, namespace: string | undefined, name: string, req: IncomingMessage, res: ServerResponse, query: URLSearchParams): Promise<void> {
  const current = (): Scalable => {
    const obj = store.get(resource.plural, namespace, name) as Scalable | undefined;
    if (obj === undefined) throw new NotFoundError(resource, name);
    return obj;
  };
  const write = async (replicas: number, resourceVersion: string | undefined, dryRun: boolean): Promise<void> => {
    const obj = structuredClone(current());
    if (resourceVersion && resourceVersion !== obj.metadata.resourceVersion) throw new ConflictError(resource, name);
    obj.spec = { ...obj.spec, replicas };
    const updated = store.update(obj, { dryRun }) as Scalable;
    await store.flushed();
    sendJson(res, 200, scaleOf(updated));
  };
  switch (req.method) {
    case 'GET': {
      const scale = scaleOf(current());
      await store.flushed();
      sendJson(res, 200, scale);
      return;
    }
    case 'PUT': {
      const { dryRun } = writeQuery(query, 'UpdateOptions');
      const { replicas, resourceVersion } = replicasOf(parseBody(await readBody(req), mediaType(req)), resource, name);
      await write(replicas, resourceVersion, dryRun);
      return;
    }
    case 'PATCH': {
      const { dryRun } = writeQuery(query, 'PatchOptions');
      const type = mediaType(req);
      if (!PATCH_TYPES.includes(type)) throw new UnsupportedMediaTypeError(type, PATCH_TYPES);
      const patch = parseBody(await readBody(req), type, PATCH_TYPES);
      const scale = scaleOf(current());
      // A Scale has no lists: a strategic merge patch is a merge patch here.
      const patched = type === 'application/json-patch+json' ? applyJsonPatch(scale, decodeJsonPatch(patch)) : mergePatch(scale, patch);
      const { replicas, resourceVersion } = replicasOf(patched, resource, name);
      await write(replicas, resourceVersion === scale.metadata.resourceVersion ? undefined : resourceVersion, dryRun);
      return;
    }
    default:
      throw new MethodNotAllowedError(req.method ?? '', `${resource.plural}/scale`);
  }
}
