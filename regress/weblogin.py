"""Web logins under the throttling policy and the audit log: Basic
credentials are login attempts, counted per address and per user with
the mail logins, answered 429 over a limit before any upstream sees
them, and audited as one JSON line each with no secret in any log."""

import base64
import hashlib
import imaplib
import json
import os
import socket
import time

import web
from cases import TEARDOWNS, case, check, env
from harness import Memcached, Postern

HOST = "127.0.0.1"
TWEB, TIMAP = 22090, 22190              # the throttling web postern
WRONG = web.BAD_PASSWORD
FAIL_LIMIT = 3                          # throttle failures ip-user
REQ_LIMIT = 40                          # limit http-requests, per address
DELAY_MS = 300                          # throttle delay: first wait


def basic(user, password):
    return base64.b64encode(f"{user}:{password}".encode()).decode()


def request(path, user=None, password=None, src=HOST, port=TWEB,
            method="GET", extra=""):
    """One request on its own connection: (status, head text)."""
    auth = f"Authorization: Basic {basic(user, password)}\r\n" if user else ""
    req = (f"{method} {path} HTTP/1.1\r\nHost: mail.example.org\r\n{auth}"
           f"{extra}Connection: close\r\n\r\n").encode()
    out = web.raw_exchange(req, port=port, src=src)
    head = out.split(b"\r\n\r\n", 1)[0].decode(errors="replace")
    check(head.startswith("HTTP/1.1 "), f"no answer to {path}: {out[:80]!r}")
    return int(head.split()[1]), head


def start_throttle():
    if getattr(env, "tweb_started", False):
        return
    web.start_cal()
    env.tweb_started = True
    with socket.socket() as probe:       # a port where nothing listens
        probe.bind((HOST, 0))
        env.tweb_gone = probe.getsockname()[1]
    conf = os.path.join(env.web, "tweb.conf")
    env.taudit = os.path.join(env.web, "tweb-audit.log")
    with open(conf, "w") as f:
        f.write(f'''user "_postern"
chroot "/var/empty"
node "tweb"
audit file "{env.taudit}"
listen on {HOST} port {TWEB} http
listen on {HOST} port {TIMAP} imap
upstream "one" {{
\thost {HOST}
\timap port {env.dv1_imap}
\thttp port {web.BACK1}
}}
upstream "rad1" {{
\thost {HOST}
\thttp port {web.RAD1}
}}
upstream "gone" {{
\thost {HOST}
\thttp port {env.tweb_gone}
}}
route user "cal1@example.com" to "rad1"
route user "gone@example.org" to "gone"
http fallback to "one"
route domain "example.org" to "one"
throttle ip 1000 per 600
throttle user 1000 per 600
throttle failures ip 1000 per 600
throttle failures ip-user {FAIL_LIMIT} per 600 message "Too many failures"
throttle allow "127.0.0.3/32"
limit connections-per-ip 0
limit http-body 100000
limit http-requests {REQ_LIMIT} per 600
throttle delay {DELAY_MS} max 1200
''')
    env.tweb = Postern(env.binary, conf, os.path.join(env.web, "tweb.log"),
                       [TWEB, TIMAP])
    env.tweb.start()
    TEARDOWNS.append(env.tweb.stop)


def web_node(name, port, settings):
    """A postern of its own on one web port, in front of the recording
    backend, with these settings added; started, to be stopped."""
    conf = os.path.join(env.web, f"{name}.conf")
    with open(conf, "w") as f:
        f.write(f'''user "_postern"
chroot "/var/empty"
node "{name}"
listen on {HOST} port {port} http
upstream "one" {{
\thost {HOST}
\thttp port {web.BACK1}
}}
limit connections-per-ip 0
{settings}''')
    node = Postern(env.binary, conf, os.path.join(env.web, f"{name}.log"),
                   [port])
    node.start()
    return node


def audit_lines():
    with open(env.taudit) as f:
        return [json.loads(line) for line in f]


