// Kubernetes REST paths → what they address:
//   /api/v1/{plural}[/{name}[/status]]                         core, cluster-scoped (or all namespaces)
//   /api/v1/namespaces/{ns}/{plural}[/{name}[/status]]         core, namespaced
//   /api/v1/namespaces/{ns}/pods/{name}/binding                 a pod's binding (POST a v1 Binding)
//   /api/v1/namespaces/{ns}/pods/{name}/eviction                evict a pod (POST a policy/v1 Eviction)
//   /api/v1/namespaces/{ns}/pods/{name}/exec                    run a command in a container (WebSocket)
//   /api/v1/namespaces/{ns}/pods/{name}/log                     a container's output (pod-log.ts)
//   /apis/apps/v1/namespaces/{ns}/{statefulsets|deployments|replicasets}/{name}/scale   (scale.ts)
//   /apis/{group}/{version}/...                                the same for a group
//   /api, /api/v1, /apis, /apis/{group}, /apis/{group}/{version}   discovery
//   /openapi/v2, /openapi/v3[/api/v1 | /apis/{group}/{version}]   OpenAPI documents
//   /metrics, /api/v1/nodes/{node}/proxy/metrics                the kubelets' volume stats metrics
import { resourceForPath, type ResourceInfo } from '../api/registry.js';
import { NoResourceError } from '../store/errors.js';

export type Route =
  | { type: 'health' }
  | { type: 'version' }
  | { type: 'coreVersions' }
  | { type: 'groups' }
  | { type: 'group'; group: string }
  | { type: 'resources'; group: string; version: string }
  | { type: 'openapi'; version: 'v2' | 'v3'; path: string }
  /** /metrics (every node's kubelet volume stats) or /api/v1/nodes/{node}/proxy/metrics (the kubelet's, through the node proxy). */
  | { type: 'metrics'; node: string | undefined }
  | { type: 'collection'; resource: ResourceInfo; namespace: string | undefined }
  | { type: 'item'; resource: ResourceInfo; namespace: string | undefined; name: string; subresource: 'status' | 'binding' | 'scale' | 'log' | 'eviction' | 'exec' | undefined };

const HEALTH = new Set(['healthz', 'readyz', 'livez']);

function resourceRoute(group: string, version: string, rest: string[]): Route {
  const lookup = (plural: string | undefined): ResourceInfo | undefined => (plural === undefined ? undefined : resourceForPath(group, version, plural));
  const [first, second, third, fourth, fifth, ...extra] = rest;
  if (extra.length > 0 || first === undefined) throw new NoResourceError();

  // namespaces/{ns}/{plural}[/{name}[/status]]: a namespaced resource.
  const namespaced = first === 'namespaces' && second !== undefined ? lookup(third) : undefined;
  if (namespaced?.namespaced === true && second !== undefined) {
    if (fourth === undefined) return { type: 'collection', resource: namespaced, namespace: second };
    if (fifth === undefined || fifth === 'status') return { type: 'item', resource: namespaced, namespace: second, name: fourth, subresource: fifth };
    if ((fifth === 'binding' || fifth === 'log' || fifth === 'eviction' || fifth === 'exec') && namespaced.plural === 'pods') return { type: 'item', resource: namespaced, namespace: second, name: fourth, subresource: fifth };
    if (fifth === 'scale' && namespaced.hasScale) return { type: 'item', resource: namespaced, namespace: second, name: fourth, subresource: fifth };
    throw new NoResourceError();
  }
  // {plural}[/{name}[/status]]: a cluster-scoped resource, or a namespaced one across namespaces.
  const resource = lookup(first);
  if (resource === undefined || fourth !== undefined) throw new NoResourceError();
  if (second === undefined) return { type: 'collection', resource, namespace: undefined };
  if (resource.namespaced || (third !== undefined && third !== 'status')) throw new NoResourceError();
  return { type: 'item', resource, namespace: undefined, name: second, subresource: third };
}

export function route(pathname: string): Route {
  let segments: string[];
  try {
    segments = pathname
      .split('/')
      .filter((s) => s !== '')
      .map((s) => decodeURIComponent(s));
  } catch {
    throw new NoResourceError();
  }
  const [root, a, b, ...rest] = segments;
  if (root !== undefined && HEALTH.has(root)) return { type: 'health' };
  if (root === 'version' && a === undefined) return { type: 'version' };
  if (root === 'metrics' && a === undefined) return { type: 'metrics', node: undefined };
  if (root === 'api' && a === 'v1' && b === 'nodes' && rest.length === 3 && rest[1] === 'proxy' && rest[2] === 'metrics') return { type: 'metrics', node: rest[0] };
  if (root === 'openapi' && (a === 'v2' || a === 'v3')) return { type: 'openapi', version: a, path: [b, ...rest].filter((s) => s !== undefined).join('/') };
  if (root === 'api') {
    if (a === undefined) return { type: 'coreVersions' };
    if (a !== 'v1') throw new NoResourceError();
    if (b === undefined) return { type: 'resources', group: '', version: 'v1' };
    return resourceRoute('', 'v1', [b, ...rest]);
  }
  if (root === 'apis') {
    if (a === undefined) return { type: 'groups' };
    if (b === undefined) return { type: 'group', group: a };
    const [first, ...more] = rest;
    if (first === undefined) return { type: 'resources', group: a, version: b };
    return resourceRoute(a, b, [first, ...more]);
  }
  throw new NoResourceError();
}
