"""ACME lab helpers: Pebble (the test CA) and pebble-challtestsrv (its DNS) in a lab namespace,
and the command lines of real ACME clients pointed at it. Python 3 stdlib, Debian packages
`pebble certbot lego uacme dehydrated` (scripts/bootstrap installs them).

What Pebble needs here, and why:
  * A TLS certificate for its ACME listener: Debian's pebble ships none (upstream's test/certs
    are not packaged), so make_tls() creates a throw-away CA and a leaf for the listener's
    address with openssl. Clients trust that CA: certbot through REQUESTS_CA_BUNDLE, lego
    through LEGO_CA_CERTIFICATES, uacme/dehydrated through curl's CURL_CA_BUNDLE.
  * DNS: Pebble resolves the names it validates through -dnsserver; pebble-challtestsrv answers
    every A/AAAA query with production's addresses (-defaultIPv4/-defaultIPv6), so any name
    "points at" production, as a public name would.
  * PEBBLE_VA_NOSLEEP=1 (no random 0-15 s sleep before validating), PEBBLE_VA_ALWAYS_VALID=0
    (really fetch http://NAME/.well-known/acme-challenge/TOKEN), PEBBLE_AUTHZREUSE=0 (every
    order validates again, so every client run is a real validation), PEBBLE_WFE_NONCEREJECT=0
    (by default Pebble rejects 5% of good nonces to test client retries; not what we test).
  * httpPort 80 / tlsPort 443: Pebble validates on its test ports 5002/5001 otherwise.
  * The issuing root is random per Pebble start; fetch it from the management API
    (GET https://ADDR:15000/roots/0) to verify issued chains.

Used by tests/e2e/test_acme_*.py and scripts/demo with tests/e2e/lab.py's Lab (any object with
.sh(ns, *argv), .spawn(ns, *argv, name=) and .wait_for(cond, timeout, what) works).
"""

from __future__ import annotations

import glob
import json
import os
import subprocess
from dataclasses import dataclass
from typing import Sequence

ACME_PORT = 14000
MGMT_PORT = 15000
DNS_PORT = 8053
CHALLTESTSRV_PORT = 8055  # challtestsrv's management API


def _run(*argv: str) -> None:
    subprocess.run(argv, check=True, capture_output=True)


def make_tls(directory: str, ips: Sequence[str], names: Sequence[str] = ("pebble", "localhost")
             ) -> tuple[str, str, str]:
    """Create a throw-away CA and a leaf certificate for Pebble's listener in `directory`, valid
    for `ips` and `names`. Returns (ca.pem, cert.pem, key.pem) paths."""
    ca_key, ca = os.path.join(directory, "ca.key"), os.path.join(directory, "ca.pem")
    key, csr, cert = (os.path.join(directory, n) for n in ("key.pem", "cert.csr", "cert.pem"))
    ext = os.path.join(directory, "leaf.ext")
    _run("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
         "-nodes", "-keyout", ca_key, "-out", ca, "-days", "2", "-subj", "/CN=acmegw lab CA",
         "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign")
    _run("openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
         "-keyout", key, "-out", csr, "-subj", "/CN=pebble")
    san = ",".join([f"IP:{a}" for a in ips] + [f"DNS:{n}" for n in names])
    with open(ext, "w") as f:
        f.write(f"subjectAltName={san}\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n")
    _run("openssl", "x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial",
         "-out", cert, "-days", "2", "-extfile", ext)
    return ca, cert, key


@dataclass
class Pebble:
    """A running Pebble + challtestsrv pair (processes belong to the lab that spawned them)."""

    ns: str
    addr: str        # where the ACME API listens (IPv4 literal)
    directory: str   # its files: TLS, config, fetched roots
    ca: str          # trust anchor for the ACME API's TLS certificate

    @property
    def url(self) -> str:
        """The ACME directory URL."""
        return f"https://{self.addr}:{ACME_PORT}/dir"

    def client_env(self) -> list[str]:
        """`env` argv prefix that makes certbot (requests), lego and curl-based clients (uacme,
        dehydrated) trust the ACME API's certificate: lab.sh(ns, *pebble.client_env(), ...)."""
        return ["env", f"REQUESTS_CA_BUNDLE={self.ca}", f"LEGO_CA_CERTIFICATES={self.ca}",
                f"CURL_CA_BUNDLE={self.ca}", f"SSL_CERT_FILE={self.ca}"]

    def resolve_to(self, lab, v4: str, v6: str) -> None:
        """Make challtestsrv answer every A query with v4 and every AAAA query with v6 from now
        on ("" = no answer: Pebble then validates over the other family)."""
        for fam, ip in (("ipv4", v4), ("ipv6", v6)):
            lab.sh(self.ns, "curl", "-sSf", "-d", json.dumps({"ip": ip}),
                   f"http://{self.addr}:{CHALLTESTSRV_PORT}/set-default-{fam}")

    def root(self, lab) -> str:
        """Path of the PEM of Pebble's current issuing root (fetched from the management API)."""
        path = os.path.join(self.directory, "root.pem")
        pem = lab.sh(self.ns, "curl", "-sSf", "--cacert", self.ca,
                     f"https://{self.addr}:{MGMT_PORT}/roots/0")
        with open(path, "w") as f:
            f.write(pem)
        return path


