#!/usr/bin/env python3
"""Black-box test of `acmegw classify`: the classifier's command-line interface.

Feeds the committed fuzz seeds (named by behaviour) and a few hand-made streams through the CLI
and checks the JSON decision against the behaviour the file name promises. Needs no root.
"""
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lab  # noqa: E402

CORPUS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fuzz", "corpus")

# Seed-name prefix -> (decision, challenge) the CLI must print for the complete file.
EXPECT = {
    "valid_challenge": ("challenge", None),  # challenge kind depends on the protocol
    "split_records": ("challenge", None),  # a whole challenge hello in tiny TLS records
    "split_": ("production", None),  # a prefix only: the stream ends undecided
    "alpn_acme_plus_other": ("production", None),
    "alpn_other": ("production", None),
    "no_alpn": ("production", None),
    "no_sni": ("production", None),  # acme-tls/1 without SNI: no identifier to validate
    "not_": ("production", None),
    "malformed": ("production", None),
    "method": ("production", None),
    "path": ("production", None),
    "token": ("production", None),
    "too_long": ("production", None),
    "version": ("production", None),
}


def classify(acmegw: str, data: bytes, tls: bool = False) -> dict:
    argv = [acmegw, "classify", "--json"] + (["--tls"] if tls else [])
    out = subprocess.run(argv, input=data, capture_output=True, timeout=10)
    if out.returncode != 0:
        raise AssertionError(f"exit {out.returncode}: {out.stderr.decode(errors='replace')}")
    return json.loads(out.stdout)


def expected_for(name: str):
    for prefix, exp in EXPECT.items():
        if name.startswith(prefix):
            return exp
    return None


def main() -> None:
    args = lab.parse_args(__doc__)
    checks = lab.Checks()
    for proto in ("http", "tls"):
        d = os.path.join(CORPUS, proto)
        for name in sorted(os.listdir(d)):
            exp = expected_for(name)
            if exp is None:
                checks.check(f"{proto}/{name}: seed name states a behaviour", False,
                             "unknown seed name prefix; add it to EXPECT")
                continue
            with open(os.path.join(d, name), "rb") as f:
                data = f.read()

            def one(data=data, exp=exp, proto=proto):
                r = classify(args.acmegw, data, tls=(proto == "tls"))
                if r["decision"] != exp[0]:
                    return f"decision {r['decision']} (reason {r.get('reason')}), want {exp[0]}"
                want_kind = {"http": "http-01", "tls": "tls-alpn-01"}[proto]
                if exp[0] == "challenge" and r["challenge"] != want_kind:
                    return f"challenge {r['challenge']}, want {want_kind}"
                if exp[0] == "production" and not r.get("reason"):
                    return "production without a reason"
                return None
            checks.run(f"{proto}/{name}", one)

    le = (b"GET /.well-known/acme-challenge/LoqXcYV8q5ONbJQxbmR7SCTNo3tiAXDfowyjxAjEuX0 HTTP/1.1\r\n"
          b"Host: Example.COM\r\nUser-Agent: Mozilla/5.0 (compatible; Let's Encrypt validation "
          b"server; +https://www.letsencrypt.org)\r\nAccept: */*\r\nAccept-Encoding: gzip\r\n"
          b"Connection: close\r\n\r\n")

    def letsencrypt():
        r = classify(args.acmegw, le)
        want = {"decision": "challenge", "protocol": "http", "challenge": "http-01",
                "token": "LoqXcYV8q5ONbJQxbmR7SCTNo3tiAXDfowyjxAjEuX0", "host": "example.com",
                "reason": None}
        bad = {k: (r.get(k), v) for k, v in want.items() if r.get(k) != v}
        return f"fields differ (got, want): {bad}" if bad else None
    checks.run("letsencrypt request: token and lower-cased host", letsencrypt)

    def incomplete():
        r = classify(args.acmegw, le[:40])
        return None if r["decision"] == "production" and r["reason"] else f"got {r}"
    checks.run("stream ending inside the request line goes to production", incomplete)

    def ssh():
        r = classify(args.acmegw, b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n")
        return None if (r["protocol"], r["decision"]) == ("unknown", "production") else f"got {r}"
    checks.run("ssh banner is unknown protocol, production", ssh)

    def escaped():
        # Control bytes in the token position must never reach the terminal raw (log injection).
        out = subprocess.run([args.acmegw, "classify"], capture_output=True, timeout=10,
                             input=b"GET /\x1b[31m\x07 HTTP/1.1\r\n\r\n")
        raw = out.stdout + out.stderr
        return None if b"\x1b" not in raw and b"\x07" not in raw else f"raw control bytes: {raw!r}"
    checks.run("human output escapes control bytes", escaped)

    def usage():
        out = subprocess.run([args.acmegw, "classify", "--no-such-flag"], capture_output=True,
                             input=b"", timeout=10)
        return None if out.returncode != 0 and out.stderr else "usage error exited 0 or silently"
    checks.run("usage error exits non-zero with a message", usage)
    checks.exit()


if __name__ == "__main__":
    main()
