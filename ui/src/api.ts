// The console's only way to the server: the Kubernetes API (and the CSI call journal) with the
// user's bearer token. Failures carry the API's Status (message, reason, causes with field paths),
// so views can show exactly what the server said.
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

export class Api {
  /** Called when the server answers 401: the token is no longer good. */
  onUnauthorized: () => void = () => undefined;

  /** @param base the server's origin; '' in the page (same origin), a URL in tests */
  constructor(
    readonly token: string,
    readonly base = '',
  ) {}

  async request(path: string, init: RequestInit = {}): Promise<Response> {
    const headers = new Headers(init.headers);
    headers.set('Authorization', `Bearer ${this.token}`);
    if (!headers.has('Accept')) headers.set('Accept', 'application/json');
    const res = await fetch(`${this.base}${path}`, { ...init, headers });
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
