"""Python OSProfiler 4.4.0's elasticsearch:// driver, for the Rust driver's interop tests.

  python es_peer.py show BASE_ID CONNECTION   -> `osprofiler trace show BASE_ID --json`
  python es_peer.py list CONNECTION           -> `osprofiler trace list --json`
  python es_peer.py store CONNECTION          -> stores a trace through Python's notifier,
                                                 prints {"base_id": ...}

Python's 4.4 driver passes `doc_type=conf.profiler.es_doc_type` (default "notification") on
every call. Elasticsearch 8 and OpenSearch 2 have no mapping types and refuse such requests, so
it runs with elasticsearch-py 7.13 (it still takes `doc_type` and, unlike 7.14+, talks to
OpenSearch) and `es_doc_type` overridden to None, with which the client uses `_doc`.
"""
import json
import sys

from oslo_config import cfg

from osprofiler import notifier, opts, profiler
from osprofiler.cmd import shell
from osprofiler.drivers import base


def main():
    opts.set_defaults(cfg.CONF)
    cfg.CONF([], project="es_peer")
    cfg.CONF.set_override("es_doc_type", None, group="profiler")
    cfg.CONF.set_override("filter_error_trace", True, group="profiler")
    op = sys.argv[1]
    if op == "show":
        shell.main(["trace", "show", sys.argv[2], "--json", "--connection-string", sys.argv[3]])
    elif op == "list":
        shell.main(["trace", "list", "--connection-string", sys.argv[2]])
    elif op == "store":
        d = base.get_driver(sys.argv[2], project="pyproj", service="pysvc", host="pyhost",
                            conf=cfg.CONF)
        notifier.set(d.notify)
        profiler.init("SECRET_KEY")
        profiler.start("wsgi", {"request": {"path": "/v1/servers", "method": "GET",
                                            "query": "", "scheme": "http"}})
        profiler.start("db", {"db": {"statement": "SELECT 'zoë' -- \"quoted\"", "params": {}}})
        profiler.stop({"db": {"result": 1}})
        profiler.start("rpc", {"function": {"name": "compute.boot"}})
        profiler.stop({"etype": "ValueError", "message": "no such flavor"})
        profiler.stop()
        # Python's driver never refreshes: make the points visible to any reader at once.
        d.client.indices.refresh(index=d.index_name)
        json.dump({"base_id": profiler.get().get_base_id()}, sys.stdout)
    else:
        raise SystemExit(f"unknown op {op}")


if __name__ == "__main__":
    main()
