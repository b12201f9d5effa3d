#!/usr/bin/env bash
# Rate-limit precision: N messages to 4 domains through a mount with ratelimit_time=RATE and
# domlimit_time=DOM (conn_limit 4, domconn_limit 2), into a small SMTP server that stamps
# every MAIL FROM on arrival. Prints min / median / max of the gaps between any two sends and
# between two sends to one domain, next to the settings.
# Usage: benches/rate-precision.sh [N=200] [RATE=0.05] [DOM=0.2]   (root, fuse3, attr)
set -euo pipefail
N=${1:-200}; RATE=${2:-0.05}; DOM=${3:-0.2}
cd "$(dirname "$0")/.."
cargo build --release -q
bin=$PWD/target/release/mailfs
work=$(mktemp -d /tmp/mailfs-rate.XXXX); mkdir -p "$work/mnt"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
python3 - "$port" "$work/stamps" <<'PY' & server=$!
import socketserver, sys, time, threading
port, out = int(sys.argv[1]), sys.argv[2]
lock = threading.Lock()
class H(socketserver.StreamRequestHandler):
    def handle(self):
        w = lambda s: (self.wfile.write(s.encode() + b"\r\n"), self.wfile.flush())
        w("220 stamp ESMTP")
        mail_at = None
        while True:
            line = self.rfile.readline()
            if not line:
                return
            cmd = line.decode(errors="replace").strip()
            up = cmd.upper()
            if up.startswith(("EHLO", "HELO")):
                w("250 stamp")
            elif up.startswith("MAIL"):
                mail_at = time.monotonic(); w("250 ok")
            elif up.startswith("RCPT"):
                dom = cmd.split("@")[-1].rstrip(">").lower()
                with lock, open(out, "a") as f:
                    f.write(f"{mail_at:.6f} {dom}\n")
                w("250 ok")
            elif up == "DATA":
                w("354 go")
                while self.rfile.readline() not in (b".\r\n", b".\n", b""):
                    pass
                w("250 queued")
            elif up == "RSET":
                w("250 ok")
            elif up == "QUIT":
                w("221 bye"); return
            else:
                w("250 ok")
class S(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True
S(("127.0.0.1", port), H).serve_forever()
PY
cleanup() { fusermount3 -u "$work/mnt" 2>/dev/null || true; kill $server 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
sleep 0.5
"$bin" mount "$work/spool" "$work/mnt" -o "port=$port,ratelimit_time=$RATE,domlimit_time=$DOM,conn_limit=4,domconn_limit=2"
for i in $(seq 1 "$N"); do
  printf 'From: a@example.com\nTo: u%d@d%d.example\nSubject: r %d\n\nx\n' "$i" $((i % 4)) "$i" > "$work/mnt/r$i.eml"
done
(cd "$work/mnt" && ls r*.eml | xargs -n 100 setfattr -n user.is_ready -v 1)
while [ "$(wc -l < "$work/stamps" 2>/dev/null || echo 0)" -lt "$N" ]; do sleep 0.1; done
python3 - "$work/stamps" "$RATE" "$DOM" <<'PY'
import sys, statistics
rows = sorted((float(t), d) for t, d in (l.split() for l in open(sys.argv[1])))
rate, dom = float(sys.argv[2]), float(sys.argv[3])
def show(name, gaps, setting):
    gaps = [g * 1000 for g in gaps]
    print(f"{name:<22} setting {setting*1000:6.1f} ms   min {min(gaps):7.1f}  median {statistics.median(gaps):7.1f}  max {max(gaps):7.1f} ms  ({len(gaps)} gaps, {sum(g < setting*1000 for g in gaps)} below the setting)")
show("any two sends", [b[0] - a[0] for a, b in zip(rows, rows[1:])], rate)
per = {}
for t, d in rows:
    per.setdefault(d, []).append(t)
show("two sends, one domain", [b - a for ts in per.values() for a, b in zip(ts, ts[1:])], dom)
PY
