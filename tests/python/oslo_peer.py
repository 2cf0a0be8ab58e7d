"""oslo.messaging 18 RPC peers with Python OSProfiler 4.4.0, for the interop tests.

The context serializer is Nova's ProfilerRequestContextSerializer in miniature: the caller puts
`trace_info` ({"hmac_key", "base_id", "parent_id"}) in the request context, the callee calls
`profiler.init(**trace_info)`. Points go to Redis (redis://127.0.0.1:6379).

Usage:
  oslo_peer.py client <topic> <server> <n>   n concurrent traced calls of add(a=i, b=1) plus a
      call of fail() and a cast of note(text=...); prints one JSON line:
      {"calls": [{"base_id", "parent_id", "result"}...], "failure": {"exc_type", "value"},
       "cast": {"base_id", "parent_id"}}
  oslo_peer.py server <topic> <server>       serves add/fail/slow until stdin closes; prints
      READY once consuming
"""
import json
import sys
import threading
import warnings

warnings.simplefilter("ignore")

import oslo_messaging as om  # noqa: E402
from oslo_config import cfg  # noqa: E402
from osprofiler import notifier, profiler  # noqa: E402

URL = "rabbit://guest:guest@127.0.0.1:5672/"
KEY = "SECRET_KEY"


class ProfilerSerializer(om.NoOpSerializer):
    def serialize_context(self, ctxt):
        ctxt = dict(ctxt)
        prof = profiler.get()
        if prof:
            ctxt["trace_info"] = {
                "hmac_key": prof.hmac_key,
                "base_id": prof.get_base_id(),
                "parent_id": prof.get_id(),
            }
        return ctxt

    def deserialize_context(self, ctxt):
        ctxt = dict(ctxt)
        trace_info = ctxt.pop("trace_info", None)
        # profiler.init() keeps a thread's existing profiler, and the threading executor
        # reuses its threads (Nova's eventlet gives each call a fresh green thread): drop
        # the previous call's profiler first, or this call lands in that call's trace.
        profiler.clean()
        if trace_info:
            profiler.init(**trace_info)
        return ctxt


def setup(service):
    notifier.set(notifier.create("redis://127.0.0.1:6379", project="py", service=service,
                                 host="pyhost", conf={}))
    return om.get_rpc_transport(cfg.CONF, url=URL)


def client(topic, server, n):
    transport = setup("pycaller")
    target = om.Target(topic=topic, server=server or None)
    rpc = om.get_rpc_client(transport, target, serializer=ProfilerSerializer(), timeout=30)
    calls = [None] * n

    def one(i):
        p = profiler.init(KEY)
        with profiler.Trace("wsgi", info={"request": {"path": "/call/%d" % i}}):
            parent = profiler.get().get_id()
            result = rpc.call({"user": "alice"}, "add", a=i, b=1)
        calls[i] = {"base_id": p.get_base_id(), "parent_id": parent, "result": result}
        profiler.clean()

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    p = profiler.init(KEY)
    failure = None
    with profiler.Trace("wsgi", info={"request": {"path": "/fail"}}):
        try:
            rpc.call({}, "fail", reason="bad input")
        except om.RemoteError as e:
            failure = {"exc_type": e.exc_type, "value": e.value}
        # A Rust RemoteError::builtin: the builtin exception itself.
        try:
            rpc.call({}, "fail_builtin", reason="no such flavor")
        except ValueError as e:
            failure["builtin"] = {"isinstance": "ValueError", "message": str(e).split("\n")[0]}
        except om.RemoteError as e:
            failure["builtin"] = {"exc_type": e.exc_type}
    profiler.clean()

    p = profiler.init(KEY)
    with profiler.Trace("wsgi", info={"request": {"path": "/cast"}}):
        cast = {"base_id": p.get_base_id(), "parent_id": profiler.get().get_id()}
        rpc.cast({}, "note", text="hello from python")
    profiler.clean()
    print(json.dumps({"calls": calls, "failure": failure, "cast": cast}), flush=True)


class Endpoint:
    @profiler.trace("rpc", hide_args=False)
    def add(self, ctxt, a, b):
        with profiler.Trace("db", info={"db": {"statement": "SELECT %s + %s"}}):
            pass
        return a + b

    @profiler.trace("rpc")
    def fail(self, ctxt, reason):
        raise ValueError(reason)


def server(topic, name):
    transport = setup("pyserver")
    target = om.Target(topic=topic, server=name)
    srv = om.get_rpc_server(transport, target, [Endpoint()], executor="threading",
                            serializer=ProfilerSerializer())
    srv.start()
    print("READY", flush=True)
    sys.stdin.read()
    srv.stop()
    srv.wait()


if __name__ == "__main__":
    mode, topic, name = sys.argv[1], sys.argv[2], sys.argv[3]
    if mode == "client":
        client(topic, name, int(sys.argv[4]))
    else:
        server(topic, name)
