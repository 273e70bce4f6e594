#!/usr/bin/env python3
"""e2e: routes by Host (issue 6): two hosts routed to two thumbprint backends plus a default;
on-miss = production relays an unknown token to production; SIGHUP swaps a route (and the
challenge source lists) while a keep-alive challenge connection stays up; a denied source's
challenge goes to production; `acmegw check-config` on good and bad files (FILE:LINE: key)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
from typing import Optional

from lab import CLIENT, PROD, Checks, Lab, Nginx, parse_args, require
from takeover_util import THUMB, Client, challenge

T_A = "A" * 43  # thumbprint of route a.test
T_B = "B" * 43  # thumbprint of route *.b.test


def config(path: str, a_thumb: str, deny: str = "") -> None:
    webroot = os.path.join(os.path.dirname(path), "www")
    with open(path, "w") as f:
        f.write(f'backend = "thumbprint={THUMB}"\n')
        if deny:
            f.write(f'\n[challenge]\ndeny = ["{deny}"]\n')
        f.write(f'\n[[route]]\nhosts = ["a.test"]\nbackend = "thumbprint={a_thumb}"\n')
        f.write(f'\n[[route]]\nhosts = ["*.b.test"]\nbackend = "thumbprint={T_B}"\n'
                'on-miss = "production"\n')
        f.write(f'\n[[route]]\nhosts = ["w.test"]\nbackend = "webroot={webroot}"\n'
                'on-miss = "production"\n')


def ask(c: Client, token: str, host: str) -> tuple[bytes, bytes]:
    c.send(challenge(token, host=host))
    return c.read_response()


def expect_keyauth(c: Client, token: str, host: str, thumb: str) -> Optional[str]:
    head, body = ask(c, token, host)
    if not head.startswith(b"HTTP/1.1 200 ") or body != f"{token}.{thumb}".encode():
        return f"{host}: {head[:40]!r} {body!r} (want thumbprint {thumb[:4]}...)"
    return None


def routed(lab: Lab, fam: int) -> Optional[str]:
    for host, thumb in (("a.test", T_A), ("x.b.test", T_B), ("deep.x.b.test", T_B),
                        ("b.test", THUMB), ("other.test", THUMB), ("A.TEST", T_A)):
        c = Client(lab.ns.client, PROD[fam])
        why = expect_keyauth(c, "tok_route", host, thumb)
        c.close_and_wait_eof()
        if why:
            return why
    return None


def on_miss(lab: Lab, prod: Nginx) -> Optional[str]:
    """w.test: webroot route with on-miss = production: a known token is answered from the
    webroot, an unknown one (same connection) is relayed to production."""
    c = Client(lab.ns.client, PROD.v4)
    head, body = ask(c, "tok_file", "w.test")
    if not head.startswith(b"HTTP/1.1 200 ") or body != b"tok_file.webroot":
        return f"webroot answer: {head[:40]!r} {body!r}"
    head, _ = ask(c, "tok_missing", "w.test")
    c.close_and_wait_eof()
    if b"Server: nginx" not in head:
        return f"missing token not relayed to production: {head[:80]!r}"
    if not any("tok_missing" in e["request"] for e in prod.log_lines()):
        return "production did not log the missing token"
    if any("tok_file" in e["request"] for e in prod.log_lines()):
        return "production saw the answered token"
    return None


def reload_keepalive(lab: Lab, proc: subprocess.Popen, cfg: str) -> Optional[str]:
    c = Client(lab.ns.client, PROD.v4)
    why = expect_keyauth(c, "tok_ka", "a.test", T_A)
    if why:
        return "before reload: " + why
    config(cfg, T_B)  # a.test -> thumbprint B
    n = lab.log_of(proc).count("reload: ")
    proc.send_signal(signal.SIGHUP)
    lab.wait_for(lambda: "route(s) and the challenge source lists are in effect"
                 in lab.log_of(proc) or lab.log_of(proc).count("reload: ") > n + 1, 5,
                 "reload")
    if "are in effect" not in lab.log_of(proc):
        return "reload failed: " + lab.log_of(proc)[-600:]
    why = expect_keyauth(c, "tok_ka2", "a.test", T_B)  # same connection, new route
    if why:
        return "keep-alive connection after reload: " + why
    c.close_and_wait_eof()
    c = Client(lab.ns.client, PROD.v4)
    why = expect_keyauth(c, "tok_new", "a.test", T_B)
    c.close_and_wait_eof()
    return "new connection after reload: " + why if why else None


def bad_reload_keeps(lab: Lab, proc: subprocess.Popen, cfg: str) -> Optional[str]:
    with open(cfg, "a") as f:
        f.write('\n[[route]]\nhosts = ["a.test"]\nbackend = "thumbprint=short"\n')
    proc.send_signal(signal.SIGHUP)
    lab.wait_for(lambda: "the running configuration stays" in lab.log_of(proc), 5, "reload")
    log = lab.log_of(proc)
    if f"{cfg}:" not in log or "route[4]" not in log:
        return "error without FILE:LINE/key: " + log[-600:]
    c = Client(lab.ns.client, PROD.v4)
    why = expect_keyauth(c, "tok_kept", "a.test", T_B)
    c.close_and_wait_eof()
    return why


def denied(lab: Lab, proc: subprocess.Popen, prod: Nginx, cfg: str) -> Optional[str]:
    config(cfg, T_B, deny="198.51.100.0/24")
    proc.send_signal(signal.SIGHUP)
    lab.wait_for(lambda: lab.log_of(proc).count("are in effect") >= 2, 5, "reload")
    c = Client(lab.ns.client, PROD.v4)
    head, _ = ask(c, "tok_denied", "a.test")
    c.close_and_wait_eof()
    if not head.startswith(b"HTTP/1.1 404"):  # nginx has no such file
        return f"denied source answered {head[:40]!r}"
    if not any("tok_denied" in e["request"] and e["addr"] == CLIENT.v4
               for e in prod.log_lines()):
        return "production did not see the denied source's challenge"
    c = Client(lab.ns.client, PROD.v6)  # v6 client is not in the denied prefix
    why = expect_keyauth(c, "tok_v6", "a.test", T_B)
    c.close_and_wait_eof()
    return why


def check_config(acmegw: str, d: str) -> Optional[str]:
    good = os.path.join(d, "good.toml")
    config(good, T_A)
    r = subprocess.run([acmegw, "check-config", good, "--protect", "192.0.2.10"],
                       capture_output=True, text=True)
    if r.returncode != 0 or "configuration OK" not in r.stdout or "a.test" not in r.stdout:
        return f"good file: rc={r.returncode} {r.stdout[-300:]} {r.stderr[-300:]}"
    bad = os.path.join(d, "bad.toml")
    with open(bad, "w") as f:
        f.write('protect = ["192.0.2.10"]\n'                   # 1
                f'backend = "thumbprint={THUMB}"\n'            # 2
                '[challenge]\n'                                # 3
                'deny = ["198.51.100.1/24"]\n'                 # 4
                '[[route]]\n'                                  # 5
                'hosts = ["a.test", "bad host"]\n'             # 6
                'backend = "webroot=/nonexistent-w2a"\n'       # 7
                'on-miss = "maybe"\n')                         # 8
    r = subprocess.run([acmegw, "check-config", bad], capture_output=True, text=True)
    want = [f"{bad}:4: challenge.deny: ", f"{bad}:8: route[1].on-miss: ",
            r"route\[1\]\.hosts: invalid host pattern 'bad host'"]
    missing = [w for w in want[:2] if w not in r.stderr]
    if not re.search(re.escape(bad) + r":[56]: " + want[2], r.stderr):
        missing.append(want[2])
    if r.returncode != 1 or missing:
        return f"bad file: rc={r.returncode} missing {missing} in {r.stderr}"
    with open(bad, "w") as f:
        f.write('protect = ["192.0.2.10"]\n[[route]]\nbackend = "webroot=/nonexistent-w2a"\n')
    r = subprocess.run([acmegw, "check-config", bad], capture_output=True, text=True)
    if r.returncode != 1 or f"{bad}:2: route[1].backend: webroot=" not in r.stderr:
        return f"dry-run backend check: rc={r.returncode} {r.stderr}"
    return None


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    require("iptables", "ip6tables", "nginx")
    checks = Checks()
    with Lab("routes", prefix="agwG", keep=args.keep) as lab:
        prod = lab.start_nginx()
        cfg = os.path.join(lab.dir, "acmegw.toml")
        d = os.path.join(lab.dir, "www", ".well-known", "acme-challenge")
        os.makedirs(d)
        with open(os.path.join(d, "tok_file"), "w") as f:
            f.write("tok_file.webroot")
        checks.run("check-config: good file OK, bad file lists FILE:LINE: key per error",
                   lambda: check_config(args.acmegw, lab.dir))
        config(cfg, T_A)
        proc = lab.run_acmegw(args.acmegw, "--config", cfg, protect=[PROD.v4, f"[{PROD.v6}]"])
        for fam in (4, 6):
            checks.run(f"v{fam}: exact, *.suffix and default routes pick their thumbprints",
                       lambda: routed(lab, fam))
        checks.run("on-miss = production: an unknown token is relayed to production",
                   lambda: on_miss(lab, prod))
        checks.run("SIGHUP swaps a route; a keep-alive challenge connection stays up",
                   lambda: reload_keepalive(lab, proc, cfg))
        checks.run("a bad config on SIGHUP is refused (FILE:LINE: key) and the routes stay",
                   lambda: bad_reload_keeps(lab, proc, cfg))
        checks.run("challenge.deny: the denied source's challenge goes to production",
                   lambda: denied(lab, proc, prod, cfg))
        log = lab.log_of(proc)
        lab.stop(proc)
        checks.check("acmegw exits cleanly", proc.returncode == 0, log[-1000:])
        checks.check("source_denied counted", "takeover_failed_by_step.source_denied=1"
                     in lab.log_of(proc), lab.log_of(proc)[-800:])
    checks.exit()


if __name__ == "__main__":
    main()
