// Apply and delete YAML from the page: every document of the text is created, or merged into the
// existing object (fieldValidation=Strict both ways, so a misspelt field is the API's error naming
// its path), or deleted, with the caller's token, so the API's authorization decides. Each
// document's outcome is shown beside it, errors as the API worded them.
import { useState } from 'preact/hooks';
import { parseAllDocuments } from 'yaml';
import { type Api, ApiFailure } from './api.js';
import { objectPath } from './discovery.js';

interface Outcome {
  ok: boolean;
  text: string;
}

function failureText(err: unknown): string {
  if (err instanceof ApiFailure) {
    const causes = (err.body.details?.causes ?? []).filter((c) => c.message !== undefined && !(err.body.message ?? '').includes(c.message));
    return [err.body.message ?? err.message, ...causes.map((c) => `${c.field ?? ''}: ${c.message ?? ''}`)].join('\n');
  }
  return err instanceof Error ? err.message : String(err);
}

async function run(api: Api, text: string, mode: 'apply' | 'delete'): Promise<Outcome[]> {
  const docs = parseAllDocuments(text);
  const outcomes: Outcome[] = [];
  for (const [i, doc] of (Array.isArray(docs) ? docs : [docs]).entries()) {
    if (doc.errors.length > 0) {
      outcomes.push({ ok: false, text: `document ${i + 1}: ${doc.errors[0]?.message ?? 'not YAML'}` });
      continue;
    }
    const obj = doc.toJS() as { apiVersion?: string; kind?: string; metadata?: { name?: string; namespace?: string } } | null;
    if (obj === null || obj === undefined) continue;
    const what = `${obj.kind ?? '?'} ${obj.metadata?.name ?? '?'}`;
    if (typeof obj.apiVersion !== 'string' || typeof obj.kind !== 'string' || typeof obj.metadata?.name !== 'string') {
      outcomes.push({ ok: false, text: `document ${i + 1}: apiVersion, kind and metadata.name are required` });
      continue;
    }
    try {
      const path = await objectPath(api, obj.apiVersion, obj.kind, obj.metadata.namespace, obj.metadata.name);
      if (typeof path === 'string') throw new Error(path);
      if (mode === 'delete') {
        await api.request(path.item ?? path.collection, { method: 'DELETE' });
        outcomes.push({ ok: true, text: `${what} deleted` });
      } else {
        // Created with strict field validation; an existing object gets the document as a merge
        // patch, validated the same way (as kubectl apply does without its last-applied record).
        const strict = 'fieldManager=stowage-console&fieldValidation=Strict';
        const body = JSON.stringify(obj);
        try {
          await api.request(`${path.collection}?${strict}`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body });
        } catch (err) {
          if (!(err instanceof ApiFailure && err.status === 409 && err.body.reason === 'AlreadyExists')) throw err;
          await api.request(`${path.item}?${strict}`, { method: 'PATCH', headers: { 'Content-Type': 'application/merge-patch+json' }, body });
        }
        outcomes.push({ ok: true, text: `${what} applied` });
      }
    } catch (err) {
      outcomes.push({ ok: false, text: `${what}: ${failureText(err)}` });
    }
  }
  return outcomes;
}

/** The text is the console's (props), so it survives switching views. */
export function Apply(props: { api: Api; text: string; onText: (text: string) => void }) {
  const { text } = props;
  const setText = props.onText;
  const [busy, setBusy] = useState(false);
  const [outcomes, setOutcomes] = useState<Outcome[]>([]);
  const go = async (mode: 'apply' | 'delete'): Promise<void> => {
    setBusy(true);
    try {
      setOutcomes(await run(props.api, text, mode));
    } catch (err) {
      setOutcomes([{ ok: false, text: failureText(err) }]);
    } finally {
      setBusy(false);
    }
  };
  return (
    <section class="card" aria-label="Apply">
      <label for="yaml">YAML (one or more documents, separated by ---)</label>
      <textarea id="yaml" name="yaml" spellcheck={false} value={text} onInput={(e) => setText((e.currentTarget as HTMLTextAreaElement).value)} />
      <div class="filters">
        <button type="button" class="primary" disabled={busy} onClick={() => void go('apply')}>
          Apply
        </button>
        <button type="button" class="danger" disabled={busy} onClick={() => void go('delete')}>
          Delete
        </button>
      </div>
      <ul data-testid="outcomes">
        {outcomes.map((o, i) =>
          o.ok ? (
            <li key={String(i)} class="code-ok">
              {o.text}
            </li>
          ) : (
            <li key={String(i)} role="alert">
              {o.text}
            </li>
          ),
        )}
      </ul>
    </section>
  );
}
