#!/usr/bin/env bash
# `cp` of one SIZE_MB file into the mount (a new message) vs `cp` of it into a directory on the
# spool's own disk, each followed by `sync`, alternating (mount, direct, ...) ROUNDS times in
# one run; prints each pair, the medians and the ratio mount/direct. The source is read from
# the page cache (read once before), so both sides time the copy and the write-out.
# OTHER_BIN=path/to/another/mailfs adds that build's mount to each round (before/after).
# A third reference, `cat SRC > DST` on the spool's disk, shows what a copy through user space
# costs there (cp between two files of one ext4 uses copy_file_range: one copy in the kernel,
# where anything that passes the bytes through a process, as FUSE must, makes two); the ratio
# quoted is always mount/direct. NO_BUILD=1 skips the cargo build.
# Usage: benches/cp-write.sh [SIZE_MB=512] [ROUNDS=5]   (root, fuse3)
set -euo pipefail
SIZE_MB=${1:-512}; ROUNDS=${2:-5}
cd "$(dirname "$0")/.."
[ -n "${NO_BUILD:-}" ] || cargo build --release -q
bins=("$PWD/target/release/mailfs")
[ -n "${OTHER_BIN:-}" ] && bins+=("$OTHER_BIN")
work=$(mktemp -d /tmp/mailfs-cp.XXXX)
mnt=$work/mnt; spool=$work/spool; direct=$work/direct
mkdir -p "$mnt" "$spool" "$direct"; chmod 700 "$spool"
pid=
stop() {
  if [ -n "$pid" ]; then
    timeout 10 fusermount3 -u "$mnt" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    pid=
  fi
}
trap 'stop; rm -rf "$work"' EXIT
{ printf 'From: a@example.com\nTo: b@example.org\nSubject: big\n\n'
  head -c $((SIZE_MB * 1024 * 1024 / 4 * 3)) /dev/urandom | base64 -w 76; } > "$work/src.eml"
size=$(stat -c %s "$work/src.eml")
cat "$work/src.eml" > /dev/null
# MB/s of `cp SRC DST && sync` (or, with a third argument `cat`, `cat SRC > DST && sync`).
rate() { python3 - "$size" "$@" <<'PY'
import subprocess, sys, time
size = int(sys.argv[1])
t = time.perf_counter()
if len(sys.argv) > 4:
    with open(sys.argv[3], "wb") as out:
        subprocess.run(["timeout", "300", "cat", sys.argv[2]], stdout=out, check=True)
else:
    subprocess.run(["timeout", "300", "cp", sys.argv[2], sys.argv[3]], check=True)
subprocess.run(["sync"], check=True)
print(int(size / (time.perf_counter() - t) / 1e6))
PY
}
median() { python3 -c "import statistics,sys; print(int(statistics.median(map(int, sys.argv[1:]))))" "$@"; }
echo "machine: nproc=$(nproc) load=$(cut -d' ' -f1 /proc/loadavg) file=$size B"
declare -A res
# One round: each mount (in turn) and the direct copy, in an order that rotates from round to
# round, so whatever the first copy of a round pays (page reclaim after the last round's
# deletes) falls on each side alike.
one() {
  local b=$1 i=$2 a
  if [ "$b" = d ]; then
    sync
    a=$(rate "$work/src.eml" "$direct/big$i.eml")
    rm "$direct/big$i.eml"
  elif [ "$b" = c ]; then
    sync
    a=$(rate "$work/src.eml" "$direct/cat$i.eml" cat)
    cmp "$work/src.eml" "$direct/cat$i.eml"
    rm "$direct/cat$i.eml"
  else
    RUST_LOG=info "${bins[$b]}" mount "$spool" "$mnt" -f -o ratelimit_time=0 2>>"$work/mount.log" &
    pid=$!
    for _ in $(seq 100); do mountpoint -q "$mnt" && break; sleep 0.1; done
    mountpoint -q "$mnt"
    sync
    a=$(rate "$work/src.eml" "$mnt/big$i.eml")
    cmp "$work/src.eml" "$spool/big$i.eml"
    rm "$mnt/big$i.eml"
    stop
  fi
  echo "$a"
}
sides=("${!bins[@]}" d c)
for i in $(seq "$ROUNDS"); do
  line="round $i:"
  n=${#sides[@]}
  for k in $(seq 0 $((n - 1))); do
    b=${sides[$(( (k + i) % n ))]}
    a=$(one "$b" "$i")
    res[$b]="${res[$b]:-} $a"
    case $b in
      d) line="$line direct $a MB/s," ;;
      c) line="$line cat $a MB/s," ;;
      *) line="$line mount[$b] $a MB/s," ;;
    esac
  done
  echo "$line"
done
# shellcheck disable=SC2086
dm=$(median ${res[d]})
# shellcheck disable=SC2086
cm=$(median ${res[c]})
echo "median: cat > on the spool's disk $cm MB/s, $(python3 -c "print(f'{$cm/$dm:.2f}')")x direct"

for b in "${!bins[@]}"; do
  # shellcheck disable=SC2086
  m=$(median ${res[$b]})
  echo "median: mount ${bins[$b]} $m MB/s, direct $dm MB/s, ratio $(python3 -c "print(f'{$m/$dm:.2f}')")x (load $(cut -d' ' -f1 /proc/loadavg))"
done
