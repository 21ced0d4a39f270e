#!/usr/bin/env python3
"""postern's end-to-end regress runner.

Starts two real Dovecot back-ends (odd users on the first, even on the
second), a postern routing between them, and a second, short-timeout
postern built with test hooks; then runs every case against them with
real clients and prints one PASS/FAIL line per case and a summary.
Everything listens on 127.0.0.1 high ports and is stopped at the end.
"""

import argparse
import hashlib
import imaplib
import os
import poplib
import re
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import traceback
import base64

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from backends import Dovecot  # noqa: E402
from lookup import LookupHandler  # noqa: E402
from cases import CASES, TEARDOWNS, case, check, env  # noqa: E402
from harness import (Memcached, Postern, Raw, fingerprint,  # noqa: E402
                     make_cert, message, proc_status, write_config,
                     wait_port)
import ssl  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HOST = "127.0.0.1"
IMAP, POP3 = 31143, 31110              # main postern
IMAPS, POP3S = 31993, 31995            # main postern, implicit TLS
RIMAP, RPOP3 = 31144, 31111            # main postern, "tls required"
PIMAP = 31145                          # main postern, PROXY protocol
HAPROXY = 31146                        # HAProxy in front of PIMAP
PIMAPS = 31147                         # main postern, PROXY protocol + TLS
HAPROXY_TLS = 31148                    # HAProxy in front of PIMAPS
HPIMAPS = 31149                        # test-hooks postern, PROXY + TLS
HIMAP, HPOP3 = 28143, 28110            # test-hooks postern
HIMAPS = 28993                         # test-hooks postern, TLS
TIMAP, TPOP3 = 29143, 29110            # throttling postern
TIMAPS = 29993                         # throttling postern, TLS
# every port a test binds stays below 32768, the start of the kernel's
# range for outgoing connections: one of those can hold a port a moment
LOOSE_LIMITS = ("throttle ip 1000000 per 60\nthrottle user 1000000 per 60\n"
                "throttle failures ip 1000000 per 60\n"
                "throttle failures ip-user 1000000 per 60\n"
                "limit connections-per-ip 0\nlimit attempts 0\n")
SHARED_A, SHARED_B = 24143, 24144      # two nodes sharing memcached
STUCK_MC_IMAP = 24145                  # counters in a memcached that hangs
NOOPS = 2500
ROUTE_IMAP, ROUTE_POP3 = 24243, 24210   # routed by lookup handlers
NGINX_IMAP = 24244                      # stock nginx, same handler
HANDLER1, HANDLER2 = 24780, 24781       # handler 1 is never started
HTTPS_HANDLER, HTTPS_BADNAME = 24782, 24783  # https:// lookup handlers
HTTPS_IMAP, HTTPS_WEB, HTTPS_WEBBACK = 24248, 24249, 24250
HTTPS_GONE_IMAP = 24254                 # sessions end mid-lookup
NAMED_HANDLER = 24784                   # answers upstream and pool names
NAMED_IMAP, NAMED_WEB, NAMED_WEBBACK = 24251, 24252, 24253
MULTI_IMAP = 24246                      # two relay processes
TLSW_IMAP, TLSW_IMAPS = 23143, 23193    # two tlsproc workers
POOL_IMAP = 24245                       # static routes to pools
NOPLAIN_IMAP = 24247                    # a pool whose member lacks PLAIN
NOPLAIN_PORT = 27994                    # greets without AUTH=PLAIN
NOMETHOD_PORT = 27993                   # greets without LOGIN or PLAIN
DVP1, DVP2 = (24153, 24120), (24154, 24121)
DVP2_HAPROXY = 24155
MEMCACHED = 24211  # below the ephemeral port range: bound mid-run
DV1_IMAPS = 25993                      # Dovecot 1 with its own certificate
DV1 = (25143, 25110)
DV2 = (26143, 26110)
DEAD_PORT = 27999                      # nothing listens here
SILENT_PORT = 27998                    # accepts, never greets
BIGCLOSE_PORT = 27997                  # answers BIG with 1 MB, then closes
BIGCLOSE_BYTES = 192 << 10            # fits relay's pipe: read at once
TRICKLE_PORT = 27996                   # streams slowly, reading nothing
TRICKLE_TLS_PORT = 27995               # the same over TLS
BULK_TLS_PORT = 27992                  # TLS: FETCH answers 8 MB, then BYE
TRICKLE_ROWS, TRICKLE_GAP = 24, 0.5    # 12 s: twice timeout stall (hooks)
NUSERS = 20
PASSWORD = "secret"

def user(n):
    return f"user{n}@example.org"


# ---------------------------------------------------------------- setup

def listen_in_thread(port, handle):
    """Accept on port in a thread and pass each connection to handle."""
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((HOST, port))
    s.listen(64)

    def loop():
        while True:
            try:
                c, _ = s.accept()
            except OSError:
                return
            handle(c)
    threading.Thread(target=loop, daemon=True).start()
    return s


def silent_upstream():
    """A server that accepts and never says a word: login must time out."""
    conns = []
    return listen_in_thread(SILENT_PORT, conns.append)


def bigclose_upstream():
    """An IMAP server that answers BIG with a large reply and a BYE, then
    closes, as a server's autologout or shutdown would."""
    def serve(c):
        with c:
            c.sendall(b"* OK [CAPABILITY IMAP4rev1 ID] bigclose\r\n")
            for line in c.makefile("rb"):
                tag = line.split(b" ", 1)[0]
                if b" BIG" not in line.upper():
                    c.sendall(tag + b" OK done\r\n")
                    continue
                row = b"* " + b"x" * 1022 + b"\r\n"
                c.sendall(row * (BIGCLOSE_BYTES // len(row)) +
                          b"* BYE closing\r\n" + tag + b" OK BIG done\r\n")
                if b" BIGRST" in line.upper():
                    # an abortive close once relay has had time to read
                    # it all: a reset instead of a FIN
                    time.sleep(1)
                    c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                 struct.pack("ii", 1, 0))
                else:
                    c.shutdown(socket.SHUT_WR)
                c.close()
                env.bigclose_closed.set()
                return

    return listen_in_thread(BIGCLOSE_PORT, lambda c: threading.Thread(
        target=serve, args=(c,), daemon=True).start())


def trickle_upstream(port, tls_ctx=None):
    """An IMAP server that answers TRICKLE with a reply streamed slowly,
    reading nothing meanwhile (as a server busy with a long FETCH reads
    no pipelined command), then says BYE and closes."""
    def serve(c):
        try:
            if tls_ctx is not None:
                c = tls_ctx.wrap_socket(c, server_side=True)
            with c:
                c.sendall(b"* OK [CAPABILITY IMAP4rev1 ID] trickle\r\n")
                for line in c.makefile("rb"):
                    tag = line.split(b" ", 1)[0]
                    if b" TRICKLE" not in line.upper():
                        c.sendall(tag + b" OK done\r\n")
                        continue
                    for i in range(TRICKLE_ROWS):
                        c.sendall(b"* %d " % i + b"t" * 1000 + b"\r\n")
                        time.sleep(TRICKLE_GAP)
                    c.sendall(tag + b" OK TRICKLE done\r\n"
                              b"* BYE closing\r\n")
                    return
        except OSError:
            return

    return listen_in_thread(port, lambda c: threading.Thread(
        target=serve, args=(c,), daemon=True).start())


def bulk_upstream(port, tls_ctx):
    """A TLS IMAP server that answers FETCH with an 8 MB literal and
    LOGOUT with BYE and OK, then closes cleanly: unlike Dovecot, which
    may drop the end of its reply over TLS when its client is slow (seen
    one session in twenty without postern), it always sends all of it,
    so a test can require every byte."""
    def serve(c):
        try:
            c = tls_ctx.wrap_socket(c, server_side=True)
            with c:
                c.sendall(b"* OK [CAPABILITY IMAP4rev1 ID] bulk\r\n")
                for line in c.makefile("rb"):
                    tag = line.split(b" ", 1)[0]
                    if b" FETCH" in line.upper():
                        body = message(8 * 1024 * 1024, seed=19)
                        c.sendall(b"* 1 FETCH (BODY[] {%d}\r\n" % len(body)
                                  + body + b")\r\n" + tag +
                                  b" OK Fetch completed\r\n")
                    elif b" LOGOUT" in line.upper():
                        c.sendall(b"* BYE Logging out\r\n" + tag +
                                  b" OK Logout completed\r\n")
                        c.unwrap()
                        return
                    else:
                        c.sendall(tag + b" OK done\r\n")
        except (OSError, ValueError):
            return

    return listen_in_thread(port, lambda c: threading.Thread(
        target=serve, args=(c,), daemon=True).start())


def setup(args):
    work = os.path.join(ROOT, "run", "regress")
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    env.work = work
    odd = [user(i) for i in range(1, NUSERS + 1, 2)]
    even = [user(i) for i in range(2, NUSERS + 1, 2)]
    certs = os.path.join(work, "certs")
    os.makedirs(certs)
    env.certs = {n: make_cert(certs, n) for n in
                 ("mail.example.org", "mail.example.net", "imap.internal")}
    os.chmod(env.certs["imap.internal"][1], 0o644)   # Dovecot reads it
    dv_cert, dv_key = env.certs["imap.internal"]
    dv_tls = (f"ssl = yes\nssl_cert = <{dv_cert}\nssl_key = <{dv_key}\n"
              "service imap-login {\n  inet_listener imaps {\n"
              f"    address = {HOST}\n    port = {DV1_IMAPS}\n"
              "    ssl = yes\n  }\n}\n")
    env.dv1 = Dovecot("regress1", os.path.join(work, "dv1"), DV1[0], DV1[1],
                      odd, password=PASSWORD, extra_conf=dv_tls)
    env.dv2 = Dovecot("regress2", os.path.join(work, "dv2"), DV2[0], DV2[1],
                      even, password=PASSWORD)
    env.dv1.start()
    env.dv2.start()
    env.silent = silent_upstream()
    env.bigclose_closed = threading.Event()
    env.bigclose = bigclose_upstream()
    tctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tctx.load_cert_chain(dv_cert, dv_key)
    env.trickle = [trickle_upstream(TRICKLE_PORT),
                   trickle_upstream(TRICKLE_TLS_PORT, tctx),
                   bulk_upstream(BULK_TLS_PORT, tctx)]

    upstreams = {"one": (HOST, DV1[0], DV1[1]),
                 "onetls": (HOST, DV1_IMAPS, 0, f'tls ca "{dv_cert}"',
                            'tls name "imap.internal"'),
                 "two": (HOST, DV2[0], DV2[1]),
                 "dead": (HOST, DEAD_PORT, DEAD_PORT),
                 "silent": (HOST, SILENT_PORT, SILENT_PORT),
                 "bigclose": (HOST, BIGCLOSE_PORT, 0),
                 "trickle": (HOST, TRICKLE_PORT, 0),
                 "trickletls": (HOST, TRICKLE_TLS_PORT, 0,
                                f'tls ca "{dv_cert}"',
                                'tls name "imap.internal"'),
                 "bulktls": (HOST, BULK_TLS_PORT, 0, f'tls ca "{dv_cert}"',
                             'tls name "imap.internal"')}
    routes = [("user", user(i), "two") for i in range(2, NUSERS + 1, 2)]
    routes += [("user", user(19), "onetls"),
               ("user", "down@example.org", "dead"),
               ("user", "slow@example.org", "silent"),
               ("user", "bigclose@example.org", "bigclose"),
               ("domain", "example.org", "one")]
    env.conf = os.path.join(work, "postern.conf")
    kp = 'keypair "mail.example.org" keypair "mail.example.net"'
    keypairs = {n: env.certs[n] for n in ("mail.example.org",
                                          "mail.example.net")}
    write_config(env.conf, [(HOST, IMAP, "imap", kp),
                            (HOST, POP3, "pop3", kp),
                            (HOST, IMAPS, "imap", "tls " + kp),
                            (HOST, POP3S, "pop3", "tls " + kp),
                            (HOST, RIMAP, "imap", kp + " tls required"),
                            (HOST, RPOP3, "pop3", kp + " tls required"),
                            (HOST, PIMAP, "imap", "proxy-protocol"),
                            (HOST, PIMAPS, "imap",
                             "tls " + kp + " proxy-protocol")],
                 upstreams, routes, keypairs=keypairs,
                 extra=f'node "regress"\naudit file "{work}/audit.log"\n'
                 'proxy-protocol trusted "127.0.0.1/32"\n' + LOOSE_LIMITS)
    env.audit = os.path.join(work, "audit.log")
    env.dv1_imap = DV1[0]
    env.dv1_pop3 = DV1[1]
    env.binary = args.postern
    env.postern = Postern(args.postern, env.conf,
                          os.path.join(work, "postern.log"),
                          [IMAP, POP3, IMAPS, POP3S, PIMAPS])
    env.postern.start()

    env.hconf = os.path.join(work, "postern-hooks.conf")
    write_config(env.hconf, [(HOST, HIMAP, "imap"), (HOST, HPOP3, "pop3"),
                             (HOST, HIMAPS, "imap",
                              'tls keypair "mail.example.org"'),
                             (HOST, HPIMAPS, "imap",
                              'tls keypair "mail.example.org" '
                              "proxy-protocol")],
                 upstreams, [("user", "slow@example.org", "silent"),
                             ("user", user(19), "onetls"),
                             ("user", "trickle@example.org", "trickle"),
                             ("user", "trickletls@example.org",
                              "trickletls"),
                             ("user", "bulk@example.org", "bulktls"),
                             ("domain", "example.org", "one")],
                 extra="timeout pre-auth 2\ntimeout login 3\n"
                       "timeout handshake 2\nlimit bad-commands 3\n"
                       "timeout linger 2\ntimeout stall 6\n"
                       "timeout pre-auth-total 4\n"
                       'proxy-protocol trusted "127.0.0.1/32"\n' + LOOSE_LIMITS,
                 keypairs={"mail.example.org": env.certs["mail.example.org"]})
    env.hooks = Postern(args.postern_testhooks, env.hconf,
                        os.path.join(work, "postern-hooks.log"),
                        [HIMAP, HPOP3, HIMAPS, HPIMAPS])
    env.hooks.start()

    env.tconf = os.path.join(work, "postern-throttle.conf")
    write_config(env.tconf, [(HOST, TIMAP, "imap"), (HOST, TPOP3, "pop3"),
                             (HOST, TIMAPS, "imap",
                              'tls keypair "mail.example.org"')],
                 upstreams, [("domain", "example.org", "one")],
                 extra=f'node "throttle"\naudit file "{work}/throttle.log"\n'
                       'throttle ip 10 per 600 message "Slow down, address"\n'
                       'throttle user 5 per 600 message "Slow down, user"\n'
                       "throttle failures ip 1000 per 600\n"
                       "throttle failures ip-user 2 per 600\n"
                       'throttle allow "127.0.0.3/32"\n'
                       'throttle allow "::1"\n'
                       "throttle delay 200 max 800\n"
                       "limit connections-per-ip 3\n"
                       "limit attempts 3\n",
                 keypairs={"mail.example.org": env.certs["mail.example.org"]})
    env.throttle = Postern(args.postern, env.tconf,
                           os.path.join(work, "postern-throttle.log"),
                           [TIMAP, TPOP3, TIMAPS])
    env.throttle.start()


def teardown():
    for fn in TEARDOWNS:
        try:
            fn()
        except Exception:   # noqa: BLE001
            traceback.print_exc()
    for name in ("throttle", "hooks", "postern"):
        p = getattr(env, name, None)
        if p is not None:
            p.stop()
    for name in ("dv1", "dv2"):
        d = getattr(env, name, None)
        if d is not None:
            d.stop()
    if getattr(env, "silent", None) is not None:
        env.silent.close()
    if getattr(env, "bigclose", None) is not None:
        env.bigclose.close()
    for t in getattr(env, "trickle", []):
        t.close()


# ---------------------------------------------------------------- helpers

def imap_raw(port=IMAP):
    c = Raw(port)
    greeting = c.line()
    check(greeting.startswith(b"* OK [CAPABILITY "), f"greeting {greeting!r}")
    return c


def imap_login_lines(c, tag, cmd):
    c.send(cmd)
    return c.until_tag(tag)


def pop3_raw(port=POP3):
    c = Raw(port)
    greeting = c.line()
    check(greeting.startswith(b"+OK"), f"greeting {greeting!r}")
    return c


def plain(u, p, z=""):
    return base64.b64encode(f"{z}\0{u}\0{p}".encode()).decode()


def imap_logged_in(c, tag=b"z"):
    """After login, a command must be answered by Dovecot, not postern."""
    c.send(tag + b" SELECT INBOX\r\n")
    lines = c.until_tag(tag)
    check(lines[-1].startswith(tag + b" OK"), f"SELECT: {lines!r}")


# ---------------------------------------------------------------- cases

@case("config-check-ok")
def _():
    r = subprocess.run([env.postern.binary, "-n", "-f", env.conf],
                       capture_output=True, text=True)
    check(r.returncode == 0 and "configuration OK" in r.stderr, r.stderr)


@case("config-check-errors-file-line")
def _():
    bad = os.path.join(env.work, "bad.conf")
    with open(bad, "w") as f:
        f.write('listen on 127.0.0.1 port 99999 imap\n'
                'route default to "nowhere"\n'
                'timeout connect 0\n')
    r = subprocess.run([env.postern.binary, "-n", "-f", bad],
                       capture_output=True, text=True)
    check(r.returncode != 0, "bad config accepted")
    for line in (f"{bad}:1:", f"{bad}:2:", f"{bad}:3:"):
        check(line in r.stderr, f"no error for {line} in {r.stderr!r}")


