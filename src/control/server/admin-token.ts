// The admin's bearer token: random, made once and kept in <state-dir>/admin.token (0600) so that
// kubeconfigs written earlier keep working across restarts. Whoever can read the state directory
// is the admin anyway (the store is there too).
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

export const ADMIN_TOKEN_FILE = 'admin.token';

/** The admin token of a state directory, made when there is none (or it is empty). */
export async function ensureAdminToken(stateDir: string): Promise<string> {
  const path = join(stateDir, ADMIN_TOKEN_FILE);
  const existing = (await readFile(path, 'utf8').catch(() => '')).trim();
  if (existing !== '') return existing;
  await mkdir(stateDir, { recursive: true, mode: 0o700 });
  const token = randomBytes(32).toString('base64url');
  const tmp = `${path}.${process.pid}.tmp`;
  await writeFile(tmp, `${token}\n`, { mode: 0o600 });
  await rename(tmp, path);
  return token;
}
