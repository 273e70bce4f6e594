"""TLS helpers for the port-443 e2e tests (issue 15), next to lab.py. Python 3 stdlib + openssl
(+ python3-cryptography for decoding the acme-tls/1 certificate).

    make_cert(dir, name, sans)        self-signed P-256 certificate + key with openssl
    fingerprint(der)                  SHA-256 hex of a DER certificate
    start_nginx_tls(lab, cert, key)   real nginx in prod serving TLS on PROD:443 (v4 + v6)
    TlsRecorder(lab, addrs, cert, key)   production stand-in on REC:443: records every raw byte
                                      it received per connection, then terminates TLS with its
                                      own certificate (ALPN: acme-tls/1 or http/1.1 accepted)
    hello(sni, alpn)                  the ClientHello record(s) python's OpenSSL would send
    reframe(records, n)               the same handshake bytes re-framed into n TLS records
    tls_handshake(ns, addr, ...)      a TLS client over a real socket through ssl.MemoryBIO: the
                                      hello can be re-framed (records=N), sent in several TCP
                                      segments (split=[sizes], mss=), mangled (mangle=fn) or
                                      left unfinished (stall=True); returns a TlsResult with the
                                      exact bytes sent, the negotiated ALPN and the peer's
                                      certificate (record framing is not part of the transcript
                                      hash, so a re-framed hello still completes)
    acme_cert_info(der)               (SANs, acmeIdentifier critical?, its OCTET STRING value)
"""

from __future__ import annotations

import hashlib
import os
import socket
import ssl
import subprocess
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Optional, Sequence

from lab import PROD, REC, Lab, Recorder, family_of, socket_in

ACME_TLS = "acme-tls/1"
ACME_OID = "1.3.6.1.5.5.7.1.31"
SSL_OP_TLSEXT_PADDING = 0x10  # OpenSSL: pad the ClientHello (RFC 7685) to >= 512 bytes


def make_cert(directory: str, name: str, sans: Sequence[str]) -> tuple[str, str]:
    """Self-signed P-256 certificate for `sans` (DNS names or IP literals); (cert, key) paths."""
    os.makedirs(directory, exist_ok=True)
    cert, key = os.path.join(directory, f"{name}.crt"), os.path.join(directory, f"{name}.key")
    san = ",".join((f"IP:{s}" if any(c in s for c in ":") or s.replace(".", "").isdigit()
                    else f"DNS:{s}") for s in sans)
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-keyout", key, "-out", cert, "-days",
                    "2", "-subj", f"/CN={name}", "-addext", f"subjectAltName={san}"],
                   check=True, capture_output=True)
    return cert, key


def pem_to_der(path: str) -> bytes:
    with open(path) as f:
        return ssl.PEM_cert_to_DER_cert(f.read())


def fingerprint(der: bytes) -> str:
    return hashlib.sha256(der).hexdigest()


_NGINX_TLS_CONF = """\
worker_processes {workers};
daemon off;
master_process on;
user root;
pid {root}/nginx.pid;
error_log {root}/error.log info;
events {{ worker_connections 8192; }}
http {{
  log_format lab '$remote_addr $remote_port "$request" $status $body_bytes_sent';
  access_log {root}/access.log lab;
  client_body_temp_path {root}/tmp-body;
  proxy_temp_path {root}/tmp-proxy;
  fastcgi_temp_path {root}/tmp-fastcgi;
  uwsgi_temp_path {root}/tmp-uwsgi;
  scgi_temp_path {root}/tmp-scgi;
  default_type text/html;
  keepalive_requests 10000000;
  keepalive_timeout 60s;
  ssl_certificate {cert};
  ssl_certificate_key {key};
  ssl_protocols TLSv1.2 TLSv1.3;
  ssl_session_cache shared:lab:10m;
  server {{
    {listen}
    root {root}/www;
  }}
}}
"""


