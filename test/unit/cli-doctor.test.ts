// `stowage doctor`'s checks against a fake host: each case is a node in some state (a module
// missing, a private kubelet mount, a dead fuse daemon, a deleted loop backing file, monitors
// down, the mgr volumes module off) and the line a user must then see, with its status.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { checkCephClusters, monitorAddresses } from '../../src/cli/doctor/ceph-clusters.js';
import { checkCephTools } from '../../src/cli/doctor/ceph-tools.js';
import { checkLoopDevices } from '../../src/cli/doctor/loop-devices.js';
import { checkModules } from '../../src/cli/doctor/modules.js';
import { checkPropagation } from '../../src/cli/doctor/propagation.js';
import { exitStatus, formatLine, formatResults, runDoctor } from '../../src/cli/doctor/run.js';
import { checkSockets } from '../../src/cli/doctor/sockets.js';
import { checkStaleMounts } from '../../src/cli/doctor/stale-mounts.js';
import type { CheckResult, DoctorDeps } from '../../src/cli/doctor/types.js';
import type { RunOptions, RunResult } from '../../src/driver/mount/exec.js';

interface FakeHost {
  files?: Record<string, string>;
  dirs?: Record<string, string[]>;
  /** stat errors by path; a path in neither files, dirs nor here stats fine only when listed in `exist`. */
  statErrors?: Record<string, string>;
  exist?: string[];
  sockets?: string[];
  /** "cmd arg arg" → result; a missing command throws ENOENT like spawn does. */
  commands?: Record<string, Partial<RunResult> | Error>;
  down?: string[];
  probeFails?: Record<string, string>;
}

function fake(h: FakeHost): DoctorDeps & { ran: string[][] } {
  const ran: string[][] = [];
  return {
    ran,
    reader: {
      readText: async (p) => h.files?.[p],
      list: async (d) => h.dirs?.[d] ?? [],
      statError: async (p) => h.statErrors?.[p] ?? (h.files?.[p] !== undefined || h.dirs?.[p] !== undefined || h.exist?.includes(p) || h.sockets?.includes(p) ? undefined : 'ENOENT'),
      isSocket: async (p) => h.sockets?.includes(p) ?? false,
    },
    runner: {
      run: async (cmd: string, args: string[], opts?: RunOptions) => {
        ran.push([cmd, ...args]);
        const r = h.commands?.[[cmd, ...args].join(' ')] ?? h.commands?.[cmd];
        if (r === undefined) throw Object.assign(new Error(`spawn ${cmd} ENOENT`), { code: 'ENOENT' });
        if (r instanceof Error) throw r;
        const exitCode = r.exitCode ?? 0;
        if (!(opts?.okExitCodes ?? [0]).includes(exitCode)) throw new Error(`${cmd} exited with code ${exitCode}`);
        return { stdout: r.stdout ?? '', stderr: r.stderr ?? '', exitCode };
      },
    },
    tcpConnect: async (host, port) => (h.down?.includes(`${host}:${port}`) ? 'ECONNREFUSED' : undefined),
    probe: async (s) => h.probeFails?.[s],
  };
}

const byCheck = (rs: CheckResult[], check: string): CheckResult => {
  const r = rs.find((x) => x.check === check);
  assert.ok(r, `no line for ${check} in ${JSON.stringify(rs.map((x) => x.check))}`);
  return r;
};

const MOUNTINFO_LINE = (id: number, point: string, tags: string, fs = 'ext4', src = '/dev/vda') => `${id} 1 8:1 / ${point} rw,relatime ${tags} - ${fs} ${src} rw`;

