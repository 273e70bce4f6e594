#!/usr/bin/env python3
"""e2e: acmegw as the packaged unit runs it: an unprivileged user holding exactly the unit's
capabilities (packaging/acmegw.service AmbientCapabilities, read from the file so the two cannot
drift), started with setpriv like systemd would (uid/gid 65534, no groups, no_new_privs,
bounding = inheritable = ambient = that set).

  the process really is uid 65534 with only those effective capabilities
  rules installed by iptables-restore running as its child (ambient capabilities)
  takeover: a challenge answered from the tokens backend (socket fed by `acmegw token add`),
            production never sees it; a non-challenge still reaches production
  ACME: certbot + scripts/hooks/certbot-* issue a certificate from Pebble
  `acmegw status` / `--json` over the control socket: counters, pending token names only
  (never a key authorization), the result of a SIGHUP reload; kernel.* counters unavailable:
  logged exactly once
  SIGKILL, then `acmegw rules remove` as the same user (the unit's ExecStopPost): no rules left
  `acmegw status` exits 3 once nothing runs
  the same without CAP_NET_BIND_SERVICE: the takeover fails (why the unit needs it)

Run: python3 tests/e2e/test_unprivileged.py --acmegw build/release/gateway/acmegw  (root; 77)
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..", "..")
HOOKS = os.path.join(ROOT, "scripts", "hooks")
UNIT = os.path.join(ROOT, "packaging", "acmegw.service")
sys.path.insert(0, os.path.join(ROOT, "scripts", "lab"))
import acmelab  # noqa: E402
from lab import CLIENT, PROD, Checks, Lab, parse_args, require  # noqa: E402

NOBODY = 65534
KEYAUTH = "tok-unpriv." + "S" * 43  # TOKEN.THUMBPRINT (43 base64url characters)
CHALLENGE = re.compile(r"^\S+ /\.well-known/acme-challenge/")


def unit_capabilities() -> list[str]:
    """The unit's AmbientCapabilities, e.g. ["net_admin", "net_raw"]."""
    with open(UNIT) as f:
        m = re.search(r"^AmbientCapabilities=(.*)$", f.read(), re.M)
    assert m, f"{UNIT}: no AmbientCapabilities="
    return [c.lower().removeprefix("cap_") for c in m[1].split()]


def setpriv(caps: list[str]) -> list[str]:
    """A command that execs its arguments as NOBODY with exactly `caps`."""
    spec = "-all," + ",".join(f"+{c}" for c in caps)
    return ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups",
            "--no-new-privs", f"--inh-caps={spec}", f"--ambient-caps={spec}",
            f"--bounding-set={spec}"]


def proc_status(pid: int) -> dict[str, str]:
    with open(f"/proc/{pid}/status") as f:
        return dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)


def cap_mask(caps: list[str]) -> int:
    numbers = {"net_bind_service": 10, "net_admin": 12, "net_raw": 13}
    return sum(1 << numbers[c] for c in caps)


