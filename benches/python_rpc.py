"""oslo.messaging's own RPC round trip and its tracing cost, measured as
benches/examples/rpc_overhead.rs measures the Rust side: one process runs an oslo.messaging 18
RPC server (threading executor) and client on loopback RabbitMQ; untraced and traced calls of
add(a, b) alternate and are timed one by one. A traced call runs in a fresh trace with the
Nova-style context serializer of the interop tests; the server's `rpc` point (trace_cls-style
decorator) continues it and opens a `db` point, as the Rust bench's handler does. Messages go to
a notifier that discards them.

Usage: .venv-osp/bin/python benches/python_rpc.py [pairs]   (RabbitMQ at 127.0.0.1:5672)
"""
import os
import statistics
import sys
import time
import uuid

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests", "python"))
from oslo_peer import KEY, URL, ProfilerSerializer  # noqa: E402

import oslo_messaging as om  # noqa: E402
from oslo_config import cfg  # noqa: E402
from osprofiler import notifier, profiler  # noqa: E402


class Endpoint:
    @profiler.trace("rpc", hide_args=False)
    def add(self, ctxt, a, b):
        with profiler.Trace("db"):
            pass
        return a + b


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    notifier.set(lambda payload, **kw: None)
    transport = om.get_rpc_transport(cfg.CONF, url=URL)
    topic = "pybench-%s" % uuid.uuid4().hex[:8]
    server = om.get_rpc_server(transport, om.Target(topic=topic, server="b1"), [Endpoint()],
                               executor="threading", serializer=ProfilerSerializer())
    server.start()
    client = om.get_rpc_client(transport, om.Target(topic=topic, server="b1"),
                               serializer=ProfilerSerializer(), timeout=10)

    def raw(i):
        assert client.call({}, "add", a=i, b=1) == i + 1

    def traced(i):
        profiler.init(KEY)
        try:
            raw(i)
        finally:
            profiler.clean()

    for i in range(n // 10 + 1):
        raw(i)
        traced(i)
    r, t = [], []
    for i in range(n):
        order = (raw, traced) if i % 2 == 0 else (traced, raw)
        for f in order:
            s = time.perf_counter_ns()
            f(i)
            (r if f is raw else t).append(time.perf_counter_ns() - s)
    d = [b - a for a, b in zip(r, t)]
    mean = statistics.fmean(d)
    ci = 1.96 * statistics.stdev(d) / len(d) ** 0.5
    mr = statistics.median(r)
    print("python oslo.messaging call: raw median %.1f µs, traced median %.1f µs; paired difference "
          "median %+.2f µs (%+.2f%%), mean %+.2f ± %.2f µs"
          % (mr / 1e3, statistics.median(t) / 1e3, statistics.median(d) / 1e3,
             100 * statistics.median(d) / mr, mean / 1e3, ci / 1e3))
    server.stop()
    server.wait()
    transport.cleanup()


if __name__ == "__main__":
    main()
