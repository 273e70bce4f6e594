#!/usr/bin/env python3
"""e2e: `acmegw rules install|remove|print` in a throwaway network namespace.

Checks, with unrelated pre-existing rules in every table we touch (v4 and v6, plus an unrelated
ip rule and route):
  * install puts exactly the printed ruleset in place (per chain, as iptables-save shows it),
    with the jumps first in their built-in chains, the IPv4 TOS route (no IPv4 ip rule) and the
    IPv6 policy route;
  * install is idempotent (second run: identical iptables-save and ip rule/route state);
  * dropping the v6 endpoint and re-installing removes the v6 rules, nothing else;
  * print --counters lists acmegw's rules with counters;
  * remove restores iptables-save / ip rule / ip route to exactly the state before install, and a
    second remove is a no-op;
  * install replaces the IPv4 fwmark rule and route of an older acmegw, and src_valid_mark=1
    (harmful only with that rule) is accepted;
  * a bad config file is reported with file, line and key.
Exit 0 pass, 77 skip (not root / tools missing), 1 fail.
"""
import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile

NS = f"agwR{os.getpid()}"
PREFIX = "ACMEGW"
OURS = tuple(f"{PREFIX}-{c}" for c in ("PRE", "FLOW", "HTTP", "TLS", "IN", "OUT", "FWD"))

FLAGS_V4V6 = ["--protect", "203.0.113.10", "--protect", "198.51.100.0/24:8080",
              "--protect", "tls://203.0.113.10:443", "--protect", "[2001:db8::10]:80",
              "--queue-balance", "1:2"]
FLAGS_V4 = ["--protect", "203.0.113.10", "--protect", "198.51.100.0/24:8080",
            "--protect", "tls://203.0.113.10:443", "--queue-balance", "1:2"]

FOREIGN = [
    ["iptables", "-t", "mangle", "-A", "PREROUTING", "-p", "udp", "--dport", "53",
     "-j", "MARK", "--set-xmark", "0x1/0xff"],
    ["iptables", "-t", "mangle", "-A", "FORWARD", "-p", "tcp", "--tcp-flags", "SYN,RST", "SYN",
     "-j", "TCPMSS", "--clamp-mss-to-pmtu"],
    ["iptables", "-t", "raw", "-A", "OUTPUT", "-p", "udp", "--dport", "123", "-j", "CT",
     "--notrack"],
    ["iptables", "-t", "filter", "-A", "FORWARD", "-s", "10.9.0.0/16", "-j", "ACCEPT"],
    ["iptables", "-t", "filter", "-N", "SITE"],
    ["iptables", "-t", "filter", "-A", "SITE", "-p", "tcp", "--dport", "22", "-j", "ACCEPT"],
    ["ip6tables", "-t", "mangle", "-A", "PREROUTING", "-p", "udp", "--dport", "53",
     "-j", "MARK", "--set-xmark", "0x1/0xff"],
    ["ip6tables", "-t", "raw", "-A", "OUTPUT", "-p", "udp", "--dport", "123", "-j", "CT",
     "--notrack"],
    ["ip6tables", "-t", "filter", "-A", "FORWARD", "-s", "2001:db8:9::/48", "-j", "ACCEPT"],
    ["ip", "-4", "rule", "add", "pref", "100", "fwmark", "0x1/0xff", "lookup", "100"],
    ["ip", "-4", "route", "add", "unreachable", "192.0.2.0/24", "table", "100"],
    ["ip", "-6", "rule", "add", "pref", "100", "fwmark", "0x1/0xff", "lookup", "100"],
]


class Fail(Exception):
    pass


def sh(argv, check=True, inp=None):
    r = subprocess.run(argv, input=inp, capture_output=True, text=True, timeout=60)
    if check and r.returncode != 0:
        raise Fail(f"{' '.join(argv)} -> {r.returncode}\n{r.stdout}{r.stderr}")
    return r


