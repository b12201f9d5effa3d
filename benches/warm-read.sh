#!/usr/bin/env bash
# Warm and cold sequential reads of one SIZE_MB .eml: through the mount vs the same spool file
# read directly, in an order that rotates each round, ROUNDS times in one run,
# so load from other processes hits all sides alike. "mount" is a root mount, whose reads pass
# through to the spool file (FUSE passthrough); "plain" is a second mount of the same spool
# with MAILFS_NO_PASSTHROUGH=1, where every read goes through mailfs (what a non-root mount
# does). Prints each round, then the medians and the ratios to direct. Cold rounds drop the
# page cache first (echo 3 > drop_caches).
# Usage: benches/warm-read.sh [SIZE_MB=512] [ROUNDS=7]   (root, fuse3)
set -euo pipefail
SIZE_MB=${1:-512}; ROUNDS=${2:-7}
cd "$(dirname "$0")/.."
cargo build --release -q
bin=$PWD/target/release/mailfs
work=$(mktemp -d /tmp/mailfs-wread.XXXX)
mnt=$work/mnt; plain=$work/plain; spool=$work/spool
mkdir -p "$mnt" "$plain" "$spool"
pid=; pid2=
cleanup() {
  timeout 10 fusermount3 -u "$mnt" 2>/dev/null || true
  timeout 10 fusermount3 -u "$plain" 2>/dev/null || true
  [ -n "$pid" ] && wait "$pid" 2>/dev/null || true
  [ -n "$pid2" ] && wait "$pid2" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
{ printf 'From: a@example.com\nTo: b@example.org\nSubject: big\n\n'
  head -c $((SIZE_MB * 1024 * 1024 / 4 * 3)) /dev/urandom | base64 -w 76; } > "$spool/big.eml"
size=$(stat -c %s "$spool/big.eml")
RUST_LOG=info "$bin" mount "$spool" "$mnt" -f -o ratelimit_time=0 2>"$work/mount.log" &
pid=$!
MAILFS_NO_PASSTHROUGH=1 "$bin" mount "$spool" "$plain" -f -o ratelimit_time=0 2>"$work/plain.log" &
pid2=$!
for _ in $(seq 100); do mountpoint -q "$mnt" && mountpoint -q "$plain" && break; sleep 0.1; done
mountpoint -q "$mnt"; mountpoint -q "$plain"
grep -q "pass through" "$work/mount.log" && echo "mount: reads pass through" || echo "mount: no passthrough (plain reads)"
sleep 2.5   # a stamp younger than 2 s is never trusted to keep pages
# MB/s of one dd pass.
rate() { python3 - "$size" "$@" <<'PY'
import subprocess, sys, time
size = int(sys.argv[1])
t = time.perf_counter()
subprocess.run(["timeout", "120", "dd", "if=" + sys.argv[2], "of=/dev/null", "bs=1M", "status=none"], check=True)
print(int(size / (time.perf_counter() - t) / 1e6))
PY
}
median() { python3 -c "import statistics,sys; print(int(statistics.median(map(int, sys.argv[1:]))))" "$@"; }
echo "machine: nproc=$(nproc) load=$(cut -d' ' -f1 /proc/loadavg) file=$size B"
ratio() { python3 -c "print(f'{$1/$2:.2f}')"; }
for mode in warm cold; do
  m=(); p=(); d=()
  [ "$mode" = warm ] && { rate "$mnt/big.eml" >/dev/null; rate "$plain/big.eml" >/dev/null; rate "$spool/big.eml" >/dev/null; }
  for i in $(seq "$ROUNDS"); do
    # The order rotates from round to round: whatever the first read after a drop pays
    # falls on each side alike.
    for k in 0 1 2; do
      [ "$mode" = cold ] && { sync; echo 3 > /proc/sys/vm/drop_caches; }
      case $(( (k + i) % 3 )) in
        0) a=$(rate "$mnt/big.eml") ;;
        1) c=$(rate "$plain/big.eml") ;;
        2) b=$(rate "$spool/big.eml") ;;
      esac
    done
    echo "$mode round $i: mount $a MB/s, plain mount $c MB/s, direct $b MB/s"
    m+=("$a"); p+=("$c"); d+=("$b")
  done
  ma=$(median "${m[@]}"); pa=$(median "${p[@]}"); da=$(median "${d[@]}")
  echo "$mode median: mount $ma MB/s ($(ratio "$ma" "$da")x direct), plain mount $pa MB/s ($(ratio "$pa" "$da")x), direct $da MB/s (load $(cut -d' ' -f1 /proc/loadavg))"
done
