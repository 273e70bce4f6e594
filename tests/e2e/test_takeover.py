#!/usr/bin/env python3
"""e2e: challenge takeover (DESIGN.md §2 "Takeover"): acmegw answers TOKEN.THUMBPRINT on the
client's own connection to production, production sees only the handshake and one RST, the
client sees no RST and never retransmits its request. Client TCP variants (timestamps, SACK,
window scaling off; small MSS), IPv4 and IPv6, DNAT'd production, split requests, HEAD and
pipelining, and keep-alive in both orders. Each connection that was taken over then fetches a
100 KiB production page, relayed by acmegw, so the repaired socket's sequence numbers, window
and options are exercised in bulk, not just for one small answer.

Run: python3 tests/e2e/test_takeover.py --acmegw build/gateway/acmegw   (root; exit 77 if not)
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from typing import Optional

from lab import CLIENT, FW_C, FW_P, PROD, PUBLIC, SMALL_PAGE, Checks, Lab, Nginx, parse_args, require
from takeover_util import (BIG_PAGE, Client, challenge, judge_client_capture,
                           judge_production_capture, keyauth_response, start)

BIG_REQUEST = b"GET /100k HTTP/1.1\r\nHost: example.test\r\n\r\n"


def takeover(lab: Lab, nginx: Nginx, name: str, dst: str, fam: int, chunks=None, mss: int = 0,
             delay: float = 0.0, first_delay: float = 0.0, relay: bool = True,
             strict_client: bool = True) -> Optional[str]:
    """One challenge connection to `dst`; None when every check of it holds, else why not."""
    token = f"tok_{name}_{fam}".replace(".", "_")
    req = challenge(token)
    cap_prod = lab.tcpdump(lab.ns.prod, "eth0", "tcp port 80")
    cap_client = lab.tcpdump(lab.ns.client, "eth0", "tcp port 80")
    c = Client(lab.ns.client, dst, mss=mss, nodelay=bool(chunks))
    for i, chunk in enumerate(chunks(req) if chunks else [req]):
        if i:
            time.sleep(first_delay if i == 1 and first_delay else delay)
        c.send(chunk)
    want = keyauth_response(token)
    got = c.read_exact(len(want))
    if got != want:
        return f"answer {got!r} != {want!r}"
    if relay:
        c.send(BIG_REQUEST)
        head, body = c.read_response()
        if not head.startswith(b"HTTP/1.1 200 ") or body != BIG_PAGE:
            return f"relayed /100k wrong: {head[:40]!r}, {len(body)} bytes"
    rest = c.close_and_wait_eof()
    if rest:
        return f"unexpected bytes after the answers: {rest[:80]!r}"
    why = judge_production_capture(cap_prod.stop(), c.local[1])
    if why:
        return why
    segs = cap_client.stop()
    if strict_client:
        why = judge_client_capture(segs, c.local[1])
        if why:
            return why
    log = nginx.log_lines()
    if any(token in e["request"] for e in log):
        return "production logged the challenge"
    if relay and not any(e["request"].startswith("GET /100k") and e["addr"] == FW_P[fam]
                         for e in log):
        return "production did not log the relayed /100k from the gateway's address"
    return None


def sysctl(lab: Lab, **kv: int) -> None:
    """TCP sysctls in the CLIENT namespace only (they are per network namespace)."""
    for k, v in kv.items():
        lab.sh(lab.ns.client, "sysctl", "-qw", f"net.ipv4.{k}={v}")


def set_initcwnd(lab: Lab, n: int) -> None:
    """The client's default route with initcwnd n (0: the kernel default)."""
    extra = ["initcwnd", str(n)] if n else []
    lab.sh(lab.ns.client, "ip", "route", "replace", "default", "via", FW_C.v4, *extra)


def pipelined_head(lab: Lab, dst: str) -> Optional[str]:
    c = Client(lab.ns.client, dst)
    c.send(challenge("p1", "HEAD") + challenge("p2") + challenge("p3", "HEAD"))
    want = keyauth_response("p1", head=True) + keyauth_response("p2") + \
        keyauth_response("p3", head=True)
    got = c.read_exact(len(want))
    rest = c.close_and_wait_eof()
    if got != want or rest:
        return f"got {got + rest!r}"
    return None