describe('doctor: kernel modules', () => {
  const cases: { name: string; host: FakeHost; backend?: 'local' | 'rbd' | 'cephfs'; expect: Record<string, string>; mounters: RegExp }[] = [
    {
      name: 'all loaded',
      host: { files: { '/proc/modules': 'rbd 1 0 - Live\nnbd 1 0 - Live\nceph 1 0 - Live\nfuse 1 0 - Live\nloop 1 0 - Live\n' }, exist: ['/dev/fuse'] },
      expect: { rbd: 'ok', nbd: 'ok', ceph: 'ok', fuse: 'ok', loop: 'ok' },
      mounters: /usable: rbd-fuse, krbd, rbd-nbd, kernel cephfs, ceph-fuse, local \(loop\)$/,
    },
    {
      name: 'builtin fuse in /sys/module, rbd loadable by modinfo, the rest missing: warn unless the backend needs it',
      host: { dirs: { '/sys/module': ['fuse', 'loop'] }, exist: ['/dev/fuse'], commands: { 'modinfo -F filename rbd': { stdout: '/lib/modules/x/rbd.ko' }, modinfo: { exitCode: 1 } } },
      backend: 'rbd',
      expect: { rbd: 'ok', nbd: 'warn', ceph: 'warn', fuse: 'ok', loop: 'ok' },
      mounters: /unusable: rbd-nbd, kernel cephfs$/,
    },
    {
      name: 'no fuse on an rbd node is a FAIL (rbd-fuse is the default mounter)',
      host: { dirs: { '/sys/module': ['loop'] }, commands: { modinfo: { exitCode: 1 } } },
      backend: 'rbd',
      expect: { rbd: 'warn', nbd: 'warn', ceph: 'warn', fuse: 'FAIL', loop: 'ok' },
      mounters: /^usable: local \(loop\)/,
    },
    {
      name: 'fuse loaded but no /dev/fuse (a container without /dev): the fuse mounters are unusable',
      host: { dirs: { '/sys/module': ['fuse', 'loop'] }, commands: { modinfo: { exitCode: 1 } } },
      backend: 'cephfs',
      expect: { fuse: 'ok', 'device /dev/fuse': 'FAIL' },
      mounters: /^usable: local \(loop\); unusable: rbd-fuse, krbd, rbd-nbd, kernel cephfs, ceph-fuse$/,
    },
    {
      name: 'no modinfo: modules.dep and modules.builtin of the running kernel decide',
      host: {
        files: {
          '/proc/sys/kernel/osrelease': '6.1.0-test\n',
          '/lib/modules/6.1.0-test/modules.dep': 'kernel/drivers/block/rbd.ko.xz: kernel/net/ceph/libceph.ko.xz\nkernel/drivers/block/nbd.ko:\n',
          '/lib/modules/6.1.0-test/modules.builtin': 'kernel/fs/fuse/fuse.ko\n',
        },
        exist: ['/dev/fuse'],
      },
      backend: 'local',
      expect: { rbd: 'ok', nbd: 'ok', ceph: 'warn', fuse: 'ok', loop: 'FAIL' },
      mounters: /unusable: kernel cephfs, local \(loop\)$/,
    },
  ];
  for (const c of cases) {
    it(c.name, async () => {
      const rs = await checkModules(fake(c.host), c.backend);
      for (const [m, status] of Object.entries(c.expect)) assert.equal(byCheck(rs, m.startsWith('device') ? m : `kernel module ${m}`).status, status, m);
      assert.match(byCheck(rs, 'mounters').finding, c.mounters);
      for (const r of rs.filter((x) => x.status !== 'ok')) assert.match(r.fix, r.check === 'device /dev/fuse' ? /mknod \/dev\/fuse c 10 229/ : /modprobe|install/);
    });
  }
});

describe('doctor: the mounters the driver picks for a class without mounter', () => {
  const cases: [string, FakeHost, RegExp][] = [
    ['rbd and ceph loaded: krbd and the kernel client', { files: { '/proc/modules': 'rbd 1 0 - Live\nceph 1 0 - Live\nfuse 1 0 - Live\n' }, exist: ['/dev/fuse'] }, /rbd → krbd \(rbd module loaded\); cephfs → kernel \(ceph module loaded\)$/],
    [
      'rbd only loadable, no ceph: the fuse mounters (the driver needs the module loaded)',
      { dirs: { '/sys/module': ['fuse'] }, exist: ['/dev/fuse'], commands: { 'modinfo -F filename rbd': { stdout: '/lib/modules/x/rbd.ko' }, modinfo: { exitCode: 1 } } },
      /rbd → rbd-fuse \(rbd module not loaded\); cephfs → ceph-fuse \(ceph module not loaded\)$/,
    ],
  ];
  for (const [name, host, re] of cases) {
    it(name, async () => {
      const r = byCheck(await checkModules(fake(host), 'rbd'), 'default mounters');
      assert.equal(r.status, 'ok');
      assert.match(r.finding, re);
    });
  }
});

