// GET /apis/apiextensions.k8s.io/v1/customresourcedefinitions: always an empty list. This server
// has no CustomResourceDefinitions, but kubectl's validation asks for them when a manifest names a
// kind the server does not serve (a Service, say): "is it a CRD?". Against a cluster, the answer
// "no" lets kubectl report that document's "no matches for kind" and apply the others; a 404
// here made kubectl abort the whole file with "failed to check CRD: failed to list CRDs".
import type { IncomingMessage, ServerResponse } from 'node:http';
import { sendJson } from './http-io.js';

const PATH = '/apis/apiextensions.k8s.io/v1/customresourcedefinitions';

export function isCrdList(req: IncomingMessage, pathname: string): boolean {
  return req.method === 'GET' && pathname.replace(/\/+$/, '') === PATH;
}

export function sendEmptyCrdList(res: ServerResponse, resourceVersion: string): void {
  sendJson(res, 200, { kind: 'CustomResourceDefinitionList', apiVersion: 'apiextensions.k8s.io/v1', metadata: { resourceVersion }, items: [] });
}