def timewaits(lab: Lab, port: int = 80) -> list[str]:
    """TIME_WAIT sockets in fw on local port `port` (a taken-over flow must leave none)."""
    out = lab.sh(lab.ns.fw, "ss", "-Htan", "state", "time-wait", f"( sport = :{port} )")
    return [line for line in out.splitlines() if line.strip()]


def close_requested(lab: Lab, dst: str, client_closes: bool) -> Optional[str]:
    """RFC 9112 §9.6: a request asking to close (Connection: close, as Boulder sends; HTTP/1.0
    without keep-alive) is answered with Connection: close, a pipelined request after it is not
    answered, and acmegw ends the connection: after the client's FIN (passive close), or, when
    the client stays silent, with a RST within drain_timeout (2 s). No TIME_WAIT either way."""
    tok = f"close_{int(client_closes)}_{':' in dst}"
    c = Client(lab.ns.client, dst)
    if client_closes:
        req = challenge(tok).replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n")
        c.send(req + challenge(tok + "_ignored"))
    else:
        c.send(challenge(tok).replace(b"HTTP/1.1", b"HTTP/1.0", 1))
    want = keyauth_response(tok, close=True)
    got = c.read_exact(len(want))
    if got != want:
        return f"answer {got!r} != {want!r}"
    t0 = time.monotonic()
    try:
        rest = c.close_and_wait_eof() if client_closes else c.s.recv(65536)
    except ConnectionResetError:
        rest = b""
        if client_closes:
            return "reset although the client closed first"
    waited = time.monotonic() - t0
    if rest:
        return f"bytes after the answer (a pipelined request answered?): {rest[:80]!r}"
    if not client_closes and not 1.0 <= waited <= 8:
        return f"the silent client's connection ended after {waited:.1f} s, not ~2 s"
    if tw := timewaits(lab):
        return f"TIME_WAIT left on fw: {tw}"
    return None


def production_then_challenge(lab: Lab, nginx: Nginx, dst: str) -> Optional[str]:
    """A flow decided for production stays there: its later challenge reaches nginx (404)."""
    c = Client(lab.ns.client, dst)
    c.send(b"GET / HTTP/1.1\r\nHost: example.test\r\n\r\n")
    head, body = c.read_response()
    if body != SMALL_PAGE:
        return f"first page wrong: {head[:60]!r}"
    c.send(challenge("late_tok"))
    head, _ = c.read_response()
    c.close_and_wait_eof()
    if not head.startswith(b"HTTP/1.1 404"):
        return f"the late challenge was not answered by production: {head[:60]!r}"
    if not any("late_tok" in e["request"] and e["addr"] == c.local[0]
               for e in nginx.log_lines()):
        return "nginx did not log the late challenge from the client's address"
    return None


