#!/usr/bin/env bash
# The mount, side by side with the raw spool directory:
#   - sequential read of a SIZE_MB .eml through the mount vs straight from the spool;
#   - decoded read of an ATT_MB base64 attachment through .parts/ vs `base64 -d` of the bytes;
#   - a spool of COUNT messages: time to mount, `ls -l` and `getfattr -d` over all of them
#     (ops/s), against `ls -l` of the spool directory itself;
#   - peak RSS (VmHWM) of the mount process after each.
# Usage: benches/mount-bench.sh [SIZE_MB=1024] [ATT_MB=100] [COUNT=100000]   (root, fuse3, attr)
set -euo pipefail
SIZE_MB=${1:-1024}; ATT_MB=${2:-100}; COUNT=${3:-100000}
cd "$(dirname "$0")/.."
cargo build --release -q
bin=$PWD/target/release/mailfs
work=$(mktemp -d /tmp/mailfs-mbench.XXXX)
mnt=$work/mnt; spool=$work/spool
mkdir -p "$mnt" "$spool"
cleanup() { fusermount3 -u "$mnt" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
now() { date +%s.%N; }
secs() { python3 -c "print(f'{$2 - $1:.3f}')"; }
hwm() { awk '/VmHWM/ {print $2}' "/proc/$(pgrep -f "mailfs mount $spool" | head -1)/status"; }
mount_it() { "$bin" mount "$spool" "$mnt" -o ratelimit_time=0; }

echo "machine: nproc=$(nproc) mem=$(awk '/MemTotal/ {print int($2/1024)}' /proc/meminfo) MiB"

# ---- one big message: a text body and a base64 attachment making it SIZE_MB
att_bytes=$(( (SIZE_MB * 1024 * 1024 / 4 * 3) - 4096 ))
head -c "$att_bytes" /dev/urandom > "$work/att.bin"
{ printf 'From: a@example.com\nTo: b@example.org\nSubject: big\nMIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=B\n\n--B\nContent-Type: text/plain\n\nsee attachment\n--B\nContent-Type: application/octet-stream\nContent-Transfer-Encoding: base64\nContent-Disposition: attachment; filename=big.bin\n\n'
  base64 -w 76 "$work/att.bin"; printf -- '--B--\n'; } > "$spool/big.eml"
rm "$work/att.bin"
mount_it
size=$(stat -c %s "$spool/big.eml")
cat "$spool/big.eml" > /dev/null   # both sides read from the page cache
t0=$(now); dd if="$spool/big.eml" of=/dev/null bs=1M status=none; t1=$(now)
t2=$(now); dd if="$mnt/big.eml" of=/dev/null bs=1M status=none; t3=$(now)
raw=$(secs "$t0" "$t1"); fuse=$(secs "$t2" "$t3")
echo "read ${size} B .eml: spool ${raw} s ($(python3 -c "print(int($size/$raw/1e6))") MB/s), mount ${fuse} s ($(python3 -c "print(int($size/$fuse/1e6))") MB/s), ratio $(python3 -c "print(f'{$fuse/$raw:.2f}')")x; peak RSS $(hwm) kB"
t4=$(now); stat "$mnt/big.eml.parts/big.bin" > /dev/null; t5=$(now)
echo "first stat of big.eml.parts/big.bin (parse + size pass): $(secs "$t4" "$t5") s; peak RSS $(hwm) kB"
fusermount3 -u "$mnt"; rm "$spool/big.eml"

# ---- a base64 attachment of ATT_MB, decoded
head -c $((ATT_MB * 1024 * 1024)) /dev/urandom > "$work/a.bin"
base64 -w 76 "$work/a.bin" > "$work/a.b64"
{ printf 'From: a@example.com\nSubject: att\nMIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=B\n\n--B\nContent-Type: text/plain\n\nx\n--B\nContent-Type: application/octet-stream\nContent-Transfer-Encoding: base64\nContent-Disposition: attachment; filename=a.bin\n\n'
  cat "$work/a.b64"; printf -- '--B--\n'; } > "$spool/att.eml"
mount_it
stat "$mnt/att.eml.parts/a.bin" > /dev/null    # parse once, as any first access does
cat "$work/a.b64" "$spool/att.eml" > /dev/null
t0=$(now); base64 -d < "$work/a.b64" > /dev/null; t1=$(now)
t2=$(now); cat "$mnt/att.eml.parts/a.bin" > /dev/null; t3=$(now)
cmp "$mnt/att.eml.parts/a.bin" "$work/a.bin"
b=$(secs "$t0" "$t1"); f=$(secs "$t2" "$t3")
echo "decode ${ATT_MB} MiB attachment: base64 -d ${b} s, mount .parts ${f} s, ratio $(python3 -c "print(f'{$f/$b:.2f}')")x; peak RSS $(hwm) kB"
fusermount3 -u "$mnt"; rm -f "$spool/att.eml" "$work/a.bin" "$work/a.b64"

# ---- COUNT messages
python3 - "$spool" "$COUNT" <<'PY'
import os, sys
spool, n = sys.argv[1], int(sys.argv[2])
for i in range(n):
    with open(os.path.join(spool, f"m{i:06d}.eml"), "w") as f:
        f.write(f"From: a@example.com\nTo: u{i}@d{i % 20}.example\nSubject: m {i}\n\nbody {i}\n")
PY
t0=$(now); mount_it; t1=$(now)
echo "mount a spool of $COUNT messages: $(secs "$t0" "$t1") s; peak RSS $(hwm) kB"
t0=$(now); ls -l "$spool" > /dev/null; t1=$(now)
t2=$(now); ls -l "$mnt" > /dev/null; t3=$(now)
r=$(secs "$t0" "$t1"); f=$(secs "$t2" "$t3")
echo "ls -l: spool ${r} s ($(python3 -c "print(int($COUNT/$r))") files/s), mount ${f} s ($(python3 -c "print(int($COUNT/$f))") messages/s, plus as many .parts dirs); peak RSS $(hwm) kB"
t0=$(now); (cd "$mnt" && find . -maxdepth 1 -name '*.eml' -print0 | xargs -0 -n 5000 getfattr -d > /dev/null); t1=$(now)
g=$(secs "$t0" "$t1")
echo "getfattr -d over $COUNT messages: ${g} s ($(python3 -c "print(int($COUNT/$g))") messages/s); peak RSS $(hwm) kB"