@case("web-login-basic-burst-activesync-throttled-429")
def _():
    start_throttle()
    u = "victim@example.org"
    path = f"/Microsoft-Server-ActiveSync?Cmd=Sync&User={u}&DeviceId=d1"
    before = env.back1.count()
    answers = [request(path, u, WRONG) for _ in range(FAIL_LIMIT + 3)]
    codes = [c for c, _ in answers]
    check(codes == [401] * FAIL_LIMIT + [429] * 3, f"answers {codes}")
    check(all("Retry-After:" in h for c, h in answers if c == 429),
          "429 without Retry-After")
    check(env.back1.count() == before + FAIL_LIMIT,
          f"backend saw {env.back1.count() - before} attempts, "
          f"not {FAIL_LIMIT}")
    # the right password from another address still gets through
    code, _ = request(path, u, "right", src="127.0.0.2")
    check(code == 200, f"other address: {code}")
    # the allow-listed address is not held to the address limits
    codes = [request(path, u, WRONG, src="127.0.0.3")[0]
             for _ in range(FAIL_LIMIT + 2)]
    check(codes == [401] * (FAIL_LIMIT + 2), f"allow-listed: {codes}")
    # requests without credentials are never throttled by these limits
    code, _ = request("/static/app.js")
    check(code in (200, 404), f"plain request: {code}")


@case("web-login-basic-burst-radicale-throttled-429")
def _():
    start_throttle()
    u = "cal1@example.com"

    def failed_logins():
        with open(env.rad1_log, errors="replace") as f:
            return f.read().count("Failed login attempt")

    before = failed_logins()
    codes = [request(f"/{u}/", u, WRONG, method="PROPFIND",
                     extra="Depth: 0\r\n")[0]
             for _ in range(FAIL_LIMIT + 3)]
    check(codes == [401] * FAIL_LIMIT + [429] * 3, f"answers {codes}")
    time.sleep(0.3)
    check(failed_logins() - before == FAIL_LIMIT,
          f"Radicale saw {failed_logins() - before} failed logins")
    code, _ = request(f"/{u}/", u, "pw1", method="PROPFIND",
                      extra="Depth: 0\r\n", src="127.0.0.2")
    check(code == 207, f"right password from another address: {code}")


@case("web-login-imap-and-http-failures-share-one-limit")
def _():
    start_throttle()
    u = "user3@example.org"          # lives on Dovecot 1
    for _ in range(FAIL_LIMIT - 1):
        m = imaplib.IMAP4(HOST, TIMAP)
        try:
            m.login(u, "wrong")
            check(False, "wrong IMAP password accepted")
        except imaplib.IMAP4.error as e:
            check(b"AUTHENTICATIONFAILED" in str(e).encode() or
                  "Authentication failed" in str(e), f"IMAP: {e}")
        m.logout()
    code, _ = request(f"/dav/{u}/", u, WRONG)
    check(code == 401, f"third failure over HTTP: {code}")
    code, _ = request(f"/dav/{u}/", u, WRONG)
    check(code == 429, f"fourth failure over HTTP: {code}")
    m = imaplib.IMAP4(HOST, TIMAP)
    try:
        m.login(u, "secret")
        check(False, "IMAP login allowed over the shared limit")
    except imaplib.IMAP4.error as e:
        check("Too many failures" in str(e), f"IMAP over the limit: {e}")
    m.logout()


SEP_WEB, SEP_IMAP = 22093, 22193       # the node with web budgets apart


def imap_refusal(port, u, password):
    """The IMAP server's refusal text, or None if the login worked."""
    m = imaplib.IMAP4(HOST, port)
    try:
        m.login(u, password)
        return None
    except imaplib.IMAP4.error as e:
        return str(e)
    finally:
        m.logout()


