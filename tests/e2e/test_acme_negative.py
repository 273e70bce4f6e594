#!/usr/bin/env python3
"""e2e: what must fail does fail, clearly, and breaks nothing else (issue 6 "Prove it").

Negative control: the ACME run that succeeds through acmegw (certbot --webroot on the firewall,
Pebble validating production's address) fails once acmegw is stopped — Pebble's fetch reaches
production, whose nginx logs the 404 for that challenge path — and succeeds again once acmegw
runs. So a passing issuance elsewhere really is acmegw's doing.

Bad input, each through the real data path (curl in the client namespace, through fw) or the
real token socket, each followed by the proof that nothing else broke: acmegw still answers a
good challenge byte for byte, and production still serves its page byte for byte.
  webroot   `..` traversal (raw and %-encoded): not a challenge, production's own error (nginx:
            400/404), the secret outside DIR never served; absolute and relative symlinks
            out of DIR: acmegw's 404; a file over 4096 bytes: 503
  tokens    oversized (256 bytes) and malformed tokens, a key authorization for another token:
            `acmegw token add` exits 2 with the validator's message; through the data path an
            unknown but well-formed token is acmegw's 404 and an oversized one production's;
            an unprivileged user on the 0600 socket: exit 1, "Permission denied";
            `owner=` naming no user: acmegw refuses to start, naming the user
  relay     a dead target: 502 with acmegw's one-line reason and a "relay:" warning in its log;
            once the validation host is up, the same acmegw relays the good challenge

Run: python3 tests/e2e/test_acme_negative.py --acmegw build/gateway/acmegw   (root; 77 if not)
"""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Optional

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "scripts", "lab"))
import acmelab  # noqa: E402
from lab import CLIENT, PROD, SMALL_PAGE, VAL, Checks, Lab, parse_args, require, url  # noqa: E402

CHALLENGE_PATH = "/.well-known/acme-challenge/"
GOOD_TOKEN = "good-token_0123456789"
GOOD_KEYAUTH = GOOD_TOKEN + ".abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"  # 43-char thumbprint
SECRET = b"secret outside the webroot\n"


def fetch(lab: Lab, path: str, host: str = "www.example.com") -> tuple[int, bytes]:
    """GET http://PROD.v4/path from the client namespace exactly as written (no dot-segment
    removal): (status, body)."""
    out = lab.sh(lab.ns.client, "curl", "-sS", "--path-as-is", "-H", f"Host: {host}",
                 "-w", "\n%{http_code}", url(PROD.v4, path), timeout=30)
    body, _, status = out.encode(errors="surrogateescape").rpartition(b"\n")
    return int(status), body


