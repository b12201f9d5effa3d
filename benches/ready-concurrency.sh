#!/usr/bin/env bash
# Making Drafts ready through the mount: N Drafts made ready with `setfattr -n user.is_ready
# -v 1` from one writer, then N others from 4 writers at once (xargs -P 4), alternating, ROUNDS
# times in one run; prints each figure, the medians and the ratio (4 writers / 1 writer).
# The Drafts are held first (user.hold=1, not timed) so the senders leave them alone; each
# is_ready is durable when setfattr returns. Checks at the end that every message is Pending.
# OTHER_BIN=path/to/another/mailfs measures that build too, in the same run (before/after).
# The spools are all removed at the end, not after each run: on ext4 without a journal (this
# machine's disk) creating an inode walks past every inode freed in the last 5-35 s, so
# removing 4,000 files between runs would slow whichever run comes next, not what is measured.
# Usage: benches/ready-concurrency.sh [N=2000] [ROUNDS=3]   (root, fuse3, attr)
set -euo pipefail
N=${1:-2000}; ROUNDS=${2:-3}
cd "$(dirname "$0")/.."
cargo build --release -q
bins=("$PWD/target/release/mailfs")
[ -n "${OTHER_BIN:-}" ] && bins+=("$OTHER_BIN")
# Where the spool goes: BENCH_DIR, by default /var/spool/mailfs-bench (where a mail spool lives),
# not /tmp: on ext4 without a journal, creating an inode walks past every inode of its block
# group freed in the last minutes, and /tmp's group is where every test run on the machine
# creates and deletes its temp dirs. Marked top of hierarchy (chattr +T) so that each run's
# spool gets a block group of its own (see benches/sendmail-vs-postfix.sh). BENCH_DIR=/tmp
# measures the old way.
base=${BENCH_DIR:-/var/spool/mailfs-bench}
mkdir -p "$base"
[ -n "${BENCH_DIR:-}" ] || chattr +T "$base" 2>/dev/null || true
work=$(mktemp -d "$base/mailfs-ready.XXXX")
mnt=$work/mnt
mkdir -p "$mnt"
pid=
stop() {
  if [ -n "$pid" ]; then
    timeout 10 fusermount3 -u "$mnt" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    pid=
  fi
}
trap 'stop; rm -rf "$work"' EXIT
# A port nothing listens on: held messages are never attempted anyway.
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
body=$(head -c 1500 /dev/zero | tr '\0' 'x' | fold -w 76)
# Seconds to make N fresh Drafts ready with W writers, using mailfs binary BIN.
run() {
  local bin=$1 w=$2 tag=$3 spool=$work/spool.$3
  mkdir -p "$spool"; chmod 700 "$spool"
  "$bin" mount "$spool" "$mnt" -f -o "port=$port" 2>"$work/mount.$tag.log" &
  pid=$!
  for _ in $(seq 100); do mountpoint -q "$mnt" && break; sleep 0.1; done
  mountpoint -q "$mnt"
  # Drafts as a user writes them: From, To, Subject, no Date or Message-ID (is_ready adds them).
  for i in $(seq 1 "$N"); do
    printf 'From: bench@example.com\nTo: u%d@d%d.example\nSubject: bench %d\n\n%s\n' "$i" $((i % 20)) "$i" "$body" > "$spool/m$i.eml"
  done
  ( cd "$mnt" && seq 1 "$N" | sed 's/.*/m&.eml/' | timeout 300 xargs -n 200 -P 2 setfattr -n user.hold -v 1 )
  sync
  local t0 t1
  t0=$(date +%s.%N)
  ( cd "$mnt" && seq 1 "$N" | sed 's/.*/m&.eml/' | timeout 300 xargs -n 25 -P "$w" setfattr -n user.is_ready -v 1 )
  t1=$(date +%s.%N)
  stop
  local pending
  pending=$("$bin" queue "$spool" --json | python3 -c 'import json,sys; print(sum(m.get("status") == "Pending" for m in json.load(sys.stdin)))')
  [ "$pending" -eq "$N" ] || { echo "only $pending of $N Pending after $tag" >&2; exit 1; }
  python3 -c "print(f'{$t1-$t0:.3f}')"
}
median() { python3 -c "import statistics,sys; print(f'{statistics.median(map(float, sys.argv[1:])):.3f}')" "$@"; }
echo "machine: nproc=$(nproc) load=$(cut -d' ' -f1 /proc/loadavg) N=$N"
declare -A one four
for r in $(seq "$ROUNDS"); do
  for b in "${!bins[@]}"; do
    a=$(run "${bins[$b]}" 1 "r${r}b${b}w1"); c=$(run "${bins[$b]}" 4 "r${r}b${b}w4")
    echo "round $r ${bins[$b]}: 1 writer ${a}s ($(python3 -c "print(int($N/$a))") msg/s), 4 writers ${c}s ($(python3 -c "print(int($N/$c))") msg/s)"
    one[$b]="${one[$b]:-} $a"; four[$b]="${four[$b]:-} $c"
  done
done
for b in "${!bins[@]}"; do
  # shellcheck disable=SC2086
  a=$(median ${one[$b]}); c=$(median ${four[$b]})
  echo "median ${bins[$b]}: 1 writer ${a}s ($(python3 -c "print(int($N/$a))") msg/s), 4 writers ${c}s ($(python3 -c "print(int($N/$c))") msg/s), 4 writers / 1 writer: $(python3 -c "print(f'{$a/$c:.2f}')")x (load $(cut -d' ' -f1 /proc/loadavg))"
done
