// The control plane's own PKI, kept in <state-dir>/pki/ (directory 0700, files 0600): a CA made
// once, and a serving certificate it signs for the API server's HTTPS listeners. The CA goes into
// the kubeconfig, so it must outlive restarts; the serving certificate is remade only when the
// names it must cover change or it nears expiry. ECDSA P-256 through WebCrypto (@peculiar/x509),
// no external commands.
import { createPrivateKey, X509Certificate as NodeX509, webcrypto } from 'node:crypto';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { hostname, networkInterfaces } from 'node:os';
import { isIP } from 'node:net';
import { join } from 'node:path';
import './reflect-metadata.js';
import * as x509 from '@peculiar/x509';

// WebCrypto's DOM types are not in this project's lib: the x509 calls take node's objects as they are.
type Key = webcrypto.CryptoKey;
type KeyPair = webcrypto.CryptoKeyPair;
x509.cryptoProvider.set(webcrypto as never);

const EC = { name: 'ECDSA', namedCurve: 'P-256' } as const;
const SIGNING = { name: 'ECDSA', hash: 'SHA-256' } as const;
const DAY_MS = 24 * 60 * 60 * 1000;
const CA_DAYS = 3650;
const SERVING_DAYS = 365;
/** A serving certificate with less left than this is remade. */
const RENEW_BEFORE_DAYS = 30;

export const PKI_DIR = 'pki';
const FILES = { caCert: 'ca.crt', caKey: 'ca.key', cert: 'serving.crt', key: 'serving.key' } as const;

export interface ServingPki {
  /** PEM of the CA clients trust (the kubeconfig's certificate-authority-data). */
  caPem: string;
  /** PEM of the serving certificate, then the key, for node:https. */
  certPem: string;
  keyPem: string;
  /** Whether the serving certificate was made by this call (absent, names changed, or expiring). */
  renewed: boolean;
}

/** The names a serving certificate covers: DNS names and IP addresses, canonical and sorted. */
export interface SubjectNames {
  dns: string[];
  ips: string[];
}

