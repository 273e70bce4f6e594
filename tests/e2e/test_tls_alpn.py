#!/usr/bin/env python3
"""e2e: TLS-ALPN-01 on port 443 (issue 15): acmegw takes over `acme-tls/1` ClientHellos for
identifiers it serves and answers them; every other TLS flow reaches production byte for byte.

Production: nginx with its own certificate on PROD:443 (wrk https load, fingerprint), and a TLS
recorder on REC:443 (tlslab.TlsRecorder, same certificate) that records every raw byte it
received, so "reached production untouched" is a byte compare of what the client sent. acmegw
protects tls://PROD and tls://REC (v4 + v6) with `--backend tokens=SOCK` (the built-in
responder is the default TLS backend then); identifiers are registered with `token add-alpn`.

Per family:
  * a normal TLS client sees production's certificate (SHA-256 fingerprint) and production
    received exactly the ClientHello bytes sent;
  * acme-tls/1 + SNI of a registered identifier (TLS 1.3 and 1.2, 1 record, 3 records, a hello
    larger than the client's MSS sent in several segments): the handshake completes with ALPN
    acme-tls/1, the certificate has exactly one SAN = SNI and the critical 1.3.6.1.5.5.7.1.31
    extension holding SHA-256(key authorization); production got no byte of it;
  * to production, byte for byte: acme-tls/1 + another ALPN, acme-tls/1 for an unregistered
    identifier, acme-tls/1 without SNI;
  * bad input: truncated hello, bad record / handshake lengths, 1-byte records (answered by
    someone, never broken), a handshake that never finishes (closed by acmegw, counted by a
    timeout counter), a flood of acme-tls/1 hellos;
  * the prefilter: a normal HTTPS load does not put a single packet into the queue;
  * negative control: with acmegw stopped, the registered acme-tls/1 hello reaches production.
wrk https (keep-alive to PROD.v4, Connection: close to PROD.v6) runs through everything and must
end with 0 socket errors and 0 non-2xx.

Run: python3 tests/e2e/test_tls_alpn.py --acmegw build/release/gateway/acmegw   (root; 77 if not)
"""

from __future__ import annotations

import concurrent.futures
import os
import re
import signal
import ssl
import subprocess
import time
from typing import Optional

from lab import (PROD, REC, Checks, Lab, finish_production_load, parse_args, require,
                 start_production_load)
from tlslab import (ACME_TLS, TlsRecorder, acme_cert_info, fingerprint, hello, keyauth_digest,
                    make_cert, pem_to_der, start_nginx_tls, tls_handshake)

THUMB = "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"


