"""Operations: the Debian package is built from the tree, installed on
this machine, its daemon checked and run, and the package purged again,
leaving nothing behind."""

import hashlib
import imaplib
import json
import os
import poplib
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import time
import urllib.parse

from cases import TEARDOWNS, case, check, env
from harness import Postern, message, terminate, wait_port

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
                 "./usr/sbin/posternctl",
                 "./usr/share/man/man8/postern.8.gz",
                 "./usr/share/man/man8/posternctl.8.gz",
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
        rc, out = node.ctl("show", "stats")
        check(rc == 0 and "sessions imap" in out,
              f"the installed posternctl: {rc} {out}")
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



# ---------------------------------------------------------------- control

OPS_IMAP, OPS_IMAPS, OPS_POP3 = 22600, 22601, 22602
OPS_METRICS, OPS_PROM = 22609, 22610
RT_IMAP, RT_HANDLER, RT_MC = 22611, 22612, 22613
OPS_GROUP = "postern-ctl-test"
PASSWORD = "secret"


def user(n):
    return f"user{n}@example.org"


def ops_node():
    """A node of its own: sessions here are the cases' to kick."""
    if getattr(env, "ops", None) is not None:
        return env.ops
    work = os.path.join(env.work, "ops")
    os.makedirs(work, exist_ok=True)
    env.ops_audit = os.path.join(work, "audit.log")
    env.ops_conf = os.path.join(work, "ops.conf")
    cert, key = env.certs["mail.example.org"]
    subprocess.run(["groupadd", "-f", "--system", OPS_GROUP], check=True)
    with open(env.ops_conf, "w") as f:
        f.write(f'''user "_postern"
chroot "/var/empty"
node "ops"
audit file "{env.ops_audit}"
control group "{OPS_GROUP}"
metrics listen on {HOST} port {OPS_METRICS}
tls keypair "mail.example.org" {{
\tcertificate "{cert}"
\tkey "{key}"
}}
listen on {HOST} port {OPS_IMAP} imap
listen on {HOST} port {OPS_IMAPS} imap tls keypair "mail.example.org"
listen on {HOST} port {OPS_POP3} pop3
upstream "one" {{
\thost {HOST}
\timap port {env.dv1_imap}
\tpop3 port {env.dv1_pop3}
}}
route default to "one"
''')
    env.ops = Postern(env.binary, env.ops_conf,
                      os.path.join(work, "ops.log"),
                      [OPS_IMAP, OPS_IMAPS, OPS_POP3, OPS_METRICS])
    env.ops.start()

    def stop():
        env.ops.stop()
        subprocess.run(["groupdel", OPS_GROUP], stderr=subprocess.DEVNULL)
    TEARDOWNS.append(stop)
    return env.ops


def imap_session(port=OPS_IMAP, n=1, tls=False):
    if tls:
        ctx = ssl.create_default_context(
            cafile=env.certs["mail.example.org"][0])
        c = _imaps(port, ctx)
    else:
        c = imaplib.IMAP4(HOST, port, timeout=10)
    typ, _ = c.login(user(n), PASSWORD)
    check(typ == "OK", f"login of {user(n)} failed")
    c.select("INBOX")
    return c


def _imaps(port, ctx):
    """IMAPS to 127.0.0.1 with the SNI name the certificate carries."""
    class SNI(imaplib.IMAP4_SSL):
        def _create_socket(self, timeout):
            sock = socket.create_connection((HOST, port), timeout)
            return self.ssl_context.wrap_socket(
                sock, server_hostname="mail.example.org")
    return SNI(HOST, port, ssl_context=ctx, timeout=10)


def session_rows(out):
    """The rows of show sessions: {user: [id, proto, state, ...]}."""
    rows = {}
    for line in out.splitlines()[1:]:
        f = line.split()
        if len(f) >= 10:
            rows.setdefault(f[3], []).append(f)
    return rows


