"""Load generator for bench/etcd_compare.sh: the etcd counterpart of
bench/kv_load.lua, over etcd's gRPC API (KV.Put).

  /usr/bin/python3 bench/etcd_load.py STUBS ENDPOINT TASKS OPS|SECONDSs [PROCS]

STUBS is a directory holding etcd_kv_pb2.py and etcd_kv_pb2_grpc.py,
generated from bench/etcd_kv.proto with grpc_tools.protoc. TASKS concurrent
tasks each put OPS values of 100 bytes to keys k<task>-<i % 100> (the keys,
values and counts of kv_load.lua; "10s" instead of a count: as many as
complete in 10 seconds), all through one HTTP/2 connection per process. PROCS worker processes (default 1) split the tasks between them, so
that the client is not the bottleneck: each connects and makes one warm-up
put, then all start together when every one is ready. Prints

  writes/s N  p50 X ms  p99 Y ms  ok N  failed N

With BENCH_OP=get the tasks read the same keys instead (KV.Range,
linearizable unless BENCH_CONSISTENCY=serializable) and the first figure is
reads/s.

and, when BENCH_CPU_PIDS is set ("label:pid,label:pid,..."), a second line
with the CPU use during the load, in % of one core, of the client (all its
processes) and of each listed process:

  cpu  client N% (P processes: N% ...)  label N%  label N%
"""
import asyncio
import math
import os
import resource
import subprocess
import sys
import time


def usage():
    sys.stderr.write("usage: python3 bench/etcd_load.py STUBS ENDPOINT TASKS OPS [PROCS]\n")
    sys.exit(2)


def process_cpu(pid):
    """CPU seconds (user + system, all threads) used so far by process pid."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # fields[0] is field 3 of proc(5) (state); utime and stime are 14 and 15.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def own_cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def parse_ops(text):
    """(ops, seconds): a count, or "Ns" for a duration (ops unbounded)."""
    if text.endswith("s"):
        return math.inf, float(text[:-1])
    return int(text), None


async def worker_main(stubs, endpoint, first, last, ops_text):
    ops, seconds = parse_ops(ops_text)
    sys.path.insert(0, stubs)
    import grpc
    import etcd_kv_pb2 as pb
    import etcd_kv_pb2_grpc as pb_grpc

    async with grpc.aio.insecure_channel(endpoint) as channel:
        kv = pb_grpc.KVStub(channel)
        await kv.Put(pb.PutRequest(key=b"warmup", value=b"0"), timeout=10)
        value = b"v" * 100
        lat = []
        failed = 0

        reads = os.environ.get("BENCH_OP", "put") == "get"
        serializable = os.environ.get("BENCH_CONSISTENCY") == "serializable"

        async def task(t):
            nonlocal failed
            i = 0
            while i < ops and (deadline is None or time.monotonic() < deadline):
                i += 1
                key = b"k%d-%d" % (t, i % 100)
                s = time.monotonic()
                try:
                    if reads:
                        await kv.Range(pb.RangeRequest(key=key, serializable=serializable), timeout=10)
                    else:
                        await kv.Put(pb.PutRequest(key=key, value=value), timeout=10)
                except grpc.aio.AioRpcError:
                    failed += 1
                else:
                    lat.append((time.monotonic() - s) * 1000.0)

        print("ready", flush=True)
        if sys.stdin.readline().strip() != "go":
            return
        cpu0, t0 = own_cpu(), time.monotonic()
        deadline = t0 + seconds if seconds else None
        await asyncio.gather(*(task(t) for t in range(first, last + 1)))
        t1, cpu1 = time.monotonic(), own_cpu()
    # CLOCK_MONOTONIC is one clock for the whole machine, so the parent can
    # compare the workers' start and end times.
    print("done %.6f %.6f %.6f %d" % (t0, t1, cpu1 - cpu0, failed))
    print(" ".join("%.3f" % x for x in lat), flush=True)


def watched():
    spec = os.environ.get("BENCH_CPU_PIDS", "")
    out = []
    for item in spec.split(","):
        if item:
            label, pid = item.rsplit(":", 1)
            out.append((label, int(pid)))
    return out


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        stubs, endpoint = sys.argv[2], sys.argv[3]
        first, last = int(sys.argv[4]), int(sys.argv[5])
        asyncio.run(worker_main(stubs, endpoint, first, last, sys.argv[6]))
        return
    if len(sys.argv) not in (5, 6) or sys.argv[1].startswith("-"):
        usage()
    stubs, endpoint = sys.argv[1], sys.argv[2]
    tasks, ops_text = int(sys.argv[3]), sys.argv[4]
    try:
        ops, _ = parse_ops(ops_text)
    except ValueError:
        usage()
    procs = int(sys.argv[5]) if len(sys.argv) == 6 else 1
    if tasks < 1 or ops < 1 or procs < 1:
        usage()
    procs = min(procs, tasks)

    workers = []
    first = 1
    for w in range(procs):
        n = tasks // procs + (1 if w < tasks % procs else 0)
        cmd = [sys.executable, os.path.abspath(__file__), "--worker", stubs, endpoint,
               str(first), str(first + n - 1), ops_text]
        workers.append(subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        text=True))
        first += n
    for p in workers:
        if p.stdout.readline().strip() != "ready":
            for q in workers:
                q.kill()
            sys.stderr.write("etcd_load: a worker failed to connect to %s\n" % endpoint)
            sys.exit(1)

    watch = watched()
    before = [process_cpu(pid) for _, pid in watch]
    w0 = time.monotonic()
    for p in workers:
        p.stdin.write("go\n")
        p.stdin.flush()
    lat, failed, starts, ends, cpus = [], 0, [], [], []
    for p in workers:
        head = p.stdout.readline().split()
        if not head or head[0] != "done":
            sys.stderr.write("etcd_load: a worker died\n")
            sys.exit(1)
        starts.append(float(head[1]))
        ends.append(float(head[2]))
        cpus.append(float(head[3]))
        failed += int(head[4])
        lat.extend(float(x) for x in p.stdout.readline().split())
    after = [process_cpu(pid) for _, pid in watch]
    window = time.monotonic() - w0
    for p in workers:
        p.wait()

    elapsed = max(ends) - min(starts)
    lat.sort()

    def pct(p):
        return lat[max(1, math.ceil(len(lat) * p)) - 1] if lat else 0.0

    label = "reads/s" if os.environ.get("BENCH_OP", "put") == "get" else "writes/s"
    print("%s %.0f  p50 %.2f ms  p99 %.2f ms  ok %d  failed %d" % (
        label, len(lat) / elapsed, pct(0.5), pct(0.99), len(lat), failed))
    if watch:
        each = " ".join("%.0f%%" % (c / elapsed * 100) for c in cpus)
        line = "cpu  client %.0f%% (%d process%s: %s)" % (
            sum(cpus) / elapsed * 100, procs, "" if procs == 1 else "es", each)
        for (label, _), b, a in zip(watch, before, after):
            line += "  %s %.0f%%" % (label, (a - b) / window * 100)
        print(line, flush=True)


if __name__ == "__main__":
    main()
