#!/usr/bin/env python3
"""e2e: `kill -9` of acmegw during a challenge burst leaves production traffic unaffected:
wrk (new connection per request) against production through fw sees no error and no non-2xx
while challenge flows are being taken over and acmegw dies; afterwards new production and
challenge connections still work (the rules stay; --queue-bypass passes what nobody reads,
so challenges now reach production, which answers 404 — ACME servers retry)."""

from __future__ import annotations

import signal
import threading
import time

from lab import PROD, SMALL_PAGE, Checks, Lab, parse_args, require, url
from takeover_util import Client, challenge, keyauth_response, start


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    require("iptables", "ip6tables", "nginx", "wrk")
    checks = Checks()
    with Lab("takeover-kill", prefix="agwT", keep=args.keep) as lab:
        nginx, proc = start(lab, args.acmegw)
        answered = [0, 0]  # answered by acmegw; not (in flight at the kill, or after it)
        stop = threading.Event()

        def burst() -> None:
            i = 0
            while not stop.is_set():
                i += 1
                try:
                    c = Client(lab.ns.client, PROD.v4 if i % 2 else PROD.v6, timeout=3)
                    c.send(challenge(f"burst{i}"))
                    want = keyauth_response(f"burst{i}")
                    got = c.read_exact(len(want))
                    c.close_and_wait_eof()
                    answered[0 if got == want else 1] += 1
                except OSError:
                    answered[1] += 1  # in flight when acmegw died: lost, as designed

        wrk_result: dict = {}
        t_wrk = threading.Thread(target=lambda: wrk_result.update(lab.wrk(
            url(PROD.v4, "/"), duration=6, connections=8, headers=["Connection: close"])))
        t_burst = [threading.Thread(target=burst) for _ in range(2)]
        t_wrk.start()
        for t in t_burst:
            t.start()
        time.sleep(2.5)
        before = answered[0]
        lab.stop(proc, signal.SIGKILL)
        t_wrk.join()
        stop.set()
        for t in t_burst:
            t.join()
        checks.check("challenges were being taken over when acmegw was killed", before > 0,
                     f"{before} answered before the kill")
        checks.check("wrk through fw: requests made", wrk_result.get("requests", 0) > 100,
                     str(wrk_result.get("raw", ""))[-500:])
        checks.check("wrk through fw: zero socket errors and zero non-2xx across the kill",
                     wrk_result.get("errors", 1) == 0 and wrk_result.get("non2xx", 1) == 0,
                     str(wrk_result.get("raw", ""))[-500:])
        c = Client(lab.ns.client, PROD.v6)
        c.send(b"GET / HTTP/1.1\r\nHost: example.test\r\n\r\n")
        head, body = c.read_response()
        c.close_and_wait_eof()
        checks.check("a new production connection works after the kill",
                     head.startswith(b"HTTP/1.1 200") and body == SMALL_PAGE, repr(head[:60]))
        c = Client(lab.ns.client, PROD.v4)
        c.send(challenge("after_kill"))
        head, _ = c.read_response()
        c.close_and_wait_eof()
        checks.check("a new challenge connection fails open to production after the kill",
                     head.startswith(b"HTTP/1.1 404"), repr(head[:60]))
        print(f"INFO {answered[0]} challenges answered by acmegw, {answered[1]} not (at or after "
              f"the kill); wrk "
              f"{wrk_result.get('requests')} requests", flush=True)
    checks.exit()


if __name__ == "__main__":
    main()
