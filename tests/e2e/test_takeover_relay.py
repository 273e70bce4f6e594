#!/usr/bin/env python3
"""e2e: `--backend relay=ADDR:PORT`: a taken-over challenge connection is relayed whole, bytes
as received (the held request first), to a validation host (nginx in the val namespace serving
the challenge file, as certbot --webroot would leave it); production sees only the handshake
and the RST, the validation host sees the client's exact request bytes (from the gateway's
address), keep-alive requests on that connection go to the validation host too."""

from __future__ import annotations

import os
from typing import Optional

from lab import (FW_V, PROD, VAL, Checks, Lab, Nginx, Recorder, parse_args,
                 recorder_response, require)
from takeover_util import Client, challenge, judge_production_capture

BODY = b"relay_tok.NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"


def relayed(lab: Lab, prod: Nginx, val: Nginx, fam: int) -> Optional[str]:
    cap = lab.tcpdump(lab.ns.prod, "eth0", "tcp port 80")
    c = Client(lab.ns.client, PROD[fam])
    for i in range(2):  # keep-alive: the second request rides the same relayed connection
        c.send(challenge("relay_tok"))
        head, body = c.read_response()
        if not head.startswith(b"HTTP/1.1 200 ") or body != BODY:
            return f"request {i}: {head[:60]!r} {body!r}"
    c.close_and_wait_eof()
    why = judge_production_capture(cap.stop(), c.local[1])
    if why:
        return why
    if any("relay_tok" in e["request"] for e in prod.log_lines()):
        return "production logged the challenge"
    hits = [e for e in val.log_lines() if "relay_tok" in e["request"]]
    if len(hits) < 2 or any(e["addr"] != FW_V.v4 for e in hits[-2:]):
        return f"validation host log: {hits[-2:]}"
    return None


def byte_exact(lab: Lab, rec: Recorder) -> Optional[str]:
    """Through a byte recorder as the relay target: it receives exactly the client's bytes (odd
    header case and all) and the client receives exactly its answer."""
    req = (b"GET /.well-known/acme-challenge/rec_tok HTTP/1.1\r\nHoSt: Example.TEST\r\n"
           b"X-Odd-CaSe: 1\r\n\r\n")
    _, got = lab.exchange(lab.ns.client, PROD.v4, [req])
    convs = [c for c in rec.conversations.values() if c.done.wait(5) and c.received == req]
    if len(convs) != 1:
        return f"recorder got {[c.received[:60] for c in rec.conversations.values()]}"
    if got != recorder_response(req):
        return f"client got {len(got)} bytes, not the recorder's answer"
    return None


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    require("iptables", "ip6tables", "nginx", "tcpdump")
    checks = Checks()
    with Lab("takeover-relay", prefix="agwT", val=True, keep=args.keep) as lab:
        prod = lab.start_nginx()
        val = lab.start_nginx(ns=lab.ns.val, addrs=(VAL.v4,))
        d = os.path.join(val.root, "www", ".well-known", "acme-challenge")
        os.makedirs(d)
        with open(os.path.join(d, "relay_tok"), "wb") as f:
            f.write(BODY)
        proc = lab.run_acmegw(args.acmegw, "--backend", f"relay={VAL.v4}:80",
                              protect=[PROD.v4, f"[{PROD.v6}]"])
        lab.wait_for(lambda: "rules: installed" in lab.log_of(proc), 10, "rules installed")
        for fam in (4, 6):
            checks.run(f"v{fam} challenge connection relayed whole to the validation host",
                       lambda: relayed(lab, prod, val, fam))
        lab.stop(proc)
        checks.check("acmegw exits cleanly", proc.returncode == 0, lab.log_of(proc)[-1000:])
        rec = lab.start_recorder(addrs=(VAL.v4,), port=8080, ns=lab.ns.val)
        proc = lab.run_acmegw(args.acmegw, "--backend", f"relay={VAL.v4}:8080",
                              protect=[PROD.v4], name="acmegw-rec")
        lab.wait_for(lambda: "rules: installed" in lab.log_of(proc), 10, "rules installed")
        checks.run("relay is byte-exact both ways (byte recorder as target)",
                   lambda: byte_exact(lab, rec))
        lab.stop(proc)
    checks.exit()


if __name__ == "__main__":
    main()