def start_pebble(lab, ns: str, addr: str, directory: str, answer_v4: str, answer_v6: str = "",
                 http_port: int = 80, tls_port: int = 443) -> Pebble:
    """Start pebble-challtestsrv (DNS on addr:8053 answering every name with answer_v4 /
    answer_v6) and Pebble (ACME API on addr:14000, management on addr:15000) in `ns`; returns
    once both accept connections. Processes are spawned through `lab`, which stops them."""
    os.makedirs(directory, exist_ok=True)
    ca, cert, key = make_tls(directory, [addr])
    config = os.path.join(directory, "pebble-config.json")
    with open(config, "w") as f:
        json.dump({"pebble": {
            "listenAddress": f"{addr}:{ACME_PORT}",
            "managementListenAddress": f"{addr}:{MGMT_PORT}",
            "certificate": cert, "privateKey": key,
            "httpPort": http_port, "tlsPort": tls_port,
            "ocspResponderURL": "", "externalAccountBindingRequired": False}}, f, indent=2)
    # Only DNS is wanted from challtestsrv: its own HTTP-01/TLS-ALPN-01 responders stay off.
    lab.spawn(ns, "pebble-challtestsrv", "-dns01", f"{addr}:{DNS_PORT}", "-http01", "",
              "-https01", "", "-tlsalpn01", "", "-management", f"{addr}:{CHALLTESTSRV_PORT}",
              "-defaultIPv4", answer_v4, "-defaultIPv6", answer_v6, name="challtestsrv")
    env = ["env", "PEBBLE_VA_NOSLEEP=1", "PEBBLE_VA_ALWAYS_VALID=0", "PEBBLE_AUTHZREUSE=0",
           "PEBBLE_WFE_NONCEREJECT=0"]
    lab.spawn(ns, *env, "pebble", "-config", config, "-dnsserver", f"{addr}:{DNS_PORT}",
              "-strict=false", name="pebble")
    lab.wait_for(lambda: lab.can_connect(ns, addr, ACME_PORT), 20, "pebble ACME API")
    lab.wait_for(lambda: lab.can_connect(ns, addr, MGMT_PORT), 20, "pebble management API")
    return Pebble(ns, addr, directory, ca)


def certbot_webroot(pebble: Pebble, workdir: str, webroot: str, names: Sequence[str]) -> list[str]:
    """argv of `certbot certonly --webroot` against Pebble, keeping all state under workdir
    (prefix it with pebble.client_env())."""
    argv = ["certbot", "certonly", "--non-interactive", "--agree-tos",
            "--register-unsafely-without-email", "--server", pebble.url,
            "--config-dir", f"{workdir}/etc", "--work-dir", f"{workdir}/work",
            "--logs-dir", f"{workdir}/logs", "--webroot", "-w", webroot]
    for n in names:
        argv += ["-d", n]
    return argv


def certbot_manual(pebble: Pebble, workdir: str, auth_hook: str, cleanup_hook: str,
                   names: Sequence[str]) -> list[str]:
    """argv of `certbot certonly --manual` with http-01 hooks (scripts/hooks/certbot-*)."""
    argv = ["certbot", "certonly", "--non-interactive", "--agree-tos",
            "--register-unsafely-without-email", "--server", pebble.url,
            "--config-dir", f"{workdir}/etc", "--work-dir", f"{workdir}/work",
            "--logs-dir", f"{workdir}/logs", "--manual", "--preferred-challenges", "http",
            "--manual-auth-hook", auth_hook, "--manual-cleanup-hook", cleanup_hook]
    for n in names:
        argv += ["-d", n]
    return argv


def certbot_standalone(pebble: Pebble, workdir: str, addr: str, names: Sequence[str]
                       ) -> list[str]:
    """argv of `certbot certonly --standalone` serving http-01 itself on addr:80 (a validation
    host behind acmegw's relay backend)."""
    argv = ["certbot", "certonly", "--non-interactive", "--agree-tos",
            "--register-unsafely-without-email", "--server", pebble.url,
            "--config-dir", f"{workdir}/etc", "--work-dir", f"{workdir}/work",
            "--logs-dir", f"{workdir}/logs", "--standalone", "--preferred-challenges", "http",
            "--http-01-address", addr, "--http-01-port", "80"]
    for n in names:
        argv += ["-d", n]
    return argv


def lego_http(pebble: Pebble, workdir: str, addr: str, names: Sequence[str]) -> list[str]:
    """argv of `lego --http` serving http-01 itself on addr:80; the certificate lands in
    workdir/certificates/NAME.crt (leaf + chain)."""
    argv = ["lego", "--server", pebble.url, "--accept-tos", "--email", "lab@example.com",
            "--path", workdir, "--http", "--http.port", f"{addr}:80"]
    for n in names:
        argv += ["--domains", n]
    return argv + ["run"]