/** An IP address in one spelling: IPv6 fully expanded and lower-case, IPv4 as is. */
export function canonicalIp(ip: string): string {
  const bare = ip.replace(/^\[(.*)\]$/, '$1');
  if (isIP(bare) !== 6) return bare;
  let [head = '', tail] = bare.toLowerCase().split('::');
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(bare)?.[1];
  if (v4 !== undefined) {
    const [a = 0, b = 0, c = 0, d = 0] = v4.split('.').map(Number);
    const hex = `${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
    if (tail === undefined) head = head.replace(v4, hex);
    else tail = tail.replace(v4, hex);
  }
  const left = head === '' ? [] : head.split(':');
  const right = tail === undefined || tail === '' ? [] : tail.split(':');
  const zeros = tail === undefined ? [] : Array<string>(8 - left.length - right.length).fill('0');
  return [...left, ...zeros, ...right].map((g) => g.replace(/^0+(?=.)/, '')).join(':');
}

function isWildcard(host: string): boolean {
  return host === '0.0.0.0' || host === '::' || canonicalIp(host) === '0:0:0:0:0:0:0:0';
}

/**
 * What the serving certificate must name: localhost, 127.0.0.1, ::1, this machine's hostname and
 * each listen host; a wildcard host (0.0.0.0, ::) stands for every address of this machine.
 */
export function subjectNames(listenHosts: readonly string[], machine = hostname(), interfaces = networkInterfaces()): SubjectNames {
  const dns = new Set(['localhost', machine.toLowerCase()]);
  const ips = new Set([canonicalIp('127.0.0.1'), canonicalIp('::1')]);
  for (const host of listenHosts) {
    if (isWildcard(host)) {
      for (const list of Object.values(interfaces)) for (const a of list ?? []) ips.add(canonicalIp(a.address.replace(/%.*$/, '')));
    } else if (isIP(host.replace(/^\[(.*)\]$/, '$1')) !== 0) ips.add(canonicalIp(host));
    else dns.add(host.toLowerCase());
  }
  return { dns: [...dns].sort(), ips: [...ips].sort() };
}

/** The names a certificate covers, in the same canonical form. */
export function certificateNames(certPem: string): SubjectNames {
  const cert = new x509.X509Certificate(certPem);
  const san = cert.getExtension(x509.SubjectAlternativeNameExtension);
  const names = san?.names.toJSON() ?? [];
  return {
    dns: names.filter((n) => n.type === 'dns').map((n) => n.value.toLowerCase()).sort(),
    ips: names.filter((n) => n.type === 'ip').map((n) => canonicalIp(n.value)).sort(),
  };
}

function sameNames(a: SubjectNames, b: SubjectNames): boolean {
  return a.dns.join(',') === b.dns.join(',') && a.ips.join(',') === b.ips.join(',');
}

async function writePrivate(path: string, text: string): Promise<void> {
  const tmp = `${path}.${process.pid}.tmp`;
  await writeFile(tmp, text, { mode: 0o600 });
  await rename(tmp, path);
}

async function readText(path: string): Promise<string | undefined> {
  return readFile(path, 'utf8').catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return undefined;
    throw err;
  });
}

async function keyPem(key: Key): Promise<string> {
  const der = await webcrypto.subtle.exportKey('pkcs8', key);
  return x509.PemConverter.encode(der, 'PRIVATE KEY');
}

function newKeys(): Promise<KeyPair> {
  return webcrypto.subtle.generateKey(EC, true, ['sign', 'verify']);
}

async function makeCa(now: Date): Promise<{ certPem: string; keyPem: string }> {
  const keys = await newKeys();
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    name: `CN=stowage-ca@${Math.floor(now.getTime() / 1000)}`,
    notBefore: new Date(now.getTime() - 60_000),
    notAfter: new Date(now.getTime() + CA_DAYS * DAY_MS),
    keys: keys as never,
    signingAlgorithm: SIGNING,
    extensions: [
      new x509.BasicConstraintsExtension(true, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign | x509.KeyUsageFlags.digitalSignature, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey as never),
    ],
  });
  return { certPem: cert.toString('pem'), keyPem: await keyPem(keys.privateKey) };
}

async function makeServing(ca: { certPem: string; keyPem: string }, names: SubjectNames, now: Date): Promise<{ certPem: string; keyPem: string }> {
  const keys = await newKeys();
  const caCert = new x509.X509Certificate(ca.certPem);
  const caKey = createPrivateKey(ca.keyPem).toCryptoKey(EC, false, ['sign']);
  const cert = await x509.X509CertificateGenerator.create({
    subject: 'CN=stowage-apiserver',
    issuer: caCert.subject,
    notBefore: new Date(now.getTime() - 60_000),
    notAfter: new Date(now.getTime() + SERVING_DAYS * DAY_MS),
    publicKey: keys.publicKey as never,
    signingKey: caKey as never,
    signingAlgorithm: SIGNING,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
      new x509.SubjectAlternativeNameExtension([...names.dns.map((value) => ({ type: 'dns' as const, value })), ...names.ips.map((value) => ({ type: 'ip' as const, value }))]),
      await x509.AuthorityKeyIdentifierExtension.create(caCert, false),
    ],
  });
  return { certPem: cert.toString('pem'), keyPem: await keyPem(keys.privateKey) };
}

/** Whether the stored serving certificate can be kept: its key's, signed by this CA, same names, valid now and not soon expiring. */
function servingStillGood(certPem: string, servingKeyPem: string, caPem: string, names: SubjectNames, now: Date): boolean {
  try {
    const cert = new NodeX509(certPem);
    const ca = new NodeX509(caPem);
    if (!cert.checkIssued(ca) || !cert.verify(ca.publicKey) || !cert.checkPrivateKey(createPrivateKey(servingKeyPem))) return false;
    // Not yet valid (the clock went back) or expiring soon.
    if (new Date(cert.validFrom).getTime() > now.getTime() || new Date(cert.validTo).getTime() - now.getTime() < RENEW_BEFORE_DAYS * DAY_MS) return false;
    return sameNames(certificateNames(certPem), names);
  } catch {
    return false;
  }
}

/**
 * The CA and serving certificate under <stateDir>/pki/, made or remade as needed for `listenHosts`
 * (the hosts of the HTTPS listeners).
 */
export async function ensurePki(stateDir: string, listenHosts: readonly string[], now = new Date(), names = subjectNames(listenHosts)): Promise<ServingPki> {
  const dir = join(stateDir, PKI_DIR);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const path = (f: keyof typeof FILES): string => join(dir, FILES[f]);
  let caPem = await readText(path('caCert'));
  let caKeyPem = await readText(path('caKey'));
  if (caPem === undefined || caKeyPem === undefined) {
    const ca = await makeCa(now);
    // Key first: a CA certificate on disk always has its key beside it.
    await writePrivate(path('caKey'), ca.keyPem);
    await writePrivate(path('caCert'), ca.certPem);
    caPem = ca.certPem;
    caKeyPem = ca.keyPem;
  }
  const certPem = await readText(path('cert'));
  const servingKeyPem = await readText(path('key'));
  if (certPem !== undefined && servingKeyPem !== undefined && servingStillGood(certPem, servingKeyPem, caPem, names, now)) {
    return { caPem, certPem, keyPem: servingKeyPem, renewed: false };
  }
  const serving = await makeServing({ certPem: caPem, keyPem: caKeyPem }, names, now);
  await writePrivate(path('key'), serving.keyPem);
  await writePrivate(path('cert'), serving.certPem);
  return { caPem, certPem: serving.certPem, keyPem: serving.keyPem, renewed: true };
}
