"""Shared pieces of the regress runner and the demo: running postern
with a generated config, finding its children, and small raw-socket
protocol clients that let a test see every byte postern sends."""

import os
import pwd
import re
import signal
import socket
import subprocess
import time


def wait_port(host, port, timeout=15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=1.0):
                return True
        except OSError:
            time.sleep(0.05)
    return False


def make_cert(directory, name, days=30):
    """A self-signed EC certificate for name; returns (cert, key) paths."""
    safe = name.replace("*", "wildcard")
    cert = os.path.join(directory, f"{safe}.crt")
    key = os.path.join(directory, f"{safe}.key")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec",
                    "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-days", str(days), "-subj", f"/CN={name}",
                    "-addext", f"subjectAltName=DNS:{name}",
                    "-keyout", key, "-out", cert],
                   check=True, capture_output=True)
    os.chmod(key, 0o600)
    return cert, key


def fingerprint(pem_bytes_or_path):
    """SHA-256 fingerprint of a certificate (PEM file or PEM bytes)."""
    if isinstance(pem_bytes_or_path, str):
        args = ["openssl", "x509", "-noout", "-fingerprint", "-sha256",
                "-in", pem_bytes_or_path]
        out = subprocess.run(args, check=True, capture_output=True).stdout
    else:
        out = subprocess.run(["openssl", "x509", "-noout", "-fingerprint",
                              "-sha256"], input=pem_bytes_or_path,
                             check=True, capture_output=True).stdout
    return out.decode().strip().split("=", 1)[1]


def write_config(path, listeners, upstreams, routes, extra="", keypairs=None):
    """listeners: [(addr, port, proto)] or [(addr, port, proto, options)];
    upstreams: {name: (host, imap, pop3)} or (host, imap, pop3, options);
    routes: [(kind, match, upstream)] with kind user|domain|default;
    keypairs: {name: (cert, key)}."""
    lines = ['user "_postern"', 'chroot "/var/empty"']
    lines += extra.strip().splitlines()
    for name, (cert, key) in (keypairs or {}).items():
        lines += [f'tls keypair "{name}" {{', f'\tcertificate "{cert}"',
                  f'\tkey "{key}"', "}"]
    for addr, port, proto, *opts in listeners:
        lines.append(f"listen on {addr} port {port} {proto} "
                     f"{opts[0] if opts else ''}".rstrip())
    for name, (host, imap, pop3, *opts) in upstreams.items():
        lines.append(f'upstream "{name}" {{')
        lines.append(f"\thost {host}")
        if imap:
            lines.append(f"\timap port {imap}")
        if pop3:
            lines.append(f"\tpop3 port {pop3}")
        for opt in opts:
            lines.append(f"\t{opt}")
        lines.append("}")
    for kind, match, up in routes:
        if kind == "default":
            lines.append(f'route default to "{up}"')
        else:
            lines.append(f'route {kind} "{match}" to "{up}"')
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


def ensure_user(name="_postern"):
    try:
        pwd.getpwnam(name)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home",
                        "--home-dir", "/var/empty", "--shell",
                        "/usr/sbin/nologin", name], check=True)