@dataclass
class NginxTls:
    proc: subprocess.Popen
    root: str
    cert: str

    def log_lines(self) -> list[str]:
        try:
            with open(os.path.join(self.root, "access.log")) as f:
                return f.readlines()
        except FileNotFoundError:
            return []

    def error_log(self) -> str:
        try:
            with open(os.path.join(self.root, "error.log"), errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""


def start_nginx_tls(lab: Lab, cert: str, key: str, addrs: Sequence[str] = (PROD.v4, PROD.v6),
                    workers: int = 1, ns: Optional[str] = None, http: bool = True,
                    access_log: bool = True) -> NginxTls:
    """nginx in ns (default prod) serving https on addrs:443 with cert/key (and http on :80
    unless http=False: lab.start_nginx() may serve :80 then)."""
    from lab import SMALL_PAGE
    ns = ns or lab.ns.prod
    root = os.path.join(lab.dir, f"nginx-tls-{ns}-{len(lab.procs)}")
    os.makedirs(os.path.join(root, "www"), exist_ok=True)
    with open(os.path.join(root, "www", "index.html"), "wb") as f:
        f.write(SMALL_PAGE)
    listen = " ".join(f"listen {'[%s]' % a if ':' in a else a}:{p} backlog=4096{s};"
                      for a in addrs for p, s in ((443, " ssl"), (80, "")) if http or p == 443)
    conf = os.path.join(root, "nginx.conf")
    with open(conf, "w") as f:
        f.write(_NGINX_TLS_CONF.format(workers=workers, root=root, listen=listen, cert=cert,
                                       key=key).replace(f"access_log {root}/access.log lab",
                                                        "access_log " + (f"{root}/access.log lab"
                                                                         if access_log else "off")))
    proc = lab.spawn(ns, "nginx", "-c", conf, "-p", root, name=os.path.basename(root))
    for a in addrs:
        lab.wait_for(lambda a=a: lab.can_connect(ns, a, 443), 10, f"nginx tls on {a}")
    return NginxTls(proc, root, cert)


# ---------------------------------------------------------------------------------------------
# Production stand-in that records raw TLS bytes


@dataclass
class TlsConversation:
    peer: tuple
    received: bytearray = field(default_factory=bytearray)
    sni: Optional[str] = None
    alpn: Optional[str] = None
    handshake_ok: bool = False
    error: str = ""
    done: threading.Event = field(default_factory=threading.Event)


class TlsRecorder(Recorder):
    """TLS server on addrs:443 in prod: records every raw byte received on each connection
    (ClientHello included), completes the handshake with its own certificate, answers one line
    of application data, closes. Conversations are keyed by the client's (address, port)."""

    conversation_type = TlsConversation

    def __init__(self, lab: Lab, addrs: Sequence[str], cert: str, key: str, port: int = 443,
                 ns: Optional[str] = None) -> None:
        self.cert = cert
        self._ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self._ctx.load_cert_chain(cert, key)
        self._ctx.set_alpn_protocols([ACME_TLS, "http/1.1"])
        self._ctx.sni_callback = self._sni
        self._by_obj: dict[int, TlsConversation] = {}
        super().__init__(addrs, port, ns or lab.ns.prod)
        lab._recorders.append(self)  # closed with the lab

    def _sni(self, sslobj, name, _ctx):
        conv = self._by_obj.get(id(sslobj))
        if conv is not None:
            conv.sni = name

    def _serve(self, c: socket.socket, conv: TlsConversation) -> None:
        inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
        obj = self._ctx.wrap_bio(inc, out, server_side=True)
        self._by_obj[id(obj)] = conv  # for the SNI callback
        try:
            c.settimeout(30)
            done = False
            while True:
                if not done:
                    try:
                        obj.do_handshake()
                        done = conv.handshake_ok = True
                        conv.alpn = obj.selected_alpn_protocol()
                        obj.write(b"production\n")
                    except ssl.SSLWantReadError:
                        pass
                else:
                    try:
                        obj.read(65536)
                    except (ssl.SSLWantReadError, ssl.SSLZeroReturnError):
                        pass
                pending = out.read()
                if pending:
                    c.sendall(pending)
                b = c.recv(65536)
                if not b:
                    break
                conv.received += b
                inc.write(b)
        except (OSError, ssl.SSLError) as e:
            conv.error = f"{type(e).__name__}: {e}"
            try:
                pending = out.read()
                if pending:
                    c.sendall(pending)  # the alert
                while True:  # keep recording what the client still sends, until its FIN
                    b = c.recv(65536)
                    if not b:
                        break
                    conv.received += b
            except OSError:
                pass
        finally:
            c.close()
            conv.done.set()

    def conversation(self, peer: tuple, timeout: float = 20) -> TlsConversation:
        return super().conversation(peer, timeout)


# ---------------------------------------------------------------------------------------------
# ClientHello crafting


def client_context(alpn: Optional[Sequence[str]], pad: bool = False,
                   tls_max: Optional[ssl.TLSVersion] = None) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if alpn:
        ctx.set_alpn_protocols(list(alpn))
    if pad:
        ctx.options |= SSL_OP_TLSEXT_PADDING
    if tls_max:
        ctx.maximum_version = tls_max
    return ctx


def split_records(data: bytes) -> list[tuple[int, bytes, bytes]]:
    """TLS records of data as (type, version bytes, fragment)."""
    out, off = [], 0
    while off + 5 <= len(data):
        n = int.from_bytes(data[off + 3:off + 5], "big")
        out.append((data[off], data[off + 1:off + 3], data[off + 5:off + 5 + n]))
        off += 5 + n
    return out


def reframe(records: bytes, n: int) -> bytes:
    """The handshake bytes of `records` re-framed into n records of (nearly) equal size."""
    recs = split_records(records)
    body = b"".join(r[2] for r in recs)
    version = recs[0][1]
    n = max(1, min(n, len(body)))
    size, extra = divmod(len(body), n)
    out, off = [], 0
    for i in range(n):
        k = size + (1 if i < extra else 0)
        frag = body[off:off + k]
        off += k
        out.append(bytes([22]) + version + len(frag).to_bytes(2, "big") + frag)
    return b"".join(out)


def hello(sni: Optional[str], alpn: Optional[Sequence[str]], pad: bool = False) -> bytes:
    """The ClientHello record(s) a fresh client would send (for byte-level bad-input tests)."""
    out = ssl.MemoryBIO()
    obj = client_context(alpn, pad).wrap_bio(ssl.MemoryBIO(), out, server_hostname=sni)
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return out.read()


@dataclass
class TlsResult:
    local: tuple = ()                # our (address, port)
    sent: bytes = b""                # every byte we sent before the handshake finished
    hello: bytes = b""               # the ClientHello bytes as sent (after re-framing)
    ok: bool = False                 # handshake completed
    alpn: Optional[str] = None
    cert: bytes = b""                # peer certificate (DER)
    version: str = ""
    error: str = ""
    eof_after: bool = False          # the server closed after the handshake
    elapsed: float = 0.0


def tls_handshake(ns: str, addr: str, sni: Optional[str], alpn: Optional[Sequence[str]],
                  port: int = 443, records: int = 1, split: Sequence[int] = (),
                  mss: int = 0, pad: bool = False, mangle: Optional[Callable[[bytes], bytes]] = None,
                  stall: bool = False, timeout: float = 15, segment_gap: float = 0.05,
                  tls_max: Optional[ssl.TLSVersion] = None, read_app: bool = False) -> TlsResult:
    """One TLS handshake from ns to addr:port through MemoryBIO (see the module docstring).
    split: byte counts of the first segments of the hello (TCP_NODELAY, gap between them).
    mangle: replaces the hello bytes sent (the handshake then cannot finish; result.error).
    stall: send the hello, then never answer (returns once the server closes or timeout).
    read_app: after the handshake read application data until EOF (production's greeting);
    without it the client closes right after the handshake, as a CA does."""
    r = TlsResult()
    t0 = time.monotonic()
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = client_context(alpn, pad, tls_max).wrap_bio(inc, out, server_hostname=sni)
    s = socket_in(ns, family_of(addr))
    s.settimeout(timeout)
    if mss:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG, mss)
    if split:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        s.connect((addr, port))
        r.local = s.getsockname()[:2]
        try:
            obj.do_handshake()
        except ssl.SSLWantReadError:
            pass
        h = out.read()
        if records > 1:
            h = reframe(h, records)
        if mangle:
            h = mangle(h)
        r.hello = h
        off = 0
        for n in split:
            s.sendall(h[off:off + n])
            off += n
            time.sleep(segment_gap)
        s.sendall(h[off:])
        r.sent = h
        if stall:
            try:
                while s.recv(65536):
                    pass
                r.eof_after = True
            except OSError as e:
                r.error = f"{type(e).__name__}: {e}"
            return r
        while True:
            try:
                obj.do_handshake()
                r.ok = True
            except ssl.SSLWantReadError:
                pass
            pending = out.read()
            if pending:
                s.sendall(pending)
                if not r.ok:
                    r.sent += pending
            if r.ok:
                break
            b = s.recv(65536)
            if not b:
                r.error = "EOF during the handshake"
                return r
            inc.write(b)
        r.alpn = obj.selected_alpn_protocol()
        r.version = obj.version() or ""
        r.cert = obj.getpeercert(binary_form=True) or b""
        if not read_app:
            return r  # the client closes first, as a CA does (Boulder closes after its check)
        # Production's answer: application data, or the server closing.
        try:
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                try:
                    obj.read(65536)
                except ssl.SSLWantReadError:
                    pass
                except ssl.SSLZeroReturnError:
                    r.eof_after = True
                    break
                b = s.recv(65536)
                if not b:
                    r.eof_after = True
                    break
                inc.write(b)
                try:
                    if obj.read(65536):
                        break
                except (ssl.SSLWantReadError, ssl.SSLZeroReturnError):
                    pass
        except (OSError, ssl.SSLError):
            r.eof_after = True  # a reset/alert after the handshake still ends the connection
        return r
    except (OSError, ssl.SSLError) as e:
        r.error = f"{type(e).__name__}: {e}"
        return r
    finally:
        r.elapsed = time.monotonic() - t0
        s.close()


# ---------------------------------------------------------------------------------------------
# The acme-tls/1 certificate


def acme_cert_info(der: bytes) -> tuple[list[str], Optional[bool], Optional[bytes]]:
    """(SAN values, acmeIdentifier extension critical?, the digest inside its OCTET STRING)."""
    from cryptography import x509
    from cryptography.x509.oid import ExtensionOID
    cert = x509.load_der_x509_certificate(der)
    sans: list[str] = []
    try:
        ext = cert.extensions.get_extension_for_oid(ExtensionOID.SUBJECT_ALTERNATIVE_NAME)
        sans = [str(v.value) for v in ext.value]
    except x509.ExtensionNotFound:
        pass
    critical, value = None, None
    for e in cert.extensions:
        if e.oid.dotted_string == ACME_OID:
            critical = e.critical
            raw = e.value.value  # UnrecognizedExtension: the DER inside extnValue
            # RFC 8737: extnValue holds a DER OCTET STRING (04 20 <32 bytes>)
            value = raw[2:] if len(raw) == 34 and raw[:2] == b"\x04\x20" else raw
    return sans, critical, value


def keyauth_digest(keyauth: str) -> bytes:
    return hashlib.sha256(keyauth.encode()).digest()
