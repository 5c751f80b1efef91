#!/usr/bin/env bash
# Installs everything Stowage needs on a fresh Debian 12 machine (run as root), then builds.
# Safe to run again: each step is skipped when its result is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
# kubectl: the API compatibility tests drive the real one; Debian's kubernetes-client where none is on PATH.
# chromium: the web console's browser tests drive it (playwright-core with Debian's executable).
for tool in mkfs.btrfs:btrfs-progs mkfs.xfs:xfsprogs mkfs.ext4:e2fsprogs losetup:util-linux blkid:util-linux kubectl:kubernetes-client chromium:chromium; do
  command -v "${tool%%:*}" >/dev/null 2>&1 || need+=("${tool##*:}")
done
if [ ${#need[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${need[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

# npm ci when node_modules is missing or older than the lockfile; it also builds (prepare script).
if [ ! -x node_modules/.bin/node ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "setup: npm ci (installs Node 24 into node_modules/.bin and builds)"
  npm ci --no-audit --no-fund --loglevel=error
else
  PATH="$PWD/node_modules/.bin:$PATH" npm run --silent build
fi

# ── Ceph: `stowage ceph-dev` (a one-node test cluster) and the Ceph backends' tests ───────────
# Debian 12's Pacific packages, only when missing; without recommends (ceph-mgr's would pull in
# the dashboard and machine-learning stacks).
ceph_need=()
for tool in ceph-mon:ceph-mon ceph-mgr:ceph-mgr ceph-osd:ceph-osd ceph-mds:ceph-mds ceph:ceph-common \
            rbd-fuse:rbd-fuse ceph-fuse:ceph-fuse; do
  command -v "${tool%%:*}" >/dev/null 2>&1 || ceph_need+=("${tool##*:}")
done
if [ ${#ceph_need[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${ceph_need[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${ceph_need[@]}" >/dev/null
fi
