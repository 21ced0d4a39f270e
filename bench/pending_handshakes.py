#!/usr/bin/env python3
"""What connections that never start TLS cost tlsproc: open N of them to
an implicit-TLS listener, wait, and report tlsproc's resident memory per
connection.

    python3 bench/pending_handshakes.py [--postern obj/postern] [-n 1000]

Runs as root (postern's parent does), on 127.0.0.1 port 20190, with its
files under run/bench-handshakes/; postern is stopped by its pid at the
end.
"""

import argparse
import os
import socket
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "regress"))
from harness import Postern, make_cert, write_config  # noqa: E402

HOST, PORT = "127.0.0.1", 20190


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--postern", default=os.path.join(ROOT, "obj/postern"))
    ap.add_argument("-n", type=int, default=1000)
    args = ap.parse_args()
    work = os.path.join(ROOT, "run", "bench-handshakes")
    os.makedirs(work, exist_ok=True)
    cert, key = make_cert(work, "mail.example.org")
    conf = os.path.join(work, "postern.conf")
    # nothing behind it is ever reached: the connections never log in
    write_config(conf, [(HOST, PORT, "imap", 'tls keypair "mail.example.org"')],
                 {"none": (HOST, 9, 9)}, [("default", None, "none")],
                 extra="limit connections-per-ip 0\n",
                 keypairs={"mail.example.org": (cert, key)})
    node = Postern(args.postern, conf, os.path.join(work, "postern.log"),
                   [PORT], verbose=False)
    node.start()
    socks = []
    try:
        tlsproc = node.children()["tlsproc"]
        before = rss_kib(tlsproc)
        for _ in range(args.n):
            socks.append(socket.create_connection((HOST, PORT)))
        time.sleep(1)
        after = rss_kib(tlsproc)
        print(f"tlsproc RSS {before} KiB, {after} KiB with {args.n} "
              f"connections that sent nothing: "
              f"{(after - before) / args.n:.1f} KiB each")
    finally:
        for s in socks:
            s.close()
        node.stop()


if __name__ == "__main__":
    main()
