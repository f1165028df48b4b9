"""The HTTP/JSON API (docs/http.md) of a real 3-node kv cluster: every
endpoint, its errors, exactly-once with a session of the caller's, and
requests sent to followers."""
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import ROOT, Cluster, request  # noqa: E402


class GatewaySpec(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.c = Cluster()
        cls.c.wait_ready()
        cls.leader = cls.c.leader()
        cls.follower = (cls.leader + 1) % 3

    @classmethod
    def tearDownClass(cls):
        cls.c.close()

    def at(self, i, method, path, body=None, headers=None):
        return request(self.c.http[i], method, path, body, headers)

    def test_health_ready_status_members(self):
        for i in range(3):
            st, _, body = self.at(i, "GET", "/health")
            self.assertEqual((st, body), (200, {"status": "ok"}))
            st, _, body = self.at(i, "GET", "/ready")
            self.assertEqual(st, 200)
            self.assertTrue(body["ready"])
        st, _, body = self.at(self.follower, "GET", "/v1/status")
        self.assertEqual(st, 200)
        self.assertEqual(body["role"], "follower")
        self.assertEqual(body["leader"], "n%d" % (self.leader + 1))
        self.assertGreaterEqual(body["commit_index"], 1)
        st, _, members = self.at(self.follower, "GET", "/v1/members")
        self.assertEqual(st, 200)
        self.assertEqual(sorted(m["name"] for m in members), ["n1", "n2", "n3"])
        self.assertEqual([m["name"] for m in members if m["leader"]], ["n%d" % (self.leader + 1)])

    def test_metrics(self):
        st, hdrs, text = self.at(self.follower, "GET", "/metrics")
        self.assertEqual(st, 200)
        self.assertTrue(hdrs["content-type"].startswith("text/plain"))
        self.assertIn("copycat_term", text)

    def test_command_and_queries_on_any_member(self):
        st, _, body = self.at(self.follower, "POST", "/v1/commands/put", {"key": "k1", "value": "one"})
        self.assertEqual(st, 200, body)
        self.assertIsNone(body["result"])
        index = body["index"]
        self.assertGreater(index, 0)
        st, _, body = self.at((self.follower + 1) % 3, "POST", "/v1/commands/put", {"key": "k1", "value": "two"})
        self.assertEqual((st, body["result"]), (200, "one"))
        # The second put's index, not index + 1: the second member's gateway
        # may open its own session first, an entry of its own.
        second = body["index"]
        self.assertGreater(second, index)
        for level in ("linearizable", "lease", "sequential"):
            for i in range(3):
                st, _, body = self.at(i, "POST", "/v1/queries/get?consistency=" + level, {"key": "k1"},
                                      {"Copycat-Index": str(second)})
                self.assertEqual(st, 200, body)
                self.assertEqual(body["result"], "two")
                self.assertGreaterEqual(body["index"], second)

    def test_values_round_trip_as_json(self):
        value = {"list": [1, 2.5, "x", True, None], "nested": {"a": {"b": []}}, "n": -7}
        st, _, body = self.at(self.follower, "POST", "/v1/commands/put", {"key": "json", "value": value})
        self.assertEqual(st, 200, body)
        st, _, body = self.at(self.leader, "POST", "/v1/queries/get", {"key": "json"})
        self.assertEqual(st, 200)
        got = body["result"]
        self.assertEqual(got["list"][:4], [1, 2.5, "x", True])
        self.assertEqual(got["nested"]["a"]["b"] in ([], {}), True)
        self.assertEqual(got["n"], -7)

    def test_bad_json(self):
        st, _, body = self.at(self.follower, "POST", "/v1/commands/put", '{"key": ')
        self.assertEqual(st, 400)
        self.assertEqual(body["error"]["code"], "bad_json")

    def test_wrong_method(self):
        st, hdrs, body = self.at(self.follower, "GET", "/v1/commands/put")
        self.assertEqual(st, 405)
        self.assertEqual(body["error"]["code"], "method_not_allowed")
        self.assertEqual(hdrs["allow"], "POST")
        st, _, body = self.at(self.follower, "POST", "/v1/status", {})
        self.assertEqual((st, body["error"]["code"]), (405, "method_not_allowed"))
        st, _, body = self.at(self.follower, "GET", "/v1/sessions/12")
        self.assertEqual((st, body["error"]["code"]), (405, "method_not_allowed"))

    def test_unknown_path_and_command(self):
        st, _, body = self.at(self.follower, "GET", "/nowhere")
        self.assertEqual((st, body["error"]["code"]), (404, "not_found"))
        st, _, body = self.at(self.follower, "POST", "/v1/commands/no_such_command", {})
        self.assertEqual((st, body["error"]["code"]), (404, "unknown_command"))
        st, _, body = self.at(self.follower, "POST", "/v1/queries/no_such_query", {})
        self.assertEqual((st, body["error"]["code"]), (404, "unknown_command"))
        st, _, body = self.at(self.follower, "POST", "/v1/queries/get?consistency=eventual", {})
        self.assertEqual((st, body["error"]["code"]), (400, "bad_request"))

    def test_application_error(self):
        st, _, body = self.at(self.follower, "POST", "/v1/commands/put", {"key": 12})
        self.assertEqual((st, body["error"]["code"]), (422, "application"))
        self.assertIn("key must be a string", body["error"]["message"])

    def test_oversized_body(self):
        big = '{"key": "big", "value": "' + "x" * (2 * 1024 * 1024 + 10) + '"}'
        st, _, body = self.at(self.follower, "POST", "/v1/commands/put", big)
        self.assertEqual(st, 413)
        self.assertEqual(body["error"]["code"], "too_large")
        # nothing was applied
        st, _, body = self.at(self.leader, "POST", "/v1/queries/get", {"key": "big"})
        self.assertEqual((st, body.get("result")), (200, None), body)

    def test_missing_session(self):
        h = {"Copycat-Session": "999999", "Copycat-Sequence": "1"}
        st, _, body = self.at(self.follower, "POST", "/v1/commands/put", {"key": "a", "value": 1}, h)
        self.assertEqual((st, body["error"]["code"]), (404, "session_not_found"))
        st, _, body = self.at(self.follower, "POST", "/v1/sessions/999999/keepalive", {})
        self.assertEqual((st, body["error"]["code"]), (404, "session_not_found"))
        st, _, body = self.at(self.follower, "POST", "/v1/commands/put", {}, {"Copycat-Session": "5"})
        self.assertEqual((st, body["error"]["code"]), (400, "bad_request"))

    def test_lost_reply_resent_with_same_sequence_is_applied_once(self):
        st, _, s = self.at(self.follower, "POST", "/v1/sessions", {"timeout_ms": 5000})
        self.assertEqual(st, 200, s)
        sid = str(s["id"])
        h1 = {"Copycat-Session": sid, "Copycat-Sequence": "1"}
        st, _, a = self.at(self.follower, "POST", "/v1/commands/put", {"key": "once", "value": "v1"}, h1)
        self.assertEqual((st, a["result"]), (200, None))
        # The reply is "lost": the caller sends the same command again,
        # to another member; it is not applied again (same answer).
        st, _, b = self.at(self.leader, "POST", "/v1/commands/put", {"key": "once", "value": "v1"}, h1)
        self.assertEqual((st, b["result"]), (200, None))
        h2 = {"Copycat-Session": sid, "Copycat-Sequence": "2"}
        st, _, c = self.at(self.follower, "POST", "/v1/commands/put", {"key": "once", "value": "v2"}, h2)
        self.assertEqual((st, c["result"]), (200, "v1"))
        # Sequence 1 again, now acknowledged (Copycat-Ack defaults to seq-1).
        st, _, d = self.at(self.follower, "POST", "/v1/commands/put", {"key": "once", "value": "v1"}, h1)
        self.assertEqual((st, d["error"]["code"]), (410, "lost"))
        st, _, g = self.at(self.leader, "POST", "/v1/queries/get", {"key": "once"})
        self.assertEqual(g["result"], "v2")
        st, _, k = self.at(self.follower, "POST", "/v1/sessions/%s/keepalive" % sid, {"command_ack": 2})
        self.assertEqual((st, k), (200, {"id": int(sid), "open": True}))
        st, _, x = self.at(self.follower, "DELETE", "/v1/sessions/" + sid)
        self.assertEqual((st, x["closed"]), (200, True))
        st, _, e = self.at(self.follower, "POST", "/v1/commands/put", {"key": "once", "value": "v3"},
                           {"Copycat-Session": sid, "Copycat-Sequence": "3"})
        self.assertEqual((st, e["error"]["code"]), (404, "session_not_found"))

    def test_bad_session_requests(self):
        st, _, body = self.at(self.follower, "POST", "/v1/sessions", {"timeout_ms": "soon"})
        self.assertEqual((st, body["error"]["code"]), (400, "bad_request"))
        st, _, body = self.at(self.follower, "POST", "/v1/sessions/abc/keepalive", {})
        self.assertEqual((st, body["error"]["code"]), (404, "not_found"))


if __name__ == "__main__":
    unittest.main()


class CodesSpec(unittest.TestCase):
    """The status of a failed command comes from the session layer's code,
    not from its message."""

    @classmethod
    def setUpClass(cls):
        cls.c = Cluster(state_machine=os.path.join(ROOT, "spec", "sessions", "machine.lua"))
        cls.c.wait_ready()

    @classmethod
    def tearDownClass(cls):
        cls.c.close()

    def test_unknown_op_is_404_and_a_handler_error_422_whatever_it_says(self):
        follower = (self.c.leader() + 1) % 3
        st, _, body = request(self.c.http[follower], "POST", "/v1/commands/nope", {})
        self.assertEqual((st, body["error"]["code"]), (404, "unknown_command"))
        self.assertEqual(body["error"]["message"], "unknown command 'nope'")
        st, _, body = request(self.c.http[follower], "POST", "/v1/queries/nope", {})
        self.assertEqual((st, body["error"]["code"]), (404, "unknown_command"))
        st, _, body = request(self.c.http[follower], "POST", "/v1/commands/raise",
                              {"message": "unknown command 'nope'"})
        self.assertEqual((st, body["error"]["code"]), (422, "application"))
        self.assertEqual(body["error"]["message"], "unknown command 'nope'")
        st, _, body = request(self.c.http[follower], "POST", "/v1/commands/raise",
                              {"message": "busy: retry shortly"})
        self.assertEqual((st, body["error"]["code"]), (422, "application"))
