"""A route lookup handler speaking nginx's auth_http protocol, for the
regress suite: the same handler answers postern and stock nginx."""

import http.server
import threading
import urllib.parse


class LookupHandler:
    """routes: {user: (ip, port_by_protocol_dict)}; unknown users are
    refused.  Counts requests per user and keeps their headers."""

    def __init__(self, port, routes):
        self.port = port
        self.routes = routes
        self.requests = []
        self.lock = threading.Lock()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                user = urllib.parse.unquote(self.headers.get("Auth-User",
                                                             ""))
                proto = self.headers.get("Auth-Protocol", "")
                with outer.lock:
                    outer.requests.append(dict(self.headers.items()))
                route = outer.routes.get(user.lower())
                self.send_response(200)
                if route is None:
                    self.send_header("Auth-Status",
                                     "Invalid login or password")
                    self.send_header("Auth-Wait", "0")
                else:
                    ip, ports, account = route
                    self.send_header("Auth-Status", "OK")
                    self.send_header("Auth-Server", ip)
                    self.send_header("Auth-Port", str(ports[proto]))
                    if account:
                        self.send_header("Auth-User", account)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", port),
                                                      Handler)
        self.thread = threading.Thread(target=self.server.serve_forever,
                                       daemon=True)

    def start(self):
        self.thread.start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()

    def count(self, user, agent=None):
        with self.lock:
            return sum(1 for h in self.requests
                       if urllib.parse.unquote(h.get("Auth-User", "")) == user
                       and (agent is None or
                            ("Auth-Pass" in h) == (agent == "nginx")))
