#!/usr/bin/env python3
"""e2e: the ACME issuance matrix of issue 6 — every client, over IPv4 and over IPv6, under load.
Pebble (PEBBLE_VA_NOSLEEP=1, fresh authorizations for every order) and challtestsrv run in the
client namespace; challtestsrv points every name at production. Each run is done twice: once
with A-only DNS answers (Pebble validates over IPv4) and once with AAAA-only answers (IPv6); the
family acmegw took over is read back from its log, so a run cannot pass over the wrong family.

  webroot backend     certbot --webroot on the firewall
  tokens backend      certbot --manual + scripts/hooks/certbot-*, uacme + scripts/hooks/uacme-hook,
                      dehydrated + scripts/hooks/dehydrated-hook, all on the validation host
  relay backend       certbot --standalone and lego --http on the validation host
                      (`--backend relay=VAL:80`, the whole connection relayed)
  thumbprint backend  certbot --manual with no-op hooks (stateless: acmegw answers from the
                      account key's thumbprint alone)

Every certificate must verify against Pebble's root and name exactly the requested name.
During the whole matrix (acmegw restarts between backends included) two wrk loads run against
production through the firewall, one keep-alive and one with `Connection: close`; both must end
with 0 socket errors and 0 non-2xx answers, and production must never see a challenge request.
Runs listed in KNOWN_BROKEN (an acmegw bug, described there) run after the load, print XFAIL
while they fail and count as a failure once they pass.

Run: python3 tests/e2e/test_acme_matrix.py --acmegw build/gateway/acmegw   (root; 77 if not)
"""

from __future__ import annotations

import os
import sys
from typing import Callable

HERE = os.path.dirname(os.path.abspath(__file__))
HOOKS = os.path.join(HERE, "..", "..", "scripts", "hooks")
sys.path.insert(0, os.path.join(HERE, "..", "..", "scripts", "lab"))
import acmelab  # noqa: E402
from lab import (CLIENT, PROD, VAL, Checks, Lab, finish_production_load, parse_args, require,
                 start_production_load, url)  # noqa: E402
from test_acme_clients import CHALLENGE, issued, takeover_families  # noqa: E402

FAMILIES = {4: (PROD.v4, ""), 6: ("", PROD.v6)}  # A-only / AAAA-only DNS answers

# Runs that fail today because of a known acmegw bug: reported as XFAIL while they fail, and as a
# failure once they pass (so the entry is removed with the fix). They run after the production
# load has been checked, so that a broken run cannot disturb the load's numbers.
KNOWN_BROKEN: dict[str, str] = {}  # client -> the acmegw bug that breaks it

# Runs seen to fail now and then for a reason not found yet. Every run may be retried once
# under a fresh name: its failure is printed as RETRY (with the tail of the client's own log,
# to find the cause) and a second failure fails the test. The 2026-12-06 CI run failed this
# test once with no output kept; scripts/test now prints the FAIL/RETRY lines of a failed suite.
FLAKY: dict[str, str] = {
    "certbot-standalone": "1 failure in ~5 matrix runs (IPv6, 'Some challenges have failed'); "
                          "cause not found yet",
}
UNEXPLAINED = "not seen to fail locally; one unexplained CI failure of this test (2026-12-06)"


