#!/usr/bin/env python3
"""e2e: real ACME clients get certificates from Pebble through acmegw (DESIGN.md §3).
Pebble's http-01 fetches go client → fw → production's address; acmegw in fw takes each one
over and answers from its backend, so production (nginx) never sees a challenge request.

  webroot backend, clients on the firewall itself:  certbot --webroot, lego --http.webroot,
                                                    dehydrated (WELLKNOWN, no hook)
  tokens backend, clients on the validation host:   certbot --manual + scripts/hooks/certbot-*,
                                                    dehydrated + scripts/hooks/dehydrated-hook,
                                                    uacme + scripts/hooks/uacme-hook
  thumbprint backend, `acmegw thumbprint --account-key` of each client's own account key
  (certbot JWK JSON, lego/dehydrated/uacme PEM), clients serving nothing at all

Per client: the certificate is issued, verifies against Pebble's root and names the requested
name; production logged no challenge request. Tokens: the hooks' tokens are gone afterwards.
Pebble validates over IPv6 in the webroot phase (its DNS answers AAAA, which it prefers) and
over IPv4 in the tokens phase (AAAA answers switched off through challtestsrv's API).

Run: python3 tests/e2e/test_acme_clients.py --acmegw build/gateway/acmegw   (root; 77 if not)
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import sys
from typing import Callable, Optional

HERE = os.path.dirname(os.path.abspath(__file__))
HOOKS = os.path.join(HERE, "..", "..", "scripts", "hooks")
sys.path.insert(0, os.path.join(HERE, "..", "..", "scripts", "lab"))
import acmelab  # noqa: E402
from lab import CLIENT, PROD, Checks, Lab, parse_args, require  # noqa: E402

CHALLENGE = re.compile(r"^\S+ /\.well-known/acme-challenge/")


def takeover_families(log: str) -> set[int]:
    """Address families of the flows acmegw's log says it took over ("A -> B taken over")."""
    return {6 if m[1].startswith("[") else 4
            for m in re.finditer(r"takeover: (\S+) -> \S+ taken over", log)}


