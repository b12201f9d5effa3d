#!/usr/bin/env bash
# The main job on a fresh machine: build mailfs, start Postfix's smtp-sink on 127.0.0.1:2525,
# mount a spool, copy a message in, set its envelope, make it ready, watch it go Sent.
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive
if ! command -v fusermount3 >/dev/null || ! command -v setfattr >/dev/null || [ ! -x /usr/sbin/smtp-sink ]; then
  echo "postfix postfix/main_mailer_type select Local only" | debconf-set-selections
  echo "postfix postfix/mailname string mailnode.test" | debconf-set-selections
  apt-get update -qq && apt-get install -y -qq fuse3 attr postfix
fi
cargo build --release
bin=$PWD/target/release/mailfs
work=$(mktemp -d); chmod 755 "$work"; mkdir -p "$work/mnt" "$work/sink"; chown postfix "$work/sink"
/usr/sbin/smtp-sink -u postfix -d "$work/sink/%M." -c 127.0.0.1:2525 100 & sink=$!
trap 'fusermount3 -u "$work/mnt" 2>/dev/null || true; kill $sink 2>/dev/null || true' EXIT
sleep 0.5
"$bin" mount "$work/spool" "$work/mnt" -o port=2525,ratelimit_time=0,domlimit_time=0
cd "$work/mnt"
# Compose a message by parts: a body, an attachment, headers.
touch report.eml                                   # a template: Message-ID, Date, MIME-Version
echo 'Numbers attached.' > report.eml.parts/Body.txt
printf 'region,q3\nnorth,120\nsouth,95\n' > "$work/q3.csv"
cp "$work/q3.csv" report.eml.parts/
setfattr -n user.header.from -v 'Reports <reports@example.com>' report.eml.parts
setfattr -n user.header.to -v 'boss@example.org' report.eml.parts
setfattr -n user.header.subject -v 'Q3 report — final' report.eml.parts
ls -l report.eml.parts
# The envelope: the From header's address and To/Cc/Bcc by default; add a recipient.
setfattr -n user.env_to -v 'boss@example.org, audit@example.net' report.eml
timeout 10 getfattr -d report.eml
setfattr -n user.is_ready -v 1 report.eml
for _ in $(seq 50); do [ "$(getfattr --only-values -n user.status report.eml)" = Sent ] && break; sleep 0.1; done
timeout 10 getfattr -d report.eml
echo "--- what the peer received:"; cat "$work"/sink/*
cd /
