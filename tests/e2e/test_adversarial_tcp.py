#!/usr/bin/env python3
"""e2e: adversarial TCP on challenge flows (issue 12, attack 5), IPv4 and IPv6, thumbprint backend.
The client's TCP is crafted with scapy (a real 3-way handshake to production, then segments
as an attacker would send them; the client kernel's RSTs for the crafted ports are dropped in
the client namespace): a request split in two and sent out of order; the challenge part of a
pipelined stream sent before the production request in front of it; overlapping segments with
the same bytes and with different bytes (the IDS-evasion case: the path rewritten in the
overlap); a "retransmitted" first segment with different bytes, before and after the decision;
RST and FIN while the first request is held, FIN on the request's last segment, RST on a
taken-over session. For every case: the client gets at most one coherent HTTP answer (never a
key authorization while production saw the request, never production's page for a challenge
acmegw answered), production sees nothing of a taken-over flow but the handshake and one RST,
production holds no socket of the flow afterwards, and acmegw's counters (`acmegw status
--json`) show the decision (production_by_cause.*). Then a RST while held followed by a new
connection from the same port. After all cases: acmegw alive, a normal challenge answered,
production's page byte for byte, no packet left waiting in the queue, no session left.
Properties broken by a known acmegw bug are listed in KNOWN_BROKEN: XFAIL while they fail, a
failure once they hold. --hold-timeout-ms is 3 s (a FIN/RST while held must decide sooner).

Run: python3 tests/e2e/test_adversarial_tcp.py --acmegw build/gateway/acmegw   (root; exit 77)
"""

from __future__ import annotations

import json
import os
import random
import re
import socket
import subprocess
import sys
import threading
import time
from typing import Callable, Optional

from lab import CLIENT, PROD, SMALL_PAGE, Checks, Lab, Segment, parse_args, require
from lab import _setns  # noqa: the same per-thread setns as lab.socket_in
from takeover_util import FIN, RST, SYN, THUMB, Client, challenge, keyauth_response, start

try:
    from scapy.layers.inet import IP, TCP
    from scapy.layers.inet6 import IPv6
    from scapy.layers.l2 import Ether
except ImportError:
    # Debian's python3-scapy lives in the system interpreter's dist-packages; a python3 from
    # elsewhere (pyenv, venv) can still use it (scapy is pure Python).
    sys.path.append("/usr/lib/python3/dist-packages")
    try:
        from scapy.layers.inet import IP, TCP
        from scapy.layers.inet6 import IPv6
        from scapy.layers.l2 import Ether
    except ImportError:
        print("SKIP: missing python module scapy (Debian package python3-scapy)")
        sys.exit(77)

PORTS = iter(range(20000, 20100))  # crafted flows' source ports (below the ephemeral range)
PORT_RANGE = "20000:20099"
WAIT = 5.0          # generous bound for any expected packet
HOLD_TIMEOUT_MS = 3000  # --hold-timeout-ms: well above the time a case needs to send its bytes
QUIET = 3.0         # how long "nothing more arrives" is watched
ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4


def packet_socket(ns: str, iface: str) -> socket.socket:
    """An AF_PACKET socket on iface inside ns (frames bypass the client's netfilter and TCP)."""
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    target = os.open(f"/run/netns/{ns}", os.O_RDONLY)
    try:
        _setns(target)
        try:
            s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
            s.bind((iface, ETH_P_ALL))
            return s
        finally:
            _setns(home)
    finally:
        os.close(target)
        os.close(home)


def mac_of(lab: Lab, ns: str, iface: str) -> str:
    return json.loads(lab.sh(ns, "ip", "-j", "link", "show", iface))[0]["address"]


