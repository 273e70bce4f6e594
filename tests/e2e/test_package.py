#!/usr/bin/env python3
"""e2e: the Debian package (docs/packaging.md) builds, is lintian-clean and installs.

  build: `cpack -G DEB` in the build tree of --acmegw (acmegw(8) made from the --help texts)
  package: name acmegw_VERSION_amd64.deb, computed shlibs Depends plus iptables, conntrack,
           adduser; the file list; /etc/acmegw/acmegw.toml in the conffiles
  lintian: no error and no warning
  install with `apt-get install ./acmegw_*.deb` into a throwaway root: an overlay of this
  machine's / (the build host; acmegw itself not installed) with a tmpfs on top, in a private
  mount namespace, so nothing outside it changes. debootstrap would need the mirror and minutes;
  the overlay runs the real apt, dpkg and maintainer scripts on a Debian 12 system in seconds.
  installed: system user acmegw (no login, no home), the conffile registered, `man -l` renders
  the page with the CLI's flags, `systemd-analyze verify` accepts the unit, its offline
  `systemd-analyze security` exposure is at most 4.0, the shipped config refuses to run
  (nothing protected yet), the unit is neither enabled nor started; a reinstall keeps the
  operator's edit of the conffile; purge removes the conffile and keeps the user.

Run: python3 tests/e2e/test_package.py --acmegw build/release/gateway/acmegw  (root; 77 if not)
"""

from __future__ import annotations

import ctypes
import glob
import os
import re
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from lab import Checks, parse_args, require  # noqa: E402

CONFFILE = "/etc/acmegw/acmegw.toml"
FILES = ["./usr/sbin/acmegw", "./lib/systemd/system/acmegw.service", "." + CONFFILE,
         "./usr/share/man/man8/acmegw.8.gz", "./usr/share/acmegw/hooks/certbot-auth",
         "./usr/share/acmegw/hooks/uacme-hook", "./usr/share/doc/acmegw/copyright",
         "./usr/share/doc/acmegw/changelog.gz", "./usr/share/doc/acmegw/docs/packaging.md"]
MAX_EXPOSURE = 4.0


def run(*argv: str, cwd: str | None = None, env: dict | None = None,
        timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, text=True, cwd=cwd, timeout=timeout,
                          env={**os.environ, **(env or {})})


def build_package(build: str) -> str:
    """Builds the .deb in `build` (incremental: acmegw is built already); returns its path."""
    for old in glob.glob(os.path.join(build, "acmegw_*.deb")):
        os.unlink(old)
    for argv in (["cmake", "--build", build, "--target", "acmegw", "acmegw_man"],
                 ["cpack", "-G", "DEB"]):
        r = run(*argv, cwd=build)
        if r.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)}: {r.stdout[-1500:]}{r.stderr[-1500:]}")
    debs = glob.glob(os.path.join(build, "acmegw_*_amd64.deb"))
    if len(debs) != 1:
        raise RuntimeError(f"expected one acmegw_*_amd64.deb in {build}, found {debs}")
    return debs[0]


