// The console's only way to the server: the Kubernetes API (and the CSI call journal) with the
// user's bearer token, kept in sessionStorage for the tab's life. Failures carry the API's Status
// (message, reason, causes with field paths), so views can show exactly what the server said.
export interface Status {
  kind?: string;
  message?: string;
  reason?: string;
  code?: number;
  details?: { causes?: { field?: string; message?: string; reason?: string }[] };
}

export class ApiFailure extends Error {
  constructor(
    readonly status: number,
    readonly body: Status,
  ) {
    super(body.message ?? `HTTP ${status}`);
  }
}

const TOKEN_KEY = 'stowage.token';

/** The token passed by `stowage ui` in the fragment (#token=…), else the one kept for this tab. The fragment is removed from the address bar. */
export function initialToken(): string | undefined {
  const hash = new URLSearchParams(location.hash.replace(/^#/, ''));
  const fromUrl = hash.get('token');
  if (fromUrl !== null && fromUrl !== '') {
    sessionStorage.setItem(TOKEN_KEY, fromUrl);
    history.replaceState(null, '', location.pathname + location.search);
    return fromUrl;
  }
  return sessionStorage.getItem(TOKEN_KEY) ?? undefined;
}

export function keepToken(token: string | undefined): void {
  if (token === undefined) sessionStorage.removeItem(TOKEN_KEY);
  else sessionStorage.setItem(TOKEN_KEY, token);
}

export class Api {
  /** Called when the server answers 401: the token is no longer good. */
  onUnauthorized: () => void = () => undefined;

  constructor(readonly token: string) {}

  async request(path: string, init: RequestInit = {}): Promise<Response> {
    const headers = new Headers(init.headers);
    headers.set('Authorization', `Bearer ${this.token}`);
    if (!headers.has('Accept')) headers.set('Accept', 'application/json');
    const res = await fetch(path, { ...init, headers });
    if (!res.ok) {
      const body = (await res.json().catch(() => ({}))) as Status;
      if (res.status === 401) this.onUnauthorized();
      throw new ApiFailure(res.status, body);
    }
    return res;
  }

  async json<T>(path: string, init: RequestInit = {}): Promise<T> {
    return (await (await this.request(path, init)).json()) as T;
  }

  async text(path: string): Promise<string> {
    return (await this.request(path, { headers: { Accept: 'text/plain' } })).text();
  }
}