def log_tail(workdir: str, lines: int = 15) -> str:
    """The last lines of every *.log under workdir (a client's own log), for a failure report."""
    out = []
    for dirpath, _, names in os.walk(workdir):
        for n in names:
            if n.endswith(".log"):
                with open(os.path.join(dirpath, n), errors="replace") as f:
                    out += [f"  {n}: {line.rstrip()}" for line in f.readlines()[-lines:]]
    return "\n".join(out)


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    require("pebble", "pebble-challtestsrv", "certbot", "lego", "dehydrated", "uacme", "nginx",
            "openssl", "curl", "unshare", "wrk")
    acmegw = os.path.abspath(args.acmegw)
    checks = Checks()
    with Lab("acmematrix", prefix="agwD", val=True, keep=args.keep) as lab:
        nginx = lab.start_nginx(workers=2)
        pebble = acmelab.start_pebble(lab, lab.ns.client, CLIENT.v4,
                                      os.path.join(lab.dir, "pebble"), PROD.v4, PROD.v6)
        root = pebble.root(lab)
        protect = [PROD.v4, f"[{PROD.v6}]"]

        # Production load for the whole matrix; wrk prints its totals when interrupted (SIGINT).
        loads = start_production_load(lab, url(PROD.v4, "/"), url(PROD.v6, "/"), connections=8)

        Run = tuple[str, str, Callable[[str, str], list[list[str]]],
                    Callable[[str, str], tuple[str, str]], list[str]]
        deferred: list[tuple[str, list[Run]]] = []  # KNOWN_BROKEN runs, done after the load

        def phase(backend: str, runs: list[Run]) -> None:
            """Start acmegw with `backend`, then issue with every run once per family.
            A run is (client, namespace, commands(workdir, name), (cert, chain)(workdir, name),
            extra env); the name is CLIENT-vFAMILY.example.com, state in lab.dir/CLIENT-vFAMILY."""
            kind = backend.split("=")[0]
            gw = lab.run_acmegw(acmegw, "--backend", backend, protect=protect,
                                name=f"acmegw-{kind}")
            for fam, answers in FAMILIES.items():
                pebble.resolve_to(lab, *answers)
                for client, ns, commands, files, env in runs:
                    before = len(lab.log_of(gw))
                    what = f"{kind}: {client} over IPv{fam}: certificate issued"
                    for attempt in range(2):
                        label = f"{client}-v{fam}" + ("-retry" if attempt else "")
                        name, w = f"{label}.example.com", os.path.join(lab.dir, label)
                        try:
                            why = issued(lab, pebble, root, ns, commands(w, name),
                                         *files(w, name), name, env)
                        except Exception as e:  # the chain does not verify: a failed run
                            why = f"{type(e).__name__}: {e}"
                        if why is None:
                            break
                        if attempt == 0:
                            print(f"RETRY {what} ({FLAKY.get(client, UNEXPLAINED)}): {why}\n"
                                  f"{log_tail(w)}", flush=True)
                    if client in KNOWN_BROKEN:
                        checks.check(f"{what} (known broken: remove from KNOWN_BROKEN)",
                                     why is not None, "it works now")
                        print(f"XFAIL {what}: {KNOWN_BROKEN[client]}", flush=True)
                    else:
                        checks.check(what, why is None, why or "")
                    fams = takeover_families(lab.log_of(gw)[before:])
                    checks.check(f"{kind}: {client} over IPv{fam}: validated over IPv{fam} only",
                                 fams == {fam}, f"took over {fams}")
            lab.stop(gw)

        def matrix(backend: str, runs: list[Run]) -> None:
            """phase() under load; KNOWN_BROKEN runs are deferred until the load has stopped
            (a failing validation leaves aborted flows that must not be blamed on the load)."""
            phase(backend, [r for r in runs if r[0] not in KNOWN_BROKEN])
            broken = [r for r in runs if r[0] in KNOWN_BROKEN]
            if broken:
                deferred.append((backend, broken))

        certbot_live = acmelab.certbot_live
        dehydrated_files = lambda w, n: (f"{w}/certs/{n}/cert.pem", f"{w}/certs/{n}/chain.pem")
        leaf_and_chain = lambda path: (path, path)  # lego/uacme store leaf + chain in one file

        # --- webroot: the client on the firewall writes DIR/.well-known/acme-challenge/TOKEN.
        webroot = os.path.join(lab.dir, "webroot")
        os.makedirs(webroot)
        matrix(f"webroot={webroot}", [
            ("certbot-webroot", lab.ns.fw,
             lambda w, n: [acmelab.certbot_webroot(pebble, w, webroot, [n])], certbot_live, [])])

        # --- tokens: clients on the validation host feed acmegw through the shipped hooks.
        sock = os.path.join(lab.dir, "tokens.sock")
        env = [f"ACMEGW={acmegw}", f"ACMEGW_TOKEN_SOCKET={sock}"]
        matrix(f"tokens={sock}", [
            ("certbot-hooks", lab.ns.val, lambda w, n: [acmelab.certbot_manual(
                pebble, w, f"{HOOKS}/certbot-auth", f"{HOOKS}/certbot-cleanup", [n])],
             certbot_live, env),
            ("uacme-hook", lab.ns.val,
             lambda w, n: acmelab.uacme(pebble, w, f"{HOOKS}/uacme-hook", [n]),
             lambda w, n: leaf_and_chain(f"{w}/{n}/cert.pem"), env),
            ("dehydrated-hook", lab.ns.val,
             lambda w, n: acmelab.dehydrated(pebble, w, f"{w}/wellknown", [n],
                                             hook=f"{HOOKS}/dehydrated-hook"),
             dehydrated_files, env)])

        # --- relay: standalone clients on the validation host answer the relayed connection.
        matrix(f"relay={VAL.v4}:80", [
            ("certbot-standalone", lab.ns.val,
             lambda w, n: [acmelab.certbot_standalone(pebble, w, VAL.v4, [n])], certbot_live, []),
            ("lego-http", lab.ns.val,
             lambda w, n: [acmelab.lego_http(pebble, w, VAL.v4, [n])],
             lambda w, n: leaf_and_chain(f"{w}/certificates/{n}.crt"), [])])

        # --- thumbprint (stateless): one certbot account registered up front; acmegw knows only
        # its thumbprint and the client serves nothing (no-op hooks).
        account = os.path.join(lab.dir, "certbot-thumbprint")
        lab.sh(lab.ns.val, *pebble.client_env(), "certbot", "register", "--non-interactive",
               "--agree-tos", "--register-unsafely-without-email", "--server", pebble.url,
               "--config-dir", f"{account}/etc", "--work-dir", f"{account}/work",
               "--logs-dir", f"{account}/logs", timeout=120)
        thumb = lab.sh(lab.ns.fw, acmegw, "thumbprint", "--account-key",
                       acmelab.account_key("certbot", account)).strip()
        true = "/bin/true"
        matrix(f"thumbprint={thumb}", [
            ("certbot-thumbprint", lab.ns.val, lambda w, n: [acmelab.certbot_manual(
                pebble, account, true, true, [n])],
             lambda w, n: certbot_live(account, n), [])])

        finish_production_load(lab, checks, loads, "production during the whole matrix")
        for backend, runs in deferred:
            phase(backend, runs)
        leaked = [e["request"] for e in nginx.log_lines() if CHALLENGE.match(e["request"])]
        checks.check("production never saw a challenge request", not leaked, f"{leaked}")
    checks.exit()


if __name__ == "__main__":
    main()
