#!/usr/bin/env python3
"""e2e: a client address:port whose taken-over flow acmegw aborted (idle RST) is not poisoned.
The conntrack entry of the aborted flow lingers in CLOSE with the TAKEN connmark, and the
kernel resyncs it to a new handshake on the same tuple instead of replacing it (our RST was
in the reply direction). The ruleset clears acmegw's connmark bits on such a client SYN
(docs/rules.md), so a new connection from the same port to a production page must reach
production (before the fix: black-holed on IPv4, refused on IPv6) and a challenge after it
must again be taken over. The session idle timeout is set to 3 s (default 30 s).

Run: python3 tests/e2e/test_takeover_reuse.py --acmegw build/gateway/acmegw   (root; exit 77)
"""

from __future__ import annotations

import threading
import time
from typing import Optional

from lab import CLIENT, PROD, SMALL_PAGE, Checks, Lab, parse_args, require
from takeover_util import Client, challenge, keyauth_response, start

PORT = 40123  # the client's fixed source port, reused across the three connections
IDLE_TIMEOUT_MS = 3000  # --session-idle-timeout-ms
IDLE_WAIT = 20  # > IDLE_TIMEOUT_MS with room for a loaded machine


def reuse_after_abort(lab: Lab, fam: int) -> Optional[str]:
    """Challenge, idle until acmegw's RST, then production and a challenge from the same port."""
    c = Client(lab.ns.client, PROD[fam], source=CLIENT[fam], source_port=PORT,
               timeout=IDLE_WAIT)
    token = f"reuse{fam}"
    want = keyauth_response(token)
    c.send(challenge(token))
    if (got := c.read_exact(len(want))) != want:
        return f"challenge answer {got!r} != {want!r}"
    t0 = time.monotonic()
    try:
        extra = c.s.recv(1)
        return f"expected acmegw's idle RST, got {extra!r}"
    except ConnectionResetError:
        pass
    c.s.close()
    entry = lab.sh(lab.ns.fw, "conntrack", "-L", "-f", "ipv6" if fam == 6 else "ipv4", "-p",
                   "tcp", "--sport", str(PORT), check=False).strip()
    print(f"INFO IPv{fam}: RST after {time.monotonic() - t0:.1f} s idle; entry: {entry}",
          flush=True)

    c = Client(lab.ns.client, PROD[fam], source=CLIENT[fam], source_port=PORT, timeout=5)
    c.send(b"GET / HTTP/1.1\r\nHost: example.test\r\n\r\n")
    head, body = c.read_response()
    c.close_and_wait_eof()
    if not head.startswith(b"HTTP/1.1 200") or body != SMALL_PAGE:
        return f"production page from the reused port wrong: {head[:60]!r}"

    c = Client(lab.ns.client, PROD[fam], source=CLIENT[fam], source_port=PORT, timeout=5)
    token = f"again{fam}"
    want = keyauth_response(token)
    c.send(challenge(token))
    got = c.read_exact(len(want))
    c.close_and_wait_eof()
    if got != want:
        return f"challenge from the reused port not taken over: {got[:80]!r}"
    return None


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    require("iptables", "ip6tables", "nginx", "conntrack")
    checks = Checks()
    with Lab("takeover-reuse", prefix="agwX", keep=args.keep) as lab:
        start(lab, args.acmegw, "--session-idle-timeout-ms", str(IDLE_TIMEOUT_MS))
        results: dict[int, Optional[str]] = {}

        def run(fam: int) -> None:
            try:
                results[fam] = reuse_after_abort(lab, fam)
            except Exception as e:  # reported as the check's failure
                results[fam] = f"{type(e).__name__}: {e}"

        threads = [threading.Thread(target=run, args=(fam,)) for fam in (4, 6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for fam in (4, 6):
            checks.check(f"IPv{fam}: the port of an idle-aborted takeover reaches production, "
                         "then a challenge on it is taken over again", results[fam] is None,
                         results[fam] or "")
    checks.exit()


if __name__ == "__main__":
    main()
