#!/usr/bin/env python3
"""e2e: takeover under load and abuse: the multi-perspective pattern of Let's Encrypt (one
request, then 4 concurrent ones for the same token from other addresses), 200 concurrent mixed
flows (half challenges, every answer byte-checked), then N challenge flows plus clients that
reset, vanish or idle mid-session, after which acmegw's fd count and fw's ESTABLISHED conntrack
entries must be back at their baseline (sessions end by idle timeout, never leak).

Run: python3 tests/e2e/test_takeover_load.py --acmegw build/gateway/acmegw [--flows N]
(root; exit 77 if not). --flows defaults to the issue's 10,000 (~7 s of the ~40 s run).
Prints challenge flows/s and the connect-to-answer latency p50/p99 of the sequential run.
"""

from __future__ import annotations

import socket
import struct
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Optional

from lab import CLIENT, PROD, SMALL_PAGE, Checks, Lab, Nginx, parse_args, require
from takeover_util import (Client, challenge, conntrack_established, fd_count, keyauth_response,
                           start)

IDLE_TIMEOUT_S = 30  # backends::SessionConfig::idle_timeout default
EXTRA = [(f"198.51.100.{i}", f"2001:db8:1::{i}") for i in range(3, 8)]


def one_challenge(lab: Lab, dst: str, token: str, source: Optional[str] = None) -> Optional[str]:
    c = Client(lab.ns.client, dst, source=source)
    want = keyauth_response(token)
    c.send(challenge(token))
    got = c.read_exact(len(want))
    rest = c.close_and_wait_eof()
    return None if got == want and not rest else f"{source or dst}: got {got + rest!r}"


def one_production(lab: Lab, dst: str) -> Optional[str]:
    c = Client(lab.ns.client, dst)
    c.send(b"GET / HTTP/1.1\r\nHost: example.test\r\n\r\n")
    head, body = c.read_response()
    c.close_and_wait_eof()
    return None if head.startswith(b"HTTP/1.1 200 ") and body == SMALL_PAGE else \
        f"production page wrong: {head[:40]!r} {len(body)}"


def multi_perspective(lab: Lab) -> Optional[str]:
    """Primary over IPv6 first, then 4 remote perspectives at once (2 v4, 2 v6)."""
    token = "mp_" + "x" * 40
    why = one_challenge(lab, PROD.v6, token, source=EXTRA[0][1])
    if why:
        return "primary: " + why
    jobs = [(PROD.v4, EXTRA[1][0]), (PROD.v6, EXTRA[2][1]), (PROD.v4, EXTRA[3][0]),
            (PROD.v6, EXTRA[4][1])]
    with ThreadPoolExecutor(4) as ex:
        results = list(ex.map(lambda j: one_challenge(lab, j[0], token, j[1]), jobs))
    bad = [r for r in results if r]
    return "; ".join(bad) if bad else None


def mixed(lab: Lab, n: int = 200) -> Optional[str]:
    """n concurrent flows, half challenges, v4 and v6 alternating; all must be right."""
    start_line = threading.Barrier(n)

    def flow(i: int) -> Optional[str]:
        dst = PROD.v4 if i % 4 < 2 else PROD.v6
        start_line.wait()
        try:
            if i % 2:
                return one_challenge(lab, dst, f"mix{i}")
            return one_production(lab, dst)
        except Exception as e:
            return f"flow {i}: {type(e).__name__}: {e}"

    with ThreadPoolExecutor(n) as ex:
        results = list(ex.map(flow, range(n)))
    bad = [r for r in results if r]
    return f"{len(bad)}/{n} wrong, e.g. {bad[:3]}" if bad else None


