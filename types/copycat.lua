---@meta copycat
-- LuaLS definitions of the copycat library: the global `copycat` in
-- scripts run by copycat-lua, and `require "copycat"` in plain lua5.4.
-- (An editor reads this file; nothing runs it. The library itself is in
-- lua/copycat/.) See README.md, docs/sessions.md, docs/codec.md.

---@class copycat
---@field version string the program's version, e.g. "0.1.0"
---@field codec copycat.codec msgpack encoding of Lua values
---@field net copycat.net framed msgpack connections over TCP
---@field state_machine copycat.state_machine_module loads a state machine into a sandbox
---@field cli copycat.cli command lines of scripts
copycat = {}

--- Monotonic time in milliseconds (float, sub-millisecond precision).
---@return number
function copycat.now() end

--- Suspends the current task for at least ms milliseconds (0: until the
--- next turn of the loop); other tasks run meanwhile.
---@param ms number
function copycat.sleep(ms) end

--- Starts fn(...) as a new task; it runs at once until it first waits.
---@param fn function
---@param ... any
---@return copycat.Task
function copycat.spawn(fn, ...) end

--- Calls fn in a new task once after ms milliseconds.
---@param ms number
---@param fn function
---@return copycat.Timer
function copycat.timer(ms, fn) end

--- Calls fn in a new task every ms milliseconds (ms > 0) until stopped.
---@param ms number
---@param fn function
---@return copycat.Timer
function copycat.every(ms, fn) end

--- Runs fn (newest first, in a task, so it may wait) on SIGINT/SIGTERM or
--- copycat.exit.
---@param fn fun()
function copycat.on_shutdown(fn) end

--- Runs the shutdown hooks, then exits with status (default 0; 1 if a hook
--- failed).
---@param status? integer
function copycat.exit(status) end

--- Drives the event loop until nothing is pending (plain lua5.4 only:
--- copycat-lua drives it itself).
function copycat.run() end

--- Creates a cluster client. Nothing is sent until the first request.
---@param opts copycat.ClientOptions
---@return copycat.Client
function copycat.client(opts) end

--- Creates a server of a cluster (bootstrap, join or wait for an operator).
---@param opts copycat.ServerOptions
---@return copycat.Server
function copycat.server(opts) end

---@class copycat.Task
local Task = {}
--- Waits until the task has finished; returns its results.
---@return any ...
function Task:wait() end
---@return boolean
function Task:finished() end

---@class copycat.Timer
local Timer = {}
function Timer:stop() end
---@return boolean
function Timer:active() end

---@class copycat.ClientOptions
---@field cluster string[] addresses "host:port" of members (any subset)
---@field cluster_id? string the servers' cluster id (default "copycat")
---@field timeout? number ms per request attempt (default 5000)
---@field session_timeout? integer ms without keep-alives before the cluster expires the session (default 5000, >= 200)
---@field tls? copycat.TlsOptions speak TLS: trust member certificates from tls.ca; cert/key optional (docs/tls.md)
---@field admin_token? string the servers' admin token: admin rights (membership, leadership) on the client protocol

