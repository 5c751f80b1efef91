// The few fields of Kubernetes objects the console reads: loose shapes, since the API may hold more.
export interface Meta {
  name: string;
  namespace?: string;
  uid?: string;
  resourceVersion?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  creationTimestamp?: string;
  deletionTimestamp?: string;
}

export interface KObject {
  apiVersion?: string;
  kind?: string;
  metadata: Meta;
  // biome-ignore lint/suspicious/noExplicitAny: objects of every kind pass through the same collections; views read their own fields
  spec?: any;
  // biome-ignore lint/suspicious/noExplicitAny: as above
  status?: any;
}

export interface KEvent extends KObject {
  involvedObject?: { kind?: string; name?: string; namespace?: string; uid?: string };
  reason?: string;
  message?: string;
  type?: string;
  count?: number;
  firstTimestamp?: string;
  lastTimestamp?: string;
  eventTime?: string;
  source?: { component?: string; host?: string };
  reportingComponent?: string;
}

/** One call of the control plane's CSI call journal, as the server types it. */
export type { CsiCallRecord as CsiCall } from '../../src/csi/call-record.js';

export const key = (o: { metadata: Meta }): string => (o.metadata.namespace ? `${o.metadata.namespace}/${o.metadata.name}` : o.metadata.name);

/** An event's time: the latest of the times it may carry. */
export function eventTime(e: KEvent): string {
  return e.lastTimestamp ?? e.eventTime ?? e.firstTimestamp ?? e.metadata.creationTimestamp ?? '';
}