def sequential(lab: Lab, flows: int, workers: int = 4) -> tuple[Optional[str], str]:
    """`flows` challenge flows from `workers` threads; returns (why, rate/latency summary)."""
    lat: list[float] = []
    bad: list[str] = []
    lock = threading.Lock()

    def worker(w: int) -> None:
        for i in range(w, flows, workers):
            t0 = time.monotonic()
            try:
                why = one_challenge(lab, PROD.v4 if i % 2 else PROD.v6, f"seq{i}")
            except Exception as e:
                why = f"{type(e).__name__}: {e}"
            with lock:
                lat.append(time.monotonic() - t0)
                if why:
                    bad.append(why)

    t0 = time.monotonic()
    threads = [threading.Thread(target=worker, args=(w,)) for w in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - t0
    lat.sort()
    summary = (f"{flows} challenge flows in {elapsed:.1f} s = {flows / elapsed:.0f}/s "
               f"({workers} clients); connect-to-close p50 {lat[len(lat) // 2] * 1e3:.2f} ms, "
               f"p99 {lat[int(len(lat) * 0.99)] * 1e3:.2f} ms")
    return (f"{len(bad)} wrong, e.g. {bad[:3]}" if bad else None), summary


def abusers(lab: Lab) -> list[socket.socket]:
    """Clients that misbehave mid-session; returns the sockets to keep alive until the end."""
    keep: list[socket.socket] = []
    for i in range(20):  # reset right after sending the challenge, before any answer
        c = Client(lab.ns.client, PROD.v4 if i % 2 else PROD.v6)
        c.send(challenge(f"rst{i}"))
        c.s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        c.s.close()
    for i in range(20):  # answered, then idle without FIN (keep-alive clients that go quiet)
        c = Client(lab.ns.client, PROD.v4 if i % 2 else PROD.v6)
        want = keyauth_response(f"idle{i}")
        c.send(challenge(f"idle{i}"))
        if c.read_exact(len(want)) != want:
            raise AssertionError(f"idle{i}: wrong answer")
        keep.append(c.s)
    for i in range(5):  # vanish mid-takeover: answers never arrive, then the client is gone
        c = Client(lab.ns.client, PROD.v4)
        port = str(c.local[1])
        lab.sh(lab.ns.client, "iptables", "-w", "-A", "INPUT", "-p", "tcp", "--dport", port,
               "-j", "DROP")
        c.send(challenge(f"gone{i}"))
        time.sleep(0.2)
        lab.sh(lab.ns.client, "iptables", "-w", "-A", "OUTPUT", "-p", "tcp", "--sport", port,
               "-j", "DROP")
        keep.append(c.s)
    return keep


def main() -> None:
    def extra(p):
        p.add_argument("--flows", type=int, default=10000, help="challenge flows in the leak run")
    args = parse_args(__doc__.splitlines()[0], extra)
    require("iptables", "ip6tables", "nginx", "conntrack")
    checks = Checks()
    with Lab("takeover-load", prefix="agwT", keep=args.keep) as lab:
        for v4, v6 in EXTRA:
            lab.sh(lab.ns.client, "ip", "addr", "add", f"{v4}/24", "dev", "eth0")
            lab.sh(lab.ns.client, "ip", "-6", "addr", "add", f"{v6}/64", "dev", "eth0", "nodad")
        nginx, proc = start(lab, args.acmegw)
        checks.run("multi-perspective: 1 then 4 concurrent, 5 addresses",
                   lambda: multi_perspective(lab))
        checks.run("200 concurrent mixed flows, half challenges", lambda: mixed(lab))

        time.sleep(0.5)
        fd_base, ct_base = fd_count(proc.pid), conntrack_established(lab)
        why, summary = sequential(lab, args.flows)
        checks.check(f"{args.flows} sequential challenge flows answered", why is None, why or "")
        print(f"INFO {summary}", flush=True)
        keep = abusers(lab)
        checks.check("idle sessions still open before the idle timeout",
                     conntrack_established(lab) >= ct_base + 20,
                     f"{conntrack_established(lab)} ESTABLISHED")

        def back_to_baseline() -> bool:
            return fd_count(proc.pid) <= fd_base and conntrack_established(lab) <= ct_base
        try:
            lab.wait_for(back_to_baseline, IDLE_TIMEOUT_S + 20, "baseline")
        except TimeoutError:
            pass
        checks.check("acmegw fd count back to baseline", fd_count(proc.pid) <= fd_base,
                     f"{fd_count(proc.pid)} fds, baseline {fd_base}")
        checks.check("fw ESTABLISHED conntrack entries back to baseline",
                     conntrack_established(lab) <= ct_base,
                     f"{conntrack_established(lab)}, baseline {ct_base}")
        # The idle clients were aborted (RST), never sent a FIN by acmegw.
        resets = 0
        for s in keep[:20]:
            s.settimeout(1)
            try:
                s.recv(1)  # b"" would be a FIN from acmegw
            except ConnectionResetError:
                resets += 1
            except OSError:
                pass
        checks.check("idle clients were aborted with RST, not FIN", resets == 20,
                     f"{resets}/20 saw ECONNRESET")
        for s in keep:
            s.close()
        checks.check("production logged no challenge",
                     not any("acme-challenge" in e["request"] for e in nginx.log_lines()))
        # Sessions still open at shutdown are aborted (RST), never FIN'ed, and exit is clean.
        open_at_exit = []
        for i in range(3):
            c = Client(lab.ns.client, PROD.v4 if i % 2 else PROD.v6)
            want = keyauth_response(f"exit{i}")
            c.send(challenge(f"exit{i}"))
            if c.read_exact(len(want)) == want:
                open_at_exit.append(c.s)
        lab.stop(proc)
        checks.check("acmegw exits 0 with sessions open", proc.returncode == 0,
                     f"exit {proc.returncode}: {lab.log_of(proc)[-800:]}")
        reset = 0
        for s in open_at_exit:
            s.settimeout(2)
            try:
                s.recv(1)
            except ConnectionResetError:
                reset += 1
            except OSError:
                pass
            s.close()
        checks.check("sessions open at shutdown were aborted with RST", reset == 3,
                     f"{reset}/3 saw ECONNRESET")
        log = lab.log_of(proc)
        sessions = [line for line in log.splitlines() if "[takeover] stats:" in line]
        engine = [line for line in log.splitlines() if "stats: final:" in line]
        print(f"INFO {sessions[-1] if sessions else 'no session stats line'}", flush=True)
        checks.check("no takeover step failed (engine counters)",
                     bool(engine) and "takeovers_ok=" in engine[-1] and
                     "takeovers_failed" not in engine[-1], engine[-1] if engine else "no line")
    checks.exit()


if __name__ == "__main__":
    main()
