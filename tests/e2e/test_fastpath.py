#!/usr/bin/env python3
"""Production flows through acmegw stay byte-for-byte untouched and leave userspace after their
first data segment (IPv4 and IPv6, routed production).

For acmegw with --no-prefilter (two queues) and then with the prefilter: header-name case,
Connection: close, a 256 KiB POST, pipelined requests (with a late challenge path on the same
connection), an SSH banner on port 80, a FIN right behind the request, and a request sent one
byte per segment reach the byte recorder in prod exactly, the client gets production's bytes
exactly, production and nginx's log see the client's address, and the NFQUEUE rule counters in
fw show one queued packet per flow without the prefilter (what is sent before the verdict at
most) and none with it, matching acmegw's own counter. Finally SIGTERM removes the rules.
--baseline runs the byte checks over plain forwarding without acmegw (proves the harness).
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from fastpath import run_fastpath  # noqa: E402

if __name__ == "__main__":
    run_fastpath(__doc__, dnat=False)
