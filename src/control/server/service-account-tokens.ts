// ServiceAccount tokens: JWTs (ES256) the API server issues through TokenRequest
// (POST .../serviceaccounts/NAME/token, `kubectl create token NAME`) and accepts as bearer tokens.
// The signing key is made once, <state-dir>/pki/sa.key (0600). A token names its ServiceAccount's
// UID: it stops working when the account is deleted, even if recreated under the same name.
import { createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject, randomUUID, sign, verify } from 'node:crypto';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { PKI_DIR } from './pki.js';

export const SA_KEY_FILE = 'sa.key';
/** The audience the API server accepts and gives tokens by default, as kube-apiserver's. */
export const API_AUDIENCE = 'https://kubernetes.default.svc.cluster.local';
export const ISSUER = API_AUDIENCE;
export const DEFAULT_EXPIRATION_SECONDS = 3600;
export const MIN_EXPIRATION_SECONDS = 600;
export const MAX_EXPIRATION_SECONDS = 2 ** 32;

export interface ServiceAccountRef {
  namespace: string;
  name: string;
  uid: string;
}

export interface TokenClaims {
  iss: string;
  sub: string;
  aud: string[];
  iat: number;
  nbf: number;
  exp: number;
  jti: string;
  'kubernetes.io': { namespace: string; serviceaccount: { name: string; uid: string } };
}

function b64(data: Buffer | string): string {
  return Buffer.from(data).toString('base64url');
}

export class TokenSigner {
  private readonly publicKey: KeyObject;
  private readonly kid: string;

  constructor(private readonly privateKey: KeyObject) {
    this.publicKey = createPublicKey(privateKey);
    this.kid = b64(this.publicKey.export({ format: 'der', type: 'spki' }).subarray(-16));
  }

  /** The signing key of a state directory, made when there is none. */
  static async forStateDir(stateDir: string): Promise<TokenSigner> {
    const dir = join(stateDir, PKI_DIR);
    const path = join(dir, SA_KEY_FILE);
    const pem = await readFile(path, 'utf8').catch(() => undefined);
    if (pem !== undefined) return new TokenSigner(createPrivateKey(pem));
    await mkdir(dir, { recursive: true, mode: 0o700 });
    const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const tmp = `${path}.${process.pid}.tmp`;
    await writeFile(tmp, privateKey.export({ format: 'pem', type: 'pkcs8' }), { mode: 0o600 });
    await rename(tmp, path);
    return new TokenSigner(privateKey);
  }

  /** A token for the account, valid from now for `seconds`. */
  issue(sa: ServiceAccountRef, audiences: readonly string[], seconds: number, now = Date.now()): { token: string; expires: Date } {
    const iat = Math.floor(now / 1000);
    const claims: TokenClaims = {
      iss: ISSUER,
      sub: `system:serviceaccount:${sa.namespace}:${sa.name}`,
      aud: [...audiences],
      iat,
      nbf: iat,
      exp: iat + seconds,
      jti: randomUUID(),
      'kubernetes.io': { namespace: sa.namespace, serviceaccount: { name: sa.name, uid: sa.uid } },
    };
    const input = `${b64(JSON.stringify({ alg: 'ES256', kid: this.kid }))}.${b64(JSON.stringify(claims))}`;
    const signature = sign('sha256', Buffer.from(input), { key: this.privateKey, dsaEncoding: 'ieee-p1363' });
    return { token: `${input}.${b64(signature)}`, expires: new Date((iat + seconds) * 1000) };
  }

  /** The claims of a token this signer made, for the API's audience, valid now; else undefined. */
  verify(token: string, now = Date.now()): TokenClaims | undefined {
    const parts = token.split('.');
    if (parts.length !== 3) return undefined;
    const [header = '', payload = '', signature = ''] = parts;
    try {
      const h = JSON.parse(Buffer.from(header, 'base64url').toString('utf8')) as { alg?: unknown };
      if (h.alg !== 'ES256') return undefined;
      const ok = verify('sha256', Buffer.from(`${header}.${payload}`), { key: this.publicKey, dsaEncoding: 'ieee-p1363' }, Buffer.from(signature, 'base64url'));
      if (!ok) return undefined;
      const claims = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as TokenClaims;
      const t = Math.floor(now / 1000);
      if (claims.iss !== ISSUER || !Array.isArray(claims.aud) || !claims.aud.includes(API_AUDIENCE)) return undefined;
      if (typeof claims.exp !== 'number' || typeof claims.nbf !== 'number' || t >= claims.exp || t < claims.nbf) return undefined;
      const k = claims['kubernetes.io'];
      if (typeof k?.namespace !== 'string' || typeof k.serviceaccount?.name !== 'string' || typeof k.serviceaccount.uid !== 'string') return undefined;
      return claims;
    } catch {
      return undefined;
    }
  }
}
