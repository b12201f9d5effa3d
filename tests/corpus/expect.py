#!/usr/bin/env python3
"""What Python's `email` package decodes from a message, as files the tests compare with the
mount byte for byte: OUT/<part_id> holds a leaf part's decoded bytes (text as UTF-8),
OUT/<part_id>.parts/ the parts of an attached message, OUT/subject the decoded Subject.
Usage: expect.py MESSAGE OUT"""
import os
import sys
from email import policy
from email.parser import BytesParser


def leaves(part, pid, out):
    if part.get_content_type() == "message/rfc822":
        inner = part.get_payload(0)
        sub = os.path.join(out, pid + ".parts")
        os.makedirs(sub, exist_ok=True)
        dump(inner, sub)
        return
    if part.is_multipart():
        for i, child in enumerate(part.iter_parts(), 1):
            leaves(child, f"{pid}.{i}" if pid else str(i), out)
        return
    pid = pid or "1"
    if part.get_content_maintype() == "text":
        data = part.get_content().encode("utf-8")
    else:
        data = part.get_payload(decode=True) or b""
    with open(os.path.join(out, pid), "wb") as f:
        f.write(data)


def dump(msg, out):
    with open(os.path.join(out, "subject"), "w") as f:
        f.write(str(msg.get("subject", "")))
    leaves(msg, "", out)


with open(sys.argv[1], "rb") as f:
    msg = BytesParser(policy=policy.default).parse(f)
os.makedirs(sys.argv[2], exist_ok=True)
dump(msg, sys.argv[2])
