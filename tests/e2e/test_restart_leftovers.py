#!/usr/bin/env python3
"""e2e: sockets a SIGKILLed acmegw leaves on production's address:port are destroyed by the
next start. A killed process's taken-over connections are closed by the kernel: with a
keep-alive client still connected each becomes an orphan FIN-WAIT socket on PROD:80 in fw
(held by no process) that would retransmit or, after the client's FIN, leave a TIME_WAIT on
production's address:port (DESIGN pitfall 6). The check first proves the kill left them (else
it proves nothing), then that the restarted acmegw destroyed them and said so, that a challenge
is taken over again from the same client port, and that the client saw its connection end.

Run: python3 tests/e2e/test_restart_leftovers.py --acmegw build/gateway/acmegw   (root; exit 77)
"""

from __future__ import annotations

import signal

from lab import CLIENT, PROD, Checks, Lab, parse_args, require
from takeover_util import THUMB, Client, challenge, keyauth_response, start

PORTS = {4: 40311, 6: 40312}  # fixed client ports: the leftover sockets are found by them


def leftovers(lab: Lab) -> list[str]:
    """fw's TCP sockets (not listening) whose local side is production's :80."""
    out = lab.sh(lab.ns.fw, "ss", "-tanH")
    return [ln for ln in out.splitlines()
            if (f"{PROD.v4}:80 " in ln or f"[{PROD.v6}]:80 " in ln) and "LISTEN" not in ln]


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    require("iptables", "ip6tables", "nginx", "ss")
    checks = Checks()
    with Lab("restart-leftovers", prefix="agwL", keep=args.keep) as lab:
        _, gw = start(lab, args.acmegw)
        clients = {}
        for fam, port in PORTS.items():
            c = Client(lab.ns.client, PROD[fam], source=CLIENT[fam], source_port=port, timeout=5)
            token = f"left{fam}"
            c.send(challenge(token))
            want = keyauth_response(token)
            checks.check(f"IPv{fam}: challenge taken over (keep-alive, the client stays)",
                         c.read_exact(len(want)) == want)
            clients[fam] = c

        lab.stop(gw, signal.SIGKILL)
        before = leftovers(lab)
        for fam, port in PORTS.items():
            checks.check(f"IPv{fam}: the SIGKILL left the session's socket on production's "
                         f"address:port (precondition)", any(f":{port}" in ln for ln in before),
                         "\n".join(before) or "no socket")

        gw = lab.run_acmegw(args.acmegw, "--backend", f"thumbprint={THUMB}",
                            protect=[PROD.v4, f"[{PROD.v6}]"], name="acmegw-restarted")
        after = leftovers(lab)
        checks.check("the restarted acmegw destroyed every leftover socket", not after,
                     "\n".join(after))
        checks.check("the restarted acmegw logged what it destroyed",
                     "a previous acmegw left on protected endpoints destroyed" in lab.log_of(gw),
                     lab.log_of(gw)[-1500:])
        for fam, c in clients.items():
            try:
                extra = c.s.recv(100)  # the kill's FIN (b"") or the destroy's RST
                ended = extra == b""
            except ConnectionResetError:
                ended = True
            checks.check(f"IPv{fam}: the client's connection ended", ended)
            c.s.close()
            c = Client(lab.ns.client, PROD[fam], source=CLIENT[fam], source_port=PORTS[fam],
                       timeout=5)
            token = f"again{fam}"
            c.send(challenge(token))
            want = keyauth_response(token)
            checks.check(f"IPv{fam}: a challenge from the same client port is taken over again",
                         c.read_exact(len(want)) == want)
            c.close_and_wait_eof()
    checks.exit()


if __name__ == "__main__":
    main()