describe('doctor: Ceph client tools and libraries', () => {
  const ldcache = '\tlibrados.so.2 (libc6,x86-64) => /lib/librados.so.2\n\tlibrbd.so.1 (libc6,x86-64) => /lib/librbd.so.1\n';
  it('reports tools on PATH, libraries in the loader cache and the client version', async () => {
    const deps = fake({ exist: ['/usr/bin/rbd-fuse'], commands: { 'ldconfig -p': { stdout: ldcache }, 'ceph --version': { stdout: 'ceph version 18.2.4 (e7ad5345525c7aa95470c26863873b581076945d) reef (stable)\n' } } });
    const prev = process.env['PATH'];
    process.env['PATH'] = '/usr/local/bin:/usr/bin';
    try {
      const rs = await checkCephTools(deps, 'cephfs');
      assert.equal(byCheck(rs, 'ceph tool rbd-fuse').status, 'ok');
      assert.deepEqual(byCheck(rs, 'ceph tool ceph-fuse'), { check: 'ceph tool ceph-fuse', status: 'FAIL', finding: 'not on PATH: the cephfs backend cannot mount', fix: 'apt-get install ceph-fuse' });
      assert.equal(byCheck(rs, 'ceph library librbd1').status, 'ok');
      assert.equal(byCheck(rs, 'ceph library libcephfs2').status, 'FAIL');
      assert.equal(byCheck(rs, 'ceph client version').finding, '18.2.4');
      // The same gaps only warn on a node that serves rbd.
      const rbd = await checkCephTools(deps, 'rbd');
      assert.equal(byCheck(rbd, 'ceph tool ceph-fuse').status, 'warn');
      assert.equal(byCheck(rbd, 'ceph library libcephfs2').status, 'warn');
    } finally {
      process.env['PATH'] = prev;
    }
  });
});

