"""copycat: a Python client for copycat-lua's HTTP/JSON API (docs/http.md).

Standard library only (Python 3.11 or later)::

    import copycat
    c = copycat.Client(["127.0.0.1:8001", "127.0.0.1:8002", "127.0.0.1:8003"])
    c.submit("put", {"key": "greeting", "value": "hello"})   # exactly once
    print(c.query("get", {"key": "greeting"}, consistency="lease"))
    for event in c.events():                                  # once each, in order
        print(event.id, event.name, event.data)
    c.close()

A client works in a session, opened on first use and kept alive by a
background thread. Each ``submit`` carries the session and the next
sequence number, and is resent with the same number to the next member
when a member fails or an answer is lost, so it is applied exactly once.
Any member accepts any request (the servers forward to the leader); the
client moves on to the next member only when one does not answer.
"""
import http.client
import json
import ssl as _ssl
import threading
import time
import urllib.parse

__all__ = ["Client", "Error", "SessionLost", "Event"]


class Error(Exception):
    """An error answer of the API: code (docs/http.md), message, HTTP status."""

    def __init__(self, code, message, status=None):
        super().__init__("%s: %s" % (code, message))
        self.code = code
        self.message = message
        self.status = status


class SessionLost(Error):
    """The session expired or was closed: state tied to it is gone."""


class Event:
    """One session event: id (its number), name and data (decoded JSON)."""

    __slots__ = ("id", "name", "data")

    def __init__(self, id, name, data):
        self.id, self.name, self.data = id, name, data

    def __repr__(self):
        return "Event(%r, %r, %r)" % (self.id, self.name, self.data)


# Answers worth trying again on another member (or later): the request may
# not have reached the cluster, or the cluster had no leader.
_RETRY_STATUS = {502, 503, 504}


