#!/usr/bin/env python3
"""e2e: non-challenge policies (docs/configuration.md "Policy"), each over IPv4 and IPv6 with
the thumbprint backend: redirect-https answers 301 to https://HOST/PATH (GET and HEAD, keep-alive,
a challenge on the same connection still answered, 400 without Host, non-HTTP reset), reject
resets, drop never answers and the kernel drops the retransmissions (DROP rule counters, not the
queue); in every case production sees the handshake and one RST, no request byte, and a
challenge on a fresh connection is answered as always. `check-config`: policy drop with an
explicit `prefilter = true` is an error naming FILE:LINE: prefilter.

Run: python3 tests/e2e/test_policy.py --acmegw build/release/gateway/acmegw   (root; 77 if not)
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from typing import Callable, Optional

from lab import PROD, Checks, Lab, Nginx, parse_args, require
from takeover_util import THUMB, Client, challenge, judge_production_capture, keyauth_response

HOST = "www.example.test"


def moved(path: str) -> bytes:
    return (f"HTTP/1.1 301 Moved Permanently\r\nLocation: https://{HOST}{path}\r\n"
            "Content-Length: 0\r\n\r\n").encode()


BAD_REQUEST = b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"


def request(path: str, method: str = "GET", host: str = HOST + ":80") -> bytes:
    return f"{method} {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: e2e\r\n\r\n".encode()


def production_saw(nginx: Nginx, marker: str) -> list[str]:
    return [e["request"] for e in nginx.log_lines() if marker in e["request"]]


def fresh_challenge(lab: Lab, fam: int, token: str) -> Optional[str]:
    c = Client(lab.ns.client, PROD[fam])
    c.send(challenge(token))
    want = keyauth_response(token)
    got = c.read_exact(len(want))
    c.close_and_wait_eof()
    return None if got == want else f"fresh challenge: {got!r} != {want!r}"


def with_production_capture(lab: Lab, fn: Callable[[], tuple[Optional[str], int]]) -> Optional[str]:
    """Runs fn (returns (why, client port)) while capturing at production; then judges that
    production saw the handshake and one RST of that connection, no payload byte."""
    cap = lab.tcpdump(lab.ns.prod, "eth0", "tcp port 80")
    why, port = fn()
    time.sleep(0.3)  # let the last segments reach the capture
    segs = cap.stop()
    return why or judge_production_capture(segs, port)


def reset_or_eof(c: Client, wait: float) -> tuple[bool, bytes]:
    """(True, bytes) when the connection was reset or ended; (False, bytes) on a timeout."""
    c.s.settimeout(wait)
    got = b""
    try:
        while True:
            b = c.s.recv(65536)
            if not b:
                return True, got
            got += b
    except ConnectionResetError:
        return True, got
    except socket.timeout:
        return False, got


# ---- redirect-https ---------------------------------------------------------------------------

def redirect_keepalive(lab: Lab, fam: int) -> tuple[Optional[str], int]:
    c = Client(lab.ns.client, PROD[fam])
    path = f"/policy-redirect-{fam}/a?x=1&y=2"
    c.send(request(path))
    head, body = c.read_response()
    if head + body != moved(path):
        return f"GET: {head!r} != {moved(path)!r}", c.local[1]
    c.send(request(path, "HEAD", HOST))
    head, body = c.read_response(head_only=True)
    if head != moved(path):
        return f"HEAD: {head!r}", c.local[1]
    token = f"tok_redirected_{fam}"
    c.send(challenge(token))  # same connection: the backend still answers
    want = keyauth_response(token)
    got = c.read_exact(len(want))
    if got != want:
        return f"challenge on the redirected connection: {got!r}", c.local[1]
    c.send(request(f"/policy-redirect-{fam}/again"))
    head, _ = c.read_response()
    if head != moved(f"/policy-redirect-{fam}/again"):
        return f"after the challenge: {head!r}", c.local[1]
    rest = c.close_and_wait_eof()
    return (f"bytes after the answers: {rest!r}" if rest else None), c.local[1]


def redirect_bad_request(lab: Lab, fam: int) -> tuple[Optional[str], int]:
    c = Client(lab.ns.client, PROD[fam])
    c.send(f"GET /policy-redirect-{fam}-nohost HTTP/1.0\r\n\r\n".encode())
    got = c.read_exact(len(BAD_REQUEST))
    rest = c.close_and_wait_eof()
    if got != BAD_REQUEST or rest:
        return f"HTTP/1.0 without Host: {got!r} {rest!r}", c.local[1]
    return None, c.local[1]


def redirect_injection(lab: Lab, fam: int) -> tuple[Optional[str], int]:
    c = Client(lab.ns.client, PROD[fam])
    c.send(request(f"/policy-redirect-{fam}-inj", host="user@evil.test"))
    got = c.read_exact(len(BAD_REQUEST))
    c.close_and_wait_eof()
    return (None if got == BAD_REQUEST else f"Host with '@': {got!r}"), c.local[1]


def redirect_not_http(lab: Lab, fam: int) -> tuple[Optional[str], int]:
    c = Client(lab.ns.client, PROD[fam])
    c.send(b"SSH-2.0-OpenSSH_9.2 policy-redirect\r\n")
    ended, got = reset_or_eof(c, 3)
    c.s.close()
    if not ended or got:
        return f"non-HTTP bytes: ended={ended} got={got!r} (want a reset, no byte)", c.local[1]
    return None, c.local[1]


# ---- reject / drop --------------------------------------------------------------------------

def rejected(lab: Lab, fam: int) -> tuple[Optional[str], int]:
    c = Client(lab.ns.client, PROD[fam])
    c.send(request(f"/policy-reject-{fam}"))
    ended, got = reset_or_eof(c, 3)
    c.s.close()
    if not ended or got:
        return f"ended={ended} got={got!r} (want a reset without any byte)", c.local[1]
    return None, c.local[1]


def drop_counter(lab: Lab, fam: int) -> int:
    """Packets the FLOW chain's "dropped flow (policy drop)" rule has dropped."""
    tool = "iptables" if fam == 4 else "ip6tables"
    out = lab.sh(lab.ns.fw, tool, "-w", "-t", "mangle", "-L", "ACMEGW-FLOW", "-v", "-x", "-n")
    for line in out.splitlines():
        if "dropped flow (policy drop)" in line:
            return int(line.split()[0])
    raise AssertionError(f"no DROP rule in {tool} ACMEGW-FLOW:\n{out}")