def closed_by_server(c, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            c.noop()
        except (imaplib.IMAP4.abort, OSError, EOFError):
            return True
        time.sleep(0.2)
    return False


def audit_records(path):
    try:
        with open(path) as f:
            return [json.loads(line) for line in f if line.strip()]
    except FileNotFoundError:
        return []


def as_nobody(groups, *cmd):
    """Run cmd as nobody with exactly these supplementary groups."""
    args = ["setpriv", "--reuid=65534", "--regid=65534"]
    args += [f"--groups={','.join(groups)}"] if groups else \
        ["--clear-groups"]
    r = subprocess.run(args + list(cmd), stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=30)
    return r.returncode, r.stdout.decode("utf-8", "replace")


@case("posternctl-shows-sessions-kicks-them-and-checks-who-asks")
def _():
    node = ops_node()
    c1 = imap_session(n=1)
    c3 = imap_session(OPS_IMAPS, n=3, tls=True)
    p5 = poplib.POP3(HOST, OPS_POP3, timeout=10)
    p5.user(user(5))
    p5.pass_(PASSWORD)
    try:
        rc, out = node.ctl("show", "sessions")
        check(rc == 0, f"show sessions: {rc} {out}")
        rows = session_rows(out)
        for u, proto in ((user(1), "imap"), (user(3), "imap"),
                         (user(5), "pop3")):
            check(u in rows and rows[u][0][1] == proto and
                  rows[u][0][2] == "relaying" and rows[u][0][5] == "one",
                  f"{u} not shown relaying {proto} to one: {out}")
        check(rows[user(3)][0][6] == "tls:mail.example.org",
              f"IMAPS session without its SNI: {out}")
        check(rows[user(1)][0][6] == "-", f"clear session shown TLS: {out}")
        rc, out = node.ctl("show", "sessions", "user", user(3))
        check(rc == 0 and list(session_rows(out)) == [user(3)],
              f"show sessions user: {out}")
        rc, out = node.ctl("show", "sessions", "client", "127.0.0.2")
        check(rc == 0 and session_rows(out) == {},
              f"sessions from an address nobody used: {out}")
        rc, out = node.ctl("show", "stats")
        check(rc == 0 and "sessions imap pre-auth 0 relaying 2" in out and
              "sessions pop3 pre-auth 0 relaying 1" in out,
              f"show stats: {out}")
        # a member of the control group may look, not change
        rc, out = as_nobody([OPS_GROUP], node.ctl_binary, "-s",
                          node.control, "show", "sessions")
        check(rc == 0 and user(1) in out, f"group member, show: {rc} {out}")
        rc, out = as_nobody([OPS_GROUP], node.ctl_binary, "-s",
                          node.control, "kick", "user", user(1))
        check(rc != 0 and "permission denied" in out,
              f"group member could kick: {rc} {out}")
        rc, out = as_nobody([], node.ctl_binary, "-s",
                          node.control, "show", "stats")
        check(rc != 0 and "permission denied" in out.lower(),
              f"a stranger was answered: {rc} {out}")
        c1.noop()
        # root kicks: the client sees the connection close
        rc, out = node.ctl("kick", "user", user(1))
        check(rc == 0 and "1 session ended" in out, f"kick user: {out}")
        check(closed_by_server(c1), "kicked IMAP session still open")
        pop_id = session_rows(node.ctl("show", "sessions")[1])[user(5)][0][0]
        rc, out = node.ctl("kick", "session", pop_id)
        check(rc == 0 and "1 session ended" in out, f"kick session: {out}")
        try:
            p5.stat()
            check(False, "kicked POP3 session still answers")
        except (poplib.error_proto, OSError, EOFError):
            pass
        rc, out = node.ctl("kick", "user", "nobody@example.org")
        check(rc == 1 and "0 sessions ended" in out,
              f"kicking no one succeeded: {rc} {out}")
        c3.noop()           # the other sessions are untouched
        kicked = [a for a in audit_records(env.ops_audit)
                  if a.get("result") == "kicked"]
        check(sorted(a["user"] for a in kicked) == [user(1), user(5)],
              f"audit of the kicks: {kicked}")
    finally:
        for c in (c1, c3):
            try:
                c.logout()
            except Exception:  # noqa: BLE001
                pass
        try:
            p5.quit()
        except Exception:  # noqa: BLE001
            pass


@case("control-socket-hostile-input-answered-and-changes-nothing")
def _():
    node = ops_node()
    c = imap_session(n=7)
    try:
        hdr = struct.Struct("=IHHII")   # type, len, flags, peerid, pid
        bad = [b"garbage that is no frame at all\n" * 4,
               hdr.pack(9999, 16 + 4, 0, 0, os.getpid()) + b"abcd",
               hdr.pack(1, 16, 0, 0, os.getpid()),
               hdr.pack(1, 0xffff, 0, 0, os.getpid()) + b"x" * 4096,
               b"\x00" * 70000]
        for data in bad:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                s.settimeout(10)
                s.connect(node.control)
                try:
                    s.sendall(data)
                    got = b""
                    while True:
                        more = s.recv(65536)
                        if not more:
                            break
                        got += more
                except (BrokenPipeError, ConnectionResetError):
                    got = b"(reset)"
            check(got == b"(reset)" or b"posternctl:" in got or got == b"",
                  f"answer to {data[:20]!r}: {got[:200]!r}")
        # a request the tool would never build: control bytes, no argument
        for words in (["kick", "user", "a\tb"], ["unblock", "ip", "nonsense"],
                      ["kick", "session", "xyz"]):
            rc, out = node.ctl(*words)
            check(rc != 0, f"{words} accepted: {out}")
        check(node.proc.poll() is None, "postern died")
        c.noop()
        rc, out = node.ctl("show", "sessions", "user", user(7))
        check(rc == 0 and user(7) in out,
              f"control socket unusable after hostile input: {rc} {out}")
    finally:
        c.logout()


@case("posternctl-log-reopen-and-reload-keeps-running-on-a-bad-file")
def _():
    node = ops_node()
    moved = env.ops_audit + ".1"
    os.rename(env.ops_audit, moved)
    rc, out = node.ctl("log", "reopen")
    check(rc == 0 and "reopened" in out, f"log reopen: {rc} {out}")
    c = imap_session(n=9)
    c.logout()
    check(any(a.get("user") == user(9) for a in
              audit_records(env.ops_audit)),
          "no record in the reopened audit file")
    with open(env.ops_conf) as f:
        good = f.read()
    lines = good.splitlines()
    try:
        with open(env.ops_conf, "w") as f:
            f.write("\n".join(lines[:3] + ["listen on nowhere port x imap"] +
                              lines[3:]) + "\n")
        rc, out = node.ctl("reload")
        check(rc == 1 and f"{env.ops_conf}:4:" in out,
              f"reload of a bad file: {rc} {out}")
    finally:
        with open(env.ops_conf, "w") as f:
            f.write(good)
    check(node.proc.poll() is None, "postern died on a bad reload")
    c = imap_session(n=9)
    c.logout()


@case("posternctl-route-flush-and-unblock-reach-memcached")
def _():
    from lookup import LookupHandler
    from harness import Memcached
    routes = {user(n): (HOST, {"imap": env.dv1_imap}, None)
              for n in (11, 13, 15)}
    work = os.path.join(env.work, "ops")
    os.makedirs(work, exist_ok=True)
    mc = Memcached(RT_MC, os.path.join(work, "rt-memcached.log"))
    handler = LookupHandler(RT_HANDLER, routes)
    conf = os.path.join(work, "rt.conf")
    with open(conf, "w") as f:
        f.write(f'''user "_postern"
chroot "/var/empty"
node "rt"
listen on {HOST} port {RT_IMAP} imap
lookup handler "http://{HOST}:{RT_HANDLER}/lookup"
lookup timeout 2000
upstream network "127.0.0.1/32" port {env.dv1_imap}
memcache server "{HOST}" port {RT_MC}
throttle store memcache
throttle failures ip-user 2 per 600
throttle user 1000 per 600
upstream "one" {{
\thost {HOST}
\timap port {env.dv1_imap}
}}
route default to "one"
''')
    node = Postern(env.binary, conf, os.path.join(work, "rt.log"), [RT_IMAP])
    handler.start()
    try:
        mc.start()
        node.start()

        def login(n, password=PASSWORD):
            c = imaplib.IMAP4(HOST, RT_IMAP, timeout=10)
            try:
                return c.login(user(n), password)[0] == "OK"
            except imaplib.IMAP4.error:
                return False
            finally:
                try:
                    c.logout()
                except Exception:  # noqa: BLE001
                    pass

        for n in (11, 13):
            check(login(n) and login(n), f"{user(n)} cannot log in")
            check(handler.count(user(n)) == 1,
                  f"{user(n)}: handler asked {handler.count(user(n))} times"
                  " (the cache should answer the second login)")
        rc, out = node.ctl("route", "flush", user(11))
        check(rc == 0 and "forgotten" in out, f"route flush user: {out}")
        check(login(11) and handler.count(user(11)) == 2,
              "the flushed route was not looked up again")
        check(login(13) and handler.count(user(13)) == 1,
              "another user's route was flushed too")
        rc, out = node.ctl("route", "flush", "all")
        check(rc == 0 and "every cached route" in out,
              f"route flush all: {out}")
        check(login(13) and handler.count(user(13)) == 2,
              "route flush all left a cached route")
        check(login(13) and handler.count(user(13)) == 2,
              "routes are not cached again after route flush all")
        # two failures lock the address+user out; unblock opens it
        check(not login(15, "wrong") and not login(15, "wrong"),
              "a wrong password was accepted")
        check(not login(15), "no lock-out after the failure limit")
        rc, out = node.ctl("unblock", "user", user(15))
        check(rc == 0 and "reset on this node" in out and
              "sent to memcached for deletion" in out, f"unblock user: {out}")
        check(login(15), "still locked out after unblock user")
        check(not login(15, "wrong") and not login(15, "wrong") and
              not login(15), "no lock-out the second time")
        rc, out = node.ctl("unblock", "ip", HOST)
        check(rc == 0, f"unblock ip: {out}")
        check(login(15), "still locked out after unblock ip")
    finally:
        node.stop()
        handler.stop()
        mc.stop()


def http_get(port, path, method="GET"):
    with socket.create_connection((HOST, port), timeout=10) as s:
        s.sendall(f"{method} {path} HTTP/1.1\r\nHost: x\r\n"
                  "Connection: close\r\n\r\n".encode())
        data = b""
        while True:
            more = s.recv(65536)
            if not more:
                break
            data += more
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), head.decode(), body.decode()