@case("sandbox-children-proc-status")
def _():
    import pwd
    uid = pwd.getpwnam("_postern").pw_uid
    kids = env.postern.children()
    check(set(kids) == {"authproc", "relay", "tlsproc"}, f"children {kids}")
    for role, pid in kids.items():
        st = proc_status(pid)
        check(st["Uid"].split() == [str(uid)] * 4, f"{role} uid {st['Uid']}")
        check(st["Seccomp"].strip() == "2", f"{role} Seccomp {st['Seccomp']}")
        check(st["NoNewPrivs"].strip() == "1", f"{role} NoNewPrivs")
        root = os.readlink(f"/proc/{pid}/root")
        check(root == "/var/empty", f"{role} root {root}")
        check(not os.listdir(f"/proc/{pid}/root/"), f"{role} chroot not empty")
    st = proc_status(env.postern.pid)
    check(st["Uid"].split()[0] == "0", "parent is not root")


@case("sandbox-authproc-killed-on-forbidden-call")
def _():
    old = env.hooks.children()["authproc"]
    os.kill(old, signal.SIGUSR2)    # test build: makes it call openat()
    new = env.hooks.wait_child("authproc", not_pid=old)
    check(new is not None, "authproc was not restarted")
    log = env.hooks.log_text()
    check(f"authproc (pid {old}) terminated by signal {int(signal.SIGSYS)}"
          in log, "no SIGSYS death logged")
    # and the new one serves logins
    wait_port(HOST, HIMAP)
    m = imaplib.IMAP4(HOST, HIMAP)
    check(m.login(user(1), PASSWORD)[0] == "OK", "login after restart")
    m.logout()


@case("authproc-cannot-get-relay-restarted")
def _():
    # a report from authproc, which parses clients' bytes, restarts
    # authproc: believed, it would let a compromised authproc end every
    # relayed session by naming relay
    m = imaplib.IMAP4(HOST, HIMAP)
    check(m.login(user(1), PASSWORD)[0] == "OK", "login before")
    kids = env.hooks.children()
    os.kill(kids["relay"], signal.SIGUSR1)  # test build: bad imsg to authproc
    new = env.hooks.wait_child("authproc", not_pid=kids["authproc"])
    check(new is not None, "authproc was not restarted")
    check(f"authproc reports that relay (pid {kids['relay']}) sent a "
          "malformed message; restarting authproc" in env.hooks.log_text(),
          "the report was not logged")
    check(env.hooks.children()["relay"] == kids["relay"],
          "relay was restarted")
    # a child cannot log in another process's name either
    lines = env.hooks.log_text().splitlines()
    check("relay: parent: line forged by relay" in lines,
          "the forged line was not tagged with relay's name")
    check("parent: line forged by relay" not in lines,
          "relay logged as the parent")
    # the session relay holds lives on
    check(m.noop()[0] == "OK", "relayed session lost")
    m.logout()
    wait_port(HOST, HIMAP)
    m = imaplib.IMAP4(HOST, HIMAP)
    check(m.login(user(1), PASSWORD)[0] == "OK", "login after restart")
    m.logout()


@case("malformed-peer-message-restarts-sender")
def _():
    old = env.hooks.children()["authproc"]
    os.kill(old, signal.SIGUSR1)    # test build: forges a bad imsg to relay
    new = env.hooks.wait_child("authproc", not_pid=old)
    check(new is not None, "authproc was not restarted")
    log = env.hooks.log_text()
    check("authproc sent a bad message" in log, "relay did not notice")
    check(f"reports that authproc (pid {old}) sent a malformed message"
          in log, "parent was not told")
    m = imaplib.IMAP4(HOST, HIMAP)
    check(m.login(user(1), PASSWORD)[0] == "OK", "login after restart")
    m.logout()


@case("imap-preauth-commands")
def _():
    c = imap_raw()
    c.send(b"A1 CAPABILITY\r\n")
    lines = c.until_tag(b"A1")
    check(lines[0].startswith(b"* CAPABILITY IMAP4rev1"), lines)
    check(lines[-1].startswith(b"A1 OK"), lines)
    c.send(b"x.y NOOP\r\n")
    check(c.until_tag(b"x.y")[-1].startswith(b"x.y OK"), "NOOP")
    c.send(b'i ID ("name" "regress" "x-originating-ip" "6.6.6.6")\r\n')
    lines = c.until_tag(b"i")
    check(lines[0].startswith(b"* ID ") and lines[-1].startswith(b"i OK"),
          lines)
    c.send(b"s SELECT INBOX\r\n")
    check(c.until_tag(b"s")[-1].startswith(b"s BAD"), "SELECT before login")
    c.send(b"l LOGOUT\r\n")
    lines = c.until_tag(b"l")
    check(lines[0].startswith(b"* BYE") and lines[-1].startswith(b"l OK"),
          lines)
    check(c.closed(), "not closed after LOGOUT")


@case("imap-login-quoted")
def _():
    c = imap_raw()
    lines = imap_login_lines(c, b"a", b'a LOGIN "%s" "%s"\r\n' %
                             (user(1).encode(), PASSWORD.encode()))
    check(lines[-1].startswith(b"a OK [CAPABILITY IMAP4rev1"),
          f"no upstream capabilities in {lines!r}")
    imap_logged_in(c)
    c.close()


@case("imap-login-literal")
def _():
    c = imap_raw()
    u = user(3).encode()
    c.send(b"a LOGIN {%d}\r\n" % len(u))
    check(c.line().startswith(b"+ "), "no continuation for literal")
    c.send(u + b" {%d}\r\n" % len(PASSWORD))
    check(c.line().startswith(b"+ "), "no continuation for 2nd literal")
    c.send(PASSWORD.encode() + b"\r\n")
    check(c.until_tag(b"a")[-1].startswith(b"a OK"), "literal login")
    imap_logged_in(c)
    c.close()


@case("imap-login-literal-plus")
def _():
    c = imap_raw()
    u = user(4).encode()
    lines = imap_login_lines(c, b"a", b"a LOGIN {%d+}\r\n%s {%d+}\r\n%s\r\n"
                             % (len(u), u, len(PASSWORD), PASSWORD.encode()))
    check(lines[-1].startswith(b"a OK"), lines)
    imap_logged_in(c)
    c.close()


@case("imap-authenticate-plain-sasl-ir")
def _():
    c = imap_raw()
    lines = imap_login_lines(c, b"a", b"a AUTHENTICATE PLAIN %s\r\n"
                             % plain(user(5), PASSWORD).encode())
    check(lines[-1].startswith(b"a OK"), lines)
    imap_logged_in(c)
    c.close()


@case("imap-authenticate-plain-continuation")
def _():
    m = imaplib.IMAP4(HOST, IMAP)
    typ, _ = m.authenticate("PLAIN", lambda _: f"\0{user(6)}\0{PASSWORD}")
    check(typ == "OK", "AUTHENTICATE PLAIN failed")
    check(m.select("INBOX")[0] == "OK", "SELECT")
    m.logout()


@case("imap-authenticate-cancel")
def _():
    c = imap_raw()
    c.send(b"a AUTHENTICATE PLAIN\r\n")
    check(c.line().startswith(b"+"), "no continuation")
    c.send(b"*\r\n")
    check(c.until_tag(b"a")[-1].startswith(b"a BAD"), "cancel not BAD")
    lines = imap_login_lines(c, b"b", b"b LOGIN %s %s\r\n" %
                             (user(7).encode(), PASSWORD.encode()))
    check(lines[-1].startswith(b"b OK"), "login after cancel")
    c.close()


@case("imap-wrong-then-right-password")
def _():
    c = imap_raw()
    lines = imap_login_lines(c, b"a", b"a LOGIN %s wrong\r\n" %
                             user(9).encode())
    check(lines[-1].startswith(b"a NO"), lines)
    lines = imap_login_lines(c, b"b", b"b LOGIN %s %s\r\n" %
                             (user(9).encode(), PASSWORD.encode()))
    check(lines[-1].startswith(b"b OK"), lines)
    imap_logged_in(c)
    c.close()


@case("imap-pipelined-after-login")
def _():
    c = imap_raw()
    c.send(b"a LOGIN %s %s\r\nb SELECT INBOX\r\nc NOOP\r\nd LOGOUT\r\n" %
           (user(11).encode(), PASSWORD.encode()))
    seen = []
    while True:
        try:
            line = c.line()
        except EOFError:
            break
        if line[:2] in (b"a ", b"b ", b"c ", b"d "):
            seen.append(line[:4])
    check(seen == [b"a OK", b"b OK", b"c OK", b"d OK"], f"tagged: {seen}")


@case("imap-pipelined-after-failed-login")
def _():
    c = imap_raw()
    c.send(b"a LOGIN %s wrong\r\nb CAPABILITY\r\nc LOGIN %s %s\r\n"
           b"d SELECT INBOX\r\n" % (user(13).encode(), user(13).encode(),
                                    PASSWORD.encode()))
    lines = c.until_tag(b"d")
    tagged = [ln[:4] for ln in lines if ln[:2] in (b"a ", b"b ", b"c ",
                                                    b"d ")]
    check(tagged == [b"a NO", b"b OK", b"c OK", b"d OK"], f"{tagged}")
    caps = [ln for ln in lines if ln.startswith(b"* CAPABILITY")]
    check(caps and b"AUTH=PLAIN" in caps[0], "CAPABILITY by postern")
    c.close()


@case("imap-bad-input-survives")
def _():
    c = imap_raw()
    for bad in (b"\x00\xff\xfe garbage\r\n", b"a LOGIN \"unterminated\r\n",
                b"a LOGIN a\\b c\r\n", b"(((\r\n", b"a LOGIN {x}\r\n"):
        c.send(bad)
        line = c.line()
        check(b" BAD " in line, f"{bad!r} -> {line!r}")
    c.send(b"n NOOP\r\n")
    check(c.until_tag(b"n")[-1].startswith(b"n OK"), "session died")


@case("imap-line-too-long-bye")
def _():
    c = imap_raw()
    c.send(b"a NOOP " + b"x" * 9000 + b"\r\n")
    line = c.line()
    check(line.startswith(b"* BYE"), line)
    check(c.closed(), "not closed")


@case("imap-literal-too-large-bye")
def _():
    c = imap_raw()
    c.send(b"a LOGIN {100000}\r\n")
    line = c.line()
    check(line.startswith(b"* BYE"), line)
    check(c.closed(), "not closed")


@case("imap-too-many-bad-commands-bye")
def _():
    c = imap_raw(HIMAP)         # limit bad-commands 3
    for i in range(3):
        c.send(b"t%d FOO\r\n" % i)
    lines = []
    try:
        while True:
            lines.append(c.line())
    except EOFError:
        pass
    check(lines[-1].startswith(b"* BYE"), lines)


@case("imap-preauth-idle-timeout-bye")
def _():
    c = imap_raw(HIMAP)         # timeout pre-auth 2
    c.sock.settimeout(15)
    line = c.line()
    check(line.startswith(b"* BYE"), line)
    check(c.closed(), "not closed")


@case("pop3-preauth-commands")
def _():
    c = pop3_raw()
    c.send(b"CAPA\r\n")
    lines = [c.line()]
    while lines[-1] != b".\r\n":
        lines.append(c.line())
    check(b"USER\r\n" in lines and b"SASL PLAIN\r\n" in lines, lines)
    for cmd, want in ((b"NOOP", b"+OK"), (b"APOP a b", b"-ERR"),
                      (b"STAT", b"-ERR"), (b"PASS x", b"-ERR"),
                      (b"\x01\x02", b"-ERR")):
        c.send(cmd + b"\r\n")
        line = c.line()
        check(line.startswith(want), f"{cmd!r} -> {line!r}")
    c.send(b"QUIT\r\n")
    check(c.line().startswith(b"+OK"), "QUIT")
    check(c.closed(), "not closed after QUIT")


@case("pop3-user-pass")
def _():
    p = poplib.POP3(HOST, POP3)
    p.user(user(1))
    check(p.pass_(PASSWORD).startswith(b"+OK"), "PASS")
    p.stat()
    p.quit()


@case("pop3-auth-plain-initial-response")
def _():
    c = pop3_raw()
    c.send(b"AUTH PLAIN %s\r\n" % plain(user(2), PASSWORD).encode())
    check(c.line().startswith(b"+OK"), "AUTH PLAIN")
    c.send(b"STAT\r\n")
    check(c.line().startswith(b"+OK"), "STAT after login")
    c.close()


@case("pop3-auth-plain-continuation")
def _():
    c = pop3_raw()
    c.send(b"AUTH PLAIN\r\n")
    check(c.line().startswith(b"+ "), "no continuation")
    c.send(plain(user(3), PASSWORD).encode() + b"\r\n")
    check(c.line().startswith(b"+OK"), "AUTH PLAIN continuation")
    c.send(b"STAT\r\n")
    check(c.line().startswith(b"+OK"), "STAT")
    c.close()


@case("pop3-wrong-then-right-password")
def _():
    c = pop3_raw()
    c.send(b"USER %s\r\nPASS wrong\r\n" % user(5).encode())
    check(c.line().startswith(b"+OK"), "USER")
    check(c.line().startswith(b"-ERR"), "wrong PASS accepted")
    c.send(b"USER %s\r\nPASS %s\r\nSTAT\r\n" % (user(5).encode(),
                                               PASSWORD.encode()))
    check(c.line().startswith(b"+OK"), "USER")
    check(c.line().startswith(b"+OK"), "PASS")
    check(c.line().startswith(b"+OK"), "STAT")
    c.close()


@case("curl-imap-and-pop3")
def _():
    r = subprocess.run(["curl", "-sS", "--max-time", "20", "--user",
                        f"{user(7)}:{PASSWORD}", f"imap://{HOST}:{IMAP}/"],
                       capture_output=True, text=True)
    check(r.returncode == 0 and "INBOX" in r.stdout,
          f"curl imap: {r.returncode} {r.stdout!r} {r.stderr!r}")
    r = subprocess.run(["curl", "-sS", "--max-time", "20", "--user",
                        f"{user(8)}:{PASSWORD}", f"pop3://{HOST}:{POP3}/"],
                       capture_output=True, text=True)
    check(r.returncode == 0, f"curl pop3: {r.returncode} {r.stderr!r}")
    r = subprocess.run(["curl", "-sS", "--max-time", "20", "--user",
                        f"{user(7)}:wrong", f"imap://{HOST}:{IMAP}/"],
                       capture_output=True, text=True)
    check(r.returncode == 67, f"curl wrong password: {r.returncode}")


@case("client-address-reaches-upstream-imap-id-pop3-xclient")
def _():
    c = Raw.__new__(Raw)
    c.sock = socket.create_connection((HOST, IMAP), timeout=20,
                                      source_address=("127.0.0.7", 0))
    c.buf = b""
    c.line()
    c.send(b'i ID ("name" "regress" "x-originating-ip" "6.6.6.6")\r\n')
    c.until_tag(b"i")
    lines = imap_login_lines(c, b"a", b"a LOGIN %s %s\r\n" %
                             (user(3).encode(), PASSWORD.encode()))
    check(lines[-1].startswith(b"a OK"), lines)
    c.close()
    time.sleep(0.5)
    logins = [ln for ln in env.dv1.log_text().splitlines()
              if "Login: user=<%s>" % user(3) in ln]
    check(logins and "rip=127.0.0.7" in logins[-1],
          f"Dovecot saw {logins[-1:]}")
    check("6.6.6.6" not in env.dv1.log_text(), "client forged its address")
    p = Raw.__new__(Raw)
    p.sock = socket.create_connection((HOST, POP3), timeout=20,
                                      source_address=("127.0.0.8", 0))
    p.buf = b""
    p.line()
    p.send(b"USER %s\r\nPASS %s\r\n" % (user(5).encode(),
                                          PASSWORD.encode()))
    check(p.line().startswith(b"+OK") and p.line().startswith(b"+OK"),
          "POP3 login")
    p.close()
    time.sleep(0.5)
    logins = [ln for ln in env.dv1.log_text().splitlines()
              if "pop3-login" in ln and "Login: user=<%s>" % user(5) in ln]
    check(logins and "rip=127.0.0.8" in logins[-1],
          f"Dovecot POP3 saw {logins[-1:]}")


def proxy_v2(src, sport, dst, dport):
    import struct
    sig = b"\r\n\r\n\x00\r\nQUIT\n"
    body = (socket.inet_aton(src) + socket.inet_aton(dst) +
            struct.pack("!HH", sport, dport))
    return sig + bytes([0x21, 0x11]) + struct.pack("!H", len(body)) + body


def proxied_login(header, u=None):
    """Send a PROXY header, then log in; returns (greeting, last line)."""
    c = Raw(PIMAP)
    c.send(header)
    greeting = c.line()
    lines = imap_login_lines(c, b"a", b"a LOGIN %s %s\r\n" %
                             ((u or user(7)).encode(), PASSWORD.encode()))
    c.close()
    return greeting, lines[-1]


@case("proxy-protocol-v1-and-v2-from-trusted-balancer")
def _():
    since = utc_now_iso()
    g, last = proxied_login(b"PROXY TCP4 192.0.2.77 127.0.0.1 5555 31145\r\n")
    check(g.startswith(b"* OK") and last.startswith(b"a OK"), (g, last))
    g, last = proxied_login(proxy_v2("198.51.100.9", 6666, "127.0.0.1",
                                     31145), user(9))
    check(g.startswith(b"* OK") and last.startswith(b"a OK"), (g, last))
    time.sleep(0.5)
    records, _ = audit_records(since=since)
    ips = {(r["client_ip"], r["client_port"]) for r in records}
    check(("192.0.2.77", 5555) in ips and ("198.51.100.9", 6666) in ips,
          f"audit saw {ips}")
    log = env.dv1.log_text()
    check("rip=192.0.2.77" in log and "rip=198.51.100.9" in log,
          "Dovecot did not see the addresses from the PROXY headers")


