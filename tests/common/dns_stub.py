"""A small authoritative DNS server for tests (dnslib), on 127.0.0.1:PORT over UDP and TCP.

    python3 dns_stub.py PORT ZONE_JSON

ZONE_JSON maps lower-case fully qualified names to record sets, e.g.
{"example.test.": {"MX": [[10, "mx1.example.test."]]}, "mx1.example.test.": {"A": ["127.0.25.2"]}}
A name listed under "_servfail" answers SERVFAIL; a name not in the zone answers NXDOMAIN; a
name in the zone without records of the asked type answers NOERROR with no answer (NODATA).
Each query is printed to stdout as "NAME TYPE" (flushed), so tests can count lookups.
"""
import json
import sys
import time

from dnslib import AAAA, MX, QTYPE, RCODE, RR, A
from dnslib.server import BaseResolver, DNSLogger, DNSServer


class Zone(BaseResolver):
    def __init__(self, zone):
        self.zone = zone

    def resolve(self, request, handler):
        reply = request.reply()
        q = request.q
        name = str(q.qname).lower()
        qtype = QTYPE[q.qtype]
        print(f"{name} {qtype}", flush=True)
        if name in self.zone.get("_servfail", []):
            reply.header.rcode = RCODE.SERVFAIL
            return reply
        if name not in self.zone:
            reply.header.rcode = RCODE.NXDOMAIN
            return reply
        for v in self.zone[name].get(qtype, []):
            if qtype == "MX":
                rdata = MX(v[1], v[0])
            elif qtype == "A":
                rdata = A(v)
            elif qtype == "AAAA":
                rdata = AAAA(v)
            else:
                continue
            reply.add_answer(RR(q.qname, q.qtype, rdata=rdata, ttl=5))
        return reply


def main():
    port = int(sys.argv[1])
    zone = json.loads(sys.argv[2])
    quiet = DNSLogger(log="-request,-reply,-truncated,-error,-recv,-send,-data", prefix=False)
    servers = [
        DNSServer(Zone(zone), port=port, address="127.0.0.1", logger=quiet),
        DNSServer(Zone(zone), port=port, address="127.0.0.1", tcp=True, logger=quiet),
    ]
    for s in servers:
        s.start_thread()
    print("ready", flush=True)
    while True:
        time.sleep(1)


if __name__ == "__main__":
    main()
