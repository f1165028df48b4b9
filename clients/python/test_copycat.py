"""The Python client against a real 3-node cluster: exactly-once under a
leader SIGKILL, events across a leader change, failover across members."""
import os
import sys
import threading
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(ROOT, "spec", "http"))
import copycat  # noqa: E402
from harness import Cluster, free_ports  # noqa: E402

MACHINE = os.path.join(ROOT, "spec", "sessions", "machine.lua")


class ClientSpec(unittest.TestCase):
    def setUp(self):
        self.c = Cluster(state_machine=MACHINE)
        self.c.wait_ready()

    def tearDown(self):
        self.c.close()

    def test_exactly_once_under_leader_sigkill(self):
        leader = self.c.leader()
        # The leader first: the client must move on when it dies.
        members = [self.c.http[leader]] + [a for i, a in enumerate(self.c.http) if i != leader]
        client = copycat.Client(members, session_timeout=5.0, timeout=20.0)
        n = 40
        for v in range(1, n // 2 + 1):
            self.assertEqual(client.submit("append", {"v": v}), v)
        self.c.kill(leader)
        for v in range(n // 2 + 1, n + 1):
            self.assertEqual(client.submit("append", {"v": v}), v)
        self.assertEqual(client.query("list"), list(range(1, n + 1)))
        client.close()

    def test_pipelined_submits_from_threads_apply_once_each(self):
        client = copycat.Client(self.c.http, session_timeout=5.0)
        results = []
        lock = threading.Lock()

        def work(base):
            for k in range(10):
                r = client.submit("append", {"v": base + k})
                with lock:
                    results.append(r)

        threads = [threading.Thread(target=work, args=(100 * t,)) for t in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(sorted(results), list(range(1, 41)))
        got = client.query("list", consistency="sequential")
        self.assertEqual(sorted(got), sorted(100 * t + k for t in range(4) for k in range(10)))
        client.close()

    def test_events_once_and_in_order_across_a_leader_change(self):
        listener = copycat.Client(self.c.http, session_timeout=5.0)
        publisher = copycat.Client(self.c.http, session_timeout=5.0)
        sid = listener.open()
        publisher.submit("publish", {"session": sid, "from": 1, "to": 5})
        got = []
        it = listener.events(timeout=20)
        for ev in it:
            got.append((ev.id, ev.name, ev.data))
            if len(got) == 5:
                break
        self.c.kill(self.c.leader())
        publisher.submit("publish", {"session": sid, "from": 6, "to": 10})
        for ev in it:
            got.append((ev.id, ev.name, ev.data))
            if len(got) == 10:
                break
        self.assertEqual(got, [(i, "n", i) for i in range(1, 11)])
        listener.close()
        publisher.close()

    def test_failover_across_members(self):
        dead = "127.0.0.1:%d" % free_ports(1)[0]  # nobody listens there
        client = copycat.Client([dead] + self.c.http, session_timeout=5.0)
        self.assertEqual(client.submit("append", {"v": "x"}), 1)
        self.assertEqual(client.query("last", consistency="lease"), "x")
        client.close()

    def test_errors(self):
        client = copycat.Client(self.c.http, session_timeout=5.0)
        with self.assertRaises(copycat.Error) as e:
            client.submit("no_such_command", {})
        self.assertEqual(e.exception.code, "unknown_command")
        # The failed command used its sequence number: the next one runs.
        self.assertEqual(client.submit("append", {"v": 1}), 1)
        with self.assertRaises(copycat.Error) as e:
            client.query("count", consistency="eventual")
        self.assertEqual(e.exception.code, "bad_request")
        client.close()
        # A closed session cannot be used: a new client opens a new one.
        with self.assertRaises(copycat.SessionLost):
            copycat.Client(self.c.http)._call("POST", "/v1/sessions/999999/keepalive", {})


if __name__ == "__main__":
    unittest.main()
