#!/usr/bin/env python3
"""e2e: the ACME lab works — a real certificate is issued by Pebble to certbot --webroot, with
nginx in prod serving the webroot directly and the validation traffic forwarded by fw (no
acmegw in the path yet). This is the baseline the through-acmegw client matrix builds on.

Checks: certbot issues; the certificate verifies against Pebble's root fetched from the
management API and names exactly the requested names; Pebble's validation fetches reached
production's nginx from the client namespace's own address with status 200 and a body as long
as TOKEN.THUMBPRINT; `acmegw thumbprint` on certbot's JWK account key equals an independent
RFC 7638 computation.

Run: python3 tests/e2e/test_acme_lab.py --acmegw build/gateway/acmegw   (root; 77 if not)
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "scripts",
                                "lab"))
import acmelab  # noqa: E402
from lab import CLIENT, PROD, Checks, Lab, parse_args, require  # noqa: E402

NAMES = ["www.example.com", "example.com"]
CHALLENGE = re.compile(r"^GET /\.well-known/acme-challenge/([A-Za-z0-9_-]+) HTTP/1\.1$")


def rfc7638(jwk_file: str) -> str:
    """RFC 7638 thumbprint of an RSA JWK file, computed here independently of acmegw."""
    with open(jwk_file) as f:
        k = json.load(f)
    canonical = json.dumps({"e": k["e"], "kty": "RSA", "n": k["n"]}, separators=(",", ":"),
                           sort_keys=True)
    return base64.urlsafe_b64encode(hashlib.sha256(canonical.encode()).digest()).rstrip(b"=").decode()


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    require("pebble", "pebble-challtestsrv", "certbot", "nginx", "openssl", "curl")
    checks = Checks()
    with Lab("acme", prefix="agwA", keep=args.keep) as lab:
        nginx = lab.start_nginx()
        pebble = acmelab.start_pebble(lab, lab.ns.client, CLIENT.v4,
                                      os.path.join(lab.dir, "pebble"), PROD.v4, PROD.v6)
        work = os.path.join(lab.dir, "certbot")
        webroot = os.path.join(nginx.root, "www")

        def issue() -> str | None:
            try:
                lab.sh(lab.ns.prod, *pebble.client_env(),
                       *acmelab.certbot_webroot(pebble, work, webroot, NAMES), timeout=180)
            except RuntimeError as e:
                return f"{e}\n(pebble log: {os.path.join(lab.dir, 'pebble.log')})"
            return None

        if not checks.run("certbot --webroot: certificate issued", issue):
            checks.exit()

        cert, chain = acmelab.certbot_live(work, NAMES[0])

        def verify() -> str | None:
            out = acmelab.verify_chain(pebble.root(lab), cert, chain)
            return None if out.endswith(": OK") else out

        checks.run("certificate verifies against Pebble's root (management API)", verify)
        names = acmelab.cert_names(cert)
        checks.check("certificate names", sorted(names) == sorted(NAMES), f"{names}")

        fetches = [e for e in nginx.log_lines() if CHALLENGE.match(e["request"])]
        thumb = rfc7638(acmelab.certbot_account_key(work))
        checks.check("validation fetches reached production (one per name at least)",
                     len({CHALLENGE.match(e["request"])[1] for e in fetches}) >= len(NAMES),
                     f"{[e['request'] for e in fetches]}")
        checks.check("validation fetches came from the client namespace's own address",
                     bool(fetches) and all(e["addr"] in CLIENT for e in fetches),
                     f"{[e['addr'] for e in fetches]}")
        checks.check("validation fetches answered 200 with TOKEN.THUMBPRINT-sized bodies",
                     bool(fetches) and all(
                         e["status"] == 200 and
                         e["bytes"] == len(CHALLENGE.match(e["request"])[1]) + 1 + len(thumb)
                         for e in fetches), f"{fetches}")

        out = subprocess.run([args.acmegw, "thumbprint", "--account-key",
                              acmelab.certbot_account_key(work)], capture_output=True, text=True)
        checks.check("acmegw thumbprint of certbot's account key = independent RFC 7638",
                     out.returncode == 0 and out.stdout.strip() == thumb,
                     f"acmegw: {out.stdout.strip()!r} {out.stderr.strip()!r}, python: {thumb!r}")
    checks.exit()


if __name__ == "__main__":
    main()
