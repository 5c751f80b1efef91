// Discovery documents (/api, /api/v1, /apis, /apis/{group}, /apis/{group}/{version}, /version),
// enough for kubectl to find every resource, its verbs and its short names.
import { type GroupVersion, groupVersions, type ResourceInfo } from '../api/registry.js';
import { NoResourceError } from '../store/errors.js';
import { REVIEW_RESOURCES } from './access-review.js';

const VERBS = ['create', 'delete', 'get', 'list', 'patch', 'update', 'watch'];
const STATUS_VERBS = ['get', 'patch', 'update'];

/** The Kubernetes version whose API this server follows, for clients' version checks. */
const SERVED_VERSION = { major: '1', minor: '31', gitVersion: 'v1.31.0+stowage' };

export function coreVersions(serverAddress: string): object {
  return { kind: 'APIVersions', versions: ['v1'], serverAddressByClientCIDRs: [{ clientCIDR: '0.0.0.0/0', serverAddress }] };
}

function groupDocument(group: string, version: string): object {
  const gv = { groupVersion: `${group}/${version}`, version };
  return { name: group, versions: [gv], preferredVersion: gv };
}

/** Stored resources' group/versions, then those only the review resources live in. */
function servedGroupVersions(): GroupVersion[] {
  const out = groupVersions().filter((gv) => gv.group !== '');
  for (const r of REVIEW_RESOURCES) if (!out.some((gv) => gv.group === r.group)) out.push({ group: r.group, version: r.version, resources: [] });
  return out;
}

export function groupList(): object {
  return { kind: 'APIGroupList', apiVersion: 'v1', groups: servedGroupVersions().map((gv) => groupDocument(gv.group, gv.version)) };
}

export function group(name: string): object {
  const gv = servedGroupVersions().find((g) => g.group === name);
  if (gv === undefined) throw new NoResourceError();
  return { kind: 'APIGroup', apiVersion: 'v1', ...groupDocument(gv.group, gv.version) };
}

function apiResources(r: ResourceInfo): object[] {
  const main = { name: r.plural, singularName: r.singular, namespaced: r.namespaced, kind: r.kind, verbs: VERBS, ...(r.shortNames.length > 0 ? { shortNames: r.shortNames } : {}) };
  const subresources: object[] = [];
  if (r.hasStatus) subresources.push({ name: `${r.plural}/status`, singularName: '', namespaced: r.namespaced, kind: r.kind, verbs: STATUS_VERBS });
  if (r.group === '' && r.plural === 'pods') {
    subresources.push({ name: 'pods/eviction', singularName: '', namespaced: true, group: 'policy', version: 'v1', kind: 'Eviction', verbs: ['create'] });
    subresources.push({ name: 'pods/exec', singularName: '', namespaced: true, kind: 'PodExecOptions', verbs: ['create', 'get'] });
    subresources.push({ name: 'pods/log', singularName: '', namespaced: true, kind: 'Pod', verbs: ['get'] });
  }
  if (r.hasScale) subresources.push({ name: `${r.plural}/scale`, singularName: '', namespaced: r.namespaced, group: 'autoscaling', version: 'v1', kind: 'Scale', verbs: STATUS_VERBS });
  // TokenRequest (token-request.ts).
  if (r.group === '' && r.plural === 'serviceaccounts') {
    subresources.push({ name: 'serviceaccounts/token', singularName: '', namespaced: true, group: 'authentication.k8s.io', version: 'v1', kind: 'TokenRequest', verbs: ['create'] });
  }
  return [main, ...subresources];
}

export function resourceList(groupName: string, version: string): object {
  const gv = groupVersions().find((g) => g.group === groupName && g.version === version);
  const reviews = REVIEW_RESOURCES.filter((r) => r.group === groupName && r.version === version).map((r) => ({
    name: r.plural,
    singularName: r.singular,
    namespaced: false,
    kind: r.kind,
    verbs: ['create'],
  }));
  if (gv === undefined && reviews.length === 0) throw new NoResourceError();
  return {
    kind: 'APIResourceList',
    apiVersion: 'v1',
    groupVersion: groupName === '' ? version : `${groupName}/${version}`,
    resources: [...(gv?.resources.flatMap(apiResources) ?? []), ...reviews],
  };
}

export function versionInfo(): object {
  return {
    ...SERVED_VERSION,
    gitCommit: '',
    gitTreeState: '',
    buildDate: '',
    goVersion: '',
    compiler: 'stowage',
    platform: `${process.platform}/${process.arch === 'x64' ? 'amd64' : process.arch}`,
  };
}
