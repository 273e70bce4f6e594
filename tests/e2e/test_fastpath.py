#!/usr/bin/env python3
"""Production flows through acmegw stay byte-for-byte untouched and leave userspace after their
first data segment (IPv4 and IPv6, routed production).

For acmegw with --no-prefilter and then with the prefilter: header-name case, Connection: close,
a 256 KiB POST, pipelined requests (with a late challenge path on the same connection), an SSH
banner on port 80, and a request sent one byte per segment reach the byte recorder in prod
exactly, the client gets production's bytes exactly, production sees the client's address,
nginx logs the client's address, and the NFQUEUE rule counters in fw show exactly one queued
packet per flow without the prefilter and none with it. Finally SIGTERM removes the rules.
--baseline runs the byte checks over plain forwarding without acmegw (proves the harness).
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from fastpath import run_fastpath  # noqa: E402

if __name__ == "__main__":
    run_fastpath(__doc__, dnat=False)