def dropped(lab: Lab, fam: int) -> tuple[Optional[str], int]:
    before, queued_before = drop_counter(lab, fam), lab.nfqueue_packets()
    c = Client(lab.ns.client, PROD[fam])
    c.send(request(f"/policy-drop-{fam}"))
    ended, got = reset_or_eof(c, 2.5)  # the client retransmits ~3 times meanwhile
    # Abort without a FIN: the RST is dropped too, and the client side is gone at once.
    c.s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    c.s.close()
    if ended or got:
        return f"ended={ended} got={got!r} (want no answer at all)", c.local[1]
    n, queued = drop_counter(lab, fam) - before, lab.nfqueue_packets() - queued_before
    # The held segment (NF_REPEAT with DROP) and at least one retransmission, all in the kernel;
    # the queue saw the first segment only.
    if n < 2 or queued != 1:
        return f"DROP rule matched {n} packet(s), queue {queued} (want >= 2 and 1)", c.local[1]
    return None, c.local[1]


# ---- check-config -----------------------------------------------------------------------------

def check_config(acmegw: str, d: str) -> Optional[str]:
    bad = os.path.join(d, "policy-bad.toml")
    with open(bad, "w") as f:
        f.write('protect = ["192.0.2.10"]\n'
                f'backend = "thumbprint={THUMB}"\n'
                'policy = "drop"\n'
                'prefilter = true\n')
    r = subprocess.run([acmegw, "check-config", bad], capture_output=True, text=True)
    if r.returncode != 1 or f"{bad}:4: prefilter: prefilter = true cannot be combined with " \
                            "policy 'drop'" not in r.stderr:
        return f"explicit prefilter: rc={r.returncode} {r.stderr}"
    good = os.path.join(d, "policy-good.toml")
    with open(bad) as f, open(good, "w") as g:
        g.write(f.read().replace("prefilter = true\n", ""))
    r = subprocess.run([acmegw, "check-config", good], capture_output=True, text=True)
    if r.returncode != 0 or "prefilter=off (default for policy drop)" not in r.stdout:
        return f"policy drop without prefilter key: rc={r.returncode} {r.stdout} {r.stderr}"
    r = subprocess.run([acmegw, "check-config", good, "--backend", "relay=192.0.2.9:80",
                        "--policy", "redirect-https"], capture_output=True, text=True)
    if r.returncode != 1 or "--policy: policy: policy \"redirect-https\" needs an answering" \
            not in r.stderr:
        return f"redirect-https with a relay backend: rc={r.returncode} {r.stderr}"
    return None


def reload_keeps_policy(lab: Lab, proc: subprocess.Popen, config: str) -> Optional[str]:
    """A reload that changes the policy applies none of it (the policy shapes the ruleset, the
    prefilter and the sessions), says so, and the old policy keeps working."""
    with open(config, "w") as f:
        f.write('policy = "pass"\n')
    proc.send_signal(signal.SIGHUP)
    want = "reload: changed settings that need a restart (not applied): prefilter, policy"
    lab.wait_for(lambda: "reload: " in lab.log_of(proc) and want in lab.log_of(proc), 5,
                 "the reload's restart-only warning")
    why, _ = rejected(lab, 4)
    return f"after the reload: {why}" if why else None