def metric(text, name, **labels):
    """The value of one series in an exposition, or None."""
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    series = f"{name}{{{want}}}" if labels else name
    for line in text.splitlines():
        if line.startswith(series + " "):
            return float(line.split()[-1])
    return None


@case("metrics-promtool-accepts-them-and-prometheus-scrapes-postern")
def _():
    node = ops_node()
    c = imap_session(n=17)
    c.logout()
    status, head, body = http_get(OPS_METRICS, "/metrics")
    check(status == 200 and "text/plain; version=0.0.4" in head,
          f"metrics answer: {head}")
    r = subprocess.run(["promtool", "check", "metrics"], input=body,
                       capture_output=True, text=True, timeout=60)
    check(r.returncode == 0, f"promtool check metrics: {r.stdout}{r.stderr}")
    ok = metric(body, "postern_login_attempts_total", protocol="imap",
                result="ok")
    check(ok is not None and ok >= 1, f"no imap login counted: {ok}")
    check(metric(body, "postern_tls_handshakes_total",
                 listener=f"imaps:{OPS_IMAPS}") is not None,
          "no TLS handshake counter for the IMAPS listener")
    check(metric(body, "postern_scrape_incomplete") == 0,
          "a child did not answer the scrape")
    for path, method, want in (("/", "GET", 404), ("/metrics", "POST", 405),
                               ("/metrics/../x", "GET", 404)):
        got = http_get(OPS_METRICS, path, method)[0]
        check(got == want, f"{method} {path}: {got}, not {want}")
    with socket.create_connection((HOST, OPS_METRICS), timeout=10) as s:
        s.sendall(b"GET /" + b"a" * 5000)
        check(b" 431 " in s.recv(4096), "an endless request was not refused")
    # a real Prometheus on loopback scrapes postern and answers a query
    work = os.path.join(env.work, "prometheus")
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    conf = os.path.join(work, "prometheus.yml")
    with open(conf, "w") as f:
        f.write("global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
                "scrape_configs:\n  - job_name: postern\n"
                "    static_configs:\n"
                f"      - targets: ['{HOST}:{OPS_METRICS}']\n")
    log = open(os.path.join(work, "prometheus.log"), "wb")
    prom = subprocess.Popen(
        ["prometheus", f"--config.file={conf}",
         f"--storage.tsdb.path={work}/data",
         f"--web.listen-address={HOST}:{OPS_PROM}"],
        stdout=log, stderr=subprocess.STDOUT, cwd=work)
    try:
        query = ('postern_login_attempts_total{protocol="imap",'
                 'result="ok"}')
        deadline = time.monotonic() + 90
        value = None
        while time.monotonic() < deadline and value is None:
            time.sleep(1)
            check(prom.poll() is None, "prometheus exited")
            try:
                status, _, body = http_get(
                    OPS_PROM, "/api/v1/query?query=" +
                    urllib.parse.quote(query))
            except OSError:
                continue
            if status != 200:
                continue
            result = json.loads(body)["data"]["result"]
            if result:
                value = float(result[0]["value"][1])
        check(value is not None and value >= 1,
              f"prometheus never had the series: {value}")
    finally:
        terminate(prom)
        log.close()


