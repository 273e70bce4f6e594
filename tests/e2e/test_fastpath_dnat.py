#!/usr/bin/env python3
"""DNAT'd production: the client connects to PUBLIC addresses that fw DNATs to prod's private
addresses; acmegw protects the public addresses (its queue rule sees pre-DNAT destinations).
The same checks as test_fastpath.py, IPv4 and IPv6, with and without the prefilter: exact bytes
both ways (header case, Connection: close, 256 KiB POST, pipelined, SSH banner, one byte per
segment), the client's own address at production and in nginx's log, one queued packet per
flow without the prefilter and none with it, rules removed at SIGTERM.
--baseline runs the byte checks over plain DNAT forwarding without acmegw.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from fastpath import run_fastpath  # noqa: E402

if __name__ == "__main__":
    run_fastpath(__doc__, dnat=True)