---@class copycat.TlsOptions
---@field ca string PEM file of the cluster's CA certificate(s)
---@field cert? string PEM certificate of this side (a server's: its member certificate)
---@field key? string its private key
---@field require_client_cert? boolean servers: refuse clients without a certificate

---@alias copycat.Consistency "linearizable"|"lease"|"sequential"

---@class copycat.Client
local Client = {}

--- Submits a command: applied exactly once, in the order of submission.
--- Returns the state machine's results, or nil and an error.
---@param op string
---@param args any
---@return any ...
function Client:submit(op, args) end

--- Runs a query; never returns state older than this client has seen.
--- Returns the results, or nil and an error.
---@param op string
---@param args any
---@param opts? {consistency?: copycat.Consistency}
---@return any ...
function Client:query(op, args, opts) end

--- fn(data) for each event the state machine publishes to this session,
--- once each, in order; "session:lost" gets fn(reason).
---@param name string
---@param fn fun(data: any)
function Client:on(name, fn) end

--- The session id, or nil and why there is none.
---@return integer|nil
---@return string|nil
function Client:session_id() end

--- Membership requests (as join/leave and operator scripts make them).
--- On failure: nil, the message and, when a server refused, its error code
--- (docs/protocol.md: "no_such_member", "busy", ...).
---@param name string
---@param address string
---@param type_? "active"|"passive"|"reserve"
---@return true|nil
---@return string|nil
---@return string|nil code
function Client:change(name, address, type_) end
---@param name string
---@return true|nil
---@return string|nil
---@return string|nil code
function Client:remove(name) end
---@param name string
---@return true|nil
---@return string|nil
---@return string|nil code
function Client:transfer(name) end

--- Closes the session (session_closed runs at once) and the connection.
function Client:close() end

---@class copycat.ServerOptions
---@field name string the member's unique name
---@field address string "host:port" for peers (and clients)
---@field client_address? string "host:port" for clients
---@field data_dir? string the data directory (or memory = true)
---@field memory? boolean keep the log in memory (tests)
---@field state_machine string|copycat.StateMachine a file, or a loaded machine
---@field cluster? string the cluster id (default "copycat")
---@field type? "active"|"passive"|"reserve" for join
---@field election_timeout? integer ms
---@field heartbeat_interval? integer ms
---@field snapshot_threshold? integer entries between snapshots (default 10000)
---@field snapshot_bytes? integer payload bytes between snapshots (default 64 MiB)
---@field time_interval? integer ms between the idle leader's time entries (default 200)
---@field max_request_bytes? integer largest client request (default 2 MiB)
---@field sm_memory? integer bytes the state machine's heap may hold (default 512 MiB; 0: no limit)
---@field hello_timeout? integer ms a connection has for its hello (default 5000)
---@field max_unauthenticated? integer connections without a hello kept per listener (default 256)
---@field admin_socket? string|false the admin Unix socket (default data_dir/admin.sock)
---@field admin_address? string a TCP admin address (needs a token)
---@field admin_token? string
---@field admin_token_file? string
---@field admin_budget? integer instructions per operator script
---@field admin_memory? integer bytes an operator script may grow the heap by
---@field admin_timeout? integer ms per operator script
---@field metrics_address? string serve Prometheus metrics at http://ADDR/metrics
---@field http_address? string serve the HTTP/JSON API (docs/http.md) at ADDR
---@field log_level? "error"|"warn"|"info"|"debug"
---@field log_format? "kv"|"json"
---@field tls? copycat.TlsOptions TLS for peers, clients and the TCP admin address (docs/tls.md)
---@field insecure? boolean allow plain TCP on addresses other machines can reach

---@class copycat.Server
local Server = {}

--- Starts a new cluster of these members (addresses, this server's included).
---@param members string[]
---@return boolean|nil
---@return string|nil
function Server:bootstrap(members) end

--- Joins the cluster of any of these members; returns once a member.
---@param members string[]
---@return boolean|nil
---@return string|nil
function Server:join(members) end

--- Asks the leader to remove this server; returns once committed.
---@return boolean|nil
---@return string|nil
function Server:leave() end

--- Stops the server (waits until its connections and files are closed).
function Server:stop() end

--- fn(detail) for an event: "leader", "role", "config", "snapshot", ...
---@param event string
---@param fn fun(detail: string)
function Server:on(event, fn) end

--- The server's view of the cluster: role, term, leader, indexes, members.
---@return table
function Server:status() end

--- Writes one structured log line.
---@param level "error"|"warn"|"info"|"debug"
---@param event string
---@param fields? table<string, string|number|boolean>
function Server:log(level, event, fields) end

--- The Prometheus text of the server's metrics.
---@return string
function Server:metrics() end

--- The metrics HTTP address, or nil.
---@return string|nil
function Server:metrics_address() end

--- The address the HTTP API is served on ("ip:port"), or nil.
---@return string|nil
function Server:http_address() end

--- Sets the number of open client sessions the metrics report.
---@param n integer
function Server:set_sessions(n) end

--- Reads the TLS CA, certificate and key files again: new connections use
--- them, established ones go on (also on SIGHUP).
---@return true|nil
---@return string|nil
function Server:reload_certs() end

---@class copycat.codec
copycat.codec = {}
--- msgpack bytes of v (nil, booleans, numbers, strings, tables).
---@param v any
---@return string
function copycat.codec.encode(v) end
---@param s string
---@return any
function copycat.codec.decode(s) end

---@class copycat.net
copycat.net = {}
--- Connects to address ("ip:port" or "name:port"); waits until connected.
---@param address string
---@param opts? {max_frame?: integer, max_queue?: integer, tls?: userdata, tls_expect?: string}
---@return copycat.Conn|nil
---@return string|nil
function copycat.net.connect(address, opts) end
--- Listens on address (port 0 picks one); handler(conn) runs in a task per
--- connection. Returns a listener with :address() and :close().
---@param address string
---@param handler fun(conn: copycat.Conn)
---@param opts? {max_frame?: integer, max_queue?: integer, tls?: userdata}
---@return {address: fun(self): string, close: fun(self)}|nil
---@return string|nil
function copycat.net.listen(address, handler, opts) end

---@class copycat.Conn
local Conn = {}
---@param value any
---@return true|nil
---@return string|nil
function Conn:send(value) end
---@param timeout_ms? number
---@return any
---@return string|nil
function Conn:recv(timeout_ms) end
---@param reason? string
---@param flush? boolean
function Conn:close(reason, flush) end
---@return boolean
function Conn:closed() end
---@return string
function Conn:peer() end
--- Bytes queued for sending, not yet written.
---@return integer
function Conn:queued() end
--- Under TLS: the name and role ("member", "admin", "client", "none") of
--- the peer's certificate; nil without TLS.
---@return string|nil
---@return string|nil
function Conn:tls() end

---@class copycat.StateMachineOptions
---@field name? string name for error messages
---@field source? boolean the first argument is Lua source text, not a path
---@field budget? integer instructions per command, query, session hook or timer
---@field setup_budget? integer instructions for loading, snapshot and restore
---@field memory? integer bytes the sandbox may allocate (0: no limit)

---@class copycat.Context
---@field index integer the log index of the entry
---@field term integer the term of the entry
---@field time? number milliseconds, assigned by the leader and replicated
---@field session? integer the client session id

---@class copycat.SessionEvent
---@field session integer
---@field name string
---@field data any

---@class copycat.StateMachine
---@field command fun(self: copycat.StateMachine, op: string, args: any, ctx: copycat.Context): boolean, ...
---@field query fun(self: copycat.StateMachine, op: string, args: any, ctx?: copycat.Context): boolean, ...
---@field session_opened fun(self: copycat.StateMachine, session: integer, ctx: copycat.Context): boolean, string?
---@field session_closed fun(self: copycat.StateMachine, session: integer, ctx: copycat.Context): boolean, string?
---@field advance fun(self: copycat.StateMachine, ctx: copycat.Context): boolean, any, integer?
---@field next_deadline fun(self: copycat.StateMachine): number?
---@field events fun(self: copycat.StateMachine): copycat.SessionEvent[]
---@field snapshot fun(self: copycat.StateMachine): string?, string?
---@field restore fun(self: copycat.StateMachine, bytes: string): boolean?, string?
---@field cost fun(self: copycat.StateMachine): integer
---@field memory fun(self: copycat.StateMachine): integer
---@field close fun(self: copycat.StateMachine)

---@class copycat.state_machine_module
copycat.state_machine = {}
--- Loads a state machine file (or source, with opts.source) into a sandbox
--- of its own. Returns the machine, or nil and the load error.
---@param path_or_source string
---@param opts? copycat.StateMachineOptions
---@return copycat.StateMachine|nil
---@return string|nil
function copycat.state_machine.load(path_or_source, opts) end

---@alias copycat.cli.Check fun(value: string): any, string?

---@class copycat.cli.Spec
---@field name string the program's name, first on every error line
---@field usage string printed with --help and after every usage error
---@field flags table<string, copycat.cli.Check> flag name (without "--") to its check
---@field required? string[] flags that must be given

---@class copycat.cli
copycat.cli = {}
---@type copycat.cli.Check
function copycat.cli.switch(value) end
---@type copycat.cli.Check
function copycat.cli.string(value) end
---@type copycat.cli.Check
function copycat.cli.address(value) end
---@type copycat.cli.Check
function copycat.cli.addresses(value) end
---@param min integer
---@param max? integer
---@param unit? string
---@return copycat.cli.Check
function copycat.cli.integer(min, max, unit) end
---@param min integer
---@return copycat.cli.Check
function copycat.cli.ms(min) end
---@param words string[]
---@return copycat.cli.Check
function copycat.cli.one_of(words) end
--- The flags of a cluster client (--cluster, --cluster-id, --timeout,
--- --session-timeout), plus extra ones.
---@param extra? table<string, copycat.cli.Check>
---@return table<string, copycat.cli.Check>
function copycat.cli.client_flags(extra) end
--- copycat.client's options from the parsed client flags.
---@param opts table<string, any>
---@return copycat.ClientOptions
function copycat.cli.client_options(opts) end
---@param what string
---@param value string
---@param expected string
---@return string
function copycat.cli.expected(what, value, expected) end
---@param args string[]
---@param spec copycat.cli.Spec
---@return table<string, any>|nil opts
---@return string[]|string words, or the usage error's message
---@return boolean? help
function copycat.cli.try_parse(args, spec) end
--- Parses args; a usage error writes "NAME: what is wrong" and the usage
--- to stderr and exits 2; --help prints the usage and exits 0.
---@param args string[]
---@param spec copycat.cli.Spec
---@return table<string, any> opts
---@return string[] words
function copycat.cli.parse(args, spec) end
---@param spec copycat.cli.Spec
---@param msg string
function copycat.cli.usage_error(spec, msg) end
---@param spec copycat.cli.Spec
---@param what string
---@param value string
---@param check copycat.cli.Check
---@return any
function copycat.cli.word(spec, what, value, check) end

--- Checks the command word and its argument count (commands: {name, min[,
--- max]} in usage order); a usage error exits 2. Returns the command.
---@param spec copycat.cli.Spec
---@param words string[]
---@param commands {[1]: string, [2]: integer, [3]: integer|nil}[]
---@return string
function copycat.cli.command(spec, words, commands) end

return copycat
