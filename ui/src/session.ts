// Where the console keeps the user's token: sessionStorage, for the tab's life only. `stowage ui`
// passes it in the URL fragment (#token=…), which never reaches the server; it is moved here and
// taken out of the address bar at once.
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
