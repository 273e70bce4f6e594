#!/usr/bin/env python3
"""e2e: how taken-over packets reach the repaired socket (docs/takeover.md "Delivery"). IPv4 has
no ip rule: taken packets get the TOS bits 0x0c in mangle PREROUTING and `local NET tos 0x0c`
routes in table local deliver them; every other packet toward a protected address has those
bits cleared first. IPv6 keeps its fwmark rule.
  * with acmegw running: `ip -4 rule` holds only the kernel's three rules, the TOS route is
    listed, IPv6 has the fwmark rule;
  * challenges are answered (v4, v6), also from a client whose own packets carry TOS 0x0c or
    0x2c (same bits under the FIB's mask 0x1c) and with IPv4 header options;
  * production flows whose packets carry those TOS bits reach production, on the protected port
    and on another port of the protected address where fw itself listens (the bits cleared:
    never delivered to fw); a control shows fw's listener answers on fw's own address;
  * rp_filter strict (the lab's default), loose, and off with src_valid_mark=1;
  * DNAT: a takeover toward a post-DNAT address adds its route (proto 172); SIGKILL then
    restart leaves each route once; SIGTERM and `rules remove` leave no route and no rule.
"""

from __future__ import annotations

import os
import signal
import socket
import sys
import threading
from typing import Optional

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from lab import FW_C, PROD, PUBLIC, Checks, Lab, parse_args, require, socket_in  # noqa: E402
from takeover_util import Client, challenge, keyauth_response, start  # noqa: E402

TOS = 0x0c
OTHER_PORT = 8081
NOPS = b"\x01\x01\x01\x00"  # NOP NOP NOP EOL: a 4-byte IPv4 options field
PROTO = "172"


def serve_banner(lab: Lab, ns: str, addr: str, banner: bytes) -> socket.socket:
    """A listener on addr:OTHER_PORT in ns that sends `banner` to each connection and closes;
    the caller ends it with close_listener()."""
    ls = socket_in(ns, 6 if ":" in addr else 4)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((addr, OTHER_PORT))
    ls.listen(16)

    def loop() -> None:
        while True:
            try:
                c, _ = ls.accept()
            except OSError:
                return
            with c:
                c.sendall(banner)
    threading.Thread(target=loop, daemon=True).start()
    return ls


def close_listener(ls: socket.socket) -> None:
    """shutdown() wakes the accept() of serve_banner's thread; close() alone would not."""
    try:
        ls.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    ls.close()


def banner_from(lab: Lab, addr: str, tos: int = 0, timeout: float = 10) -> bytes:
    """What a listener on addr:OTHER_PORT sends to a client whose packets carry `tos`
    (b"" when nobody answers within `timeout`: generous, for a loaded box)."""
    s = socket_in(lab.ns.client, 4)
    s.settimeout(timeout)
    s.setsockopt(socket.IPPROTO_IP, socket.IP_TOS, tos)
    try:
        s.connect((addr, OTHER_PORT))
        return s.recv(64)
    except OSError:
        return b""
    finally:
        s.close()


def answered(lab: Lab, dst: str, token: str, **opts) -> Optional[str]:
    """A challenge to dst:80 gets acmegw's answer (client socket options in opts)."""
    c = Client(lab.ns.client, dst, **opts)
    c.send(challenge(token))
    want = keyauth_response(token)
    got = c.read_exact(len(want))
    c.close_and_wait_eof()
    return None if got == want else f"answer {got[:120]!r} != {want[:60]!r}…"