@case("web-login-separate-budget-keeps-mail-open-address-limit-shared")
def _():
    start_throttle()
    conf = os.path.join(env.web, "separate.conf")
    with open(conf, "w") as f:
        f.write(f'''user "_postern"
chroot "/var/empty"
node "separate"
listen on {HOST} port {SEP_WEB} http
listen on {HOST} port {SEP_IMAP} imap
upstream "one" {{
\thost {HOST}
\timap port {env.dv1_imap}
\thttp port {web.BACK1}
}}
route domain "example.org" to "one"
throttle failures ip 5 per 600 message "Address failures"
throttle failures ip-user {FAIL_LIMIT} per 600 message "User failures"
throttle http separate
limit connections-per-ip 0
throttle delay 0 max 0
''')
    node = Postern(env.binary, conf, os.path.join(env.web, "separate.log"),
                   [SEP_WEB, SEP_IMAP])
    node.start()
    try:
        u = "user5@example.org"          # lives on Dovecot 1
        codes = [request(f"/dav/{u}/", u, WRONG, port=SEP_WEB)[0]
                 for _ in range(FAIL_LIMIT + 1)]
        check(codes == [401] * FAIL_LIMIT + [429],
              f"web failures on the web budget: {codes}")
        # the same user's mail budget is untouched
        why = imap_refusal(SEP_IMAP, u, "secret")
        check(why is None, f"IMAP refused after web failures only: {why}")
        # per address the failures still add up: 3 web + 2 IMAP = 5
        for v in ("user7@example.org", "user9@example.org"):
            why = imap_refusal(SEP_IMAP, v, "wrong")
            check(why is not None and "Address failures" not in why,
                  f"IMAP failure {v}: {why}")
        why = imap_refusal(SEP_IMAP, "user11@example.org", "secret")
        check(why is not None and "Address failures" in why,
              f"address limit not shared between protocols: {why}")
    finally:
        node.stop()


POLL_WEB = 22095                       # failures per address: 2


@case("web-login-long-poll-settles-its-attempt-at-the-answer-head")
def _():
    # two long polls with Basic credentials in flight: their attempts
    # are settled by their answers' heads, not held pending (and counted
    # against the failure limits) until their bodies end
    start_throttle()
    node = web_node("poll", POLL_WEB, '''route domain "example.org" to "one"
throttle failures ip 2 per 600 message "Address failures"
''')
    polls = []
    try:
        u = "phone@example.org"
        for i in range(2):
            s = socket.create_connection((HOST, POLL_WEB), timeout=10)
            s.sendall((f"GET /Microsoft-Server-ActiveSync?Cmd=Ping&User={u}"
                       f"&n={i}&poll=slow HTTP/1.1\r\nHost: h\r\n"
                       f"Authorization: Basic {basic(u, 'right')}\r\n"
                       "\r\n").encode())
            f = s.makefile("rb")
            line = f.readline()
            check(line.startswith(b"HTTP/1.1 200"), f"poll {i}: {line!r}")
            polls.append((s, f))
        time.sleep(0.3)
        code, head = request(f"/dav/{u}/", u, "right", port=POLL_WEB)
        check(code == 200,
              f"third attempt while two polls run: {code} {head[:80]!r}")
        for s, f in polls:
            while f.readline() not in (b"\r\n", b""):
                pass
            check(f.read(5) == b"slow!", "a poll's body was lost")
    finally:
        for s, f in polls:
            f.close()
            s.close()
        node.stop()


@case("web-login-audit-one-json-line-per-attempt-no-secrets")
def _():
    start_throttle()
    code, _ = request("/Microsoft-Server-ActiveSync?Cmd=Ping",
                      "gone@example.org", "pw-gone")
    check(code in (502, 503), f"login to an upstream that is down: {code}")
    time.sleep(0.5)
    recs = [r for r in audit_lines() if r["protocol"] == "http"]
    gone = [r for r in recs if r["user"] == "gone@example.org"]
    check(len(gone) == 1 and gone[0]["result"] == "upstream-error" and
          gone[0]["upstream"] == "gone", f"upstream down audited as {gone}")
    by = {}
    for r in recs:
        by.setdefault((r["user"], r["result"]), []).append(r)
    check(len(by.get(("victim@example.org", "bad-credentials"), [])) ==
          FAIL_LIMIT + FAIL_LIMIT + 2,
          f"victim failures audited: "
          f"{len(by.get(('victim@example.org', 'bad-credentials'), []))}")
    throttled = [r for r in recs if r["result"] == "throttled"]
    check(len(throttled) >= 3 + 3 + 1, f"throttled records {len(throttled)}")
    check(all(r.get("limit") in ("ip", "user") for r in throttled),
          f"throttled records without their limit: {throttled[:1]}")
    check(not any(r["result"] in ("throttled-ip", "throttled-user",
                                  "upstream-unavailable") for r in recs),
          "a web record uses a mail result name")
    ok = by.get(("victim@example.org", "ok"), [])
    check(len(ok) == 1 and ok[0]["upstream"] == "one" and
          ok[0]["http_status"] == 200 and
          ok[0]["path_class"] == "activesync" and
          ok[0]["mechanism"] == "basic", f"ok record {ok}")
    rad = by.get(("cal1@example.com", "bad-credentials"), [])
    check(len(rad) == FAIL_LIMIT and rad[0]["upstream"] == "rad1" and
          rad[0]["http_status"] == 401, f"radicale records {rad[:1]}")
    for r in throttled:
        check(r["upstream"] is None and r.get("http_status") is None,
              f"throttled record names an upstream: {r}")
    texts = []
    for name in ("tweb-audit.log", "tweb.log", "web.log", "cal.log"):
        with open(os.path.join(env.web, name), errors="replace") as f:
            texts.append(f.read())
    blob = "\n".join(texts)
    for secret in (WRONG, "pw1", "pw-gone", basic("victim@example.org", WRONG),
                   "ZM_AUTH_TOKEN=", web.ACCOUNT_ID):
        check(secret not in blob, f"{secret!r} in a log")


