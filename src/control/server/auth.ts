// Bearer-token authentication. Both sides are hashed before the constant-time comparison, so
// neither the token's content nor its length leaks through timing.
import { createHash, timingSafeEqual } from 'node:crypto';

function digest(text: string): Buffer {
  return createHash('sha256').update(text, 'utf8').digest();
}

/** A checker for "Authorization: Bearer <token>" headers. */
export function bearerTokenChecker(token: string): (authorization: string | undefined) => boolean {
  if (token === '') throw new Error('the API token must not be empty');
  const expected = digest(token);
  return (authorization) => {
    const m = /^Bearer\s+(\S+)\s*$/i.exec(authorization ?? '');
    return m !== null && timingSafeEqual(digest(m[1] ?? ''), expected);
  };
}
