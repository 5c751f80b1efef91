/**
 * The ceph.conf of a one-node development cluster (`stowage ceph-dev`), rendered from a few facts.
 * Everything the daemons write — data, keyrings, admin sockets, pid files, logs — stays under the
 * cluster's directory, so several clusters can run side by side and `down` can remove all of it.
 */

export interface DevConfOptions {
  /** The cluster's directory: absolute, no characters ceph.conf would interpret (see checkConfPath). */
  dir: string;
  fsid: string;
  /** The monitor's msgr v1 port on 127.0.0.1. */
  monPort: number;
  /** Memory the memstore OSD may hold, in bytes. */
  memstoreBytes: number;
}

/** Names of the daemons and the admin client, fixed: one of each. */
export const MON_ID = 'a';
export const MGR_ID = 'x';
export const OSD_ID = 0;
export const MDS_ID = 'a';
export const ADMIN_USER = 'admin';

/**
 * mgr modules not loaded at all: the mgr imports every module it finds at start, ~4 s of Python on
 * this machine, and these are not needed by a CSI test cluster (the always-on ones — volumes,
 * rbd_support, orchestrator, status… — stay).
 */
const MGR_SKIPPED_MODULES = [
  'alerts', 'cephadm', 'dashboard', 'diskprediction_local', 'influx', 'insights', 'k8sevents', 'localpool',
  'mirroring', 'nfs', 'osd_support', 'prometheus', 'restful', 'rook', 'selftest', 'snap_schedule', 'stats',
  'telegraf', 'test_orchestrator', 'zabbix',
];

/** Paths of the cluster's files, all under dir. */
export function devPaths(dir: string) {
  return {
    conf: `${dir}/ceph.conf`,
    adminKeyring: `${dir}/ceph.client.admin.keyring`,
    mkfsKeyring: `${dir}/mkfs.keyring`,
    monmap: `${dir}/monmap`,
    state: `${dir}/stowage-ceph-dev.json`,
    lock: `${dir}/stowage-ceph-dev.lock`,
    logDir: `${dir}/log`,
    runDir: `${dir}/run`,
    crashDir: `${dir}/crash`,
    /** A daemon's data directory (its keyring lives inside): DIR/mon.a, DIR/osd.0… */
    data: (name: string) => `${dir}/${name}`,
    log: (name: string) => `${dir}/log/${name}.log`,
    /** The daemon's stdout and stderr (assertions, early start-up errors). */
    out: (name: string) => `${dir}/log/${name}.out`,
  };
}

/** Unix socket paths are limited to 107 bytes; the longest one here is DIR/run/mon.a.asok. */
const MAX_SOCKET_PATH = 107;

/**
 * ceph.conf has no quoting for paths: `$` expands metavariables, `#` and `;` start comments, and
 * whitespace is folded. Reject such directories rather than render a conf that means something else.
 */
export function checkConfPath(dir: string): void {
  if (!dir.startsWith('/')) throw new Error(`the cluster directory must be absolute: ${dir}`);
  if (!/^[A-Za-z0-9._/+@:,~-]+$/.test(dir)) {
    throw new Error(`the cluster directory may only contain letters, digits and . _ / + @ : , ~ - (ceph.conf cannot quote others): ${dir}`);
  }
  const longest = `${dir}/run/mgr.${MGR_ID}.asok`;
  if (Buffer.byteLength(longest) > MAX_SOCKET_PATH) {
    throw new Error(`the cluster directory is too long: admin sockets under it would pass the ${MAX_SOCKET_PATH}-byte unix socket limit`);
  }
}

/** Renders ceph.conf. `$name` is ceph's metavariable (mon.a, osd.0…), expanded by each daemon. */
export function renderCephConf(o: DevConfOptions): string {
  checkConfPath(o.dir);
  const p = devPaths(o.dir);
  const daemonSection = (kind: string, extra: string[]) => [
    `[${kind}]`,
    `${kind} data = ${o.dir}/$name`,
    `keyring = ${o.dir}/$name/keyring`,
    `log file = ${p.logDir}/$name.log`,
    `admin socket = ${p.runDir}/$name.asok`,
    `pid file = ${p.runDir}/$name.pid`,
    ...extra,
    '',
  ];
  return [
    '# Written by `stowage ceph-dev up`: a one-node development cluster. Not for real data.',
    '[global]',
    `fsid = ${o.fsid}`,
    // v1 only: one port per daemon, and what kernel-era clients and `host:port` lists expect.
    `mon host = [v1:127.0.0.1:${o.monPort}]`,
    'public addr = 127.0.0.1',
    'ms bind msgr1 = true',
    'ms bind msgr2 = false',
    'auth cluster required = cephx',
    'auth service required = cephx',
    'auth client required = cephx',
    'auth allow insecure global id reclaim = false',
    `run dir = ${p.runDir}`,
    `crash dir = ${p.crashDir}`,
    // One OSD: every pool has one replica, and few PGs.
    'osd pool default size = 1',
    'osd pool default min size = 1',
    'osd pool default pg num = 8',
    'osd pool default pgp num = 8',
    'osd pool default pg autoscale mode = off',
    'osd crush chooseleaf type = 0',
    'mon allow pool size one = true',
    'mon allow pool delete = true',
    'mon max pg per osd = 1000',
    // Health stays HEALTH_OK for what is deliberate here.
    'mon warn on pool no redundancy = false',
    'mon warn on msgr2 not enabled = false',
    'mon data avail warn = 2',
    'mon data avail crit = 1',
    // Speed: the mon proposes changes every 50 ms instead of every second (each pool create, fs new…
    // waits for one), and PG states reach `ceph -s` within a second instead of five.
    'paxos propose interval = 0.05',
    'mgr stats period = 1',
    'mon mgr digest period = 1',
    // Read by the mon when it creates the mgr map.
    'mgr initial modules = iostat',
    `mgr disabled modules = ${MGR_SKIPPED_MODULES.join(' ')}`,
    '',
    ...daemonSection('mon', [
      `mon cluster log file = ${p.logDir}/cluster.log`,
      // One bind attempt: a taken port fails at once (the default retries for 15 s) and `up` picks another.
      'ms bind retry count = 1',
    ]),
    ...daemonSection('mgr', []),
    ...daemonSection('osd', [
      'osd objectstore = memstore',
      `memstore device bytes = ${o.memstoreBytes}`,
      // The minimum ceph accepts; memstore has no cache to size, this only keeps the OSD from
      // believing it may grow to the 4 GiB default.
      'osd memory target = 939524096',
    ]),
    ...daemonSection('mds', [
      'mds cache memory limit = 268435456',
      // The mgr's clone bookkeeping waits for the MDS journal, flushed on the MDS tick (5 s by
      // default): 8 concurrent cephfs clones take 69 s at 5 s and 13 s at 1 s on this cluster.
      'mds tick interval = 1',
    ]),
    `[client.${ADMIN_USER}]`,
    `keyring = ${p.adminKeyring}`,
    '',
  ].join('\n');
}