class Root:
    """A copy-on-write view of / at self.path (overlay, upper layer on a tmpfs), mounted in
    this process's own mount namespace: it and everything installed into it vanish with the
    process; the real / is only read."""

    def __init__(self) -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.unshare(0x00020000) != 0:  # CLONE_NEWNS
            raise OSError(ctypes.get_errno(), "unshare(CLONE_NEWNS)")
        subprocess.run(["mount", "--make-rprivate", "/"], check=True)
        self.base = tempfile.mkdtemp(prefix="acmegw-pkgroot-")
        subprocess.run(["mount", "-t", "tmpfs", "tmpfs", self.base], check=True)
        for d in ("upper", "work", "root"):
            os.mkdir(os.path.join(self.base, d))
        self.path = os.path.join(self.base, "root")
        subprocess.run(["mount", "-t", "overlay", "overlay", "-o",
                        f"lowerdir=/,upperdir={self.base}/upper,workdir={self.base}/work",
                        self.path], check=True)
        subprocess.run(["mount", "-t", "proc", "proc", f"{self.path}/proc"], check=True)
        subprocess.run(["mount", "--rbind", "/dev", f"{self.path}/dev"], check=True)
        subprocess.run(["mount", "-t", "tmpfs", "tmpfs", f"{self.path}/tmp"], check=True)

    def sh(self, *argv: str, cwd: str = "/") -> subprocess.CompletedProcess:
        """argv inside the root (chroot), from directory `cwd` there."""
        return run("chroot", self.path, "sh", "-c", 'cd "$0" && exec "$@"', cwd, *argv,
                   env={"DEBIAN_FRONTEND": "noninteractive", "LC_ALL": "C.UTF-8"})

    def close(self) -> None:
        subprocess.run(["umount", "-R", self.base], check=False)
        os.rmdir(self.base)


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    require("cpack", "lintian", "dpkg-deb", "apt-get", "chroot", "mount", "man",
            "systemd-analyze", "help2man")
    build = os.path.dirname(os.path.dirname(os.path.abspath(args.acmegw)))
    checks = Checks()
    try:
        deb = build_package(build)
    except RuntimeError as e:
        checks.check("package built", False, str(e))
        checks.exit()
    checks.check("package named acmegw_VERSION_amd64.deb",
                 re.fullmatch(r"acmegw_\d+\.\d+\.\d+_amd64\.deb", os.path.basename(deb)) is not None,
                 deb)
    depends = run("dpkg-deb", "-f", deb, "Depends").stdout
    checks.check("Depends: computed shared libraries plus iptables, conntrack, adduser",
                 all(re.search(rf"(^|, ){p}\b", depends) for p in
                     ("iptables", "conntrack", "adduser", "libnetfilter-queue1", "libssl3",
                      "libc6")), depends)
    listing = run("dpkg-deb", "-c", deb).stdout
    paths = {line.split()[-1] for line in listing.splitlines() if line.strip()}
    missing = [f for f in FILES if f not in paths]
    checks.check("file list: binary, unit, conffile, man page, hooks, docs", not missing,
                 f"missing {missing}")
    conffiles = run("dpkg-deb", "--info", deb, "conffiles").stdout
    checks.check("control: /etc/acmegw/acmegw.toml is a conffile",
                 conffiles.split() == [CONFFILE], conffiles)
    lint = run("lintian", "--fail-on", "error,warning", deb)
    tags = [line for line in lint.stdout.splitlines() if re.match(r"[EW]: ", line)]
    checks.check("lintian: no errors, no warnings", lint.returncode == 0 and not tags,
                 lint.stdout + lint.stderr)

    root = Root()
    try:
        shutil.copy(deb, os.path.join(root.path, "tmp"))
        name = os.path.basename(deb)
        r = root.sh("apt-get", "install", "-y", f"./{name}", cwd="/tmp")
        checks.check("apt-get install ./acmegw_*.deb", r.returncode == 0,
                     r.stdout[-2000:] + r.stderr[-2000:])
        pw = root.sh("getent", "passwd", "acmegw").stdout.strip().split(":")
        checks.check("postinst created the system user acmegw (no login, no home)",
                     len(pw) == 7 and int(pw[2]) < 1000 and pw[5] == "/nonexistent" and
                     pw[6].endswith("nologin"), ":".join(pw))
        reg = root.sh("dpkg-query", "-W", "-f=${Conffiles}", "acmegw").stdout
        checks.check("dpkg registered the conffile", CONFFILE in reg, reg)
        man = root.sh("man", "-l", "/usr/share/man/man8/acmegw.8.gz")
        checks.check("man -l renders acmegw(8) with the CLI's flags",
                     man.returncode == 0 and "ACMEGW(8)" in man.stdout and
                     "--control-socket" in man.stdout and "COMMAND: ACMEGW STATUS" in man.stdout,
                     man.stderr[-500:])
        v = root.sh("systemd-analyze", "verify", "/lib/systemd/system/acmegw.service")
        checks.check("systemd-analyze verify accepts the unit", v.returncode == 0,
                     v.stdout + v.stderr)
        sec = root.sh("systemd-analyze", "security", "--offline=yes",
                      "/lib/systemd/system/acmegw.service")
        m = re.search(r"Overall exposure level for acmegw.service: ([\d.]+)", sec.stdout)
        checks.check(f"systemd-analyze security exposure at most {MAX_EXPOSURE}",
                     m is not None and float(m[1]) <= MAX_EXPOSURE,
                     m[0] if m else sec.stdout[-500:] + sec.stderr[-500:])
        if m:
            print(f"     ({m[0]})")
        cc = root.sh("acmegw", "check-config", CONFFILE)
        checks.check("the shipped config refuses to run until something is protected",
                     cc.returncode != 0 and "protect" in cc.stderr + cc.stdout,
                     f"exit {cc.returncode}: {cc.stdout}{cc.stderr}")
        wants = os.path.join(root.path, "etc/systemd/system/multi-user.target.wants/acmegw.service")
        checks.check("the unit is not enabled by the package", not os.path.lexists(wants))

        with open(os.path.join(root.path, CONFFILE.lstrip("/")), "a") as f:
            f.write("# operator's edit\n")
        r = root.sh("dpkg", "-i", f"/tmp/{name}")
        with open(os.path.join(root.path, CONFFILE.lstrip("/"))) as f:
            kept = "# operator's edit" in f.read()
        checks.check("reinstall (upgrade path) keeps the operator's conffile edit",
                     r.returncode == 0 and kept, r.stdout[-1000:] + r.stderr[-1000:])
        r = root.sh("apt-get", "purge", "-y", "acmegw")
        checks.check("purge removes the conffile, keeps the user",
                     r.returncode == 0 and
                     not os.path.exists(os.path.join(root.path, CONFFILE.lstrip("/"))) and
                     root.sh("getent", "passwd", "acmegw").returncode == 0,
                     r.stdout[-1000:] + r.stderr[-1000:])
    finally:
        root.close()
    checks.exit()


if __name__ == "__main__":
    main()