def issued(lab: Lab, pebble: acmelab.Pebble, root: str, ns: str, commands: list[list[str]],
           cert: str, chain: str, name: str, env: Optional[list[str]] = None) -> Optional[str]:
    """Run the client's commands in ns; None when `cert` then verifies and names `name`."""
    for argv in commands:
        try:
            lab.sh(ns, *pebble.client_env(), *(env or []), *argv, timeout=180)
        except RuntimeError as e:
            return str(e)[-1500:]
    acmelab.verify_chain(root, cert, chain)
    names = acmelab.cert_names(cert)
    return None if names == [name] else f"certificate names {names}"


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    require("pebble", "pebble-challtestsrv", "certbot", "lego", "dehydrated", "uacme", "nginx",
            "openssl", "curl", "unshare")
    checks = Checks()
    with Lab("acmecl", prefix="agwA", val=True, keep=args.keep) as lab:
        nginx = lab.start_nginx()
        pebble = acmelab.start_pebble(lab, lab.ns.client, CLIENT.v4,
                                      os.path.join(lab.dir, "pebble"), PROD.v4, PROD.v6)
        root = pebble.root(lab)
        protect = [PROD.v4, f"[{PROD.v6}]"]

        def client(label: str, ns: str, commands: list[list[str]], cert: str, chain: str,
                   env: Optional[list[str]] = None) -> None:
            """Check that the client issues `LABEL.example.com` (label up to a space)."""
            name = f"{label.split(' ')[0]}.example.com"
            checks.run(f"{label}: certificate issued through acmegw",
                       lambda: issued(lab, pebble, root, ns, commands, cert, chain, name, env))

        # --- webroot backend: the ACME client runs on the firewall and writes into DIR.
        webroot = os.path.join(lab.dir, "webroot")
        os.makedirs(webroot)
        gw = lab.run_acmegw(args.acmegw, "--backend", f"webroot={webroot}", protect=protect,
                            name="acmegw-webroot")
        w = os.path.join(lab.dir, "certbot-webroot")
        client("certbot-webroot", lab.ns.fw,
               [acmelab.certbot_webroot(pebble, w, webroot, ["certbot-webroot.example.com"])],
               *acmelab.certbot_live(w, "certbot-webroot.example.com"))
        w = os.path.join(lab.dir, "lego-webroot")
        client("lego-webroot", lab.ns.fw,
               [acmelab.lego_webroot(pebble, w, webroot, ["lego-webroot.example.com"])],
               f"{w}/certificates/lego-webroot.example.com.crt",
               f"{w}/certificates/lego-webroot.example.com.crt")
        w = os.path.join(lab.dir, "dehydrated-webroot")
        client("dehydrated-webroot", lab.ns.fw,
               acmelab.dehydrated(pebble, w, f"{webroot}/.well-known/acme-challenge",
                                  ["dehydrated-webroot.example.com"]),
               f"{w}/certs/dehydrated-webroot.example.com/cert.pem",
               f"{w}/certs/dehydrated-webroot.example.com/chain.pem")
        lab.stop(gw)

        # Pebble resolves names to PROD.v4 and PROD.v6 and prefers IPv6; from here on IPv4 only.
        fams = takeover_families(lab.log_of(gw))
        checks.check("webroot phase: Pebble validated over IPv6 only", fams == {6}, f"{fams}")
        pebble.resolve_to(lab, PROD.v4, "")

        # --- tokens backend: the ACME client runs on the validation host and feeds acmegw
        # through the hooks (the unix socket is a file: reachable from any namespace).
        sock = os.path.join(lab.dir, "tokens.sock")
        gw = lab.run_acmegw(args.acmegw, "--backend", f"tokens={sock},mode=0660,group=0",
                            protect=protect, name="acmegw-tokens")
        st = os.lstat(sock)
        checks.check("tokens: socket created with the requested mode and group",
                     stat.S_ISSOCK(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o660 and
                     st.st_gid == 0, f"mode {oct(st.st_mode)} gid {st.st_gid}")
        env = [f"ACMEGW={args.acmegw}", f"ACMEGW_TOKEN_SOCKET={sock}"]
        w = os.path.join(lab.dir, "certbot-hooks")
        client("certbot-hooks", lab.ns.val,
               [acmelab.certbot_manual(pebble, w, f"{HOOKS}/certbot-auth",
                                       f"{HOOKS}/certbot-cleanup", ["certbot-hooks.example.com"])],
               *acmelab.certbot_live(w, "certbot-hooks.example.com"), env=env)
        w = os.path.join(lab.dir, "dehydrated-hook")
        client("dehydrated-hook", lab.ns.val,
               acmelab.dehydrated(pebble, w, f"{w}/wellknown", ["dehydrated-hook.example.com"],
                                  hook=f"{HOOKS}/dehydrated-hook"),
               f"{w}/certs/dehydrated-hook.example.com/cert.pem",
               f"{w}/certs/dehydrated-hook.example.com/chain.pem", env=env)
        w = os.path.join(lab.dir, "uacme-hook")
        client("uacme-hook", lab.ns.val,
               acmelab.uacme(pebble, w, f"{HOOKS}/uacme-hook", ["uacme-hook.example.com"]),
               f"{w}/uacme-hook.example.com/cert.pem", f"{w}/uacme-hook.example.com/cert.pem",
               env=env)
        listed = lab.sh(lab.ns.val, "env", *env, args.acmegw, "token", "list")
        checks.check("tokens: the cleanup hooks removed every token", listed == "", listed)
        lab.stop(gw)
        checks.check("tokens: socket file removed when acmegw stops", not os.path.exists(sock))
        fams = takeover_families(lab.log_of(gw))
        checks.check("tokens phase: Pebble validated over IPv4 only", fams == {4}, f"{fams}")

        # --- thumbprint backend (stateless): the clients' own account keys, read by
        # `acmegw thumbprint`, are all acmegw needs; the clients serve nothing at all.
        nowhere = os.path.join(lab.dir, "unserved")  # lego writes here; nobody serves it
        os.makedirs(nowhere)
        true = shutil.which("true") or "/bin/true"  # certbot's no-op http-01 hook
        # uacme offers the challenge types in the CA's (random) order: accept only http-01.
        http01_only = os.path.join(lab.dir, "http01-only-hook")
        with open(http01_only, "w") as f:
            f.write('#!/bin/sh\n[ "$2" = http-01 ]\n')
        os.chmod(http01_only, 0o755)
        thumb_runs = [
            ("certbot", "certbot-hooks", lambda w, n: [acmelab.certbot_manual(
                pebble, w, true, true, [n])],
             lambda w, n: acmelab.certbot_live(w, n)),
            ("lego", "lego-webroot", lambda w, n: [acmelab.lego_webroot(pebble, w, nowhere, [n])],
             lambda w, n: (f"{w}/certificates/{n}.crt",) * 2),
            ("dehydrated", "dehydrated-webroot",
             lambda w, n: acmelab.dehydrated(pebble, w, nowhere, [n]),
             lambda w, n: (f"{w}/certs/{n}/cert.pem", f"{w}/certs/{n}/chain.pem")),
            ("uacme", "uacme-hook", lambda w, n: acmelab.uacme(pebble, w, http01_only, [n])[1:],
             lambda w, n: (f"{w}/{n}/cert.pem",) * 2),
        ]
        for client_name, workdir, commands, files in thumb_runs:
            w = os.path.join(lab.dir, workdir)
            key = acmelab.account_key(client_name, w)
            thumb = lab.sh(lab.ns.fw, args.acmegw, "thumbprint", "--account-key", key).strip()
            gw = lab.run_acmegw(args.acmegw, "--backend", f"thumbprint={thumb}", protect=protect,
                                name=f"acmegw-thumbprint-{client_name}")
            name = f"{client_name}-thumbprint.example.com"
            client(f"{client_name}-thumbprint ({os.path.basename(key)})", lab.ns.val,
                   commands(w, name), *files(w, name))
            lab.stop(gw)

        leaked = [e["request"] for e in nginx.log_lines() if CHALLENGE.match(e["request"])]
        checks.check("production never saw a challenge request", not leaked, f"{leaked}")
    checks.exit()


if __name__ == "__main__":
    main()
