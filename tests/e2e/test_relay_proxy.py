#!/usr/bin/env python3
"""e2e: `--backend relay=ADDR:PORT,proxy=v1|v2,connect-timeout=MS`: the validation host (nginx
with `listen ... proxy_protocol`, logging `$proxy_protocol_addr $proxy_protocol_port`) logs the
client's own address and port, v4 and v6 clients, PROXY v1 and v2; a dead validation host gives
the client a prompt 502 (refused) or 504 (silent past connect-timeout) and one rate-limited
warning, production flows are unaffected meanwhile, and a later challenge with the validation
host back works."""

from __future__ import annotations

import os
import time
from typing import Optional

from lab import CLIENT, PROD, SMALL_PAGE, VAL, Checks, Lab, Nginx, parse_args, require
from takeover_util import Client, challenge

TOKEN = "pp_tok"
BODY = b"pp_tok.NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
WARNING = "relay: validation host"
GW_502 = (b"HTTP/1.1 502 Bad Gateway\r\nContent-Type: text/plain\r\nContent-Length: 47\r\n"
          b"Connection: close\r\n\r\nacmegw: the validation host refused or is down\n")
GW_504 = (b"HTTP/1.1 504 Gateway Timeout\r\nContent-Type: text/plain\r\nContent-Length: 51\r\n"
          b"Connection: close\r\n\r\nacmegw: the validation host did not answer in time\n")


def fetch(lab: Lab, fam: int) -> tuple[bytes, bytes, int, float]:
    """One challenge from the client to production's address: (head, body, client port, s)."""
    t0 = time.monotonic()
    c = Client(lab.ns.client, PROD[fam])
    c.send(challenge(TOKEN))
    head, body = c.read_response()
    elapsed = time.monotonic() - t0
    c.close_and_wait_eof()
    return head, body, c.local[1], elapsed


def logged_client(lab: Lab, val: Nginx, fam: int) -> Optional[str]:
    """The challenge is answered by the validation host, whose log names the client."""
    head, body, port, _ = fetch(lab, fam)
    if not head.startswith(b"HTTP/1.1 200 ") or body != BODY:
        return f"answer {head[:60]!r} {body[:60]!r}"
    hits = [e for e in val.log_lines() if TOKEN in e["request"]]
    if not hits or hits[-1]["addr"] != CLIENT[fam] or hits[-1]["port"] != port:
        return f"validation host logged {hits[-1:]}, want {CLIENT[fam]} port {port}"
    return None


def gateway_error(lab: Lab, want: bytes, min_s: float, max_s: float) -> Optional[str]:
    head, body, _, elapsed = fetch(lab, 4)
    if head + body != want:
        return f"client got {(head + body)[:120]!r}"
    if not min_s <= elapsed <= max_s:
        return f"answered after {elapsed:.3f} s, want {min_s}..{max_s}"
    return None


def production_ok(lab: Lab) -> Optional[str]:
    _, got = lab.exchange(lab.ns.client, PROD.v4, [b"GET / HTTP/1.1\r\nHost: x\r\n"
                                                   b"Connection: close\r\n\r\n"])
    if not got.startswith(b"HTTP/1.1 200 ") or not got.endswith(SMALL_PAGE):
        return f"production answered {got[:80]!r}"
    return None


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    require("iptables", "ip6tables", "nginx")
    checks = Checks()
    with Lab("relay-proxy", prefix="agwB", val=True, keep=args.keep) as lab:
        lab.start_nginx()
        # acmegw starts while the validation host is down.
        proc = lab.run_acmegw(args.acmegw, "--backend",
                              f"relay={VAL.v4}:80,proxy=v2,connect-timeout=500",
                              protect=[PROD.v4, f"[{PROD.v6}]"])
        for i in range(3):
            checks.run(f"validation host down: a prompt 502 ({i})",
                       lambda: gateway_error(lab, GW_502, 0, 0.5))
        checks.run("production unaffected while the validation host is down",
                   lambda: production_ok(lab))
        warnings = [ln for ln in lab.log_of(proc).splitlines() if WARNING in ln]
        checks.check("one rate-limited warning for three failures", len(warnings) == 1,
                     f"{warnings}")

        val = lab.start_nginx(ns=lab.ns.val, addrs=(VAL.v4,), proxy_protocol=True)
        d = os.path.join(val.root, "www", ".well-known", "acme-challenge")
        os.makedirs(d)
        with open(os.path.join(d, TOKEN), "wb") as f:
            f.write(BODY)
        for fam in (4, 6):
            checks.run(f"validation host back: PROXY v2 names the v{fam} client",
                       lambda: logged_client(lab, val, fam))

        # A silent validation host (SYNs dropped): 504 once connect-timeout has passed.
        drop = ["INPUT", "-p", "tcp", "--dport", "80", "-j", "DROP"]
        lab.sh(lab.ns.val, "iptables", "-w", "-I", *drop)
        checks.run("silent validation host: 504 after connect-timeout",
                   lambda: gateway_error(lab, GW_504, 0.5, 1.5))
        checks.run("production unaffected while the validation host is silent",
                   lambda: production_ok(lab))
        lab.sh(lab.ns.val, "iptables", "-w", "-D", *drop)
        checks.run("validation host reachable again: challenge answered",
                   lambda: logged_client(lab, val, 4))
        lab.stop(proc)
        checks.check("acmegw exits cleanly", proc.returncode == 0, lab.log_of(proc)[-1000:])

        proc = lab.run_acmegw(args.acmegw, "--backend", f"relay={VAL.v4}:80,proxy=v1",
                              protect=[PROD.v4, f"[{PROD.v6}]"], name="acmegw-v1")
        for fam in (4, 6):
            checks.run(f"PROXY v1 names the v{fam} client",
                       lambda: logged_client(lab, val, fam))
        lab.stop(proc)
        checks.check("acmegw (v1) exits cleanly", proc.returncode == 0, lab.log_of(proc)[-1000:])
    checks.exit()


if __name__ == "__main__":
    main()