def keyauth(name: str) -> str:
    return f"tok-{name.split('.')[0]}.{THUMB}"


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    require("iptables", "ip6tables", "nginx", "openssl", "wrk")
    try:
        import cryptography  # noqa: F401
    except ImportError:
        print("SKIP: python3-cryptography missing (scripts/bootstrap installs it)")
        raise SystemExit(77)
    checks = Checks()
    with Lab("tlsalpn", prefix="agwL", keep=args.keep) as lab:
        cert, key = make_cert(os.path.join(lab.dir, "prod-tls"), "production",
                              ["production.example", PROD.v4, REC.v4])
        prod_fp = fingerprint(pem_to_der(cert))
        nginx = start_nginx_tls(lab, cert, key, workers=2)
        rec = TlsRecorder(lab, [REC.v4, REC.v6], cert, key)
        sock = os.path.join(lab.dir, "tokens.sock")
        protect = [f"tls://{PROD.v4}", f"tls://[{PROD.v6}]", f"tls://{REC.v4}",
                   f"tls://[{REC.v6}]"]
        # 1-byte records put one hello into many segments: allow enough held segments that the
        # case is decided by its bytes (the default 32 would send it to production, by design).
        gw_args = ("--backend", f"tokens={sock}", "--max-held-segments", "1024")
        gw = lab.run_acmegw(args.acmegw, *gw_args, protect=protect)

        def token(*argv: str) -> str:
            return lab.sh(lab.ns.fw, args.acmegw, "token", "--socket", sock, *argv)

        names = {fam: f"alpn-v{fam}.example.com" for fam in (4, 6)}
        registered = True
        for n in list(names.values()) + ["stall.example.com", "flood.example.com"]:
            try:
                token("add-alpn", n, keyauth(n), "--ttl", "3600")
            except RuntimeError as e:
                registered = False
                checks.check(f"token add-alpn {n}", False, str(e))
        if registered:
            listed = token("list")
            checks.check("token list shows the acme-tls/1 identifiers",
                         all(n in listed for n in names.values()), listed[-500:])

        # --- the prefilter: production HTTPS (new connection per request) queues nothing.
        before = lab.nfqueue_packets()
        r = lab.wrk(f"https://{PROD.v4}/", duration=3, connections=4,
                    headers=["Connection: close"])
        queued = lab.nfqueue_packets() - before
        checks.check(f"prefilter: {r['requests']} new-connection https requests queued 0 packets",
                     r["requests"] > 0 and queued == 0 and r["errors"] == 0,
                     f"{queued} packets queued, wrk errors {r['errors']}")

        loads = start_production_load(lab, f"https://{PROD.v4}/", f"https://[{PROD.v6}]/",
                                      connections=4)

        def to_production(r, what: str) -> Optional[str]:
            """None when the connection of r reached REC's recorder with exactly r.sent first."""
            if not r.local:
                return f"{what}: no connection: {r.error}"
            try:
                conv = rec.conversation(r.local)
            except TimeoutError as e:
                return f"{what}: {e} (client: ok={r.ok} error={r.error})"
            if bytes(conv.received[:len(r.sent)]) != r.sent:
                return (f"{what}: production received {len(conv.received)} bytes that differ "
                        f"from the {len(r.sent)} sent")
            if r.ok and fingerprint(r.cert) != prod_fp:
                return f"{what}: handshake completed with a certificate that is not production's"
            return None

        def answered(r, name: str, what: str) -> Optional[str]:
            """None when r was answered by acmegw for `name` and production got none of it."""
            if not r.ok:
                return f"{what}: handshake failed: {r.error}"
            if r.alpn != ACME_TLS:
                return f"{what}: ALPN {r.alpn!r}"
            if fingerprint(r.cert) == prod_fp:
                return f"{what}: production's certificate (not taken over)"
            sans, critical, digest = acme_cert_info(r.cert)
            if sans != [name]:
                return f"{what}: SANs {sans}"
            if critical is not True:
                return f"{what}: acmeIdentifier extension critical={critical}"
            if digest != keyauth_digest(keyauth(name)):
                return f"{what}: acmeIdentifier value {digest!r} != SHA-256(keyauth)"
            if rec.saw(r.local):
                conv = rec.conversation(r.local)
                if conv.received:
                    return f"{what}: production received {len(conv.received)} bytes"
            return None

        for fam in (4, 6):
            name = names[fam]
            v = f"v{fam}"

            def normal_nginx():
                r = tls_handshake(lab.ns.client, PROD[fam], "production.example",
                                  ["h2", "http/1.1"])
                if not r.ok:
                    return f"handshake failed: {r.error}"
                return None if fingerprint(r.cert) == prod_fp else "not production's certificate"
            checks.run(f"{v} normal TLS client sees production's certificate (nginx)",
                       normal_nginx)

            def normal_bytes():
                r = tls_handshake(lab.ns.client, REC[fam], name, ["h2", "http/1.1"],
                                  read_app=True)
                return to_production(r, "normal hello") or (None if r.ok else r.error)
            checks.run(f"{v} normal TLS: production received the ClientHello byte for byte",
                       normal_bytes)

            for label, kw in (("TLS 1.3, 1 record", {}),
                              ("TLS 1.2", {"tls_max": ssl.TLSVersion.TLSv1_2}),
                              ("3 records", {"records": 3}),
                              (">MSS hello in several segments",
                               {"pad": True, "mss": 200, "split": [100, 100]})):
                checks.run(f"{v} acme-tls/1 {label}: answered by acmegw",
                           lambda kw=kw, label=label: answered(
                               tls_handshake(lab.ns.client, REC[fam], name, [ACME_TLS], **kw),
                               name, label))
            checks.run(f"{v} acme-tls/1 to nginx's address: answered by acmegw",
                       lambda: answered(tls_handshake(lab.ns.client, PROD[fam], name,
                                                      [ACME_TLS]), name, "nginx address"))

            for label, sni, alpn in (("acme-tls/1 + http/1.1", name, [ACME_TLS, "http/1.1"]),
                                     ("acme-tls/1, unregistered identifier",
                                      f"nobody-v{fam}.example.com", [ACME_TLS]),
                                     ("acme-tls/1 without SNI", None, [ACME_TLS])):
                checks.run(f"{v} {label}: reaches production byte for byte",
                           lambda sni=sni, alpn=alpn, label=label: to_production(
                               tls_handshake(lab.ns.client, REC[fam], sni, alpn, read_app=True),
                               label))

            # --- bad input: raw bytes, half-close, production must get exactly these bytes.
            h = hello(name, [ACME_TLS])

            def raw(data: bytes, label: str) -> Optional[str]:
                local, _ = lab.exchange(lab.ns.client, REC[fam], [data], port=443, timeout=60)
                conv = rec.conversation(local, timeout=60)
                if bytes(conv.received) != data:
                    return (f"{label}: production received {len(conv.received)} bytes, "
                            f"sent {len(data)} (equal prefix: "
                            f"{bytes(conv.received) == data[:len(conv.received)]})")
                return None
            bad_record_len = h[:3] + (len(h) - 5 + 7).to_bytes(2, "big") + h[5:]
            bad_hs_len = h[:6] + (int.from_bytes(h[6:9], "big") + 9).to_bytes(3, "big") + h[9:]
            bad_ext_len = bytearray(h)
            i = h.find(ACME_TLS.encode())
            if i > 3:
                bad_ext_len[i - 3] ^= 0x40  # the ALPN list length (2 bytes before the name len)
            for label, data in (("truncated hello", h[:len(h) // 2]),
                                ("record length beyond the data", bad_record_len),
                                ("handshake length beyond the record", bad_hs_len),
                                ("ALPN list length wrong", bytes(bad_ext_len)),
                                ("not TLS at all", b"\x16\x03\x01\x00" + b"\xff" * 200)):
                checks.run(f"{v} bad input, {label}: production got exactly the bytes",
                           lambda data=data, label=label: raw(data, label))

            def one_byte_records():
                r = tls_handshake(lab.ns.client, REC[fam], name, [ACME_TLS], records=10000,
                                  timeout=60)
                if not r.ok:
                    return f"handshake broken: {r.error}"
                if fingerprint(r.cert) == prod_fp:
                    return to_production(r, "1-byte records")
                return answered(r, name, "1-byte records")
            checks.run(f"{v} acme-tls/1 in 1-byte records: completes (acmegw or production)",
                       one_byte_records)

        # --- a handshake that never finishes: acmegw closes it and counts it.
        stat_re = re.compile(r"\b([a-z_][\w.]*)=(\d+)")

        def dump() -> dict:
            """Counters of a fresh SIGUSR1 stats dump (name=value pairs of the new log lines)."""
            mark = len(lab.log_of(gw))
            gw.send_signal(signal.SIGUSR1)
            lab.wait_for(lambda: "stats:" in lab.log_of(gw)[mark:], 10, "a SIGUSR1 stats dump")
            time.sleep(0.3)  # every component logs its own stats line
            return {k: int(v) for k, v in stat_re.findall(lab.log_of(gw)[mark:])}

        def stall():
            before = dump()
            t0 = time.monotonic()
            r = tls_handshake(lab.ns.client, REC.v4, "stall.example.com", [ACME_TLS],
                              stall=True, timeout=120)
            took = time.monotonic() - t0
            if not (r.eof_after or "reset" in r.error.lower()):
                return f"not closed within 120 s: {r.error}"
            if rec.saw(r.local) and rec.conversation(r.local).received:
                return "production received bytes of the stalled handshake"
            after = dump()
            # Counter names are not final: any counter about timeouts / idle sessions that grew.
            grown = {k: after[k] - before.get(k, 0) for k in after
                     if re.search(r"timeout|timed_out|idle", k) and after[k] > before.get(k, 0)}
            if not grown:
                return f"closed after {took:.1f} s but no timeout counter grew: {after}"
            print(f"  stalled handshake closed after {took:.1f} s, counted in {grown}")
            return None
        checks.run("v4 stalled acme-tls/1 handshake: closed by acmegw and counted", stall)

        # --- a flood of acme-tls/1 hellos (bounded, 16 at once): every one completes, either
        # answered by acmegw or (fail-open under its limits) by production with the exact bytes.
        def flood():
            n = 300
            with concurrent.futures.ThreadPoolExecutor(16) as ex:
                rs = list(ex.map(lambda i: tls_handshake(
                    lab.ns.client, REC[4 if i % 2 else 6], "flood.example.com", [ACME_TLS],
                    timeout=60), range(n)))
            failed = [r.error for r in rs if not r.ok]
            if failed:
                return f"{len(failed)}/{n} handshakes failed: {failed[:3]}"
            prod = [r for r in rs if fingerprint(r.cert) == prod_fp]
            bad = [why for why in (to_production(r, "flood") for r in prod) if why]
            if bad:
                return f"{len(bad)} flows to production were not byte-exact: {bad[:3]}"
            if len(prod) == n:
                return "none answered by acmegw"
            wrong = [why for why in (answered(r, "flood.example.com", "flood")
                                     for r in rs if r not in prod) if why]
            if wrong:
                return f"{len(wrong)} wrong answers: {wrong[:3]}"
            print(f"  flood: {n - len(prod)} answered by acmegw, {len(prod)} by production")
            return None
        checks.run("flood of 300 acme-tls/1 hellos (16 at once): all complete", flood)

        finish_production_load(lab, checks, loads, "production https throughout")

        # --- negative control: acmegw stopped, the registered hello reaches production.
        lab.stop(gw)
        for fam in (4, 6):
            checks.run(f"v{fam} negative control (acmegw stopped): acme-tls/1 reaches production",
                       lambda fam=fam: to_production(
                           tls_handshake(lab.ns.client, REC[fam], names[fam], [ACME_TLS],
                                         read_app=True), "negative control")
                       or None)
        del nginx
    checks.exit()


if __name__ == "__main__":
    main()