class Flow:
    """One crafted client TCP connection to PROD[fam]:80 from a fixed source port. A reader
    thread records every segment from the server, ACKs its data in order (so the server's
    answer completes) and its FIN. Offsets of client data are relative to ISN + 1."""

    def __init__(self, lab: Lab, fam: int, sport: int, macs: tuple[str, str]) -> None:
        self.fam, self.sport = fam, sport
        self.src, self.dst = CLIENT[fam], PROD[fam]
        self.cmac, self.fwmac = macs
        self.sock = packet_socket(lab.ns.client, "eth0")
        self.sock.settimeout(0.05)
        self.isn = random.randrange(1 << 32)
        self.irs: Optional[int] = None
        self.rcv_nxt = 0
        self.server_data: dict[int, bytes] = {}  # server offset -> bytes
        self.server_fin = False
        self.server_rst = False
        self.fin_sent = False
        self.closed = False  # the client's side is gone (RST sent or close() done)
        self.challenge_acks = 0
        self.snd_una = 0  # highest client offset the server ACKed (relative to ISN + 1)
        self.segments: list[tuple[int, int, int]] = []  # (flags, rel seq, len) from the server
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._synack = threading.Event()
        self._t = threading.Thread(target=self._read, daemon=True)
        self._t.start()

    # --- sending -------------------------------------------------------------------------
    def _frame(self, flags: str, seq: int, data: bytes = b"", options=None) -> bytes:
        ip = IP(src=self.src, dst=self.dst) if self.fam == 4 else IPv6(src=self.src, dst=self.dst)
        tcp = TCP(sport=self.sport, dport=80, flags=flags, seq=seq & 0xFFFFFFFF,
                  ack=(self.rcv_nxt & 0xFFFFFFFF) if "A" in flags else 0, window=65535,
                  options=options or [])
        return bytes(Ether(src=self.cmac, dst=self.fwmac) / ip / tcp / data)

    def _send_raw(self, frame: bytes) -> None:
        with self._lock:
            self.sock.send(frame)

    def send(self, offset: int, data: bytes, flags: str = "PA") -> None:
        """A segment carrying `data` at client stream offset `offset`."""
        self._send_raw(self._frame(flags, self.isn + 1 + offset, data))

    def rst(self, offset: int) -> None:
        self._send_raw(self._frame("R", self.isn + 1 + offset))

    def fin(self, offset: int) -> None:
        self.fin_sent = True
        self._send_raw(self._frame("FA", self.isn + 1 + offset))

    def handshake(self) -> None:
        """SYN (retransmitted after 1 s, as a kernel does, up to 4 times), SYN/ACK, ACK."""
        for _ in range(5):
            self._send_raw(self._frame("S", self.isn, options=[("MSS", 1460)]))
            if self._synack.wait(1.0):
                break
        else:
            raise TimeoutError(f"no SYN/ACK for port {self.sport} "
                               f"({self.challenge_acks} ACKs of an older connection)")
        self._send_raw(self._frame("A", self.isn + 1))

    # --- receiving -----------------------------------------------------------------------
    def _read(self) -> None:
        while not self._stop.is_set():
            try:
                frame, addr = self.sock.recvfrom(65536)
            except socket.timeout:
                continue
            except OSError:
                return
            if addr[2] == PACKET_OUTGOING:
                continue
            try:
                pkt = Ether(frame)
            except Exception:
                continue
            l3 = pkt.getlayer(IP) if self.fam == 4 else pkt.getlayer(IPv6)
            if l3 is None or l3.src != self.dst or l3.dst != self.src or TCP not in pkt:
                continue
            t = pkt[TCP]
            if t.sport != 80 or t.dport != self.sport:
                continue
            self._on_segment(t, bytes(t.payload))

    def _on_segment(self, t, data: bytes) -> None:
        flags = int(t.flags)
        if flags & SYN:
            if t.ack == (self.isn + 1) & 0xFFFFFFFF:
                self.irs = t.seq
                self.rcv_nxt = t.seq + 1
                self._synack.set()
            return
        if self.irs is None:
            # SYN-SENT and an ACK that is not for our SYN (e.g. production's challenge ACK
            # from an old connection on the tuple): RST with seq = SEG.ACK (RFC 9293 3.10.7.3).
            if flags & 16 and not flags & RST:
                self.challenge_acks += 1
                self._send_raw(self._frame("R", t.ack))
            return
        rel = (t.seq - self.irs - 1) & 0xFFFFFFFF
        self.segments.append((flags, rel, len(data)))
        if self.closed:
            # What the client's kernel does for a segment of a connection it no longer has
            # (its own RSTs are dropped in the client namespace): RST with seq = SEG.ACK.
            if not flags & RST and flags & 16:
                self._send_raw(self._frame("R", t.ack))
            return
        if flags & RST:
            self.server_rst = True
            return
        if flags & 16:
            self.snd_una = max(self.snd_una, (t.ack - self.isn - 1) & 0xFFFFFFFF)
        if data:
            self.server_data.setdefault(rel, data)
        nxt = (self.rcv_nxt - self.irs - 1)
        advanced = bool(data)
        while True:
            hit = [(o, d) for o, d in self.server_data.items() if o <= nxt < o + len(d)]
            if not hit:
                break
            o, d = hit[0]
            nxt = o + len(d)
        if flags & FIN and rel + len(data) == nxt and not self.server_fin:
            self.server_fin = True
            nxt += 1
            advanced = True
        self.rcv_nxt = self.irs + 1 + nxt
        if advanced:
            self._send_raw(self._frame("A", self.isn + 1 + self.snd_una_sent()))

    def snd_una_sent(self) -> int:
        return getattr(self, "sent_end", 0)

    def stream(self) -> bytes:
        """The server's bytes, in order, up to the first hole."""
        out, nxt = b"", 0
        while True:
            hit = [(o, d) for o, d in self.server_data.items() if o <= nxt < o + len(d)]
            if not hit:
                return out
            o, d = hit[0]
            out += d[nxt - o:]
            nxt = o + len(d)

    def wait(self, cond: Callable[[], bool], timeout: float = WAIT) -> bool:
        deadline = time.monotonic() + timeout
        while not cond():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.02)
        return True

    def close(self, end: int) -> None:
        """Half-close at `end` (as a client done with the connection), wait for the server's
        FIN; reset if none comes. The reader goes on answering as a closed port would."""
        if not (self.closed or self.server_rst):
            self.sent_end = end
            if not self.fin_sent:
                self.fin(end)
            if not self.wait(lambda: self.server_fin or self.server_rst, QUIET):
                self.rst(end + 1)
        self.closed = True

    def reset(self, offset: int) -> None:
        """The client aborts: RST at `offset`; from now on the port is closed (set first: the
        answer to the RST can arrive before rst() returns)."""
        self.closed = True
        self.rst(offset)

    def shutdown(self) -> None:
        """Stop the reader and close the packet socket."""
        self._stop.set()
        self._t.join()
        self.sock.close()


