#!/usr/bin/env python3
"""acmegw demo: a namespace lab (client with Pebble as the ACME CA, fw running acmegw, prod
running nginx on http and https, val running certbot and uacme) that shows production traffic
passing untouched while real certificates are issued through acmegw's tokens backend: http-01
on port 80 (certbot), then tls-alpn-01 on port 443 (uacme, built-in responder). Run as root
through scripts/demo.

Grows with the project: each step prints what it shows and the evidence.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..", "..")
sys.path.insert(0, os.path.join(ROOT, "tests", "e2e"))
import acmelab  # noqa: E402
import tlslab  # noqa: E402
from lab import CLIENT, PROD, Lab, url  # noqa: E402

NAME = "www.example.com"
TLS_NAME = "tls.example.com"


def step(text: str) -> None:
    print(f"\n== {text}", flush=True)


def show(text: str) -> None:
    for line in text.rstrip().splitlines():
        print(f"   {line}", flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--acmegw", required=True, help="the acmegw executable")
    p.add_argument("--keep", action="store_true", help="leave the lab running afterwards")
    args = p.parse_args()
    acmegw = os.path.abspath(args.acmegw)
    hooks = os.path.abspath(os.path.join(ROOT, "scripts", "hooks"))
    if os.geteuid() != 0:
        sys.exit("demo: needs root (network namespaces, NFQUEUE, iptables)")

    with Lab("demo", prefix="agwA", val=True, keep=args.keep) as lab:
        step(f"lab: namespaces {lab.ns.client} (Pebble, curl) | {lab.ns.fw} (acmegw) | "
             f"{lab.ns.prod} (nginx at {PROD.v4}) | {lab.ns.val} (certbot)")
        nginx = lab.start_nginx()
        prod_cert, prod_key = tlslab.make_cert(os.path.join(lab.dir, "prod-tls"), "production",
                                               ["production.example"])
        tlslab.start_nginx_tls(lab, prod_cert, prod_key, http=False)
        pebble = acmelab.start_pebble(lab, lab.ns.client, CLIENT.v4,
                                      os.path.join(lab.dir, "pebble"), PROD.v4, PROD.v6)
        show(f"Pebble ACME directory {pebble.url}; its DNS resolves every name to {PROD.v4} / "
             f"{PROD.v6}")

        sock = os.path.join(lab.dir, "tokens.sock")
        protect = [PROD.v4, f"[{PROD.v6}]", f"tls://{PROD.v4}", f"tls://[{PROD.v6}]"]
        step("acmegw run " + " ".join(f"--protect {p}" for p in protect) +
             f" --backend tokens={sock}")
        gw = lab.run_acmegw(acmegw, "--backend", f"tokens={sock}", protect=protect,
                            name="acmegw")

        step("production traffic goes to nginx untouched (client's own address in its log)")
        page = lab.sh(lab.ns.client, "curl", "-sS", url(PROD.v4, "/"))
        show(f"GET / -> {len(page)} bytes; nginx log: {nginx.log_lines()[-1]}")

        step("an unknown challenge token is answered by acmegw, not by production")
        show(lab.sh(lab.ns.client, "curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}\n",
                    url(PROD.v4, "/.well-known/acme-challenge/unknown-token")))

        step(f"certbot in {lab.ns.val} with the acmegw hooks (scripts/hooks/certbot-*)")
        work = os.path.join(lab.dir, "certbot")
        env = ["env", f"ACMEGW={acmegw}", f"ACMEGW_TOKEN_SOCKET={sock}"]
        out = lab.sh(lab.ns.val, *pebble.client_env(), *env,
                     *acmelab.certbot_manual(pebble, work, f"{hooks}/certbot-auth",
                                             f"{hooks}/certbot-cleanup", [NAME]), timeout=180)
        show("\n".join(line for line in out.splitlines() if "Certificate is saved" in line
                       or "Successfully received" in line))
        cert, chain = acmelab.certbot_live(work, NAME)
        show(acmelab.verify_chain(pebble.root(lab), cert, chain) + "  (against Pebble's root)")
        show("names: " + ", ".join(acmelab.cert_names(cert)))
        show(subprocess.run(["openssl", "x509", "-in", cert, "-noout", "-subject", "-issuer",
                             "-startdate", "-enddate"], capture_output=True, text=True,
                            check=True).stdout.rstrip())

        step(f"tls-alpn-01 on port 443: uacme in {lab.ns.val} with scripts/hooks/uacme-hook "
             "(ACMEGW_CHALLENGES=tls-alpn-01), answered by acmegw's built-in responder")
        uacme_work = os.path.join(lab.dir, "uacme")
        for argv in acmelab.uacme(pebble, uacme_work, f"{hooks}/uacme-hook", [TLS_NAME]):
            lab.sh(lab.ns.val, *pebble.client_env(), *env, "ACMEGW_CHALLENGES=tls-alpn-01",
                   *argv, timeout=180)
        tls_cert = os.path.join(uacme_work, TLS_NAME, "cert.pem")
        show(acmelab.verify_chain(pebble.root(lab), tls_cert, tls_cert) +
             "  (against Pebble's root)")
        show("names: " + ", ".join(acmelab.cert_names(tls_cert)))
        https = lab.sh(lab.ns.client, "curl", "-sS", "-k", "-o", "/dev/null", "-w",
                       "%{http_code} %{ssl_verify_result}\n", f"https://{PROD.v4}/")
        subject = lab.sh(lab.ns.client, "sh", "-c", f"openssl s_client -connect {PROD.v4}:443 "
                         "-servername production.example </dev/null 2>/dev/null | "
                         "openssl x509 -noout -subject")
        show(f"production https meanwhile: GET / -> {https.split()[0]}; certificate "
             f"{subject.strip()} (production's own)")

        step("evidence")
        challenges = [e for e in nginx.log_lines() if "acme-challenge" in e["request"]]
        show(f"challenge requests in production's log: {len(challenges)}")
        taken = re.findall(r"takeover: .* taken over .*", lab.log_of(gw))
        show(f"flows acmegw took over: {len(taken)} (Pebble validates from several "
             "perspectives at once)")
        show("\n".join(taken))
        show("acmegw rules print --counters (packets, rule):")
        counters = lab.sh(lab.ns.fw, acmegw, "rules", "print", "--counters",
                          *[a for p in protect for a in ("--protect", p)])
        for line in counters.splitlines():  # packets and the rule's comment; bytecode omitted
            m = re.match(r"\s*(\d+)\s+\d+\s+-A (\S+).*--comment \"?([^\"]*?)\"? -j", line)
            show(f"{m[1]:>8}  {m[2]}: {m[3]}" if m else line)
        lab.stop(gw)
        show("\n".join(line for line in lab.log_of(gw).splitlines() if "stats: " in line))
        if args.keep:
            step(f"lab kept (--keep): Pebble and nginx still run, acmegw is stopped; files in "
                 f"{lab.dir}")
            show("start acmegw again:\n  " + shlex.join(
                ["ip", "netns", "exec", lab.ns.fw, acmegw, "run",
                 *[a for p in protect for a in ("--protect", p)], "--backend",
                 f"tokens={sock}"]))
            show("production through the firewall:\n  " + shlex.join(
                ["ip", "netns", "exec", lab.ns.client, "curl", url(PROD.v4, "/")]))
            show("issue again (acmegw running):\n  " + shlex.join(
                ["ip", "netns", "exec", lab.ns.val, *pebble.client_env(), *env,
                 *acmelab.certbot_manual(pebble, work, f"{hooks}/certbot-auth",
                                         f"{hooks}/certbot-cleanup", [NAME])]))
    print("\ndemo: done", flush=True)


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:  # Ctrl-C: the Lab has already stopped its processes and namespaces
        print("\ndemo: interrupted; lab removed", file=sys.stderr, flush=True)
        sys.exit(130)
