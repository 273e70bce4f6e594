#!/usr/bin/env python3
"""acmegw fails open: production never depends on the process.

1. `kill -9` of acmegw (--no-prefilter, so every new flow's first data segment is queued) while
   wrk opens a new connection per request to nginx through it: zero socket errors, zero non-2xx.
2. With acmegw dead and its rules still installed, new connections (v4, v6) still work: the
   NFQUEUE rule keeps matching and --queue-bypass passes the packets.
3. A restart re-installs the rules idempotently (identical ruleset) and queues again.
4. A full queue (--queue-maxlen 1, a flood of new connections, and acmegw stopped with SIGSTOP
   for 2 s so the queue stays full) passes packets instead of dropping them: zero wrk errors,
   the kernel's queue_dropped/user_dropped counters stay 0.
"""

import os
import re
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from lab import (PROD, SMALL_PAGE, Checks, Lab, parse_args, parse_wrk, require,  # noqa: E402
                 url)

WRK_SECONDS = 6


def ruleset(lab: Lab) -> str:
    """fw's iptables + ip6tables rules without counters (to compare installs)."""
    text = lab.sh(lab.ns.fw, "iptables-save") + lab.sh(lab.ns.fw, "ip6tables-save")
    return "\n".join(re.sub(r"\[\d+:\d+\]", "", line) for line in text.splitlines()
                     if not line.startswith("#"))


def page_ok(lab: Lab, addr: str, timeout: float = 5) -> str | None:
    """One new connection to nginx at addr: None if the page came back, else why not."""
    req = b"GET / HTTP/1.1\r\nHost: example.test\r\nConnection: close\r\n\r\n"
    _, resp = lab.exchange(lab.ns.client, addr, [req], timeout=timeout)
    if resp.startswith(b"HTTP/1.1 200") and resp.endswith(SMALL_PAGE):
        return None
    return f"response {resp[:60]!r}"


def wrk_in_background(lab: Lab, connections: int, timeout: str, name: str):
    """Start wrk (new connection per request, `timeout` per request) against nginx."""
    return lab.spawn(lab.ns.client, "wrk", "-t", "1", "-c", str(connections), "-d",
                     f"{WRK_SECONDS}s", "--latency", "--timeout", timeout,
                     "-H", "Connection: close", url(PROD.v4), name=name)


def wrk_clean(lab: Lab, proc) -> str | None:
    """Wait for wrk; None if it made requests without any error or non-2xx answer."""
    proc.wait(WRK_SECONDS + 30)
    w = parse_wrk(lab.log_of(proc))
    if w["requests"] > 0 and w["errors"] == 0 and w["non2xx"] == 0:
        print(f"  wrk: {w['requests']} requests, p99 {w['p99_us']:.0f} us")
        return None
    return f"requests {w['requests']}, socket errors {w['errors']}, non-2xx {w['non2xx']}"


def main() -> None:
    require("nginx", "wrk", "iptables", "ip6tables", "iptables-save")
    args = parse_args(__doc__)
    checks = Checks()
    protect = [PROD.v4, PROD.v6]
    with Lab("failopen", keep=args.keep) as lab:
        lab.start_nginx(workers=1, access_log=False)

        gw = lab.run_acmegw(args.acmegw, "--no-prefilter", protect=protect)
        installed = ruleset(lab)
        # Segments held in the queue when acmegw dies are dropped with the queue and come back
        # as retransmissions (>= 200 ms later) that bypass it: allow a few RTOs.
        load = wrk_in_background(lab, 16, "5s", "wrk-kill")
        time.sleep(2)
        queued = lab.nfqueue_packets()
        gw.send_signal(signal.SIGKILL)
        gw.wait()
        checks.check("flows were queued before the kill", queued > 0, "NFQUEUE counters are 0")
        checks.run("kill -9 under load: no failed request", lambda: wrk_clean(lab, load))

        checks.check("rules stay installed after kill -9", "NFQUEUE" in ruleset(lab),
                     "no NFQUEUE rule left: the bypass path was not exercised")
        checks.check("no queue bound after kill -9", not lab.nfqueue_proc(),
                     str(lab.nfqueue_proc()))
        before = lab.nfqueue_packets()
        for fam in (4, 6):
            checks.run(f"new v{fam} connection works with acmegw dead",
                       lambda: page_ok(lab, PROD[fam]))
        bypassed = lab.nfqueue_packets() - before
        checks.check("those connections went through the NFQUEUE rule (bypass)", bypassed == 2,
                     f"{bypassed} packets matched")

        gw = lab.run_acmegw(args.acmegw, "--no-prefilter", protect=protect, name="acmegw-restart")
        checks.check("restart re-installs the same ruleset", ruleset(lab) == installed,
                     f"before:\n{installed}\nafter:\n{ruleset(lab)}")
        before = lab.nfqueue_packets()
        checks.run("new connection works after restart", lambda: page_ok(lab, PROD.v4))
        n = lab.nfqueue_packets() - before
        checks.check("restarted acmegw queues the new flow once", n == 1, f"{n} queued")
        status = lab.stop(gw, signal.SIGTERM)
        checks.check("acmegw exits 0 on SIGTERM", status == 0, f"status {status}")

        gw = lab.run_acmegw(args.acmegw, "--no-prefilter", "--queue-maxlen", "1", protect=protect,
                            name="acmegw-maxlen1")
        # 1 s per request: a dropped (not bypassed) first segment would stall its request for
        # the whole 2 s stop, so only fail-open gets through without a timeout.
        load = wrk_in_background(lab, 64, "1s", "wrk-flood")
        time.sleep(1.5)
        gw.send_signal(signal.SIGSTOP)
        stalled: list = []
        try:
            time.sleep(0.5)
            checks.run("new connection works while the queue is full",
                       lambda: page_ok(lab, PROD.v4, timeout=1))
            stalled = lab.nfqueue_proc()
            time.sleep(1.5)
        finally:
            gw.send_signal(signal.SIGCONT)
        checks.check("the queue was full while acmegw was stopped",
                     bool(stalled) and all(q["waiting"] >= 1 for q in stalled),
                     f"queues: {stalled}")
        checks.run("full queue under a flood: no failed request", lambda: wrk_clean(lab, load))
        drops = [(q["queue"], q["queue_dropped"], q["user_dropped"]) for q in lab.nfqueue_proc()]
        checks.check("kernel dropped nothing from the queue",
                     all(d[1] == 0 and d[2] == 0 for d in drops),
                     f"(queue, queue_dropped, user_dropped): {drops}")
        status = lab.stop(gw, signal.SIGTERM)
        checks.check("acmegw exits 0 on SIGTERM after the flood", status == 0, f"status {status}")
    checks.exit()


if __name__ == "__main__":
    main()