@case("web-body-limit-holds-for-chunked-bodies-too")
def _():
    start_throttle()
    for framing in ("Content-Length: 200000\r\n",
                    "Transfer-Encoding: chunked\r\n"):
        head = (f"POST /home/user5@example.org/up HTTP/1.1\r\nHost: h\r\n"
                f"{framing}Connection: close\r\n\r\n").encode()
        body = b"x" * 200000
        if "chunked" in framing:
            body = b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
        before = web.env.back1.complete()
        out = web.raw_exchange(head + body, port=TWEB)
        check(out.startswith(b"HTTP/1.1 413 "), f"{framing}: {out[:60]!r}")
        time.sleep(0.2)
        # a Content-Length over the limit is refused before relay; a
        # chunked body streams until it passes the limit, then the
        # upstream's connection is cut: it never gets the whole body
        check(web.env.back1.complete() == before,
              f"{framing}: the backend got the whole body")


WEB_A, WEB_B, WEB_MC = 22091, 22092, 22211      # two nodes, one memcached


@case("web-login-two-nodes-sharing-memcached-one-limit")
def _():
    start_throttle()
    mc = Memcached(WEB_MC, os.path.join(env.web, "memcached.log"))
    mc.start()
    nodes = []
    try:
        shared = f'''route domain "example.org" to "one"
throttle failures ip-user {FAIL_LIMIT} per 600
throttle store memcache
memcache server "127.0.0.1" port {WEB_MC}
memcache backoff 2
'''
        for i, port in enumerate((WEB_A, WEB_B)):
            nodes.append(web_node(f"webshared{i}", port, shared))
        u = "spray@example.org"
        before = env.back1.count()
        codes = []
        for i in range(FAIL_LIMIT + 3):
            codes.append(request(f"/dav/{u}/", u, WRONG,
                                 port=(WEB_A, WEB_B)[i % 2])[0])
            # a failure reaches memcached just after its answer: the
            # other node may ask a moment before (one more try at most)
            time.sleep(0.2)
        check(codes == [401] * FAIL_LIMIT + [429] * 3,
              f"answers across two nodes {codes}")
        check(env.back1.count() - before == FAIL_LIMIT,
              f"backend saw {env.back1.count() - before} attempts")
        keys = mc.command(b"lru_crawler metadump all\r\n")
        check(b"spray" not in keys, "user name in memcached keys")
    finally:
        for node in nodes:
            node.stop()
        mc.stop()


@case("web-request-rate-per-address-429")
def _():
    start_throttle()
    codes = [request("/static/x.js", src="127.0.0.4")[0]
             for _ in range(REQ_LIMIT + 2)]
    check(codes[:REQ_LIMIT] == [200] * REQ_LIMIT and
          codes[REQ_LIMIT:] == [429, 429], f"answers {codes[-5:]}")
    # another address is not held to this one's rate
    code, _ = request("/static/x.js", src="127.0.0.5")
    check(code == 200, f"other address: {code}")


def form_login(body, ctype, path="/service/soap/AuthRequest", src=HOST):
    head = (f"POST {path} HTTP/1.1\r\nHost: mail.example.org\r\n"
            f"Content-Type: {ctype}\r\nContent-Length: {len(body)}\r\n"
            "Connection: close\r\n\r\n").encode()
    out = web.raw_exchange(head + body.encode(), port=TWEB, src=src)
    head = out.split(b"\r\n\r\n", 1)[0].decode(errors="replace")
    check(head.startswith("HTTP/1.1 "), f"no answer: {out[:60]!r}")
    return int(head.split()[1]), head


