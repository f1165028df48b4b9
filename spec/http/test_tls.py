"""The HTTP API of a server with TLS: HTTPS with the member's certificate
(HTTP/1.1 and the native upstream both under TLS); plain HTTP gets
nothing."""
import http.client
import json
import os
import ssl
import subprocess
import sys
import tempfile
import shutil
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import BIN, ROOT, free_ports  # noqa: E402


class TlsSpec(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="copycat-http-tls-")
        certs = os.path.join(self.dir, "certs")
        subprocess.run([BIN, "ctl", "certs", certs, "n1"], check=True, stdout=subprocess.DEVNULL)
        peer, self.port = free_ports(2)
        log = open(os.path.join(self.dir, "log"), "wb")
        self.proc = subprocess.Popen(
            [BIN, "examples/kv/server.lua", "--name", "n1", "--address", "127.0.0.1:%d" % peer,
             "--data", os.path.join(self.dir, "n1"), "--bootstrap", "127.0.0.1:%d" % peer,
             "--http-address", "127.0.0.1:%d" % self.port, "--tls-ca", os.path.join(certs, "ca.crt"),
             "--tls-cert", os.path.join(certs, "n1.crt"), "--tls-key", os.path.join(certs, "n1.key")],
            cwd=ROOT, stdout=log, stderr=log)
        log.close()
        self.ctx = ssl.create_default_context(cafile=os.path.join(certs, "ca.crt"))

    def tearDown(self):
        self.proc.kill()
        self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)

    def https(self, method, path, body=None):
        # The certificate names the member (n1), not the IP address.
        c = http.client.HTTPSConnection("127.0.0.1", self.port, timeout=10, context=self.ctx)
        c.sock = self.ctx.wrap_socket(__import__("socket").create_connection(("127.0.0.1", self.port), 10),
                                      server_hostname="n1")
        try:
            c.request(method, path, body=json.dumps(body) if body is not None else None)
            r = c.getresponse()
            return r.status, json.loads(r.read())
        finally:
            c.close()

    def test_https_serves_the_api(self):
        deadline = time.time() + 20
        while True:
            try:
                st, body = self.https("GET", "/ready")
                if st == 200:
                    break
            except OSError:
                pass
            self.assertLess(time.time(), deadline, "not ready over HTTPS")
            time.sleep(0.1)
        st, body = self.https("POST", "/v1/commands/put", {"key": "k", "value": "secret"})
        self.assertEqual((st, body["result"]), (200, None))
        st, body = self.https("POST", "/v1/queries/get", {"key": "k"})
        self.assertEqual((st, body["result"]), (200, "secret"))
        # A plain HTTP request gets no answer.
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        with self.assertRaises((http.client.HTTPException, OSError)):
            c.request("GET", "/health")
            c.getresponse()
        c.close()


if __name__ == "__main__":
    unittest.main()
