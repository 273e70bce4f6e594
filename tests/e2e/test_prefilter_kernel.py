#!/usr/bin/env python3
"""The generated xt_bpf programs in the real kernel: the payload probe and the prefilter, taken
from `acmegw rules print`, loaded with `iptables -m bpf --bytecode` into mangle PREROUTING of a
throwaway server namespace, and counted per connection from a client namespace (veth pair).

Per connection the client sends one payload in one segment and closes. Checked from the rule
counters: the probe counts exactly the data segments (one, never the handshake ACK or the FIN),
the prefilter counts the segment exactly when the payload cannot start a challenge request,
for IPv4 and IPv6, with and without TCP timestamps (TCP header 32 / 20 bytes) and with IPv4
options (IP header 24 bytes); u32 counters confirm each connection had the header layout claimed.

Usage: test_prefilter_kernel.py --acmegw PATH   (root; exit 0 pass, 77 skip, 1 fail)
"""
import argparse
import os
import re
import subprocess
import sys
import time

PREFIX = f"agwP{os.getpid()}"
NS_C, NS_S = PREFIX + "c", PREFIX + "s"
V4_C, V4_S = "10.201.0.1", "10.201.0.2"
V6_C, V6_S = "fd00:201::1", "fd00:201::2"

SERVER = r"""
import socket, threading
def serve(conn):
    with conn:
        conn.settimeout(5)
        try:
            while conn.recv(4096):
                pass
        except OSError:
            pass
def listen(family, addr):
    s = socket.socket(family, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((addr, 80))
    s.listen(64)
    while True:
        conn, _ = s.accept()
        threading.Thread(target=serve, args=(conn,), daemon=True).start()
threading.Thread(target=listen, args=(socket.AF_INET6, "%s"), daemon=True).start()
listen(socket.AF_INET, "%s")
""" % (V6_S, V4_S)

# Sends argv[3] (hex) in one segment, half-closes, reads to EOF. argv[4] = IPv4 options hex.
CLIENT = r"""
import socket, sys
family = socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET
s = socket.socket(family, socket.SOCK_STREAM)
if sys.argv[4]:
    s.setsockopt(socket.IPPROTO_IP, socket.IP_OPTIONS, bytes.fromhex(sys.argv[4]))
s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
s.settimeout(5)
s.connect((sys.argv[1], int(sys.argv[2])))
if sys.argv[3]:
    s.sendall(bytes.fromhex(sys.argv[3]))
s.shutdown(socket.SHUT_WR)
while s.recv(4096):
    pass
s.close()
"""

CASES = [  # (description, payload, prefilter matches)
    ("GET challenge", "GET /.well-known/acme-challenge/LoqXcYV8q5ONbJQxbmR7SCTNo3tiAXDf "
                      "HTTP/1.1\r\nHost: a.example\r\n\r\n", False),
    ("HEAD challenge", "HEAD /.well-known/acme-challenge/tok HTTP/1.0\r\n\r\n", False),
    ("absolute form", "GET HTTP://a.example/.well-known/acme-challenge/t HTTP/1.1\r\n\r\n", False),
    ("production GET", "GET /index.html HTTP/1.1\r\nHost: a.example\r\n\r\n", True),
    ("production HEAD near miss", "HEAD /.well-known/acme-challenge HTTP/1.1\r\n\r\n", True),
    ("other method", "POST /.well-known/acme-challenge/tok HTTP/1.1\r\n\r\n", True),
    ("TLS ClientHello start", "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", True),
    ("1 byte, not a method", "X", True),
    ("1 byte, a method's first", "G", False),
    ("no payload", "", False),
]
IP_OPTIONS = "01010100"  # NOP NOP NOP EOL: IHL 6


def sh(*argv, check=True, ns=None):
    if ns:
        argv = ("ip", "netns", "exec", ns) + argv
    r = subprocess.run(argv, capture_output=True, text=True)
    if check and r.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: exit {r.returncode}: {r.stderr.strip()}")
    return r


def programs(acmegw):
    """{(family, 'probe'|'prefilter'): bytecode} from `acmegw rules print`."""
    out = sh(acmegw, "rules", "print", "--protect", f"{V4_S}:80",
             "--protect", f"[{V6_S}]:80").stdout
    found = {}
    for code in set(re.findall(r'--bytecode "([^"]+)"', out)):
        # The v4 programs start with `ldh [6]` (code 40), the v6 ones with `ldb [6]` (code 48);
        # the probe is the short one.
        family = {"40": 4, "48": 6}[code.split(",")[1].split()[0]]
        kind = "probe" if int(code.split(",")[0]) < 16 else "prefilter"
        found[(family, kind)] = code
    if len(found) != 4:
        raise RuntimeError(f"expected 4 programs in `acmegw rules print`, got {sorted(found)}")
    return found