def soap_json(user, password):
    return json.dumps({"Body": {"AuthRequest": {
        "_jsns": "urn:zimbraAccount",
        "account": {"by": "name", "_content": user},
        "password": {"_content": password}}}})


@case("web-form-login-zimbra-style-audited-and-throttled")
def _():
    start_throttle()
    u = "former@example.org"
    before = env.back1.count()
    codes = [form_login(soap_json(u, WRONG), "application/soap+json")[0]
             for _ in range(FAIL_LIMIT + 2)]
    check(codes == [500] * FAIL_LIMIT + [429] * 2, f"answers {codes}")
    check(env.back1.count() - before == FAIL_LIMIT,
          f"backend saw {env.back1.count() - before} logins")
    code, head = form_login(soap_json(u, "right"), "application/soap+json",
                            src="127.0.0.2")
    check(code == 200 and "ZM_AUTH_TOKEN=" in head, f"right password {code}")
    xml = ("<soap:Envelope><soap:Body><AuthRequest><account by=\"name\">"
           "xmlform@example.org</account><password>right</password>"
           "</AuthRequest></soap:Body></soap:Envelope>")
    code, _ = form_login(xml, "application/soap+xml")
    check(code == 200, f"XML AuthRequest {code}")
    code, _ = form_login(f"loginOp=login&username=page%40example.org&"
                         f"password={WRONG}",
                         "application/x-www-form-urlencoded", path="/")
    check(code == 200, f"login page {code}")
    code, _ = form_login("loginOp=login&password=x",
                         "application/x-www-form-urlencoded", path="/")
    check(code == 400, f"form login without a user: {code}")
    time.sleep(0.3)
    recs = [r for r in audit_lines() if r["mechanism"] == "form"]
    res = [(r["user"], r["result"]) for r in recs]
    check(res.count((u, "bad-credentials")) == FAIL_LIMIT,
          f"form failures audited: {res}")
    check(res.count((u, "throttled")) == 2, f"form refusals audited: {res}")
    check((u, "ok") in res and ("xmlform@example.org", "ok") in res and
          ("page@example.org", "bad-credentials") in res,
          f"form results: {res}")
    check(all(r["path_class"] == "webmail" for r in recs), "path class")
    with open(os.path.join(env.web, "tweb.log"), errors="replace") as f:
        check(WRONG not in f.read(), "password in the log")