def lego_tls(pebble: Pebble, workdir: str, addr: str, names: Sequence[str]) -> list[str]:
    """argv of `lego --tls` answering tls-alpn-01 itself on addr:443 (a validation host behind
    acmegw's TLS relay backend); the certificate lands in workdir/certificates/NAME.crt."""
    host = f"[{addr}]" if ":" in addr else addr
    argv = ["lego", "--server", pebble.url, "--accept-tos", "--email", "lab@example.com",
            "--path", workdir, "--tls", "--tls.port", f"{host}:443"]
    for n in names:
        argv += ["--domains", n]
    return argv + ["run"]


def lego_webroot(pebble: Pebble, workdir: str, webroot: str, names: Sequence[str]) -> list[str]:
    """argv of `lego --http --http.webroot` against Pebble; the certificate lands in
    workdir/certificates/NAME.crt (leaf + chain)."""
    argv = ["lego", "--server", pebble.url, "--accept-tos", "--email", "lab@example.com",
            "--path", workdir, "--http", "--http.webroot", webroot]
    for n in names:
        argv += ["--domains", n]
    return argv + ["run"]


def dehydrated(pebble: Pebble, workdir: str, wellknown: str, names: Sequence[str],
               hook: str = "", challenge: str = "http-01", alpncertdir: str = ""
               ) -> list[list[str]]:
    """argv lists (register, then issue) of dehydrated against Pebble with its config and state
    in workdir; the certificate lands in workdir/certs/NAME/{cert,chain}.pem. challenge
    "tls-alpn-01": dehydrated writes ALPNCERTDIR/NAME.{crt,key}.pem (acmegw certdir backend)."""
    os.makedirs(wellknown, exist_ok=True)
    config = os.path.join(workdir, "config")
    os.makedirs(workdir, exist_ok=True)
    with open(config, "w") as f:
        f.write(f'CA="{pebble.url}"\nCHALLENGETYPE="{challenge}"\nBASEDIR="{workdir}"\n'
                f'WELLKNOWN="{wellknown}"\nHOOK="{hook}"\nKEY_ALGO="prime256v1"\n')
        if alpncertdir:
            f.write(f'ALPNCERTDIR="{alpncertdir}"\n')
    base = ["dehydrated", "--config", config]
    domains = [a for n in names for a in ("--domain", n)]
    return [base + ["--register", "--accept-terms"], base + ["--cron", *domains]]


def uacme(pebble: Pebble, workdir: str, hook: str, names: Sequence[str]) -> list[list[str]]:
    """argv lists (account, then issue) of uacme against Pebble; the certificate (leaf +
    chain) lands in workdir/NAME/cert.pem. uacme's libcurl-gnutls reads only the system CA
    file, so each command runs in a private mount namespace where Pebble's CA is bind-mounted
    over /etc/ssl/certs/ca-certificates.crt (the host's file is untouched)."""
    wrap = ["unshare", "-m", "--propagation", "private", "sh", "-c",
            'mount --bind "$0" /etc/ssl/certs/ca-certificates.crt && exec "$@"', pebble.ca]
    base = ["uacme", "-v", "-c", workdir, "-a", pebble.url, "-h", hook]
    return [wrap + base + ["-y", "new"], wrap + base + ["issue", *names]]


# Where each client keeps its ACME account key below its state directory (as set up by the
# argv builders above): certbot a JWK (JSON), the others PEM.
ACCOUNT_KEYS = {
    "certbot": "etc/accounts/*/*/*/private_key.json",  # <server>/directory/<account id>/
    "lego": "accounts/*/*/keys/*.key",                 # <server>/<email>/keys/<email>.key
    "dehydrated": "accounts/*/account_key.pem",        # <base64url of the CA URL>/
    "uacme": "private/key.pem",
}


def account_key(client: str, workdir: str) -> str:
    """Path of the account key `client` (a key of ACCOUNT_KEYS) created under workdir."""
    found = glob.glob(os.path.join(workdir, ACCOUNT_KEYS[client]))
    if len(found) != 1:
        raise FileNotFoundError(f"{client} account key under {workdir}: found {found}")
    return found[0]


def certbot_account_key(workdir: str) -> str:
    """Path of the account key certbot created under workdir."""
    return account_key("certbot", workdir)


def certbot_live(workdir: str, name: str) -> tuple[str, str]:
    """(cert.pem, chain.pem) certbot stored for `name` under workdir."""
    live = os.path.join(workdir, "etc", "live", name)
    return os.path.join(live, "cert.pem"), os.path.join(live, "chain.pem")


def verify_chain(root: str, cert: str, chain: str) -> str:
    """`openssl verify` output for cert against Pebble's root with chain as intermediates
    (raises CalledProcessError with the reason when it does not verify)."""
    r = subprocess.run(["openssl", "verify", "-CAfile", root, "-untrusted", chain, cert],
                       capture_output=True, text=True, check=True)
    return r.stdout.strip()


def cert_names(cert: str) -> list[str]:
    """The DNS names in cert's subjectAltName."""
    out = subprocess.run(["openssl", "x509", "-in", cert, "-noout", "-ext", "subjectAltName"],
                         capture_output=True, text=True, check=True).stdout
    return [p.strip()[4:] for p in out.replace("\n", ",").split(",") if p.strip().startswith("DNS:")]