# ---------------------------------------------------------------- reload

RL_IMAP, RL_IMAPS, RL_POP3, RL_HTTP, RL_EXTRA = 22630, 22631, 22632, 22633, \
    22634
RL_IDLE, RL_IDLE_TLS, RL_POP, RL_FETCH, RL_DOWN, RL_WS = 160, 12, 12, 6, 5, 5
BIG_MSG = 3 << 20
DOWN_BYTES = 48 << 20

WS_HELD = r"""
import asyncio, sys, websockets
async def main():
    async with websockets.connect(sys.argv[1], max_size=None) as ws:
        print("connected", flush=True)
        await asyncio.get_running_loop().run_in_executor(
            None, sys.stdin.readline)
        for m in ("after reloads", "y" * 100000):
            await ws.send(m)
            assert await ws.recv() == m
    print("echo ok", flush=True)
asyncio.run(main())
"""


def reload_conf(path, cert, key, extra_listener):
    import web
    lines = ['user "_postern"', 'chroot "/var/empty"', 'node "reload"',
             f'audit file "{os.path.dirname(path)}/audit.log"',
             "throttle failures ip-user 2 per 600",
             "throttle user 100000 per 600", "throttle ip 100000 per 600",
             'tls keypair "mail.example.org" {',
             f'\tcertificate "{cert}"', f'\tkey "{key}"', "}",
             f"listen on {HOST} port {RL_IMAP} imap",
             f'listen on {HOST} port {RL_IMAPS} imap tls keypair '
             '"mail.example.org"',
             f"listen on {HOST} port {RL_POP3} pop3",
             f"listen on {HOST} port {RL_HTTP} http"]
    if extra_listener:
        lines.append(f"listen on {HOST} port {RL_EXTRA} imap")
    lines += ['upstream "one" {', f"\thost {HOST}",
              f"\timap port {env.dv1_imap}", f"\tpop3 port {env.dv1_pop3}",
              f"\thttp port {web.BACK1}", "}",
              'upstream "ws" {', f"\thost {HOST}",
              f"\thttp port {web.WSBACK}", "}",
              'route user "ws@example.org" to "ws"',
              'route default to "one"', 'http fallback to "one"']
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