def terminate(proc, timeout=10.0):
    """SIGTERM a process we started, SIGKILL it if it does not go."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class Postern:
    """One postern daemon in the foreground (-d), logging to a file."""

    def __init__(self, binary, conf, log_path, ports, verbose=True,
                 extra_relays=0, extra_tlsprocs=0, environ=None):
        # children beyond one of each role, each logs "ready" once
        self.extra_relays = extra_relays
        self.extra_tlsprocs = extra_tlsprocs
        self.binary = os.path.abspath(binary)
        self.conf = conf
        self.log_path = log_path
        self.ports = ports
        self.verbose = verbose
        self.proc = None
        self.environ = environ or {}
        # each instance its own control socket, short enough for sun_path
        self.control = f"/tmp/postern-{os.getpid()}-{ports[0]}.sock" \
            if ports else None
        self.ctl_binary = os.path.join(os.path.dirname(self.binary),
                                       "posternctl")

    def _add_control_socket(self):
        with open(self.conf) as f:
            text = f.read()
        if "control socket" in text or self.control is None:
            for line in text.splitlines():
                if line.startswith("control socket \""):
                    self.control = line.split('"')[1]
            return
        with open(self.conf, "a") as f:
            f.write(f'control socket "{self.control}"\n')

    def ctl(self, *words, timeout=30.0):
        """Run posternctl against this instance: (status, output)."""
        r = subprocess.run([self.ctl_binary, "-s", self.control, *words],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           timeout=timeout)
        return r.returncode, r.stdout.decode("utf-8", "replace")

    def start(self, timeout=20.0):
        ensure_user()
        self._add_control_socket()
        args = [self.binary, "-d", "-f", self.conf]
        if self.verbose:
            args.append("-v")
        env = dict(os.environ)
        # LeakSanitizer needs ptrace, which the sandbox forbids
        env.setdefault("ASAN_OPTIONS", "detect_leaks=0")
        env.update(self.environ)
        self.logf = open(self.log_path, "ab")
        self.proc = subprocess.Popen(args, stdout=self.logf,
                                     stderr=subprocess.STDOUT, env=env)
        for port in self.ports:
            if not wait_port("127.0.0.1", port, timeout):
                self.stop()
                raise RuntimeError(f"postern did not listen on {port}:\n"
                                   + self.log_text()[-3000:])
        # the children are ready once both logged "ready"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            extra = self.extra_relays + self.extra_tlsprocs
            if len(self._children()) >= 3 + extra and \
                    self.log_text().count("ready") >= 3 + extra:
                return
            time.sleep(0.05)
        raise RuntimeError("postern children did not start:\n"
                           + self.log_text()[-3000:])

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def log_text(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def log_has(self, what, timeout=5.0):
        """Whether the log shows what (a string or compiled pattern)
        within timeout: postern's children log through the parent, which
        writes info lines a moment later."""
        deadline = time.monotonic() + timeout
        while True:
            text = self.log_text()
            if (what in text if isinstance(what, str)
                    else what.search(text)):
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)

    def _children(self):
        """(pid, role) of every live child, read from /proc."""
        found = []
        if self.proc is None:
            return found
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/stat") as f:
                    stat = f.read()
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    cmd = f.read().split(b"\0")
            except OSError:
                continue
            ppid = int(stat[stat.rindex(")") + 2:].split()[1])
            if ppid != self.proc.pid or b"-X" not in cmd:
                continue
            found.append((int(entry), cmd[cmd.index(b"-X") + 1].decode()))
        return found

    def children(self):
        """{role: pid} of the live children."""
        return {role: pid for pid, role in self._children()}

    def pids_of(self, role):
        """Every live child of one role (several relays or tlsprocs)."""
        return sorted(pid for pid, r in self._children() if r == role)

    def wait_child(self, role, not_pid=None, timeout=15.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pid = self.children().get(role)
            if pid and pid != not_pid:
                return pid
            time.sleep(0.05)
        return None

    def stop(self, timeout=10.0):
        if self.proc is None:
            return None
        terminate(self.proc, timeout)
        rc = self.proc.returncode
        self.logf.close()
        return rc


class Memcached:
    """A private memcached on loopback, stopped by pid."""

    def __init__(self, port, log_path):
        self.port = port
        self.log_path = log_path
        self.proc = None

    def start(self, timeout=10.0):
        self.logf = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            ["memcached", "-l", "127.0.0.1", "-p", str(self.port), "-U", "0",
             "-m", "32", "-c", "1024", "-u", "nobody"],
            stdout=self.logf, stderr=subprocess.STDOUT)
        if not wait_port("127.0.0.1", self.port, timeout):
            self.stop()
            raise RuntimeError(f"memcached did not listen on {self.port}")

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def pause(self):
        os.kill(self.proc.pid, signal.SIGSTOP)

    def resume(self):
        os.kill(self.proc.pid, signal.SIGCONT)

    def command(self, line, timeout=5.0):
        """One text-protocol exchange; returns everything up to END or
        the first complete reply line."""
        with socket.create_connection(("127.0.0.1", self.port),
                                      timeout) as sock:
            sock.sendall(line)
            data = b""
            while not (data.endswith(b"END\r\n") or
                       (data.endswith(b"\r\n") and
                        not data.startswith(b"VALUE") and
                        not data.startswith(b"STAT"))):
                chunk = sock.recv(65536)
                if not chunk:
                    break
                data += chunk
            return data

    def stop(self, timeout=10.0):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            try:
                os.kill(self.proc.pid, signal.SIGCONT)  # if paused
            except ProcessLookupError:
                pass
        terminate(self.proc, timeout)
        self.proc = None
        self.logf.close()


class Raw:
    """A line-oriented raw client: send bytes, read lines with a deadline."""

    def __init__(self, port, host="127.0.0.1", timeout=10.0):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.buf = b""
        self.timeout = timeout

    def send(self, data):
        self.sock.sendall(data)

    def line(self):
        while b"\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("connection closed; have %r" % self.buf)
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return line + b"\n"

    def until_tag(self, tag):
        """IMAP: all lines up to and including the tagged response."""
        lines = []
        while True:
            line = self.line()
            lines.append(line)
            if line.startswith(tag + b" "):
                return lines

    def closed(self, timeout=5.0):
        """True if the server closes the connection (after any data)."""
        self.sock.settimeout(timeout)
        try:
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    return True
                self.buf += chunk
        except (socket.timeout, TimeoutError):
            return False
        except ConnectionResetError:
            return True

    def close(self):
        self.sock.close()


def proc_status(pid):
    with open(f"/proc/{pid}/status") as f:
        return dict(line.rstrip("\n").split(":\t", 1) for line in f
                    if ":\t" in line)


def message(size, seed=0):
    """An RFC 5322 message of about size bytes with CRLF lines."""
    head = (f"From: a@example.org\r\nTo: b@example.org\r\n"
            f"Subject: test {seed}\r\nMessage-ID: <{seed}.{time.time()}"
            f"@example.org>\r\n\r\n").encode()
    body = bytearray()
    n = seed
    while len(head) + len(body) < size:
        n = (n * 1103515245 + 12345) & 0x7fffffff
        body += (b"%08x" % n) * 9 + b"\r\n"
    return head + bytes(body[:max(0, size - len(head) - 2)]) + b"\r\n"


LOGIN_RE = re.compile(r"Login: user=<([^>]*)>")
