// Which REST path an object of a kind lives at, from the API's discovery (as kubectl's RESTMapper):
// /api/v1 and /apis/{group}/{version} list each resource's kind and whether it is namespaced.
import type { Api } from './api.js';

interface ApiResource {
  name: string;
  kind: string;
  namespaced: boolean;
}

let cache: Promise<Map<string, ApiResource>> | undefined;

async function load(api: Api): Promise<Map<string, ApiResource>> {
  const out = new Map<string, ApiResource>();
  const versions: string[] = ['v1'];
  const groups = await api.json<{ groups: { preferredVersion?: { groupVersion: string }; versions: { groupVersion: string }[] }[] }>('/apis');
  for (const g of groups.groups) for (const v of g.versions) versions.push(v.groupVersion);
  await Promise.all(
    versions.map(async (gv) => {
      const list = await api.json<{ resources: ApiResource[] }>(gv === 'v1' ? '/api/v1' : `/apis/${gv}`).catch(() => ({ resources: [] }));
      for (const r of list.resources) if (!r.name.includes('/')) out.set(`${gv}|${r.kind}`, r);
    }),
  );
  return out;
}

/** The object's path (collection when `named` is false), or a message saying why there is none. */
export async function objectPath(api: Api, apiVersion: string, kind: string, namespace: string | undefined, name: string | undefined): Promise<{ collection: string; item?: string } | string> {
  cache ??= load(api).catch((err: unknown) => {
    cache = undefined;
    throw err;
  });
  const resources = await cache;
  const r = resources.get(`${apiVersion}|${kind}`);
  if (r === undefined) return `no matches for kind "${kind}" in version "${apiVersion}"`;
  const base = apiVersion.includes('/') ? `/apis/${apiVersion}` : `/api/${apiVersion}`;
  const collection = r.namespaced ? `${base}/namespaces/${encodeURIComponent(namespace || 'default')}/${r.name}` : `${base}/${r.name}`;
  return name === undefined ? { collection } : { collection, item: `${collection}/${encodeURIComponent(name)}` };
}
