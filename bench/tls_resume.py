#!/usr/bin/env python3
"""TLS session resumption: whether Debian's libtls issues anything a
client could resume with, and what resumption saves a server that does.

    python3 bench/tls_resume.py [--count N]

1. obj/bench/tls_resume (bench/tls_resume.c), a libtls server set up as
   tlsproc would be for resumption, with TLS 1.3 and with TLS 1.2 only,
   with libtls's own ticket keys and with a fixed one; `openssl s_client`
   connects, saves its session (-sess_out) and offers it on a second
   connection (-sess_in).  Printed: what the saved session holds (a
   ticket, a session id) and whether the server resumed.
2. nginx-light over TLS (the bench's P-256 certificate, X25519, session
   tickets and a shared session cache on), N connections by `openssl
   s_client` one after another, each a full handshake, then N each
   resuming the session the one before saved, for TLS 1.3 and TLS 1.2:
   how many resumed and nginx's CPU (master and worker, from /proc) per
   1,000 handshakes.
   The ratio of the two is what resumption would save tlsproc per
   returning client, as far as the handshake goes.

Everything listens on 127.0.0.1 ports 20700-20701 and is stopped by its
pid at the end.  Needs root only for nginx's default paths (it runs with
-p in a temporary directory).
"""
import argparse
import os
import re
import subprocess
import sys
import tempfile

from benchlib import (CERT, KEY, NGINX_HEAD, ROOT, TICK, cpu_ticks, stop,
                      tree, wait_port)

TOOL = os.path.join(ROOT, "obj/bench/tls_resume")
LIBTLS_PORT, NGINX_PORT = 20700, 20701

NGINX_CONF = NGINX_HEAD + """  ssl_session_tickets on;
  ssl_session_cache shared:SSL:10m;
  ssl_session_timeout 300s;
  ssl_protocols TLSv1.2 TLSv1.3;
  ssl_ecdh_curve X25519;
  server {{
    listen 127.0.0.1:{port} ssl;
    ssl_certificate {cert};
    ssl_certificate_key {key};
    location / {{ return 200 "x"; }}
  }}
}}
"""


def s_client(args, port=LIBTLS_PORT, stdin=b"Q\n"):
    return subprocess.run(
        ["openssl", "s_client", "-connect", f"127.0.0.1:{port}",
         "-ign_eof"] + args, input=stdin, capture_output=True,
        timeout=15).stdout.decode(errors="replace")


def offered_twice(work, tls12, port):
    """s_client saves the session of a first connection and offers it on
    a second: (ticket issued, session id issued, resumed by s_client's
    account, the second connection's output)."""
    sess = os.path.join(work, "session.pem")
    if os.path.exists(sess):
        os.unlink(sess)
    ver = ["-tls1_2"] if tls12 else ["-tls1_3"]
    # TLS 1.3 tickets come after the handshake: read until the end
    first = s_client(ver + ["-sess_out", sess], port)
    second = s_client(ver + (["-sess_in", sess]
                             if os.path.exists(sess) else []), port)
    saved = ""
    if os.path.exists(sess):
        saved = subprocess.run(["openssl", "sess_id", "-in", sess, "-text",
                                "-noout"], capture_output=True,
                               text=True).stdout
    ticket = "TLS session ticket:" in saved or \
        "TLS session ticket:" in first
    m = re.search(r"Session-ID: ([0-9A-F]*)", saved)
    return ticket, bool(m and m.group(1)), "Reused," in second


def libtls_case(work, tls12, fixed_key):
    """Two connections to tls_resume, the second offering the first's
    session: (ticket issued, session id issued, resumed)."""
    cmd = [TOOL, "-c", CERT, "-f", KEY, "-p", str(LIBTLS_PORT), "-n", "2"]
    cmd += (["-2"] if tls12 else []) + (["-k"] if fixed_key else [])
    srv = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    try:
        if srv.stdout.readline().strip() != "ready":
            sys.exit("tls_resume did not start")
        ticket, session_id, reused = offered_twice(work, tls12,
                                                   LIBTLS_PORT)
        out, _ = srv.communicate(timeout=15)
    finally:
        stop(srv)
    return ticket, session_id, reused or "resumed 1" in out


