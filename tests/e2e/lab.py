"""acmegw e2e lab: throwaway network namespaces for end-to-end tests (python3 stdlib, root).

Topology of one Lab (all addresses are documentation ranges and live only inside the lab):

    client  eth0 ──── c0  fw  p0 ──── eth0  prod   nginx on PROD, byte recorder on REC
    CLIENT            ip_forward=1,           (PROD and REC are two addresses of prod)
                      rp_filter=1 (strict),
                      conntrack; acmegw runs here
                          v0 ──── eth0  val   (only with Lab(val=True))

    client and prod route everything via fw, so prod sees the client's own address.
    Lab.enable_dnat() adds the DNAT variant: PUBLIC (an address nobody owns, routed to fw) is
    DNAT'ed on fw to PROD (port 80), REC_PUBLIC to REC.

API (everything a test needs; see each docstring):
    require(*tools)                   exit 77 unless root and every tool is on PATH
    parse_args(description, extra)    --acmegw PATH (+ --keep for debugging; extra(parser) adds)
    Checks()                          .check(name, cond, why) / .run(name, fn) / .exit()
    Lab(name, prefix="agwF", val=False)   context manager; builds everything, removes it on
                                      exit, failure and SIGINT/SIGTERM/SIGHUP
      .ns.client/.fw/.prod/.val       namespace names
      .sh(ns, *argv)                  run a command in ns, return stdout (raise on failure)
      .spawn(ns, *argv, name=)        start a process in ns (tracked; output in .dir/name.log)
      .stop(proc, sig)                stop a spawned process by PID, return its exit status
      .socket(ns, family)             a socket created inside ns (used in-process, no fork)
      .can_connect(ns, addr, port)    True when addr:port in ns accepts TCP within 1 s
      .exchange(ns, addr, chunks, ...)  send bytes (any segmentation), half-close once ACKed,
                                      read to EOF; returns ((client addr, port), bytes)
      .start_nginx(...)               real nginx in prod on PROD:80 ([v6]:80 too; ns=, addrs=)
      .start_recorder(...)            byte-recording TCP server in prod on REC:80 (ns=, addrs=)
      .tcpdump(ns, iface, filter)     capture; .stop() returns parsed TCP segments
      .enable_dnat()                  PUBLIC -> PROD, REC_PUBLIC -> REC on fw
      .run_acmegw(acmegw, *args, protect=, wrap=)  `acmegw run --protect ... args` in fw
                                      (behind `wrap`, e.g. setpriv), waits until it logged
                                      "rules: installed" and bound its queue
      .nfqueue_packets()              packets that NFQUEUE rules in fw sent to userspace (v4+v6)
      .nfqueue_proc()                 /proc/net/netfilter/nfnetlink_queue rows of fw
      .wrk(url, ...)                  run wrk in client, return parsed numbers
      .log_of(proc) / .wait_for(cond, timeout, what) / .dir (logs, captures)
    Recorder.conversation((addr, port))  what production received from / sent to that client
    parse_pcap(bytes), parse_wrk(text), recorder_response(bytes), socket_in(ns, family)
    CLIENT, FW_C, FW_P, PROD, REC, PUBLIC, REC_PUBLIC, VAL   Addr(v4, v6); Addr[4] / Addr[6]
    url(addr, path, port=80)          http URL with [v6] brackets
"""

from __future__ import annotations

import argparse
import atexit
import ctypes
import fcntl
import hashlib
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import termios
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable, NamedTuple, Optional, Sequence


class Addr(NamedTuple):
    """One lab endpoint's IPv4 and IPv6 address; addr[4] / addr[6] pick by family number."""

    v4: str
    v6: str

    def __getitem__(self, family):  # type: ignore[override]
        if family == 4:
            return self.v4
        if family == 6:
            return self.v6
        return tuple.__getitem__(self, family)


CLIENT = Addr("198.51.100.2", "2001:db8:1::2")
FW_C = Addr("198.51.100.1", "2001:db8:1::1")      # fw on the client link
FW_P = Addr("192.0.2.1", "2001:db8:2::1")          # fw on the prod link
PROD = Addr("192.0.2.10", "2001:db8:2::10")        # nginx
REC = Addr("192.0.2.11", "2001:db8:2::11")         # byte recorder
FW_V = Addr("192.0.2.129", "2001:db8:3::1")        # fw on the val link
VAL = Addr("192.0.2.130", "2001:db8:3::2")
PUBLIC = Addr("203.0.113.80", "2001:db8:80::80")   # DNAT -> PROD
REC_PUBLIC = Addr("203.0.113.81", "2001:db8:80::81")  # DNAT -> REC

SKIP = 77


