#!/usr/bin/env bash
# Sending throughput: N ready messages (2 KB, 20 recipient domains, limits off) from a mailfs
# mount into Postfix's smtp-sink on 127.0.0.1, timed from "all ready" to "all Sent" (every
# Sent state fsynced). Usage: benches/send-sink.sh [N] [CONN_LIMIT]   (needs root, fuse3, postfix)
set -euo pipefail
N=${1:-2000}; CONN=${2:-4}
cd "$(dirname "$0")/.."
# MAILFS_BIN compares another build (e.g. an older release) on the same workload.
if [ -z "${MAILFS_BIN:-}" ]; then cargo build --release -q; fi
bin=${MAILFS_BIN:-$PWD/target/release/mailfs}
work=$(mktemp -d); chmod 755 "$work"; mkdir -p "$work/mnt"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
/usr/sbin/smtp-sink -u postfix -c "127.0.0.1:$port" 1000 > "$work/sink.log" 2>&1 & sink=$!
cleanup() { fusermount3 -u "$work/mnt" 2>/dev/null || true; kill $sink 2>/dev/null || true; sleep 1; rm -rf "$work"; }
trap cleanup EXIT
sleep 0.3
body=$(head -c 1500 /dev/zero | tr '\0' 'x' | fold -w 76)
for i in $(seq 1 "$N"); do
  printf 'From: bench@example.com\nTo: u%d@d%d.example\nSubject: bench %d\n\n%s\n' "$i" $((i % 20)) "$i" "$body" > "$work/in.$i"
done
# Draft copies go in while the senders are idle; is_ready is what is timed.
"$bin" mount "$work/spool" "$work/mnt" -o "port=$port,ratelimit_time=0,domlimit_time=0,conn_limit=$CONN,domconn_limit=$CONN"
for i in $(seq 1 "$N"); do cp "$work/in.$i" "$work/mnt/m$i.eml"; done
start=$(date +%s.%N)
( cd "$work/mnt" && for i in $(seq 1 "$N"); do echo "m$i.eml"; done | xargs -n 200 setfattr -n user.is_ready -v 1 )
ready=$(date +%s.%N)
while :; do
  sent=$("$bin" queue "$work/spool" --json | grep -c '"status": "Sent"' || true)
  [ "$sent" -ge "$N" ] && break
  sleep 0.2
done
end=$(date +%s.%N)
python3 - "$N" "$start" "$ready" "$end" "$CONN" <<'PY'
import sys
n, s, r, e, c = int(sys.argv[1]), *map(float, sys.argv[2:5]), sys.argv[5]
print(f"messages={n} conn_limit={c} make_ready={r-s:.2f}s ready_to_all_sent={e-s:.2f}s rate={n/(e-s):.0f} msg/s")
PY
