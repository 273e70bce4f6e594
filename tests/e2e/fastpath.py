"""The fast-path e2e test body shared by test_fastpath.py (routed) and test_fastpath_dnat.py.

Each scenario talks to the byte recorder in prod through fw and checks that production received
exactly the client's bytes from the client's own address, that the client received exactly
production's bytes, and (when acmegw runs) how many packets of the flow reached userspace.
"""

from __future__ import annotations

import os
import re
import signal
import socket
from typing import Optional

from lab import (CLIENT, PROD, PUBLIC, REC, REC_PUBLIC, SMALL_PAGE, Checks, Lab, Nginx, Recorder,
                 parse_args, require, socket_in)

SSH_SERVER_BANNER = b"SSH-2.0-OpenSSH_9.6p1 Debian-4\r\n"


# How many packets of a flow may reach the queue without the prefilter (none with it):
ONE = "one"          # exactly the first data segment
WINDOW = "window"    # what the client sends before the verdict: at most one initial window
RETRANSMIT = "retx"  # the first segment, its SACK-triggered retransmission, and a tail-loss
#                      probe if the verdict is slow (loaded machine): at most 3
INITIAL_WINDOW = 10  # segments (Linux IW10); GSO can only make the packet count smaller


def _scenarios() -> list[tuple[str, list[bytes], dict, str]]:
    """(name, chunks, Lab.exchange options, queue rule) for every flow shape the issue lists."""
    post_head = (b"POST /upload HTTP/1.1\r\nHost: example.test\r\nContent-Type: application/"
                 b"octet-stream\r\nContent-Length: 262144\r\n\r\n")
    post_body = os.urandom(256 * 1024)
    return [
        ("header-case", [b"GET /Mixed/Case?Q=1 HTTP/1.1\r\nHoSt: Example.TEST\r\n"
                         b"X-CaSe-TeSt: AbC\r\naccept: */*\r\n\r\n"], {}, ONE),
        ("connection-close", [b"GET / HTTP/1.1\r\nHost: example.test\r\n"
                              b"Connection: close\r\n\r\n"], {}, ONE),
        # Head and body in one write: the client sends a whole initial window before production
        # can ACK anything, and production ACKs nothing before the verdict, so everything that
        # reaches the queue arrived before the verdict; nothing after it does.
        ("post-256k", [post_head + post_body], {}, WINDOW),
        # Head first, body once the head is ACKed (as with Expect: 100-continue): the 256 KiB
        # body never leaves the kernel.
        ("post-256k-after-head", [post_head, post_body], {"ack_each": True}, ONE),
        ("pipelined", [b"GET /1 HTTP/1.1\r\nHost: a\r\n\r\nGET /2 HTTP/1.1\r\nHost: a\r\n\r\n"
                       b"HEAD /3 HTTP/1.1\r\nHost: a\r\n\r\n",
                       b"GET /.well-known/acme-challenge/late HTTP/1.1\r\nHost: a\r\n\r\n"],
         {"nodelay": True, "ack_each": True}, ONE),
        # The server speaks first; the client's first bytes are an SSH banner and binary KEXINIT.
        ("ssh-banner", [b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n" + bytes(range(256)) * 4],
         {"read_first": len(SSH_SERVER_BANNER)}, ONE),
        # FIN right behind the request: it may overtake the held first segment (see
        # Lab.exchange), so retransmissions of that segment may be queued as well.
        ("fin-with-request", [b"GET /fin HTTP/1.1\r\nHost: example.test\r\n\r\n"],
         {"settle": False}, RETRANSMIT),
    ]


def run_byte_checks(lab: Lab, checks: Checks, rec: Recorder, target: str, tag: str,
                    prefilter: Optional[bool]) -> None:
    """Run every scenario against recorder address `target` (client -> fw -> prod).
    prefilter: whether acmegw runs with it (then no packet may be queued) or without it (then
    the scenario's queue rule applies); None: acmegw is not running, no queue counts."""
    fam = 6 if ":" in target else 4
    for name, chunks, opts, rule in _scenarios():
        rec.greeting = SSH_SERVER_BANNER if name == "ssh-banner" else b""
        before = lab.nfqueue_packets() if prefilter is not None else 0
        local, resp = lab.exchange(lab.ns.client, target, chunks, **opts)
        conv = rec.conversation(local)
        sent = b"".join(chunks)
        checks.check(f"{tag} {name}: production received the client's bytes",
                     conv.received == sent, _diff(sent, conv.received))
        checks.check(f"{tag} {name}: client received production's bytes",
                     resp == conv.sent, _diff(conv.sent, resp))
        checks.check(f"{tag} {name}: production sees the client's address",
                     conv.peer[0] == CLIENT[fam], f"peer {conv.peer[0]}, client {CLIENT[fam]}")
        if prefilter is None:
            continue
        n = lab.nfqueue_packets() - before
        if rule != ONE:
            print(f"  {tag} {name}: {n} packet(s) queued", flush=True)
        if prefilter:
            checks.check(f"{tag} {name}: no packet reached the queue", n == 0, f"{n} queued")
        elif rule == ONE:
            checks.check(f"{tag} {name}: only the first data segment reached the queue", n == 1,
                         f"{n} queued")
        elif rule == WINDOW:
            checks.check(f"{tag} {name}: only segments sent before the verdict (<= one initial "
                         "window) reached the queue", 1 <= n <= INITIAL_WINDOW, f"{n} queued")
        else:
            checks.check(f"{tag} {name}: only the first segment (and retransmissions of it) "
                         "reached the queue", 1 <= n <= 3, f"{n} queued")
    rec.greeting = b""
    one_byte_segments(lab, checks, rec, target, tag, prefilter is not None)


def one_byte_segments(lab: Lab, checks: Checks, rec: Recorder, target: str, tag: str,
                      count_queue: bool) -> None:
    """First request sent one byte per segment (TCP_NODELAY, a send per byte, 5 ms apart):
    tcpdump on fw's client link proves the segments were separate; production gets the bytes
    intact; at most the request line's segments reach the queue (the flow is held until the
    line is complete, then decided; nothing after the decision is queued)."""
    req = b"GET /split/one/byte HTTP/1.1\r\nHost: example.test\r\nX-Split: yes\r\n\r\n"
    line_len = req.index(b"\n") + 1
    fam = 6 if ":" in target else 4
    # Autocorking would merge back-to-back small writes while an earlier one is still queued.
    lab.sh(lab.ns.client, "sysctl", "-qw", "net.ipv4.tcp_autocorking=0")
    cap = lab.tcpdump(lab.ns.fw, "c0", f"tcp and dst port 80 and src host {CLIENT[fam]}")
    before = lab.nfqueue_packets() if count_queue else 0
    local, resp = lab.exchange(lab.ns.client, target, [req[i:i + 1] for i in range(len(req))],
                               nodelay=True, delay=0.005)
    segs = [s for s in cap.stop() if s.sport == local[1] and s.length > 0]
    conv = rec.conversation(local)
    # The sender's TCP may still merge bytes: a retransmission collapses queued segments, and a
    # descheduled python client sends its backlog in a burst that cwnd/TSQ coalesce (autocorking
    # is off, see above). The decision is made on the request line, so each of its bytes must
    # have had its own 1-byte segment; the whole request must arrive intact (next check).
    first = min(s.seq for s in segs) if segs else 0
    ones = {s.seq for s in segs if s.length == 1}
    line_ones = {q for q in ones if (q - first) % 2**32 < line_len}
    checks.check(f"{tag} one-byte segments: fw saw the request line as {line_len} separate 1-byte "
                 "segments",
                 len(line_ones) == line_len,
                 f"{len(line_ones)} of them; {len(ones)} distinct 1-byte segments of {len(req)} "
                 f"bytes, lengths {sorted({s.length for s in segs})}")
    checks.check(f"{tag} one-byte segments: production received the request intact",
                 conv.received == req and resp == conv.sent, _diff(req, conv.received))
    if count_queue:
        n = lab.nfqueue_packets() - before
        checks.check(f"{tag} one-byte segments: only request-line segments reached the queue",
                     0 < n <= line_len, f"{n} queued, request line is {line_len} bytes")


def _diff(want: bytes, got: bytes) -> str:
    """Short description of the first difference between two byte strings."""
    if want == got:
        return ""
    common = min(len(want), len(got))
    i = next((k for k in range(common) if want[k] != got[k]), common)
    return (f"lengths {len(want)} expected vs {len(got)}; first difference at byte {i}: "
            f"expected {want[i:i + 16]!r}, got {got[i:i + 16]!r}")


def nginx_logs_client(lab: Lab, checks: Checks, nginx: Nginx, target: str, tag: str) -> None:
    """One request to nginx: the response carries the page and the access log line for this
    exact request shows the client's own address and port."""
    fam = 6 if ":" in target else 4
    req = (f"GET /?probe={tag.replace(' ', '-')} HTTP/1.1\r\nHost: example.test\r\n"
           "Connection: close\r\n\r\n")
    local, resp = lab.exchange(lab.ns.client, target, [req.encode()])
    lab.wait_for(lambda: any(e["port"] == local[1] for e in nginx.log_lines()), 5, "nginx log line")
    entry = next(e for e in nginx.log_lines() if e["port"] == local[1])
    checks.check(f"{tag}: nginx answered with the page", resp.startswith(b"HTTP/1.1 200")
                 and resp.endswith(SMALL_PAGE), f"response {resp[:40]!r}...")
    checks.check(f"{tag}: nginx log shows the client's address", entry["addr"] == CLIENT[fam],
                 f"logged {entry['addr']}, client is {CLIENT[fam]}")


def final_counter(log: str, name: str) -> Optional[int]:
    """Counter `name` from acmegw's `stats: final:` log line (absent = 0; no line = None)."""
    line = next((ln for ln in log.splitlines() if "stats: final:" in ln), None)
    if line is None:
        return None
    m = re.search(rf"\b{re.escape(name)}=(\d+)", line)
    return int(m[1]) if m else 0


def rules_gone(lab: Lab) -> str | None:
    """None if fw has no NFQUEUE rule and no fwmark policy rule left, else what remains."""
    left = [line for tool in ("iptables-save", "ip6tables-save")
            for line in lab.sh(lab.ns.fw, tool).splitlines() if "NFQUEUE" in line]
    left += [line for fam in ("-4", "-6")
             for line in lab.sh(lab.ns.fw, "ip", fam, "rule").splitlines() if "fwmark" in line]
    return "; ".join(left) if left else None


# Further client addresses for spread_over_queues (the lab's client is 198.51.100.2).
SPREAD_SOURCES = [f"198.51.100.{i}" for i in range(100, 164)]


def spread_over_queues(lab: Lab, target: str) -> Optional[str]:
    """Both queues of --queue-balance 0:1 got packets. xt_NFQUEUE picks the queue from a hash of
    the address pair and protocol only (nfqueue_hash: no ports) with a boot-random seed, so the
    lab's two address pairs (v4, v6) land on one queue a quarter to half of the time, whatever
    the number of flows. Until both queues saw a packet, one flow from each further client
    address: all 64 on the same queue as before has probability 2^-64."""
    for src in [None, *SPREAD_SOURCES]:
        if src:
            lab.sh(lab.ns.client, "ip", "addr", "add", f"{src}/32", "dev", "eth0")
            s = socket_in(lab.ns.client, 4)
            s.settimeout(10)
            s.bind((src, 0))
            s.connect((target, 80))
            s.sendall(b"GET /spread HTTP/1.1\r\nHost: spread\r\n\r\n")
            s.shutdown(socket.SHUT_WR)
            while s.recv(65536):
                pass
            s.close()
        ids = [q["id_seq"] for q in lab.nfqueue_proc()]
        if len(ids) == 2 and min(ids) > 0:
            return None
    return f"packets per queue: {ids} after flows from {len(SPREAD_SOURCES)} more addresses"


def run_fastpath(doc: str, dnat: bool) -> None:
    """The whole fast-path test (routed production, or DNAT from PUBLIC addresses if dnat);
    exits with the result."""
    require("nginx", "tcpdump", "iptables", "ip6tables", "iptables-save")
    args = parse_args(doc, lambda p: p.add_argument(
        "--baseline", action="store_true", help="no acmegw: plain forwarding only"))
    checks = Checks()
    web, recorder = (PUBLIC, REC_PUBLIC) if dnat else (PROD, REC)
    # The queue rule sees pre-DNAT destinations (mangle PREROUTING), so protect those.
    protect = [web.v4, web.v6, recorder.v4, recorder.v6]
    with Lab("fastpath-dnat" if dnat else "fastpath", keep=args.keep) as lab:
        if dnat:
            lab.enable_dnat()
        nginx = lab.start_nginx()
        rec = lab.start_recorder()
        # Two queues without the prefilter, so flows spread over two workers.
        modes = [("baseline", None, None)] if args.baseline else \
            [("no-prefilter", ["--no-prefilter", "--queue-balance", "0:1"], False),
             ("prefilter", [], True)]
        for mode, extra, prefilter in modes:
            gw = None if extra is None else lab.run_acmegw(args.acmegw, *extra, protect=protect)
            for fam in (4, 6):
                run_byte_checks(lab, checks, rec, recorder[fam], f"{mode} v{fam}", prefilter)
                nginx_logs_client(lab, checks, nginx, web[fam], f"{mode} v{fam} nginx")
            if gw is not None:
                if not prefilter:
                    checks.run(f"{mode}: flows spread over both queues",
                               lambda: spread_over_queues(lab, recorder.v4))
                queued = lab.nfqueue_packets()  # the rules (and counters) are this run's own
                status = lab.stop(gw, signal.SIGTERM)
                got = final_counter(lab.log_of(gw), "packets")
                checks.check(f"{mode}: acmegw's packets counter equals the NFQUEUE rule counters",
                             got == queued, f"rules queued {queued}, acmegw counted {got}")
                checks.check(f"{mode}: acmegw exits 0 on SIGTERM", status == 0,
                             f"status {status}; log: {lab.log_of(gw)[-500:]}")
                checks.run(f"{mode}: SIGTERM removed the rules", lambda: rules_gone(lab))
    checks.exit()