def production_page(lab: Lab, dst: str, **opts) -> Optional[str]:
    """GET / on dst:80 is served by production's nginx (its own 200, not acmegw's)."""
    c = Client(lab.ns.client, dst, **opts)
    c.send(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    head, _ = c.read_response()
    c.s.close()
    ok = head.startswith(b"HTTP/1.1 200 ") and b"Server: nginx" in head
    return None if ok else f"not production's answer: {head[:200]!r}"


def routes(lab: Lab) -> list[str]:
    out = lab.sh(lab.ns.fw, "ip", "-4", "route", "show", "table", "local", "proto", PROTO)
    return [line.strip() for line in out.splitlines() if line.strip()]


def rules(lab: Lab, fam: str) -> list[str]:
    return [line.strip() for line in lab.sh(lab.ns.fw, "ip", fam, "rule", "show").splitlines()]


def expect_routes(lab: Lab, addrs: list[str]) -> Optional[str]:
    want = sorted(f"local {a} tos 0x{TOS:02x} dev lo scope host" for a in addrs)
    got = sorted(routes(lab))
    return None if got == want else f"routes {got} != {want}"


def no_leftovers(lab: Lab) -> Optional[str]:
    left = routes(lab) + [r for r in rules(lab, "-4") + rules(lab, "-6") if "fwmark" in r]
    return f"left behind: {left}" if left else None


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    require("iptables", "ip6tables", "nginx")
    checks = Checks()
    with Lab("delivery", prefix="agwD", keep=args.keep) as lab:
        nginx, proc = start(lab, args.acmegw)
        del nginx
        v4_rules = rules(lab, "-4")
        checks.check("IPv4: no ip rule besides the kernel's three", len(v4_rules) == 3 and
                     all(r.split(":")[0] in ("0", "32766", "32767") for r in v4_rules),
                     str(v4_rules))
        checks.check("IPv6: the fwmark rule", any("fwmark 0x200000/0xf00000 lookup 3802" in r
                                                 for r in rules(lab, "-6")), str(rules(lab, "-6")))
        checks.run("IPv4: one TOS route for the protected address", lambda: expect_routes(
            lab, [PROD.v4]))
        printed = lab.sh(lab.ns.fw, args.acmegw, "rules", "print", "--protect", PROD.v4)
        checks.check("rules print shows the TOS route and no IPv4 rule",
                     f"ip -4 route add local {PROD.v4}/32 tos 0x0c proto 172 dev lo table local"
                     in printed and "ip -4 rule" not in printed, printed[-600:])
        checks.run("v4 challenge answered", lambda: answered(lab, PROD.v4, "plain4"))
        checks.run("v6 challenge answered", lambda: answered(lab, PROD.v6, "plain6"))
        for tos in (TOS, 0x2c):
            checks.run(f"v4 challenge from a client sending TOS {tos:#04x} answered",
                       lambda: answered(lab, PROD.v4, f"tos{tos}", tos=tos))
            checks.run(f"v4 production flow with TOS {tos:#04x} reaches production",
                       lambda: production_page(lab, PROD.v4, tos=tos))
        checks.run("v4 challenge with IPv4 options answered",
                   lambda: answered(lab, PROD.v4, "options", ip_options=NOPS))
        checks.run("v4 production flow with IPv4 options reaches production",
                   lambda: production_page(lab, PROD.v4, ip_options=NOPS))

        listeners = [serve_banner(lab, lab.ns.prod, PROD.v4, b"PROD"),
                     serve_banner(lab, lab.ns.fw, "0.0.0.0", b"FW")]
        try:
            checks.check("control: fw's own listener answers on fw's address",
                         banner_from(lab, FW_C.v4) == b"FW")
            for tos in (0, TOS, 0x2c):
                got = banner_from(lab, PROD.v4, tos)
                checks.check(f"TOS {tos:#04x} to another port of the protected address reaches "
                             "production, never fw", got == b"PROD", repr(got))
        finally:
            for ls in listeners:
                close_listener(ls)

        fw = lab.ns.fw
        for name, kv in (("loose rp_filter", {"rp_filter": "2"}),
                         ("rp_filter off, src_valid_mark=1", {"rp_filter": "0",
                                                             "src_valid_mark": "1"})):
            for conf in ("all", "default", "c0", "p0"):
                for k, v in kv.items():
                    lab.sh(fw, "sysctl", "-qw", f"net.ipv4.conf.{conf}.{k}={v}")
            checks.run(f"v4 challenge answered with {name}",
                       lambda: answered(lab, PROD.v4, name.replace(" ", "_").replace(",", "")
                                        .replace("=", "")))
        for conf in ("all", "default", "c0", "p0"):
            lab.sh(fw, "sysctl", "-qw", f"net.ipv4.conf.{conf}.rp_filter=1",
                   f"net.ipv4.conf.{conf}.src_valid_mark=0")

        checks.check("SIGTERM: acmegw exits 0", lab.stop(proc) == 0)
        checks.run("SIGTERM leaves no route and no rule", lambda: no_leftovers(lab))

        # DNAT: PUBLIC is protected; the taken flow is delivered to PROD (post-DNAT).
        _, proc = start(lab, args.acmegw, dnat=True)
        checks.run("DNAT: v4 challenge to the public address answered",
                   lambda: answered(lab, PUBLIC.v4, "dnat4"))
        checks.run("DNAT: the takeover added the post-DNAT address's route",
                   lambda: expect_routes(lab, [PUBLIC.v4, PROD.v4]))
        checks.run("DNAT: v4 production flow with TOS 0x0c reaches production",
                   lambda: production_page(lab, PUBLIC.v4, tos=TOS))
        listener = serve_banner(lab, lab.ns.fw, "0.0.0.0", b"FW")
        try:
            got = banner_from(lab, PROD.v4, TOS, timeout=3)  # dropped: no answer expected
            checks.check("DNAT: TOS 0x0c straight to the post-DNAT address never reaches fw",
                         got != b"FW", repr(got))
        finally:
            close_listener(listener)
        lab.stop(proc, signal.SIGKILL)
        _, proc = start(lab, args.acmegw, dnat=True)
        checks.run("SIGKILL, restart: each route once, the stale post-DNAT one flushed",
                   lambda: expect_routes(lab, [PUBLIC.v4]))
        checks.run("after the restart: DNAT challenge answered",
                   lambda: answered(lab, PUBLIC.v4, "dnat4b"))
        lab.stop(proc, signal.SIGKILL)
        lab.sh(fw, args.acmegw, "rules", "remove", "--protect", PUBLIC.v4, "--protect",
               f"[{PUBLIC.v6}]")
        checks.run("SIGKILL, then `rules remove`: no route and no rule left",
                   lambda: no_leftovers(lab))
    checks.exit()


if __name__ == "__main__":
    main()