def failure_falls_back(lab: Lab, proc, nginx: Nginx) -> Optional[str]:
    """With no fd left (RLIMIT_NOFILE = open fds), step `socket` fails: the flow must reach
    production intact (nginx answers its 404), the failure is counted by step, and the next
    challenge after the limit is restored is taken over again."""
    used = {int(fd) for fd in os.listdir(f"/proc/{proc.pid}/fd")}
    lowest_free = min(set(range(len(used) + 1)) - used)  # the next fd number the kernel picks
    soft, hard = subprocess.run(["prlimit", f"--pid={proc.pid}", "--nofile", "--raw",
                                 "--noheadings", "--output=SOFT,HARD"], check=True,
                                capture_output=True, text=True).stdout.split()
    subprocess.run(["prlimit", f"--pid={proc.pid}", f"--nofile={lowest_free}:{hard}"], check=True)
    try:
        c = Client(lab.ns.client, PROD.v4)
        c.send(challenge("fail_tok"))
        head, _ = c.read_response()
        c.close_and_wait_eof()
    finally:
        subprocess.run(["prlimit", f"--pid={proc.pid}", f"--nofile={soft}:{hard}"], check=True)
    if not head.startswith(b"HTTP/1.1 404") or b"nginx" not in head:
        return f"not answered by production: {head[:80]!r}"
    if not any("fail_tok" in e["request"] and e["addr"] == c.local[0] for e in nginx.log_lines()):
        return "nginx did not log the failed takeover's request from the client"
    proc.send_signal(signal.SIGUSR1)
    lab.wait_for(lambda: "takeover_failed_by_step.socket=1" in lab.log_of(proc), 5,
                 "the failure counted by step")
    return takeover(lab, nginx, "after_fail", PROD.v4, 4, relay=False)


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    require("iptables", "ip6tables", "nginx", "tcpdump", "prlimit")
    checks = Checks()
    with Lab("takeover", prefix="agwT", keep=args.keep) as lab:
        # The default bound of 32 held segments per flow sends a request in 1-byte segments to
        # production (by design); raise it so the 1-byte case is decided by its bytes.
        nginx, proc = start(lab, args.acmegw, "--max-held-segments", "512")
        for fam in (4, 6):
            dst = PROD[fam]
            checks.run(f"v{fam} challenge answered, production sees handshake + RST",
                       lambda: takeover(lab, nginx, "plain", dst, fam))
            checks.run(f"v{fam} small client MSS (TCP_MAXSEG 536)",
                       lambda: takeover(lab, nginx, "mss", dst, fam, mss=536))
            # Split inside the prefix: "GET /.well-kn" | "own/acme-challenge/...".
            checks.run(f"v{fam} request in two segments split inside the prefix",
                       lambda: takeover(lab, nginx, "split2", dst, fam,
                                        chunks=lambda r: [r[:13], r[13:]], delay=0.05))
            checks.run(f"v{fam} HEAD and pipelined challenges",
                       lambda: pipelined_head(lab, dst))
            checks.run(f"v{fam} Connection: close answered with close, client's FIN first",
                       lambda: close_requested(lab, dst, True))
            checks.run(f"v{fam} HTTP/1.0 answered with close, silent client reset after 2 s",
                       lambda: close_requested(lab, dst, False))
        # 1-byte segments. Production ACKs nothing while the segments are held, so the client
        # sends only its initial window (IW10) and then, one RTO (>= 200 ms) later, retransmits
        # from the first byte, which the engine answers by sending the flow to production (the
        # client is then stalled until an ACK). The client's route gets initcwnd 300 and
        # autocorking is off (client namespace only), so all ~190 one-byte segments leave at
        # once, after a first byte that lets the engine set the flow's HOLD connmark.
        set_initcwnd(lab, 300)
        lab.sh(lab.ns.client, "sysctl", "-qw", "net.ipv4.tcp_autocorking=0")
        try:
            checks.run("v4 request in 1-byte segments",
                       lambda: takeover(lab, nginx, "bytes", PROD.v4, 4,
                                        chunks=lambda r: [r[i:i + 1] for i in range(len(r))],
                                        first_delay=0.05, strict_client=False))
        finally:
            set_initcwnd(lab, 0)
            lab.sh(lab.ns.client, "sysctl", "-qw", "net.ipv4.tcp_autocorking=1")
        for name, kv in (("timestamps off", {"tcp_timestamps": 0}),
                         ("SACK off", {"tcp_sack": 0}),
                         ("window scaling off", {"tcp_window_scaling": 0}),
                         ("all three off", {"tcp_timestamps": 0, "tcp_sack": 0,
                                            "tcp_window_scaling": 0})):
            sysctl(lab, **kv)
            try:
                for fam in (4, 6):
                    tag = name.split()[0] + name.split()[1]
                    checks.run(f"v{fam} client {name}",
                               lambda: takeover(lab, nginx, tag, PROD[fam], fam))
            finally:
                sysctl(lab, tcp_timestamps=1, tcp_sack=1, tcp_window_scaling=1)
        checks.run("v4 production first, then a challenge on the same connection",
                   lambda: production_then_challenge(lab, nginx, PROD.v4))
        checks.run("a failed takeover (step socket: EMFILE) falls back to production, counted",
                   lambda: failure_falls_back(lab, proc, nginx))
        lab.stop(proc)
        checks.check("acmegw exits cleanly", proc.returncode == 0, lab.log_of(proc)[-1500:])

    with Lab("takeover-dnat", prefix="agwT", keep=args.keep) as lab:
        nginx, proc = start(lab, args.acmegw, dnat=True)
        for fam in (4, 6):
            checks.run(f"v{fam} DNAT'd production: challenge answered, RST to the real address",
                       lambda: takeover(lab, nginx, "dnat", PUBLIC[fam], fam))
        lab.stop(proc)
    checks.exit()


if __name__ == "__main__":
    main()
