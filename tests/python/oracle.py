"""Oracle for osprofiler-rs interop tests: runs Python OSProfiler 4.4.0 operations.

Reads one JSON request on stdin and writes one JSON answer on stdout.
  {"op": "sign", "cases": [{"key", "data"}]}           -> [{"info", "hmac"}]
  {"op": "verify", "cases": [{"info", "hmac", "keys"}]} -> [dict or null]  (middleware's view)
  {"op": "report", "messages": [...]}                   -> the report of base Driver
  {"op": "trace", "key", "base_id", "parent_id"}        -> messages of a nested trace
  {"op": "version"}                                     -> osprofiler's version
"""
import json
import sys
from importlib import metadata

from osprofiler import _utils as utils
from osprofiler import notifier, profiler, web
from osprofiler.drivers import base


def main():
    req = json.load(sys.stdin)
    op = req["op"]
    if op == "version":
        out = metadata.version("osprofiler")
    elif op == "sign":
        out = []
        for c in req["cases"]:
            info, mac = utils.signed_pack(c["data"], c["key"])
            out.append({"info": info.decode(), "hmac": mac})
    elif op == "verify":
        out = []
        for c in req["cases"]:
            keys = utils.split(c["keys"]) if isinstance(c["keys"], str) else c["keys"]
            got = utils.signed_unpack(c["info"], c["hmac"], keys)
            out.append(got if web.WsgiMiddleware._trace_is_valid(None, got) else None)
    elif op == "report":
        d = base.Driver("oracle://")
        for n in req["messages"]:
            d._append_results(n["trace_id"], n["parent_id"], n["name"], n["project"],
                              n["service"], n["info"]["host"], n["timestamp"], n)
        out = d._parse_results()
    elif op == "trace":
        seen = []
        notifier.set(lambda payload: seen.append(json.loads(json.dumps(payload))))
        profiler.init(req["key"], base_id=req.get("base_id"), parent_id=req.get("parent_id"))
        profiler.start("wsgi", {"request": {"path": "/"}})
        profiler.start("db", None)
        profiler.stop({"rows": 1})
        profiler.stop()
        profiler.stop()  # nothing open: ignored
        out = {"messages": seen, "headers": web.get_trace_id_headers()}
    else:
        raise SystemExit(f"unknown op {op}")
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