@case("web-soap-login-posted-anywhere-under-service-soap-is-counted")
def _():
    """Zimbra's SOAP servlet reads the AuthRequest from the body wherever
    under /service/soap it is posted; every spelling of such a path is
    one login to the policy, and what cannot be told is refused."""
    start_throttle()
    src = "127.0.0.6"          # its own address: the request rate limit
    u = "soapwalker@example.org"
    batch = json.dumps({"Body": {"BatchRequest": {
        "NoOpRequest": {"pad": "x" * 500},
        "AuthRequest": [{"account": {"by": "name", "_content": u},
                         "password": {"_content": WRONG}}]}}})
    tries = [("/service/soap/", soap_json(u, WRONG)),
             ("/service/%73oap/NoOpRequest", soap_json(u, WRONG)),
             ("/service//soap;x/./GetInfoRequest", soap_json(u, WRONG)),
             ("/service/soap", soap_json(u, WRONG)),
             ("/x/../service/SOAP/GetInfoRequest", soap_json(u, WRONG))]
    before = env.back1.count()
    codes = [form_login(body, "application/soap+json", path=path,
                        src=src)[0]
             for path, body in tries]
    check(codes == [500] * FAIL_LIMIT + [429] * 2, f"answers {codes}")
    check(env.back1.count() - before == FAIL_LIMIT,
          f"backend saw {env.back1.count() - before} logins")
    # ordinary SOAP requests pass untouched, small and large
    before = env.back1.count()
    for body in ('{"Body":{"GetInfoRequest":{"_jsns":"urn:zimbraAccount"}}}',
                 json.dumps({"Body": {"SaveDraftRequest": {
                     "m": {"content": "AuthRequest: " + "y" * 20000}}}})):
        code, _ = form_login(body, "application/soap+json",
                             path="/service/soap/x", src=src)
        check(code == 200, f"ordinary SOAP request answered {code}")
    # a POST whose path only a loose reading could tell is forwarded
    # when no reading takes it to a login path
    code, _ = form_login("x=1", "application/x-www-form-urlencoded",
                         path="/service/home/~/Briefcase/100%25%20%231",
                         src=src)
    check(code == 200, f"POST to a folder named with % and #: {code}")
    check(env.back1.count() - before == 3, "ordinary POSTs not forwarded")
    # what could hide a login is refused and reaches no server
    before = env.back1.count()
    hidden = ('{"Body":{"\\u0041uthRequest":{"account":"'
              + u + '","password":"x"}}}')
    code, _ = form_login(hidden, "application/soap+json",
                         path="/service/soap/", src=src)
    check(code == 429, f"escaped marker key not read as one: {code}")
    decoy = ('{"Body":{"AuthRequest":{"account":"decoy@example.org",'
             '"\\u0061ccount":"' + u + '","password":"x"}}}')
    code, _ = form_login(decoy, "application/soap+json",
                         path="/service/soap/", src=src)
    check(code == 400, f"escaped field beside a decoy: {code}")
    # a batch answers 200 whatever its login's fate: refused
    code, _ = form_login(batch, "application/soap+json",
                         path="/service/soap/BatchRequest", src=src)
    check(code == 400, f"AuthRequest in a batch: {code}")
    out = web.raw_exchange(
        b"POST /service/soap/ HTTP/1.1\r\nHost: mail.example.org\r\n"
        b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        b"5\r\n{\"a\":\r\n0\r\n\r\n", port=TWEB, src=src)
    check(out.startswith(b"HTTP/1.1 411 "), f"chunked SOAP: {out[:40]!r}")
    code, _ = form_login(soap_json(u, WRONG), "application/soap+json",
                         path="/service/../../soap", src=src)
    check(code == 400, f"path above the root: {code}")
    code, _ = form_login(soap_json(u, WRONG), "application/soap+json",
                         path="/service%2Fsoap/", src=src)
    check(code == 400, f"escaped slash to the login path: {code}")
    check(env.back1.count() == before, "a refused request was forwarded")
    # the admin console's AuthRequest names its user "name" (in XML, as
    # an attribute too); its success sets another cookie, so a SOAP
    # login is judged by the answer's status, not by a cookie's name
    for pw in (WRONG, "right"):
        admin = json.dumps({"Body": {"AuthRequest": {
            "_jsns": "urn:zimbraAdmin", "name": "soapadmin@example.org",
            "password": pw}}})
        form_login(admin, "application/soap+json",
                   path="/service/admin/soap/AuthRequest", src=src)
    code, _ = form_login('<AuthRequest xmlns="urn:zimbraAdmin" '
                         'name="xmladmin@example.org" password="right"/>',
                         "application/soap+xml",
                         path="/service/admin/soap/", src=src)
    check(code == 200, f"admin XML AuthRequest with attributes: {code}")
    # a token's re-authentication carries no password: not counted
    time.sleep(0.3)
    before = len(audit_lines())
    code, _ = form_login(json.dumps({"Body": {"AuthRequest": {
        "authToken": {"_content": "0_ab_cd"}, "twoFactorCode": "123456"}}}),
        "application/soap+json", path="/service/soap/", src=src)
    check(code == 200, f"token AuthRequest: {code}")
    # Expect: 100-continue is answered by postern, which needs the body
    s = socket.create_connection((HOST, TWEB), timeout=5,
                                 source_address=(src, 0))
    try:
        body = b'{"Body":{"GetInfoRequest":{}}}'
        s.sendall(b"POST /service/soap/GetInfoRequest HTTP/1.1\r\n"
                  b"Host: mail.example.org\r\nExpect: 100-continue\r\n"
                  b"Content-Type: application/json\r\n"
                  b"Content-Length: %d\r\n\r\n" % len(body))
        s.settimeout(3)
        first = s.recv(64)
        check(first.startswith(b"HTTP/1.1 100 Continue\r\n\r\n"),
              f"no 100 Continue for a SOAP body: {first!r}")
        s.sendall(body)
        rest = first[25:]
        while b"\r\n\r\n" not in rest:
            rest += s.recv(4096)
        check(rest.startswith(b"HTTP/1.1 200 "), f"after 100: {rest[:40]!r}")
    finally:
        s.close()
    seen = [r for r in env.back1.requests if "GetInfoRequest" in r["path"]]
    check(seen and not any(k.lower() == "expect"
                           for k, _ in seen[-1]["headers"]),
          "the met expectation was forwarded")
    time.sleep(0.3)
    recs = [r for r in audit_lines() if r["mechanism"] == "form"]
    res = [r["result"] for r in recs if r["user"] == u]
    check(res == ["bad-credentials"] * FAIL_LIMIT + ["throttled"] * 3,
          f"audited as {res}")
    admin = [r["result"] for r in recs
             if r["user"] == "soapadmin@example.org"]
    check(admin == ["bad-credentials", "ok"], f"admin logins {admin}")
    check(any(r["user"] == "xmladmin@example.org" and r["result"] == "ok"
              for r in recs), "admin XML login not audited as ok")
    check(len(audit_lines()) == before, "a token login was audited")


