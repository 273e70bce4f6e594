#!/usr/bin/env python3
"""e2e: the hostile-load attacks of issue 12 at CI size (scripts/stress --ci, attacks flood,
slow, rlimit, tokens and restart; tests/e2e/stress.py has what each does). Every check is a property,
never a rate: production wrk 0 errors / 0 non-2xx during each attack, every queued packet got
its verdict (nfnetlink_queue: waiting back to 0, no queue/user drops), acmegw alive with peak
RSS < 256 MiB and peak fds < max-sessions + 200, a challenge answered within 5 s after each
attack, the token socket refusing bad input and wrong uids, and after 20 SIGKILL restarts one
set of rules and nothing left after a clean stop. With the session caps in the build, the slow
variants run with 3 s header/idle timeouts and must see every held session ended.

Run: python3 tests/e2e/test_stress.py --acmegw build/release/gateway/acmegw
       [--challenge-load build/release/tests/bench/challenge_load]   (root; exit 77 if not)
"""

from __future__ import annotations

import os
import sys
import time

from lab import SKIP, Checks, parse_args, require
import stress


def main() -> None:
    def extra(p):
        p.add_argument("--challenge-load", help="default: BUILD/tests/bench/challenge_load "
                       "next to --acmegw's BUILD/gateway/acmegw")
    args = parse_args(__doc__.splitlines()[0], extra)
    require("wrk", "nginx", "iptables", "ip6tables", "setpriv", "ss")
    cfg = stress.config(args.acmegw, args.challenge_load, ci=True, keep=args.keep)
    if not os.access(cfg.challenge_load, os.X_OK):
        print(f"SKIP: challenge_load not built: {cfg.challenge_load} (-DACMEGW_BENCH=ON)")
        sys.exit(SKIP)
    checks = Checks()
    t0 = time.monotonic()
    table = stress.run_attacks(cfg, ["flood", "slow", "rlimit", "tokens", "restart"], checks)
    stress.print_table(table)
    if cfg.caps:  # short session timeouts: every taken slow session must have been ended
        slow = next((r["slow"] for r in table if r["attack"] == "slow"), {})
        for name in ("slowloris", "idle", "noread"):
            r = slow.get(name, {})
            checks.check(f"slow/{name}: every held session ended by the gateway ({r.get('peer_reset', 0)}"
                         f" reset, {r.get('peer_closed', 0)} closed, {r.get('still_open')} open)",
                         r.get("still_open") == 0 and r.get("established", 0) > 0, f"{r}")
    print(f"INFO test_stress took {time.monotonic() - t0:.0f} s", flush=True)
    checks.exit()


if __name__ == "__main__":
    main()