describe('doctor: Ceph clusters from --ceph-config', () => {
  const config = JSON.stringify([
    { clusterID: 'a', monitors: ['10.0.0.1:6789', '[v2:10.0.0.2:3300,v1:10.0.0.2:6789]'] },
    { clusterID: 'b', monitors: ['10.0.1.1:6789'] },
  ]);
  const cases: { name: string; host: FakeHost; creds?: boolean; expect: Record<string, string>; finding?: [string, RegExp] }[] = [
    { name: 'all monitors up, no credentials: says what was not checked', host: {}, expect: { 'ceph cluster a monitors': 'ok', 'ceph cluster a': 'warn', 'ceph cluster b monitors': 'ok' }, finding: ['ceph cluster a', /not checked: no credentials/] },
    {
      name: 'one of a\'s monitors down warns; all of b\'s down fails',
      host: { down: ['10.0.0.2:3300', '10.0.1.1:6789'] },
      expect: { 'ceph cluster a monitors': 'warn', 'ceph cluster b monitors': 'FAIL' },
      finding: ['ceph cluster b monitors', /none of 1 reachable \(10\.0\.1\.1:6789 ECONNREFUSED\)/],
    },
    {
      name: 'with credentials: cluster version against the client, mgr volumes module off',
      creds: true,
      host: {
        commands: {
          'ceph --version': { stdout: 'ceph version 16.2.15 (x) pacific (stable)' },
          ceph: { stdout: '{"version":"ceph version 18.2.4 (x) reef (stable)"}' },
        },
      },
      expect: { 'ceph cluster a version': 'warn', 'ceph cluster a mgr volumes': 'FAIL' },
      finding: ['ceph cluster a version', /cluster 18\.2\.4, client 16\.2\.15: the client is older/],
    },
  ];
  for (const c of cases) {
    it(c.name, async () => {
      const deps = fake({ ...c.host, files: { '/etc/ceph-csi-config/config.json': config, '/etc/ceph/admin.key': 'AQD…==\n' } });
      const rs = await checkCephClusters(deps, '/etc/ceph-csi-config/config.json', c.creds ? { user: 'admin', keyfile: '/etc/ceph/admin.key' } : undefined, 'cephfs');
      for (const [check, status] of Object.entries(c.expect)) assert.equal(byCheck(rs, check).status, status, check);
      if (c.finding) assert.match(byCheck(rs, c.finding[0]).finding, c.finding[1]);
      if (!c.creds) assert.equal(deps.ran.length, 0, 'nothing talks to the cluster without credentials');
      else {
        assert.deepEqual(deps.ran.find((a) => a.includes('version') && a.includes('-m')), [
          'ceph', '-m', '[v1:10.0.0.1:6789],[v2:10.0.0.2:3300,v1:10.0.0.2:6789]', '--id', 'admin', '--keyfile', '/etc/ceph/admin.key', '--connect-timeout', '10', '--format', 'json', 'version',
        ]);
      }
      for (const argv of deps.ran.filter((a) => a.includes('-m'))) {
        assert.ok(argv.includes('--keyfile'), 'the key travels as a file path');
        assert.ok(!argv.some((a) => a.startsWith('--key=') || a === '--key'), 'never the key itself');
      }
    });
  }
  it('an always-on volumes module (Octopus and later) is ok', async () => {
    const deps = fake({ files: { '/c.json': config, '/k': 'key' }, commands: { 'ceph --version': { stdout: 'ceph version 18.2.4 (x)' }, ceph: { stdout: '{"version":"ceph version 18.2.4 (x)","always_on_modules":["volumes"],"enabled_modules":[]}' } } });
    const rs = await checkCephClusters(deps, '/c.json', { user: 'u', keyfile: '/k' }, 'cephfs');
    assert.equal(byCheck(rs, 'ceph cluster b mgr volumes').status, 'ok');
    assert.equal(byCheck(rs, 'ceph cluster b version').status, 'ok');
  });
  it('an unreadable keyfile is one FAIL line and nothing is run', async () => {
    const deps = fake({ files: { '/c.json': config }, commands: { ceph: { stdout: '{}' } } });
    const rs = await checkCephClusters(deps, '/c.json', { user: 'u', keyfile: '/missing.key' }, 'rbd');
    assert.deepEqual(rs.map((r) => `${r.status} ${r.check}`), ['FAIL ceph credentials']);
    assert.equal(deps.ran.length, 0);
  });
  it('an unreadable or malformed config is one FAIL line', async () => {
    assert.equal((await checkCephClusters(fake({}), '/nope.json', undefined, 'rbd'))[0]?.status, 'FAIL');
    const bad = await checkCephClusters(fake({ files: { '/c.json': '{"clusterID":"a"}' } }), '/c.json', undefined, 'rbd');
    assert.match(bad[0]?.finding ?? '', /expected a JSON list/);
  });
  it('parses the monitor spellings ceph-csi config maps hold', () => {
    assert.deepEqual(monitorAddresses('[v2:10.0.0.2:3300,v1:10.0.0.2:6789]'), [{ host: '10.0.0.2', port: 3300 }, { host: '10.0.0.2', port: 6789 }]);
    assert.deepEqual(monitorAddresses('v1:mon-a.example:6789'), [{ host: 'mon-a.example', port: 6789 }]);
    assert.deepEqual(monitorAddresses('[fd00::1]:6789'), [{ host: 'fd00::1', port: 6789 }]);
  });
});

