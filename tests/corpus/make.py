#!/usr/bin/env python3
"""Writes the MIME test corpus. Most messages are built with Python's `email` package (an
implementation independent of mail-parser and mail-builder); the broken ones by hand.
The output is committed; rerun only to change the corpus: python3 tests/corpus/make.py"""
import os
from email.message import EmailMessage
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.mime.application import MIMEApplication
from email.mime.message import MIMEMessage
from email import policy
from email.header import Header

HERE = os.path.dirname(os.path.abspath(__file__))
PDF = bytes(range(256)) * 40 + b"%PDF-1.4 end"
PNG = b"\x89PNG\r\n\x1a\n" + bytes((i * 7) % 256 for i in range(3000))


def write(name, msg):
    data = msg if isinstance(msg, bytes) else msg.as_bytes(policy=policy.SMTP)
    with open(os.path.join(HERE, name), "wb") as f:
        f.write(data)


def base(subject="corpus"):
    m = EmailMessage()
    m["From"] = "Alice <alice@example.com>"
    m["To"] = "bob@example.org"
    m["Subject"] = subject
    m["Message-ID"] = "<corpus@example.com>"
    m["Date"] = "Mon, 23 Nov 2026 10:00:00 +0000"
    return m


m = base("plain")
m.set_content("Hello Bob,\nthis is plain text.\n")
write("plain.eml", m)

m = base("alternative")
m.set_content("Plain version: caf\u00e9 \u2014 na\u00efve\n")
m.add_alternative("<p>HTML version: caf\u00e9 \u2014 na\u00efve</p>\n", subtype="html")
write("alternative.eml", m)

m = base("related")
m.set_content("See the logo.\n")
m.add_alternative('<p>See <img src="cid:logo@x"></p>\n', subtype="html")
html = m.get_payload()[1]
html.add_related(PNG, "image", "png", cid="<logo@x>", filename="logo.png")
write("related.eml", m)

m = base("mixed")
m.set_content("Two attachments.\n")
m.add_attachment(PDF, maintype="application", subtype="pdf", filename="Q3 report.pdf")
m.add_attachment("col1,col2\n1,2\n", subtype="csv", filename="data.csv")
write("mixed.eml", m)

inner = base("inner message")
inner.set_content("Forwarded body.\n")
inner.add_attachment(b"inner attachment bytes\x00\x01", maintype="application",
                     subtype="octet-stream", filename="inner.bin")
m = base("nested")
m.set_content("See the forwarded message.\n")
m.add_attachment(inner, filename="fwd.eml")
write("nested.eml", m)

m = base("latin1")
m.set_content("Gr\u00fc\u00dfe aus K\u00f6ln, \u00e0 bient\u00f4t.\n", charset="iso-8859-1", cte="quoted-printable")
write("latin1.eml", m)

m = base("sjis")
m.set_content("\u3053\u3093\u306b\u3061\u306f\u3001\u4e16\u754c\u3002\n", charset="shift_jis", cte="base64")
write("sjis.eml", m)

m = base("encoded names")
m.set_content("Encoded file names.\n")
m.add_attachment(b"2231 bytes", maintype="application", subtype="octet-stream",
                 filename=("utf-8", "", "r\u00e9sum\u00e9 \u00e9t\u00e9.txt"))
a = MIMEApplication(b"2047 bytes", "octet-stream")
a.add_header("Content-Disposition", "attachment",
             filename=Header("\u65e5\u672c\u8a9e.pdf", "utf-8").encode())

m.attach(a)
write("encoded-names.eml", m)

m = base("same names")
m.set_content("Two notes.\n")
m.add_attachment(b"first notes\n", maintype="text", subtype="plain", filename="notes.txt")
m.add_attachment(b"second notes\n", maintype="text", subtype="plain", filename="notes.txt")
write("same-names.eml", m)

# Hostile names: path traversal, a slash, a NUL (RFC 2231 percent-encoded), control
# characters, a dot file, and a 300-byte name.
long = "L" * 296 + ".pdf"
parts = [
    ("../../etc/passwd", b"traversal"),
    ("dir/inner.txt", b"slash"),
    (".hidden", b"dot"),
    (long, b"long"),
]
lines = [
    b"From: alice@example.com",
    b"To: bob@example.org",
    b"Subject: hostile names",
    b"Message-ID: <hostile@example.com>",
    b"MIME-Version: 1.0",
    b'Content-Type: multipart/mixed; boundary="HB"',
    b"",
    b"--HB",
    b"Content-Type: text/plain",
    b"",
    b"Hostile names follow.",
]
for name, body in parts:
    lines += [b"--HB", b"Content-Type: application/octet-stream",
              b'Content-Disposition: attachment; filename="' + name.encode() + b'"', b"", body]
lines += [b"--HB", b"Content-Type: application/octet-stream",
          b"Content-Disposition: attachment; filename*=utf-8''nul%00byte%0A%07bell.txt", b"",
          b"nul", b"--HB--", b""]
write("hostile-names.eml", b"\r\n".join(lines))

# A multipart cut off in the middle of its second part, no closing boundary.
write("truncated.eml", b"\r\n".join([
    b"From: alice@example.com",
    b"Subject: truncated",
    b'Content-Type: multipart/mixed; boundary="TB"',
    b"",
    b"--TB",
    b"Content-Type: text/plain",
    b"",
    b"first part",
    b"--TB",
    b"Content-Type: application/octet-stream",
    b"Content-Transfer-Encoding: base64",
    b'Content-Disposition: attachment; filename="cut.bin"',
    b"",
    b"aGVsbG8gd29y",
]))

# Not a message at all.
write("garbage.eml", bytes((i * 37 + 11) % 256 for i in range(700)).replace(b":", b";"))
