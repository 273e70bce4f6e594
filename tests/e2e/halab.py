"""acmegw HA lab: two firewalls (keepalived + conntrackd) between the client and production.

    client eth0 ── swc (bridge) ──┬── c0 fwa p0 ──┬── swp (bridge) ── eth0 prod (nginx)
                                  └── c0 fwb p0 ──┘
                                      fwa s0 ── s0 fwb      (sync link, conntrackd FTFW)

    client side  198.51.100.0/24  2001:db8:1::/64   client .2/::2, fwa .11/::11, fwb .12/::12,
                                                     virtual gateway VIP_C .1/::1
    prod side    192.0.2.0/25     2001:db8:2::/64    prod .10/::10, fwa .2/::2, fwb .3/::3,
                                                     virtual gateway VIP_P .1/::1
    sync link    10.255.0.0/30                       fwa .1, fwb .2

The client routes via VIP_C, production via VIP_P: whichever firewall holds the VRRP master
forwards. keepalived and conntrackd are configured from the templates in docs/examples/ha/ (the
files the documentation ships), so the docs and the test cannot drift.

HaLab reuses lab.Lab's process, socket, nginx and wrk helpers; lab.ns.fw is fwa.
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
import time
from typing import Optional, Sequence

from lab import CLIENT, PROD, Addr, Lab, Namespaces, _destroy_ns, _labs

HERE = os.path.dirname(os.path.abspath(__file__))
EXAMPLES = os.path.join(HERE, "..", "..", "docs", "examples", "ha")

VIP_C = Addr("198.51.100.1", "2001:db8:1::1")
VIP_P = Addr("192.0.2.1", "2001:db8:2::1")
FW = {"a": {"c": Addr("198.51.100.11", "2001:db8:1::11"), "p": Addr("192.0.2.2", "2001:db8:2::2"),
            "s": "10.255.0.1", "prio": 150},
      "b": {"c": Addr("198.51.100.12", "2001:db8:1::12"), "p": Addr("192.0.2.3", "2001:db8:2::3"),
            "s": "10.255.0.2", "prio": 100}}


def fill(template: str, values: dict) -> str:
    """Replace every @NAME@ of template (a file in docs/examples/ha) with values[NAME]; raises
    if a placeholder is left without a value."""
    with open(os.path.join(EXAMPLES, template)) as f:
        text = f.read()
    out = re.sub(r"@([A-Z0-9_]+)@", lambda m: str(values[m[1]]), text)
    return out


class HaLab(Lab):
    """client, fwa, fwb, prod + two switch namespaces; see the module docstring."""

    def __init__(self, name: str = "ha", prefix: str = "agwH", keep: bool = False) -> None:
        self.keep = keep
        self.procs: list[subprocess.Popen] = []
        self._logs: dict[int, str] = {}
        self._closed = False
        self._recorders = []
        self._remove_stale_ha(prefix)
        base = f"{prefix}{os.getpid()}-{Lab._seq}"
        Lab._seq += 1
        self.fw_ns = {"a": base + "a", "b": base + "b"}
        self.sw_ns = {"c": base + "s", "p": base + "t"}
        self.ns = Namespaces(base + "c", self.fw_ns["a"], base + "p", None)
        self.dir = tempfile.mkdtemp(prefix=f"{name}-{base}-")
        os.chmod(self.dir, 0o755)
        self.keepalived: dict[str, subprocess.Popen] = {}
        self.conntrackd: dict[str, subprocess.Popen] = {}
        self.ctd_conf: dict[str, str] = {}
        _labs.append(self)
        try:
            self._build_ha()
        except BaseException:
            self.close()
            raise

    def all_ns(self) -> list[str]:
        return [self.ns.client, self.fw_ns["a"], self.fw_ns["b"], self.ns.prod,
                self.sw_ns["c"], self.sw_ns["p"]]

    @staticmethod
    def _remove_stale_ha(prefix: str) -> None:
        names = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
        for n in names.split():
            m = re.fullmatch(re.escape(prefix) + r"(\d+)-\d+[cabpst]", n)
            if m and not os.path.exists(f"/proc/{m[1]}"):
                _destroy_ns(n)

    def _build_ha(self) -> None:
        for n in self.all_ns():
            self._ip("netns", "add", n)
            self._ip("-n", n, "link", "set", "lo", "up")
            self._sysctl(n, net__ipv6__conf__all__accept_dad="0",
                         net__ipv6__conf__default__accept_dad="0")
        for side in ("c", "p"):
            sw = self.sw_ns[side]
            self._ip("-n", sw, "link", "add", "br0", "type", "bridge", "stp_state", "0",
                     "forward_delay", "0")
            self._ip("-n", sw, "link", "set", "br0", "up")
        for fw in ("a", "b"):
            ns = self.fw_ns[fw]
            self._sysctl(ns, net__ipv4__ip_forward="1", net__ipv6__conf__all__forwarding="1",
                         net__ipv4__conf__all__rp_filter="1",
                         net__ipv4__conf__default__rp_filter="1")
            for side in ("c", "p"):
                self._link(ns, f"{side}0", self.sw_ns[side], f"fw{fw}")
                self._ip("-n", self.sw_ns[side], "link", "set", f"fw{fw}", "master", "br0")
                self._addr(ns, f"{side}0", FW[fw][side], 24 if side == "c" else 25)
        self._link(self.ns.client, "eth0", self.sw_ns["c"], "host")
        self._ip("-n", self.sw_ns["c"], "link", "set", "host", "master", "br0")
        self._link(self.ns.prod, "eth0", self.sw_ns["p"], "host")
        self._ip("-n", self.sw_ns["p"], "link", "set", "host", "master", "br0")
        self._addr(self.ns.client, "eth0", CLIENT, 24)
        self._addr(self.ns.prod, "eth0", PROD, 25)
        for n, gw in ((self.ns.client, VIP_C), (self.ns.prod, VIP_P)):
            self._ip("-n", n, "route", "add", "default", "via", gw.v4)
            self._ip("-n", n, "-6", "route", "add", "default", "via", gw.v6)
        self._ip("-n", self.fw_ns["a"], "link", "add", "s0", "type", "veth", "peer", "name", "s0",
                 "netns", self.fw_ns["b"])
        for fw in ("a", "b"):
            self._ip("-n", self.fw_ns[fw], "link", "set", "s0", "up")
            self._ip("-n", self.fw_ns[fw], "addr", "add", f"{FW[fw]['s']}/30", "dev", "s0")

    # --- daemons --------------------------------------------------------------------------

    def start_conntrackd(self, fw: str) -> subprocess.Popen:
        """conntrackd (foreground) in fw from docs/examples/ha/conntrackd.conf."""
        other = "b" if fw == "a" else "a"
        d = os.path.join(self.dir, f"fw{fw}")
        os.makedirs(d, exist_ok=True)
        ignore4 = [FW[x][s].v4 for x in "ab" for s in "cp"] + [VIP_C.v4, VIP_P.v4] + \
            [FW[x]["s"] for x in "ab"]
        ignore6 = [FW[x][s].v6 for x in "ab" for s in "cp"] + [VIP_C.v6, VIP_P.v6]
        conf = os.path.join(d, "conntrackd.conf")
        with open(conf, "w") as f:
            f.write(fill("conntrackd.conf", {
                "SYNC_SRC": FW[fw]["s"], "SYNC_DST": FW[other]["s"], "IF_SYNC": "s0",
                "LOCK": os.path.join(d, "conntrackd.lock"),
                "SOCKET": os.path.join(d, "conntrackd.ctl"),
                "LOG": os.path.join(d, "conntrackd.log"),
                "IGNORE4": "\n".join(f"            IPv4_address {a}" for a in ignore4),
                "IGNORE6": "\n".join(f"            IPv6_address {a}" for a in ignore6)}))
        self.ctd_conf[fw] = conf
        p = self.spawn(self.fw_ns[fw], "conntrackd", "-C", conf, name=f"conntrackd-{fw}")
        self.wait_for(lambda: self.ctd(fw, "-s", check=False) != "", 10,
                      f"conntrackd on fw{fw}")
        self.conntrackd[fw] = p
        return p

    def ctd(self, fw: str, *args: str, check: bool = True) -> str:
        """conntrackd -C CONF ARGS in fw (client mode, talks to the daemon's unix socket)."""
        return self.sh(self.fw_ns[fw], "conntrackd", "-C", self.ctd_conf[fw], *args, check=check,
                       timeout=20)

    def start_keepalived(self, fw: str) -> subprocess.Popen:
        """keepalived (foreground, console log) in fw from docs/examples/ha/keepalived.conf."""
        other = "b" if fw == "a" else "a"
        d = os.path.join(self.dir, f"fw{fw}")
        os.makedirs(d, exist_ok=True)
        notify = os.path.join(d, "primary-backup.sh")
        with open(os.path.join(EXAMPLES, "primary-backup.sh")) as src, open(notify, "w") as dst:
            # The shipped script's default config path, pointed at this node's file.
            dst.write(src.read().replace("/etc/conntrackd/conntrackd.conf", self.ctd_conf[fw]))
        os.chmod(notify, 0o755)
        conf = os.path.join(d, "keepalived.conf")
        with open(conf, "w") as f:
            f.write(fill("keepalived.conf", {
                "ROUTER_ID": f"fw{fw}", "PRIORITY": FW[fw]["prio"], "IF_C": "c0", "IF_P": "p0",
                "SRC_C4": FW[fw]["c"].v4, "PEER_C4": FW[other]["c"].v4,
                "SRC_P4": FW[fw]["p"].v4, "PEER_P4": FW[other]["p"].v4,
                "VIP_C4": f"{VIP_C.v4}/24", "VIP_C6": f"{VIP_C.v6}/64",
                "VIP_P4": f"{VIP_P.v4}/25", "VIP_P6": f"{VIP_P.v6}/64",
                "NOTIFY": notify}))
        p = self.spawn(self.fw_ns[fw], "keepalived", "-n", "-l", "-D", "-f", conf,
                       "-p", os.path.join(d, "keepalived.pid"),
                       "-r", os.path.join(d, "vrrp.pid"), "-c", os.path.join(d, "checkers.pid"),
                       name=f"keepalived-{fw}")
        self.keepalived[fw] = p
        return p

    def transitions(self, fw: str) -> list[tuple[float, str]]:
        """(wall time, state) of every notify primary-backup.sh ran in fw."""
        path = self.ctd_conf[fw][:-len(".conf")] + ".transitions"
        try:
            with open(path) as f:
                return [(float(t), s) for t, s in (line.split() for line in f if line.strip())]
        except FileNotFoundError:
            return []

    def has_vip(self, fw: str) -> bool:
        out = self.sh(self.fw_ns[fw], "ip", "-o", "addr", "show", "dev", "c0")
        return f" {VIP_C.v4}/" in out and f" {VIP_C.v6}/" in out and \
            f" {VIP_P.v6}/" in self.sh(self.fw_ns[fw], "ip", "-o", "addr", "show", "dev", "p0")

    def master(self) -> Optional[str]:
        """'a' or 'b' when exactly that firewall holds every virtual address, else None."""
        held = [fw for fw in "ab" if self.has_vip(fw)]
        return held[0] if len(held) == 1 else None

    def set_links(self, fw: str, up: bool, links: Sequence[str] = ("c0", "p0")) -> None:
        for link in links:
            self._ip("-n", self.fw_ns[fw], "link", "set", link, "up" if up else "down")

    # --- acmegw and counters on one firewall ----------------------------------------------

    def run_acmegw_on(self, fw: str, acmegw: str, *args: str, protect: Sequence[str] = (),
                      wait: float = 20) -> subprocess.Popen:
        """`acmegw run` in fw (own control socket) once its rules and queue are up."""
        ns = self.fw_ns[fw]
        argv = [acmegw, "run", "--control-socket", os.path.join(self.dir, f"fw{fw}", "ctl.sock")]
        os.makedirs(os.path.join(self.dir, f"fw{fw}"), exist_ok=True)
        for p in protect:
            argv += ["--protect", p]
        proc = self.spawn(ns, *argv, *args, name=f"acmegw-{fw}")

        def ready() -> bool:
            if proc.poll() is not None:
                raise RuntimeError(f"acmegw exited {proc.returncode}: {self.log_of(proc)[-2000:]}")
            return "rules: installed" in self.log_of(proc) and bool(self.nfqueue_rows(fw))
        self.wait_for(ready, wait, f"acmegw on fw{fw}")
        return proc

    def nfqueue_rows(self, fw: str) -> list[str]:
        out = self.sh(self.fw_ns[fw], "cat", "/proc/net/netfilter/nfnetlink_queue", check=False)
        return [line for line in out.splitlines() if line.strip()]

    def rule_packets(self, fw: str, pattern: str) -> int:
        """Sum of packet counters of fw's mangle rules (v4 + v6) whose line matches pattern."""
        total = 0
        for tool in ("iptables", "ip6tables"):
            out = self.sh(self.fw_ns[fw], tool, "-w", "-t", "mangle", "-L", "-v", "-x", "-n")
            for line in out.splitlines():
                f = line.split()
                if f and f[0].isdigit() and re.search(pattern, line):
                    total += int(f[0])
        return total

    def queued(self, fw: str) -> int:
        """Packets fw's NFQUEUE rules sent to acmegw (v4 + v6)."""
        return self.rule_packets(fw, r"\bNFQUEUE\b")

    def conntrack(self, fw: str, family: int, *filters: str) -> list[str]:
        fam = "ipv6" if family == 6 else "ipv4"
        r = subprocess.run(["ip", "netns", "exec", self.fw_ns[fw], "conntrack", "-L", "-f", fam,
                            "-p", "tcp", *filters], capture_output=True, text=True)
        return [line for line in r.stdout.splitlines() if line.startswith("tcp")]

    # --- teardown -------------------------------------------------------------------------

    def close(self) -> None:
        if self._closed:
            return
        extra = [self.fw_ns["b"], self.sw_ns["c"], self.sw_ns["p"]]
        keep = self.keep
        super().close()
        if keep:
            print(f"also remove: {' '.join(extra)}", flush=True)
            return
        for n in extra:
            _destroy_ns(n)


def mark_of(entry: str) -> int:
    m = re.search(r"\bmark=(\d+)", entry)
    return int(m[1]) if m else -1


def wait_until(cond, timeout: float, step: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(step)
    return cond()
