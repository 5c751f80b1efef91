// The staging of a filesystem on a device that local images and rbd images share
// (src/driver/backends/device-fs.ts), against a recording command runner and a recording mounter:
// which commands run, in which order, and how the filesystem is mounted, for blank, formatted and
// mismatched devices staged read-write and read-only. A read-only stage must never write to the
// device: no mkfs, no repairing fsck, no growth.
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import pino from 'pino';
import { status } from '@grpc/grpc-js';
import { CsiError } from '../../src/csi/errors.js';
import { type DeviceFsHost, stageFilesystem } from '../../src/driver/backends/device-fs.js';
import type { PinnedPath } from '../../src/driver/mount/beneath.js';
import { RecordingRunner, type Answer } from '../support/recording-runner.js';

const log = pino({ level: 'silent' });
const STAGING = '/var/lib/kubelet/plugins/kubernetes.io/csi/stowage/x/globalmount';

interface Row {
  name: string;
  /** What blkid finds on the device (null: blank). */
  found: string | null;
  fsType: string;
  readonly: boolean;
  /** The mount flags (default noatime). */
  flags?: string[];
  /** Answers for commands other than blkid (by command name). */
  answers?: Record<string, Answer>;
  /** The commands, after blkid, with DEV for the device. */
  commands: string[];
  /** The mount's options, or undefined when nothing may be mounted. */
  mounted?: string[];
  /** The status the stage fails with, and a fragment of its message. */
  refused?: [status, string];
}

const rows: Row[] = [
  {
    name: 'read-only stage of a blank device: refused, never formatted',
    found: null,
    fsType: 'ext4',
    readonly: true,
    commands: [],
    refused: [status.FAILED_PRECONDITION, 'read-only stage cannot format'],
  },
  {
    name: 'read-only stage of a formatted ext4 device: mounted ro, no fsck, no growth',
    found: 'ext4',
    fsType: 'ext4',
    readonly: true,
    commands: [],
    mounted: ['ro', 'noatime'],
  },
  {
    name: 'read-only stage of a formatted xfs device: mounted ro, nouuid, not grown',
    found: 'xfs',
    fsType: 'xfs',
    readonly: true,
    commands: [],
    mounted: ['ro', 'nouuid', 'noatime'],
  },
  {
    name: 'a read-write access mode with the mount flag ro is a read-only stage: a blank device is refused',
    found: null,
    fsType: 'xfs',
    readonly: false,
    flags: ['ro'],
    commands: [],
    refused: [status.FAILED_PRECONDITION, 'read-only stage cannot format'],
  },
  {
    name: 'a read-write access mode with the mount flag ro: a formatted xfs device is mounted without fsck or growth',
    found: 'xfs',
    fsType: 'xfs',
    readonly: false,
    flags: ['ro'],
    commands: [],
    mounted: ['nouuid', 'ro'],
  },
  {
    name: 'read-write stage of a blank device: formatted, then mounted',
    found: null,
    fsType: 'ext4',
    readonly: false,
    commands: ['mkfs.ext4 -F -q -m 0 -E lazy_itable_init=1,lazy_journal_init=1,nodiscard DEV'],
    mounted: ['noatime'],
  },
  {
    name: 'read-write stage of a blank device for xfs: formatted, mounted nouuid, grown to the device',
    found: null,
    fsType: 'xfs',
    readonly: false,
    commands: ['mkfs.xfs -f -q -K DEV', `xfs_growfs -d ${STAGING}`],
    mounted: ['nouuid', 'noatime'],
  },
  {
    name: 'read-write stage of a damaged ext4 device: checked with e2fsck -p, refused when it cannot be fixed',
    found: 'ext4',
    fsType: 'ext4',
    readonly: false,
    answers: { e2fsck: new Error('e2fsck exited 4: UNEXPECTED INCONSISTENCY') },
    commands: ['e2fsck -p DEV'],
    refused: [status.UNKNOWN, 'UNEXPECTED INCONSISTENCY'],
  },
  {
    name: 'read-write stage of a device holding another filesystem: never reformatted',
    found: 'xfs',
    fsType: 'ext4',
    readonly: false,
    commands: [],
    refused: [status.FAILED_PRECONDITION, 'holds a xfs filesystem, not ext4; refusing to reformat it'],
  },
  {
    name: 'read-only stage of a device holding another filesystem: refused the same way',
    found: 'xfs',
    fsType: 'ext4',
    readonly: true,
    commands: [],
    refused: [status.FAILED_PRECONDITION, 'refusing to reformat it'],
  },
];

describe('stageFilesystem (local images and rbd images)', () => {
  // A readable stand-in for the block device: probing reads it before asking blkid.
  let dir = '';
  let device = '';
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'stowage-device-fs-'));
    device = join(dir, 'disk');
    await writeFile(device, Buffer.alloc(64 * 1024));
  });
  after(() => rm(dir, { recursive: true, force: true }));

  for (const row of rows) {
    it(row.name, async () => {
      const runner = new RecordingRunner((cmd) => {
        if (cmd === 'blkid') return row.found === null ? { exitCode: 2 } : { stdout: `DEVNAME=${device}\nTYPE=${row.found}\n` };
        return row.answers?.[cmd];
      });
      const mounts: { source: string; target: string; fsType: string; options: string[] }[] = [];
      const host: DeviceFsHost = {
        runner,
        mounter: {
          mount: async (source, target, fsType, options) => {
            mounts.push({ source, target: typeof target === 'string' ? target : target.path, fsType, options });
          },
          isMountPoint: async () => true,
        },
        paths: {
          withPinned: <T>(path: string, use: (p: PinnedPath) => Promise<T>) => use({ path, fd: '/proc/self/fd/-1', viaParent: path }),
        },
      };
      const stage = stageFilesystem(
        host,
        { volumeId: 'vol-1', device, stagingPath: STAGING, fsType: row.fsType, mountFlags: row.flags ?? ['noatime'], readonly: row.readonly },
        log,
      );
      if (row.refused) {
        const [code, fragment] = row.refused;
        await assert.rejects(stage, (e: unknown) => {
          if (code !== status.UNKNOWN) {
            assert.ok(e instanceof CsiError, `a CSI status, got ${String(e)}`);
            assert.equal(e.code, code);
          }
          assert.match((e as Error).message, new RegExp(fragment.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')));
          return true;
        });
      } else {
        await stage;
      }
      assert.deepEqual(
        runner.lines(),
        [`blkid -p -o export ${device}`, ...row.commands.map((c) => c.replace('DEV', device))],
        'the commands run, in order',
      );
      if (row.mounted) assert.deepEqual(mounts, [{ source: device, target: STAGING, fsType: row.fsType, options: row.mounted }]);
      else assert.deepEqual(mounts, [], 'nothing mounted');
    });
  }
});