describe('doctor: kubelet root mount propagation', () => {
  const cases: { name: string; mountinfo: string[]; dir: string; status: string; fix?: RegExp; finding: RegExp }[] = [
    { name: 'a shared mount of its own', mountinfo: [MOUNTINFO_LINE(1, '/', ''), MOUNTINFO_LINE(2, '/var/lib/kubelet', 'shared:5')], dir: '/var/lib/kubelet', status: 'ok', finding: /a mount point, shared \(shared:5\)/ },
    { name: 'a directory on a shared root', mountinfo: [MOUNTINFO_LINE(1, '/', 'shared:1')], dir: '/var/lib/kubelet', status: 'ok', finding: /not a mount point, on \/, shared/ },
    { name: 'a directory on a private root', mountinfo: [MOUNTINFO_LINE(1, '/', ''), MOUNTINFO_LINE(2, '/var', 'shared:3')], dir: '/srv/kubelet', status: 'FAIL', finding: /on \/, private/, fix: /^mount --bind \/srv\/kubelet \/srv\/kubelet && mount --make-rshared \/srv\/kubelet$/ },
    { name: 'a private mount of its own', mountinfo: [MOUNTINFO_LINE(1, '/', 'shared:1'), MOUNTINFO_LINE(2, '/var/lib/kubelet', '')], dir: '/var/lib/kubelet', status: 'FAIL', finding: /a mount point, private/, fix: /^mount --make-rshared \/var\/lib\/kubelet$/ },
    { name: 'a slave mount', mountinfo: [MOUNTINFO_LINE(1, '/', 'master:1')], dir: '/var/lib/kubelet', status: 'FAIL', finding: /slave/, fix: /make-rshared/ },
  ];
  for (const c of cases) {
    it(c.name, async () => {
      const [r] = await checkPropagation(fake({ files: { '/proc/self/mountinfo': c.mountinfo.join('\n') }, exist: [c.dir] }), [c.dir]);
      assert.equal(r?.status, c.status);
      assert.match(r?.finding ?? '', c.finding);
      if (c.fix) assert.match(r?.fix ?? '', c.fix);
    });
  }
  it('a missing kubelet root fails', async () => {
    const [r] = await checkPropagation(fake({ files: { '/proc/self/mountinfo': MOUNTINFO_LINE(1, '/', 'shared:1') } }), ['/var/lib/kubelet']);
    assert.equal(r?.status, 'FAIL');
    assert.match(r?.finding ?? '', /does not exist/);
  });
});

describe('doctor: stale mounts and leftover loop devices', () => {
  const mountinfo = [
    MOUNTINFO_LINE(1, '/', 'shared:1'),
    MOUNTINFO_LINE(2, '/var/lib/kubelet/plugins/kubernetes.io/csi/rbd.stowage.dev/abc/globalmount', 'shared:7', 'fuse.rbd-fuse', 'rbd-fuse'),
    MOUNTINFO_LINE(3, '/var/lib/kubelet/pods/u1/volumes/kubernetes.io~csi/pv1/mount', 'shared:8', 'fuse.ceph-fuse', 'ceph-fuse'),
    MOUNTINFO_LINE(4, '/mnt/elsewhere', '', 'fuse.sshfs', 'x'),
    MOUNTINFO_LINE(5, '/srv/state/nodes/n1/pool/pool', '', 'btrfs', '/dev/loop1'),
  ].join('\n');
  it('a dead fuse daemon (ENOTCONN) under a kubelet root is a FAIL with its umount; mounts elsewhere are not looked at', async () => {
    const deps = fake({
      files: { '/proc/self/mountinfo': mountinfo },
      statErrors: { '/var/lib/kubelet/pods/u1/volumes/kubernetes.io~csi/pv1/mount': 'ENOTCONN', '/mnt/elsewhere': 'ENOTCONN' },
      exist: ['/var/lib/kubelet/plugins/kubernetes.io/csi/rbd.stowage.dev/abc/globalmount'],
    });
    const rs = await checkStaleMounts(deps, ['/var/lib/kubelet']);
    assert.deepEqual(rs.map(formatLine), [
      'FAIL  stale mount /var/lib/kubelet/pods/u1/volumes/kubernetes.io~csi/pv1/mount: fuse.ceph-fuse from ceph-fuse: Transport endpoint is not connected (its fuse daemon is gone) (fix: umount -l /var/lib/kubelet/pods/u1/volumes/kubernetes.io~csi/pv1/mount (kubelet then stages and publishes it again))',
    ]);
  });
  it('a mount whose stat hangs is reported as not answering', async () => {
    const deps = fake({ files: { '/proc/self/mountinfo': mountinfo } });
    deps.reader.statError = (p) => (p === '/srv/state/nodes/n1/pool/pool' ? new Promise(() => {}) : Promise.resolve(undefined));
    const rs = await checkStaleMounts(deps, ['/srv/state'], 20);
    assert.equal(rs[0]?.status, 'FAIL');
    assert.match(rs[0]?.finding ?? '', /stat does not return within 20 ms/);
  });
  it('no stale mount is one ok line', async () => {
    const rs = await checkStaleMounts(fake({ files: { '/proc/self/mountinfo': mountinfo }, exist: ['/srv/state/nodes/n1/pool/pool'] }), ['/srv/state']);
    assert.deepEqual(rs, [{ check: 'stale mounts', status: 'ok', finding: '1 mount under /srv/state, none stale', fix: '' }]);
  });
  it('loop devices: a deleted backing file and an unmounted one under the state dir are reported, a mounted pool and an unrelated device are not', async () => {
    const deps = fake({
      files: {
        '/proc/self/mountinfo': mountinfo,
        '/sys/block/loop0/loop/backing_file': '/tmp/img (deleted)\n',
        '/sys/block/loop1/loop/backing_file': '/srv/state/nodes/n1/pool/pool.img\n',
        '/sys/block/loop2/loop/backing_file': '/srv/state/nodes/n2/pool/pool.img\n',
        '/sys/block/loop3/loop/backing_file': '/home/me/disk.img\n',
        '/sys/block/loop4/loop/backing_file': '/var/gone.img\n',
      },
      dirs: { '/sys/block': ['loop0', 'loop1', 'loop2', 'loop3', 'loop4', 'loop5', 'sda'] },
      exist: ['/srv/state/nodes/n1/pool/pool.img', '/srv/state/nodes/n2/pool/pool.img', '/home/me/disk.img'],
    });
    const rs = await checkLoopDevices(deps, ['/srv/state']);
    assert.deepEqual(rs.map(formatLine), [
      'warn  loop device /dev/loop0: backing file /tmp/img is deleted (fix: losetup -d /dev/loop0)',
      'warn  loop device /dev/loop2: left over: backs /srv/state/nodes/n2/pool/pool.img under our state dir and nothing mounts it (fix: losetup -d /dev/loop2)',
      'warn  loop device /dev/loop4: backing file /var/gone.img is deleted (fix: losetup -d /dev/loop4)',
    ]);
  });
});

