#!/bin/bash
# Submission rate over SMTP, one run: smtp-source into mailfs's listener, then into a private
# Postfix smtpd on the same machine, both relaying what they accept to smtp-sink.
# Usage: bash benches/listener-vs-postfix.sh [MESSAGES] [SESSIONS] [BYTES]
set -euo pipefail
N=${1:-10000}; S=${2:-8}; L=${3:-2000}
MAILFS=${MAILFS:-$(cd "$(dirname "$0")/.." && pwd)/target/release/mailfs}
B=$(mktemp -d /tmp/mailfs-listen-bench.XXXXXX); chmod 755 "$B"
SINK_PORT=39025; MF_PORT=39026; PF_PORT=39027
now() { date +%s.%N; }
smtp-sink -u postfix -c 127.0.0.1:$SINK_PORT 1000 >/dev/null 2>&1 & SINK=$!
trap 'kill $SINK 2>/dev/null || true; postfix -c "$B/postfix/conf" stop >/dev/null 2>&1 || true' EXIT

"$MAILFS" serve "$B/spool" -o listen=127.0.0.1:$MF_PORT,server=127.0.0.1,port=$SINK_PORT,ratelimit_time=0,domlimit_time=0,conn_limit=4 2>/dev/null & MF=$!
for _ in $(seq 50); do (echo > /dev/tcp/127.0.0.1/$MF_PORT) 2>/dev/null && break; sleep 0.2; done
t0=$(now); timeout 600 smtp-source -s "$S" -m "$N" -l "$L" -f a@example.org -t b@example.net 127.0.0.1:$MF_PORT; t1=$(now)
echo "mailfs listener: $N x $L bytes, $S sessions: $(echo "$t1 - $t0" | bc) s, $(echo "$N / ($t1 - $t0)" | bc) msg/s; queued: $(ls "$B/spool" | grep -c '\.eml$')"
kill $MF; wait $MF || true

P=$B/postfix; mkdir -p "$P/conf" "$P/queue" "$P/data"; chmod 755 "$P"; chown postfix "$P/data"
cat > "$P/conf/main.cf" <<EOC
compatibility_level = 3.6
queue_directory = $P/queue
data_directory = $P/data
maillog_file_prefixes = $P
maillog_file = $P/postfix.log
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
myhostname = bench.test
mydestination =
mynetworks = 127.0.0.0/8
relayhost = [127.0.0.1]:$SINK_PORT
smtp_tls_security_level = none
smtpd_tls_security_level = none
EOC
{
  echo "127.0.0.1:$PF_PORT inet n - n - - smtpd"
  for l in "pickup unix n - n 60 1 pickup" "cleanup unix n - n - 0 cleanup" "qmgr unix n - n 300 1 qmgr" \
    "rewrite unix - - n - - trivial-rewrite" "bounce unix - - n - 0 bounce" "defer unix - - n - 0 bounce" \
    "trace unix - - n - 0 bounce" "verify unix - - n - 1 verify" "flush unix n - n 1000? 0 flush" \
    "proxymap unix - - n - - proxymap" "smtp unix - - n - - smtp" "relay unix - - n - - smtp" \
    "showq unix n - n - - showq" "error unix - - n - - error" "retry unix - - n - - error" \
    "discard unix - - n - - discard" "anvil unix - - n - 1 anvil" "scache unix - - n - 1 scache" \
    "postlog unix-dgram n - n - 1 postlogd"; do echo "$l"; done
} > "$P/conf/master.cf"
postfix -c "$P/conf" start >/dev/null 2>&1
for _ in $(seq 50); do (echo > /dev/tcp/127.0.0.1/$PF_PORT) 2>/dev/null && break; sleep 0.2; done
t0=$(now); timeout 600 smtp-source -s "$S" -m "$N" -l "$L" -f a@example.org -t b@example.net 127.0.0.1:$PF_PORT; t1=$(now)
echo "postfix smtpd: $N x $L bytes, $S sessions: $(echo "$t1 - $t0" | bc) s, $(echo "$N / ($t1 - $t0)" | bc) msg/s"
rm -rf "$B"
