// A pod's container output, from the API's pods/{name}/log as `kubectl logs` reads it: the last
// 500 lines, then followed while the container runs (the server ends the body when it stops).
// One request at a time per open pod; closing the row or switching container aborts it. Shown as
// text only (never markup: a container prints whatever it likes).
import { useEffect, useRef, useState } from 'preact/hooks';
import { type Api, ApiFailure } from './api.js';
import type { KObject } from './types.js';

/** What the page keeps of a followed log: enough to read, bounded so a chatty container cannot fill memory. */
const KEEP_CHARS = 256 * 1024;

export function PodLogs(props: { api: Api; pod: KObject }) {
  const containers: string[] = [...(props.pod.spec?.initContainers ?? []), ...(props.pod.spec?.containers ?? [])].map((c: { name: string }) => c.name);
  const [container, setContainer] = useState<string>(props.pod.spec?.containers?.[0]?.name ?? containers[0] ?? '');
  const [follow, setFollow] = useState(true);
  const [text, setText] = useState('');
  const [state, setState] = useState<'loading' | 'following' | 'ended' | 'error'>('loading');
  const [error, setError] = useState<string | undefined>(undefined);
  const pre = useRef<HTMLPreElement>(null);
  const ns = props.pod.metadata.namespace ?? 'default';
  const name = props.pod.metadata.name;

  useEffect(() => {
    const abort = new AbortController();
    setText('');
    setError(undefined);
    setState('loading');
    const path = `/api/v1/namespaces/${encodeURIComponent(ns)}/pods/${encodeURIComponent(name)}/log?container=${encodeURIComponent(container)}&tailLines=500${follow ? '&follow=true' : ''}`;
    void (async () => {
      try {
        const res = await props.api.request(path, { headers: { Accept: 'text/plain' }, signal: abort.signal });
        const reader = res.body?.getReader();
        if (reader === undefined) {
          setText(await res.text());
          setState('ended');
          return;
        }
        setState(follow ? 'following' : 'loading');
        const decoder = new TextDecoder();
        for (;;) {
          const { done, value } = await reader.read();
          if (done) break;
          const chunk = decoder.decode(value, { stream: true });
          setText((t) => (t + chunk).slice(-KEEP_CHARS));
        }
        setState('ended');
      } catch (err) {
        if (abort.signal.aborted) return;
        setError(err instanceof ApiFailure ? (err.body.message ?? err.message) : String(err));
        setState('error');
      }
    })();
    return () => abort.abort();
  }, [props.api, ns, name, container, follow]);

  // Keep the newest output in view while following.
  useEffect(() => {
    if (pre.current !== null && state === 'following') pre.current.scrollTop = pre.current.scrollHeight;
  }, [text, state]);

  return (
    <div class="logs" data-testid="pod-logs">
      <div class="logs-bar">
        <label>
          container{' '}
          <select value={container} onChange={(e) => setContainer((e.currentTarget as HTMLSelectElement).value)}>
            {containers.map((c) => (
              <option key={c} value={c}>
                {c}
              </option>
            ))}
          </select>
        </label>
        <label>
          <input type="checkbox" checked={follow} onChange={(e) => setFollow((e.currentTarget as HTMLInputElement).checked)} /> follow
        </label>
        <span class="muted" data-testid="log-state">
          {state === 'following' ? 'following…' : state === 'ended' ? 'end of output' : state === 'loading' ? 'loading…' : ''}
        </span>
      </div>
      {error !== undefined && (
        <p role="alert" class="warning">
          {error}
        </p>
      )}
      <pre ref={pre} data-testid="log-text">
        {text}
      </pre>
    </div>
  );
}
