"""Session events as Server-Sent Events (GET /v1/sessions/ID/events) on a
real 3-node cluster: once each and in order across a leader change,
resumed with Last-Event-ID, ended with session_closed."""
import http.client
import json
import os
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import ROOT, Cluster, request  # noqa: E402

MACHINE = os.path.join(ROOT, "spec", "sessions", "machine.lua")


class Stream:
    """An SSE reader over http.client: next() -> (id, event, data)."""

    def __init__(self, address, sid, last=None):
        host, port = address.rsplit(":", 1)
        self.conn = http.client.HTTPConnection(host, int(port), timeout=15)
        headers = {"Last-Event-ID": str(last)} if last is not None else {}
        self.conn.request("GET", "/v1/sessions/%d/events" % sid, headers=headers)
        self.r = self.conn.getresponse()
        assert self.r.status == 200, self.r.status
        assert self.r.getheader("Content-Type") == "text/event-stream"

    def next(self):
        fields, data = {}, []
        while True:
            line = self.r.readline()
            if not line:
                return None
            line = line.decode().rstrip("\n")
            if line == "":
                if data:
                    return int(fields.get("id", 0)), fields.get("event"), json.loads("\n".join(data))
                continue
            if line.startswith(":"):
                continue
            k, _, v = line.partition(": ")
            if k == "data":
                data.append(v)
            else:
                fields[k] = v

    def close(self):
        self.conn.close()


class EventsSpec(unittest.TestCase):
    def setUp(self):
        self.c = Cluster(state_machine=MACHINE)
        self.c.wait_ready()

    def tearDown(self):
        self.c.close()

    def post(self, i, path, body):
        st, _, b = request(self.c.http[i], "POST", path, body)
        self.assertEqual(st, 200, b)
        return b

    def publish(self, i, sid, a, b):
        self.post(i, "/v1/commands/publish", {"session": sid, "from": a, "to": b})

    def test_once_in_order_across_a_leader_change_and_resumed(self):
        leader = self.c.leader()
        f1, f2 = [i for i in range(3) if i != leader]
        sid = self.post(f1, "/v1/sessions", {"timeout_ms": 5000})["id"]
        s = Stream(self.c.http[f1], sid)
        self.publish(f2, sid, 1, 5)
        got = [s.next() for _ in range(5)]
        self.c.kill(leader)  # SIGKILL
        self.publish(f2, sid, 6, 10)
        got += [s.next() for _ in range(5)]
        self.assertEqual(got, [(i, "n", i) for i in range(1, 11)])
        s.close()
        # A new stream, on the other member, resumes after event 7.
        s = Stream(self.c.http[f2], sid, last=7)
        self.assertEqual([s.next() for _ in range(3)], [(8, "n", 8), (9, "n", 9), (10, "n", 10)])
        self.publish(f1, sid, 11, 11)
        self.assertEqual(s.next(), (11, "n", 11))
        # Closing the session ends the stream with session_closed.
        st, _, _ = request(self.c.http[f1], "DELETE", "/v1/sessions/%d" % sid)
        self.assertEqual(st, 200)
        deadline = time.time() + 10
        ev = s.next()
        while ev is not None and ev[1] != "session_closed" and time.time() < deadline:
            ev = s.next()
        self.assertIsNotNone(ev)
        self.assertEqual(ev[1], "session_closed")
        self.assertEqual(ev[2]["code"], "session_not_found")
        self.assertIsNone(s.next())  # and the stream ends
        s.close()

    def test_stream_of_a_missing_session_says_so(self):
        s = Stream(self.c.http[0], 999999)
        ev = s.next()
        self.assertEqual((ev[1], ev[2]["code"]), ("session_closed", "session_not_found"))
        s.close()


if __name__ == "__main__":
    unittest.main()