def expect(lab: Lab, path: str, status: int, body: Optional[bytes] = None) -> Optional[str]:
    """None when GET path answers `status` (and exactly `body` if given)."""
    got, got_body = fetch(lab, path)
    if got != status or (body is not None and got_body != body):
        return f"{path[:80]}: got {got} {got_body[:120]!r}, want {status} {body!r}"
    return None


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    require("pebble", "pebble-challtestsrv", "certbot", "nginx", "openssl", "curl", "runuser")
    acmegw = os.path.abspath(args.acmegw)
    checks = Checks()
    with Lab("acmeneg", prefix="agwD", val=True, keep=args.keep) as lab:
        nginx = lab.start_nginx()
        pebble = acmelab.start_pebble(lab, lab.ns.client, CLIENT.v4,
                                      os.path.join(lab.dir, "pebble"), PROD.v4, "")
        root = pebble.root(lab)
        protect = [PROD.v4, f"[{PROD.v6}]"]

        def unharmed(what: str, good: tuple[str, bytes]) -> None:
            """acmegw still answers the good challenge and production still serves its page."""
            checks.run(f"{what}: acmegw still answers a good challenge",
                       lambda: expect(lab, CHALLENGE_PATH + good[0], 200, good[1]))
            checks.run(f"{what}: production unaffected",
                       lambda: expect(lab, "/", 200, SMALL_PAGE))

        def by_production(path: str) -> Optional[str]:
            """None when production (not acmegw) answered GET path with an error status and the
            secret outside the webroot is not in the answer."""
            seen = len(nginx.log_lines())
            status, body = fetch(lab, path)
            logged = nginx.log_lines()[seen:]
            if status < 400 or SECRET in body:
                return f"got {status} {body[:120]!r}"
            if [e["status"] for e in logged] != [status]:
                return f"answered {status}, production logged {logged}"
            return None

        # --- negative control: the same certbot --webroot run without acmegw, then with it.
        webroot = os.path.join(lab.dir, "webroot")
        os.makedirs(webroot)
        work = os.path.join(lab.dir, "certbot")
        gw = lab.run_acmegw(acmegw, "--backend", f"webroot={webroot}", protect=protect,
                            name="acmegw-stopped")
        lab.stop(gw)
        before = len(nginx.log_lines())
        r = subprocess.run(["ip", "netns", "exec", lab.ns.fw, *pebble.client_env(),
                            *acmelab.certbot_webroot(pebble, work, webroot, ["neg.example.com"])],
                           capture_output=True, text=True, timeout=180)
        challenges = [e for e in nginx.log_lines()[before:]
                      if e["request"].startswith(f"GET {CHALLENGE_PATH}")]
        checks.check("negative control: with acmegw stopped the order fails",
                     r.returncode != 0 and "404" in r.stdout + r.stderr,
                     f"certbot exited {r.returncode}: {(r.stdout + r.stderr)[-600:]}")
        checks.check("negative control: production logged the 404 for the challenge path",
                     bool(challenges) and all(e["status"] == 404 for e in challenges),
                     f"{challenges}")
        gw = lab.run_acmegw(acmegw, "--backend", f"webroot={webroot}", protect=protect,
                            name="acmegw-webroot")

        def issue() -> Optional[str]:
            lab.sh(lab.ns.fw, *pebble.client_env(),
                   *acmelab.certbot_webroot(pebble, work, webroot, ["neg.example.com"]),
                   timeout=180)
            acmelab.verify_chain(root, *acmelab.certbot_live(work, "neg.example.com"))
            return None
        checks.run("negative control: the same run with acmegw running issues", issue)

        # --- webroot bad input
        acme_dir = os.path.join(webroot, ".well-known", "acme-challenge")
        secret = os.path.join(lab.dir, "secret")
        with open(secret, "wb") as f:
            f.write(SECRET)
        good = (GOOD_TOKEN, GOOD_KEYAUTH.encode())
        os.makedirs(acme_dir, exist_ok=True)  # certbot removes what it created
        with open(os.path.join(acme_dir, GOOD_TOKEN), "wb") as f:
            f.write(good[1])
        os.symlink(secret, os.path.join(acme_dir, "escape-absolute"))
        os.symlink("../../../secret", os.path.join(acme_dir, "escape-relative"))
        with open(os.path.join(acme_dir, "oversized"), "wb") as f:
            f.write(b"x" * 4097)
        unharmed("webroot before bad input", good)
        for path in (CHALLENGE_PATH + "../../../secret",
                     CHALLENGE_PATH + "%2e%2e%2f%2e%2e%2fsecret",
                     CHALLENGE_PATH + "..%2f..%2f..%2fsecret"):
            checks.run(f"webroot traversal {path}: not a challenge, production refused it",
                       lambda: by_production(path))
        for name in ("escape-absolute", "escape-relative"):
            seen = len(nginx.log_lines())
            checks.run(f"webroot symlink out of DIR ({name}): acmegw's 404",
                       lambda: expect(lab, CHALLENGE_PATH + name, 404))
            checks.check(f"webroot symlink out of DIR ({name}): production never saw it",
                         len(nginx.log_lines()) == seen)
        checks.run("webroot file over 4096 bytes: 503",
                   lambda: expect(lab, CHALLENGE_PATH + "oversized", 503))
        unharmed("webroot after bad input", good)
        lab.stop(gw)
        checks.check("webroot: the secret never left the firewall",
                     SECRET.strip().decode() not in lab.log_of(gw))

        # --- tokens bad input
        sock = os.path.join(lab.dir, "tokens.sock")
        r = subprocess.run(["ip", "netns", "exec", lab.ns.fw, acmegw, "run", "--protect", PROD.v4,
                            "--backend", f"tokens={sock},owner=no-such-user-agwD"],
                           capture_output=True, text=True, timeout=30)
        checks.check("tokens owner=no-such-user: acmegw refuses to start, naming the user",
                     r.returncode != 0 and "no such user: no-such-user-agwD" in r.stderr + r.stdout,
                     f"exit {r.returncode}: {(r.stdout + r.stderr)[-400:]}")
        gw = lab.run_acmegw(acmegw, "--backend", f"tokens={sock}", protect=protect,
                            name="acmegw-tokens")

        def token(*argv: str, user: str = "root") -> subprocess.CompletedProcess:
            run_as = [] if user == "root" else ["runuser", "-u", user, "--"]
            return subprocess.run([*run_as, acmegw, "token", "--socket", sock, *argv],
                                  capture_output=True, text=True, timeout=30)

        def refused(what: str, r: subprocess.CompletedProcess, code: int, message: str) -> None:
            checks.check(f"tokens {what}: exit {code}, \"{message}\"",
                         r.returncode == code and message in r.stderr,
                         f"exit {r.returncode}: {r.stderr.strip()[-300:]}")

        long_token = "t" * 256
        refused("oversized token", token("add", long_token, long_token + GOOD_KEYAUTH[-44:]),
                2, "token")
        refused("malformed token", token("add", "bad/token", "bad/token" + GOOD_KEYAUTH[-44:]),
                2, "token")
        refused("key authorization of another token",
                token("add", "some-token", GOOD_KEYAUTH), 2, "invalid key authorization")
        refused("unprivileged user on the 0600 socket",
                token("add", GOOD_TOKEN, GOOD_KEYAUTH, user="nobody"), 1, "ermission denied")
        r = token("add", GOOD_TOKEN, GOOD_KEYAUTH)
        checks.check("tokens: root adds the good token", r.returncode == 0, r.stderr)
        listed = token("list").stdout
        checks.check("tokens: nothing but the good token was stored",
                     listed.split()[:2] == [GOOD_TOKEN, GOOD_KEYAUTH] and
                     len(listed.splitlines()) == 1, listed)
        # base64url tokens may start with "-" (1 in 64): the shipped hooks must not let the
        # acmegw command line take one for an option.
        dash = "-leading-dash_token"
        hooks = os.path.join(HERE, "..", "..", "scripts", "hooks")
        hook_env = {**os.environ, "ACMEGW": acmegw, "ACMEGW_TOKEN_SOCKET": sock}
        for argv, extra in (([f"{hooks}/certbot-auth"], {
                "CERTBOT_DOMAIN": "www.example.com", "CERTBOT_TOKEN": dash,
                "CERTBOT_VALIDATION": dash + GOOD_KEYAUTH[-44:]}),
                ([f"{hooks}/uacme-hook", "begin", "http-01", "www.example.com", dash,
                  dash + GOOD_KEYAUTH[-44:]], {}),
                ([f"{hooks}/dehydrated-hook", "deploy_challenge", "www.example.com", dash,
                  dash + GOOD_KEYAUTH[-44:]], {})):
            r = subprocess.run(argv, env={**hook_env, **extra}, capture_output=True, text=True,
                               timeout=30)
            name = os.path.basename(argv[0])
            checks.check(f"tokens: {name} adds a token starting with '-'", r.returncode == 0,
                         r.stderr.strip())
            checks.run(f"tokens: {name}'s '-' token is served",
                       lambda: expect(lab, CHALLENGE_PATH + dash, 200,
                                      (dash + GOOD_KEYAUTH[-44:]).encode()))
            r = subprocess.run([f"{hooks}/certbot-cleanup"], env={**hook_env,
                               "CERTBOT_TOKEN": dash}, capture_output=True, text=True, timeout=30)
            checks.check(f"tokens: certbot-cleanup removes the '-' token after {name}",
                         r.returncode == 0 and token("list").stdout.count(dash) == 0,
                         r.stderr.strip())
        checks.run("tokens: a well-formed unknown token is acmegw's 404",
                   lambda: expect(lab, CHALLENGE_PATH + "unknown-token", 404))
        checks.run("tokens: a 9000-byte token in a request is not a challenge: production's "
                   "error", lambda: by_production(CHALLENGE_PATH + "t" * 9000))
        unharmed("tokens after bad input", good)
        lab.stop(gw)

        # --- relay to a dead target, then to a live one (same acmegw)
        gw = lab.run_acmegw(acmegw, "--backend", f"relay={VAL.v4}:80", protect=protect,
                            name="acmegw-relay")
        checks.run("relay to a dead target: 502 with acmegw's reason",
                   lambda: expect(lab, CHALLENGE_PATH + GOOD_TOKEN, 502,
                                  b"acmegw: the validation host refused or is down\n"))
        checks.check("relay to a dead target: a \"relay:\" warning in acmegw's log",
                     "relay: " in lab.log_of(gw), lab.log_of(gw)[-600:])
        checks.run("relay dead target: production unaffected",
                   lambda: expect(lab, "/", 200, SMALL_PAGE))
        val = lab.start_nginx(addrs=[VAL.v4], ns=lab.ns.val)
        os.makedirs(os.path.join(val.root, "www", ".well-known", "acme-challenge"))
        with open(os.path.join(val.root, "www", ".well-known", "acme-challenge", GOOD_TOKEN),
                  "wb") as f:
            f.write(good[1])
        unharmed("relay once the validation host is up", good)
        lab.stop(gw)

        leaked = [e["request"] for e in nginx.log_lines()
                  if GOOD_TOKEN in e["request"] or "escape" in e["request"]]
        checks.check("production never saw a request acmegw should have answered", not leaked,
                     f"{leaked}")
    checks.exit()


if __name__ == "__main__":
    main()