def url(addr: str, path: str = "/", port: int = 80) -> str:
    """http URL for addr (IPv6 literals get brackets)."""
    host = f"[{addr}]" if ":" in addr else addr
    return f"http://{host}:{port}{path}"


def family_of(addr: str) -> int:
    """4 or 6 for an address literal."""
    return 6 if ":" in addr else 4


def require(*tools: str) -> None:
    """Exit 77 (skip) unless running as root with every tool (plus ip) on PATH."""
    if os.geteuid() != 0:
        print("SKIP: needs root (network namespaces, NFQUEUE)")
        sys.exit(SKIP)
    missing = [t for t in ("ip", *tools) if shutil.which(t) is None]
    if missing:
        print(f"SKIP: missing tools: {' '.join(missing)}")
        sys.exit(SKIP)


def parse_args(description: str, extra: Optional[Callable[[argparse.ArgumentParser], None]] = None
               ) -> argparse.Namespace:
    """Common e2e command line: --acmegw PATH (exit 77 if not executable), --keep (leave the
    lab); `extra(parser)` may add a test's own options."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--acmegw", required=True, help="path to the acmegw executable")
    p.add_argument("--keep", action="store_true",
                   help="leave namespaces and processes for debugging (prints how to remove)")
    if extra:
        extra(p)
    args = p.parse_args()
    if not os.access(args.acmegw, os.X_OK):
        print(f"SKIP: acmegw not executable: {args.acmegw}")
        sys.exit(SKIP)
    args.acmegw = os.path.abspath(args.acmegw)
    return args


class Checks:
    """Collects results; prints `PASS name` / `FAIL name: why` as they happen."""

    def __init__(self) -> None:
        self.failed: list[str] = []
        self.passed = 0

    def check(self, name: str, ok: bool, why: str = "") -> bool:
        """Record one check; `why` is printed only on failure. Returns ok."""
        if ok:
            self.passed += 1
            print(f"PASS {name}", flush=True)
        else:
            self.failed.append(name)
            print(f"FAIL {name}: {why or 'condition false'}", flush=True)
        return ok

    def run(self, name: str, fn: Callable[[], Optional[str]]) -> bool:
        """Run fn(); it returns None on success or a reason string; an exception is a failure."""
        try:
            why = fn()
        except Exception as e:  # a broken check must not stop the others
            why = f"{type(e).__name__}: {e}"
        return self.check(name, why is None, why or "")

    def exit(self) -> None:
        """Exit 0 if every check passed, 1 otherwise (prints a summary line)."""
        print(f"{self.passed} passed, {len(self.failed)} failed", flush=True)
        sys.exit(1 if self.failed else 0)


# ---------------------------------------------------------------------------------------------
# Sockets inside a namespace without forking: setns(2) switches only the calling thread, and a
# socket keeps the namespace it was created in.

_libc = ctypes.CDLL(None, use_errno=True)
_CLONE_NEWNET = 0x40000000
_setns_lock = threading.Lock()


def _setns(fd: int) -> None:
    if _libc.setns(fd, _CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns: {os.strerror(err)}")


def socket_in(ns: str, family: int = 4, kind: int = socket.SOCK_STREAM) -> socket.socket:
    """A new socket living in network namespace `ns` (family 4 or 6)."""
    af = socket.AF_INET6 if family == 6 else socket.AF_INET
    with _setns_lock:
        home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        target = os.open(f"/run/netns/{ns}", os.O_RDONLY)
        try:
            _setns(target)
            try:
                return socket.socket(af, kind)
            finally:
                _setns(home)
        finally:
            os.close(target)
            os.close(home)


def _unacked(s: socket.socket) -> int:
    """Bytes in s's send queue not yet acknowledged by the peer (SIOCOUTQ)."""
    return struct.unpack("i", fcntl.ioctl(s.fileno(), termios.TIOCOUTQ, b"\0" * 4))[0]


# ---------------------------------------------------------------------------------------------
# pcap (classic format, as tcpdump -w writes it) -> TCP segments


@dataclass
class Segment:
    """One captured TCP segment (addresses as strings; payload truncated to the snap length)."""

    ts: float
    src: str
    sport: int
    dst: str
    dport: int
    seq: int
    flags: int          # TCP flag bits: FIN 1, SYN 2, RST 4, PSH 8, ACK 16
    length: int         # payload length from the IP header (not the captured part)
    payload: bytes