def one_response(data: bytes, eof: bool) -> tuple[Optional[str], bytes, bytes]:
    """(None or why not, head, body) for `data` holding exactly one HTTP/1.1 response framed by
    Content-Length (no missing and no extra byte), or one HTTP/0.9 answer (a body ended by the
    server's FIN, no head: what nginx sends to a request line without a version)."""
    if eof and data and not data.startswith(b"HTTP/"):
        return None, b"", data
    if b"\r\n\r\n" not in data:
        return f"no complete response head: {data[:120]!r}", b"", b""
    end = data.index(b"\r\n\r\n") + 4
    head, rest = data[:end], data[end:]
    if not re.match(rb"HTTP/1\.1 \d{3} ", head):
        return f"not a status line: {head[:60]!r}", head, b""
    m = re.search(rb"\r\ncontent-length: *(\d+)", head, re.I)
    if not m:
        return f"no Content-Length: {head[:200]!r}", head, b""
    n = int(m[1])
    if len(rest) != n:
        return f"body {len(rest)} bytes, Content-Length {n}: {rest[n:n + 80]!r}", head, rest
    return None, head, rest


def flatten(d: dict, pre: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(flatten(v, f"{pre}{k}."))
        elif isinstance(v, (int, float)) and not isinstance(v, bool):
            out[f"{pre}{k}"] = v
    return out


class Gateway:
    """acmegw in fw, asked over its control socket."""

    def __init__(self, lab: Lab, acmegw: str, control: str, proc) -> None:
        self.lab, self.acmegw, self.control, self.proc = lab, acmegw, control, proc

    def status(self) -> dict:
        r = subprocess.run(["ip", "netns", "exec", self.lab.ns.fw, self.acmegw, "status",
                            "--json", "--socket", self.control], capture_output=True, text=True,
                           timeout=10)
        if r.returncode != 0:
            raise RuntimeError(f"acmegw status exited {r.returncode}: {r.stderr.strip()}")
        return json.loads(r.stdout)

    def counters(self) -> dict:
        return {k: v for k, v in flatten(self.status()).items()
                if k not in ("pid", "uptime_seconds")}


def delta(before: dict, after: dict) -> dict:
    """Counters that moved."""
    return {k: after[k] - before.get(k, 0) for k in after if after[k] != before.get(k, 0)}


def cause(d: dict, name: str) -> int:
    return d.get(f"flows.production_by_cause.{name}", 0)


def decided(d: dict) -> int:
    """Flows acmegw decided (in userspace) between two counter snapshots."""
    return sum(d.get(k, 0) for k in ("flows.production", "flows.challenge"))


class Env:
    """What a case needs: the lab, nginx, the gateway and the two MACs of the client link."""

    def __init__(self, lab: Lab, nginx, gw: Gateway, macs) -> None:
        self.lab, self.nginx, self.gw, self.macs = lab, nginx, gw, macs

    def flow(self, fam: int, sport: Optional[int] = None) -> Flow:
        return Flow(self.lab, fam, sport or next(PORTS), self.macs)

    def nginx_requests(self, fam: int, port: int) -> list[dict]:
        return [e for e in self.nginx.log_lines() if e["addr"] == CLIENT[fam] and e["port"] == port]

    def prod_sockets(self, port: int) -> str:
        """ss lines of production's sockets toward the client port."""
        return self.lab.sh(self.lab.ns.prod, "ss", "-Htan", f"( dport = :{port} )",
                           check=False).strip()


def client_payload(segs: list[Segment], port: int) -> list[Segment]:
    return [s for s in segs if s.sport == port and s.length > 0]


def rel(s: Segment, f: Flow) -> str:
    """One production-side segment, sequence numbers relative to the flow's ISNs."""
    names = "".join(c for b, c in ((SYN, "S"), (FIN, "F"), (RST, "R"), (8, "P"), (16, "."))
                    if s.flags & b)
    base = f.isn + 1 if s.sport == f.sport else (f.irs or 0) + 1
    who = "c" if s.sport == f.sport else "p"
    return f"{who}:{names}:{(s.seq - base) & 0xFFFFFFFF}+{s.length}"


# Known acmegw bugs: case (or "case / property") -> the bug. Reported as XFAIL while the property
# fails, and as a failure once it holds (remove the entry with the fix).
KNOWN_BROKEN: dict[str, str] = {
    "out of order: a pipelined challenge sent before the request ahead of it / production "
    "holds no socket of the flow":
        "acmegw takes over on the first segment it sees even when it does not start the "
        "stream (seq != ISN+1: an earlier segment has not arrived yet); its RST to production "
        "carries that segment's seq, production's rcv_nxt is lower, so production answers it "
        "with a challenge ACK (RFC 5961) and keeps an ESTABLISHED socket (until nginx's "
        "client_header_timeout, 60 s)",
    "out of order: a pipelined challenge sent before the request ahead of it / the answer is "
    "for the stream's first request":
        "the same takeover answers the key authorization to a stream whose first request is "
        "GET /index.html (the earlier bytes reach the repaired socket below its rcv_nxt and "
        "are dropped as old)",
}

ANSWER = "one coherent answer, consistent with what production saw"
RELEASED = "production holds no socket of the flow"


def run_case(env: Env, name: str, fam: int, body, expect: str,
             extra: Optional[tuple[str, Callable]]) -> tuple[list[tuple[str, Optional[str]]], str]:
    """One crafted flow. body(flow) sends the case's segments after the handshake and returns
    (client stream end offset, settle(): what to wait for before judging).
    expect: what the client may get: 'keyauth', 'production-answer' (production's HTTP answer),
    'either' (one of those two), 'production' (production's answer or nothing), 'any'.
    extra: (property, fn(info) -> why or None) of the case.
    Returns ([(property, why or None)], a description of what happened)."""
    lab = env.lab
    before = env.gw.counters()
    f = env.flow(fam)
    cap = lab.tcpdump(lab.ns.prod, "eth0", f"tcp port {f.sport}")
    try:
        f.handshake()
        end, settle = body(f)
        settle()

        def answered() -> bool:
            data = f.stream()
            return f.server_fin or f.server_rst or \
                (bool(data) and one_response(data, False)[0] is None)
        if not f.closed:  # a client that reset its side reads nothing more
            f.wait(answered, WAIT)
        time.sleep(0.3)  # nothing more may follow (a second answer would show)
        got, eof = f.stream(), f.server_fin
        f.close(end)
        # Every flow leaves the flow table: decided by a segment, a FIN/RST or the hold timeout.
        f.wait(lambda: env.gw.counters().get("sessions_open.http", 0) == 0, WAIT)
        time.sleep(0.3)
    finally:
        segs = cap.stop()
        f.shutdown()
    after = env.gw.counters()
    d = delta(before, after)
    log = env.nginx_requests(fam, f.sport)
    pay = client_payload(segs, f.sport)
    rsts = [s for s in segs if s.sport == f.sport and s.flags & RST]
    kind, why = "nothing", None
    if got:
        why, head, bodyb = one_response(got, eof)
        if why is None:
            if head.startswith(b"HTTP/1.1 200") and bodyb.endswith(f".{THUMB}".encode()):
                kind = "keyauth"
            else:
                kind = f"production ({head.split(b' ', 2)[1].decode() if head else 'HTTP/0.9'})"
    info = {"flow": f, "got": got, "segs": segs, "d": d, "nginx": log, "fam": fam, "kind": kind}
    desc = (f"client got {kind}; production saw {len(pay)} client payload segment(s), "
            f"{len(rsts)} client RST(s); nginx logged "
            f"{[e['request'][:60] + ' ' + str(e['status']) for e in log]}; acmegw moved {d}")
    if why is None:
        ok = {"keyauth": kind == "keyauth",
              "production-answer": kind.startswith("production"),
              "either": kind == "keyauth" or kind.startswith("production"),
              "production": kind != "keyauth",
              "any": True}[expect]
        if not ok:
            why = f"expected {expect}"
    if why is None and kind == "keyauth":
        # Taken over: production saw the handshake and one RST, no byte, logged nothing.
        if pay:
            why = f"key authorization answered but production saw {len(pay)} payload segment(s)"
        elif len(rsts) != 1:
            why = f"key authorization answered but production saw {len(rsts)} client RSTs"
        elif log:
            why = "key authorization answered but nginx logged the flow"
        elif d.get("takeovers.ok", 0) != 1:
            why = "key authorization answered but takeovers.ok did not move by 1"
    if why is None and kind.startswith("production"):
        if d.get("takeovers.ok", 0) or d.get("flows.challenge", 0):
            why = "production answered but acmegw counted a takeover"
        elif not log:
            why = "production answered but nginx logged nothing for the port"
    results = [(ANSWER, None if why is None else f"{why}: {desc}")]
    leftover = [line for line in env.prod_sockets(f.sport).splitlines()
                if line.startswith(("ESTAB", "CLOSE-WAIT", "SYN-RECV"))]
    results.append((RELEASED, None if not leftover else
                    f"{leftover}; production-side segments {[rel(s, f) for s in segs]}"))
    if extra:
        results.append((extra[0], extra[1](info)))
    return results, desc


def split_at(req: bytes, *cuts: int) -> list[tuple[int, bytes]]:
    b = [0, *cuts, len(req)]
    return [(b[i], req[b[i]:b[i + 1]]) for i in range(len(b) - 1)]


def retransmit_unacked(f: Flow, stream: bytes, after: float = 1.0) -> Callable[[], None]:
    """What the client's RTO does: resend, once, what the server has not ACKed after `after`."""
    def settle() -> None:
        if not f.wait(lambda: f.snd_una >= len(stream) or bool(f.server_data), after):
            f.send(f.snd_una, stream[f.snd_una:])
    return settle


def counted(what: str, n: int = 1) -> Callable:
    def fn(info) -> Optional[str]:
        got = cause(info["d"], what)
        return None if got == n else f"production_by_cause.{what} moved by {got}, want {n}: " \
                                     f"{info['d']}"
    return fn


def cases(env: Env) -> list:
    """(name, family, body, expect, extra) of every case, IPv4 then IPv6."""
    out = []
    for fam in (4, 6):
        def plain(f: Flow, fam=fam):
            req = challenge(f"plain{fam}")
            f.sent_end = len(req)
            f.send(0, req)
            return len(req), lambda: None
        out.append(("crafted challenge in one segment", fam, plain, "keyauth", None))

        # 1. Out of order: the request's second half first (it starts mid-path: the prefilter
        #    decides production in the kernel), then the first half; production reassembles.
        def ooo(f: Flow, fam=fam):
            req = challenge(f"ooo{fam}")
            (o1, a), (o2, b) = split_at(req, 20)
            f.sent_end = len(req)
            f.send(o2, b)
            time.sleep(0.3)
            f.send(o1, a)
            return len(req), retransmit_unacked(f, req)

        def ooo_check(info, fam=fam) -> Optional[str]:
            reqs = [e["request"] for e in info["nginx"]]
            if info["kind"] != "keyauth" and \
                    reqs != [f"GET /.well-known/acme-challenge/ooo{fam} HTTP/1.1"]:
                return f"production did not see the whole request exactly once: {reqs}"
            return None
        out.append(("out of order: second half of the request first", fam, ooo, "either",
                    ("production saw the whole request once", ooo_check)))

        # 1b. The start held, then the last part (a gap), then the missing middle.
        def gap(f: Flow, fam=fam):
            req = challenge(f"gap{fam}")
            (o1, a), (o2, b), (o3, c) = split_at(req, 12, 40)
            f.sent_end = len(req)
            f.send(o1, a)
            time.sleep(0.3)
            f.send(o3, c)
            time.sleep(0.3)
            f.send(o2, b)
            return len(req), retransmit_unacked(f, req)

        def gap_check(info, fam=fam) -> Optional[str]:
            reqs = [e["request"] for e in info["nginx"]]
            if info["kind"] != "keyauth" and \
                    reqs != [f"GET /.well-known/acme-challenge/gap{fam} HTTP/1.1"]:
                return f"production did not see the whole request exactly once: {reqs}"
            return counted("gap")(info) if info["kind"] != "keyauth" else None
        out.append(("out of order: held start, then the last part, then the middle", fam, gap,
                    "either", ("production saw the whole request once; cause gap", gap_check)))

        # 1c. A pipelined stream whose second request (the challenge) arrives before the first:
        #     the first segment acmegw sees does not start the stream.
        def ahead(f: Flow, fam=fam):
            first = b"GET /index.html HTTP/1.1\r\nHost: example.test\r\n\r\n"
            second = challenge(f"ahead{fam}")
            f.sent_end = len(first) + len(second)
            f.send(len(first), second)
            time.sleep(0.3)
            f.send(0, first)
            return f.sent_end, retransmit_unacked(f, first + second)
        def ahead_check(info) -> Optional[str]:
            if info["kind"] == "keyauth":
                return (f"the key authorization answered GET /index.html; production-side "
                        f"segments {[rel(s, info['flow']) for s in info['segs']]}")
            return None
        out.append(("out of order: a pipelined challenge sent before the request ahead of it",
                    fam, ahead, "either",
                    ("the answer is for the stream's first request", ahead_check)))

        # 2a. Benign overlap: the overlapping bytes are the same.
        def overlap_same(f: Flow, fam=fam):
            req = challenge(f"ovs{fam}")
            f.sent_end = len(req)
            f.send(0, req[:30])
            time.sleep(0.2)
            f.send(20, req[20:60])
            time.sleep(0.2)
            f.send(60, req[60:])
            return len(req), lambda: None
        out.append(("overlap with the same bytes", fam, overlap_same, "keyauth", None))

        # 2b. Evasion: the held start names a challenge path, an overlapping segment rewrites
        #     the path to /index.html and completes a request.
        def overlap_path(f: Flow, fam=fam):
            held = b"GET /.well-known/acme-challenge/AAAA"
            rewrite = b"/index.html HTTP/1.1\r\nHost: example.test\r\nX-Pad: " + b"p" * 40 + \
                b"\r\n\r\n"
            f.sent_end = 4 + len(rewrite)
            f.send(0, held)
            time.sleep(0.3)
            f.send(4, rewrite)
            return f.sent_end, retransmit_unacked(f, held[:4] + rewrite)
        out.append(("overlap rewriting the challenge path to /index.html", fam, overlap_path,
                    "production-answer", ("cause overlap", counted("overlap"))))

        # 2c. Evasion the other way round: a whole challenge head but its last CRLF held, then
        #     one segment overlapping all of it with a production request plus the final CRLF.
        def overlap_head(f: Flow, fam=fam):
            req = challenge(f"ovh{fam}")
            other = (b"GET /index.html HTTP/1.1\r\nHost: example.test\r\nX-Pad: " +
                     b"z" * len(req))[:len(req) - 4] + b"\r\n\r\n"
            f.sent_end = len(req)
            f.send(0, req[:-2])
            time.sleep(0.3)
            f.send(0, other)
            return len(req), retransmit_unacked(f, req)

        def overlap_head_check(info, fam=fam) -> Optional[str]:
            reqs = [e["request"] for e in info["nginx"]]
            if reqs != [f"GET /.well-known/acme-challenge/ovh{fam} HTTP/1.1"]:
                return f"production did not see the first-sent request: {reqs}"
            return counted("overlap")(info)
        out.append(("overlap rewriting a whole held challenge head", fam, overlap_head,
                    "production-answer",
                    ("production answered the bytes it kept; cause overlap", overlap_head_check)))

        # 3a. A "retransmitted" first segment with different bytes while it is held, then the
        #     rest of the original request.
        def retrans_held(f: Flow, fam=fam):
            req = challenge(f"rth{fam}")
            other = b"GET /index.html HTTP/1.1\r\nHost: example.test\r\n\r\n"
            f.sent_end = len(req)
            f.send(0, req[:40])
            time.sleep(0.3)
            f.send(0, other[:40])
            time.sleep(0.3)
            f.send(40, req[40:])
            return len(req), retransmit_unacked(f, req)

        def retrans_held_check(info, fam=fam) -> Optional[str]:
            reqs = [e["request"] for e in info["nginx"]]
            if reqs != [f"GET /.well-known/acme-challenge/rth{fam} HTTP/1.1"]:
                return f"production did not see the original request once: {reqs}"
            return counted("overlap")(info)
        out.append(("first segment retransmitted with different bytes while held", fam,
                    retrans_held, "production-answer",
                    ("production saw the original request; cause overlap", retrans_held_check)))

        # 3b. The same after the decision: a whole challenge (taken over at once), then its
        #     sequence numbers again carrying a production request.
        def retrans_taken(f: Flow, fam=fam):
            req = challenge(f"rtt{fam}")
            other = (b"GET /index.html HTTP/1.1\r\nHost: example.test\r\nX-Pad: " +
                     b"q" * len(req))[:len(req) - 4] + b"\r\n\r\n"
            f.sent_end = len(req)
            f.send(0, req)
            f.wait(lambda: bool(f.server_data), WAIT)
            f.send(0, other)
            return len(req), lambda: time.sleep(0.5)
        out.append(("whole challenge, then its sequence numbers again with other bytes", fam,
                    retrans_taken, "keyauth", None))

        # 4. RST while the first request is held.
        def rst_held(f: Flow, fam=fam):
            before = env.gw.counters()
            req = challenge(f"rst{fam}")
            f.sent_end = 30
            f.send(0, req[:30])
            time.sleep(0.3)
            f.reset(30)
            # decided by the RST (queued behind the held bytes by the HOLD end rule)
            return 30, lambda: f.wait(
                lambda: decided(delta(before, env.gw.counters())) > 0, HOLD_TIMEOUT_MS / 1e3 + WAIT)

        def rst_seen(info) -> Optional[str]:
            f = info["flow"]
            order = [s for s in info["segs"] if s.sport == f.sport and (s.length or s.flags & RST)]
            first_rst = next((i for i, s in enumerate(order) if s.flags & RST), None)
            if first_rst is not None and any(s.length for s in order[first_rst:]):
                return (f"the RST reached production before the held bytes: "
                        f"{[rel(s, f) for s in info['segs']]}; acmegw moved {info['d']}")
            return counted("client_end")(info)
        out.append(("RST while the first request is held", fam, rst_held, "production",
                    ("acmegw sees the RST (client_end)", rst_seen)))

        # 5a. FIN while the first request is held.
        def fin_held(f: Flow, fam=fam):
            req = challenge(f"fin{fam}")
            f.sent_end = 31
            f.send(0, req[:30])
            time.sleep(0.3)
            f.fin(30)
            return 31, lambda: f.wait(lambda: f.server_fin or f.server_rst,
                                      HOLD_TIMEOUT_MS / 1e3 + WAIT)

        def fin_seen(info) -> Optional[str]:
            f = info["flow"]
            fins = [s for s in info["segs"] if s.sport == f.sport and s.flags & FIN]
            if not fins or not client_payload(info["segs"], f.sport):
                return "production did not receive the held bytes and the FIN"
            order = [s for s in info["segs"] if s.sport == f.sport and (s.length or s.flags & FIN)]
            if order[0].flags & FIN and not order[0].length:
                return (f"the FIN reached production before the held bytes: "
                        f"{[rel(s, f) for s in info['segs']]}; acmegw moved {info['d']}")
            return counted("client_end")(info)
        out.append(("FIN while the first request is held", fam, fin_held, "production",
                    ("acmegw sees the FIN (client_end)", fin_seen)))

        # 5b. FIN on the request's last segment (a whole challenge, half-closed): production.
        def fin_last(f: Flow, fam=fam):
            req = challenge(f"finl{fam}")
            f.sent_end = len(req) + 1
            f.send(0, req[:30])
            time.sleep(0.3)
            f.fin_sent = True
            f.send(30, req[30:], flags="FPA")
            return len(req) + 1, lambda: f.wait(lambda: f.server_fin or f.server_rst, WAIT)
        out.append(("FIN on the challenge's last segment", fam, fin_last, "production-answer",
                    ("cause client_end", counted("client_end"))))

        # 5c. RST right behind a whole challenge (the takeover in progress or just done).
        def rst_taken(f: Flow, fam=fam):
            req = challenge(f"rstt{fam}")
            f.sent_end = len(req)
            f.send(0, req)
            f.reset(len(req))
            return len(req), lambda: time.sleep(0.5)
        out.append(("RST right behind a whole challenge", fam, rst_taken, "any", None))
    return out


def report(checks: Checks, what: str, why: Optional[str], key: str) -> None:
    if key in KNOWN_BROKEN:
        checks.check(f"{what} (known broken: remove from KNOWN_BROKEN)", why is not None,
                     "it works now")
        print(f"XFAIL {what}: {KNOWN_BROKEN[key]} [{why}]", flush=True)
    else:
        checks.check(what, why is None, why or "")


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    require("iptables", "ip6tables", "nginx", "tcpdump", "ss")
    checks = Checks()
    t0 = time.monotonic()
    with Lab("adversarial-tcp", prefix="agwT", keep=args.keep) as lab:
        control = os.path.join(lab.dir, "control.sock")
        nginx, proc = start(lab, args.acmegw, "--control-socket", control,
                            "--hold-timeout-ms", str(HOLD_TIMEOUT_MS))
        gw = Gateway(lab, args.acmegw, control, proc)
        # The client kernel has no socket for the crafted flows: its RSTs must not reach them.
        for tool in ("iptables", "ip6tables"):
            lab.sh(lab.ns.client, tool, "-w", "-A", "OUTPUT", "-p", "tcp", "--sport", PORT_RANGE,
                   "--tcp-flags", "RST", "RST", "-j", "DROP")
        env = Env(lab, nginx, gw, (mac_of(lab, lab.ns.client, "eth0"),
                                   mac_of(lab, lab.ns.fw, "c0")))
        for name, fam, body, expect, extra in cases(env):
            t_case = time.monotonic()
            try:
                results, desc = run_case(env, name, fam, body, expect, extra)
            except Exception as e:  # reported as the case's failure
                results, desc = [(ANSWER, f"{type(e).__name__}: {e}")], ""
            print(f"INFO IPv{fam} {name} ({time.monotonic() - t_case:.1f} s): {desc}", flush=True)
            for prop, why in results:
                report(checks, f"IPv{fam}: {name}: {prop}", why, f"{name} / {prop}")
            if not checks.check(f"IPv{fam}: acmegw alive after: {name}", proc.poll() is None,
                                f"exited {proc.returncode}: {lab.log_of(proc)[-1500:]}"):
                break

        # RST while held, then a new connection from the same port: taken over as usual.
        for fam in (4, 6):
            def reuse(fam=fam) -> Optional[str]:
                port = next(PORTS)
                before = gw.counters()
                f = env.flow(fam, port)
                f.handshake()
                f.send(0, challenge(f"held{fam}")[:30])
                time.sleep(0.3)
                f.reset(30)
                t_rst = time.monotonic()
                time.sleep(0.3)
                f.shutdown()
                f = env.flow(fam, port)
                try:
                    f.handshake()
                    req = challenge(f"fresh{fam}")
                    f.sent_end = len(req)
                    f.send(0, req)
                    after_rst = time.monotonic() - t_rst
                    want = keyauth_response(f"fresh{fam}")
                    ok = f.wait(lambda: f.stream() == want, WAIT)
                    got = f.stream()
                    f.close(len(req))
                finally:
                    f.shutdown()
                d = delta(before, gw.counters())
                print(f"INFO IPv{fam} reuse: challenge sent {after_rst:.2f} s after the RST, "
                      f"{f.challenge_acks} old ACKs seen; acmegw moved {d}", flush=True)
                return None if ok else f"fresh flow from port {port}: {got[:120]!r} != {want!r}"
            what = "RST while held, then a new connection from the same port is taken over"
            try:
                why = reuse()
            except Exception as e:  # reported as the check's failure
                why = f"{type(e).__name__}: {e}"
            report(checks, f"IPv{fam}: {what}", why, what)

        # Afterwards: everything as before.
        for fam in (4, 6):
            def normal(fam=fam) -> Optional[str]:
                c = Client(lab.ns.client, PROD[fam])
                c.send(challenge(f"after{fam}"))
                want = keyauth_response(f"after{fam}")
                got = c.read_exact(len(want))
                c.close_and_wait_eof()
                if got != want:
                    return f"challenge: {got[:120]!r}"
                c = Client(lab.ns.client, PROD[fam])
                c.send(b"GET / HTTP/1.1\r\nHost: example.test\r\n\r\n")
                head, body = c.read_response()
                c.close_and_wait_eof()
                if not head.startswith(b"HTTP/1.1 200") or body != SMALL_PAGE:
                    return f"production page: {head[:60]!r}, {len(body)} bytes"
                return None
            checks.run(f"IPv{fam}: afterwards a challenge is answered and production's page is "
                       "served byte for byte", normal)

        def drained() -> bool:
            rows = lab.nfqueue_proc()
            return bool(rows) and all(r["waiting"] == 0 for r in rows)
        try:
            lab.wait_for(drained, 10, "the queue to drain")
        except TimeoutError:
            pass
        rows = lab.nfqueue_proc()
        checks.check("every queued packet got its verdict (nfnetlink_queue: 0 waiting, 0 dropped)",
                     bool(rows) and all(r["waiting"] == 0 and r["queue_dropped"] == 0 and
                                        r["user_dropped"] == 0 for r in rows), f"{rows}")
        st = gw.counters()
        checks.check("no taken-over session left open", st.get("sessions_open.http", 0) == 0,
                     f"{st}")
        print(f"INFO counters at the end: {st}", flush=True)
        checks.check("acmegw alive at the end", proc.poll() is None, lab.log_of(proc)[-1500:])
        rc = lab.stop(proc)
        final = [line for line in lab.log_of(proc).splitlines() if "stats: final:" in line]
        print(f"INFO {final[-1] if final else 'no stats: final: line'}", flush=True)
        checks.check("SIGTERM: acmegw exits 0", rc == 0, f"exit {rc}")
    print(f"INFO runtime {time.monotonic() - t0:.1f} s", flush=True)
    checks.exit()


if __name__ == "__main__":
    main()