def nginx_run(work, resume, tls, count, pids):
    """count connections by openssl s_client, each a new process, full
    handshakes or each resuming the session the one before saved (TLS
    1.3 tickets are issued after the handshake, which openssl s_time
    -reuse does not wait for).  Returns (resumed, nginx CPU s per
    1,000)."""
    sess = os.path.join(work, f"nginx-{tls}.pem")
    base = ["openssl", "s_client", "-connect", f"127.0.0.1:{NGINX_PORT}",
            "-ign_eof", f"-{tls}"]
    if resume:
        subprocess.run(base + ["-sess_out", sess], input=b"Q\n",
                       capture_output=True, timeout=15)
    resumed = 0
    before = cpu_ticks(pids)
    for _ in range(count):
        extra = ["-sess_in", sess, "-sess_out", sess] if resume else []
        out = subprocess.run(base + extra, input=b"Q\n",
                             capture_output=True, timeout=15).stdout
        resumed += b"\nReused," in out
    used = (cpu_ticks(pids) - before) / TICK
    return resumed, used / count * 1000


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--count", type=int, default=1000)
    opts = ap.parse_args()
    for path in (CERT, KEY, TOOL):
        if not os.path.exists(path):
            sys.exit(f"{path} missing: run `make bench-tools' and "
                     "bench/run --smoke once")
    work = tempfile.mkdtemp(prefix="tls-resume-")
    print("libtls (Debian libtls26 "
          + subprocess.run(["dpkg-query", "-W", "-f", "${Version}",
                            "libtls26"], capture_output=True,
                           text=True).stdout + "), server as tlsproc sets it "
          "up for resumption, client openssl s_client -sess_out/-sess_in")
    print("| protocol | ticket key | ticket issued | session id issued "
          "| resumed |")
    print("|---|---|---|---|---|")
    any_resumed = False
    for tls12 in (False, True):
        for fixed in (False, True):
            t, sid, r = libtls_case(work, tls12, fixed)
            any_resumed |= r
            yn = {True: "yes", False: "no"}
            print(f"| {'TLS 1.2' if tls12 else 'TLS 1.3'} | "
                  f"{'fixed (add_ticket_key)' if fixed else 'libtls own'} "
                  f"| {yn[t]} | {yn[sid]} | {yn[r]} |")
    with open(os.path.join(work, "nginx.conf"), "w") as f:
        f.write(NGINX_CONF.format(dir=work, port=NGINX_PORT, cert=CERT,
                                  key=KEY))
    ngx = subprocess.Popen(["nginx", "-p", work, "-c",
                            os.path.join(work, "nginx.conf"), "-g",
                            "daemon off;"], stderr=subprocess.DEVNULL)
    try:
        if not wait_port(NGINX_PORT):
            sys.exit("nginx did not start")
        pids = tree(ngx.pid)
        # the same client against nginx, which does resume: the method
        # sees resumption where there is some
        yn = {True: "yes", False: "no"}
        for tls12 in (False, True):
            t, sid, r = offered_twice(work, tls12, NGINX_PORT)
            print(f"| {'TLS 1.2' if tls12 else 'TLS 1.3'} | nginx, for "
                  f"comparison | {yn[t]} | {yn[sid]} | {yn[r]} |")
        print()
        print(f"nginx {NGINX_PORT}, tickets and a shared cache on; "
              f"{opts.count} connections each by openssl s_client")
        print("| protocol | handshakes | resumed | nginx CPU s per 1,000 |")
        print("|---|---|---:|---:|")
        ratios = {}
        for tls in ("tls1_3", "tls1_2"):
            res = {}
            for resume in (False, True):
                n, cpu = nginx_run(work, resume, tls, opts.count, pids)
                res[resume] = cpu
                print(f"| {tls.replace('tls1_', 'TLS 1.')} | "
                      f"{'resumed' if resume else 'full'} | {n} | "
                      f"{cpu:.3f} |")
            ratios[tls] = res[True] / res[False] if res[False] else \
                float("nan")
    finally:
        stop(ngx)
    print()
    print(f"RATIO libtls_resumes {1 if any_resumed else 0}")
    for tls, r in ratios.items():
        print(f"RATIO nginx_resumed_vs_full_handshake_cpu_{tls} {r:.3f}")


if __name__ == "__main__":
    main()