def tls_fingerprint(port):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with socket.create_connection((HOST, port), timeout=10) as s:
        with ctx.wrap_socket(s, server_hostname="mail.example.org") as t:
            return hashlib.sha256(t.getpeercert(binary_form=True)).digest()


class Idler:
    """An IMAP session in IDLE through postern, raw."""

    def __init__(self, n, tls=False):
        from harness import Raw
        self.c = Raw(RL_IMAPS if tls else RL_IMAP, timeout=30)
        if tls:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            self.c.sock = ctx.wrap_socket(self.c.sock,
                                          server_hostname="mail.example.org")
        self.c.line()
        self.c.send(b'a LOGIN "%s" "%s"\r\n' % (user(n).encode(),
                                                 PASSWORD.encode()))
        check(self.c.until_tag(b"a")[-1].startswith(b"a OK"),
              f"login of {user(n)}")
        self.c.send(b"b SELECT INBOX\r\n")
        self.c.until_tag(b"b")
        self.c.send(b"c IDLE\r\n")
        check(self.c.line().startswith(b"+"), "no IDLE continuation")

    def finish(self):
        self.c.send(b"DONE\r\n")
        ok = self.c.until_tag(b"c")[-1].startswith(b"c OK")
        self.c.send(b"d LOGOUT\r\n")
        self.c.until_tag(b"d")
        self.c.close()
        return ok


