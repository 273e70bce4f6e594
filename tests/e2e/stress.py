"""Hostile-load attacks of issue 12 in lab namespaces (used by scripts/stress and
tests/e2e/test_stress.py). Each attack runs in a fresh Lab against real nginx while two wrk
loads (keep-alive and `Connection: close`) hit production, and checks:
  production: 0 wrk socket errors, 0 non-2xx (its p99 printed beside a no-attack baseline)
  verdicts:   /proc/net/netfilter/nfnetlink_queue of fw: every packet the kernel queued got its
              verdict (waiting back to 0, queue_dropped and user_dropped 0); queued = id_sequence
              delta, beside the NFQUEUE rules' match count (the difference passed by fail-open)
  gateway:    alive, peak RSS / VmHWM and fd count (sampled every 100 ms), peak open sessions
              (`acmegw status --json`), bounds on both; a challenge answered again right after
              the attack (recovery time printed)
Attacks: flood (new connections with random tokens from many v4 and v6 sources; thumbprint and
tokens backends), slow (slowloris / hold / noread / idle keep-alive), rlimit (acmegw under
RLIMIT_NOFILE 256, then flood + held sessions), tokens (token socket abuse), restart (SIGKILL and
restart 20 times during a flood; then one set of rules, no duplicate ip rules or routes, no
leftover sockets)."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Optional

from lab import PROD, Checks, Lab, parse_wrk, url

THUMB = "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
ATTACKS = ("flood", "slow", "rlimit", "tokens", "restart")
CAP_FLAGS = ("--max-sessions", "--max-sessions-per-source", "--session-header-timeout-ms",
             "--session-idle-timeout-ms", "--session-total-timeout-ms")


@dataclass
class Config:
    acmegw: str
    challenge_load: str
    duration: float = 30        # seconds of each flood
    rate: float = 5000          # new challenge connections per second (v4 + v6)
    slow_conns: int = 10000     # connections of each slow variant
    hold: float = 35            # seconds the slow variants hold their connections
    sources: int = 64           # extra client addresses per family
    restarts: int = 20
    ci: bool = False
    caps: list = field(default_factory=list)  # extra `acmegw run` flags (the session caps)
    rss_bound_mib: float = 256
    fd_slack: int = 200
    max_sessions: int = 4096
    recovery_s: float = 1.0
    keep: bool = False


def gateway_caps(acmegw: str) -> bool:
    """Whether this acmegw has the session caps (--max-sessions ...)."""
    out = subprocess.run([acmegw, "run", "--help"], capture_output=True, text=True).stdout
    return all(f in out for f in CAP_FLAGS)


# ---------------------------------------------------------------------------------------------
# Sampling the gateway


class Sampler:
    """Every 100 ms: acmegw's VmRSS, VmHWM and open fds (peaks); every 0.5 s its open sessions
    from `acmegw status --json`. `pid` may change (restarts)."""

    def __init__(self, lab: Lab, acmegw: str, control: str, pid: int) -> None:
        self.lab, self.acmegw, self.control, self.pid = lab, acmegw, control, pid
        self.rss = self.hwm = self.fds = self.sessions = 0
        self.fd_first = -1
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _run(self) -> None:
        last_status = 0.0
        while not self._stop.wait(0.1):
            pid = self.pid
            try:
                with open(f"/proc/{pid}/status") as f:
                    st = f.read()
                self.rss = max(self.rss, int(re.search(r"VmRSS:\s+(\d+)", st)[1]))
                self.hwm = max(self.hwm, int(re.search(r"VmHWM:\s+(\d+)", st)[1]))
                n = len(os.listdir(f"/proc/{pid}/fd"))
                self.fds = max(self.fds, n)
                if self.fd_first < 0:
                    self.fd_first = n
            except (OSError, TypeError):
                pass  # between a kill and the restart
            if time.monotonic() - last_status >= 0.5:
                last_status = time.monotonic()
                s = status(self.lab, self.acmegw, self.control)
                if s:
                    self.sessions = max(self.sessions, sum(s.get("sessions_open", {}).values()))

    def stop(self) -> None:
        self._stop.set()
        if self._t.is_alive() and threading.current_thread() is not self._t:
            self._t.join()


def status(lab: Lab, acmegw: str, control: str) -> Optional[dict]:
    """`acmegw status --json`, or None (not answering within 10 s: seen when acmegw is out of
    fds, its control socket cannot accept)."""
    try:
        r = subprocess.run(["ip", "netns", "exec", lab.ns.fw, acmegw, "status", "--json",
                            "--socket", control], capture_output=True, text=True, timeout=10)
        return json.loads(r.stdout) if r.returncode == 0 else None
    except (ValueError, subprocess.TimeoutExpired):
        return None


def fd_count(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


# ---------------------------------------------------------------------------------------------
# Production load with latency percentiles


def start_wrk(lab: Lab, connections: int = 8) -> dict:
    """As lab.start_production_load, with --latency (p99): keep-alive and Connection: close."""
    loads = {}
    for label, headers in (("keep-alive", []), ("close", ["-H", "Connection: close"])):
        loads[label] = lab.spawn(lab.ns.client, "nice", "-n", "19", "wrk", "-t", "1", "-c",
                                 str(connections), "-d", "30m", "--latency", "--timeout", "5s",
                                 *headers, url(PROD.v4), name="wrk")
    time.sleep(0.3)
    return loads


def finish_wrk(lab: Lab, loads: dict) -> dict:
    out = {}
    for label, proc in loads.items():
        lab.stop(proc, signal.SIGINT)
        out[label] = parse_wrk(lab.log_of(proc))
    return out


# ---------------------------------------------------------------------------------------------
# One attack's lab and its common checks


class Run:
    """A fresh lab for one attack: nginx (room for 60,000 connections), extra client addresses,
    acmegw in fw with a control socket and metrics, the production loads."""

    def __init__(self, cfg: Config, name: str, backend: str = "thumbprint",
                 wrap: tuple = (), extra: tuple = (), nginx_log: bool = False) -> None:
        self.cfg, self.name = cfg, name
        self.lab = Lab(f"stress-{name}", prefix="agwS", keep=cfg.keep)
        try:
            self._setup(backend, wrap, extra, nginx_log)
        except BaseException:
            self.lab.close()
            raise

    def _setup(self, backend, wrap, extra, nginx_log) -> None:
        lab, cfg = self.lab, self.cfg
        self.nginx = lab.start_nginx(workers=1, access_log=nginx_log)
        # Fail-open sends held-open connections to production: give nginx room for them, so a
        # production error means acmegw, not the lab's nginx limits.
        conf = os.path.join(self.nginx.root, "nginx.conf")
        with open(conf) as f:
            text = f.read()
        text = text.replace("worker_connections 8192;", "worker_connections 60000;")
        text = text.replace("daemon off;", "daemon off;\nworker_rlimit_nofile 70000;")
        with open(conf, "w") as f:
            f.write(text)
        pid = int(open(os.path.join(self.nginx.root, "nginx.pid")).read())
        os.kill(pid, signal.SIGHUP)
        time.sleep(0.5)
        lab.sh(lab.ns.client, "sysctl", "-qw", "net.ipv4.ip_local_port_range=1024 65535")
        lab.sh(lab.ns.client, "sysctl", "-qw", "net.ipv4.tcp_max_syn_backlog=65536")
        lab.sh(lab.ns.prod, "sysctl", "-qw", "net.core.somaxconn=65535")
        lab.sh(lab.ns.prod, "sysctl", "-qw", "net.ipv4.tcp_max_syn_backlog=65536")
        self.src4 = [f"198.51.100.{10 + i}" for i in range(cfg.sources)]
        # IPv6: one /64 each (the per-source cap counts a /64 as one client), routed by fw.
        self.src6 = [f"2001:db8:1:{0x100 + i:x}::2" for i in range(cfg.sources)]
        batch = "".join(f"addr add {a}/24 dev eth0\n" for a in self.src4)
        batch += "".join(f"addr add {a}/64 dev eth0 nodad\n" for a in self.src6)
        subprocess.run(["ip", "-n", lab.ns.client, "-batch", "-"], input=batch, text=True,
                       check=True, capture_output=True)
        lab.sh(lab.ns.fw, "ip", "-6", "route", "add", "2001:db8:1:100::/56", "via",
               "2001:db8:1::2", "dev", "c0")
        self.control = os.path.join(lab.dir, "control.sock")
        self.tokens = os.path.join(lab.dir, "tokens.sock")
        self.backend = backend
        be = f"thumbprint={THUMB}" if backend == "thumbprint" else f"tokens={self.tokens}"
        self.gw_argv = ("--backend", be, "--control-socket", self.control,
                        *cfg.caps, *extra)
        self.wrap = wrap
        self.gw = self.start_gw()
        self.sampler = Sampler(lab, cfg.acmegw, self.control, self.gw.pid)
        self.q0 = self.queue()
        self.rules0 = lab.nfqueue_packets()
        self.loads = start_wrk(lab)
        self.t0 = time.monotonic()

    def start_gw(self):
        return self.lab.run_acmegw(self.cfg.acmegw, *self.gw_argv,
                                   protect=[PROD.v4, f"[{PROD.v6}]"], wrap=self.wrap, wait=20)

    def queue(self) -> dict:
        rows = self.lab.nfqueue_proc()
        keys = ("waiting", "queue_dropped", "user_dropped", "id_seq")
        return {k: sum(r[k] for r in rows) for k in keys} | {"bound": len(rows)}

    def challenge_load(self, *argv: str, name: str = "challenge-load") -> subprocess.Popen:
        return self.lab.spawn(self.lab.ns.client, self.cfg.challenge_load, *argv, name=name)

    def result(self, proc: subprocess.Popen, timeout: float) -> dict:
        proc.wait(timeout=timeout)
        lines = [ln for ln in self.lab.log_of(proc).splitlines() if ln.startswith("{")]
        if not lines:
            raise RuntimeError(f"challenge_load printed nothing: {self.lab.log_of(proc)[-500:]}")
        return json.loads(lines[-1])

    def flood_argv(self, fam: int, rate: float, duration: float, *extra: str) -> list:
        srcs = self.src4 if fam == 4 else self.src6
        argv = ["--addr", PROD[fam], "--random-token", "--rate", f"{rate:g}", "--duration",
                f"{duration:g}", "--concurrency", "4000"]
        for s in srcs:
            argv += ["--source", s]
        if self.backend == "thumbprint":
            argv += ["--expect-thumbprint", THUMB]
        else:
            argv += ["--expect-status", "404"]  # random tokens are unknown to the store
        return argv + list(extra)

    def recovery(self) -> Optional[float]:
        """Seconds until a real challenge is answered correctly (None: not within 10 s)."""
        t0 = time.monotonic()
        if self.backend == "tokens":
            tok = f"recover{int(t0 * 1000) % 1000000}"
            keyauth = f"{tok}.{THUMB}"
            self.lab.sh(self.lab.ns.fw, self.cfg.acmegw, "token", "--socket", self.tokens, "add",
                        tok, keyauth)
            argv = ["--path", f"/.well-known/acme-challenge/{tok}", "--expect", keyauth]
        else:
            argv = ["--random-token", "--expect-thumbprint", THUMB]
        while time.monotonic() - t0 < 10:
            r = subprocess.run(["ip", "netns", "exec", self.lab.ns.client, self.cfg.challenge_load,
                                "--addr", PROD.v4, "--total", "1", *argv], capture_output=True)
            if r.returncode == 0:
                return time.monotonic() - t0
            time.sleep(0.05)
        return None

    def finish(self, checks: Checks, table: list, check_queue: bool = True,
               recovery: bool = True, fd_bound: Optional[int] = None,
               close: bool = True) -> dict:
        """The common checks after an attack (gateway expected alive); closes the lab."""
        cfg, lab, name = self.cfg, self.lab, self.name
        try:
            alive = self.gw.poll() is None
            checks.check(f"{name}: acmegw alive after the attack", alive,
                         f"exited {self.gw.returncode}: {lab.log_of(self.gw)[-1500:]}")
            rec = self.recovery() if alive and recovery else None
            if recovery:
                checks.check(f"{name}: a challenge answered within {cfg.recovery_s:g} s after the "
                             f"attack", rec is not None and rec <= cfg.recovery_s,
                             f"recovery {rec}")
            prod = finish_wrk(lab, self.loads)
            for label, w in prod.items():
                checks.check(f"{name}: production wrk ({label}) {w['requests']} requests, 0 errors,"
                             f" 0 non-2xx", w["requests"] > 0 and w["errors"] == 0 and
                             w["non2xx"] == 0,
                             f"errors {w['errors']} non-2xx {w['non2xx']}: {w['raw'][-500:]}")
            q = self.queue()
            if check_queue and alive:
                try:
                    lab.wait_for(lambda: self.queue()["waiting"] == 0, 10, "queue to drain")
                except TimeoutError:
                    pass
                q = self.queue()
                checks.check(f"{name}: every queued packet got its verdict (waiting 0, "
                             f"queue_dropped 0, user_dropped 0)",
                             q["waiting"] == 0 and q["queue_dropped"] == self.q0["queue_dropped"]
                             and q["user_dropped"] == self.q0["user_dropped"], f"{q}")
            self.sampler.stop()
            rss_mib = self.sampler.hwm / 1024
            checks.check(f"{name}: acmegw peak RSS {rss_mib:.1f} MiB < {cfg.rss_bound_mib:g} MiB",
                         rss_mib < cfg.rss_bound_mib)
            bound = fd_bound or cfg.max_sessions + cfg.fd_slack
            checks.check(f"{name}: acmegw peak fds {self.sampler.fds} < {bound}",
                         self.sampler.fds < bound)
            st = status(lab, cfg.acmegw, self.control) if alive else None
            queued = q["id_seq"] - self.q0["id_seq"]
            matched = lab.nfqueue_packets() - self.rules0
            row = {"attack": name, "prod_ka_p99_ms": prod["keep-alive"]["p99_us"] / 1e3,
                   "prod_close_p99_ms": prod["close"]["p99_us"] / 1e3,
                   "prod_req": sum(w["requests"] for w in prod.values()),
                   "prod_err": sum(w["errors"] + w["non2xx"] for w in prod.values()),
                   "queued": queued, "rule_matched": matched,
                   "failed_open": max(0, matched - queued), "waiting": q["waiting"],
                   "q_dropped": q["queue_dropped"], "u_dropped": q["user_dropped"],
                   "rss_mib": self.sampler.rss / 1024, "hwm_mib": rss_mib,
                   "fds": self.sampler.fds, "sessions": self.sampler.sessions,
                   "recovery_ms": rec * 1e3 if rec is not None else float("nan")}
            if st:
                row["takeovers_ok"] = st["takeovers"]["ok"]
                row["takeovers_failed"] = st["takeovers"]["failed"]
                row["failed_by_step"] = st["takeovers"]["failed_by_step"]
                row["production_by_cause"] = st["flows"].get("production_by_cause", {})
            table.append(row)
            return row
        finally:
            self.sampler.stop()
            if close:
                self.close()

    def close(self) -> None:
        try:
            self.sampler.stop()
        except Exception:
            pass
        self.lab.close()


# ---------------------------------------------------------------------------------------------
# The attacks. Each appends rows to `table` and records checks.


def attack_flood(cfg: Config, checks: Checks, table: list, backend: str,
                 name: Optional[str] = None) -> None:
    """(1) ≥ rate new challenge connections/s, random tokens, v4 and v6 at once from
    cfg.sources addresses each."""
    run = Run(cfg, name or f"flood-{backend}", backend=backend)
    info = {}
    try:
        procs = {}
        for fam in (4, 6):
            procs[fam] = run.challenge_load(*run.flood_argv(fam, cfg.rate / 2, cfg.duration),
                                            name=f"flood-v{fam}")
        for fam, p in procs.items():
            r = run.result(p, cfg.duration + 60)
            info[fam] = r
            # A 404 is a challenge that failed open to production (allowed under overload); a
            # 200 must carry this token's key authorization.
            checks.check(f"{run.name}: v{fam} flood: every 200 carries its key authorization "
                         f"({r['statuses']})", r["bad_body"] == 0 and r["flows"] > 0, f"{r}")
    except BaseException:
        run.close()
        raise
    row = run.finish(checks, table)
    for fam, r in info.items():
        row[f"v{fam}_flows_s"] = r["flows_per_s"]
        row[f"v{fam}_ok"] = r["ok"]
        row[f"v{fam}_failed"] = r["failed"]
        row[f"v{fam}_p99_ms"] = r["p99_us"] / 1e3
        row[f"v{fam}_statuses"] = r["statuses"]
        row[f"v{fam}_fail_causes"] = {k: r[k] for k in ("connect_errors", "resets", "timeouts",
                                                         "bad_answer", "bad_body", "emfile")
                                      if r[k]}


SLOW_VARIANTS = (  # name, challenge_load arguments, what it proves
    ("slowloris", ["--mode", "slowloris", "--after-answer", "--any-status", "--trickle-ms", "1000"],
     "taken session, second request trickled: header/total timeout"),
    ("hold", ["--mode", "hold"], "request line only: held undecided, then production"),
    ("noread", ["--mode", "noread"], "Connection: close request, answer never read: drain"),
    ("idle", ["--mode", "noread", "--after-answer", "--any-status"],
     "taken keep-alive session left idle: idle timeout"),
)


def attack_slow(cfg: Config, checks: Checks, table: list, variants=None) -> None:
    """(2) cfg.slow_conns connections per variant held for cfg.hold seconds, one after another,
    over the same production load."""
    run = Run(cfg, "slow")
    got = {}
    try:
        for vname, argv, _ in SLOW_VARIANTS:
            if variants and vname not in variants:
                continue
            src = []
            for s in run.src4:
                src += ["--source", s]
            p = run.challenge_load("--addr", PROD.v4, "--random-token", "--concurrency",
                                   str(cfg.slow_conns), "--duration", f"{cfg.hold:g}", *argv, *src,
                                   name=f"slow-{vname}")
            r = run.result(p, cfg.hold + 60)
            got[vname] = r
            checks.check(f"slow/{vname}: {cfg.slow_conns} connections established",
                         r["established"] == cfg.slow_conns and r["emfile"] == 0, f"{r}")
            if run.gw.poll() is not None:
                break
            # Sessions of this variant must end before the next one starts.
            time.sleep(1)
    except BaseException:
        run.close()
        raise
    row = run.finish(checks, table)
    row["slow"] = got


def attack_rlimit(cfg: Config, checks: Checks, table: list) -> None:
    """(3) acmegw under RLIMIT_NOFILE 256:256: a flood plus held sessions run it out of fds;
    it must stay up and fail open (challenges then reach production: counted)."""
    run = Run(cfg, "rlimit", wrap=("prlimit", "--nofile=256:256", "--"), nginx_log=True)
    info = {}
    try:
        src = []
        for s in run.src4:
            src += ["--source", s]
        hold = run.challenge_load("--addr", PROD.v4, "--random-token", "--concurrency",
                                  str(min(cfg.slow_conns, 2000)), "--duration",
                                  f"{cfg.duration:g}", "--mode", "noread", "--after-answer",
                                  "--any-status", *src, name="rlimit-idle")
        time.sleep(1)
        flood = run.challenge_load(*run.flood_argv(4, cfg.rate / 2, cfg.duration - 1,
                                                   "--any-status"), name="rlimit-flood")
        info["idle"] = run.result(hold, cfg.duration + 60)
        info["flood"] = run.result(flood, cfg.duration + 60)
    except BaseException:
        run.close()
        raise
    fail_open = sum(1 for e in run.nginx.log_lines() if "acme-challenge" in e["request"])
    row = run.finish(checks, table, fd_bound=257)
    row["flood"] = {k: info["flood"][k] for k in ("flows", "ok", "failed", "flows_per_s",
                                                  "statuses")}
    row["idle"] = {k: info["idle"][k] for k in ("established", "answered", "peer_reset",
                                                "closed_after_p50_s")}
    row["challenges_at_production"] = fail_open
    print(f"INFO rlimit: {fail_open} challenges failed open to production (nginx access log)",
          flush=True)


def _token_request(path: str, data: bytes, timeout: float = 10) -> bytes:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.connect(path)
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        out = b""
        while True:
            b = s.recv(65536)
            if not b:
                return out
            out += b
    except OSError as e:
        return f"<{type(e).__name__}: {e}>".encode()
    finally:
        s.close()


def attack_tokens(cfg: Config, checks: Checks, table: list) -> None:
    """(4) token socket abuse: many concurrent silent connections, oversized and malformed
    commands, a peer of the wrong uid; well-formed `acmegw token add` works during and after."""
    run = Run(cfg, "tokens", backend="tokens")
    lab, sock = run.lab, run.tokens
    try:
        # Below the token socket's cap of 256 clients served at once (beyond it clients wait in
        # the listen backlog: bounded fds, and a silent same-uid peer can delay a token add).
        n_conc = 200
        held = []
        for _ in range(n_conc):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.setblocking(False)
            try:
                s.connect(sock)
            except BlockingIOError:
                pass
            except OSError:
                s.close()
                continue
            held.append(s)
        checks.check(f"tokens: {n_conc} silent connections open", len(held) >= n_conc * 0.9,
                     f"{len(held)} connected")

        def add_ok(tok: str) -> Optional[str]:
            keyauth = f"{tok}.{THUMB}"
            r = subprocess.run(["ip", "netns", "exec", lab.ns.fw, cfg.acmegw, "token", "--socket",
                                sock, "add", tok, keyauth], capture_output=True, text=True,
                               timeout=30)
            if r.returncode != 0:
                return f"token add exited {r.returncode}: {r.stderr.strip()}"
            p = subprocess.run(["ip", "netns", "exec", lab.ns.client, cfg.challenge_load,
                                "--addr", PROD.v4, "--total", "1", "--path",
                                f"/.well-known/acme-challenge/{tok}", "--expect", keyauth],
                               capture_output=True, text=True)
            return None if p.returncode == 0 else f"challenge not answered: {p.stdout}"
        t0 = time.monotonic()
        checks.run("tokens: token add + challenge work while the silent connections are held",
                   lambda: add_ok("during1"))
        during = time.monotonic() - t0
        print(f"INFO tokens: token add during the held connections took {during:.2f} s",
              flush=True)
        bad = {
            "oversized line (1 MiB, no newline)": b"add " + b"A" * (1 << 20),
            "oversized line (2000 bytes + newline)": b"add " + b"A" * 2000 + b"\n",
            "binary": bytes(range(256)) + b"\n",
            "NUL inside": b"add tok\0en x\n",
            "unknown command": b"frobnicate\n",
            "add without keyauth": b"add tok1\n",
            "keyauth of another token": f"add tok1 tok2.{THUMB}\n".encode(),
            "bad ttl": f"add tok1 tok1.{THUMB} ttl=-5\n".encode(),
            "huge ttl": f"add tok1 tok1.{THUMB} ttl=99999999999999999999\n".encode(),
            "token with slash": f"add a/b a/b.{THUMB}\n".encode(),
            "two lines": f"add t1 t1.{THUMB}\nadd t2 t2.{THUMB}\n".encode(),
            "empty": b"\n",
            "list with junk": b"list junk junk\n",
        }
        answers = {}
        for what, data in bad.items():
            answers[what] = _token_request(sock, data)
        for what, ans in answers.items():
            if what == "two lines":  # one request per connection: the second line is not run
                ok = b"t2" not in _token_request(sock, b"list\n")
            else:
                ok = ans.startswith(b"error ") or ans.startswith(b"<") or ans == b""
            verdict = "only the first line runs" if what == "two lines" else "refused"
            checks.check(f"tokens: {what}: {verdict} ({ans[:60]!r})", ok and run.gw.poll() is None,
                         f"answer {ans[:200]!r}")
        # Many concurrent well-formed and malformed requests at once.
        errs = []

        def hammer(i: int) -> None:
            a = _token_request(sock, (f"add h{i} h{i}.{THUMB} ttl=60\n" if i % 2 else
                                      "add junk\n").encode())
            if i % 2 and a != b"ok\n":
                errs.append(a)
        ths = [threading.Thread(target=hammer, args=(i,)) for i in range(400 if cfg.ci else 4000)]
        for t in ths:
            t.start()
        for t in ths:
            t.join()
        checks.check("tokens: concurrent well-formed adds among malformed ones all ok",
                     not errs, f"{len(errs)} failed, e.g. {errs[:3]}")
        # A peer of the wrong uid.
        r = subprocess.run(["ip", "netns", "exec", lab.ns.fw, "setpriv", "--reuid", "nobody",
                            "--regid", "nogroup", "--clear-groups", cfg.acmegw, "token",
                            "--socket", sock, "add", "evil", f"evil.{THUMB}"],
                           capture_output=True, text=True)
        listed = _token_request(sock, b"list\n")
        checks.check("tokens: a peer of uid nobody is refused, nothing added",
                     r.returncode != 0 and b"evil" not in listed,
                     f"exit {r.returncode} {r.stdout!r} {r.stderr!r}")
        print(f"INFO tokens: uid nobody: exit {r.returncode}: {r.stderr.strip()}", flush=True)
        for s in held:
            s.close()
        checks.run("tokens: token add + challenge work afterwards", lambda: add_ok("after1"))
    except BaseException:
        run.close()
        raise
    run.finish(checks, table)


def _rules_report(lab: Lab) -> dict:
    """What acmegw left installed in fw: chains, jumps, ip rules, takeover routes, sockets."""
    out = {}
    for tool in ("iptables-save", "ip6tables-save"):
        text = lab.sh(lab.ns.fw, tool)
        out[tool] = [ln for ln in text.splitlines() if "ACMEGW" in ln]
    out["rule4"] = lab.sh(lab.ns.fw, "ip", "-4", "rule").splitlines()
    out["rule6"] = lab.sh(lab.ns.fw, "ip", "-6", "rule").splitlines()
    out["routes"] = (lab.sh(lab.ns.fw, "ip", "-4", "route", "show", "table", "all", "proto",
                            "172").splitlines() +
                     lab.sh(lab.ns.fw, "ip", "-6", "route", "show", "table", "all", "proto",
                            "172").splitlines() +
                     lab.sh(lab.ns.fw, "ip", "-6", "route", "show", "table", "3802").splitlines())
    out["sockets"] = [ln for ln in lab.sh(lab.ns.fw, "ss", "-tanH").splitlines()
                      if f"{PROD.v4}:80 " in ln or f"[{PROD.v6}]:80 " in ln]
    return out


def _dups(lines: list) -> list:
    seen, dup = set(), []
    for ln in lines:
        key = re.sub(r"\[\d+:\d+\]", "", ln).strip()
        if key in seen:
            dup.append(ln)
        seen.add(key)
    return dup


def attack_restart(cfg: Config, checks: Checks, table: list) -> None:
    """(6) SIGKILL + restart of acmegw cfg.restarts times during a flood; then the rules,
    ip rules and routes exist once, and after a clean stop nothing is left."""
    run = Run(cfg, "restart")
    lab = run.lab
    try:
        before = _rules_report(lab)
        total = cfg.duration + 2
        procs = [run.challenge_load(*run.flood_argv(fam, cfg.rate / 2, total, "--any-status"),
                                    name=f"restart-flood-v{fam}") for fam in (4, 6)]
        gap = max(0.3, (cfg.duration - 2) / cfg.restarts)
        restarted = 0
        t_restart = []
        for _ in range(cfg.restarts):
            time.sleep(gap)
            lab.stop(run.gw, signal.SIGKILL)
            t0 = time.monotonic()
            run.gw = run.start_gw()
            t_restart.append(time.monotonic() - t0)
            run.sampler.pid = run.gw.pid
            restarted += 1
        checks.check(f"restart: {cfg.restarts} SIGKILL + restart during the flood",
                     restarted == cfg.restarts)
        floods = [run.result(p, total + 60) for p in procs]
        after = _rules_report(lab)
        for key in ("iptables-save", "ip6tables-save", "rule4", "rule6", "routes"):
            checks.check(f"restart: {key} after the storm: same as after the first start, no "
                         f"duplicates", sorted(after[key]) == sorted(before[key]) and
                         not _dups(after[key]),
                         f"before {before[key]}\nafter {after[key]}\ndups {_dups(after[key])}")
        print(f"INFO restart: restart to 'rules: installed' p50 "
              f"{sorted(t_restart)[len(t_restart) // 2]:.2f} s max {max(t_restart):.2f} s; "
              f"floods {[(f['flows'], f['statuses']) for f in floods]}", flush=True)
    except BaseException:
        run.close()
        raise
    try:
        row = run.finish(checks, table, close=False)  # the lab stays for the checks below
        rc = lab.stop(run.gw, signal.SIGTERM)
        checks.check("restart: clean stop (SIGTERM) exits 0", rc == 0, f"exit {rc}")
        time.sleep(0.5)
        left = _rules_report(lab)
        checks.check("restart: nothing left after the clean stop (chains, ip rules, routes)",
                     not left["iptables-save"] and not left["ip6tables-save"] and
                     not left["routes"] and not [r for r in left["rule6"] if "fwmark" in r],
                     f"{left}")
        repaired = [s for s in left["sockets"] if not s.startswith("TIME-WAIT")]
        checks.check("restart: no acmegw sockets on production's address:port after the stop",
                     not repaired, "\n".join(left["sockets"][:20]))
        states: dict = {}
        for sk in left["sockets"]:
            states[sk.split()[0]] = states.get(sk.split()[0], 0) + 1
        row["sockets_left"] = states
        row["restarts"] = cfg.restarts
        row["floods"] = [{k: f[k] for k in ("flows", "flows_per_s", "statuses")} for f in floods]
    finally:
        run.close()


def run_attacks(cfg: Config, only: list, checks: Checks) -> list:
    table: list = []
    base = Run(cfg, "baseline")
    try:
        time.sleep(cfg.duration)
    except BaseException:
        base.close()
        raise
    base.finish(checks, table, check_queue=True, recovery=True)
    jobs: dict[str, Callable[[], None]] = {
        "flood": lambda: (attack_flood(cfg, checks, table, "thumbprint"),
                          attack_flood(cfg, checks, table, "tokens")),
        "slow": lambda: attack_slow(cfg, checks, table),
        "rlimit": lambda: attack_rlimit(cfg, checks, table),
        "tokens": lambda: attack_tokens(cfg, checks, table),
        "restart": lambda: attack_restart(cfg, checks, table),
    }
    for name in ATTACKS:
        if only and name not in only:
            continue
        print(f"== attack {name}", flush=True)
        checks.run(f"{name}: attack ran to the end", lambda: (jobs[name](), None)[1])
    return table


def print_table(table: list) -> None:
    base = next((r for r in table if r["attack"] == "baseline"), None)
    print("\n| attack | prod p99 keep-alive ms | prod p99 close ms | prod req | prod err | "
          "queued | failed open | waiting | q/u dropped | peak RSS MiB (HWM) | peak fds | "
          "peak sessions | takeovers ok/failed | recovery ms |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in table:
        ka = f"{r['prod_ka_p99_ms']:.2f}"
        cl = f"{r['prod_close_p99_ms']:.2f}"
        if base and r is not base:
            ka += f" ({r['prod_ka_p99_ms'] / base['prod_ka_p99_ms']:.1f}x)"
            cl += f" ({r['prod_close_p99_ms'] / base['prod_close_p99_ms']:.1f}x)"
        print(f"| {r['attack']} | {ka} | {cl} | {r['prod_req']} | {r['prod_err']} | {r['queued']} "
              f"| {r['failed_open']} | {r['waiting']} | {r['q_dropped']}/{r['u_dropped']} "
              f"| {r['rss_mib']:.1f} ({r['hwm_mib']:.1f}) | {r['fds']} | {r['sessions']} "
              f"| {r.get('takeovers_ok', '?')}/{r.get('takeovers_failed', '?')} "
              f"| {r['recovery_ms']:.0f} |")
    for r in table:
        extra = {k: v for k, v in r.items() if k not in (
            "attack", "prod_ka_p99_ms", "prod_close_p99_ms", "prod_req", "prod_err", "queued",
            "rule_matched", "failed_open", "waiting", "q_dropped", "u_dropped", "rss_mib",
            "hwm_mib", "fds", "sessions", "takeovers_ok", "takeovers_failed", "recovery_ms")
                 and v not in ({}, None)}
        if extra:
            print(f"\n{r['attack']}:")
            for k, v in extra.items():
                print(f"  {k}: {json.dumps(v) if isinstance(v, (dict, list)) else v}")


def config(acmegw: str, challenge_load: Optional[str] = None, ci: bool = False,
           keep: bool = False) -> Config:
    """The defaults of scripts/stress, or the CI sizes. challenge_load defaults to the build
    tree of acmegw (BUILD/gateway/acmegw -> BUILD/tests/bench/challenge_load)."""
    acmegw = os.path.abspath(acmegw)
    if not challenge_load:
        challenge_load = os.path.join(os.path.dirname(acmegw), "..", "tests", "bench",
                                      "challenge_load")
    cfg = Config(acmegw=acmegw, challenge_load=os.path.abspath(challenge_load), ci=ci,
                 keep=keep)
    caps = gateway_caps(acmegw)
    if ci:
        cfg.duration, cfg.rate, cfg.slow_conns, cfg.hold = 8, 1000, 1000, 8
        cfg.sources, cfg.restarts = 16, 20
        cfg.recovery_s = 5  # generous: a loaded CI box
        if caps:  # short session timeouts, so the slow variants see them end
            cfg.caps = ["--session-header-timeout-ms", "3000", "--session-idle-timeout-ms",
                        "3000", "--session-total-timeout-ms", "6000"]
    return cfg