describe('doctor: CSI sockets and the whole run', () => {
  it('a missing socket and one that does not answer Probe fail; a ready one is ok', async () => {
    const deps = fake({ sockets: ['/s/a.sock', '/s/b.sock'], probeFails: { '/s/b.sock': 'UNAVAILABLE: connect ECONNREFUSED' } });
    const rs = await checkSockets(deps, ['/s/a.sock', '/s/b.sock', '/s/c.sock'], '--endpoint');
    assert.deepEqual(rs.map((r) => r.status), ['ok', 'FAIL', 'FAIL']);
    assert.match(rs[2]?.finding ?? '', /missing/);
  });
  it('the state dir\'s node and controller sockets are all probed; only warnings exit 0, a FAIL exits 1; json has the same entries', async () => {
    const host: FakeHost = {
      files: { '/proc/self/mountinfo': MOUNTINFO_LINE(1, '/', 'shared:1'), '/proc/modules': 'fuse 1 0\nloop 1 0\n' },
      dirs: { '/st/nodes': ['n1'], '/st/nodes/n1/plugins': ['local.stowage.dev'], '/st/plugins': ['rbd.stowage.dev'] },
      exist: ['/k'],
      sockets: ['/st/nodes/n1/plugins/local.stowage.dev/csi.sock', '/st/plugins/rbd.stowage.dev/controller.sock'],
      commands: { modinfo: { exitCode: 1 } },
    };
    const rs = await runDoctor(fake(host), { backend: 'local', kubeletDirs: ['/k'], stateDir: '/st' });
    assert.deepEqual(rs.filter((r) => r.check.startsWith('csi socket')).map((r) => `${r.status} ${r.check}`), ['ok csi socket /st/nodes/n1/plugins/local.stowage.dev/csi.sock', 'ok csi socket /st/plugins/rbd.stowage.dev/controller.sock']);
    assert.ok(rs.some((r) => r.status === 'warn'));
    assert.equal(exitStatus(rs), 0);
    assert.ok(!rs.some((r) => r.check.startsWith('ceph')), 'a local node is not asked about Ceph');
    const failing = await runDoctor(fake({ ...host, sockets: [] }), { backend: 'local', kubeletDirs: ['/k'], stateDir: '/st' });
    assert.equal(exitStatus(failing), 1);
    const json = JSON.parse(formatResults(failing, 'json')) as CheckResult[];
    assert.deepEqual(json, failing);
    assert.deepEqual(Object.keys(json[0] ?? {}), ['check', 'status', 'finding', 'fix']);
    assert.equal(formatResults(failing, 'text').split('\n').length, failing.length + 1);
  });
});
