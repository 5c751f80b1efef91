// The few /proc/self/mountinfo fields doctor needs, with the optional fields the driver's parser
// drops: `shared:N` there is how the kernel says a mount propagates (Bidirectional needs it).
export interface MountLine {
  mountPoint: string;
  fsType: string;
  source: string;
  /** The propagation tags: "shared:1", "master:2", "propagate_from:3", "unbindable". */
  tags: string[];
}

const unescapeOctal = (s: string): string => s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(Number.parseInt(o, 8)));

export function parseMountLines(text: string): MountLine[] {
  return text.split('\n').flatMap((line) => {
    const f = line.split(' ');
    const sep = f.indexOf('-', 6);
    if (sep < 0 || f[4] === undefined) return [];
    return [{ mountPoint: unescapeOctal(f[4]), tags: f.slice(6, sep), fsType: f[sep + 1] ?? '', source: unescapeOctal(f[sep + 2] ?? '') }];
  });
}

export function isUnder(path: string, dir: string): boolean {
  return path === dir || path.startsWith(dir.endsWith('/') ? dir : `${dir}/`);
}

/** The mount `path` lies on: the last-mounted of the longest mount points above it. */
export function mountOf(mounts: MountLine[], path: string): MountLine | undefined {
  let best: MountLine | undefined;
  for (const m of mounts) {
    if (isUnder(path, m.mountPoint) && (best === undefined || m.mountPoint.length >= best.mountPoint.length)) best = m;
  }
  return best;
}