def our_rules(lab: Lab) -> str:
    """fw's iptables-save/ip6tables-save lines that mention acmegw's chains."""
    out = ""
    for tool in ("iptables-save", "ip6tables-save"):
        out += "".join(line + "\n" for line in lab.sh(lab.ns.fw, tool).splitlines()
                       if "ACMEGW" in line)
    return out


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    require("setpriv", "pebble", "pebble-challtestsrv", "certbot", "nginx", "openssl", "curl")
    caps = unit_capabilities()
    wrap = setpriv(caps)
    checks = Checks()
    with Lab("unpriv", prefix="agwU", val=True, keep=args.keep) as lab:
        nginx = lab.start_nginx()
        pebble = acmelab.start_pebble(lab, lab.ns.client, CLIENT.v4,
                                      os.path.join(lab.dir, "pebble"), PROD.v4, "")
        root = pebble.root(lab)
        run = os.path.join(lab.dir, "run")  # what RuntimeDirectory= is for the unit
        os.mkdir(run, 0o750)
        os.chown(run, NOBODY, NOBODY)
        tokens, control = f"{run}/tokens.sock", f"{run}/control.sock"
        gw = lab.run_acmegw(args.acmegw, "--backend", f"tokens={tokens}",
                            "--control-socket", control, protect=[PROD.v4], wrap=wrap,
                            name="acmegw-unprivileged")
        st = proc_status(gw.pid)
        checks.check("runs as uid 65534", st["Uid"].split()[0] == str(NOBODY), st["Uid"])
        checks.check(f"effective capabilities are exactly the unit's ({' '.join(caps)})",
                     int(st["CapEff"], 16) == cap_mask(caps), st["CapEff"])
        checks.check("rules installed by the unprivileged process", our_rules(lab) != "")

        # Takeover: the root hook user feeds the socket, as certbot's hooks do.
        lab.sh(lab.ns.val, args.acmegw, "token", "--socket", tokens, "add", "tok-unpriv", KEYAUTH)
        _, answer = lab.exchange(lab.ns.client, PROD.v4, [
            b"GET /.well-known/acme-challenge/tok-unpriv HTTP/1.1\r\nHost: a.example\r\n"
            b"Connection: close\r\n\r\n"])
        checks.check("takeover: challenge answered from the tokens backend",
                     answer.startswith(b"HTTP/1.1 200") and answer.endswith(KEYAUTH.encode()),
                     repr(answer[:300]))
        _, page = lab.exchange(lab.ns.client, PROD.v4, [
            b"GET / HTTP/1.1\r\nHost: a.example\r\nConnection: close\r\n\r\n"])
        checks.check("production still serves other requests", page.startswith(b"HTTP/1.1 200"),
                     repr(page[:200]))

        # `acmegw status` as root would (same permissions as the token socket: 0600 nobody, root
        # passes); the pending token is named, its key authorization never shown.
        text = lab.sh(lab.ns.fw, args.acmegw, "status", "--socket", control)
        raw = lab.sh(lab.ns.fw, args.acmegw, "status", "--json", "--socket", control)
        doc = json.loads(raw)
        checks.check("status: text names version, takeovers and the pending token",
                     text.startswith("acmegw ") and "takeovers:   ok 1" in text and
                     "tok-unpriv" in text, text)
        checks.check("status --json: pid, endpoints, takeovers, pending, no key authorization",
                     doc.get("pid") == gw.pid and doc.get("endpoints") == [f"{PROD.v4}:80"] and
                     doc["takeovers"]["ok"] == 1 and doc["pending"] == ["tok-unpriv"] and
                     "ACMEGW" in doc["rule_counters"] and KEYAUTH not in raw + text, raw)
        lab.sh(lab.ns.val, args.acmegw, "token", "--socket", tokens, "remove", "tok-unpriv")
        # SIGHUP: the reload's result shows up in status.
        gw.send_signal(signal.SIGHUP)
        lab.wait_for(lambda: "reload: " in lab.log_of(gw), 10, "the reload to be logged")
        doc = json.loads(lab.sh(lab.ns.fw, args.acmegw, "status", "--json", "--socket", control))
        checks.check("status: last reload ok after SIGHUP",
                     (doc["last_reload"] or {}).get("ok") is True, f"{doc['last_reload']}")

        # ACME: a real issuance through the unprivileged gateway.
        w = os.path.join(lab.dir, "certbot")
        name = "unpriv.example.com"
        env = [f"ACMEGW={args.acmegw}", f"ACMEGW_TOKEN_SOCKET={tokens}"]

        def issue() -> str | None:
            try:
                lab.sh(lab.ns.val, *pebble.client_env(), *env, *acmelab.certbot_manual(
                    pebble, w, f"{HOOKS}/certbot-auth", f"{HOOKS}/certbot-cleanup", [name]),
                    timeout=180)
            except RuntimeError as e:
                return str(e)[-1500:]
            cert, chain = acmelab.certbot_live(w, name)
            acmelab.verify_chain(root, cert, chain)
            names = acmelab.cert_names(cert)
            return None if names == [name] else f"certificate names {names}"
        checks.run("ACME: certbot issued a certificate through the unprivileged gateway", issue)
        leaked = [e["request"] for e in nginx.log_lines() if CHALLENGE.match(e["request"])]
        checks.check("production never saw a challenge request", not leaked, f"{leaked}")

        log = lab.log_of(gw)
        checks.check("kernel queue counters unavailable: said exactly once",
                     log.count("kernel queue counters unavailable") == 1, log[-1500:])

        # SIGKILL leaves the rules; ExecStopPost's `rules remove`, same user and caps, clears them.
        lab.stop(gw, signal.SIGKILL)
        checks.check("after SIGKILL the rules are still there", our_rules(lab) != "")
        lab.sh(lab.ns.fw, *wrap, args.acmegw, "rules", "remove", "--protect", PROD.v4)
        left = our_rules(lab)
        checks.check("ExecStopPost's rules remove (unprivileged) leaves no rules", left == "", left)
        again = subprocess.run(["ip", "netns", "exec", lab.ns.fw, *wrap, args.acmegw, "rules",
                                "remove", "--protect", PROD.v4], capture_output=True, text=True,
                               timeout=30)
        checks.check("rules remove with nothing installed exits 0 (ExecStopPost after a clean stop)",
                     again.returncode == 0, again.stdout + again.stderr)
        r = subprocess.run(["ip", "netns", "exec", lab.ns.fw, args.acmegw, "status", "--socket",
                            control], capture_output=True, text=True, timeout=30)
        checks.check("status exits 3 when nothing runs", r.returncode == 3,
                     f"exit {r.returncode}: {r.stdout}{r.stderr}")

        # Why CAP_NET_BIND_SERVICE is in the set: without it the repaired socket cannot bind
        # production's port 80, the takeover fails and the challenge goes (fail-open) to nginx.
        fewer = [c for c in caps if c != "net_bind_service"]
        gw = lab.run_acmegw(args.acmegw, "--backend", f"tokens={tokens}",
                            "--control-socket", control, protect=[PROD.v4], wrap=setpriv(fewer),
                            name="acmegw-no-bind-service")
        lab.sh(lab.ns.val, args.acmegw, "token", "--socket", tokens, "add", "tok-unpriv", KEYAUTH)
        _, answer = lab.exchange(lab.ns.client, PROD.v4, [
            b"GET /.well-known/acme-challenge/tok-unpriv HTTP/1.1\r\nHost: a.example\r\n"
            b"Connection: close\r\n\r\n"])
        doc = json.loads(lab.sh(lab.ns.fw, args.acmegw, "status", "--json", "--socket", control))
        checks.check("without CAP_NET_BIND_SERVICE the takeover fails open to production",
                     answer.startswith(b"HTTP/1.1 404") and doc["takeovers"]["failed"] == 1,
                     f"{answer[:100]!r} {doc['takeovers']}")
        lab.stop(gw)
    checks.exit()


if __name__ == "__main__":
    main()