def ns(argv, check=True, inp=None):
    return sh(["ip", "netns", "exec", NS] + argv, check, inp)


def normalized_save(tool):
    """iptables-save output without comments and chain policy counters."""
    lines = []
    for line in ns([tool]).stdout.splitlines():
        if line.startswith("#"):
            continue
        lines.append(re.sub(r"^(:\S+ \S+) \[\d+:\d+\]$", r"\1", line))
    return lines


def state():
    return {
        "v4": normalized_save("iptables-save"),
        "v6": normalized_save("ip6tables-save"),
        "rule4": ns(["ip", "-4", "rule", "show"]).stdout,
        "rule6": ns(["ip", "-6", "rule", "show"]).stdout,
        "route4": ns(["ip", "-4", "route", "show", "table", "all"]).stdout,
        "route6": ns(["ip", "-6", "route", "show", "table", "all"]).stdout,
    }


def diff(a, b):
    out = []
    for k in a:
        if a[k] != b[k]:
            out.append(f"--- {k} before\n{a[k]}\n+++ {k} after\n{b[k]}")
    return "\n".join(out)


def by_chain(lines, family):
    """(family, table, chain) -> rule lines, for acmegw's chains and the jumps into them."""
    out = {}
    table = None
    for line in lines:
        if line.startswith("*"):
            table = line[1:]
        elif line.startswith("-A "):
            chain = line.split()[1]
            jump = line.split()[-1]
            if chain in OURS or jump in OURS:
                out.setdefault((family, table, chain), []).append(line)
    return out


def printed_by_chain(text):
    """Splits `rules print` output into the per-family sections and parses each."""
    out = {}
    family = None
    section = []
    for line in text.splitlines() + ["# acmegw ruleset, END"]:
        m = re.match(r"# acmegw ruleset, (IPv4|IPv6|END)", line)
        if m:
            if family:
                out.update(by_chain(section, family))
            family, section = {"IPv4": "v4", "IPv6": "v6", "END": None}[m.group(1)], []
        elif not line.startswith("#"):
            section.append(line)
    return out


def acmegw(binary, args, check=True):
    return ns([binary] + args, check)


def expect(cond, msg):
    if not cond:
        raise Fail(msg)