SCAN_WEB = 22097                        # http form-login scan 300000


def soap_head(path, n, extra=""):
    return (f"POST {path} HTTP/1.1\r\nHost: mail.example.org\r\n"
            f"Content-Type: application/soap+json\r\n{extra}"
            f"Content-Length: {n}\r\n\r\n").encode()


def draft_then_get(port, size, src=HOST):
    """A large SOAP request and a GET behind it on one connection: both
    answered, the draft received whole."""
    draft = json.dumps({"Body": {"SaveDraftRequest": {
        "m": {"content": "z" * size}}}}).encode()
    s = socket.create_connection((HOST, port), timeout=10,
                                 source_address=(src, 0))
    try:
        s.sendall(soap_head("/service/soap/SaveDraftRequest", len(draft)) +
                  draft + b"GET /after-draft HTTP/1.1\r\nHost: h\r\n"
                  b"Connection: close\r\n\r\n")
        f = s.makefile("rb")
        first, _, _ = web.read_response(f)
        second, _, _ = web.read_response(f)
    finally:
        s.close()
    check((first, second) == (200, 200), f"draft then GET: {first} {second}")
    seen = [r for r in env.back1.requests if "SaveDraft" in r["path"]]
    check(seen and seen[-1]["len"] == len(draft) and
          seen[-1]["sha"] == hashlib.sha256(draft).hexdigest(),
          f"a draft of {len(draft)} bytes did not arrive whole")
    check(env.back1.requests[-1]["path"] == "/after-draft",
          "the request behind the draft was lost")


@case("web-soap-large-body-looked-through-whole-or-refused")
def _():
    """A SOAP body up to `http form-login scan' bytes (1 MiB by default)
    is read whole before anything is forwarded: a login padded far past
    the usual read buffer is counted like any other, and a large ordinary
    request reaches the server intact, with the next request on the
    connection behind it.  A larger body is refused with 413 by default
    and forwarded unread with `oversize pass'."""
    start_throttle()
    src = "127.0.0.7"          # its own address: the request rate limit
    u = "padded@example.org"
    # within this listener's limit http-body of 100,000 bytes
    padded = json.dumps({"Header": {"pad": "p" * 90000},
                         "Body": {"AuthRequest": {
                             "account": {"by": "name", "_content": u},
                             "password": {"_content": WRONG}}}})
    before = env.back1.count()
    codes = [form_login(padded, "application/soap+json",
                        path="/service/soap/", src=src)[0]
             for _ in range(FAIL_LIMIT + 1)]
    check(codes == [500] * FAIL_LIMIT + [429], f"padded logins: {codes}")
    check(env.back1.count() - before == FAIL_LIMIT,
          f"backend saw {env.back1.count() - before} padded logins")
    time.sleep(0.3)
    res = [r["result"] for r in audit_lines() if r["user"] == u]
    check(res == ["bad-credentials"] * FAIL_LIMIT + ["throttled"],
          f"padded logins audited as {res}")
    draft_then_get(TWEB, 95000, src)
    for oversize in ("refuse", "pass"):
        node = web_node(f"scan-{oversize}", SCAN_WEB,
                        '''http fallback to "one"
http form-login scan 300000
''' + ("http form-login oversize pass\n" if oversize == "pass" else ""))
        try:
            if oversize == "refuse":
                # heads that only announce large bodies hold little of
                # the room for bodies being looked through: 250 of them
                # announce 75 MB, more than all of it
                idle = []
                try:
                    for _ in range(250):
                        c = socket.create_connection((HOST, SCAN_WEB),
                                                     timeout=10)
                        c.sendall(soap_head("/service/soap/x", 299000))
                        idle.append(c)
                    time.sleep(0.3)
                    draft_then_get(SCAN_WEB, 250000)
                finally:
                    for c in idle:
                        c.close()
            big = json.dumps({"Body": {"SaveDraftRequest": {
                "m": {"content": "q" * 400000}}}}).encode()
            before = env.back1.count()
            out = web.raw_exchange(soap_head("/service/soap/x", len(big),
                                             "Connection: close\r\n") +
                                   big, port=SCAN_WEB)
            if oversize == "refuse":
                check(out.startswith(b"HTTP/1.1 413 "),
                      f"over the scan limit: {out[:40]!r}")
                check(env.back1.count() == before,
                      "a refused body was forwarded")
            else:
                check(out.startswith(b"HTTP/1.1 200 "),
                      f"passed: {out[:40]!r}")
                check(env.back1.requests[-1]["len"] == len(big),
                      "the passed body did not arrive whole")
        finally:
            node.stop()


