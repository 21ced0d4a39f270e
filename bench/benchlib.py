"""What the small A/B benchmarks share: CPU from /proc, a process tree,
waiting for a port, stopping a child by its pid."""
import os
import signal
import socket
import subprocess
import time

TICK = os.sysconf("SC_CLK_TCK")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# the certificate bench/run makes (EC P-256)
CERT = os.path.join(ROOT, "run/bench/mail.example.org.crt")
KEY = os.path.join(ROOT, "run/bench/mail.example.org.key")

# a postern configuration's start: throttling on, never refusing
POSTERN_HEAD = """user "_postern"
chroot "/var/empty"
throttle ip 10000000 per 60
throttle user 10000000 per 60
throttle failures ip 10000000 per 60
throttle failures ip-user 10000000 per 60
limit connections-per-ip 0
"""

# a private nginx's start; its http block stays open
NGINX_HEAD = """worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log;
events {{ worker_connections 1024; }}
http {{
  access_log off;
"""


def tree(pid):
    """pid and its live descendants."""
    out = [pid]
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            for child in f.read().split():
                out += tree(int(child))
    except OSError:
        pass
    return out


def cpu_ticks(pids):
    """User + system clock ticks used so far by these processes."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except OSError:
            pass
    return total


def wait_port(port, timeout=10.0):
    """True once 127.0.0.1:port takes a connection."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return True
        except OSError:
            time.sleep(0.05)
    return False


def stop(proc, sig=signal.SIGTERM, timeout=10):
    """Stop a child we started, by its pid; SIGKILL if it lingers."""
    if proc.poll() is not None:
        return
    proc.send_signal(sig)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
