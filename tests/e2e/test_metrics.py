#!/usr/bin/env python3
"""e2e: `--metrics-listen`: GET /metrics in Prometheus text format 0.0.4 (well-formed, one HELP
and TYPE per family) whose counters move with the traffic: production flows, takeovers, session
answers and the answer-time histogram; plus the engine's recently-decided guard: a production
request and a challenge-looking request sent back to back on one connection (both queued before
the first verdict) both reach production byte for byte, and nothing is taken over."""

from __future__ import annotations

import re
from typing import Optional

from lab import PROD, REC, Checks, Lab, parse_args, recorder_response, require
from takeover_util import THUMB, Client, challenge, keyauth_response

LISTEN = "127.0.0.1:9891"
EXPECTED = ("acmegw_packets_total", "acmegw_recently_decided_total", "acmegw_takeovers_ok_total",
            "acmegw_kernel_queue_dropped_total", "acmegw_kernel_queue_waiting",
            "acmegw_session_active", "acmegw_challenge_answer_seconds_count")
SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\.)*"'
                    r'(?:,[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\.)*")*\})? ([0-9.e+-]+|\+Inf)$')


def scrape(lab: Lab, path: str = "/metrics") -> tuple[str, str]:
    """(headers, body) of a GET from inside fw (the endpoint listens on fw's loopback)."""
    out = lab.sh(lab.ns.fw, "curl", "-s", "-i", "--max-time", "5", f"http://{LISTEN}{path}")
    head, _, body = out.partition("\r\n\r\n")
    return head, body


def parse(body: str) -> tuple[dict[str, float], Optional[str]]:
    """Samples by series ("name{labels}") and the first format problem, if any."""
    samples: dict[str, float] = {}
    helped: set[str] = set()
    typed: dict[str, str] = {}
    for line in body.splitlines():
        if line.startswith("# HELP "):
            name = line.split()[2]
            if name in helped:
                return samples, f"second HELP for {name}"
            helped.add(name)
            continue
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split()
            if name in typed or name not in helped or kind not in ("counter", "gauge", "histogram"):
                return samples, f"bad TYPE line {line!r}"
            typed[name] = kind
            continue
        m = SAMPLE.match(line)
        if not m:
            return samples, f"not a sample line: {line!r}"
        family = re.sub(r"_(bucket|sum|count)$", "", m[1]) if m[1] not in typed else m[1]
        if family not in typed:
            return samples, f"sample before its TYPE: {line!r}"
        samples[m[1] + (m[2] or "")] = float(m[3])
    return samples, None


def moved(before: dict[str, float], after: dict[str, float], series: str, at_least: float) -> str:
    d = after.get(series, 0) - before.get(series, 0)
    return "" if d >= at_least else f"{series} moved by {d}, expected >= {at_least}; "


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    require("iptables", "ip6tables", "curl", "nginx")
    checks = Checks()
    with Lab("metrics", prefix="agwM", keep=args.keep) as lab:
        lab.start_nginx()
        rec = lab.start_recorder()
        # No prefilter: production first segments reach the queue, so they are counted.
        proc = lab.run_acmegw(args.acmegw, "--backend", f"thumbprint={THUMB}", "--no-prefilter",
                              "--metrics-listen", LISTEN,
                              protect=[PROD.v4, f"[{PROD.v6}]", REC.v4, f"[{REC.v6}]"])

        head, body = scrape(lab)
        before, problem = parse(body)
        checks.check("GET /metrics: 200, text/plain version=0.0.4",
                     head.startswith("HTTP/1.1 200 ") and "version=0.0.4" in head, head)
        checks.check("exposition is well-formed", problem is None and bool(before), problem or body)
        checks.check("every engine counter is exported",
                     all(s in before for s in EXPECTED), body[:3000])
        checks.check("other paths: 404", scrape(lab, "/nope")[0].startswith("HTTP/1.1 404 "), "")

        for fam in (4, 6):
            lab.sh(lab.ns.client, "curl", "-s", "-o", "/dev/null", "--max-time", "5",
                   f"http://{PROD.v4}/" if fam == 4 else f"http://[{PROD.v6}]/")
        answers = []
        for i in range(3):
            c = Client(lab.ns.client, PROD.v4)
            c.send(challenge(f"metrics_{i}"))
            head, body = c.read_response()
            answers.append(head + body == keyauth_response(f"metrics_{i}"))
            c.close_and_wait_eof()
        checks.check("challenges answered", all(answers), str(answers))

        after, problem = parse(scrape(lab)[1])
        why = (moved(before, after, "acmegw_flows_production_total", 2) +
               moved(before, after, 'acmegw_production_by_cause_total{cause="classified"}', 2) +
               moved(before, after, "acmegw_takeovers_ok_total", 3) +
               moved(before, after, "acmegw_session_answered_keyauth_total", 3) +
               moved(before, after, "acmegw_challenge_answer_seconds_count", 3) +
               moved(before, after, "acmegw_packets_total", 5))
        checks.check("counters move with the traffic", problem is None and not why,
                     (problem or "") + why)
        n = after.get("acmegw_challenge_answer_seconds_count", 0)
        if n:
            print(f"info: mean challenge answer time "
                  f"{after['acmegw_challenge_answer_seconds_sum'] / n * 1e6:.0f} us over {n:.0f}")

        # The race: two requests in two segments back to back; without the recently-decided
        # guard the second one, queued before the first one's verdict, looked like a new flow
        # starting with a challenge request.
        first = b"GET /index.html HTTP/1.1\r\nHost: example.test\r\n\r\n"
        second = challenge("pipelined_tok")
        bad = []
        for _ in range(20):
            peer, got = lab.exchange(lab.ns.client, REC.v4, [first, second], nodelay=True)
            conv = rec.conversation(peer)
            if conv.received != first + second or got != recorder_response(first + second):
                bad.append((conv.received[-40:], got[:40]))
        final, problem = parse(scrape(lab)[1])
        checks.check("pipelined challenge after a production request stays with production",
                     not bad and final.get("acmegw_takeovers_ok_total") ==
                     after.get("acmegw_takeovers_ok_total"), f"{bad[:3]}")
        hits = final.get("acmegw_recently_decided_total", 0) - after.get(
            "acmegw_recently_decided_total", 0)
        print(f"info: recently_decided moved by {hits:.0f} in 20 pipelined connections")
        lab.stop(proc)
        checks.check("acmegw exits cleanly", proc.returncode == 0, lab.log_of(proc)[-1000:])
    checks.exit()


if __name__ == "__main__":
    main()
