#!/usr/bin/env bash
# Sending rate alone: N messages already deferred once (their first try refused), then
# `mailfs flush` into smtp-sink, timed from the flush to all Sent (no FUSE writes in the timed
# part). Usage: MAILFS_BIN=target/release/mailfs benches/send-flush.sh [N] [CONN_LIMIT]
set -euo pipefail
N=${1:-1000}; CONN=${2:-1}; bin=${MAILFS_BIN:-$PWD/target/release/mailfs}
work=$(mktemp -d); chmod 755 "$work"; mkdir -p "$work/mnt"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
closed=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
/usr/sbin/smtp-sink -u postfix -c "127.0.0.1:$port" 1000 > "$work/sink.log" 2>&1 & sink=$!
cleanup() { fusermount3 -u "$work/mnt" 2>/dev/null || true; kill $sink 2>/dev/null || true; sleep 1; rm -rf "$work"; }
trap cleanup EXIT
body=$(head -c 1500 /dev/zero | tr '\0' 'x' | fold -w 76)
"$bin" mount "$work/spool" "$work/mnt" -o "port=$closed,ratelimit_time=0,domlimit_time=0,conn_limit=$CONN,domconn_limit=$CONN,retry_time=3600,tls=none,notify=never"
for i in $(seq 1 "$N"); do
  printf 'From: bench@example.com\nTo: u%d@d%d.example\nSubject: bench %d\n\n%s\n' "$i" $((i % 20)) "$i" "$body" > "$work/mnt/m$i.eml"
done
( cd "$work/mnt" && for i in $(seq 1 "$N"); do echo "m$i.eml"; done | xargs -n 200 setfattr -n user.is_ready -v 1 )
while :; do
  t=$("$bin" queue "$work/spool" --json | grep -c '"tries": 1' || true)
  [ "$t" -ge "$N" ] && break; sleep 0.5
done
setfattr -n user.port -v "$port" "$work/mnt"
start=$(date +%s.%N)
"$bin" flush "$work/spool"
while :; do
  sent=$("$bin" queue "$work/spool" --json | grep -c '"status": "Sent"' || true)
  [ "$sent" -ge "$N" ] && break; sleep 0.1
done
end=$(date +%s.%N)
python3 -c "import sys; n=$N; d=$end-$start; print(f'messages={n} conn_limit=$CONN flush_to_all_sent={d:.2f}s rate={n/d:.0f} msg/s')"
