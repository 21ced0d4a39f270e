#!/usr/bin/env python3
"""IMAP and POP3 logins, and HTTP GETs over keep-alive, through two or
more postern builds in turn, for an A/B of a change: operations per
second and CPU per 1,000, every postern process counted, each build run
R times, interleaved.

    python3 bench/login_ab.py [--rounds R] [--seconds S]
        [--protos imap,pop3,http] BINARY...

Each build gets the same configuration as bench/run's `postern' (one
relay, throttling on with limits it never reaches, a static route to
the fake backend) on 127.0.0.1 ports 20710-20712 and 20715; the fake
backend (obj/bench/fakebackend) listens on 20713-20714 (mail) and 20716
(web).  loadgen drives c=32 logins, wrk c=32 GETs of /home/u1/x, for S
seconds after a 0.5 s warm-up.  Every process started is stopped by its
pid at the end.  Medians are printed, then one line per build and
protocol:

    AB build=N proto=imap|pop3|http rate=... cpu_per_1000=...
"""
import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

from benchlib import (POSTERN_HEAD, ROOT, TICK, cpu_ticks, stop, tree,
                      wait_port)

TOOLS = os.path.join(ROOT, "obj/bench")
IMAP, POP3, CTL_PORT, FAKE_IMAP, FAKE_POP3 = 20710, 20711, 20712, 20713, \
    20714
HTTP, FAKE_WEB = 20715, 20716
PORTS = {"imap": IMAP, "pop3": POP3, "http": HTTP}
WRK_LUA = """function done(summary, latency, requests)
   io.write(string.format("RESULT ops=%d\\n", summary.requests))
end
"""

CONF = POSTERN_HEAD + """limit attempts 0
limit sessions 1000000
listen on 127.0.0.1 port {imap} imap
listen on 127.0.0.1 port {pop3} pop3
listen on 127.0.0.1 port {http} http
upstream "fake" {{
\thost 127.0.0.1
\timap port {fake_imap}
\tpop3 port {fake_pop3}
\thttp port {fake_web}
}}
route default to "fake"
control socket "{dir}/ctl.sock"
"""


def one_run(binary, work, proto, seconds):
    conf = os.path.join(work, "postern.conf")
    with open(conf, "w") as f:
        f.write(CONF.format(imap=IMAP, pop3=POP3, http=HTTP,
                            fake_imap=FAKE_IMAP, fake_pop3=FAKE_POP3,
                            fake_web=FAKE_WEB, dir=work))
    p = subprocess.Popen([binary, "-d", "-f", conf],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        if not all(wait_port(port) for port in PORTS.values()):
            sys.exit(f"{binary} did not start")
        time.sleep(0.5)
        pids = tree(p.pid)
        if proto == "http":
            return http_run(pids, work, seconds)
        lg = subprocess.Popen(
            [os.path.join(TOOLS, "loadgen"), "-m", f"{proto}-login", "-h",
             "127.0.0.1", "-p", str(PORTS[proto]),
             "-u", "user", "-w", "pw", "-c", "32", "-d", str(seconds),
             "-W", "0.5", "-M", "-q"], stdout=subprocess.PIPE, text=True)
        before = None
        for line in lg.stdout:
            if line.startswith("WARMUP_DONE"):
                before = cpu_ticks(pids)
            elif line.startswith("MEASURE_DONE"):
                used = (cpu_ticks(pids) - before) / TICK
            elif line.startswith("RESULT"):
                res = dict(kv.split("=", 1) for kv in line.split()[1:])
        lg.wait()
    finally:
        stop(p)
    ops = int(res["ops"])
    return float(res["rate"]), used / ops * 1000 if ops else float("nan")


def wrk(work, seconds):
    """Operations wrk made in a run of S seconds (whole seconds, >= 1)."""
    script = os.path.join(work, "ab.lua")
    with open(script, "w") as f:
        f.write(WRK_LUA)
    out = subprocess.run(
        ["wrk", "-t", "2", "-c", "32", "-d", f"{max(1, round(seconds))}s",
         "-s", script, f"http://127.0.0.1:{HTTP}/home/u1/x"],
        capture_output=True, text=True, check=True).stdout
    for line in out.splitlines():
        if line.startswith("RESULT"):
            return int(line.split("=", 1)[1])
    sys.exit(f"wrk printed no result: {out}")


def http_run(pids, work, seconds):
    """Keep-alive GETs: a warm-up, then the measured run."""
    wrk(work, 0.5)
    before, start = cpu_ticks(pids), time.monotonic()
    ops = wrk(work, seconds)
    used, took = (cpu_ticks(pids) - before) / TICK, time.monotonic() - start
    return ops / took, used / ops * 1000 if ops else float("nan")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=4)
    ap.add_argument("--protos", default="imap,pop3",
                    help="comma-separated, of imap, pop3 and http")
    ap.add_argument("binaries", nargs="+")
    opts = ap.parse_args()
    work = tempfile.mkdtemp(prefix="login-ab-")
    protos = opts.protos.split(",")
    if not protos or any(p not in PORTS for p in protos):
        sys.exit(f"--protos: of {', '.join(PORTS)}")
    fake = subprocess.Popen([os.path.join(TOOLS, "fakebackend"), "-q",
                             "-i", str(FAKE_IMAP), "-p", str(FAKE_POP3),
                             "-w", str(FAKE_WEB)],
                            stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    res = {}
    try:
        if not wait_port(FAKE_IMAP):
            sys.exit("fakebackend did not start")
        for r in range(opts.rounds):
            for proto in protos:
                for i, b in enumerate(opts.binaries):
                    rate, cpu = one_run(b, work, proto, opts.seconds)
                    res.setdefault((i, proto), []).append((rate, cpu))
                    print(f"round {r + 1} build {i} {proto} rate "
                          f"{rate:.1f}/s cpu/1000 {cpu:.3f} s", flush=True)
    finally:
        stop(fake)
    for (i, proto), runs in sorted(res.items()):
        print(f"AB build={i} proto={proto} "
              f"rate={statistics.median(r for r, _ in runs):.1f} "
              f"cpu_per_1000={statistics.median(c for _, c in runs):.3f}")


if __name__ == "__main__":
    main()