class Client:
    """A session with a copycat-lua cluster over HTTP.

    members: "host:port" of the members' HTTP addresses. ssl_context: an
    ssl.SSLContext for HTTPS (e.g. ssl.create_default_context(cafile=...)),
    None for plain HTTP. session_timeout and timeout are in seconds: the
    session's expiry, and how long one call may take in all (attempts on
    every member included) before it raises.
    """

    def __init__(self, members, session_timeout=10.0, timeout=15.0, ssl_context=None):
        if isinstance(members, str):
            members = [m for m in members.split(",") if m]
        if not members:
            raise ValueError("copycat.Client: give at least one member address")
        self.members = list(members)
        self.session_timeout = session_timeout
        self.timeout = timeout
        self.ssl_context = ssl_context
        self._current = 0
        self._lock = threading.RLock()
        self.session = None
        self._seq = 0
        self._acked = 0  # results received for every sequence number up to here
        self._done = set()
        self._event_ack = 0
        self._index = 0
        self._lost = None
        self._stop = threading.Event()
        self._keeper = None

    # ---- transport ----

    def _connect(self, member, timeout):
        host, port = member.rsplit(":", 1)
        host = host.strip("[]")
        if self.ssl_context is not None:
            return http.client.HTTPSConnection(host, int(port), timeout=timeout, context=self.ssl_context)
        return http.client.HTTPConnection(host, int(port), timeout=timeout)

    def _once(self, member, method, path, body, headers, timeout):
        conn = self._connect(member, timeout)
        try:
            data = None if body is None else json.dumps(body)
            hdrs = {"Content-Type": "application/json"}
            hdrs.update(headers or {})
            conn.request(method, path, body=data, headers=hdrs)
            r = conn.getresponse()
            raw = r.read()
        finally:
            conn.close()
        try:
            doc = json.loads(raw) if raw else None
        except ValueError:
            doc = None
        return r.status, doc, raw

    def _call(self, method, path, body=None, headers=None, retry=True):
        """Sends the request to the current member, moving to the next one
        when a member cannot be reached or says it cannot serve now, until
        self.timeout. Returns the decoded JSON of a 200, raises Error."""
        deadline = time.monotonic() + self.timeout
        last = None
        pause = 0.05
        while True:
            member = self.members[self._current % len(self.members)]
            left = deadline - time.monotonic()
            if left <= 0:
                break
            try:
                status, doc, raw = self._once(member, method, path, body, headers, min(left, self.timeout))
            except (OSError, http.client.HTTPException) as e:
                last = Error("unavailable", "%s: %s" % (member, e))
                self._current += 1
            else:
                if status == 200:
                    return doc
                err = (doc or {}).get("error") if isinstance(doc, dict) else None
                code = err.get("code") if err else "http_%d" % status
                msg = err.get("message") if err else raw.decode("utf-8", "replace")[:200]
                if status in _RETRY_STATUS and retry:
                    last = Error(code, msg, status)
                    self._current += 1
                else:
                    cls = SessionLost if code == "session_not_found" else Error
                    raise cls(code, msg, status)
            if not retry:
                raise last
            time.sleep(min(pause, max(0, deadline - time.monotonic())))
            pause = min(pause * 2, 0.5)
        raise last or Error("unavailable", "no member answered within %.1fs" % self.timeout)

    # ---- session ----

    def open(self):
        """Opens the session (submit does it on first use). Returns its id."""
        with self._lock:
            if self._lost:
                raise self._lost
            if self.session is None:
                doc = self._call("POST", "/v1/sessions", {"timeout_ms": int(self.session_timeout * 1000)})
                self.session = doc["id"]
                self._stop.clear()
                self._keeper = threading.Thread(target=self._keep_alive, name="copycat-keepalive", daemon=True)
                self._keeper.start()
            return self.session

    def _keep_alive(self):
        interval = max(self.session_timeout / 4, 0.05)
        while not self._stop.wait(interval):
            try:
                self.keepalive()
            except SessionLost as e:
                self._lost = e
                return
            except Error:
                pass  # the next one may get through

    def keepalive(self):
        """One keep-alive now, acknowledging results and events received."""
        sid = self.session
        if sid is None:
            return
        self._call("POST", "/v1/sessions/%d/keepalive" % sid,
                   {"command_ack": self._acked, "event_ack": self._event_ack})

    def close(self):
        """Closes the session: the state machine's session_closed runs now."""
        self._stop.set()
        with self._lock:
            sid, self.session = self.session, None
        if sid is not None:
            try:
                self._call("DELETE", "/v1/sessions/%d" % sid)
            except SessionLost:
                pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _abandon(self):
        self._stop.set()
        with self._lock:
            self.session = None
            self._seq = self._acked = 0
            self._done.clear()
            self._event_ack = 0

    def _mark_done(self, seq):
        with self._lock:
            self._done.add(seq)
            while self._acked + 1 in self._done:
                self._acked += 1
                self._done.discard(self._acked)

    def _seen(self, doc):
        i = doc.get("index") or 0
        if i > self._index:
            self._index = i

    # ---- commands and queries ----

    def submit(self, name, args=None):
        """Runs command `name` with args (JSON-able) exactly once; returns
        its result. Raises Error (code "application" when the command
        raised), SessionLost when the session is gone."""
        self.open()
        with self._lock:
            self._seq += 1
            seq = self._seq
            headers = {"Copycat-Session": str(self.session), "Copycat-Sequence": str(seq),
                       "Copycat-Ack": str(self._acked)}
        path = "/v1/commands/" + urllib.parse.quote(name, safe="")
        try:
            doc = self._call("POST", path, args, headers)
        except SessionLost as e:
            self._lost = e
            raise
        except Error as e:
            if e.code == "unavailable" or e.status is None:
                # Maybe logged, maybe not: this session's later commands
                # would wait for it, so they go to a new session.
                self._abandon()
            else:
                self._mark_done(seq)  # answered (with an error): not resent
            raise
        self._mark_done(seq)
        self._seen(doc)
        return doc.get("result")

    def query(self, name, args=None, consistency="linearizable"):
        """Runs query `name`; consistency is "linearizable" (default),
        "lease" or "sequential". Never older than what this client saw."""
        path = "/v1/queries/%s?consistency=%s" % (urllib.parse.quote(name, safe=""),
                                                  urllib.parse.quote(consistency))
        headers = {"Copycat-Index": str(self._index)}
        if self.session is not None:
            headers["Copycat-Session"] = str(self.session)
        doc = self._call("POST", path, args, headers)
        self._seen(doc)
        return doc.get("result")

    # ---- events ----

    def events(self, timeout=None):
        """Iterates over the session's events, once each and in order,
        across broken streams and failed members (resuming with
        Last-Event-ID). Ends when the session is closed or expires (raises
        SessionLost), or after `timeout` seconds without an event (returns)."""
        self.open()
        last_event = time.monotonic()
        while True:
            if timeout is not None and time.monotonic() - last_event > timeout:
                return
            member = self.members[self._current % len(self.members)]
            read_timeout = 3.0 if timeout is None else max(0.1, min(3.0, timeout))
            conn = None
            try:
                conn = self._connect(member, read_timeout)
                conn.request("GET", "/v1/sessions/%d/events" % self.session,
                             headers={"Last-Event-ID": str(self._event_ack), "Accept": "text/event-stream"})
                r = conn.getresponse()
                if r.status != 200:
                    raw = r.read()
                    conn.close()
                    try:
                        err = json.loads(raw)["error"]
                    except (ValueError, KeyError, TypeError):
                        err = {"code": "http_%d" % r.status, "message": raw[:200].decode("utf-8", "replace")}
                    if err["code"] == "session_not_found":
                        raise SessionLost(err["code"], err["message"], r.status)
                    raise OSError(err["message"])
                for ev in self._read_stream(r):
                    if ev is None:  # a comment: the stream is alive
                        if timeout is not None and time.monotonic() - last_event > timeout:
                            conn.close()
                            return
                        continue
                    last_event = time.monotonic()
                    yield ev
                conn.close()
            except SessionLost as e:
                self._lost = e
                raise
            except (OSError, http.client.HTTPException):
                self._current += 1
                time.sleep(0.05)
            finally:
                if conn is not None:
                    conn.close()

    def _read_stream(self, r):
        fields = {}
        data = []
        while True:
            line = r.readline()
            if not line:
                return
            line = line.decode("utf-8").rstrip("\r\n")
            if line == "":
                if "event" in fields or data:
                    name = fields.get("event", "message")
                    payload = json.loads("\n".join(data)) if data else None
                    if name == "session_closed":
                        raise SessionLost(payload.get("code", "session_not_found"), payload.get("message", ""))
                    eid = int(fields.get("id", "0"))
                    fields, data = {}, []
                    if eid <= self._event_ack:
                        continue  # already delivered
                    self._event_ack = eid
                    yield Event(eid, name, payload)
                else:
                    yield None
                continue
            if line.startswith(":"):
                yield None
                continue
            k, _, v = line.partition(":")
            v = v[1:] if v.startswith(" ") else v
            if k == "data":
                data.append(v)
            else:
                fields[k] = v


def _main(argv):
    import sys
    if len(argv) < 3:
        print("usage: copycat.py MEMBERS submit|query NAME [JSON_ARGS]", file=sys.stderr)
        return 2
    members, verb, name = argv[0], argv[1], argv[2]
    args = json.loads(argv[3]) if len(argv) > 3 else None
    c = Client(members)
    try:
        if verb == "submit":
            print(json.dumps(c.submit(name, args)))
        elif verb == "query":
            print(json.dumps(c.query(name, args)))
        else:
            print("unknown verb %r: use submit or query" % verb, file=sys.stderr)
            return 2
    except Error as e:
        print(e, file=sys.stderr)
        return 1
    finally:
        c.close()
    return 0


if __name__ == "__main__":
    import sys
    sys.exit(_main(sys.argv[1:]))