@case("reload-ten-times-under-load-cuts-no-session-new-cert-and-ports")
def _():
    import threading
    import web
    from harness import make_cert
    web.start_web()
    work = os.path.join(env.work, "reload")
    shutil.rmtree(work, ignore_errors=True)
    for sub in ("a", "b"):
        os.makedirs(os.path.join(work, sub))
    cert, key = make_cert(os.path.join(work, "a"), "mail.example.org")
    conf = os.path.join(work, "reload.conf")
    reload_conf(conf, cert, key, False)
    node = Postern(env.binary, conf, os.path.join(work, "reload.log"),
                   [RL_IMAP, RL_IMAPS, RL_POP3, RL_HTTP])
    node.start()
    TEARDOWNS.append(node.stop)
    # a big message to fetch again and again, put straight into Dovecot
    d = imaplib.IMAP4(HOST, env.dv1_imap)
    d.login(user(17), PASSWORD)
    big = message(BIG_MSG, seed=77)
    d.append("INBOX", None, None, big)
    d.logout()
    want_big = hashlib.sha256(big).hexdigest()
    errors = []
    stop = threading.Event()
    # counters handed over: two failures now, refused after the reloads
    for _ in range(2):
        c = imaplib.IMAP4(HOST, RL_IMAP, timeout=10)
        try:
            c.login(user(19), "wrong")
        except imaplib.IMAP4.error:
            pass
        c.logout()

    def fetch_session():
        # logged in one at a time: attempts in flight count against
        # "throttle failures ip-user" until they succeed
        c = imaplib.IMAP4(HOST, RL_IMAP, timeout=60)
        c.login(user(17), PASSWORD)
        c.select("INBOX")
        return c

    def fetcher(c):
        try:
            n = 0
            while not stop.is_set() or n == 0:
                typ, data = c.search(None, "LARGER", str(BIG_MSG // 2))
                num = data[0].split()[-1]
                typ, data = c.fetch(num, "(BODY.PEEK[])")
                got = hashlib.sha256(data[0][1]).hexdigest()
                if typ != "OK" or got != want_big:
                    errors.append(f"fetch {n}: {typ} {got}")
                    return
                n += 1
            c.logout()
        except Exception as e:  # noqa: BLE001
            errors.append(f"fetcher: {e!r}")

    def downloader():
        try:
            with socket.create_connection((HOST, RL_HTTP), timeout=60) as s:
                s.sendall(b"GET /home/dl@example.org/big/%d HTTP/1.1\r\n"
                          b"Host: h\r\n\r\n" % DOWN_BYTES)
                f = s.makefile("rb")
                head = b""
                while not head.endswith(b"\r\n\r\n"):
                    head += f.readline()
                h = hashlib.sha256()
                left = DOWN_BYTES
                while left:
                    chunk = f.read(min(left, 1 << 20))
                    if not chunk:
                        errors.append(f"download cut with {left} left")
                        return
                    h.update(chunk)
                    left -= len(chunk)
                    time.sleep(0.05)        # a slow reader: spans reloads
                if h.hexdigest() != web.big_sha(DOWN_BYTES):
                    errors.append("download corrupted")
        except Exception as e:  # noqa: BLE001
            errors.append(f"downloader: {e!r}")

    idlers, pops, wss, threads = [], [], [], []
    try:
        for i in range(RL_IDLE):
            idlers.append(Idler(1 + 2 * (i % 9)))
        for i in range(RL_IDLE_TLS):
            idlers.append(Idler(1 + 2 * (i % 9), tls=True))
        for i in range(RL_POP):
            p = poplib.POP3(HOST, RL_POP3, timeout=30)
            p.user(user(1 + 2 * (i % 9)))
            p.pass_(PASSWORD)
            pops.append(p)
        for i in range(RL_WS):
            w = subprocess.Popen(
                [web.DEBIAN_PY, "-c", WS_HELD,
                 f"ws://{HOST}:{RL_HTTP}/home/ws@example.org/"],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            wss.append(w)
            check(w.stdout.readline().strip() == "connected",
                  "websocket did not connect")
        threads = [threading.Thread(target=fetcher, args=(fetch_session(),))
                   for _ in range(RL_FETCH)]
        threads += [threading.Thread(target=downloader)
                    for _ in range(RL_DOWN)]
        for t in threads:
            t.start()
        rc, out = node.ctl("show", "stats")
        check(rc == 0, f"show stats: {out}")
        old_fp = tls_fingerprint(RL_IMAPS)
        # a keep-alive exchange under way at the first reload: its answer
        # tells the client to come back on a new connection
        late = socket.create_connection((HOST, RL_HTTP), timeout=30)
        late.sendall(b"GET /home/late@example.org/x?poll=late HTTP/1.1\r\n"
                     b"Host: h\r\n\r\n")
        time.sleep(0.5)
        for r in range(10):
            if r == 5:          # a renewed certificate on disk
                new_cert, new_key = make_cert(os.path.join(work, "b"),
                                              "mail.example.org")
                shutil.copy(new_cert, cert)
                shutil.copy(new_key, key)
            reload_conf(conf, cert, key, r % 2 == 0)
            rc, out = node.ctl("reload")
            check(rc == 0, f"reload {r}: {rc} {out}")
            if r == 4:          # a bad file in between changes nothing
                with open(conf, "a") as f:
                    f.write("listen on nowhere port x imap\n")
                rc, out = node.ctl("reload")
                check(rc == 1 and f"{conf}:" in out,
                      f"bad reload: {rc} {out}")
            if r == 0:
                answer = b""
                while b"late!" not in answer:
                    more = late.recv(4096)
                    check(more, f"the late answer was cut: {answer!r}")
                    answer += more
                check(b"\r\nConnection: close\r\n" in answer,
                      f"no Connection: close while draining: {answer!r}")
                late.close()
            if r % 2 == 0:
                with socket.create_connection((HOST, RL_EXTRA),
                                              timeout=10) as s:
                    check(s.recv(64).startswith(b"* OK"),
                          "the added listener does not answer")
            time.sleep(0.3)
        stop.set()
        # the last reload removed the extra listener
        try:
            socket.create_connection((HOST, RL_EXTRA), timeout=5).close()
            check(False, "the removed listener still accepts")
        except ConnectionRefusedError:
            pass
        # every worker accepting there serves the new one
        for _ in range(12):
            check(tls_fingerprint(RL_IMAPS) != old_fp,
                  "the renewed certificate is not served")
        for t in threads:
            t.join(120)
        check(not errors, f"sessions disturbed: {errors[:5]}")
        for w in wss:
            w.stdin.write("go\n")
            w.stdin.flush()
            check(w.stdout.readline().strip() == "echo ok" and
                  w.wait(30) == 0, "a websocket did not survive")
        for p in pops:
            check(p.stat()[0] >= 0, "POP3 STAT")
            p.quit()
        for i, c in enumerate(idlers):
            check(c.finish(), f"IDLE session {i} did not survive")
        idlers = []
        # the counts of the first generation's authproc were handed on
        c = imaplib.IMAP4(HOST, RL_IMAP, timeout=10)
        try:
            c.login(user(19), PASSWORD)
            check(False, "throttle counters lost in the reloads")
        except imaplib.IMAP4.error:
            pass
        last = [a for a in audit_records(os.path.join(work, "audit.log"))
                if a.get("user") == user(19)][-1]
        check(last["result"] == "throttled-user",
              f"user19 refused for another reason: {last}")
        c = imaplib.IMAP4(HOST, RL_IMAP, timeout=10)
        check(c.login(user(1), PASSWORD)[0] == "OK", "user1 refused")
        c.logout()
        # and with every session gone, the old generations exit
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and len(node._children()) > 3:
            time.sleep(0.5)
        check(len(node._children()) == 3,
              f"old generations still running: {node._children()}")
        log = node.log_text()
        check(log.count("drained") >= 30 and
              "terminated by signal" not in log,
              "old generations did not exit cleanly: " +
              "\n".join(ln for ln in log.splitlines()
                        if "signal" in ln or "drained" in ln)[-1500:])
    finally:
        stop.set()
        for w in wss:
            terminate(w)
        for c in idlers:
            try:
                c.c.close()
            except Exception:  # noqa: BLE001
                pass
        node.stop()


RB_IMAP = 22640


@case("reload-while-children-restart-and-back-to-back")
def _():
    work = os.path.join(env.work, "reload2")
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    conf = os.path.join(work, "rb.conf")
    with open(conf, "w") as f:
        f.write(f'''user "_postern"
chroot "/var/empty"
listen on {HOST} port {RB_IMAP} imap
upstream "one" {{
\thost {HOST}
\timap port {env.dv1_imap}
}}
route default to "one"
''')
    node = Postern(env.binary, conf, os.path.join(work, "rb.log"),
                   [RB_IMAP])
    node.start()
    try:
        c = imaplib.IMAP4(HOST, RB_IMAP, timeout=10)
        check(c.login(user(1), PASSWORD)[0] == "OK", "login")
        # every child dead and waiting to be restarted, then a reload
        for pid, _ in node._children():
            os.kill(pid, 9)
        rc, out = node.ctl("reload")
        check(rc == 0, f"reload with children restarting: {rc} {out}")
        for i in range(6):
            rc, out = node.ctl("reload")
            check(rc == 0, f"back-to-back reload {i}: {rc} {out}")
        check(node.proc.poll() is None, "the parent died")
        deadline = time.monotonic() + 30
        ok = False
        while time.monotonic() < deadline and not ok:
            try:
                d = imaplib.IMAP4(HOST, RB_IMAP, timeout=10)
                ok = d.login(user(3), PASSWORD)[0] == "OK"
                d.logout()
            except (imaplib.IMAP4.error, OSError):
                time.sleep(0.3)
        check(ok, "no login after the reloads")
        try:
            c.logout()
        except (imaplib.IMAP4.abort, OSError):
            pass    # killed with its relay, as a crash does
        log = node.log_text()
        check("double free" not in log and "AddressSanitizer" not in log,
              "the parent's memory: " + log[-1500:])
    finally:
        node.stop()


SB_IMAP, SB_FAKE = 22641, 22642
SB_SESSIONS = 2000


def blocked_in_pipe_write(pid, timeout=30.0):
    """Whether pid comes to sleep in write(2) on a full pipe."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/wchan") as f:
                if "pipe_write" in f.read():
                    return True
        except OSError:
            return False
        time.sleep(0.05)
    return False


@case("sigterm-during-a-burst-of-session-ends-stops-at-once")
def _():
    """Two thousand sessions end at once while the parent is held
    (SIGSTOP), so relay's lines about them fill the pipe to the parent
    and relay blocks writing; then the parent is told to stop.  It used
    to stop reading its children while it waited for them: relay never
    got to its SIGTERM, was killed after three seconds and its last lines
    were lost."""
    work = os.path.join(env.work, "stopburst")
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    tools = os.path.join(os.path.dirname(env.binary), "bench")
    conf = os.path.join(work, "sb.conf")
    audit = os.path.join(work, "audit.log")
    with open(conf, "w") as f:
        f.write(f'''user "_postern"
chroot "/var/empty"
audit file "{audit}"
limit connections-per-ip 0
limit sessions 100000
throttle ip 1000000 per 60
throttle user 1000000 per 60
throttle failures ip 1000000 per 60
throttle failures ip-user 1000000 per 60
listen on {HOST} port {SB_IMAP} imap
upstream "fake" {{
\thost {HOST}
\timap port {SB_FAKE}
}}
route default to "fake"
''')
    fake = subprocess.Popen([os.path.join(tools, "fakebackend"), "-q",
                             "-i", str(SB_FAKE)],
                            stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    node = Postern(env.binary, conf, os.path.join(work, "sb.log"),
                   [SB_IMAP], verbose=False)
    lg = None
    try:
        check(wait_port(HOST, SB_FAKE, 10), "fakebackend did not start")
        node.start()
        kids = node.children()
        lg = subprocess.Popen([os.path.join(tools, "loadgen"), "-m", "idle",
                               "-h", HOST, "-p", str(SB_IMAP), "-u", "user",
                               "-w", "pw", "-n", str(SB_SESSIONS), "-c",
                               "64", "-d", "1", "-M", "-q"],
                              stdout=subprocess.PIPE, text=True)
        ready = ""
        for line in lg.stdout:
            if line.startswith("IDLE_READY"):
                ready = line
                break
        check(f"held={SB_SESSIONS} " in ready,
              f"loadgen did not hold its sessions: {ready}")
        os.kill(node.pid, signal.SIGSTOP)
        try:
            out = lg.communicate(timeout=120)[0]
            check(f"held={SB_SESSIONS} " in out,
                  f"sessions lost while held: {out[-300:]}")
            check(blocked_in_pipe_write(kids["relay"]),
                  "relay never blocked on its log pipe")
            os.kill(node.pid, signal.SIGTERM)
        finally:
            os.kill(node.pid, signal.SIGCONT)
        rc = node.proc.wait(30)
        check(rc == 0, f"exit status {rc}")
        for role, pid in kids.items():
            check(not os.path.exists(f"/proc/{pid}"), f"{role} still running")
        log = node.log_text()
        killed = [ln for ln in log.splitlines() if "did not stop" in ln]
        check(not killed, f"children killed at shutdown: {killed}")
        tail = log[log.rindex("parent: received signal 15"):].splitlines()
        check(tail and tail[-1] == "parent: postern stopped",
              f"the log does not end with the stop: {tail[-3:]}")
        torn = [ln for ln in log.splitlines() if ln.split(":", 1)[0] not in
                ("postern", "parent", "relay", "authproc", "tlsproc")]
        check(not torn, f"torn log lines: {torn[:3]}")
        logins = [a for a in audit_records(audit)
                  if a.get("result") == "ok"]
        check(len(logins) == SB_SESSIONS,
              f"{len(logins)} audit records of {SB_SESSIONS} logins")
    finally:
        if lg is not None and lg.poll() is None:
            lg.kill()
            lg.wait()
        node.stop()
        terminate(fake)