def run(binary):
    sh(["ip", "netns", "add", NS])
    ns(["ip", "link", "set", "lo", "up"])
    for cmd in FOREIGN:
        ns(cmd)
    before = state()

    # 1. install = exactly the printed ruleset, jumps first, policy route present.
    acmegw(binary, ["rules", "install"] + FLAGS_V4V6)
    after = state()
    printed = printed_by_chain(acmegw(binary, ["rules", "print"] + FLAGS_V4V6).stdout)
    live = {**by_chain(after["v4"], "v4"), **by_chain(after["v6"], "v6")}
    expect(printed == live, "installed rules differ from `rules print`:\n"
           f"printed={printed}\nlive={live}")
    expect(("v4", "mangle", f"{PREFIX}-HTTP") in live and ("v6", "raw", f"{PREFIX}-OUT") in live,
           f"missing chains: {sorted(live)}")
    for fam in ("v4", "v6"):
        pre = [l for l in after[fam] if l.startswith("-A PREROUTING ")]
        expect(pre[0].endswith(f"-j {PREFIX}-PRE"), f"{fam}: jump not first: {pre}")
    expect(after["rule4"] == before["rule4"], "IPv4 ip rules changed:\n" + after["rule4"])
    expect("fwmark 0x200000/0xf00000 lookup 3802" in after["rule6"], after["rule6"])
    for net in ("203.0.113.10", "198.51.100.0/24"):
        expect(f"local {net} tos 0x0c dev lo table local proto 172 scope host" in after["route4"],
               after["route4"])
    expect("table 3802" not in after["route4"], after["route4"])
    expect(re.search(r"local default dev lo table 3802", after["route6"]), after["route6"])
    # foreign rules untouched
    for fam in ("v4", "v6"):
        foreign_before = [l for l in before[fam] if PREFIX not in l]
        foreign_after = [l for l in after[fam] if PREFIX not in l]
        expect(foreign_before == foreign_after,
               f"{fam}: foreign rules changed:\n{foreign_before}\n{foreign_after}")

    # 2. idempotent
    acmegw(binary, ["rules", "install"] + FLAGS_V4V6)
    expect(state() == after, "second install changed the state:\n" + diff(after, state()))

    # 3. counters
    counters = acmegw(binary, ["rules", "print", "--counters"]).stdout
    expect(re.search(rf"^\s+\d+\s+\d+\s+-A {PREFIX}-HTTP .*queue http", counters, re.M),
           f"no counter rows:\n{counters}")
    expect("# IPv6:" in counters, counters)

    # 4. dropping the v6 endpoint removes the v6 rules only
    acmegw(binary, ["rules", "install"] + FLAGS_V4)
    v4only = state()
    expect(v4only["v4"] == after["v4"], "v4 rules changed when only v6 was dropped")
    expect(v4only["v6"] == before["v6"] and v4only["rule6"] == before["rule6"],
           "v6 rules not removed:\n" + diff(before, v4only))

    # 5. remove restores exactly the state before; a second remove is a no-op
    acmegw(binary, ["rules", "install"] + FLAGS_V4V6)
    acmegw(binary, ["rules", "remove"])
    expect(state() == before, "remove left differences:\n" + diff(before, state()))
    acmegw(binary, ["rules", "remove"])
    expect(state() == before, "second remove changed something")

    # 6. an older acmegw's IPv4 fwmark rule and route are replaced; src_valid_mark=1 is fine
    ns(["ip", "-4", "rule", "add", "pref", "3802", "fwmark", "0x200000/0xf00000", "lookup",
        "3802"])
    ns(["ip", "-4", "route", "add", "local", "0.0.0.0/0", "dev", "lo", "table", "3802"])
    ns(["sysctl", "-qw", "net.ipv4.conf.all.src_valid_mark=1"])
    r = acmegw(binary, ["rules", "install"] + FLAGS_V4, check=False)
    ns(["sysctl", "-qw", "net.ipv4.conf.all.src_valid_mark=0"])
    expect(r.returncode == 0, f"install with src_valid_mark=1: {r.returncode} {r.stderr}")
    expect(state()["rule4"] == before["rule4"] and "table 3802" not in state()["route4"],
           "the old IPv4 rule/route survived:\n" + diff(before, state()))
    acmegw(binary, ["rules", "remove"])
    expect(state() == before, "remove after the upgrade left differences:\n" +
           diff(before, state()))

    # 7. config errors name file, line and key
    with tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False) as f:
        f.write('protect = ["203.0.113.10"]\n[marks]\nbogus = 1\npass = 0x7\n')
        path = f.name
    try:
        r = acmegw(binary, ["rules", "print", "--config", path], check=False)
    finally:
        os.unlink(path)
    expect(r.returncode == 2, f"bad config exit {r.returncode}")
    expect(f"{path}:3: marks.bogus: unknown key" in r.stderr, r.stderr)
    expect(f"{path}:4: marks.pass: value 0x00000007 has no bit under marks.mask" in r.stderr,
           r.stderr)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--acmegw", required=True)
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("SKIP: needs root (network namespaces, iptables)")
        return 77
    for tool in ("ip", "iptables-save", "iptables-restore", "ip6tables-save", "ip6tables-restore"):
        if shutil.which(tool) is None:
            print(f"SKIP: {tool} not installed")
            return 77
    binary = os.path.abspath(args.acmegw)
    try:
        run(binary)
    except (Fail, subprocess.TimeoutExpired) as e:
        print(f"FAIL: {e}")
        return 1
    finally:
        subprocess.run(["ip", "netns", "del", NS], capture_output=True)
    print("PASS: test_rules")
    return 0


if __name__ == "__main__":
    sys.exit(main())
