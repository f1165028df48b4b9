"""Real copycat-lua servers for the HTTP specs: a 3-node kv cluster with
the HTTP API on loopback, free ports, killed by PID (standard library
only)."""
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.environ.get("COPYCAT_BUILD", "build")
BIN = os.path.join(ROOT, BUILD, "copycat-lua")


def free_ports(n):
    socks, ports = [], []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
        ports.append(s.getsockname()[1])
    for s in socks:
        s.close()
    return ports


def request(address, method, path, body=None, headers=None, timeout=15):
    """(status, headers dict (lower-case names), decoded JSON or text)."""
    host, port = address.rsplit(":", 1)
    c = http.client.HTTPConnection(host, int(port), timeout=timeout)
    try:
        data = body
        if body is not None and not isinstance(body, (bytes, str)):
            data = json.dumps(body)
        c.request(method, path, body=data, headers=headers or {})
        r = c.getresponse()
        raw = r.read()
        hdrs = {k.lower(): v for k, v in r.getheaders()}
        if hdrs.get("content-type", "").startswith("application/json"):
            return r.status, hdrs, json.loads(raw)
        return r.status, hdrs, raw.decode("utf-8", "replace")
    finally:
        c.close()


class Cluster:
    """Three kv servers bootstrapped together, each with --http-address."""

    def __init__(self, n=3, extra=None, state_machine=None):
        self.dir = tempfile.mkdtemp(prefix="copycat-http-")
        ports = free_ports(2 * n)
        self.peers = ["127.0.0.1:%d" % p for p in ports[:n]]
        self.http = ["127.0.0.1:%d" % p for p in ports[n:]]
        self.extra = extra or []
        self.state_machine = state_machine
        self.procs = [None] * n
        for i in range(n):
            self.start(i)

    def start(self, i):
        args = [BIN, os.path.join(ROOT, "examples/kv/server.lua"),
                "--name", "n%d" % (i + 1), "--address", self.peers[i],
                "--data", os.path.join(self.dir, "n%d" % (i + 1)),
                "--bootstrap", ",".join(self.peers),
                "--http-address", self.http[i],
                "--election-timeout", "300", "--heartbeat-interval", "30",
                "--log-level", "warn"] + self.extra
        if self.state_machine:
            args += ["--state-machine", self.state_machine]
        log = open(os.path.join(self.dir, "n%d.log" % (i + 1)), "ab")
        self.procs[i] = subprocess.Popen(args, cwd=ROOT, stdout=log, stderr=log)
        log.close()

    def kill(self, i, sig=signal.SIGKILL):
        p = self.procs[i]
        if p and p.poll() is None:
            p.send_signal(sig)
            p.wait(timeout=20)
        self.procs[i] = None

    def status(self, i):
        try:
            st, _, body = request(self.http[i], "GET", "/v1/status", timeout=2)
            return body if st == 200 else None
        except OSError:
            return None

    def leader(self, timeout=20):
        """Index of the member all running members agree leads, once it
        is ready; raises after timeout seconds."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            for i in range(len(self.procs)):
                if self.procs[i] is None:
                    continue
                s = self.status(i)
                if s and s.get("role") == "leader":
                    try:
                        st, _, _ = request(self.http[i], "GET", "/ready", timeout=2)
                    except OSError:
                        st = 0
                    if st == 200:
                        return i
            time.sleep(0.05)
        raise AssertionError("no leader within %ss (logs in %s)" % (timeout, self.dir))

    def wait_ready(self, timeout=20):
        deadline = time.time() + timeout
        for i in range(len(self.procs)):
            while True:
                try:
                    st, _, _ = request(self.http[i], "GET", "/ready", timeout=2)
                    if st == 200:
                        break
                except OSError:
                    pass
                if time.time() > deadline:
                    raise AssertionError("member %d not ready (logs in %s)" % (i + 1, self.dir))
                time.sleep(0.05)

    def close(self):
        for i in range(len(self.procs)):
            self.kill(i, signal.SIGTERM)
        shutil.rmtree(self.dir, ignore_errors=True)