def run_policy(lab: Lab, checks: Checks, acmegw: str, nginx: Nginx, policy: str,
               cases: list[tuple[str, Callable[[Lab, int], tuple[Optional[str], int]]]],
               counters: list[str], config: Optional[str] = None) -> None:
    """Runs acmegw with `policy` (from the file `config` when given, else --policy) and the
    `cases` over v4 and v6; then checks production's log, the exit and `counters`."""
    how = ["--config", config] if config else ["--policy", policy]
    proc = lab.run_acmegw(acmegw, "--backend", f"thumbprint={THUMB}", *how, "--log-level",
                          "debug", protect=[PROD.v4, f"[{PROD.v6}]"])
    lab.wait_for(lambda: "rules: installed" in lab.log_of(proc), 10, "rules installed")
    for fam in (4, 6):
        for name, fn in cases:
            checks.run(f"{policy} v{fam}: {name}; production saw only the handshake and one RST",
                       lambda: with_production_capture(lab, lambda: fn(lab, fam)))
        checks.run(f"{policy} v{fam}: a challenge on a fresh connection is answered",
                   lambda: fresh_challenge(lab, fam, f"tok_{policy.replace('-', '_')}_{fam}"))
    if config:
        checks.run(f"{policy}: SIGHUP with policy = \"pass\" is refused as restart-only, the "
                   "policy stays", lambda: reload_keeps_policy(lab, proc, config))
    if policy == "drop":
        for fam, tool in ((4, "iptables-save"), (6, "ip6tables-save")):
            printed = subprocess.run(
                [acmegw, "rules", "print", "--protect", PROD.v4, "--protect", f"[{PROD.v6}]",
                 "--backend", f"thumbprint={THUMB}", "--policy", "drop"],
                capture_output=True, text=True).stdout
            saved = lab.sh(lab.ns.fw, tool)
            want = [ln for ln in printed.splitlines() if "policy drop" in ln or
                    "dropped flow" in ln or "drop verdict" in ln]
            missing = [ln for ln in want if ln not in saved.splitlines()]
            checks.check(f"drop v{fam}: the DROP rules `rules print` shows are installed as "
                         "iptables-save prints them", len(want) >= 3 and not missing,
                         f"want {len(want)} lines, missing {missing}")
    marker = f"policy-{policy.split('-')[0]}"
    checks.check(f"{policy}: production logged none of the non-challenge requests",
                 not production_saw(nginx, marker), str(production_saw(nginx, marker)))
    lab.stop(proc)
    log = lab.log_of(proc)
    checks.check(f"{policy}: acmegw exits cleanly", proc.returncode == 0, log[-800:])
    final = [ln for ln in log.splitlines() if "stats: final:" in ln or "[takeover] stats:" in ln]
    missing = [c for c in counters if not any(c in ln for ln in final)]
    checks.check(f"{policy}: counters {' '.join(counters)}", not missing,
                 f"missing {missing} in {final}")


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    require("iptables", "ip6tables", "nginx", "tcpdump")
    checks = Checks()
    with Lab("policy", prefix="agwY", keep=args.keep) as lab:
        checks.run("check-config: policy drop + explicit prefilter = true is FILE:LINE: prefilter",
                   lambda: check_config(args.acmegw, lab.dir))
        nginx = lab.start_nginx()
        run_policy(lab, checks, args.acmegw, nginx, "redirect-https", [
            ("301 GET/HEAD keep-alive, challenge on the same connection", redirect_keepalive),
            ("HTTP/1.0 without Host gets 400 + close", redirect_bad_request),
            ("a Host with '@' gets 400", redirect_injection),
            ("non-HTTP bytes are reset", redirect_not_http),
        ], ["flows_redirected=8", "session_answered_redirect_https=6", "session_bad_request=4",
            "session_malformed_reset=2", "takeovers_ok=2"])
        reject_cfg = os.path.join(lab.dir, "reject.toml")
        with open(reject_cfg, "w") as f:
            f.write('policy = "reject"\n')
        run_policy(lab, checks, args.acmegw, nginx, "reject", [
            ("the client gets a reset, no byte", rejected),
        ], ["flows_rejected=3", "takeovers_ok=2"], config=reject_cfg)
        run_policy(lab, checks, args.acmegw, nginx, "drop", [
            ("no answer; retransmissions dropped in the kernel", dropped),
        ], ["flows_dropped=2", "takeovers_ok=2"])
    checks.exit()


if __name__ == "__main__":
    main()
