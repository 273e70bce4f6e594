"""Helpers shared by the takeover e2e tests (test_takeover*.py): start acmegw with the thumbprint
backend, speak HTTP/1.1 over one client connection, and judge captures of a taken-over flow."""

from __future__ import annotations

import os
import socket
import subprocess
from typing import Optional, Sequence

from lab import BIG_PAGE_SIZE, CLIENT, PROD, PUBLIC, Lab, Segment, family_of, socket_in

THUMB = "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"  # RFC 7638 §3.1 example thumbprint
BIG_PAGE = bytes(i % 251 for i in range(BIG_PAGE_SIZE))  # what lab's nginx serves at /100k
RST, SYN, FIN = 4, 2, 1
# The lab client's addresses, plus the extra ones test_takeover_load.py adds (…::3-7, .3-.7).
CLIENTS = {CLIENT.v4, CLIENT.v6} | {f"198.51.100.{i}" for i in range(3, 8)} | \
    {f"2001:db8:1::{i}" for i in range(3, 8)}


def challenge(token: str, method: str = "GET", host: str = "example.test") -> bytes:
    """A challenge request shaped like Let's Encrypt's."""
    return (f"{method} /.well-known/acme-challenge/{token} HTTP/1.1\r\nHost: {host}\r\n"
            "User-Agent: Mozilla/5.0 (compatible; Let's Encrypt validation server; "
            "+https://www.letsencrypt.org)\r\nAccept: */*\r\nAccept-Encoding: gzip\r\n\r\n"
            ).encode()


def keyauth_response(token: str, head: bool = False, close: bool = False) -> bytes:
    """acmegw's exact answer to a challenge for `token` (close: to a request that asked for the
    connection to end)."""
    body = f"{token}.{THUMB}".encode()
    r = (b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n" +
         (b"Connection: close\r\n" if close else b"") +
         b"Content-Length: %d\r\n\r\n" % len(body))
    return r if head else r + body


def start(lab: Lab, acmegw: str, *extra: str, dnat: bool = False, log: str = "info"):
    """nginx in prod, acmegw in fw protecting PROD (or PUBLIC with DNAT); returns (nginx, proc)
    once the whole ruleset (incl. the policy route) is installed."""
    nginx = lab.start_nginx()
    if dnat:
        lab.enable_dnat()
    dst = PUBLIC if dnat else PROD
    proc = lab.run_acmegw(acmegw, "--backend", f"thumbprint={THUMB}", "--log-level", log, *extra,
                          protect=[dst.v4, f"[{dst.v6}]"])
    lab.wait_for(lambda: "rules: installed" in lab.log_of(proc), 10, "acmegw rules installed")
    return nginx, proc


class Client:
    """One HTTP/1.1 client connection from namespace `ns`, with optional socket options set
    before connect (e.g. TCP_MAXSEG)."""

    def __init__(self, ns: str, addr: str, port: int = 80, mss: int = 0, nodelay: bool = False,
                 source: Optional[str] = None, timeout: float = 10, source_port: int = 0,
                 tos: int = 0, ip_options: bytes = b"") -> None:
        self.s = socket_in(ns, family_of(addr))
        self.s.settimeout(timeout)
        if tos:  # IPv4 TOS byte of every segment, SYN included
            self.s.setsockopt(socket.IPPROTO_IP, socket.IP_TOS, tos)
        if ip_options:  # IPv4 header options of every segment
            self.s.setsockopt(socket.IPPROTO_IP, socket.IP_OPTIONS, ip_options)
        if source_port:  # a fixed port may have just been used by an earlier connection
            self.s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if mss:
            self.s.setsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG, mss)
        if nodelay:
            self.s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if source or source_port:
            self.s.bind((source or "", source_port))
        self.s.connect((addr, port))
        self.local = self.s.getsockname()[:2]
        self.buf = b""

    def send(self, data: bytes) -> None:
        self.s.sendall(data)

    def read_exact(self, n: int) -> bytes:
        while len(self.buf) < n:
            b = self.s.recv(65536)
            if not b:
                break
            self.buf += b
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def read_response(self, head_only: bool = False) -> tuple[bytes, bytes]:
        """(head incl. blank line, body) of one response framed by Content-Length."""
        while b"\r\n\r\n" not in self.buf:
            b = self.s.recv(65536)
            if not b:
                raise EOFError(f"connection ended inside a response head: {self.buf[:200]!r}")
            self.buf += b
        end = self.buf.index(b"\r\n\r\n") + 4
        head, self.buf = self.buf[:end], self.buf[end:]
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":", 1)[1])
        return head, b"" if head_only else self.read_exact(length)

    def close_and_wait_eof(self) -> bytes:
        """Half-close (our FIN first, as a client does), then read to EOF; returns the rest."""
        self.s.shutdown(socket.SHUT_WR)
        rest = self.buf
        while True:
            b = self.s.recv(65536)
            if not b:
                break
            rest += b
        self.s.close()
        return rest


def flow_segments(segs: Sequence[Segment], client_port: int) -> list[Segment]:
    """Segments of the client's flow (either direction): its port, and the client's own
    address on one side (the gateway's relay connections use the gateway's address)."""
    return [s for s in segs if (s.src in CLIENTS and s.sport == client_port)
            or (s.dst in CLIENTS and s.dport == client_port)]


def judge_production_capture(segs: Sequence[Segment], client_port: int) -> Optional[str]:
    """Production must see only the handshake and one RST from the client side: no payload
    byte in either direction. None when so, else why not."""
    f = flow_segments(segs, client_port)
    payload = [s for s in f if s.length > 0]
    if payload:
        return f"production saw {len(payload)} payload segment(s)"
    rsts = [s for s in f if s.flags & RST]
    if len(rsts) != 1 or rsts[0].sport != client_port:
        return f"expected one RST from the client side, saw {[(s.sport, s.flags) for s in rsts]}"
    if not any(s.flags & SYN and s.sport == client_port for s in f):
        return "no handshake in the production capture"
    others = [s for s in f if not (s.flags & (SYN | RST)) and s.length == 0]
    if len(others) > 2:  # the handshake's ACK (+ one window update/dup ACK at most)
        return f"production saw {len(others)} extra empty segments"
    return None


def judge_client_capture(segs: Sequence[Segment], client_port: int) -> Optional[str]:
    """The client must see no RST and send its request exactly once (no retransmission)."""
    f = flow_segments(segs, client_port)
    if any(s.flags & RST for s in f):
        return "the client saw/sent a RST"
    sent = [(s.seq, s.length) for s in f if s.sport == client_port and s.length > 0]
    if len(sent) != len(set(sent)):
        dup = sorted({x for x in sent if sent.count(x) > 1})
        return f"the client retransmitted (seq, len): {dup[:5]}"
    return None


def fd_count(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def conntrack_established(lab: Lab) -> int:
    """ESTABLISHED TCP entries to port 80 in fw's conntrack table (v4 + v6)."""
    n = 0
    for fam in ("ipv4", "ipv6"):
        r = subprocess.run(["ip", "netns", "exec", lab.ns.fw, "conntrack", "-L", "-f", fam, "-p",
                            "tcp", "--dport", "80", "--state", "ESTABLISHED"],
                           capture_output=True, text=True)
        n += sum(1 for line in r.stdout.splitlines() if line.startswith("tcp"))
    return n
