#!/usr/bin/env bash
# Submission with one process per message, side by side on one machine: N messages (2 KB)
# handed over one after another, each by its own process, timed from the first to the last exit:
#   1. `mailfs sendmail -i RCPT < msg` as the spool's owner (straight into the spool: the
#      message and its attributes durable, the senders told) while `mailfs serve` serves the
#      spool and relays to smtp-sink on 127.0.0.1;
#   2. Postfix's `/usr/sbin/sendmail -i RCPT < msg` (postdrop into the maildrop queue, fsynced)
#      while Postfix runs and relays to the same kind of sink.
# Each exits 0 only once its message is durable. The submission loop is the same shell loop
# for both. Usage: [ROUNDS=4] [BENCH_DIR=DIR] [MAILFS_BIN=PATH] benches/sendmail-vs-postfix.sh [N]   (root; apt-get install postfix; uses the
# system Postfix instance and reconfigures it for loopback relaying, as MACHINE-NOTES describes)
set -euo pipefail
N=${1:-2000}
cd "$(dirname "$0")/.."
# MAILFS_BIN: another build of mailfs to measure (say, an older one) instead of this tree's.
if [ -z "${MAILFS_BIN:-}" ]; then cargo build --release -q; fi
bin=${MAILFS_BIN:-$PWD/target/release/mailfs}
# Where mailfs's spool goes: BENCH_DIR, by default /var/spool/mailfs-bench, beside Postfix's
# queue (/var/spool/postfix) rather than in /tmp. On ext4 without a journal, creating an inode
# walks past every inode of its block group freed in the last minutes (`recently_deleted`);
# /tmp's group is where every test run on the machine creates and deletes its temp dirs, and
# this script's own clean-up deletes 2,000 files there. A submission creates two inodes, so in
# /tmp its cost followed whatever had been deleted lately (0.2-0.6 ms per inode measured on
# the shared build machine, 0.02 ms elsewhere). The directory is marked as a top of
# hierarchy (chattr +T) so that each run's spool is put in a block group of its own by ext4's
# allocator, away from the previous run's deleted files. BENCH_DIR=/tmp measures the old way.
base=${BENCH_DIR:-/var/spool/mailfs-bench}
mkdir -p "$base"
[ -n "${BENCH_DIR:-}" ] || chattr +T "$base" 2>/dev/null || true
work=$(mktemp -d "$base/mailfs-bench.XXXX"); chmod 755 "$work"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
/usr/sbin/smtp-sink -u postfix -c "127.0.0.1:$port" 1000 > "$work/sink.log" 2>&1 &
sink_pid=$!
serve=""
cleanup() {
  [ -n "$serve" ] && kill "$serve" 2>/dev/null && wait "$serve" 2>/dev/null || true
  kill "$sink_pid" 2>/dev/null || true
  postfix stop >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
now() { date +%s.%N; }

body=$(head -c 1800 /dev/zero | tr '\0' 'x' | fold -w 76)
printf 'From: bench@example.com\nTo: u@d1.example\nSubject: submit\n\n%s\n' "$body" > "$work/msg"

# The two take turns, ROUNDS times N/ROUNDS submissions each (default 4), so that both see the
# same machine when other work comes and goes; the figures are the sums.
ROUNDS=${ROUNDS:-4}
per=$((N / ROUNDS))
postfix stop >/dev/null 2>&1 || true
postconf -e "inet_interfaces = loopback-only" "inet_protocols = ipv4" \
  "relayhost = [127.0.0.1]:$port" "default_transport = smtp" "relay_transport = relay" \
  "maillog_file = /var/log/postfix.log" "smtp_tls_security_level = none" \
  "mydestination = localhost" "myhostname = mailnode.test" "header_checks ="
m=0; p=0; queued=0; rounds=""
for r in $(seq 1 "$ROUNDS"); do
  # ---- 1. mailfs sendmail, with mailfs serve running (a new spool each round)
  spool=$work/spool$r
  "$bin" serve "$spool" -o "port=$port,ratelimit_time=0,domlimit_time=0" 2> "$work/serve.log" &
  serve=$!
  sleep 0.5
  export MAILFS_SPOOL=$spool
  t0=$(now)
  for i in $(seq 1 "$per"); do
    "$bin" sendmail -i "u$i@d$((i % 20)).example" < "$work/msg"
  done
  t1=$(now)
  unset MAILFS_SPOOL
  queued=$((queued + $(ls "$spool" | grep -c '\.eml$')))
  kill "$serve"; wait "$serve" 2>/dev/null || true; serve=""

  # ---- 2. Postfix's sendmail, with Postfix running (an empty queue each round)
  postsuper -d ALL >/dev/null 2>&1 || true
  postfix start >/dev/null 2>&1
  sleep 1
  t2=$(now)
  for i in $(seq 1 "$per"); do
    /usr/sbin/sendmail -i -f bench@example.com "u$i@d$((i % 20)).example" < "$work/msg"
  done
  t3=$(now)
  postfix stop >/dev/null 2>&1 || true
  m=$(python3 -c "print($m + $t1 - $t0)"); p=$(python3 -c "print($p + $t3 - $t2)")
  rounds="$rounds $(python3 -c "print(f'{($t3 - $t2) / ($t1 - $t0):.2f}')")"
done

python3 - <<PY
n = $per * $ROUNDS
m, p = $m, $p
print(f"machine: nproc={$(nproc)} load={open('/proc/loadavg').read().split()[0]}")
print(f"submissions={n} (2 KB), one process each, sequential, in $ROUNDS alternating rounds; mailfs spool in $base")
print(f"mailfs sendmail  : {m:7.2f} s  {n/m:7.0f} msg/s  ({$queued} messages in the spools)")
print(f"Postfix sendmail : {p:7.2f} s  {n/p:7.0f} msg/s")
print(f"mailfs / Postfix = {p/m:.2f}x   (per round:$rounds)")
PY