@case("proxy-protocol-untrusted-or-malformed-closed")
def _():
    c = Raw.__new__(Raw)
    c.sock = socket.create_connection((HOST, PIMAP), timeout=10,
                                      source_address=("127.0.0.9", 0))
    c.buf = b""
    c.send(b"PROXY TCP4 192.0.2.1 127.0.0.1 1 2\r\n")
    check(c.closed(10) and c.buf == b"", "untrusted sender was served")
    for bad in (b"PROXY TCP4 999.1.1.1 127.0.0.1 1 2\r\n",
                b"PROXY TCP4 192.0.2.1 127.0.0.1 01 2\r\n",
                b"GET / HTTP/1.0\r\n\r\n",
                b"\r\n\r\n\x00\r\nQUIT\n\x31\x11\x00\x0c" + b"\x00" * 12):
        c = Raw(PIMAP)
        c.send(bad)
        check(c.closed(10) and c.buf == b"", f"{bad!r} was served")
    # and the listener still works
    g, last = proxied_login(b"PROXY TCP4 192.0.2.78 127.0.0.1 5556 31145\r\n")
    check(last.startswith(b"a OK"), "proxy listener broken")


def start_haproxy(name, port, backend_port):
    """HAProxy in mode tcp on port, sending PROXY v2 to backend_port."""
    hp = shutil.which("haproxy") or "/usr/sbin/haproxy"
    check(os.path.exists(hp), "haproxy is not installed")
    cfg = os.path.join(env.work, name)
    with open(cfg, "w") as f:
        f.write(f"""global
    maxconn 100
defaults
    mode tcp
    timeout connect 5s
    timeout client 30s
    timeout server 30s
frontend front
    bind {HOST}:{port}
    default_backend postern
backend postern
    server p1 {HOST}:{backend_port} send-proxy-v2
""")
    return subprocess.Popen([hp, "-db", "-f", cfg],
                            stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


@case("haproxy-send-proxy-v2-in-front")
def _():
    proc = start_haproxy("haproxy.cfg", HAPROXY, PIMAP)
    try:
        check(wait_port(HOST, HAPROXY, 15), "haproxy did not start")
        since = utc_now_iso()
        c = Raw.__new__(Raw)
        c.sock = socket.create_connection((HOST, HAPROXY), timeout=20,
                                          source_address=("127.0.0.10", 0))
        c.buf = b""
        check(c.line().startswith(b"* OK"), "no greeting through haproxy")
        lines = imap_login_lines(c, b"a", b"a LOGIN %s %s\r\n" %
                                 (user(11).encode(), PASSWORD.encode()))
        check(lines[-1].startswith(b"a OK"), lines)
        c.close()
        time.sleep(0.5)
        records, _ = audit_records(since=since)
        check(any(r["client_ip"] == "127.0.0.10" and r["user"] == user(11)
                  for r in records), "audit lacks the client behind haproxy")
        logins = [ln for ln in env.dv1.log_text().splitlines()
                  if "Login: user=<%s>" % user(11) in ln]
        check(logins and "rip=127.0.0.10" in logins[-1],
              f"Dovecot saw {logins[-1:]}")
    finally:
        proc.terminate()
        proc.wait(10)


class BioSock:
    """A TLS client on a connected socket through memory BIOs, so a test
    decides what shares a segment with the ClientHello; enough of a
    socket for Raw (recv, sendall, settimeout, close)."""

    def __init__(self, sock, first=b""):
        self.raw = sock
        self.inc, self.out = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.obj = tls_ctx().wrap_bio(self.inc, self.out,
                                      server_hostname="mail.example.org")
        self.first = first
        self.eof = False
        self._io(self.obj.do_handshake)

    def _flush(self):
        data, self.first = self.first + self.out.read(), b""
        if data:
            self.raw.sendall(data)

    def _io(self, fn, *args):
        while True:
            try:
                r = fn(*args)
                self._flush()
                return r
            except ssl.SSLWantReadError:
                self._flush()
                if self.eof:
                    raise EOFError("TLS peer closed")
                data = self.raw.recv(65536)
                if data:
                    self.inc.write(data)
                else:
                    self.eof = True
                    self.inc.write_eof()

    def recv(self, n):
        try:
            return self._io(self.obj.read, n)
        except (ssl.SSLEOFError, ssl.SSLZeroReturnError, EOFError):
            return b""

    def sendall(self, data):
        self._io(self.obj.write, data)

    def settimeout(self, t):
        self.raw.settimeout(t)

    def close(self):
        self.raw.close()


def tls_proxied_login(header, u, tls="wrap", port=PIMAPS):
    """Send a PROXY header on a TLS+PROXY listener, then TLS: either
    wrapped after the header ("wrap") or with the ClientHello in the
    header's own segment ("bio"); log in; return the last line."""
    c = Raw.__new__(Raw)
    c.buf = b""
    c.timeout = 20
    sock = socket.create_connection((HOST, port), timeout=20)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if tls == "bio":
        c.sock = BioSock(sock, first=header)
    else:
        sock.sendall(header)
        c.sock = tls_ctx().wrap_socket(sock,
                                       server_hostname="mail.example.org")
    g = c.line()
    check(g.startswith(b"* OK"), f"greeting {g!r}")
    lines = imap_login_lines(c, b"a", b"a LOGIN %s %s\r\n" %
                             (u.encode(), PASSWORD.encode()))
    imap_logged_in(c)
    c.close()
    return lines[-1]


def check_proxied_client(since, u, ip, port):
    """The audit record and Dovecot both name the client from the header."""
    time.sleep(0.5)
    records, _ = audit_records(since=since)
    mine = [r for r in records if r["user"] == u and r["result"] == "ok"]
    check(any(r["client_ip"] == ip and r["client_port"] == port and
              r["tls"] for r in mine), f"audit saw {mine}")
    logins = [ln for ln in env.dv1.log_text().splitlines()
              if "Login: user=<%s>" % u in ln]
    check(logins and f"rip={ip}," in logins[-1], f"Dovecot saw {logins[-1:]}")


@case("tls-proxy-v2-header-and-clienthello-in-one-segment")
def _():
    since = utc_now_iso()
    last = tls_proxied_login(proxy_v2("203.0.113.7", 4711, "127.0.0.1",
                                      PIMAPS), user(13), tls="bio")
    check(last.startswith(b"a OK"), last)
    check_proxied_client(since, user(13), "203.0.113.7", 4711)


@case("tls-proxy-v1-header-then-tls")
def _():
    since = utc_now_iso()
    last = tls_proxied_login(b"PROXY TCP4 203.0.113.8 127.0.0.1 4712 %d\r\n"
                             % PIMAPS, user(15))
    check(last.startswith(b"a OK"), last)
    check_proxied_client(since, user(15), "203.0.113.8", 4712)
    # a v1 header and the ClientHello in one segment work as well
    since = utc_now_iso()
    last = tls_proxied_login(b"PROXY TCP4 203.0.113.9 127.0.0.1 4713 %d\r\n"
                             % PIMAPS, user(15), tls="bio")
    check(last.startswith(b"a OK"), last)
    check_proxied_client(since, user(15), "203.0.113.9", 4713)


@case("tls-proxy-untrusted-or-malformed-closed")
def _():
    hello = b"\x16\x03\x01\x00\x05\x01\x00\x00\x01\x03"
    c = Raw.__new__(Raw)
    c.sock = socket.create_connection((HOST, PIMAPS), timeout=10,
                                      source_address=("127.0.0.9", 0))
    c.buf = b""
    c.send(proxy_v2("192.0.2.1", 1, "127.0.0.1", PIMAPS))
    check(c.closed(10) and c.buf == b"", "untrusted sender was served")
    for bad in (b"PROXY TCP4 999.1.1.1 127.0.0.1 1 2\r\n" + hello,
                b"PROXY TCP4 192.0.2.1 127.0.0.1 1 2\n" + hello,
                b"PROXY " + b"x" * 200 + b"\r\n",
                hello,                  # a client that skips the balancer
                b"\r\n\r\n\x00\r\nQUIT\n\x21\x11\xff\xff" + b"\x00" * 12,
                b"\r\n\r\n\x00\r\nQUIT\n\x31\x11\x00\x0c" + b"\x00" * 12):
        c = Raw(PIMAPS)
        c.send(bad)
        check(c.closed(10) and c.buf == b"", f"{bad!r} was served")
    # the lines come through the parent's log pipe, maybe just after
    # the close the client saw (slower still under the sanitizers)
    wanted = (r"tlsproc: refused 127\.0\.0\.9:\d+: not a trusted "
              r"PROXY sender",
              r"tlsproc: PROXY header from 127\.0\.0\.1:\d+: "
              r"malformed or too long")
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not all(
            re.search(w, env.postern.log_text()) for w in wanted):
        time.sleep(0.1)
    log = env.postern.log_text()
    check(re.search(wanted[0], log), "untrusted sender not logged")
    check(re.search(wanted[1], log), "bad header not logged")
    # and the listener still works
    last = tls_proxied_login(proxy_v2("203.0.113.10", 4714, "127.0.0.1",
                                      PIMAPS), user(17))
    check(last.startswith(b"a OK"), "TLS+PROXY listener broken")


@case("tls-proxy-header-then-silence-timed-out")
def _():
    # timeout handshake 2 on the test-hooks postern covers both halves
    for first in (b"PROXY TCP4 192.0.2.1 127.0.0.1 1 2",  # header unfinished
                  proxy_v2("192.0.2.2", 2, "127.0.0.1", HPIMAPS)):
        s = socket.create_connection((HOST, HPIMAPS), timeout=15)
        s.sendall(first)
        t0 = time.monotonic()
        try:
            data = s.recv(1024)
        except ConnectionResetError:
            data = b""
        s.close()
        took = time.monotonic() - t0
        check(data == b"" and took < 8, f"not closed ({data!r}, {took:.1f} s)")
    time.sleep(0.5)                     # the log line may trail the close
    log = env.hooks.log_text()
    check(re.search(r"tlsproc: PROXY header from 127\.0\.0\.1:\d+: timeout",
                    log), "unfinished header timeout not logged")
    check("tls handshake with 192.0.2.2:2 failed: handshake timeout" in log,
          "handshake timeout after the header not logged with the client")


class SourceIMAP4_SSL(imaplib.IMAP4_SSL):
    """IMAP4_SSL from a chosen source address."""

    source = HOST

    def _create_socket(self, timeout):
        sock = socket.create_connection((HOST, self.port), timeout,
                                        source_address=(self.source, 0))
        return self.ssl_context.wrap_socket(sock,
                                            server_hostname="mail.example.org")


@case("tls-proxy-haproxy-send-proxy-v2-imaplib")
def _():
    proc = start_haproxy("haproxy-tls.cfg", HAPROXY_TLS, PIMAPS)
    try:
        check(wait_port(HOST, HAPROXY_TLS, 15), "haproxy did not start")
        since = utc_now_iso()
        SourceIMAP4_SSL.source = "127.0.0.12"
        m = SourceIMAP4_SSL(HOST, HAPROXY_TLS, ssl_context=tls_ctx())
        check(m.login(user(17), PASSWORD)[0] == "OK", "login")
        local = m.sock.getsockname()[:2]
        check(m.select("INBOX")[0] == "OK", "SELECT")
        m.logout()
        check_proxied_client(since, user(17), "127.0.0.12", local[1])
    finally:
        proc.terminate()
        proc.wait(10)


@case("routing-users-land-on-their-backend")
def _():
    for n in range(1, NUSERS + 1):
        m = imaplib.IMAP4(HOST, IMAP)
        check(m.login(user(n), PASSWORD)[0] == "OK", f"login {user(n)}")
        m.logout()
    time.sleep(0.5)
    on1 = set(env.dv1.logins())
    on2 = set(env.dv2.logins())
    check({user(n) for n in range(1, NUSERS + 1, 2)} <= on1, "odd users")
    check({user(n) for n in range(2, NUSERS + 1, 2)} <= on2, "even users")
    check(not (on1 & {user(n) for n in range(2, NUSERS + 1, 2)}),
          "even user on backend 1")
    check(not (on2 & {user(n) for n in range(1, NUSERS + 1, 2)}),
          "odd user on backend 2")


@case("imap-1mib-append-fetch-identical")
def _():
    msg = message(1 << 20, seed=1)
    m = imaplib.IMAP4(HOST, IMAP)
    m.login(user(15), PASSWORD)
    m.create("big")
    typ, _ = m.append("big", None, None, msg)
    check(typ == "OK", "APPEND")
    m.select("big")
    typ, data = m.fetch(b"1", "(BODY.PEEK[])")
    check(typ == "OK", "FETCH")
    got = data[0][1]
    check(hashlib.sha256(got).hexdigest() == hashlib.sha256(msg).hexdigest(),
          f"fetched {len(got)} bytes differ from {len(msg)} appended")
    m.logout()


@case("pop3-1mib-retr-identical")
def _():
    msg = message(1 << 20, seed=2)
    m = imaplib.IMAP4(HOST, IMAP)
    m.login(user(17), PASSWORD)
    check(m.append("INBOX", None, None, msg)[0] == "OK", "APPEND")
    m.logout()
    p = poplib.POP3(HOST, POP3)
    p.user(user(17))
    p.pass_(PASSWORD)
    count, _ = p.stat()
    _, lines, _ = p.retr(count)
    got = b"\r\n".join(lines) + b"\r\n"
    p.quit()
    check(hashlib.sha256(got).hexdigest() == hashlib.sha256(msg).hexdigest(),
          f"retrieved {len(got)} bytes differ from {len(msg)}")


@case("imap-idle-sees-new-message")
def _():
    c = imap_raw()
    imap_login_lines(c, b"a", b"a LOGIN %s %s\r\n" % (user(19).encode(),
                                                      PASSWORD.encode()))
    imap_logged_in(c, b"s")
    c.send(b"i IDLE\r\n")
    check(c.line().startswith(b"+"), "no IDLE continuation")
    m = imaplib.IMAP4(HOST, IMAP)
    m.login(user(19), PASSWORD)
    m.append("INBOX", None, None, message(2000, seed=3))
    m.logout()
    c.sock.settimeout(15)
    line = c.line()
    check(b"EXISTS" in line, f"IDLE got {line!r}")
    c.send(b"DONE\r\n")
    check(c.until_tag(b"i")[-1].startswith(b"i OK"), "IDLE end")
    c.close()


@case("upstream-down-temporary-failure")
def _():
    c = imap_raw()
    lines = imap_login_lines(c, b"a", b"a LOGIN down@example.org x\r\n")
    check(lines[-1].startswith(b"a NO [UNAVAILABLE]"), lines)
    c.send(b"b NOOP\r\n")
    check(c.until_tag(b"b")[-1].startswith(b"b OK"), "session after failure")
    p = pop3_raw()
    p.send(b"USER down@example.org\r\nPASS x\r\n")
    p.line()
    line = p.line()
    check(line.startswith(b"-ERR [SYS/TEMP]"), line)
    check("session" in env.postern.log_text(), "not logged")


@case("upstream-silent-login-timeout")
def _():
    c = imap_raw(HIMAP)         # timeout login 3
    c.sock.settimeout(20)
    t0 = time.monotonic()
    lines = imap_login_lines(c, b"a", b"a LOGIN slow@example.org x\r\n")
    check(lines[-1].startswith(b"a NO [UNAVAILABLE]"), lines)
    check(time.monotonic() - t0 < 15, "took too long")


@case("concurrent-200-sessions")
def _():
    errors = []
    barrier = threading.Barrier(200, timeout=60)

    def one(i):
        try:
            m = imaplib.IMAP4(HOST, IMAP, timeout=60)
            m.login(user(i % NUSERS + 1), PASSWORD)
            barrier.wait()          # all 200 logged in at once
            typ, _ = m.select("INBOX")
            if typ != "OK":
                errors.append(f"{i}: select {typ}")
            m.logout()
        except Exception as e:      # noqa: BLE001
            errors.append(f"{i}: {e!r}")
            try:
                barrier.abort()
            except Exception:       # noqa: BLE001
                pass
    threads = [threading.Thread(target=one, args=(i,)) for i in range(200)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    check(not errors, f"{len(errors)} failed: {errors[:3]}")


@case("relay-sigkill-restarted-and-serving")
def _():
    old = env.postern.children()["relay"]
    # a session relaying in authproc's hands survives nothing; new ones work
    os.kill(old, signal.SIGKILL)
    new = env.postern.wait_child("relay", not_pid=old)
    check(new is not None, "relay not restarted")
    log = env.postern.log_text()
    check(f"relay (pid {old}) terminated by signal 9" in log, "not logged")
    ok = False
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and not ok:
        m = imaplib.IMAP4(HOST, IMAP)
        try:
            ok = m.login(user(1), PASSWORD)[0] == "OK"
        except imaplib.IMAP4.error:
            time.sleep(0.2)     # relay still starting: NO [UNAVAILABLE]
        m.shutdown()
    check(ok, "no login after relay restart")


@case("log-has-no-password")
def _():
    for p in (env.postern, env.hooks):
        check(PASSWORD not in p.log_text(), "password in log")


# ---------------------------------------------------------------- TLS

def tls_ctx(name="mail.example.org"):
    return ssl.create_default_context(cafile=env.certs[name][0])


class SniIMAP(imaplib.IMAP4_SSL):
    """IMAP4_SSL to a test name that only exists as a certificate."""

    def _create_socket(self, timeout):
        sock = socket.create_connection((HOST, self.port), timeout)
        return self.ssl_context.wrap_socket(sock, server_hostname=self.host)


class SniPOP3(poplib.POP3_SSL):
    def _create_socket(self, timeout):
        sock = socket.create_connection((HOST, self.port), timeout)
        return self.context.wrap_socket(sock, server_hostname=self.host)


def server_cert_fingerprint(port, servername):
    r = subprocess.run(["openssl", "s_client", "-connect", f"{HOST}:{port}",
                        "-servername", servername, "-showcerts"],
                       input=b"", capture_output=True, timeout=20)
    out = r.stdout
    begin = out.find(b"-----BEGIN CERTIFICATE-----")
    end = out.find(b"-----END CERTIFICATE-----")
    check(begin >= 0, f"no certificate from s_client: {r.stderr[-300:]!r}")
    return fingerprint(out[begin:end + 25] + b"\n")


@case("tls-sni-picks-certificate-per-name")
def _():
    org = fingerprint(env.certs["mail.example.org"][0])
    net = fingerprint(env.certs["mail.example.net"][0])
    check(org != net, "test certificates are identical")
    for port in (IMAPS, POP3S):
        check(server_cert_fingerprint(port, "mail.example.org") == org,
              f"{port}: wrong certificate for mail.example.org")
        check(server_cert_fingerprint(port, "mail.example.net") == net,
              f"{port}: wrong certificate for mail.example.net")
        check(server_cert_fingerprint(port, "unknown.example") == org,
              f"{port}: unknown name did not get the default")


@case("imaps-imaplib-login-append-fetch")
def _():
    m = SniIMAP("mail.example.net", IMAPS,
                          ssl_context=tls_ctx("mail.example.net"))
    check(m.login(user(11), PASSWORD)[0] == "OK", "login")
    msg = message(200000, seed=11)
    m.create("tls")
    check(m.append("tls", None, None, msg)[0] == "OK", "APPEND")
    m.select("tls")
    typ, data = m.fetch(b"1", "(BODY.PEEK[])")
    check(data[0][1] == msg, "fetched message differs")
    m.logout()


@case("pop3s-poplib-login-retr")
def _():
    p = SniPOP3("mail.example.org", POP3S, context=tls_ctx())
    p.user(user(11))
    check(p.pass_(PASSWORD).startswith(b"+OK"), "PASS")
    count, _ = p.stat()
    check(count >= 0, "STAT")
    p.quit()


@case("imap-starttls-then-login")
def _():
    m = imaplib.IMAP4(HOST, IMAP)
    check("STARTTLS" in m.capabilities, f"no STARTTLS in {m.capabilities}")
    ctx = tls_ctx()
    ctx.check_hostname = False      # imaplib names the peer 127.0.0.1
    m.starttls(ssl_context=ctx)
    check("STARTTLS" not in m.capabilities, "STARTTLS offered after TLS")
    check(m.login(user(13), PASSWORD)[0] == "OK", "login")
    m.logout()


@case("curl-imaps-pop3s-and-starttls")
def _():
    ca = env.certs["mail.example.org"][0]
    base = ["curl", "-sS", "--max-time", "20", "--cacert", ca,
            "--resolve", f"mail.example.org:{IMAPS}:{HOST}",
            "--resolve", f"mail.example.org:{POP3S}:{HOST}",
            "--resolve", f"mail.example.org:{IMAP}:{HOST}"]
    for url, extra in ((f"imaps://mail.example.org:{IMAPS}/", []),
                       (f"pop3s://mail.example.org:{POP3S}/", []),
                       (f"imap://mail.example.org:{IMAP}/", ["--ssl-reqd"])):
        r = subprocess.run(base + extra + ["--user", f"{user(15)}:{PASSWORD}",
                                           url],
                           capture_output=True, text=True)
        check(r.returncode == 0, f"{url}: {r.returncode} {r.stderr!r}")
        if url.startswith("imap"):
            check("INBOX" in r.stdout, f"{url}: no INBOX in {r.stdout!r}")


def starttls_raw(c, cmd, ok_prefix):
    c.send(cmd)
    line = c.line()
    check(line.startswith(ok_prefix), f"{cmd!r} -> {line!r}")
    check(c.buf == b"", f"server said more before TLS: {c.buf!r}")
    c.sock.settimeout(10)
    c.sock = tls_ctx().wrap_socket(c.sock, server_hostname="mail.example.org")


@case("starttls-pipelined-command-discarded")
def _():
    c = imap_raw()
    starttls_raw(c, b"a STARTTLS\r\nb LOGIN %s %s\r\n" %
                 (user(1).encode(), PASSWORD.encode()), b"a OK")
    c.send(b"c NOOP\r\n")
    lines = c.until_tag(b"c")
    check(not any(ln.startswith(b"b ") for ln in lines),
          f"injected command answered: {lines!r}")
    c.send(b"d SELECT INBOX\r\n")
    check(c.until_tag(b"d")[-1].startswith(b"d BAD"),
          "injected LOGIN took effect")
    p = pop3_raw()
    starttls_raw(p, b"STLS\r\nUSER injected\r\n", b"+OK")
    p.send(b"PASS x\r\n")
    check(p.line().startswith(b"-ERR"), "injected USER took effect")


@case("tls-required-refuses-cleartext-login")
def _():
    c = imap_raw(RIMAP)
    c.send(b"a CAPABILITY\r\n")
    caps = c.until_tag(b"a")[0]
    check(b"LOGINDISABLED" in caps and b"STARTTLS" in caps, caps)
    c.send(b"b LOGIN %s %s\r\n" % (user(1).encode(), PASSWORD.encode()))
    line = c.until_tag(b"b")[-1]
    check(line.startswith(b"b NO [PRIVACYREQUIRED]"), line)
    starttls_raw(c, b"c STARTTLS\r\n", b"c OK")
    c.send(b"d LOGIN %s %s\r\n" % (user(1).encode(), PASSWORD.encode()))
    check(c.until_tag(b"d")[-1].startswith(b"d OK"), "login after STARTTLS")
    p = pop3_raw(RPOP3)
    p.send(b"USER %s\r\n" % user(2).encode())
    check(p.line().startswith(b"-ERR"), "USER accepted before TLS")
    starttls_raw(p, b"STLS\r\n", b"+OK")
    p.send(b"USER %s\r\nPASS %s\r\n" % (user(2).encode(), PASSWORD.encode()))
    check(p.line().startswith(b"+OK") and p.line().startswith(b"+OK"),
          "login after STLS")


@case("tls-200-concurrent-sessions")
def _():
    errors = []
    ctx = tls_ctx()

    def one(i):
        try:
            m = SniIMAP("mail.example.org", IMAPS, ssl_context=ctx,
                                  timeout=60)
            m.login(user(i % NUSERS + 1), PASSWORD)
            if m.select("INBOX")[0] != "OK":
                errors.append(f"{i}: select")
            m.logout()
        except Exception as e:      # noqa: BLE001
            errors.append(f"{i}: {e!r}")
    threads = [threading.Thread(target=one, args=(i,)) for i in range(200)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    check(not errors, f"{len(errors)} failed: {errors[:3]}")


@case("upstream-tls-to-dovecot-with-own-certificate")
def _():
    before = env.dv1.log_text().count("user=<%s>" % user(19))
    m = imaplib.IMAP4(HOST, IMAP)
    check(m.login(user(19), PASSWORD)[0] == "OK", "login via TLS upstream")
    check(m.select("INBOX")[0] == "OK", "SELECT")
    m.logout()
    time.sleep(0.3)
    lines = [ln for ln in env.dv1.log_text().splitlines()
             if "Login: user=<%s>" % user(19) in ln]
    check(len(lines) >= 1 and "TLS" in lines[-1],
          f"Dovecot did not see a TLS login: {lines[-1:]}")
    check(env.dv1.log_text().count("user=<%s>" % user(19)) > before, "no login")


@case("half-close-after-logout-still-gets-replies")
def _():
    # user19 goes through the TLS upstream, user1 through splice
    for u in (user(19), user(1)):
        c = imap_raw()
        c.send(b"a LOGIN %s %s\r\nb LIST \"\" *\r\nd LOGOUT\r\n" %
               (u.encode(), PASSWORD.encode()))
        c.sock.shutdown(socket.SHUT_WR)
        data = b""
        c.sock.settimeout(20)
        while True:
            chunk = c.sock.recv(65536)
            if not chunk:
                break
            data += chunk
        check(b"\r\nb OK" in data and b"\r\nd OK" in data,
              f"{u}: replies lost after half-close: {data[-200:]!r}")


@case("client-sending-after-server-close-loses-no-reply")
def _():
    # The upstream sends 1 MB, a BYE and closes while a slow client has
    # read little of it; the client then sends a few more commands.
    # Closing the client's socket under them would answer them with a
    # reset and destroy the replies not yet read.
    for tls in (False, True):
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.settimeout(20)
        sock.connect((HOST, IMAPS if tls else IMAP))
        if tls:
            sock = tls_ctx().wrap_socket(sock,
                                         server_hostname="mail.example.org")
        port = sock.getsockname()[1]
        data = b""
        while b"\r\n" not in data:
            data += sock.recv(4096)
        env.bigclose_closed.clear()
        sock.sendall(b"a LOGIN bigclose@example.org secret\r\n")
        while b"\r\na OK" not in data:
            chunk = sock.recv(4096)
            check(chunk, f"closed before the login's answer: {data!r}")
            data += chunk
        sock.sendall(b"c BIG\r\n")
        # The upstream has closed and relay has read all it sent (nothing
        # queued on relay's socket, or the socket gone) before the client
        # says more: a reset from the upstream cannot destroy anything.
        check(env.bigclose_closed.wait(15), "the upstream did not close")
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            ss = subprocess.run(["ss", "-tnH", "dport", "=",
                                 f":{BIGCLOSE_PORT}"],
                                capture_output=True, text=True).stdout
            queued = [int(ln.split()[1]) for ln in ss.splitlines()
                      if ln.split()[0] != "TIME-WAIT"]
            if not any(queued):
                break
            time.sleep(0.05)
        else:
            check(False, f"relay did not read the upstream's reply: {ss!r}")
        if tls:
            # relay logs the session closed once tlsproc has ended the
            # plain side: the moment a careless close would bite
            closed = re.compile(r"relay: session \w+: closed \(%s:%d\)" %
                                (re.escape(HOST), port))
            deadline = time.monotonic() + 15
            while not closed.search(env.postern.log_text()) and \
                    time.monotonic() < deadline:
                time.sleep(0.05)
            check(closed.search(env.postern.log_text()),
                  "relay did not end the TLS session")
        got = b""
        try:
            # the first reaches the closed upstream, which resets relay's
            # socket; the next ones find no upstream at all
            for i in range(4):
                sock.sendall(b"d%d NOOP\r\n" % i)
                time.sleep(0.3)
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                got += chunk
        except OSError as e:
            check(False, f"tls={tls}: {e} after {len(got)} bytes")
        check(len(got) >= BIGCLOSE_BYTES * 0.99 and
              got.endswith(b"\r\nc OK BIG done\r\n"),
              f"tls={tls}: {len(got)} bytes, ends {got[-40:]!r}")
        sock.close()


@case("upstream-reset-after-its-reply-loses-no-reply")
def _():
    # The upstream sends 192 KiB, a BYE and the tagged OK, then resets
    # the connection (an abortive close) while a slow client has read
    # little of it.  The client reads the rest slowly and keeps sending
    # commands meanwhile: relay must not close its socket under them
    # (the kernel would answer them with a reset, destroying what is
    # still on its way), but pass everything on and then close.
    sock, port = raw_imap_session(IMAP, "bigclose@example.org",
                                  rcvbuf=4096)
    sock.sendall(b"c BIGRST\r\n")
    time.sleep(2)                       # the reset comes after 1 s
    got = b""
    sock.settimeout(20)
    n = 0
    while True:
        try:
            chunk = sock.recv(4096)
        except ConnectionResetError:
            break
        if not chunk:
            break
        got += chunk
        n += 1
        if n % 8 == 0:
            try:
                sock.sendall(b"d NOOP\r\n")
            except OSError:
                pass
        time.sleep(0.005)
    sock.close()
    # (relay logs 'upstream connection lost' when its read meets the
    # reset; a write of the client's meeting it first takes the error,
    # and the read then sees a plain end: not checked, timing decides)
    check(len(got) >= BIGCLOSE_BYTES * 0.99 and
          got.endswith(b"\r\nc OK BIG done\r\n"),
          f"{len(got)} bytes, ends {got[-40:]!r}")


def relay_logged(p, pattern, secs):
    """Wait until relay logs a line matching pattern; returns it or None."""
    rx = re.compile(r"relay: " + pattern)
    deadline = time.monotonic() + secs
    while True:
        m = rx.search(p.log_text())
        if m or time.monotonic() > deadline:
            return m
        time.sleep(0.1)


def relay_closed(port, secs):
    """relay's 'closed' line for the hooks session from port, or None."""
    return relay_logged(env.hooks, r"session (\w+): closed \(%s:%d\)" %
                        (re.escape(HOST), port), secs)


def raw_imap_session(port, u, rcvbuf=None, tls=False):
    """A logged-in IMAP session on a plain socket (or implicit TLS);
    returns (sock, local port)."""
    sock = socket.socket()
    if rcvbuf:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.settimeout(20)
    sock.connect((HOST, port))
    if tls:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        sock = ctx.wrap_socket(sock)
    data = b""
    while b"\r\n" not in data:
        data += sock.recv(4096)
    sock.sendall(b"a LOGIN %s %s\r\n" % (u.encode(), PASSWORD.encode()))
    while b"\r\na OK" not in data and not data.startswith(b"a OK"):
        chunk = sock.recv(4096)
        check(chunk, f"closed before the login's answer: {data!r}")
        data += chunk
        check(b"\r\na NO" not in data, f"login refused: {data!r}")
    return sock, sock.getsockname()[1]


@case("client-left-open-after-upstream-close-is-ended")
def _():
    # the hooks postern has timeout linger 2: a client that reads the
    # upstream's BYE and FIN but never closes must not hold relay's
    # descriptors for ever; user 19's upstream speaks TLS (the bridge)
    for u in (user(3), user(19)):
        sock, port = raw_imap_session(HIMAP, u)
        sock.sendall(b"z LOGOUT\r\n")
        got = b""
        while True:
            chunk = sock.recv(4096)
            if not chunk:
                break
            got += chunk
        check(b"z OK" in got, f"{u}: no LOGOUT answer: {got!r}")
        t0 = time.monotonic()
        closed = relay_closed(port, 20)
        check(closed is not None, f"{u}: relay kept the session of a "
              "client that never closed")
        check(relay_logged(
            env.hooks, r"session %s: client still open 2 s after the "
            r"upstream closed" % closed.group(1), 0),
            "the session ended, but not by the linger time-out")
        check(u == user(3) or time.monotonic() - t0 > 0.5,
              f"{u}: closed before the linger time-out")
        sock.close()


@case("tls-upstream-half-closed-slow-client-gets-everything")
def _():
    # LOGOUT and a half-close behind a large FETCH, then the client
    # reads nothing for twice timeout linger (but less than timeout
    # stall, 6): the upstream's replies still flow once it reads (a slow
    # reader is not cut off by linger)
    # the upstream is a fake that always sends all of its reply (see
    # bulk_upstream); relay reaches it through its TLS bridge
    u = "bulk@example.org"
    body = message(8 * 1024 * 1024, seed=19)
    sock, port = raw_imap_session(HIMAP, u, rcvbuf=4096)
    sock.sendall(b"s SELECT INBOX\r\nf FETCH * BODY[]\r\nz LOGOUT\r\n")
    sock.shutdown(socket.SHUT_WR)
    time.sleep(4)
    got = bytearray()
    sock.settimeout(30)
    while True:
        chunk = sock.recv(1 << 20)
        if not chunk:
            break
        got += chunk
    sock.close()
    check(len(got) >= len(body) and b"\r\nf OK" in got and
          b"\r\nz OK" in got,
          f"{len(got)} of {len(body)}+ bytes, ends {bytes(got[-60:])!r}")


def stall_logged(closed, port, tls):
    """Did relay (or, for an IMAPS client, tlsproc) end the session
    from port because the client took nothing for 6 s?"""
    if relay_logged(env.hooks, r"session %s: client took nothing for 6 s"
                    % closed.group(1), 0):
        return True
    return tls and re.search(r"tlsproc: tls connection from %s:%d: client "
                             r"took nothing for 6 s" % (re.escape(HOST),
                                                        port),
                             env.hooks.log_text())


def stall_cases(seed, keep_sending):
    """A client asks for 8 MB and reads none of it, sending a NOOP every
    second if keep_sending: it must be cut off by the stall time-out (6 s
    on the hooks postern), its NOOPs renewing nothing.  user 7 goes
    through splice, user 19 through relay's TLS bridge, and the IMAPS
    client through tlsproc's bridge, which is nearest to it and usually
    runs out first."""
    for u, port, tls in ((user(7), HIMAP, False), (user(19), HIMAP, False),
                         (user(7), HIMAPS, True)):
        env.dv1.deliver(u, message(8 * 1024 * 1024, seed=seed))
        sock, cport = raw_imap_session(port, u, rcvbuf=4096, tls=tls)
        sock.sendall(b"s SELECT INBOX\r\nf FETCH * BODY[]\r\n")
        closed = None
        deadline = time.monotonic() + 30
        while closed is None and time.monotonic() < deadline:
            if keep_sending:
                try:
                    sock.sendall(b"n NOOP\r\n")
                except (OSError, ValueError):
                    pass    # ended: the log line says how
            closed = relay_closed(cport, 1)
        check(closed is not None, f"{u} tls={tls}: relay waited for ever "
              "on a client that stopped reading")
        check(stall_logged(closed, cport, tls), f"{u} tls={tls}: the "
              "session ended, but not by the stall time-out")
        sock.close()


@case("client-that-stops-reading-is-ended-after-stall")
def _():
    stall_cases(11, keep_sending=False)
    # relay goes on serving
    check(imap_login_ok(HIMAP, user(1)), "login after the stall failed")


@case("client-that-reads-nothing-but-keeps-sending-is-ended-after-stall")
def _():
    stall_cases(12, keep_sending=True)


def flood_and_read(sock, budget, until, secs):
    """Send junk (up to budget bytes) while reading, in one thread (a
    TLS socket cannot be read and written from two), until `until' has
    been read, the peer closes, or secs pass; returns what was read."""
    sock.setblocking(False)
    junk = b"x NOOP " + b"j" * 65536 + b"\r\n"
    again = (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError)
    got, sent = b"", 0
    deadline = time.monotonic() + secs
    while until not in got and time.monotonic() < deadline:
        wr = [sock] if sent < budget else []
        r, w, _ = select.select([sock], wr, [], 0.5)
        if r or (isinstance(sock, ssl.SSLSocket) and sock.pending()):
            try:
                chunk = sock.recv(65536)
            except again:
                chunk = None
            except OSError:
                break
            if chunk == b"":
                break
            got += chunk or b""
        if w:
            try:
                sent += sock.send(junk)
            except again:
                pass
            except OSError:
                budget = sent          # the far side is gone: stop
    return got


@case("upstream-busy-sending-may-leave-client-bytes-unread-past-stall")
def _():
    # the upstream streams a reply for 12 s (twice timeout stall) and
    # reads nothing meanwhile, while the client pipelines far more than
    # the buffers hold: the writes towards the upstream wait for longer
    # than the stall time, but its replies flow, so the session is kept
    # and the client gets them all; through splice, the TLS bridge, and
    # tlsproc (an IMAPS client)
    for u, port, tls in (("trickle@example.org", HIMAP, False),
                         ("trickletls@example.org", HIMAP, False),
                         ("trickle@example.org", HIMAPS, True)):
        sock, _ = raw_imap_session(port, u, tls=tls)
        sock.sendall(b"t TRICKLE\r\n")
        got = flood_and_read(sock, 64 << 20, b"t OK TRICKLE done", 40)
        rows = got.count(b"\r\n* ") + got.startswith(b"* ")
        check(b"t OK TRICKLE done" in got,
              f"{u} tls={tls}: cut off after {rows} of {TRICKLE_ROWS} "
              f"rows: {got[-60:]!r}")
        sock.close()


@case("tls-bad-handshakes-affect-only-themselves")
def _():
    c = Raw(IMAPS)
    c.send(b"a LOGIN cleartext on a TLS port\r\n")
    check(c.closed(10), "clear text on TLS port not closed")
    stall = socket.create_connection((HOST, HIMAPS))
    stall.send(b"\x16\x03\x01")         # a record header, then nothing
    m = SniIMAP("mail.example.org", IMAPS, ssl_context=tls_ctx())
    check(m.login(user(1), PASSWORD)[0] == "OK", "login during bad ones")
    m.logout()
    stall.settimeout(10)
    t0 = time.monotonic()
    try:
        while stall.recv(1024):
            pass
    except OSError:
        pass
    check(time.monotonic() - t0 < 9, "stalled handshake not timed out")


def search_process_memory(pid, patterns):
    """Which patterns occur in a process's readable memory (root only).

    Reads region by region in chunks (overlapping by the longest pattern)
    and skips huge reservations such as a sanitizer's shadow memory.
    Returns (found flags, bytes read)."""
    found = [False] * len(patterns)
    overlap = max(len(p) for p in patterns)
    total = 0
    with open(f"/proc/{pid}/maps") as maps, \
            open(f"/proc/{pid}/mem", "rb", 0) as mem:
        for line in maps:
            parts = line.split()
            if "r" not in parts[1] or (len(parts) > 5 and
                                       parts[5].startswith("[v")):
                continue
            start, end = (int(x, 16) for x in parts[0].split("-"))
            if end - start > (1 << 30):
                continue
            tail = b""
            pos = start
            while pos < end:
                size = min(16 << 20, end - pos)
                try:
                    mem.seek(pos)
                    chunk = mem.read(size)
                except (OSError, ValueError, OverflowError):
                    break
                if not chunk:
                    break
                total += len(chunk)
                window = tail + chunk
                for k, pat in enumerate(patterns):
                    found[k] = found[k] or pat in window
                tail = window[-overlap:]
                pos += size
    return found, total


def private_key_patterns(keyfile):
    out = subprocess.run(["openssl", "pkey", "-in", keyfile, "-text",
                          "-noout"], capture_output=True, text=True,
                         check=True).stdout
    hexpart = out.split("priv:")[1].split("pub:")[0]
    scalar = bytes.fromhex("".join(c for c in hexpart if c in
                                   "0123456789abcdef"))[-32:]
    with open(keyfile) as f:
        pem_line = f.read().splitlines()[1][:40].encode()
    return [scalar, scalar[::-1], pem_line]


@case("tls-private-key-only-in-tlsproc-memory")
def _():
    # a TLS session first, so every process has done its TLS work
    m = SniIMAP("mail.example.org", IMAPS, ssl_context=tls_ctx())
    m.login(user(1), PASSWORD)
    patterns = private_key_patterns(env.certs["mail.example.org"][1])
    kids = env.postern.children()
    found = {}
    for role, pid in list(kids.items()) + [("parent", env.postern.pid)]:
        found[role], total = search_process_memory(pid, patterns)
        check(total > 100000, f"could not read {role}'s memory")
    m.logout()
    for role in ("authproc", "relay", "parent"):
        check(not any(found[role]), f"key bytes in {role}: {found[role]}")
    check(any(found["tlsproc"]), "key not found in tlsproc: the test "
          "cannot see what it looks for")


@case("config-check-reports-bad-keypairs")
def _():
    org_cert, _ = env.certs["mail.example.org"]
    _, net_key = env.certs["mail.example.net"]
    bad = os.path.join(env.work, "badkeys.conf")
    for cert, key, want in ((org_cert, net_key, "keypair mismatched"),
                            (org_cert, "/nonexistent/key.pem",
                             "/nonexistent/key.pem")):
        with open(bad, "w") as f:
            f.write(f'tls keypair "mismatched" {{\n certificate "{cert}"\n'
                    f' key "{key}"\n}}\n'
                    f'listen on 127.0.0.1 port 39993 imap tls keypair '
                    f'"mismatched"\n')
        r = subprocess.run([env.postern.binary, "-n", "-f", bad],
                           capture_output=True, text=True)
        check(r.returncode != 0, f"accepted {cert} with {key}")
        check(want in r.stderr, f"no {want!r} in {r.stderr!r}")


@case("upstream-tls-wrong-name-refused")
def _():
    # a second postern whose upstream certificate name does not match
    conf = os.path.join(env.work, "wrongname.conf")
    write_config(conf, [(HOST, 29243, "imap")],
                 {"onetls": (HOST, DV1_IMAPS, 0,
                             f'tls ca "{env.certs["imap.internal"][0]}"',
                             'tls name "not-the-name.internal"')},
                 [("default", "", "onetls")])
    p = Postern(env.postern.binary, conf,
                os.path.join(env.work, "wrongname.log"), [29243])
    p.start()
    try:
        c = imap_raw(29243)
        lines = imap_login_lines(c, b"a", b"a LOGIN %s %s\r\n" %
                                 (user(1).encode(), PASSWORD.encode()))
        check(lines[-1].startswith(b"a NO [UNAVAILABLE]"), lines)
        # the parent writes children's log lines as they arrive
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and \
                "not-the-name.internal" not in p.log_text():
            time.sleep(0.1)
        check("not-the-name.internal" in p.log_text() or
              "name" in p.log_text().split("failed:")[-1],
              "verification failure not logged")
    finally:
        p.stop()


AUDIT_FIELDS = {"time", "node", "session", "protocol", "listener", "tls",
                "sni", "client_ip", "client_port", "user", "mechanism",
                "result", "reason", "upstream", "duration_ms"}


def utc_now_iso():
    """The audit log's time format, for "records since" filters."""
    import datetime
    now = datetime.datetime.now(datetime.timezone.utc)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"


def audit_records(path=None, since=""):
    import json
    with open(path or env.audit, "rb") as f:
        data = f.read()
    records = []
    for line in data.split(b"\n")[:-1]:
        rec = json.loads(line)          # every line must be valid JSON
        check(set(rec) == AUDIT_FIELDS, f"fields {sorted(rec)}")
        if rec["time"] >= since:
            records.append(rec)
    return records, data


def attempt(port, script, tls=False, source=HOST):
    """Run script(conn) on a new connection from source; return the
    client's (address, port), which names its audit record: ports alone
    are reused within seconds."""
    c = Raw.__new__(Raw)
    c.sock = socket.create_connection((HOST, port), timeout=20,
                                      source_address=(source, 0))
    c.buf = b""
    c.timeout = 20
    if tls:
        c.sock = tls_ctx().wrap_socket(c.sock,
                                       server_hostname="mail.example.org")
    local = c.sock.getsockname()[:2]
    c.line()                            # greeting
    script(c)
    c.close()
    return local


@case("audit-one-record-per-attempt")
def _():
    evil = b'ev"il\\ \r\n{"result":"ok"} \xff\xfe \xc3\xa9@example.org'
    ev = evil.decode("utf-8", "replace")
    blob = plain(user(20), PASSWORD)

    def login(u, p, tag=b"a"):
        def run(c):
            c.send(b"%s LOGIN {%d+}\r\n%s {%d+}\r\n%s\r\n" %
                   (tag, len(u), u, len(p), p))
            c.until_tag(tag)
        return run

    def sasl(c):
        c.send(b"a AUTHENTICATE PLAIN %s\r\n" % blob.encode())
        c.until_tag(b"a")

    def sasl_bad(c):
        c.send(b"a AUTHENTICATE PLAIN !!!notbase64\r\n")
        c.until_tag(b"a")

    def sasl_cancel(c):
        c.send(b"a AUTHENTICATE PLAIN\r\n")
        c.line()
        c.send(b"*\r\n")
        c.until_tag(b"a")

    def pop_wrong(c):
        c.send(b"USER %s\r\nPASS wrong\r\n" % user(18).encode())
        c.line()
        c.line()

    expect = [
        (IMAP, login(user(20).encode(), PASSWORD.encode()), False,
         {"result": "ok", "user": user(20), "upstream": "two",
          "mechanism": "login", "protocol": "imap", "tls": None}),
        (IMAP, login(b"auditbad@example.org", b"wrong"), False,
         {"result": "bad-credentials", "upstream": "one"}),
        (IMAP, sasl, False, {"result": "ok", "mechanism": "plain"}),
        (IMAP, sasl_bad, False, {"result": "protocol-error"}),
        (IMAP, sasl_cancel, False, {"result": "aborted"}),
        (IMAP, login(b"down@example.org", b"x"), False,
         {"result": "upstream-unavailable", "upstream": "dead"}),
        (RIMAP, login(user(1).encode(), PASSWORD.encode()), False,
         {"result": "protocol-error", "reason": "TLS required"}),
        (IMAPS, login(user(1).encode(), PASSWORD.encode()), True,
         {"result": "ok", "tls": "TLSv1.3", "sni": "mail.example.org"}),
        (IMAP, login(evil, b"wrong"), False,
         {"result": "bad-credentials", "user": ev}),
        (POP3, pop_wrong, False,
         {"result": "bad-credentials", "mechanism": "user-pass",
          "protocol": "pop3"}),
    ]
    since = utc_now_iso()
    ports = [(attempt(port, fn, tls, f"127.0.0.{40 + i}"), want)
             for i, (port, fn, tls, want) in enumerate(expect)]
    time.sleep(1.0)
    records, raw = audit_records(since=since)
    for cport, want in ports:
        mine = [r for r in records
                if (r["client_ip"], r["client_port"]) == cport]
        check(len(mine) == 1, f"port {cport}: {len(mine)} records, want 1 "
              f"({want})")
        for k, v in want.items():
            check(mine[0][k] == v, f"port {cport}: {k}={mine[0][k]!r}, "
                  f"want {v!r}")
        check(mine[0]["node"] == "regress", f"node in {mine[0]}")
    check(PASSWORD.encode() not in raw and blob.encode() not in raw,
          "a password or SASL blob is in the audit log")


@case("audit-reopened-after-rename-and-sigusr1")
def _():
    rotated = env.audit + ".1"
    os.rename(env.audit, rotated)
    os.kill(env.postern.pid, signal.SIGUSR1)
    deadline = time.monotonic() + 10
    while not os.path.exists(env.audit) and time.monotonic() < deadline:
        time.sleep(0.05)
    check(os.path.exists(env.audit), "audit log not reopened")
    before = os.path.getsize(rotated)
    since = utc_now_iso()
    cport = attempt(IMAP, lambda c: (c.send(b"a LOGIN %s %s\r\n" % (
        user(2).encode(), PASSWORD.encode())), c.until_tag(b"a")),
        source="127.0.0.60")
    time.sleep(0.5)
    records, _ = audit_records(since=since)
    check([r for r in records
           if (r["client_ip"], r["client_port"]) == cport],
          "record not in the new file")
    check(os.path.getsize(rotated) == before, "old file still written")


def imap_from(source, port=None):
    """An IMAP connection from a chosen loopback source address."""
    c = Raw.__new__(Raw)
    c.sock = socket.create_connection((HOST, port or TIMAP), timeout=30,
                                      source_address=(source, 0))
    c.buf = b""
    c.timeout = 30
    greeting = c.line()
    return c, greeting


def tlogin(c, tag, u, p):
    c.send(b"%s LOGIN %s %s\r\n" % (tag, u.encode(), p.encode()))
    return c.until_tag(tag)[-1]


def throttle_records():
    records, _ = audit_records(os.path.join(env.work, "throttle.log"))
    return records


@case("throttle-ip-1000-wrong-passwords")
def _():
    answers = []
    n = 0
    while n < 1000:
        c, _ = imap_from("127.0.0.1")
        for _ in range(3):             # "limit attempts 3" per connection
            if n == 1000:
                break
            # a new user each time: only the address limit applies
            answers.append(tlogin(c, b"t%d" % n, f"throttleip{n}@example.org",
                                  "wrong"))
            n += 1
        c.close()
    nos = [a for a in answers if b"Slow down, address" not in a]
    throttled = [a for a in answers if b"[UNAVAILABLE] Slow down, address"
                 in a]
    check(len(nos) == 10 and len(throttled) == 990,
          f"{len(nos)} reached the upstream, {len(throttled)} throttled")
    time.sleep(0.5)
    upstream = [ln for ln in env.dv1.log_text().splitlines()
                if "user=<throttleip" in ln]
    check(len(upstream) <= 10, f"Dovecot saw {len(upstream)} attempts")
    recs = [r for r in throttle_records()
            if r["user"].startswith("throttleip")]
    results = [r["result"] for r in recs]
    check(results.count("bad-credentials") == 10 and
          results.count("throttled-ip") == 990 and len(recs) == 1000,
          f"audit: {len(recs)} records, {set(results)}")


@case("throttle-other-and-allowlisted-addresses-unaffected")
def _():
    c, _ = imap_from("127.0.0.2")
    check(tlogin(c, b"a", user(1), PASSWORD).startswith(b"a OK"),
          "second address throttled")
    c.close()
    # 127.0.0.3 is allow-listed: 12 attempts (over the address limit of
    # 10), spread over users so the per-user limit is not what stops them
    results = []
    for i in range(12):
        c, _ = imap_from("127.0.0.3")
        results.append(tlogin(c, b"a", user(1 + 2 * (i % 5)), PASSWORD))
        c.close()
    check(all(r.startswith(b"a OK") for r in results),
          f"allow-listed address refused: {results}")


@case("throttle-user-across-many-addresses")
def _():
    victim = "throttleuser@example.org"
    answers = []
    for i in range(12):
        c, _ = imap_from(f"127.0.0.{10 + i}")
        answers.append(tlogin(c, b"u", victim, "wrong"))
        c.close()
    throttled = [a for a in answers if b"Slow down, user" in a]
    check(len(throttled) == 7, f"{len(throttled)} of 12 throttled: "
          f"{answers}")
    time.sleep(0.5)                     # the parent writes asynchronously
    recs = [r for r in throttle_records() if r["user"] == victim]
    check([r["result"] for r in recs].count("throttled-user") == 7,
          "audit does not show 7 throttled-user records")


@case("throttle-parallel-logins-cannot-outrun-failure-limit")
def _():
    # three connections send a wrong password at once; "failures ip-user
    # 2" must hold although no failure is known when they are checked
    conns = [imap_from("127.0.0.30")[0] for _ in range(3)]
    for i, c in enumerate(conns):
        c.send(b"p%d LOGIN parallel@example.org wrong\r\n" % i)
    answers = [c.until_tag(b"p%d" % i)[-1] for i, c in enumerate(conns)]
    for c in conns:
        c.close()
    throttled = [a for a in answers if b"[UNAVAILABLE]" in a]
    check(len(throttled) == 1, f"answers: {answers}")
    time.sleep(0.5)
    upstream = [ln for ln in env.dv1.log_text().splitlines()
                if "user=<parallel@example.org>" in ln]
    check(len(upstream) <= 2, f"Dovecot saw {len(upstream)} attempts")


@case("throttle-concurrent-preauth-connections-per-address")
def _():
    held = [imap_from("127.0.0.4")[0] for _ in range(3)]
    c, greeting = imap_from("127.0.0.4")
    check(greeting.startswith(b"* BYE"), f"4th connection got {greeting!r}")
    other, greeting = imap_from("127.0.0.5")
    check(greeting.startswith(b"* OK"), "another address was refused")
    for h in held:
        h.close()
    other.close()


@case("throttle-concurrent-tls-handshakes-per-address")
def _():
    # connections that never start TLS hold tlsproc, not authproc: the
    # same per-address limit (3) bounds them before any handshake
    def raw_from(source):
        return socket.create_connection((HOST, TIMAPS), timeout=10,
                                        source_address=(source, 0))

    def imaps_greeting(source):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        with ctx.wrap_socket(raw_from(source)) as t:
            return t.recv(4096)

    held = [raw_from("127.0.0.9") for _ in range(3)]
    time.sleep(0.3)
    extra = raw_from("127.0.0.9")
    extra.settimeout(3)                 # timeout handshake is 10 s
    try:
        got = extra.recv(4096)
    except ConnectionResetError:
        got = b""
    except socket.timeout:
        got = None
    check(got == b"", f"4th handshake from one address: {got!r}, "
          "not closed at once")
    extra.close()
    line = re.compile(r"tlsproc: refused 127\.0\.0\.9:\d+: too many TLS "
                      r"handshakes from it at once")
    check(env.throttle.log_has(line), "refusal not logged")
    check(imaps_greeting("127.0.0.10").startswith(b"* OK"),
          "another address was refused")
    for h in held:
        h.close()
    # tlsproc notices the closes when it next runs: give it time
    deadline = time.monotonic() + 10
    while True:
        try:
            greeting = imaps_greeting("127.0.0.9")
        except (OSError, ssl.SSLError):
            greeting = b""
        if greeting.startswith(b"* OK") or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    check(greeting.startswith(b"* OK"),
          "the address was still refused once its handshakes were gone")


@case("throttle-attempts-per-connection-and-growing-delay")
def _():
    c, _ = imap_from("127.0.0.6")
    times = []
    for i in range(3):
        t0 = time.monotonic()
        # a new user each time, so only the delay grows
        line = tlogin(c, b"d%d" % i, f"delay{i}@example.org", "wrong")
        times.append(time.monotonic() - t0)
        check(line.startswith(b"d%d NO" % i), line)
    # "throttle delay 200 max 800": at least 0.2, 0.4, 0.8 s before each NO
    for t, least in zip(times, (0.2, 0.4, 0.8)):
        check(t >= least, f"answers came after {times}")
    c.send(b"d3 LOGIN delay@example.org wrong\r\n")
    line = c.line()
    check(line.startswith(b"d3 NO [LIMIT]"), f"4th attempt got {line!r}")
    line = c.line()
    check(line.startswith(b"* BYE"), f"then {line!r}")
    check(c.closed(), "not closed after too many attempts")


@case("preauth-total-time-limit")
def _():
    c = imap_raw(HIMAP)                 # timeout pre-auth-total 4
    t0 = time.monotonic()
    got_bye = False
    while time.monotonic() - t0 < 20:
        c.send(b"n NOOP\r\n")
        line = c.line()
        if line.startswith(b"* BYE"):
            got_bye = True
            break
        time.sleep(0.5)
    check(got_bye, "busy pre-auth session never ended")
    check(time.monotonic() - t0 >= 3.5, "ended too early")


@case("demo-script-runs")
def _():
    r = subprocess.run([sys.executable, os.path.join(ROOT, "regress",
                                                      "demo.py"),
                        "--postern", env.postern.binary, "--once"],
                       capture_output=True, text=True, timeout=120)
    check(r.returncode == 0, f"demo failed ({r.returncode}): "
          f"{(r.stdout + r.stderr)[-800:]}")
    for want in ("IMAP  user1@example.org -> OK",
                 "POP3  user2@example.org -> +OK",
                 "IMAPS mail.example.net -> TLS"):
        check(want in r.stdout, f"demo output lacks {want!r}")


BENCH_RATIOS = ("fetch_vs_direct", "fetch_vs_nginx_tuned",
                "login_rate_vs_nginx", "cpu_per_login_vs_nginx",
                "cpu_per_pop3_login_vs_nginx", "cpu_per_imaps_login_vs_nginx",
                "rss_per_session_vs_nginx", "idle_100k_held",
                "rss_per_session_100k_vs_nginx",
                "tls2_vs_1_imaps_login_rate", "fetch_cpu_bound_vs_direct",
                "http_rps_vs_nginx", "http_cpu_per_request_vs_nginx",
                "http_download_vs_nginx_tuned", "http_cpu_per_gb_vs_nginx",
                "https_conn_rate_vs_nginx", "https_cpu_per_conn_vs_nginx")


@case("bench-harness-runs-end-to-end")
def _():
    # every scenario for a moment on its own ports (20500-20575): the
    # harness must not rot; no speed is asserted
    tools = os.path.join(os.path.dirname(env.binary), "bench")
    # the time-out only catches a hang: a loaded machine is slow, not wrong
    r = subprocess.run([sys.executable, os.path.join(ROOT, "bench", "run"),
                        "--smoke", "-q", "--postern", env.binary,
                        "--tools", tools],
                       capture_output=True, text=True, timeout=600)
    out = r.stdout + r.stderr
    check(r.returncode == 0, f"bench/run --smoke failed ({r.returncode}): "
          f"{out[-1500:]}")
    for name in BENCH_RATIOS:
        m = re.search(rf"^RATIO {name} ([0-9]+(\.[0-9]+)?)$", r.stdout,
                      re.M)
        check(m is not None, f"no number for RATIO {name}: {out[-1500:]}")


@case("no-unexpected-child-deaths-or-sanitizer-reports")
def _():
    # hooks: the forbidden call, the forged request, and relay's forged
    # result that restarts authproc
    for p, allowed, n in ((env.postern, "relay", 1),
                          (env.hooks, "authproc", 3)):
        log = p.log_text()
        for bad in ("AddressSanitizer", "runtime error:", "LeakSanitizer",
                    "UndefinedBehaviorSanitizer"):
            check(bad not in log, f"sanitizer report in {p.log_path}")
        deaths = [ln for ln in log.splitlines()
                  if "terminated by signal" in ln or "exited with status" in ln]
        # only the children the tests killed on purpose died
        check(len(deaths) == n and all(allowed in d for d in deaths),
              f"unexpected child deaths: {deaths}")


@case("tls-clients-vanishing-mid-fetch-leave-tlsproc-serving")
def _():
    u = user(7)
    env.dv1.deliver(u, message(2 * 1024 * 1024, seed=7))
    # eight clients fetch in a loop and vanish mid-transfer (--abrupt)
    subprocess.run([os.path.join(os.path.dirname(env.binary), "bench",
                                 "loadgen"), "-m",
                    "imap-fetch", "-h", HOST, "-p", str(IMAPS), "--tls",
                    "--insecure", "-c", "8", "-d", "1", "--abrupt", "-u", u,
                    "-w", PASSWORD, "-q"], timeout=60,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1)
    c = SniIMAP("mail.example.org", IMAPS, ssl_context=tls_ctx(),
                timeout=15)
    typ, _ = c.login(user(1), PASSWORD)
    c.logout()
    check(typ == "OK", "IMAPS login after vanished clients failed")


@case("sigterm-stops-everything")
def _():
    kids = env.postern.children()
    rc = env.postern.stop()
    check(rc == 0, f"exit status {rc}")
    for role, pid in kids.items():
        check(not os.path.exists(f"/proc/{pid}"), f"{role} still running")
    try:
        socket.create_connection((HOST, IMAP), timeout=1).close()
        check(False, "still listening")
    except OSError:
        pass
    env.postern = None


# ---------------------------------------------------------------- main


# ------------------------------------------- throttling shared between nodes

class SharedNodes:
    """Two postern nodes whose throttle counters live in one memcached."""

    def __init__(self):
        self.mc = Memcached(MEMCACHED, os.path.join(env.work,
                                                    "memcached.log"))
        self.nodes = []

    def __enter__(self):
        self.mc.start()
        try:
            for i, port in enumerate((SHARED_A, SHARED_B)):
                conf = os.path.join(env.work, f"shared{i}.conf")
                write_config(
                    conf, [(HOST, port, "imap")],
                    {"one": (HOST, DV1[0], DV1[1])},
                    [("domain", "example.org", "one")],
                    extra=f'node "shared{i}"\n'
                    f'audit file "{env.work}/shared{i}.audit"\n'
                    "throttle ip 1000000 per 60\n"
                    'throttle user 6 per 600 message "Shared user limit"\n'
                    "throttle failures ip 4 per 600 "
                    'message "Shared failure limit"\n'
                    "throttle failures ip-user 1000000 per 60\n"
                    "limit connections-per-ip 0\nlimit attempts 0\n"
                    "throttle store memcache\n"
                    f'memcache server "127.0.0.1" port {MEMCACHED}\n'
                    "memcache backoff 2\n")
                node = Postern(env.binary, conf,
                               os.path.join(env.work, f"shared{i}.log"),
                               [port])
                node.start()
                self.nodes.append(node)
        except Exception:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc):
        for node in self.nodes:
            node.stop()
        self.mc.stop()


def shared_login(port, u, p, source=HOST):
    c, _ = imap_from(source, port)
    try:
        return tlogin(c, b"s", u, p)
    finally:
        c.close()


@case("throttle-shared-two-nodes-one-limit")
def _():
    with SharedNodes() as sn:
        # the user limit (6) holds across both nodes together
        u = user(13)
        answers = [shared_login((SHARED_A, SHARED_B)[i % 2], u, PASSWORD)
                   for i in range(10)]
        ok = [a for a in answers if a.startswith(b"s OK")]
        refused = [a for a in answers
                   if a.startswith(b"s NO [UNAVAILABLE] Shared user limit")]
        check(len(ok) == 6 and len(refused) == 4,
              f"{len(ok)} logged in, {len(refused)} refused: {answers}")
        # so does the failure limit per address (4), over many users
        answers = [shared_login((SHARED_A, SHARED_B)[i % 2],
                                f"sharedfail{i}@example.org", "wrong",
                                source="127.0.0.70") for i in range(8)]
        failed = [a for a in answers if b"AUTHENTICATIONFAILED" in a]
        refused = [a for a in answers if b"Shared failure limit" in a]
        check(len(failed) == 4 and len(refused) == 4,
              f"{len(failed)} failed, {len(refused)} refused: {answers}")
        # nothing the nodes asked memcached for was a raw user name
        keys = sn.mc.command(b"lru_crawler metadump all\r\n")
        check(b"sharedfail" not in keys and b"user13" not in keys,
              "user names in memcached keys")
        check(keys.count(b"key=postern%3Ac%3A") >= 3 or
              keys.count(b"key=postern:c:") >= 3,
              f"no counter keys in memcached: {keys[:300]!r}")


@case("throttle-memcached-down-limits-hold-per-node")
def _():
    with SharedNodes() as sn:
        sn.mc.stop()
        u = user(15)
        per_node = []
        for port in (SHARED_A, SHARED_B):
            answers = [shared_login(port, u, PASSWORD) for _ in range(8)]
            per_node.append(sum(a.startswith(b"s OK") for a in answers))
            check(all(a.startswith(b"s OK") or b"Shared user limit" in a
                      for a in answers), f"unexpected answers {answers}")
        check(per_node == [6, 6], f"logins per node {per_node}")
        for node in sn.nodes:
            check(node.log_has("memcached unavailable") and
                  node.log_has("this node's own meanwhile"),
                  "fallback not logged")
        # back again: after the back-off the nodes share once more
        sn.mc.start()
        time.sleep(2.5)
        shared_login(SHARED_A, user(17), PASSWORD)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and \
                "memcached reachable again" not in sn.nodes[0].log_text():
            time.sleep(0.2)
            shared_login(SHARED_A, user(17), PASSWORD)
        check(sn.nodes[0].log_has("memcached reachable again"),
              "return of memcached not noticed")


def stuck_counters_attempt():
    """A client that reads nothing until its write timer (1 s) has run
    out, then a little now and then, so that the session outlives the
    counters' wait (2 s) with its goodbye still queued in authproc."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2048)
    sock.settimeout(20)
    sock.connect((HOST, STUCK_MC_IMAP))
    # replies the client does not read fill the kernel's buffers and
    # wait in authproc (below the 64 KiB at which it stops reading:
    # about 52 KiB in all, of which the kernel holds about 13)
    sock.sendall(b"n NOOP\r\n" * NOOPS + b"a LOGIN %s %s\r\n" %
                 (user(1).encode(), PASSWORD.encode()))
    got = b""
    t0 = time.monotonic()
    # the write timer ran out at about 1 s; each drain of the kernel's
    # buffers lets authproc write again and restarts the timer, while
    # the counters' wait ends at about 2 s
    for at in (1.5, 2.2, 2.9):
        time.sleep(max(0, t0 + at - time.monotonic()))
        want = len(got) + 12000
        while len(got) < want:
            chunk = sock.recv(want - len(got))
            if not chunk:
                return got
            got += chunk
    time.sleep(max(0, t0 + 3.3 - time.monotonic()))
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            break
        got += chunk
    sock.close()
    return got


@case("client-timed-out-while-counters-wait-ends-cleanly")
def _():
    # authproc waits up to 2 s for the shared counters (here a "memcached"
    # that never answers).  A client whose pre-auth write timer runs out
    # meanwhile gets its BYE, and the wait must end with the session:
    # before, the leftover timer revived the wiped login once the client
    # read its output, relay took the empty request for a broken authproc,
    # and the parent killed authproc with every pre-auth session on it.
    conf = os.path.join(env.work, "stuckmc.conf")
    write_config(conf, [(HOST, STUCK_MC_IMAP, "imap")],
                 {"one": (HOST, DV1[0], DV1[1])},
                 [("domain", "example.org", "one")],
                 extra="throttle store memcache\n"
                 f'memcache server "127.0.0.1" port {SILENT_PORT}\n'
                 "memcache timeout 10000\n"
                 "limit connections-per-ip 0\ntimeout pre-auth 1\n")
    # the test build's authproc gives client sockets a 4 KiB send buffer
    node = Postern(env.hooks.binary, conf,
                   os.path.join(env.work, "stuckmc.log"), [STUCK_MC_IMAP],
                   environ={"POSTERN_TEST_CLIENT_SNDBUF": "4096"})
    node.start()
    try:
        happened = 0
        for _ in range(3):
            # a loaded machine may time it otherwise: then the login goes
            # on as usual, and the next try
            got = stuck_counters_attempt()
            if got.endswith(b"* BYE Timeout, closing connection\r\n") \
                    and b"a OK" not in got and b"a NO" not in got:
                happened += 1
                break
        check(happened, "no time-out goodbye in 3 tries: the case did "
              "not happen")
        time.sleep(0.5)
        log = node.log_text()
        check("restarting it" not in log and
              "terminated by signal" not in log and
              "exited with status" not in log,
              "a child died: " + log[-600:])
    finally:
        node.stop()


# ------------------------------------------------ routing: handlers, cache

class Routing:
    """A postern routed by lookup handlers with a memcached route cache,
    and stock nginx's mail proxy asking the same handler."""

    def __enter__(self):
        self.started = []
        self.mc = Memcached(MEMCACHED, os.path.join(env.work,
                                                    "memcached-r.log"))
        self.mc.start()
        self.started.append(self.mc)
        routes = {}
        for i in range(1, NUSERS + 1):
            dv = DV1 if i % 2 else DV2
            routes[user(i)] = (HOST, {"imap": dv[0], "pop3": dv[1]}, None)
        routes["alias@example.org"] = (HOST, {"imap": DV1[0],
                                              "pop3": DV1[1]}, user(1))
        routes["outside@example.org"] = ("192.0.2.1", {"imap": 143,
                                                       "pop3": 110}, None)
        self.handler = LookupHandler(HANDLER2, routes)
        self.handler.start()
        self.started.append(self.handler)
        conf = os.path.join(env.work, "routing.conf")
        write_config(
            conf, [(HOST, ROUTE_IMAP, "imap"), (HOST, ROUTE_POP3, "pop3")],
            {}, [], extra='node "routing"\n'
            f'audit file "{env.work}/routing.audit"\n' + LOOSE_LIMITS +
            f'lookup handler "http://127.0.0.1:{HANDLER1}/lookup"\n'
            f'lookup handler "http://127.0.0.1:{HANDLER2}/lookup"\n'
            "lookup timeout 2000\nlookup retry 60\n"
            'upstream network "127.0.0.1/32"\n'
            f'memcache server "127.0.0.1" port {MEMCACHED}\n'
            "memcache timeout 3000\nmemcache backoff 2\n")
        self.postern = Postern(env.binary, conf,
                               os.path.join(env.work, "routing.log"),
                               [ROUTE_IMAP, ROUTE_POP3])
        self.postern.start()
        self.started.append(self.postern)
        ndir = os.path.join(env.work, "nginx")
        os.makedirs(ndir, exist_ok=True)
        nconf = os.path.join(ndir, "nginx.conf")
        with open(nconf, "w") as f:
            f.write("load_module /usr/lib/nginx/modules/ngx_mail_module.so;\n"
                    f"pid {ndir}/nginx.pid;\n"
                    f"error_log {ndir}/error.log info;\n"
                    "daemon off;\nworker_processes 1;\n"
                    "events { worker_connections 64; }\n"
                    "mail {\n"
                    f"  auth_http 127.0.0.1:{HANDLER2}/lookup;\n"
                    "  proxy_pass_error_message on;\n"
                    f"  server {{ listen 127.0.0.1:{NGINX_IMAP}; "
                    "protocol imap; }\n}\n")
        self.nginx = subprocess.Popen(
            ["nginx", "-p", ndir, "-e", os.path.join(ndir, "error.log"),
             "-c", nconf], stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL)
        if not wait_port(HOST, NGINX_IMAP, 10):
            self.__exit__()
            raise RuntimeError("nginx did not start")
        return self

    def __exit__(self, *exc):
        if getattr(self, "nginx", None) is not None:
            self.nginx.terminate()
            try:
                self.nginx.wait(10)
            except subprocess.TimeoutExpired:
                self.nginx.kill()
                self.nginx.wait()
        for part in reversed(self.started):
            part.stop()


def imap_login_ok(port, u, p=PASSWORD, source=HOST):
    c = imaplib.IMAP4(HOST, port)
    try:
        typ, _ = c.login(u, p)
        typ2, data = c.select("INBOX")
        return typ == "OK" and typ2 == "OK"
    except imaplib.IMAP4.error:
        return False
    finally:
        try:
            c.logout()
        except Exception:  # noqa: BLE001
            pass


@case("lookup-handler-routes-postern-and-stock-nginx-alike")
def _():
    with Routing() as r:
        for u in (user(1), user(2)):
            check(imap_login_ok(ROUTE_IMAP, u), f"postern: {u} failed")
            check(imap_login_ok(NGINX_IMAP, u), f"nginx: {u} failed")
            check(r.handler.count(u, "postern") == 1 and
                  r.handler.count(u, "nginx") == 1,
                  f"handler requests for {u}: {r.handler.requests}")
        # the password stays with postern unless the config says so
        mine = [h for h in r.handler.requests if "Auth-Pass" not in h]
        check(mine and all(h["Auth-Protocol"] == "imap" and
                           h["Client-IP"] == "127.0.0.1" and
                           h["Auth-Method"] == "plain" for h in mine),
              f"request headers {mine}")
        p = poplib.POP3(HOST, ROUTE_POP3)
        p.user(user(4))
        p.pass_(PASSWORD)
        p.quit()
        # an alias logs in as the account the handler names
        check(imap_login_ok(ROUTE_IMAP, "alias@example.org"),
              "alias login failed")
        check(f"user=<{user(1)}>" in env.dv1.log_text(), "no account login")
        # a refusal from the handler reaches the client, not Dovecot
        check(not imap_login_ok(ROUTE_IMAP, "nobody@example.org"),
              "unknown user logged in")
        # handler 1 never answered: marked down, handler 2 did the work
        check("lookup handler 127.0.0.1:24780/lookup: no answer"
              in r.postern.log_text(), "dead handler not noticed")
        # a route outside the upstream networks is refused
        check(not imap_login_ok(ROUTE_IMAP, "outside@example.org"),
              "route outside the networks used")
        check(r.postern.log_has("outside every upstream network"),
              "refusal not logged")


@case("route-cache-skips-handler-and-survives-memcached")
def _():
    with Routing() as r:
        for _ in range(3):
            check(imap_login_ok(ROUTE_IMAP, user(3)), "login failed")
        check(r.handler.count(user(3)) == 1,
              f"{r.handler.count(user(3))} handler requests, not 1")
        # memcached gone: logins go on through the handler
        r.mc.stop()
        for _ in range(2):
            check(imap_login_ok(ROUTE_IMAP, user(5)), "login failed")
        check(r.handler.count(user(5)) == 2, "handler not asked")
        r.mc.start()
        time.sleep(2.5)                 # the back-off
        for _ in range(3):
            check(imap_login_ok(ROUTE_IMAP, user(7)), "login failed")
        check(r.handler.count(user(7)) == 1,
              f"cache not used again: {r.handler.count(user(7))}")
        # memcached stalled: a relayed session keeps moving while a
        # login waits on memcached in relay's worker thread
        busy = imaplib.IMAP4(HOST, ROUTE_IMAP)
        busy.login(user(9), PASSWORD)
        busy.select("INBOX")
        r.mc.pause()
        order = []

        def stalled_login():
            ok = imap_login_ok(ROUTE_IMAP, user(11))
            order.append(("login", ok))
        t = threading.Thread(target=stalled_login)
        t.start()
        time.sleep(0.3)
        for _ in range(20):
            busy.noop()
        order.append(("noops", True))
        t.join(30)
        r.mc.resume()
        busy.logout()
        check(order[0] == ("noops", True) and order[1] == ("login", True),
              f"events in order {order}")


@case("hostile-user-names-leave-memcached-intact")
def _():
    with Routing() as r:
        r.mc.command(b"set postern:r:sentinel 0 0 5\r\nhello\r\n")
        names = [b"evil\r\nset postern:r:sentinel 0 0 4\r\nevil",
                 b"a b c\r\nflush_all", b"e" * 250, b"x" * 300,
                 b"\x01\x02 get postern:r:sentinel"]
        for n in names:
            c = Raw(ROUTE_IMAP)
            c.line()
            c.send(b"a LOGIN {%d+}\r\n%s {6+}\r\nsecret\r\n" % (len(n), n))
            c.until_tag(b"a")
            c.close()
        check(r.mc.command(b"get postern:r:sentinel\r\n") ==
              b"VALUE postern:r:sentinel 0 5\r\nhello\r\nEND\r\n",
              "memcached data changed")
        stats = r.mc.command(b"stats\r\n").decode()
        check("cmd_flush 0" in stats, "flush reached memcached")


def write_pool_config(conf, listeners, upstreams, pools, routes, extra):
    """write_config, with pool blocks (text) before the first route,
    which may name them."""
    write_config(conf, listeners, upstreams, routes, extra=extra)
    with open(conf) as f:
        text = f.read()
    at = text.index("\nroute ") + 1
    with open(conf, "w") as f:
        f.write(text[:at] + pools + text[at:])


@case("pool-with-one-dovecot-stopped-serves-every-user")
def _():
    pusers = [f"puser{i}@pool.example" for i in range(1, 5)]
    hap = ("haproxy_trusted_networks = 127.0.0.0/8\n"
           "service imap-login {\n  inet_listener imap_haproxy {\n"
           f"    address = 127.0.0.1\n    port = {DVP2_HAPROXY}\n"
           "    haproxy = yes\n  }\n}\n")
    d1 = Dovecot("pool1", os.path.join(env.work, "dvp1"), DVP1[0], DVP1[1],
                 pusers, password=PASSWORD)
    d2 = Dovecot("pool2", os.path.join(env.work, "dvp2"), DVP2[0], DVP2[1],
                 pusers, password=PASSWORD, extra_conf=hap)
    conf = os.path.join(env.work, "pool.conf")
    node = None
    try:
        d1.start()
        d2.start()
        write_pool_config(conf, [(HOST, POOL_IMAP, "imap")],
                          {"p1": (HOST, DVP1[0], DVP1[1]),
                           "p2": (HOST, DVP2[0], DVP2[1]),
                           "p2h": (HOST, DVP2_HAPROXY, 0)},
                          'pool "stores" {\n'
                          '\tupstream "p1"\n\tupstream "p2"\n'
                          "\tmax-fails 1\n\tfail-timeout 60\n}\n"
                          'pool "proxied" {\n\tupstream "p2h"\n'
                          "\tproxy-protocol\n}\n",
                          [("user", pusers[3], "proxied"),
                           ("domain", "pool.example", "stores")],
                          extra='node "pool"\n' + LOOSE_LIMITS)
        node = Postern(env.binary, conf, os.path.join(env.work, "pool.log"),
                       [POOL_IMAP])
        node.start()
        for u in pusers[:3]:
            check(imap_login_ok(POOL_IMAP, u), f"{u} failed, both up")
        d1.stop()
        for _ in range(2):
            for u in pusers[:3]:
                check(imap_login_ok(POOL_IMAP, u), f"{u} failed, one down")
        check(node.log_has("upstream p1 marked down"),
              "dead member not marked down")
        # a PROXY v2 header first: Dovecot's haproxy listener needs it
        check(imap_login_ok(POOL_IMAP, pusers[3], source="127.0.0.78"),
              "login through the haproxy listener failed")
        check("rip=127.0.0.1" in d2.log_text() or
              "rip=127.0.0." in d2.log_text(), "no rip in Dovecot's log")
    finally:
        if node is not None:
            node.stop()
        d1.stop()
        d2.stop()


@case("client-login-the-upstream-cannot-take-marks-no-member-down")
def _():
    # a login that needs AUTH=PLAIN (it carries an authzid) put to a
    # member that offers only LOGIN is the client's bad luck, not the
    # member's fault, or any client could mark a pool's members down at
    # will; a member that offers no method at all is at fault
    conns = []

    def greeter(caps):
        def greet(c):
            conns.append(c)
            c.sendall(b"* OK [CAPABILITY IMAP4rev1%s] fake\r\n" % caps)
        return greet
    servers = [listen_in_thread(NOPLAIN_PORT, greeter(b"")),
               listen_in_thread(NOMETHOD_PORT,
                                greeter(b" LOGINDISABLED"))]
    conf = os.path.join(env.work, "noplain.conf")
    node = None
    try:
        write_pool_config(conf, [(HOST, NOPLAIN_IMAP, "imap")],
                          {"loginonly": (HOST, NOPLAIN_PORT, 0),
                           "nomethod": (HOST, NOMETHOD_PORT, 0)},
                          'pool "np" {\n\tupstream "loginonly"\n'
                          "\tmax-fails 1\n\tfail-timeout 60\n}\n"
                          'pool "nm" {\n\tupstream "nomethod"\n'
                          "\tmax-fails 1\n\tfail-timeout 60\n}\n",
                          [("domain", "np.example", "np"),
                           ("domain", "nm.example", "nm")],
                          extra='node "noplain"\n' + LOOSE_LIMITS)
        node = Postern(env.binary, conf,
                       os.path.join(env.work, "noplain.log"),
                       [NOPLAIN_IMAP])
        node.start()
        for i in range(3):
            c = imap_raw(NOPLAIN_IMAP)
            c.send(b"a AUTHENTICATE PLAIN\r\n")
            check(c.line().startswith(b"+"), "no continuation")
            c.send(base64.b64encode(b"admin\0np%d@np.example\0%s" %
                                    (i, PASSWORD.encode())) + b"\r\n")
            line = c.until_tag(b"a")[-1]
            c.close()
            check(line.startswith(b"a NO [UNAVAILABLE]"), f"got {line!r}")
        c = imap_raw(NOPLAIN_IMAP)
        line = tlogin(c, b"b", "nm0@nm.example", PASSWORD)
        c.close()
        check(line.startswith(b"b NO [UNAVAILABLE]"), f"got {line!r}")
        want = "pool nm: upstream nomethod marked down"
        deadline = time.monotonic() + 5     # info lines wait 100 ms
        while want not in node.log_text() and time.monotonic() < deadline:
            time.sleep(0.1)
        log = node.log_text()
        check("needs AUTH=PLAIN, which the upstream does not offer" in log,
              "the case did not happen: " + log[-500:])
        check(want in log, "a member offering no method was not marked down")
        check("upstream loginonly marked down" not in log,
              "a member was marked down for the client's login")
    finally:
        if node is not None:
            node.stop()
        for srv in servers:
            srv.close()
        for c in conns:
            c.close()


@case("lookup-relooks-after-cached-route-refused-and-all-down-tempfails")
def _():
    with Routing() as r:
        # the handler first names the wrong server; the route is cached
        r.handler.routes[user(2)] = (HOST, {"imap": DV1[0],
                                            "pop3": DV1[1]}, None)
        check(not imap_login_ok(ROUTE_IMAP, user(2)), "wrong server let in")
        # the account "moves": a refusal on the cached route drops it
        # and the handler is asked once more
        r.handler.routes[user(2)] = (HOST, {"imap": DV2[0],
                                            "pop3": DV2[1]}, None)
        check(imap_login_ok(ROUTE_IMAP, user(2)), "relook did not happen")
        check(r.handler.count(user(2)) == 2,
              f"handler asked {r.handler.count(user(2))} times")
        check(imap_login_ok(ROUTE_IMAP, user(2)), "new route not cached")
        check(r.handler.count(user(2)) == 2, "new route not used")
        # every handler down and no static route: a temporary failure
        r.handler.stop()
        r.started.remove(r.handler)
        c = Raw(ROUTE_IMAP)
        c.line()
        c.send(b"a LOGIN %s %s\r\n" % (user(20).encode(), b"secret"))
        answer = c.until_tag(b"a")[-1]
        c.close()
        check(answer.startswith(b"a NO [UNAVAILABLE]"), f"answer {answer}")


def tls_lookup_handler(port, routes):
    """A LookupHandler speaking https with the imap.internal certificate
    (the one Dovecot 1 uses for IMAPS)."""
    h = LookupHandler(port, routes)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(*env.certs["imap.internal"])
    h.server.socket = ctx.wrap_socket(h.server.socket, server_side=True)
    return h


class WebBack:
    """A web server that answers every GET with its own name."""

    def __init__(self, port):
        import http.server
        self.paths = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):
                outer.paths.append(self.path)
                body = b"webback %d" % port
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer((HOST, port), Handler)
        threading.Thread(target=self.server.serve_forever,
                         daemon=True).start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


def web_get(port, path):
    """(status, body) of one GET through postern's web listener."""
    import http.client
    c = http.client.HTTPConnection(HOST, port, timeout=15)
    try:
        c.request("GET", path, headers={"Host": "mail.example.org"})
        r = c.getresponse()
        return r.status, r.read()
    finally:
        c.close()


def log_has(node, text, timeout=5.0):
    """Whether postern logs text soon (info lines wait a little)."""
    deadline = time.monotonic() + timeout
    while text not in node.log_text():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def route_cache_key(u):
    """relay's memcached key for a user's route (mckey_derive): one for
    every protocol."""
    return "postern:r:" + hashlib.sha256(bytes([0]) +
                                         u.lower().encode()).hexdigest()


@case("lookup-handler-over-https-verifies-certificate-mail-and-web")
def _():
    # three https handlers in turn: one accepts and never speaks TLS,
    # one has a certificate for another name, one is right
    routes = {}
    for i in range(1, 9):
        dv = DV1 if i % 2 else DV2
        routes[user(i)] = (HOST, {"imap": dv[0], "pop3": dv[1],
                                  "http": HTTPS_WEBBACK}, None)
    good = tls_lookup_handler(HTTPS_HANDLER, routes)
    bad = tls_lookup_handler(HTTPS_BADNAME, routes)
    back = WebBack(HTTPS_WEBBACK)
    ca = env.certs["imap.internal"][0]
    conf = os.path.join(env.work, "https-lookup.conf")
    write_config(
        conf, [(HOST, HTTPS_IMAP, "imap"), (HOST, HTTPS_WEB, "http")],
        {}, [], extra='node "https-lookup"\n' + LOOSE_LIMITS +
        f'lookup handler "https://127.0.0.1:{SILENT_PORT}/lookup" '
        f'tls ca "{ca}" tls name "imap.internal"\n'
        f'lookup handler "https://127.0.0.1:{HTTPS_BADNAME}/lookup" '
        f'tls ca "{ca}"\n'
        f'lookup handler "https://127.0.0.1:{HTTPS_HANDLER}/lookup" '
        f'tls ca "{ca}" tls name "imap.internal"\n'
        "lookup timeout 1500\nlookup retry 60\n"
        'upstream network "127.0.0.1/32"\n')
    node = Postern(env.binary, conf, os.path.join(env.work,
                                                  "https-lookup.log"),
                   [HTTPS_IMAP, HTTPS_WEB])
    good.start()
    bad.start()
    try:
        node.start()
        # the round robin starts each login at the next handler: the
        # first three meet every handler once
        for i in range(1, 5):
            check(imap_login_ok(HTTPS_IMAP, user(i)), f"{user(i)} failed")
        check(log_has(node, f"lookup handler 127.0.0.1:{HTTPS_BADNAME}"
                      "/lookup: TLS handshake failed: name `127.0.0.1' "
                      "not present"),
              "wrong certificate name not refused: " +
              node.log_text()[-800:])
        check(log_has(node, f"lookup handler 127.0.0.1:{SILENT_PORT}"
                      "/lookup: no answer in time"),
              "silent handler not noticed: " + node.log_text()[-800:])
        check(bad.requests == [], f"request sent to the wrong name: "
              f"{bad.requests}")
        check(all(good.count(user(i)) == 1 for i in range(1, 5)),
              f"handler requests {good.requests}")
        check(all(h["Auth-Protocol"] == "imap" and
                  h["Host"] == f"127.0.0.1:{HTTPS_HANDLER}" and
                  "Auth-Pass" not in h for h in good.requests),
              f"request headers {good.requests}")
        # the web asks the same handler, over the same TLS
        status, body = web_get(HTTPS_WEB, f"/home/{user(5)}/inbox")
        check(status == 200 and body == b"webback %d" % HTTPS_WEBBACK,
              f"web answer {status} {body!r}")
        check(back.paths == [f"/home/{user(5)}/inbox"],
              f"backend saw {back.paths}")
        web = [h for h in good.requests if h["Auth-Protocol"] == "http"]
        check(len(web) == 1 and web[0]["Auth-Method"] == "username" and
              web[0]["Auth-Pass"] == "_password_", f"web request {web}")
        # a refusal over https reaches the client
        check(not imap_login_ok(HTTPS_IMAP, "nobody@example.org"),
              "unknown user logged in")
        # nothing is left behind: the relay's descriptors stay put
        relay = node.pids_of("relay")[0]
        before = nfds(relay)
        for i in range(1, 9):
            check(imap_login_ok(HTTPS_IMAP, user(i)), f"{user(i)} failed")
            imap_login_ok(HTTPS_IMAP, f"nobody{i}@example.org")
        deadline = time.monotonic() + 5
        while nfds(relay) != before and time.monotonic() < deadline:
            time.sleep(0.1)
        check(nfds(relay) == before,
              f"relay descriptors {before} -> {nfds(relay)}")
        # the last handler gone: a temporary failure, not a hang
        good.stop()
        c = Raw(HTTPS_IMAP)
        c.line()
        c.send(b"a LOGIN %s %s\r\n" % (user(1).encode(), b"secret"))
        answer = c.until_tag(b"a")[-1]
        c.close()
        check(answer.startswith(b"a NO [UNAVAILABLE]"), f"answer {answer}")
        check(PASSWORD not in node.log_text(), "password in log")
    finally:
        node.stop()
        for part in (good, bad, back):
            part.stop()     # twice for good: returns at once


@case("lookup-handler-https-outlived-by-its-session-frees-everything")
def _():
    # the handler accepts and never speaks TLS; the login time-out (1 s)
    # ends the sessions long before the lookup's (3 s), one client hangs
    # up meanwhile: the lookups, left alone, still end and free it all
    ca = env.certs["imap.internal"][0]
    conf = os.path.join(env.work, "https-gone.conf")
    write_config(
        conf, [(HOST, HTTPS_GONE_IMAP, "imap")], {}, [],
        extra='node "https-gone"\ntimeout login 1\n' + LOOSE_LIMITS +
        f'lookup handler "https://127.0.0.1:{SILENT_PORT}/lookup" '
        f'tls ca "{ca}" tls name "imap.internal"\n'
        "lookup timeout 3000\nlookup retry 60\n"
        'upstream network "127.0.0.1/32"\n')
    node = Postern(env.binary, conf, os.path.join(env.work,
                                                  "https-gone.log"),
                   [HTTPS_GONE_IMAP])
    try:
        node.start()
        relay = node.pids_of("relay")[0]
        before = nfds(relay)
        a, b = Raw(HTTPS_GONE_IMAP), Raw(HTTPS_GONE_IMAP)
        a.line()
        b.line()
        b.send(b"b LOGIN %s %s\r\n" % (user(2).encode(), b"secret"))
        a.send(b"a LOGIN %s %s\r\n" % (user(1).encode(), b"secret"))
        time.sleep(0.2)
        b.close()
        answer = a.until_tag(b"a")[-1]
        a.close()
        check(answer.startswith(b"a NO [UNAVAILABLE]"), f"answer {answer}")
        check(log_has(node, "route lookup timeout"), "no login time-out")
        check(log_has(node, f"lookup handler 127.0.0.1:{SILENT_PORT}"
                      "/lookup: no answer in time"), "lookup never ended")
        deadline = time.monotonic() + 5
        while nfds(relay) != before and time.monotonic() < deadline:
            time.sleep(0.1)
        check(nfds(relay) == before,
              f"relay descriptors {before} -> {nfds(relay)}")
        check(node.pids_of("relay") == [relay], "relay restarted")
        log = node.log_text()
        check("terminated by signal" not in log and
              "exited with status" not in log, "a child died: " + log[-600:])
    finally:
        node.stop()


@case("lookup-handler-names-pool-or-tls-upstream-and-cache-keeps-it")
def _():
    ca = env.certs["imap.internal"][0]
    routes = {
        # a pool whose first member is dead: failover as for a route
        user(1): ("odd", {"imap": 143, "pop3": 110}, None),
        # an upstream that wants TLS, by its name
        user(3): ("onetls", {"imap": 993, "pop3": 995}, None),
        user(2): ("two", {"imap": 143, "pop3": 110}, None),
        # an address, as before
        user(5): (HOST, {"imap": DV1[0], "pop3": DV1[1]}, None),
        # first the wrong server, cached; then the right one
        user(7): ("two", {"imap": 143, "pop3": 110}, None),
        user(9): ("odd", {"imap": 143, "pop3": 110}, None),
        user(11): ("odd", {"imap": 143, "pop3": 110}, None),
        "webuser@example.org": ("webback", {"http": 1}, None),
        # one cached route for mail and web: by name, by an address that
        # is a configured upstream's, and found by the web first
        user(13): ("one", {"imap": 143, "pop3": 110, "http": 1}, None),
        user(15): (HOST, {"imap": DV1[0], "pop3": DV1[1], "http": 1},
                   None),
        user(17): ("one", {"imap": 143, "pop3": 110, "http": 1}, None),
        "ghost@example.org": ("nosuch", {"imap": 143}, None),
    }
    mc = Memcached(MEMCACHED, os.path.join(env.work, "memcached-n.log"))
    handler = LookupHandler(NAMED_HANDLER, routes)
    back = WebBack(NAMED_WEBBACK)
    conf = os.path.join(env.work, "named.conf")
    write_pool_config(
        conf, [(HOST, NAMED_IMAP, "imap"), (HOST, NAMED_WEB, "http")],
        {"one": (HOST, DV1[0], DV1[1], f"http port {NAMED_WEBBACK}"),
         "two": (HOST, DV2[0], DV2[1]),
         "dead": (HOST, DEAD_PORT, DEAD_PORT),
         "onetls": (HOST, DV1_IMAPS, 0, f'tls ca "{ca}"',
                    'tls name "imap.internal"'),
         "webback": (HOST, 0, 0, f"http port {NAMED_WEBBACK}")},
        'pool "odd" {\n\tupstream "dead"\n\tupstream "one"\n'
        "\tmax-fails 1\n\tfail-timeout 60\n}\n",
        [("user", "static@example.org", "two")],
        extra='node "named"\n' + LOOSE_LIMITS +
        f'lookup handler "http://127.0.0.1:{NAMED_HANDLER}/lookup"\n'
        "lookup timeout 2000\nlookup retry 60\n"
        # no network holds the upstreams: names need none
        'upstream network "192.0.2.0/24"\n'
        'upstream network "127.0.0.1/32" port 25143\n'
        f'memcache server "127.0.0.1" port {MEMCACHED}\n')
    node = Postern(env.binary, conf, os.path.join(env.work, "named.log"),
                   [NAMED_IMAP, NAMED_WEB])
    handler.start()
    try:
        mc.start()
        node.start()
        check(imap_login_ok(NAMED_IMAP, user(1)), "pool route failed")
        check(imap_login_ok(NAMED_IMAP, user(1)), "cached pool route failed")
        check(handler.count(user(1)) == 1,
              f"handler asked {handler.count(user(1))} times, not once")
        check(log_has(node, "pool odd: upstream dead marked down"),
              "no failover in the pool: " + node.log_text()[-600:])
        key = route_cache_key(user(1))
        value = mc.command(f"get {key}\r\n".encode())
        want = f"2 {key[len('postern:r:'):][:16]} odd {user(1)}".encode()
        check(want in value, f"cached value {value!r}")
        check(imap_login_ok(NAMED_IMAP, user(3)), "TLS upstream by name")
        check(log_has(node, "relayed to onetls (127.0.0.1:%d)" % DV1_IMAPS),
              "not over TLS")
        check(imap_login_ok(NAMED_IMAP, user(2)), "upstream by name")
        check(imap_login_ok(NAMED_IMAP, user(5)), "address route failed")
        # a cached name relay does not know, or for another key: a miss
        k9, k11 = route_cache_key(user(9)), route_cache_key(user(11))
        for k, v in ((k9, f"2 {k9[len('postern:r:'):][:16]} nosuch x"),
                     (k11, "2 0000000000000000 two x")):
            mc.command(b"set %s 0 0 %d\r\n%s\r\n" %
                       (k.encode(), len(v), v.encode()))
        for u in (user(9), user(11)):
            check(imap_login_ok(NAMED_IMAP, u), f"bad cache entry for {u}")
            check(handler.count(u) == 1, f"handler not asked for {u}")
        # a cached named route the upstream refuses: forgotten, asked again
        check(not imap_login_ok(NAMED_IMAP, user(7)), "wrong server let in")
        handler.routes[user(7)] = ("odd", {"imap": 143, "pop3": 110}, None)
        check(imap_login_ok(NAMED_IMAP, user(7)), "relook did not happen")
        check(handler.count(user(7)) == 2,
              f"handler asked {handler.count(user(7))} times for user7")
        # the web alike
        status, body = web_get(NAMED_WEB, "/home/webuser@example.org/x")
        check(status == 200 and body == b"webback %d" % NAMED_WEBBACK,
              f"web answer {status} {body!r}")
        # one route per user, whichever protocol found it
        for u, order in ((user(13), ("imap", "web")),
                         (user(15), ("imap", "web")),
                         (user(17), ("web", "imap"))):
            for proto in order:
                if proto == "imap":
                    check(imap_login_ok(NAMED_IMAP, u), f"{u}: IMAP")
                    continue
                status, body = web_get(NAMED_WEB, f"/home/{u}/x")
                check(status == 200 and body == b"webback %d" % NAMED_WEBBACK,
                      f"{u}: web answer {status} {body!r}")
            check(handler.count(u) == 1,
                  f"{u}: handler asked {handler.count(u)} times, not once")
        value = mc.command(f"get {route_cache_key(user(15))}\r\n".encode())
        check(f" one {user(15)}".encode() in value,
              f"address route not kept as its upstream's name: {value!r}")
        # a name that is configured nowhere: the answer is unusable
        check(not imap_login_ok(NAMED_IMAP, "ghost@example.org"),
              "unknown name used")
        check(log_has(node, f"lookup handler 127.0.0.1:{NAMED_HANDLER}"
                      "/lookup: unusable answer"), "unknown name not refused")
    finally:
        node.stop()
        handler.stop()
        back.stop()
        mc.stop()


@case("two-relay-processes-share-the-sessions")
def _():
    conf = os.path.join(env.work, "multi.conf")
    write_config(conf, [(HOST, MULTI_IMAP, "imap")],
                 {"one": (HOST, DV1[0], DV1[1]),
                  "two": (HOST, DV2[0], DV2[1])},
                 [("user", user(i), "two") for i in range(2, NUSERS + 1, 2)]
                 + [("domain", "example.org", "one")],
                 extra='node "multi"\nrelay processes 2\n' + LOOSE_LIMITS)
    node = Postern(env.binary, conf, os.path.join(env.work, "multi.log"),
                   [MULTI_IMAP], extra_relays=1)
    node.start()
    held = []
    try:
        relays = node.pids_of("relay")
        check(len(relays) == 2, f"relays {relays}")
        before = {p: len(os.listdir(f"/proc/{p}/fd")) for p in relays}
        for i in range(1, 9):
            c = imaplib.IMAP4(HOST, MULTI_IMAP)
            c.login(user(i), PASSWORD)
            c.select("INBOX")
            held.append(c)
        after = {p: len(os.listdir(f"/proc/{p}/fd")) for p in relays}
        check(all(after[p] >= before[p] + 4 for p in relays),
              f"sessions not spread: {before} -> {after}")
        # one relay dies: the other's sessions go on, logins still work
        os.kill(relays[0], signal.SIGKILL)
        alive = noop_alive(held)
        check(alive == 4, f"{alive} sessions survived, not 4")
        check(imap_login_ok(MULTI_IMAP, user(3)), "login after a relay died")
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and \
                len(node.pids_of("relay")) != 2:
            time.sleep(0.1)
        check(len(node.pids_of("relay")) == 2, "relay not restarted")
    finally:
        logout_all(held)
        node.stop()


def nfds(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def imaps_held(port, u):
    """An IMAPS session, logged in and left open."""
    m = SniIMAP("mail.example.org", port, ssl_context=tls_ctx())
    check(m.login(u, PASSWORD)[0] == "OK", f"IMAPS login of {u}")
    return m


def starttls_held(port, u):
    """A STARTTLS session, logged in and left open."""
    m = imaplib.IMAP4(HOST, port)
    ctx = tls_ctx()
    ctx.check_hostname = False      # imaplib names the peer 127.0.0.1
    m.starttls(ssl_context=ctx)
    check(m.login(u, PASSWORD)[0] == "OK", f"STARTTLS login of {u}")
    return m


def hold_many(fn, port, users, held):
    """Logins at once, so that every worker is busy and each accepts."""
    errors = []

    def one(u):
        try:
            held.append(fn(port, u))
        except Exception as e:  # noqa: BLE001
            errors.append(f"{u}: {e}")
    threads = [threading.Thread(target=one, args=(u,)) for u in users]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    check(not errors, f"logins failed: {errors[:3]}")


def noop_alive(conns):
    """How many of these IMAP sessions still answer NOOP."""
    alive = 0
    for c in conns:
        try:
            c.noop()
            alive += 1
        except Exception:  # noqa: BLE001
            pass
    return alive


def logout_all(held):
    for c in held:
        try:
            c.logout()
        except Exception:  # noqa: BLE001
            pass
    held.clear()


@case("two-tlsproc-workers-share-tls-and-survive-a-kill")
def _():
    conf = os.path.join(env.work, "tlsw.conf")
    kp = 'keypair "mail.example.org"'
    write_config(conf, [(HOST, TLSW_IMAP, "imap", kp),
                        (HOST, TLSW_IMAPS, "imap", "tls " + kp)],
                 {"one": (HOST, DV1[0], DV1[1]),
                  "two": (HOST, DV2[0], DV2[1])},
                 [("user", user(i), "two") for i in range(2, NUSERS + 1, 2)]
                 + [("domain", "example.org", "one")],
                 extra='node "tlsw"\ntls processes 2\n' + LOOSE_LIMITS,
                 keypairs={"mail.example.org": env.certs["mail.example.org"]})
    node = Postern(env.binary, conf, os.path.join(env.work, "tlsw.log"),
                   [TLSW_IMAP, TLSW_IMAPS], extra_tlsprocs=1)
    node.start()
    held = []
    try:
        workers = node.pids_of("tlsproc")
        check(len(workers) == 2, f"tlsproc workers {workers}")
        # implicit TLS: the kernel hands connections to both workers;
        # each held session costs its worker two descriptors
        base = {p: nfds(p) for p in workers}
        for rnd in range(4):
            hold_many(imaps_held, TLSW_IMAPS,
                      [user(i) for i in range(1, 13)], held)
            now = {p: nfds(p) for p in workers}
            if all(now[p] >= base[p] + 2 for p in workers):
                break
        check(all(now[p] >= base[p] + 2 for p in workers),
              f"IMAPS not spread over the workers: {base} -> {now}")
        logout_all(held)
        # STARTTLS: authproc gives the upgrades to the workers in turn
        time.sleep(0.5)
        base = {p: nfds(p) for p in workers}
        for i in range(1, 5):
            held.append(starttls_held(TLSW_IMAP, user(i)))
        now = {p: nfds(p) for p in workers}
        check(all(now[p] == base[p] + 4 for p in workers),
              f"STARTTLS not in turn: {base} -> {now}")
        # one worker dies: the other's sessions go on, TLS still works
        lost = node.log_text().count("lost a tlsproc channel")
        os.kill(workers[0], signal.SIGKILL)
        alive = noop_alive(held)
        check(alive == 2, f"{alive} STARTTLS sessions survived, not 2")
        logout_all(held)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and \
                node.log_text().count("lost a tlsproc channel") == lost:
            time.sleep(0.05)
        for i in range(1, 4):
            imaps_held(TLSW_IMAPS, user(i)).logout()
            starttls_held(TLSW_IMAP, user(i)).logout()
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and \
                len(node.pids_of("tlsproc")) != 2:
            time.sleep(0.1)
        again = node.pids_of("tlsproc")
        check(len(again) == 2 and workers[0] not in again,
              f"tlsproc not restarted: {workers} -> {again}")
        # the new worker is ready and authproc gives it upgrades too
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and \
                node.log_text().count("ready") < 5:
            time.sleep(0.05)
        base = {p: nfds(p) for p in again}
        for i in range(1, 5):
            held.append(starttls_held(TLSW_IMAP, user(i)))
        now = {p: nfds(p) for p in again}
        check(all(now[p] >= base[p] + 2 for p in again),
              f"restarted worker gets no STARTTLS: {base} -> {now}")
        check(PASSWORD not in node.log_text(), "password in log")
    finally:
        logout_all(held)
        node.stop()


# the cases of each topic module register themselves, after the above
import web  # noqa: E402,F401
import weblogin  # noqa: E402,F401
import operations  # noqa: E402,F401

CASE_TIMEOUT = 180      # a hung case fails instead of hanging the run


class CaseTimeout(Exception):
    pass


def case_timeout(sig, frame):
    raise CaseTimeout(f"case did not finish in {CASE_TIMEOUT} s")

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--postern", default=os.path.join(ROOT, "obj/postern"))
    ap.add_argument("--postern-testhooks",
                    default=os.path.join(ROOT, "obj/postern-testhooks"))
    ap.add_argument("--only", help="run only cases containing this string")
    args = ap.parse_args()

    passed = failed = 0
    # a runner stopped from outside must still stop what it started
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(2))
    signal.signal(signal.SIGALRM, case_timeout)
    try:
        setup(args)
    except Exception:   # noqa: BLE001
        traceback.print_exc()
        print("FAIL setup")
        teardown()
        print("0 passed, 1 failed")
        return 1
    try:
        for name, fn in CASES:
            if args.only and args.only not in name:
                continue
            if env.postern is None and name != "sigterm-stops-everything":
                pass
            t0 = time.monotonic()
            signal.alarm(CASE_TIMEOUT)
            try:
                fn()
                passed += 1
                print(f"PASS {name} ({time.monotonic() - t0:.1f}s)",
                      flush=True)
            except Exception as e:  # noqa: BLE001
                failed += 1
                print(f"FAIL {name}: {type(e).__name__}: {str(e)[:500]}",
                      flush=True)
                if os.environ.get("REGRESS_VERBOSE"):
                    traceback.print_exc()
            finally:
                signal.alarm(0)
    finally:
        teardown()
    if failed and env.work:
        for f in ("postern.log", "postern-hooks.log"):
            path = os.path.join(env.work, f)
            if os.path.exists(path):
                print(f"---- tail of {f}")
                with open(path, errors="replace") as fh:
                    print("".join(fh.readlines()[-40:]))
    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
