// The web console's entry: the login screen (a bearer token, kept for the tab in sessionStorage,
// or passed by `stowage ui` in the URL fragment), then the views over one live copy of the
// cluster's storage objects (list + watch) and the CSI call journal.
import { render } from 'preact';
import { useEffect, useMemo, useState } from 'preact/hooks';
import { Api, ApiFailure } from './api.js';
import { Apply } from './apply.js';
import { Capacity } from './capacity.js';
import { CephPools } from './ceph-pools.js';
import { Journey } from './journey.js';
import { Pods } from './pods.js';
import { initialToken, keepToken } from './session.js';
import { Topology } from './topology.js';
import type { CsiCall, KEvent } from './types.js';
import { Cluster } from './watch.js';

type View = 'topology' | 'capacity' | 'pods' | 'apply';
const VIEWS: [View, string][] = [
  ['topology', 'Topology'],
  ['capacity', 'Capacity'],
  ['pods', 'Pods'],
  ['apply', 'Apply YAML'],
];

/** Checks a token by asking the API who it belongs to (SelfSubjectReview). */
async function whoAmI(api: Api): Promise<string> {
  const review = await api.json<{ status?: { userInfo?: { username?: string } } }>('/apis/authentication.k8s.io/v1/selfsubjectreviews', {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ apiVersion: 'authentication.k8s.io/v1', kind: 'SelfSubjectReview' }),
  });
  return review.status?.userInfo?.username ?? 'unknown user';
}

function Login(props: { onLogin: (api: Api, user: string) => void; message: string | undefined }) {
  const [token, setToken] = useState('');
  const [error, setError] = useState(props.message);
  const submit = async (e: Event): Promise<void> => {
    e.preventDefault();
    const api = new Api(token.trim());
    try {
      const user = await whoAmI(api);
      keepToken(api.token);
      props.onLogin(api, user);
    } catch (err) {
      setError(err instanceof ApiFailure && err.status === 401 ? 'Unauthorized: the server does not accept this token.' : String(err instanceof Error ? err.message : err));
    }
  };
  return (
    <form class="card login" onSubmit={(e) => void submit(e)}>
      <h1>Stowage console</h1>
      <p class="muted">
        Paste the bearer token of your kubeconfig (<code>stowage kubeconfig</code> shows it), or open the address <code>stowage ui</code> prints.
      </p>
      <label for="token">Token</label>
      <input id="token" name="token" type="password" autocomplete="off" value={token} onInput={(e) => setToken((e.currentTarget as HTMLInputElement).value)} />
      {error !== undefined && <p role="alert">{error}</p>}
      <button type="submit" class="primary">
        Sign in
      </button>
    </form>
  );
}

function Console(props: { api: Api; user: string; onLogout: () => void }) {
  const { api } = props;
  const cluster = useMemo(() => new Cluster(api), [api]);
  const [, setVersion] = useState(0);
  const [view, setView] = useState<View>('topology');
  const [journey, setJourney] = useState<{ namespace: string; name: string } | undefined>(undefined);
  const [calls, setCalls] = useState<CsiCall[]>([]);
  const [yaml, setYaml] = useState('');
  useEffect(() => {
    const off = cluster.subscribe(() => setVersion((v) => v + 1));
    cluster.start();
    return () => {
      off();
      cluster.stop();
    };
  }, [cluster]);
  useEffect(() => {
    let live = true;
    let last = -1;
    const load = (): void => {
      api.json<{ items: CsiCall[] }>('/ui/api/csi-calls').then(
        (l) => {
          const top = l.items.at(-1)?.seq ?? 0;
          if (live && top !== last) {
            last = top;
            setCalls(l.items);
          }
        },
        () => undefined,
      );
    };
    load();
    const timer = setInterval(load, 2000);
    return () => {
      live = false;
      clearInterval(timer);
    };
  }, [api]);

  // The same arrays until a collection changes, so the views' memos hold between redraws.
  const lists = {
    classes: cluster.list('storageclasses'),
    claims: cluster.list('claims'),
    volumes: cluster.list('volumes'),
    pods: cluster.list('pods'),
    nodes: cluster.list('nodes'),
    events: cluster.list('events') as KEvent[],
    snapshots: cluster.list('snapshots'),
    capacities: cluster.list('capacities'),
  };
  // For the scale test's trace: when every collection had been listed once.
  if (cluster.synced && performance.getEntriesByName('stowage:synced').length === 0) performance.mark('stowage:synced');
  const errors = Object.entries(cluster.collections).flatMap(([name, c]) => (c.error === undefined ? [] : [`${name}: ${c.error}`]));
  const openClaim = (namespace: string, name: string): void => {
    setJourney({ namespace, name });
    setView('topology');
  };
  return (
    <>
      <header>
        <h1>Stowage</h1>
        <nav aria-label="views">
          {VIEWS.map(([v, label]) => (
            <button type="button" key={v} aria-current={view === v ? 'page' : undefined} onClick={() => setView(v)}>
              {label}
            </button>
          ))}
        </nav>
        <span class="who" data-testid="user">
          {props.user}
          <button type="button" onClick={props.onLogout}>
            Sign out
          </button>
        </span>
      </header>
      <main data-synced={cluster.synced ? 'true' : 'false'}>
        {errors.length > 0 && <p role="alert">{errors.join('\n')}</p>}
        {view === 'topology' && (
          <div class={`split${journey === undefined ? '' : ' two'}`}>
            <Topology {...lists} calls={calls} synced={cluster.synced} onOpenClaim={openClaim} />
            {journey !== undefined && <Journey api={api} {...journey} {...lists} onClose={() => setJourney(undefined)} onOpenClaim={openClaim} />}
          </div>
        )}
        {view === 'capacity' && <Capacity api={api} volumes={lists.volumes} capacities={lists.capacities} />}
        {view === 'capacity' && <CephPools api={api} />}
        {view === 'pods' && <Pods api={api} pods={lists.pods} events={lists.events} calls={calls} />}
        {view === 'apply' && <Apply api={api} text={yaml} onText={setYaml} />}
      </main>
    </>
  );
}

function App() {
  const [session, setSession] = useState<{ api: Api; user: string } | undefined>(undefined);
  const [message, setMessage] = useState<string | undefined>(undefined);
  const [checking, setChecking] = useState(true);
  const logout = (why?: string): void => {
    keepToken(undefined);
    setSession(undefined);
    setMessage(why);
  };
  useEffect(() => {
    const token = initialToken();
    if (token === undefined) {
      setChecking(false);
      return;
    }
    const api = new Api(token);
    whoAmI(api).then(
      (user) => {
        setSession({ api, user });
        setChecking(false);
      },
      () => {
        logout('The saved token is no longer accepted: sign in again.');
        setChecking(false);
      },
    );
  }, []);
  useEffect(() => {
    if (session !== undefined) session.api.onUnauthorized = () => logout('The server no longer accepts the token (401): sign in again.');
  }, [session]);
  if (checking) return <p class="muted">Signing in…</p>;
  if (session === undefined) return <Login message={message} onLogin={(api, user) => setSession({ api, user })} />;
  return <Console api={session.api} user={session.user} onLogout={() => logout()} />;
}

const root = document.getElementById('app');
if (root !== null) {
  root.textContent = '';
  render(<App />, root);
}
