#!/usr/bin/env python3
"""`make demo`: two mailbox servers (each a Dovecot and a Radicale) and
postern on loopback.

The ports and users are a fixed contract other tools rely on:
IMAP 127.0.0.1:10143, POP3 127.0.0.1:10110, HTTP 127.0.0.1:10080 (redirects
to HTTPS), HTTPS 127.0.0.1:10443, users user1..user20@example.org with
password "secret", odd-numbered users on the first server and
even-numbered on the second, for mail and the web alike.  Everything it
writes is under run/demo/.
"""

import argparse
import base64
import http.client
import imaplib
import os
import poplib
import shutil
import signal
import socket
import ssl
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from backends import Dovecot, Radicale  # noqa: E402
from harness import Postern, make_cert, write_config  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HOST = "127.0.0.1"
IMAP, POP3 = 10143, 10110
IMAPS, POP3S = 10993, 10995
HTTP, HTTPS = 10080, 10443
WEB_BACKENDS = (11080, 12080)                      # Radicale 1 and 2
NAMES = ("mail.example.org", "mail.example.net")   # the first is default
BACKENDS = ((11143, 11110), (12143, 12110))
USERS = [f"user{i}@example.org" for i in range(1, 21)]
PASSWORD = "secret"


def port_free(port):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        s.bind((HOST, port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def scripted_logins(certs):
    m = imaplib.IMAP4(HOST, IMAP)
    typ, data = m.login("user1@example.org", PASSWORD)
    m.select("INBOX")
    text = data[0].decode()
    print(f"  IMAP  user1@example.org -> {typ} {text[text.rfind(']') + 2:]}"
          " (capabilities from Dovecot 1)")
    m.logout()
    p = poplib.POP3(HOST, POP3)
    p.user("user2@example.org")
    resp = p.pass_(PASSWORD).decode()
    count, size = p.stat()
    print(f"  POP3  user2@example.org -> {resp} ({count} messages)")
    p.quit()
    ctx = ssl.create_default_context(cafile=certs[NAMES[1]][0])
    sock = socket.create_connection((HOST, IMAPS))
    tls = ctx.wrap_socket(sock, server_hostname=NAMES[1])
    greeting = tls.recv(1024).decode().strip()
    print(f"  IMAPS {NAMES[1]} -> {tls.version()}, certificate for "
          f"{tls.getpeercert()['subject'][0][0][1]}: {greeting[:20]}...")
    tls.close()
    for user in USERS[2], USERS[3]:
        conn = http.client.HTTPSConnection(
            HOST, HTTPS, context=ssl.create_default_context(
                cafile=certs[NAMES[0]][0]))
        auth = base64.b64encode(f"{user}:{PASSWORD}".encode()).decode()
        conn.sock = ctx_socket(certs, NAMES[0])
        conn.request("PROPFIND", f"/{user}/", headers={
            "Host": NAMES[0], "Depth": "0", "Authorization": f"Basic {auth}"})
        r = conn.getresponse()
        r.read()
        where = 1 if USERS.index(user) % 2 == 0 else 2
        print(f"  HTTPS PROPFIND /{user}/ -> {r.status} {r.reason} "
              f"(Radicale {where})")
        conn.close()
    s = socket.create_connection((HOST, HTTP))
    s.sendall(f"GET /{USERS[0]}/ HTTP/1.1\r\nHost: {NAMES[0]}\r\n"
              "Connection: close\r\n\r\n".encode())
    head = s.recv(4096).decode(errors="replace").split("\r\n")
    s.close()
    loc = [h for h in head if h.lower().startswith("location:")]
    print(f"  HTTP  GET /{USERS[0]}/ -> {head[0][9:]}, "
          f"{loc[0] if loc else 'no Location'}")


def ctx_socket(certs, name):
    ctx = ssl.create_default_context(cafile=certs[name][0])
    return ctx.wrap_socket(socket.create_connection((HOST, HTTPS)),
                           server_hostname=name)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--postern", default=os.path.join(ROOT, "obj/postern"))
    ap.add_argument("--once", action="store_true",
                    help="stop after the scripted logins (for tests)")
    args = ap.parse_args()

    busy = [p for p in (IMAP, POP3, IMAPS, POP3S, HTTP, HTTPS) + BACKENDS[0]
            + BACKENDS[1] + WEB_BACKENDS if not port_free(p)]
    if busy:
        sys.exit(f"demo: ports already in use on {HOST}: {busy} "
                 "(is another demo running?)")

    work = os.path.join(ROOT, "run", "demo")
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    dovecots = [
        Dovecot("demo1", os.path.join(work, "dovecot1"), *BACKENDS[0],
                USERS[0::2], password=PASSWORD),
        Dovecot("demo2", os.path.join(work, "dovecot2"), *BACKENDS[1],
                USERS[1::2], password=PASSWORD),
    ]
    radicales = [
        Radicale("demo-web1", os.path.join(work, "radicale1"),
                 WEB_BACKENDS[0], [(u, PASSWORD) for u in USERS[0::2]]),
        Radicale("demo-web2", os.path.join(work, "radicale2"),
                 WEB_BACKENDS[1], [(u, PASSWORD) for u in USERS[1::2]]),
    ]
    certdir = os.path.join(work, "certs")
    os.makedirs(certdir)
    certs = {n: make_cert(certdir, n) for n in NAMES}
    kp = " ".join(f'keypair "{n}"' for n in NAMES)
    conf = os.path.join(work, "postern.conf")
    # one upstream per mailbox server, its IMAP, POP3 and web ports
    write_config(conf, [(HOST, IMAP, "imap", kp), (HOST, POP3, "pop3", kp),
                        (HOST, IMAPS, "imap", "tls " + kp),
                        (HOST, POP3S, "pop3", "tls " + kp),
                        (HOST, HTTP, "http", f"mode redirect port {HTTPS}"),
                        (HOST, HTTPS, "http", "tls " + kp + " hsts")],
                 {"mailstore1": (HOST, *BACKENDS[0],
                                 f"http port {WEB_BACKENDS[0]}"),
                  "mailstore2": (HOST, *BACKENDS[1],
                                 f"http port {WEB_BACKENDS[1]}")},
                 [("user", u, "mailstore2") for u in USERS[1::2]] +
                 [("domain", "example.org", "mailstore1")],
                 keypairs=certs,
                 extra=f'node "demo"\naudit file "{work}/audit.log"\n'
                       # Radicale's paths start with the user
                       'http path-prefix "/"\n'
                       'http fallback to "web"\n')
    # the web's fallback for requests that name nobody: either server
    with open(conf, "a") as f:
        f.write('pool "web" {\n\tbalance client-ip\n'
                '\tupstream "mailstore1"\n\tupstream "mailstore2"\n}\n')
    postern = Postern(args.postern, conf, os.path.join(work, "postern.log"),
                      [IMAP, POP3, IMAPS, POP3S, HTTP, HTTPS])
    stop = []

    def on_signal(sig, frame):
        stop.append(sig)
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        for d in dovecots:
            d.start()
        for r in radicales:
            r.start()
        postern.start()
        print("postern demo is running:")
        print(f"  IMAP  {HOST}:{IMAP}    POP3  {HOST}:{POP3}   "
              "(STARTTLS / STLS offered)")
        print(f"  IMAPS {HOST}:{IMAPS}    POP3S {HOST}:{POP3S}")
        print(f"  HTTP  {HOST}:{HTTP} (redirects to HTTPS)   "
              f"HTTPS {HOST}:{HTTPS} (CalDAV/CardDAV, Radicale behind)")
        print(f"  TLS names {NAMES[0]} (default) and {NAMES[1]}, "
              f"self-signed: {certdir}/")
        print("  users user1@example.org .. user20@example.org, "
              f"password '{PASSWORD}'")
        print("  odd users live on server 1 (Dovecot 127.0.0.1:11143, "
              "Radicale :11080), even on server 2 (:12143, :12080)")
        print("scripted logins through postern:")
        scripted_logins(certs)
        print("try it yourself:")
        print(f"  curl -v --user user3@example.org:{PASSWORD} "
              f"imap://{HOST}:{IMAP}/INBOX")
        print(f"  curl -v --user user4@example.org:{PASSWORD} "
              f"pop3://{HOST}:{POP3}/")
        ca = certs[NAMES[0]][0]
        print(f"  curl --cacert {ca} --resolve {NAMES[0]}:{IMAPS}:{HOST} "
              f"--user user5@example.org:{PASSWORD} "
              f"imaps://{NAMES[0]}:{IMAPS}/INBOX")
        print(f"  curl --ssl-reqd --cacert {ca} --resolve "
              f"{NAMES[0]}:{IMAP}:{HOST} --user user6@example.org:{PASSWORD} "
              f"imap://{NAMES[0]}:{IMAP}/INBOX")
        print(f"  openssl s_client -connect {HOST}:{IMAPS} -servername "
              f"{NAMES[1]}")
        print(f"  curl --cacert {ca} --resolve {NAMES[0]}:{HTTPS}:{HOST} "
              f"--user user7@example.org:{PASSWORD} -X PROPFIND -H 'Depth: 1' "
              f"https://{NAMES[0]}:{HTTPS}/user7@example.org/")
        print("  /usr/bin/python3 -c \"import caldav; c=caldav.DAVClient("
              f"'https://{NAMES[0]}:{HTTPS}/user8@example.org/', "
              f"username='user8@example.org', password='{PASSWORD}', "
              f"ssl_verify_cert='{ca}'); "
              "print(c.principal().make_calendar(name='demo'))\"  "
              f"(with {NAMES[0]} resolving to {HOST}, e.g. in /etc/hosts)")
        print(f"  python3 -c \"import imaplib; m=imaplib.IMAP4('{HOST}',"
              f"{IMAP}); print(m.login('user5@example.org','{PASSWORD}'))\"")
        print("  or point a mail client at 127.0.0.1: IMAP 10143 or POP3 "
              "10110 with STARTTLS, IMAPS 10993 or POP3S 10995 (accept the "
              "self-signed certificate)")
        print(f"logs: {work}/postern.log, audit (one JSON line per login "
              f"attempt): {work}/audit.log, Dovecot: {work}/dovecot*/")
        if args.once:
            return 0
        print("press Ctrl-C to stop", flush=True)
        while not stop:
            if postern.proc.poll() is not None:
                print("postern exited; see run/demo/postern.log")
                return 1
            time.sleep(0.5)
        return 0
    finally:
        print("stopping", flush=True)
        postern.stop()
        for d in dovecots:
            d.stop()
        for r in radicales:
            r.stop()


if __name__ == "__main__":
    sys.exit(main())
