#!/usr/bin/env python3
"""HTTP requests through postern to an upstream over TLS: requests per
second and CPU per 1,000 requests, for one or more postern binaries in
turn (an A/B of two builds, say), each run repeated, interleaved.

    python3 bench/tls_upstream.py [--rounds N] [--seconds S] BINARY...

The upstream is nginx serving a 100-byte answer over TLS (the bench's
P-256 certificate, run/bench/, made by bench/run if missing); postern
listens in clear and routes everything to it with `https port`.  wrk
keeps its client connections alive, so what is measured is what postern
pays per request towards a TLS upstream: with idle upstream connections
reused, no handshake per request.  Everything listens on 127.0.0.1
ports 20640-20641 and is stopped by its pid at the end.
"""
import argparse
import os
import re
import signal
import subprocess
import sys
import tempfile
import time

from benchlib import (CERT, KEY, NGINX_HEAD, POSTERN_HEAD, cpu_ticks, stop,
                      tree)

BACK, FRONT = 20640, 20641

NGINX_CONF = NGINX_HEAD + """  server {{
    listen 127.0.0.1:{port} ssl;
    ssl_certificate {cert};
    ssl_certificate_key {key};
    keepalive_requests 1000000;
    location / {{ return 200 "{body}"; }}
  }}
}}
"""

POSTERN_CONF = POSTERN_HEAD + """limit sessions 1000000
listen on 127.0.0.1 port {front} http
upstream "webtls" {{
\thost 127.0.0.1
\thttps port {back}
\ttls ca "{cert}"
\ttls name "mail.example.org"
}}
http fallback to "webtls"
control socket "{dir}/postern.sock"
"""


def wait_port(port, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w",
                            "%{http_code}", f"http://127.0.0.1:{port}/x"],
                           capture_output=True, text=True)
        if r.stdout == "200":
            return True
        time.sleep(0.1)
    return False


def one_run(binary, work, seconds):
    conf = os.path.join(work, "postern.conf")
    with open(conf, "w") as f:
        f.write(POSTERN_CONF.format(front=FRONT, back=BACK, cert=CERT,
                                    dir=work))
    log = open(os.path.join(work, "postern.log"), "w")
    p = subprocess.Popen([binary, "-d", "-f", conf], stdout=log,
                         stderr=subprocess.STDOUT)
    try:
        if not wait_port(FRONT):
            sys.exit(f"{binary}: postern did not answer")
        before = cpu_ticks(tree(p.pid))
        out = subprocess.run(["wrk", "-t2", "-c16", f"-d{seconds}",
                              f"http://127.0.0.1:{FRONT}/x"],
                             capture_output=True, text=True).stdout
        after = cpu_ticks(tree(p.pid))
    finally:
        stop(p, signal.SIGTERM)
        log.close()
    m = re.search(r"(\d+) requests in", out)
    reqs = int(m.group(1)) if m else 0
    hz = os.sysconf("SC_CLK_TCK")
    rate = reqs / seconds
    cpu = (after - before) / hz / reqs * 1000 if reqs else float("nan")
    return rate, cpu


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=int, default=4)
    ap.add_argument("binaries", nargs="+")
    opts = ap.parse_args()
    if not os.path.exists(CERT):
        sys.exit("no run/bench certificate: run bench/run --smoke once")
    work = tempfile.mkdtemp(prefix="postern-tlsup-")
    with open(os.path.join(work, "nginx.conf"), "w") as f:
        f.write(NGINX_CONF.format(dir=work, port=BACK, cert=CERT, key=KEY,
                                  body="x" * 100))
    ngx = subprocess.Popen(["nginx", "-p", work, "-c",
                            os.path.join(work, "nginx.conf"), "-g",
                            "daemon off;"])
    res = {b: [] for b in opts.binaries}
    try:
        time.sleep(0.5)
        for r in range(opts.rounds):
            for b in opts.binaries:
                rate, cpu = one_run(b, work, opts.seconds)
                res[b].append((rate, cpu))
                print(f"round {r + 1} {b}: {rate:,.0f} requests/s, "
                      f"{cpu:.3f} CPU s per 1,000 requests")
    finally:
        stop(ngx, signal.SIGQUIT)
    for b, runs in res.items():
        rates = sorted(x[0] for x in runs)
        cpus = sorted(x[1] for x in runs)
        print(f"median {b}: {rates[len(rates) // 2]:,.0f} requests/s, "
              f"{cpus[len(cpus) // 2]:.3f} CPU s per 1,000 requests")


if __name__ == "__main__":
    main()
