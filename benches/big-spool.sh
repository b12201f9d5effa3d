#!/usr/bin/env bash
# A spool of COUNT messages (written as .eml files straight into the spool; one `mailfs queue`
# reads it all back as a check): mount time, `ls -l` of the mount vs `ls -l` of the spool
# directory (alternating, ROUNDS each, medians), `getfattr -d` over SAMPLE messages through
# the mount vs over SAMPLE plain files on the spool's disk holding the same attributes
# (alternating, ROUNDS, median files/s), the cost of one attribute request through the mount
# (the floor under getfattr: it makes ~22 per message), and the mount's peak RSS (VmHWM)
# after each step.
# Usage: benches/big-spool.sh [COUNT=100000] [ROUNDS=3] [SAMPLE=COUNT]   (root, fuse3, attr)
set -euo pipefail
COUNT=${1:-100000}; ROUNDS=${2:-3}; SAMPLE=${3:-${1:-100000}}
cd "$(dirname "$0")/.."
cargo build --release -q
bin=$PWD/target/release/mailfs
work=$(mktemp -d /tmp/mailfs-big.XXXX)
mnt=$work/mnt; spool=$work/spool
mkdir -p "$mnt" "$spool"
pid=
cleanup() {
  timeout 20 fusermount3 -u "$mnt" 2>/dev/null || true
  [ -n "$pid" ] && wait "$pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
now() { date +%s.%N; }
secs() { python3 -c "print(f'{$2 - $1:.3f}')"; }
median() { python3 -c "import statistics,sys; print(f'{statistics.median(map(float, sys.argv[1:])):.3f}')" "$@"; }
echo "machine: nproc=$(nproc) load=$(cut -d' ' -f1 /proc/loadavg)"

t0=$(now)
python3 - "$spool" "$COUNT" <<'PY'
import os, sys
spool, n = sys.argv[1], int(sys.argv[2])
for i in range(n):
    with open(os.path.join(spool, f"m{i:06d}.eml"), "w") as f:
        f.write(f"From: a@example.com\nTo: u{i}@d{i % 20}.example\nSubject: m {i}\n\nbody {i}\n")
PY
t1=$(now)
echo "wrote $COUNT messages in $(secs "$t0" "$t1") s"
t0=$(now); n=$(timeout 300 "$bin" queue "$spool" | grep -c '\.eml' || true); t1=$(now)
echo "mailfs queue lists $n messages in $(secs "$t0" "$t1") s"

t0=$(now)
"$bin" mount "$spool" "$mnt" -f -o ratelimit_time=0 2>"$work/mount.log" &
pid=$!
for _ in $(seq 1000); do mountpoint -q "$mnt" && break; sleep 0.01; done
t1=$(now)
mountpoint -q "$mnt"
echo "mount: $(secs "$t0" "$t1") s (process start to mountpoint visible)"
hwm() { awk '/VmHWM/ {print $2}' "/proc/$pid/status"; }
echo "peak RSS after mount: $(hwm) kB"

m=(); r=()
for i in $(seq "$ROUNDS"); do
  t0=$(now); timeout 300 ls -l "$mnt" > /dev/null; t1=$(now)
  t2=$(now); timeout 300 ls -l "$spool" > /dev/null; t3=$(now)
  a=$(secs "$t0" "$t1"); b=$(secs "$t2" "$t3")
  echo "ls -l round $i: mount $a s, spool directory $b s"
  m+=("$a"); r+=("$b")
done
ma=$(median "${m[@]}"); ra=$(median "${r[@]}")
echo "ls -l median: mount $ma s, spool directory $ra s, ratio $(python3 -c "print(f'{$ma/$ra:.1f}')")x; peak RSS $(hwm) kB"

# The names first (a `head` in a pipe would stop `ls` with SIGPIPE).
python3 -c "import sys; [print(f'm{i:06d}.eml') for i in range(min(int(sys.argv[1]), int(sys.argv[2])))]" "$SAMPLE" "$COUNT" > "$work/sample"
# The reference: SAMPLE plain files on the spool's disk, each with the attributes the first
# message shows through the mount.
ref=$work/ref; mkdir -p "$ref"
getfattr -d --absolute-names "$mnt/m000000.eml" > "$work/attrs"
python3 - "$ref" "$work/sample" "$work/attrs" <<'PY'
import os, sys
ref, sample, dump = sys.argv[1:4]
attrs = []
for line in open(dump):
    if line.startswith("user.") and "=" in line:
        k, v = line.rstrip("\n").split("=", 1)
        attrs.append((k, v.strip('"').encode()))
for name in open(sample):
    p = os.path.join(ref, name.strip())
    open(p, "w").write("x\n")
    for k, v in attrs:
        os.setxattr(p, k, v)
print(f"reference: {len(attrs)} attributes on each plain file")
PY
g=(); gr=()
for i in $(seq "$ROUNDS"); do
  t0=$(now)
  (cd "$mnt" && timeout 900 xargs -a "$work/sample" -n 5000 getfattr -d > /dev/null)
  t1=$(now)
  (cd "$ref" && timeout 900 xargs -a "$work/sample" -n 5000 getfattr -d > /dev/null)
  t2=$(now)
  s=$(secs "$t0" "$t1"); r=$(secs "$t1" "$t2")
  echo "getfattr -d round $i: $SAMPLE messages in $s s ($(python3 -c "print(int($SAMPLE/$s))") files/s); plain files $r s ($(python3 -c "print(int($SAMPLE/$r))") files/s)"
  g+=("$s"); gr+=("$r")
done
gs=$(median "${g[@]}"); grs=$(median "${gr[@]}")
echo "getfattr -d median: mount $(python3 -c "print(int($SAMPLE/$gs))") files/s, plain files $(python3 -c "print(int($SAMPLE/$grs))") files/s; peak RSS $(hwm) kB"
python3 - "$mnt/m000001.eml" <<'PY'
import os, sys, time
fd = os.open(sys.argv[1], os.O_RDONLY)
n = 20000
t = time.time()
for _ in range(n):
    os.getxattr(fd, "user.status")
d = time.time() - t
os.close(fd)
print(f"one attribute request through the mount: {d / n * 1e6:.1f} us ({int(n / d)}/s); getfattr -d makes ~22 per message")
PY
echo "peak RSS at the end: $(hwm) kB; load $(cut -d' ' -f1 /proc/loadavg)"