def setup():
    for ns in (NS_C, NS_S):
        sh("ip", "netns", "add", ns)
    sh("ip", "-n", NS_C, "link", "add", "c0", "type", "veth", "peer", "name", "s0", "netns", NS_S)
    for ns, dev, v4, v6 in ((NS_C, "c0", V4_C, V6_C), (NS_S, "s0", V4_S, V6_S)):
        sh("ip", "-n", ns, "addr", "add", v4 + "/24", "dev", dev)
        sh("ip", "-n", ns, "addr", "add", v6 + "/64", "dev", dev, "nodad")
        sh("ip", "-n", ns, "link", "set", dev, "up")
        sh("ip", "-n", ns, "link", "set", "lo", "up")


# Shape counters (non-SYN segments), proving each case ran with the header layout it claims.
SHAPES = {
    4: ['-m u32 --u32 "0>>24&0xF=6"',                 # IPv4 header of 24 bytes (IP options)
        '-m u32 --u32 "0>>22&0x3C@12>>26&0x3C=32"'],  # TCP header of 32 bytes (timestamps)
    6: ['-m u32 --u32 "52>>26&0x3C=32"'],             # TCP header of 32 bytes (timestamps)
}


def install(progs):
    for family, tool in ((4, "iptables"), (6, "ip6tables")):
        rules = [f'-m bpf --bytecode "{progs[(family, kind)]}"' for kind in ("prefilter", "probe")]
        rules += [f"--tcp-flags SYN NONE {shape}" for shape in SHAPES[family]]
        restore = "*mangle\n" + "".join(f"-A PREROUTING -p tcp --dport 80 {r}\n" for r in rules)
        r = subprocess.run(("ip", "netns", "exec", NS_S, tool + "-restore", "--noflush"),
                           input=restore + "COMMIT\n", capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError(f"{tool}-restore: {r.stderr.strip()}")


def counters(tool):
    """Packet counts of our PREROUTING rules, in insertion order."""
    out = sh(tool, "-t", "mangle", "-nvxL", "PREROUTING", ns=NS_S).stdout.splitlines()[2:]
    return tuple(int(line.split()[0]) for line in out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--acmegw", required=True)
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("skip: needs root (network namespaces, iptables)")
        return 77
    progs = programs(args.acmegw)
    server = None
    failures = []
    try:
        setup()
        if sh("iptables", "-t", "mangle", "-A", "PREROUTING", "-m", "bpf", "--bytecode",
              "1,6 0 0 0", ns=NS_S, check=False).returncode != 0:
            print("skip: the kernel has no xt_bpf")
            return 77
        sh("iptables", "-t", "mangle", "-F", "PREROUTING", ns=NS_S)
        install(progs)
        server = subprocess.Popen(("ip", "netns", "exec", NS_S, sys.executable, "-c", SERVER))
        time.sleep(0.5)
        runs = 0
        for timestamps in ("1", "0"):
            sh("sysctl", "-qw", f"net.ipv4.tcp_timestamps={timestamps}", ns=NS_C)
            for family, addr, tool in ((4, V4_S, "iptables"), (6, V6_S, "ip6tables")):
                for opts in ([""] if family == 6 else ["", IP_OPTIONS]):
                    for desc, payload, want in CASES:
                        sh(tool, "-t", "mangle", "-Z", "PREROUTING", ns=NS_S)
                        sh(sys.executable, "-c", CLIENT, addr, "80",
                           payload.encode("latin-1").hex(), opts, ns=NS_C)
                        got = counters(tool)
                        expected = (int(want), int(bool(payload)))
                        ts = timestamps == "1"
                        shape = (bool(opts), ts) if family == 4 else (ts,)
                        runs += 1
                        if got[:2] != expected or tuple(c > 0 for c in got[2:]) != shape:
                            failures.append(f"v{family} ts={timestamps} ipopts={bool(opts)} "
                                            f"{desc}: (prefilter, probe, shapes) = {got}, "
                                            f"want {expected} and shapes {shape}")
        for f in failures:
            print("FAIL:", f)
        print(f"{runs - len(failures)}/{runs} connections counted as expected")
        return 1 if failures else 0
    finally:
        if server:
            server.kill()
            server.wait()
        for ns in (NS_C, NS_S):
            sh("ip", "netns", "del", ns, check=False)


if __name__ == "__main__":
    sys.exit(main())
