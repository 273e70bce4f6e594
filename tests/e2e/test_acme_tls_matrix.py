#!/usr/bin/env python3
"""e2e: tls-alpn-01 issuance through acmegw (issue 15) — three clients, over IPv4 and over IPv6,
with production serving https under wrk load. Pebble (tlsPort 443) and challtestsrv run in the
client namespace; every name resolves to production (A-only answers, then AAAA-only). Every
client is restricted to tls-alpn-01, so Pebble's only validation is a TLS connection to
PROD:443 with ALPN acme-tls/1 and SNI = the name, which acmegw must take over:

  built-in responder  uacme + scripts/hooks/uacme-hook on the validation host (the test wraps
                      the hook so that every type but tls-alpn-01 is declined); acmegw
                      `--backend tokens=SOCK` (the default TLS backend then)
  certdir backend     dehydrated CHALLENGETYPE=tls-alpn-01 on the firewall writing ALPNCERTDIR;
                      acmegw `--tls-backend certdir=ALPNCERTDIR`
  relay backend       lego --tls on the validation host (VAL:443); acmegw
                      `--tls-backend relay=VAL:443`

Every certificate must verify against Pebble's root and name exactly the requested name; the
family acmegw took over is read back from its log. Production nginx (its own certificate on
443) is loaded by wrk https (keep-alive over IPv4, Connection: close over IPv6) during the whole
matrix: 0 socket errors, 0 non-2xx; and a normal TLS client still sees production's certificate.

Run: python3 tests/e2e/test_acme_tls_matrix.py --acmegw build/release/gateway/acmegw  (root; 77)
"""

from __future__ import annotations

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
HOOKS = os.path.join(HERE, "..", "..", "scripts", "hooks")
sys.path.insert(0, os.path.join(HERE, "..", "..", "scripts", "lab"))
import acmelab  # noqa: E402
from lab import (CLIENT, PROD, VAL, Checks, Lab, finish_production_load, parse_args, require,
                 start_production_load)  # noqa: E402
from test_acme_clients import issued, takeover_families  # noqa: E402
from tlslab import fingerprint, make_cert, pem_to_der, start_nginx_tls, tls_handshake  # noqa

FAMILIES = {4: (PROD.v4, ""), 6: ("", PROD.v6)}  # A-only / AAAA-only DNS answers

def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    require("pebble", "pebble-challtestsrv", "lego", "dehydrated", "uacme", "nginx", "openssl",
            "curl", "unshare", "wrk")
    acmegw = args.acmegw
    checks = Checks()
    with Lab("acmetls", prefix="agwK", val=True, keep=args.keep) as lab:
        cert, key = make_cert(os.path.join(lab.dir, "prod-tls"), "production",
                              ["production.example"])
        prod_fp = fingerprint(pem_to_der(cert))
        start_nginx_tls(lab, cert, key, workers=2)
        pebble = acmelab.start_pebble(lab, lab.ns.client, CLIENT.v4,
                                      os.path.join(lab.dir, "pebble"), PROD.v4, PROD.v6)
        root = pebble.root(lab)
        protect = [f"tls://{PROD.v4}", f"tls://[{PROD.v6}]"]

        loads = start_production_load(lab, f"https://{PROD.v4}/", f"https://[{PROD.v6}]/",
                                      connections=4)

        def phase(kind: str, gw_args: list[str], runs) -> None:
            try:
                gw = lab.run_acmegw(acmegw, *gw_args, protect=protect, name=f"acmegw-{kind}")
            except (RuntimeError, TimeoutError) as e:
                checks.check(f"{kind}: acmegw starts with {' '.join(gw_args)}", False, str(e))
                return
            for fam, answers in FAMILIES.items():
                pebble.resolve_to(lab, *answers)
                for client, ns, commands, files, env in runs:
                    before = len(lab.log_of(gw))
                    label = f"{client}-v{fam}"
                    name, w = f"{label}.example.com", os.path.join(lab.dir, label)
                    try:
                        why = issued(lab, pebble, root, ns, commands(w, name), *files(w, name),
                                     name, env)
                    except Exception as e:
                        why = f"{type(e).__name__}: {e}"
                    checks.check(f"{kind}: {client} over IPv{fam}: tls-alpn-01 certificate issued",
                                 why is None, why or "")
                    fams = takeover_families(lab.log_of(gw)[before:])
                    checks.check(f"{kind}: {client} over IPv{fam}: validated over IPv{fam} only",
                                 fams == {fam}, f"took over {fams}")

                def normal():
                    r = tls_handshake(lab.ns.client, PROD[fam], "production.example",
                                      ["http/1.1"])
                    if not r.ok:
                        return r.error
                    return None if fingerprint(r.cert) == prod_fp else "not production's cert"
                checks.run(f"{kind}: IPv{fam} normal TLS still sees production's certificate",
                           normal)
            lab.stop(gw)

        leaf_and_chain = lambda path: (path, path)

        # --- built-in responder: uacme + the shipped hook (tls-alpn-01 only), tokens socket.
        sock = os.path.join(lab.dir, "tokens.sock")
        hook = os.path.abspath(f"{HOOKS}/uacme-hook")
        env = [f"ACMEGW={acmegw}", f"ACMEGW_TOKEN_SOCKET={sock}", "ACMEGW_CHALLENGES=tls-alpn-01"]
        phase("tokens", ["--backend", f"tokens={sock}"], [
            ("uacme-hook", lab.ns.val,
             lambda w, n: acmelab.uacme(pebble, w, hook, [n]),
             lambda w, n: leaf_and_chain(f"{w}/{n}/cert.pem"), env)])

        # --- certdir: dehydrated on the firewall writes DOMAIN.crt.pem/DOMAIN.key.pem.
        alpn = os.path.join(lab.dir, "alpn-certs")
        os.makedirs(alpn)
        phase("certdir", ["--tls-backend", f"certdir={alpn}"], [
            ("dehydrated", lab.ns.fw,
             lambda w, n: acmelab.dehydrated(pebble, w, f"{w}/wellknown", [n],
                                             challenge="tls-alpn-01", alpncertdir=alpn),
             lambda w, n: (f"{w}/certs/{n}/cert.pem", f"{w}/certs/{n}/chain.pem"), [])])

        # --- relay: lego --tls on the validation host answers the whole relayed connection.
        phase("relay", ["--tls-backend", f"relay={VAL.v4}:443"], [
            ("lego-tls", lab.ns.val,
             lambda w, n: [acmelab.lego_tls(pebble, w, VAL.v4, [n])],
             lambda w, n: leaf_and_chain(f"{w}/certificates/{n}.crt"), [])])

        finish_production_load(lab, checks, loads, "production https during the whole matrix")
    checks.exit()


if __name__ == "__main__":
    main()
