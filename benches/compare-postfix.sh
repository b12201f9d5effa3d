#!/usr/bin/env bash
# Sending, side by side on one machine: N ready messages (2 KB, 20 recipient domains, all
# limits off, 8 connections) into Postfix's smtp-sink on 127.0.0.1, timed from "all ready" to
# "all delivered":
#   1. mailfs: N messages queued ready with `mailfs sendmail` while nothing serves the spool,
#      then `mailfs serve` is started and timed until every message is Sent (each Sent state
#      fsynced before its log entry is written; the clock stops at the last log entry).
#   2. Postfix: the same N messages injected with Postfix's sendmail and parked in its hold
#      queue (a header_checks HOLD rule, so pickup and cleanup are done untimed), relayhost =
#      the same sink, destination concurrency 8; timed from `postsuper -H ALL; postqueue -f`
#      until its queue is empty: both figures time delivering messages already queued.
#   3. smtp-source blasting the sink directly with 8 sessions: the ceiling of sink + loopback.
# Usage: [MAILFS_BIN=path] benches/compare-postfix.sh [N]      (root; apt-get install postfix; uses the system
# Postfix instance and reconfigures it for loopback relaying, as MACHINE-NOTES describes)
set -euo pipefail
N=${1:-10000}
CONN=8
cd "$(dirname "$0")/.."
cargo build --release -q
bin=${MAILFS_BIN:-$PWD/target/release/mailfs}   # MAILFS_BIN: another build, for an A/B
# Where the spool goes: BENCH_DIR, by default /var/spool/mailfs-bench (beside Postfix's queue (/var/spool/postfix)),
# not /tmp: on ext4 without a journal, creating an inode walks past every inode of its block
# group freed in the last minutes, and /tmp's group is where every test run on the machine
# creates and deletes its temp dirs. Marked top of hierarchy (chattr +T) so that each run's
# spool gets a block group of its own (see benches/sendmail-vs-postfix.sh). BENCH_DIR=/tmp
# measures the old way.
base=${BENCH_DIR:-/var/spool/mailfs-bench}
mkdir -p "$base"
[ -n "${BENCH_DIR:-}" ] || chattr +T "$base" 2>/dev/null || true
work=$(mktemp -d "$base/mailfs-bench.XXXX"); chmod 755 "$work"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
sink_pid=""
start_sink() {
  [ -n "$sink_pid" ] && kill "$sink_pid" 2>/dev/null && wait "$sink_pid" 2>/dev/null || true
  /usr/sbin/smtp-sink -u postfix -c "127.0.0.1:$port" 1000 > "$work/sink.$1.log" 2>&1 &
  sink_pid=$!
  sleep 0.3
}
# smtp-sink -c prints running counters "sess=N quit=N mesg=N" separated by CRs.
sink_count() { tr '\r' '\n' < "$work/sink.$1.log" | sed -n 's/.*mesg=\([0-9]*\).*/\1/p' | tail -1; }
cleanup() {
  [ -n "$sink_pid" ] && kill "$sink_pid" 2>/dev/null || true
  postfix stop >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
now() { date +%s.%N; }

body=$(head -c 1800 /dev/zero | tr '\0' 'x' | fold -w 76)
mkdir -p "$work/in"
for i in $(seq 1 "$N"); do
  printf 'From: bench@example.com\nTo: u%d@d%d.example\nSubject: bench %d\nMessage-ID: <b%d@example.com>\n\n%s\n' \
    "$i" $((i % 20)) "$i" "$i" "$body" > "$work/in/$i"
done

# ---- 1. mailfs
start_sink mailfs
spool=$work/spool
for i in $(seq 1 "$N"); do
  MAILFS_SPOOL=$spool "$bin" sendmail -i "u$i@d$((i % 20)).example" < "$work/in/$i"
done
t0=$(now)
"$bin" serve "$spool" -o "port=$port,ratelimit_time=0,domlimit_time=0,conn_limit=$CONN,domconn_limit=$CONN" \
  2> "$work/serve.log" & serve=$!
# Two log entries per message (the attempt, then the outcome, written after Sent is durable).
# `ls -f` (unsorted, with . and ..): sorting 6,000 names 20 times a second took ~3 % of the
# machine from the run it polls; Postfix's side polls with find, which does not sort either.
while [ "$(ls -f "$spool/log" 2>/dev/null | wc -l)" -lt $((2 * N + 2)) ]; do sleep 0.05; done
t1=$(now)
rss_serve=$(awk '/VmHWM/ {print $2}' /proc/$serve/status)
kill $serve; wait $serve 2>/dev/null || true
sent=$("$bin" queue "$spool" --json | python3 -c 'import json,sys; print(sum(m["status"] == "Sent" for m in json.load(sys.stdin)))')
mailfs_s=$(python3 -c "print($t1 - $t0)")
sleep 0.5; mailfs_sink=$(sink_count mailfs)

# ---- 2. Postfix
start_sink postfix
postfix stop >/dev/null 2>&1 || true
postconf -e "inet_interfaces = loopback-only" "inet_protocols = ipv4" \
  "relayhost = [127.0.0.1]:$port" "default_transport = smtp" "relay_transport = relay" \
  "maillog_file = /var/log/postfix.log" "smtp_tls_security_level = none" \
  "mydestination = localhost" "myhostname = mailnode.test" \
  "default_destination_concurrency_limit = $CONN" "smtp_destination_concurrency_limit = $CONN" \
  "relay_destination_concurrency_limit = $CONN" "default_process_limit = 100"
postsuper -d ALL >/dev/null 2>&1 || true
# The same work as mailfs's figure: deliver messages already in the queue. Pickup and cleanup
# (which rewrite every message) run first, untimed: a header_checks rule parks each message in
# the hold queue; the clock starts at `postsuper -H ALL; postqueue -f`.
echo '/^Subject: bench/ HOLD' > "$work/hold_checks"
postconf -e "header_checks = regexp:$work/hold_checks"
for i in $(seq 1 "$N"); do
  /usr/sbin/sendmail -i -f bench@example.com "u$i@d$((i % 20)).example" < "$work/in/$i" 2>/dev/null
done
postfix start >/dev/null 2>&1
held() { find /var/spool/postfix/hold -type f 2>/dev/null | wc -l; }
while [ "$(held)" -lt "$N" ]; do sleep 0.1; done
queued=$(held)
postconf -e "header_checks ="
postfix reload >/dev/null 2>&1
sleep 1
q() { find /var/spool/postfix/maildrop /var/spool/postfix/incoming /var/spool/postfix/active \
        /var/spool/postfix/deferred /var/spool/postfix/hold -type f 2>/dev/null | wc -l; }
t2=$(now)
postsuper -H ALL >/dev/null 2>&1
postqueue -f
# No pause before polling: a message is always in one of these directories until delivered
# (a fixed 0.2 s pause here once added 10-13 % to Postfix's time).
while [ "$(q)" -gt 0 ]; do sleep 0.05; done
t3=$(now)
postfix stop >/dev/null 2>&1
postfix_s=$(python3 -c "print($t3 - $t2)")
sleep 0.5; postfix_sink=$(sink_count postfix)

# ---- 3. smtp-source, the ceiling
start_sink source
t4=$(now)
/usr/sbin/smtp-source -s $CONN -m "$N" -l 2048 -f bench@example.com -t u@d1.example "127.0.0.1:$port"
t5=$(now)
source_s=$(python3 -c "print($t5 - $t4)")
sleep 0.5; source_sink=$(sink_count source)

python3 - <<PY
n = $N
m, p, s = $mailfs_s, $postfix_s, $source_s
print(f"machine: nproc={$(nproc)} mem={$(awk '/MemTotal/ {print int($2/1024)}' /proc/meminfo)} MiB")
print(f"messages={n} (2 KB, 20 domains), 8 connections, limits off")
print(f"mailfs serve : {m:7.2f} s  {n/m:7.0f} msg/s  (Sent: $sent, sink got $mailfs_sink, peak RSS ${rss_serve} kB)")
print(f"Postfix      : {p:7.2f} s  {n/p:7.0f} msg/s  (held then released $queued, sink got $postfix_sink)")
print(f"smtp-source  : {s:7.2f} s  {n/s:7.0f} msg/s  (sink got $source_sink)")
print(f"mailfs / Postfix = {p/m:.2f}x   mailfs / ceiling = {s/m:.2f} (ceiling is {m/s:.2f}x faster)")
PY
