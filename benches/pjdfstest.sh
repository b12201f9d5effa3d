#!/usr/bin/env bash
# POSIX conformance of the node's root with pjdfstest (issue 12): open, unlink, rename,
# truncate, ftruncate, chmod and utimensat, run by `prove` on a fresh mount.
#
# pjdfstest is not packaged in Debian. Get its source once (it is not part of this repository):
#   git clone https://github.com/pjd/pjdfstest /tmp/pjd
# This script builds it if needed (gcc, with glibc's HAVE_* written to config.h, so autoconf is
# not needed). Then, as root:
#   benches/pjdfstest.sh /tmp/pjd            # per-directory results and the pass rate
# Measured on 2026-11-23 with pjdfstest 85a8aea: see README ("POSIX operations").
#
# What to expect: the node holds only regular files, so every pjdfstest step that makes a
# directory, FIFO, socket, device or link (mkdir, mkfifo, mknod -t c/b/p, link, symlink) is
# refused by design (EPERM), and the checks that build on them fail; files made in the root
# are scratch files (pjdfstest's names do not end in .eml). README states the pass rate.
set -euo pipefail
PJD=${1:?usage: $0 PJDFSTEST_DIR [TEST_DIR...]}
shift
DIRS=${*:-open unlink rename truncate ftruncate chmod utimensat}
BIN=${MAILFS_BIN:-$(cd "$(dirname "$0")/.." && pwd)/target/release/mailfs}
if [ ! -x "$PJD/pjdfstest" ]; then
  {
    echo '#define _GNU_SOURCE 1'
    for d in FCHMODAT FCHOWNAT FSTATAT LINKAT MKDIRAT MKFIFOAT MKNODAT OPENAT POSIX_FALLOCATE \
      RENAMEAT SYMLINKAT SYS_SYSMACROS_H UNLINKAT UTIMENSAT STRUCT_STAT_ST_ATIM \
      STRUCT_STAT_ST_CTIM STRUCT_STAT_ST_MTIM; do
      echo "#define HAVE_$d 1"
    done
  } >"$PJD/config.h"
  gcc -O2 -o "$PJD/pjdfstest" "$PJD/pjdfstest.c"
fi
WORK=$(mktemp -d)
MNT=$WORK/mnt
mkdir -p "$MNT"
cleanup() {
  timeout 10 fusermount3 -u "$MNT" 2>/dev/null || timeout 10 umount -l "$MNT" 2>/dev/null || true
  [ -n "${PID:-}" ] && kill "$PID" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT
"$BIN" mount "$WORK/spool" "$MNT" -f -o allow_other >"$WORK/mount.log" 2>&1 &
PID=$!
for _ in $(seq 100); do mountpoint -q "$MNT" && break; sleep 0.1; done
mountpoint -q "$MNT"
cd "$MNT"
total=0
failed=0
for d in $DIRS; do
  # Each .t prints TAP ("ok N" / "not ok N"); counted per assertion, as prove does.
  t=0
  f=0
  for file in "$PJD/tests/$d"/*.t; do
    res=$(timeout 120 bash "$file" 2>/dev/null || true)
    ft=$(grep -cE '^(not )?ok' <<<"$res" || true)
    ff=$(grep -cE '^not ok' <<<"$res" || true)
    t=$((t + ft))
    f=$((f + ff))
  done
  echo "$d: $((t - f))/$t passed"
  total=$((total + t))
  failed=$((failed + f))
done
echo "TOTAL: $((total - failed))/$total passed ($(( (total - failed) * 100 / (total > 0 ? total : 1) ))%)"