def parse_pcap(data: bytes) -> list[Segment]:
    """TCP segments of an Ethernet pcap (IPv4 and IPv6 without extension headers)."""
    if len(data) < 24:
        return []
    magic = data[:4]
    endian = {b"\xd4\xc3\xb2\xa1": "<", b"\x4d\x3c\xb2\xa1": "<",
              b"\xa1\xb2\xc3\xd4": ">", b"\xa1\xb2\x3c\x4d": ">"}.get(magic)
    if endian is None:
        raise ValueError("not a pcap file")
    nano = magic in (b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d")
    linktype = struct.unpack(endian + "I", data[20:24])[0]
    if linktype != 1:
        raise ValueError(f"pcap link type {linktype}: capture on one Ethernet (veth) interface")
    out: list[Segment] = []
    off = 24
    while off + 16 <= len(data):
        sec, frac, incl, _orig = struct.unpack(endian + "IIII", data[off:off + 16])
        pkt = data[off + 16:off + 16 + incl]
        off += 16 + incl
        ts = sec + frac / (1e9 if nano else 1e6)
        if len(pkt) < 14:
            continue
        ethertype = struct.unpack("!H", pkt[12:14])[0]
        ip = pkt[14:]
        if ethertype == 0x0800 and len(ip) >= 20 and ip[9] == 6:
            ihl = (ip[0] & 0x0F) * 4
            total = struct.unpack("!H", ip[2:4])[0]
            src = socket.inet_ntop(socket.AF_INET, ip[12:16])
            dst = socket.inet_ntop(socket.AF_INET, ip[16:20])
            tcp, l4len = ip[ihl:], total - ihl
        elif ethertype == 0x86DD and len(ip) >= 40 and ip[6] == 6:
            src = socket.inet_ntop(socket.AF_INET6, ip[8:24])
            dst = socket.inet_ntop(socket.AF_INET6, ip[24:40])
            tcp, l4len = ip[40:], struct.unpack("!H", ip[4:6])[0]
        else:
            continue
        if len(tcp) < 20:
            continue
        sport, dport, seq = struct.unpack("!HHI", tcp[:8])
        doff = (tcp[12] >> 4) * 4
        out.append(Segment(ts, src, sport, dst, dport, seq, tcp[13], l4len - doff,
                           bytes(tcp[doff:])))
    return out


class Capture:
    """A running tcpdump; stop() ends it and returns the captured TCP segments."""

    def __init__(self, lab: "Lab", ns: str, iface: str, bpf: str, snaplen: int) -> None:
        self.path = os.path.join(lab.dir, f"cap-{ns}-{iface}-{len(lab.procs)}.pcap")
        self._lab = lab
        # --immediate-mode: with TPACKET_V3 blocks, -U alone can leave packets unwritten at stop.
        self._proc = lab.spawn(ns, "tcpdump", "-i", iface, "-n", "-s", str(snaplen), "-U",
                               "--immediate-mode", "-w", self.path, *bpf.split(),
                               name=os.path.basename(self.path))
        lab.wait_for(lambda: "listening on" in lab.log_of(self._proc), 5, "tcpdump start")

    def stop(self) -> list[Segment]:
        """Stop tcpdump (SIGINT flushes) and parse what it wrote."""
        time.sleep(0.2)  # let the last packets reach the capture buffer
        self._lab.stop(self._proc, signal.SIGINT)
        with open(self.path, "rb") as f:
            return parse_pcap(f.read())


# ---------------------------------------------------------------------------------------------
# Byte-recording server (production stand-in that proves what production received and sent)


def recorder_response(received: bytes) -> bytes:
    """What the recorder answers to `received`: an HTTP 200 whose 64 KiB body is derived from
    SHA-256 of the request, so every response differs and a client can recompute it."""
    seed = hashlib.sha256(received).digest()
    body = b"".join(hashlib.sha256(seed + i.to_bytes(4, "big")).digest() for i in range(2048))
    return (b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
            b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(body)) + body


@dataclass
class Conversation:
    """One connection as the recorder saw it."""

    peer: tuple              # (address, port) of the client as production sees it
    received: bytes = b""
    sent: bytes = b""
    done: threading.Event = field(default_factory=threading.Event)


class Recorder:
    """TCP server (in prod by default): on each connection sends `greeting` (if set), records
    every byte until the client half-closes, then sends recorder_response(received), closes."""

    conversation_type = None  # set below: Conversation; TlsRecorder records TlsConversations

    def __init__(self, addrs: Iterable[str], port: int, ns: str) -> None:
        self.greeting = b""
        self.conversations: dict[tuple, Conversation] = {}
        self._lock = threading.Lock()
        self._listeners = []
        for a in addrs:
            s = socket_in(ns, family_of(a))
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((a, port))
            s.listen(512)
            self._listeners.append(s)
            threading.Thread(target=self._accept, args=(s,), daemon=True).start()

    def _accept(self, ls: socket.socket) -> None:
        while True:
            try:
                c, peer = ls.accept()
            except OSError:
                return  # closed
            conv = (self.conversation_type or Conversation)(peer=peer[:2])
            with self._lock:
                self.conversations[peer[:2]] = conv
            threading.Thread(target=self._serve, args=(c, conv), daemon=True).start()

    def _serve(self, c: socket.socket, conv: Conversation) -> None:
        try:
            c.settimeout(30)
            if self.greeting:
                c.sendall(self.greeting)
                conv.sent = self.greeting
            chunks = []
            while True:
                b = c.recv(65536)
                if not b:
                    break
                chunks.append(b)
            conv.received = b"".join(chunks)
            reply = recorder_response(conv.received)
            c.sendall(reply)
            conv.sent += reply
        except OSError:
            pass
        finally:
            c.close()
            conv.done.set()

    def conversation(self, peer: tuple, timeout: float = 10) -> Conversation:
        """The finished conversation with client (address, port); raises TimeoutError."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                conv = self.conversations.get(peer)
            if conv is not None and conv.done.wait(max(0.0, deadline - time.monotonic())):
                return conv
            time.sleep(0.01)
        raise TimeoutError(f"recorder never finished a connection from {peer}")

    def saw(self, peer: tuple) -> bool:
        """Whether client (address, port) ever connected."""
        with self._lock:
            return peer in self.conversations

    def close(self) -> None:
        """Stop accepting (connections in progress finish on their own)."""
        for s in self._listeners:
            try:
                s.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept(); close() alone won't
            except OSError:
                pass
            s.close()


# ---------------------------------------------------------------------------------------------
# nginx as production


class Nginx:
    """Real nginx in prod. Pages: / (small), /100k (100 KiB), /upload (POST, answers "ok")."""

    def __init__(self, proc: subprocess.Popen, root: str) -> None:
        self.proc = proc
        self.root = root
        self.access_log = os.path.join(root, "access.log")

    def log_lines(self) -> list[dict]:
        """Access log entries: dicts with addr, port, request, status, bytes."""
        out = []
        try:
            with open(self.access_log) as f:
                for line in f:
                    m = re.match(r'(\S+) (\d+) "([^"]*)" (\d+) (\d+)', line)
                    if m:
                        out.append({"addr": m[1], "port": int(m[2]), "request": m[3],
                                    "status": int(m[4]), "bytes": int(m[5])})
        except FileNotFoundError:
            pass
        return out


_NGINX_CONF = """\
worker_processes {workers};
daemon off;
master_process on;
user root;
pid {root}/nginx.pid;
error_log {root}/error.log warn;
events {{ worker_connections 8192; }}
http {{
  log_format lab '{log_addr} "$request" $status $body_bytes_sent';
  access_log {access_log};
  client_body_temp_path {root}/tmp-body;
  proxy_temp_path {root}/tmp-proxy;
  fastcgi_temp_path {root}/tmp-fastcgi;
  uwsgi_temp_path {root}/tmp-uwsgi;
  scgi_temp_path {root}/tmp-scgi;
  default_type text/html;
  keepalive_requests 10000000;
  keepalive_timeout 60s;
  server {{
    {listen}
    root {root}/www;
    location = /upload {{ client_max_body_size 4m; return 200 "ok\\n"; }}
  }}
}}
"""

SMALL_PAGE = b"<html><body>" + b"production " * 50 + b"</body></html>\n"
BIG_PAGE_SIZE = 100 * 1024


# ---------------------------------------------------------------------------------------------
# The lab


@dataclass
class Namespaces:
    client: str
    fw: str
    prod: str
    val: Optional[str]


_labs: list["Lab"] = []


def _destroy_ns(ns: str) -> None:
    """SIGKILL every process still inside ns (all started by a lab), then delete ns."""
    pids = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True).stdout
    for pid in pids.split():
        try:
            os.kill(int(pid), signal.SIGKILL)
        except (ProcessLookupError, ValueError):
            pass
    subprocess.run(["ip", "netns", "del", ns], capture_output=True)


def _cleanup_all() -> None:
    for lab in list(_labs):
        lab.close()


def _on_signal(signum, _frame) -> None:
    raise SystemExit(128 + signum)  # unwinds through `with Lab(...)`, so close() runs


# Importing the lab makes SIGTERM/SIGHUP end the test through normal unwinding (and atexit), so
# an interrupted run (ctest timeout, Ctrl-C) still removes its namespaces.
atexit.register(_cleanup_all)
for _sig in (signal.SIGTERM, signal.SIGHUP):
    signal.signal(_sig, _on_signal)  # SIGINT already raises KeyboardInterrupt


class Lab:
    """client/fw/prod(/val) namespaces with routing, forwarding and strict rp_filter in fw.
    Names are PREFIX + pid + '-' + sequence + role (c, f, p, v), unique per process;
    leftovers of dead processes with the same prefix are removed on construction."""

    _seq = 0

    def __init__(self, name: str = "lab", prefix: str = "agwF", val: bool = False,
                 keep: bool = False) -> None:
        self.keep = keep
        self.procs: list[subprocess.Popen] = []
        self._logs: dict[int, str] = {}
        self._closed = False
        self._recorders: list[Recorder] = []
        self._remove_stale(prefix)
        base = f"{prefix}{os.getpid()}-{Lab._seq}"
        Lab._seq += 1
        self.ns = Namespaces(base + "c", base + "f", base + "p", base + "v" if val else None)
        self.dir = tempfile.mkdtemp(prefix=f"{name}-{base}-")
        os.chmod(self.dir, 0o755)
        _labs.append(self)
        try:
            self._build()
        except BaseException:
            self.close()
            raise

    # --- construction -------------------------------------------------------------------

    @staticmethod
    def _remove_stale(prefix: str) -> None:
        names = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
        for n in names.split():
            m = re.fullmatch(re.escape(prefix) + r"(\d+)-\d+[cfpv]", n)
            if m and not os.path.exists(f"/proc/{m[1]}"):
                _destroy_ns(n)

    def _ip(self, *args: str) -> None:
        subprocess.run(["ip", *args], check=True, capture_output=True, text=True)

    def _link(self, ns_a: str, if_a: str, ns_b: str, if_b: str) -> None:
        self._ip("-n", ns_a, "link", "add", if_a, "type", "veth", "peer", "name", if_b,
                 "netns", ns_b)
        self._ip("-n", ns_a, "link", "set", if_a, "up")
        self._ip("-n", ns_b, "link", "set", if_b, "up")

    def _addr(self, ns: str, iface: str, a: Addr, plen4: int, plen6: int = 64) -> None:
        self._ip("-n", ns, "addr", "add", f"{a.v4}/{plen4}", "dev", iface)
        self._ip("-n", ns, "-6", "addr", "add", f"{a.v6}/{plen6}", "dev", iface, "nodad")

    def _sysctl(self, ns: str, **kv: str) -> None:
        for k, v in kv.items():
            self.sh(ns, "sysctl", "-qw", f"{k.replace('__', '.')}={v}")

    def _build(self) -> None:
        roles = [n for n in (self.ns.client, self.ns.fw, self.ns.prod, self.ns.val) if n]
        for n in roles:
            self._ip("netns", "add", n)
            self._ip("-n", n, "link", "set", "lo", "up")
            # DAD would leave v6 addresses tentative (unbindable) for a second.
            self._sysctl(n, net__ipv6__conf__all__accept_dad="0",
                         net__ipv6__conf__default__accept_dad="0")
        fw = self.ns.fw
        # Strict reverse-path filtering in fw, as on a real firewall (DESIGN pitfall 7).
        self._sysctl(fw, net__ipv4__ip_forward="1", net__ipv6__conf__all__forwarding="1",
                     net__ipv4__conf__all__rp_filter="1", net__ipv4__conf__default__rp_filter="1")
        self._link(self.ns.client, "eth0", fw, "c0")
        self._link(self.ns.prod, "eth0", fw, "p0")
        self._addr(self.ns.client, "eth0", CLIENT, 24)
        self._addr(fw, "c0", FW_C, 24)
        self._addr(fw, "p0", FW_P, 25)
        self._addr(self.ns.prod, "eth0", PROD, 25)
        self._addr(self.ns.prod, "eth0", REC, 25)
        for n, gw in ((self.ns.client, FW_C), (self.ns.prod, FW_P)):
            self._ip("-n", n, "route", "add", "default", "via", gw.v4)
            self._ip("-n", n, "-6", "route", "add", "default", "via", gw.v6)
        if self.ns.val:
            self._link(self.ns.val, "eth0", fw, "v0")
            self._addr(fw, "v0", FW_V, 25)
            self._addr(self.ns.val, "eth0", VAL, 25)
            self._ip("-n", self.ns.val, "route", "add", "default", "via", FW_V.v4)
            self._ip("-n", self.ns.val, "-6", "route", "add", "default", "via", FW_V.v6)
        # PUBLIC addresses are routed to fw by the client's default route; fw owns none of them.

    def enable_dnat(self) -> None:
        """DNAT on fw: PUBLIC:80 -> PROD:80 and REC_PUBLIC:80 -> REC:80 (v4 and v6)."""
        for tool, fam in (("iptables", 4), ("ip6tables", 6)):
            for pub, priv in ((PUBLIC, PROD), (REC_PUBLIC, REC)):
                to = f"[{priv[fam]}]:80" if fam == 6 else f"{priv[fam]}:80"
                self.sh(self.ns.fw, tool, "-w", "-t", "nat", "-A", "PREROUTING", "-d", pub[fam],
                        "-p", "tcp", "--dport", "80", "-j", "DNAT", "--to-destination", to)

    # --- processes ----------------------------------------------------------------------

    def sh(self, ns: str, *argv: str, check: bool = True, timeout: float = 60,
           input: Optional[bytes] = None) -> str:
        """Run argv in ns, wait, return stdout; raises RuntimeError with stderr on failure."""
        r = subprocess.run(["ip", "netns", "exec", ns, *argv], capture_output=True,
                           timeout=timeout, input=input)
        if check and r.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} in {ns} exited {r.returncode}: "
                               f"{r.stderr.decode(errors='replace').strip()}")
        return r.stdout.decode(errors="replace")

    def spawn(self, ns: str, *argv: str, name: Optional[str] = None) -> subprocess.Popen:
        """Start argv in ns (stdout+stderr to .dir/NAME.log, NAME-2.log if taken, ...); stopped by
        close() if still alive. `ip netns exec` execs in place, so proc.pid is the program's PID."""
        base = os.path.join(self.dir, name or os.path.basename(argv[0]))
        log_path, n = base + ".log", 1
        while os.path.exists(log_path):
            n += 1
            log_path = f"{base}-{n}.log"
        with open(log_path, "ab") as log:
            p = subprocess.Popen(["ip", "netns", "exec", ns, *argv], stdout=log,
                                 stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                 start_new_session=True)
        self.procs.append(p)
        self._logs[p.pid] = log_path
        return p

    def log_of(self, proc: subprocess.Popen) -> str:
        """Everything proc has written so far."""
        with open(self._logs[proc.pid], errors="replace") as f:
            return f.read()

    def stop(self, proc: subprocess.Popen, sig: int = signal.SIGTERM, timeout: float = 10) -> int:
        """Send sig to proc (by PID), wait up to timeout, then SIGKILL; returns the exit status
        (negative signal number if killed by a signal, as subprocess reports it)."""
        if proc.poll() is None:
            proc.send_signal(sig)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        return proc.returncode

    @staticmethod
    def wait_for(cond: Callable[[], bool], timeout: float, what: str) -> None:
        """Poll cond every 20 ms until true; raises TimeoutError naming `what`."""
        deadline = time.monotonic() + timeout
        while not cond():
            if time.monotonic() > deadline:
                raise TimeoutError(f"timed out waiting for {what}")
            time.sleep(0.02)

    # --- production -----------------------------------------------------------------------

    def start_nginx(self, workers: int = 1, access_log: bool = True,
                    addrs: Sequence[str] = (PROD.v4, PROD.v6), ns: Optional[str] = None,
                    proxy_protocol: bool = False) -> Nginx:
        """nginx in ns (default prod) listening on addrs:80; waits until it accepts connections.
        Each call gets its own directory, so prod and val can both run one. `proxy_protocol`:
        the listeners expect a PROXY header and the log's addr/port are the header's."""
        ns = ns or self.ns.prod
        root = os.path.join(self.dir, f"nginx-{ns}-{len(self.procs)}")
        os.makedirs(os.path.join(root, "www"), exist_ok=True)
        with open(os.path.join(root, "www", "index.html"), "wb") as f:
            f.write(SMALL_PAGE)
        with open(os.path.join(root, "www", "100k"), "wb") as f:
            f.write(bytes(i % 251 for i in range(BIG_PAGE_SIZE)))
        pp = " proxy_protocol" if proxy_protocol else ""
        listen = " ".join(f"listen {'[%s]' % a if ':' in a else a}:80 backlog=4096{pp};"
                          for a in addrs)
        conf = os.path.join(root, "nginx.conf")
        with open(conf, "w") as f:
            f.write(_NGINX_CONF.format(
                workers=workers, root=root, listen=listen,
                log_addr=("$proxy_protocol_addr $proxy_protocol_port" if proxy_protocol
                          else "$remote_addr $remote_port"),
                access_log=f"{root}/access.log lab" if access_log else "off"))
        proc = self.spawn(ns, "nginx", "-c", conf, "-p", root, name=os.path.basename(root))
        for a in addrs:
            self.wait_for(lambda a=a: self.can_connect(ns, a, 80), 10, f"nginx on {a}")
        return Nginx(proc, root)

    def can_connect(self, ns: str, addr: str, port: int) -> bool:
        """True when addr:port in ns accepts a TCP connection within 1 s."""
        s = socket_in(ns, family_of(addr))
        s.settimeout(1)
        try:
            s.connect((addr, port))
            return True
        except OSError:
            return False
        finally:
            s.close()

    def start_recorder(self, addrs: Sequence[str] = (REC.v4, REC.v6), port: int = 80,
                       ns: Optional[str] = None) -> Recorder:
        """Byte-recording server in ns (default prod): threads of this process, sockets in ns."""
        r = Recorder(addrs, port, ns or self.ns.prod)
        self._recorders.append(r)
        return r

    # --- client ---------------------------------------------------------------------------

    def socket(self, ns: str, family: int = 4) -> socket.socket:
        """A TCP socket in ns (family 4 or 6)."""
        return socket_in(ns, family)

    def exchange(self, ns: str, addr: str, chunks: Sequence[bytes], port: int = 80,
                 nodelay: bool = False, delay: float = 0.0, read_first: int = 0,
                 settle: bool = True, ack_each: bool = False,
                 timeout: float = 15) -> tuple[tuple, bytes]:
        """Connect from ns to addr:port, optionally read `read_first` bytes (a server greeting),
        send each chunk with one send() (sleeping `delay` between them; nodelay sets
        TCP_NODELAY so each chunk leaves as its own segment), half-close, read to EOF.
        settle: half-close only once production has acknowledged every byte, as an HTTP client
        that waits for its response would. Without it the FIN (no payload, never queued) can
        overtake a first segment held in the queue; production then SACKs the FIN and the
        client retransmits the held segment at once, so a second copy reaches the queue.
        ack_each: also wait for production's ACK after every chunk (so a later chunk can only
        leave after the flow was decided).
        Returns (our (address, port) as production should see it, every byte received)."""
        s = socket_in(ns, family_of(addr))
        s.settimeout(timeout)
        try:
            if nodelay:
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            s.connect((addr, port))
            local = s.getsockname()[:2]
            got = []
            have = 0
            while have < read_first:
                b = s.recv(read_first - have)
                if not b:
                    break
                got.append(b)
                have += len(b)
            for i, c in enumerate(chunks):
                if i and delay:
                    time.sleep(delay)
                s.sendall(c)
                if ack_each:
                    self.wait_for(lambda: _unacked(s) == 0, timeout, "production's ACK")
            if settle:
                self.wait_for(lambda: _unacked(s) == 0, timeout, "production to ACK the request")
            s.shutdown(socket.SHUT_WR)
            while True:
                b = s.recv(65536)
                if not b:
                    break
                got.append(b)
            return local, b"".join(got)
        finally:
            s.close()

    def tcpdump(self, ns: str, iface: str, bpf: str = "tcp", snaplen: int = 2048) -> Capture:
        """Start tcpdump in ns on iface with a BPF filter; returns once it is capturing."""
        return Capture(self, ns, iface, bpf, snaplen)

    def wrk(self, target: str, duration: float = 5, connections: int = 16, threads: int = 1,
            headers: Sequence[str] = (), timeout: str = "5s") -> dict:
        """Run wrk in client against target; returns parse_wrk() of its output."""
        argv = ["wrk", "-t", str(threads), "-c", str(connections),
                "-d", f"{max(1, round(duration))}s", "--latency", "--timeout", timeout]
        for h in headers:
            argv += ["-H", h]
        out = self.sh(self.ns.client, *argv, target, timeout=duration + 60)
        return parse_wrk(out)

    # --- acmegw ---------------------------------------------------------------------------

    def run_acmegw(self, acmegw: str, *args: str, protect: Sequence[str] = (), name: str = "acmegw",
                   wait: float = 10, wrap: Sequence[str] = ()) -> subprocess.Popen:
        """Start `acmegw run --protect P ... args` in fw and wait until it has bound its queue and
        logged "rules: installed" (rules left by a killed instance must not count); raises with
        the log if it exits first or is not ready within `wait` seconds. `wrap` is a command that
        execs acmegw (e.g. setpriv ...: the PID stays acmegw's)."""
        argv = [*wrap, acmegw, "run"]
        for p in protect:
            argv += ["--protect", p]
        proc = self.spawn(self.ns.fw, *argv, *args, name=name)

        def ready() -> bool:
            if proc.poll() is not None:
                raise RuntimeError(f"acmegw exited {proc.returncode}: {self.log_of(proc)[-2000:]}")
            return "rules: installed" in self.log_of(proc) and bool(self.nfqueue_proc())
        try:
            self.wait_for(ready, wait, "acmegw to install its rules and bind its queue")
        except TimeoutError as e:
            raise TimeoutError(f"{e}; acmegw log: {self.log_of(proc)[-2000:]}") from None
        return proc

    def nfqueue_packets(self) -> int:
        """Packets that fw's NFQUEUE rules (iptables + ip6tables, all tables) have matched."""
        total = 0
        for tool in ("iptables", "ip6tables"):
            for table in ("mangle", "raw", "filter"):
                out = self.sh(self.ns.fw, tool, "-w", "-t", table, "-L", "-v", "-x", "-n")
                for line in out.splitlines():
                    f = line.split()
                    if len(f) > 2 and f[2] == "NFQUEUE" and f[0].isdigit():
                        total += int(f[0])
        return total

    def nfqueue_proc(self) -> list[dict]:
        """Rows of fw's /proc/net/netfilter/nfnetlink_queue (bound queues)."""
        keys = ("queue", "portid", "waiting", "copy_mode", "copy_range", "queue_dropped",
                "user_dropped", "id_seq")
        out = self.sh(self.ns.fw, "cat", "/proc/net/netfilter/nfnetlink_queue", check=False)
        return [dict(zip(keys, map(int, line.split()[:8])))
                for line in out.splitlines() if line.strip()]

    # --- teardown -------------------------------------------------------------------------

    def close(self) -> None:
        """Stop every process we started and anything else left in our namespaces, then
        delete the namespaces (which removes the veths and fw's rules). Idempotent."""
        if self._closed:
            return
        self._closed = True
        if self in _labs:
            _labs.remove(self)
        if self.keep:
            names = [n for n in (self.ns.client, self.ns.fw, self.ns.prod, self.ns.val) if n]
            print(f"lab kept: {self.dir}; remove with: for n in {' '.join(names)}; do "
                  f"ip netns pids $n | xargs -r kill; ip netns del $n; done", file=sys.stderr)
            return
        for r in self._recorders:
            r.close()
        for p in self.procs:
            self.stop(p, signal.SIGTERM, timeout=5)
        for n in (self.ns.client, self.ns.fw, self.ns.prod, self.ns.val):
            if n:
                _destroy_ns(n)
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> "Lab":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# ---------------------------------------------------------------------------------------------
# wrk output


def _duration_us(s: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", s)
    if not m:
        raise ValueError(f"wrk duration {s!r}")
    return float(m[1]) * {"us": 1, "ms": 1e3, "s": 1e6, "m": 60e6}[m[2]]


def _size_bytes(s: str) -> float:
    m = re.fullmatch(r"([\d.]+)([KMGT]?B)", s)
    if not m:
        raise ValueError(f"wrk size {s!r}")
    return float(m[1]) * {"B": 1, "KB": 1 << 10, "MB": 1 << 20, "GB": 1 << 30, "TB": 1 << 40}[m[2]]


def start_production_load(lab: "Lab", keepalive_url: str, close_url: str,
                          connections: int = 8) -> dict:
    """Two niced wrk loads for a whole test (keep-alive against keepalive_url, `Connection:
    close` against close_url), until finish_production_load(): {label: process}."""
    loads = {}
    for label, target, headers in (("keep-alive", keepalive_url, []),
                                   ("Connection: close", close_url, ["-H", "Connection: close"])):
        loads[label] = lab.spawn(lab.ns.client, "nice", "-n", "19", "wrk", "-t", "1", "-c",
                                 str(connections), "-d", "30m", "--timeout", "5s", *headers,
                                 target, name="wrk")
    return loads


def finish_production_load(lab: "Lab", checks: "Checks", loads: dict, what: str) -> None:
    """Stops the loads (wrk prints its totals on SIGINT) and checks each served every request:
    more than 0 requests, 0 socket errors, 0 non-2xx."""
    for label, proc in loads.items():
        lab.stop(proc, signal.SIGINT)
        r = parse_wrk(lab.log_of(proc))
        checks.check(f"{what} under wrk ({label}): {r['requests']} requests, 0 socket errors, "
                     f"0 non-2xx",
                     r["requests"] > 0 and r["errors"] == 0 and r["non2xx"] == 0,
                     f"errors {r['errors']} non-2xx {r['non2xx']}: {r['raw'][-600:]}")


def parse_wrk(out: str) -> dict:
    """wrk --latency output -> {requests, rps, bytes_per_s, p50_us, p99_us, errors, non2xx}.
    errors sums connect/read/write/timeout socket errors (0 when wrk printed none)."""
    r: dict = {"errors": 0, "non2xx": 0, "raw": out}
    m = re.search(r"(\d+) requests in", out)
    r["requests"] = int(m[1]) if m else 0
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    r["rps"] = float(m[1]) if m else 0.0
    m = re.search(r"Transfer/sec:\s+(\S+)", out)
    r["bytes_per_s"] = _size_bytes(m[1]) if m else 0.0
    for pct in ("50", "99"):
        m = re.search(rf"^\s+{pct}%\s+(\S+)", out, re.M)
        r[f"p{pct}_us"] = _duration_us(m[1]) if m else float("nan")
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if m:
        r["errors"] = sum(int(x) for x in m.groups())
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if m:
        r["non2xx"] = int(m[1])
    return r
