"""Operations: the Debian package is built from the tree, installed on
this machine, its daemon checked and run, and the package purged again,
leaving nothing behind."""

import os
import shutil
import socket
import subprocess

from cases import case, check, env
from harness import Postern

HOST = "127.0.0.1"
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PKG_IMAP = 22300                # the installed daemon, by hand
TOP_SKIP = {".git", "run"}      # run/: this regress run's own work


def tree_copy(dst):
    """The source tree without build output, as a fresh checkout has it."""
    def ignore(path, names):
        top = os.path.samefile(path, ROOT)
        return [n for n in names if n == "__pycache__" or
                (top and (n in TOP_SKIP or n.startswith("obj"))) or
                n.endswith("-fuzz")]
    shutil.copytree(ROOT, dst, ignore=ignore, symlinks=True)


def run(*cmd, timeout=600, cwd=None):
    r = subprocess.run(list(cmd), capture_output=True, text=True,
                       timeout=timeout, stdin=subprocess.DEVNULL, cwd=cwd)
    return r.returncode, r.stdout + r.stderr


def installed():
    rc, out = run("dpkg-query", "-W", "-f=${Status}", "postern")
    return rc == 0 and "install ok installed" in out


@case("package-builds-installs-runs-and-purges-cleanly")
def _():
    check(not installed(), "a postern package is installed already: this "
          "case would replace and purge it, so it refuses to run")
    work = os.path.join(env.work, "pkg")
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    src = os.path.join(work, "postern")
    tree_copy(src)
    rc, out = run("dpkg-buildpackage", "-us", "-uc", "-b", cwd=src)
    check(rc == 0, f"dpkg-buildpackage failed: {out[-1500:]}")
    debs = [f for f in os.listdir(work) if f.startswith("postern_") and
            f.endswith(".deb")]
    check(len(debs) == 1, f"packages built: {os.listdir(work)}")
    deb = os.path.join(work, debs[0])
    rc, out = run("dpkg-deb", "-c", deb)
    for path in ("./usr/sbin/postern", "./etc/postern/postern.conf",
                 "./usr/share/man/man8/postern.8.gz",
                 "./usr/share/man/man5/postern.conf.5.gz",
                 "./lib/systemd/system/postern.service",
                 "./etc/logrotate.d/postern"):
        check(path in out, f"{path} not in the package")
    node = None
    try:
        rc, out = run("dpkg", "-i", deb)
        check(rc == 0, f"dpkg -i failed: {out[-1500:]}")
        rc, out = run("getent", "passwd", "_postern")
        check(rc == 0, "no _postern user after install")
        check(os.path.isdir("/var/empty") and not os.listdir("/var/empty"),
              "no empty chroot after install")
        check(os.path.isdir("/var/log/postern"), "no log directory")
        rc, out = run("/usr/sbin/postern", "-n", "-f",
                      "/etc/postern/postern.conf")
        check(rc == 0 and "configuration OK" in out,
              f"postern -n on the example configuration: {out}")
        rc, out = run("sh", "-n", "/var/lib/dpkg/info/postern.postinst")
        check(rc == 0, f"postinst does not parse: {out}")
        if os.path.isdir("/run/systemd/system"):
            rc, out = run("systemd-analyze", "verify",
                          "/lib/systemd/system/postern.service")
            check(rc == 0, f"the unit does not verify: {out}")
        # no systemd here (or not wanted on a test host): by hand, on
        # loopback, with the installed binary
        conf = os.path.join(work, "pkg.conf")
        with open(conf, "w") as f:
            f.write(f'listen on {HOST} port {PKG_IMAP} imap\n'
                    'greeting "installed postern"\n'
                    'upstream "nowhere" {\n\thost 127.0.0.1\n'
                    '\timap port 22399\n}\nroute default to "nowhere"\n')
        node = Postern("/usr/sbin/postern", conf,
                       os.path.join(work, "pkg.log"), [PKG_IMAP])
        node.start()
        with socket.create_connection((HOST, PKG_IMAP), timeout=10) as s:
            greeting = s.recv(512)
        check(b"installed postern" in greeting, f"greeting {greeting!r}")
    finally:
        if node is not None:
            node.stop()
        rc, out = run("dpkg", "--purge", "postern")
    check(rc == 0, f"dpkg --purge failed: {out[-1500:]}")
    check(not installed(), "postern still installed after purge")
    for path in ("/usr/sbin/postern", "/etc/postern",
                 "/lib/systemd/system/postern.service",
                 "/etc/logrotate.d/postern", "/var/log/postern"):
        check(not os.path.exists(path), f"{path} left after purge")