@case("web-login-failures-on-one-connection-wait-longer-each-time")
def _():
    start_throttle()
    u = "slowpoke@example.org"
    s = socket.create_connection((HOST, TWEB), timeout=10)
    f = s.makefile("rb")
    waits = []
    for _ in range(FAIL_LIMIT):
        t0 = time.monotonic()
        s.sendall(f"GET /dav/{u}/ HTTP/1.1\r\nHost: h\r\nAuthorization: "
                  f"Basic {basic(u, WRONG)}\r\n\r\n".encode())
        status, _, _ = web.read_response(f)
        waits.append(time.monotonic() - t0)
        check(status == 401, f"status {status}")
    s.close()
    # the first attempt does not wait; then 300 ms, then 600 ms
    check(waits[1] >= DELAY_MS / 1000 * 0.9 and
          waits[2] >= 2 * DELAY_MS / 1000 * 0.9,
          f"waits {[round(w, 2) for w in waits]}")


@case("web-login-attempts-that-could-dodge-the-count-are-refused-or-counted")
def _():
    start_throttle()
    # Basic credentials on a form login: judged as the form's user
    body = "loginOp=login&username=dodger%40example.org&password=" + WRONG
    head = ("POST / HTTP/1.1\r\nHost: h\r\nAuthorization: Basic "
            f"{basic('junk', 'x')}\r\nContent-Type: "
            "application/x-www-form-urlencoded\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n")
    out = web.raw_exchange(head.encode() + body.encode(), port=TWEB)
    check(out.startswith(b"HTTP/1.1 200"), f"form with Basic: {out[:40]!r}")
    time.sleep(0.3)
    last = [r for r in audit_lines() if r["protocol"] == "http"][-1]
    check(last["user"] == "dodger@example.org" and
          last["mechanism"] == "form" and
          last["result"] == "bad-credentials", f"judged as {last}")
    # a Basic name postern cannot count: refused, not forwarded
    before = env.back1.count()
    code, _ = request("/dav/x/", "gina@example.org ", WRONG)
    check(code == 400, f"Basic name with a space: {code}")
    check(env.back1.count() == before, "forwarded anyway")
    # two of the field, or the field in the query: refused
    code, _ = form_login("username=decoy&username=kate%40example.org&"
                         "password=x", "application/x-www-form-urlencoded",
                         path="/")
    check(code == 400, f"field twice: {code}")
    code, _ = form_login("username=decoy&password=x",
                         "application/x-www-form-urlencoded",
                         path="/?username=kate%40example.org")
    check(code == 400, f"field in the query: {code}")
    # the path in another case is the same login to the server
    code, _ = form_login(soap_json("caseuser@example.org", WRONG),
                         "application/soap+json",
                         path="/service/soap/authrequest")
    # (the test backend knows only the exact path: it answers 200, no
    # cookie, which for a form login is a failure all the same)
    check(code in (200, 500), f"lower-case path: {code}")
    time.sleep(0.3)
    check(any(r["user"] == "caseuser@example.org" and
              r["result"] == "bad-credentials" for r in audit_lines()),
          "lower-case path not counted")
