// Which cephx user and key a StorageClass's provisioner Secret gives, as the drivers read them:
// rbd takes userID/userKey; cephfs provisions with adminID/adminKey (its user's pair when there is
// no admin pair). Shared by `stowage gc` and the console's Ceph pool view, which both talk to the
// cluster with a class's provisioner Secret.
import { DRIVER_NAMES } from '../../defaults.js';

export function credentialsOf(driver: string, secret: Record<string, string>): { user: string; key: string } | undefined {
  const pairs: [string, string][] = driver === DRIVER_NAMES.cephfs ? [['adminID', 'adminKey'], ['userID', 'userKey']] : [['userID', 'userKey']];
  for (const [u, k] of pairs) {
    const user = secret[u];
    const key = secret[k];
    if (user && key) return { user, key };
  }
  return undefined;
}

/** What a Secret of the driver is missing when credentialsOf finds nothing. */
export function credentialKeys(driver: string): string {
  return driver === DRIVER_NAMES.cephfs ? 'adminID/adminKey' : 'userID/userKey';
}
