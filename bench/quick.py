#!/usr/bin/env python3
"""A quick, repeatable look at postern's cost next to talking to Dovecot
directly: large FETCH throughput (clear and TLS) and sequential login
latency.  It is not the benchmark harness the project plans (a C load
generator against nginx and a fake backend); it only gives first numbers.

    python3 bench/quick.py [--size-mib 32] [--rounds 5] [--logins 200]

Everything runs on 127.0.0.1 ports 39xxx and is stopped at the end.
"""

import argparse
import imaplib
import os
import shutil
import socket
import ssl
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "regress"))
from backends import Dovecot  # noqa: E402
from harness import Postern, make_cert, message, write_config  # noqa: E402

HOST = "127.0.0.1"
DV = (39143, 39110)
IMAP, IMAPS = 39243, 39993
USER, PASSWORD = "bench@example.org", "secret"


class SniIMAP(imaplib.IMAP4_SSL):
    def _create_socket(self, timeout):
        sock = socket.create_connection((HOST, self.port), timeout)
        return self.ssl_context.wrap_socket(sock, server_hostname=self.host)


def fetch_rate(connect, size, rounds):
    m = connect()
    m.login(USER, PASSWORD)
    m.select("INBOX", readonly=True)
    rates = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        typ, data = m.fetch(b"1", "(BODY.PEEK[])")
        dt = time.perf_counter() - t0
        assert typ == "OK" and len(data[0][1]) == size
        rates.append(size / dt / 1e6)
    m.logout()
    return statistics.median(rates)


def login_p50(connect, n):
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        m = connect()
        m.login(USER, PASSWORD)
        m.logout()
        times.append((time.perf_counter() - t0) * 1000)
    times.sort()
    return times[len(times) // 2], times[int(len(times) * 0.99) - 1]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--size-mib", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--logins", type=int, default=200)
    ap.add_argument("--postern", default=os.path.join(ROOT, "obj/postern"))
    args = ap.parse_args()
    work = os.path.join(ROOT, "run", "bench-quick")
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    dv = Dovecot("bench", os.path.join(work, "dovecot"), *DV, [USER],
                 password=PASSWORD)
    cert, key = make_cert(work, "mail.example.org")
    conf = os.path.join(work, "postern.conf")
    write_config(conf, [(HOST, IMAP, "imap"),
                        (HOST, IMAPS, "imap", 'tls keypair "k"')],
                 {"store": (HOST, *DV)}, [("default", "", "store")],
                 extra="throttle ip 1000000 per 60\n"
                       "throttle user 1000000 per 60\n"
                       "limit attempts 0\n",
                 keypairs={"k": (cert, key)})
    postern = Postern(args.postern, conf, os.path.join(work, "postern.log"),
                      [IMAP, IMAPS], verbose=False)
    ctx = ssl.create_default_context(cafile=cert)
    size = args.size_mib << 20
    try:
        dv.start()
        postern.start()
        m = imaplib.IMAP4(HOST, DV[0])
        m.login(USER, PASSWORD)
        msg = message(size, seed=7)
        size = len(msg)
        m.append("INBOX", None, None, msg)
        m.logout()
        paths = {
            "direct": lambda: imaplib.IMAP4(HOST, DV[0]),
            "postern": lambda: imaplib.IMAP4(HOST, IMAP),
            "postern-tls": lambda: SniIMAP("mail.example.org", IMAPS,
                                           ssl_context=ctx),
        }
        print(f"FETCH of a {size / 1e6:.1f} MB message, median of "
              f"{args.rounds} (python imaplib as the client):")
        for name, connect in paths.items():
            print(f"  {name:12s} {fetch_rate(connect, size, args.rounds):8.1f}"
                  " MB/s")
        print(f"sequential logins (connect, LOGIN, LOGOUT), {args.logins} "
              "each:")
        for name, connect in paths.items():
            p50, p99 = login_p50(connect, args.logins)
            print(f"  {name:12s} p50 {p50:6.2f} ms   p99 {p99:6.2f} ms")
    finally:
        postern.stop()
        dv.stop()


if __name__ == "__main__":
    main()
