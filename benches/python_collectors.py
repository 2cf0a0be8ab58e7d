"""Python OSProfiler 4.4.0's Redis, MongoDB and Elasticsearch drivers' throughput, for the
collector table of benches/README.md: messages per second stored by `driver.notify`, one message
per call as Python's notifier does, with the same shape of message as benches/collectors.rs.

Usage: .venv-osp/bin/python benches/python_collectors.py
           [redis://127.0.0.1:6379 | mongodb://127.0.0.1:27017 | elasticsearch://127.0.0.1:9200]

Elasticsearch: OSProfiler 4.4 passes es_doc_type on every call, which OpenSearch 2 refuses
unless it is None (elasticsearch-py 7.13 then uses _doc), as in the interop test.
"""
import sys
import time
import uuid

from oslo_config import cfg

from osprofiler import opts
from osprofiler.drivers import base

url = sys.argv[1] if len(sys.argv) > 1 else "redis://127.0.0.1:6379"
conf = {}
if url.startswith("elasticsearch"):
    opts.set_defaults(cfg.CONF)
    cfg.CONF([], project="bench")
    cfg.CONF.set_override("es_doc_type", None, group="profiler")
    conf = cfg.CONF
driver = base.get_driver(url, project="bench", service="bench", host="bench", conf=conf)
base_id = str(uuid.uuid4())
messages = []
for i in range(256):
    tid = str(uuid.uuid4())
    for phase in ("start", "stop"):
        messages.append({
            "name": "db-" + phase, "base_id": base_id, "trace_id": tid, "parent_id": base_id,
            "timestamp": "2026-11-26T02:29:24.332965",
            "info": {"db": {"api": "fetch_all", "system": "postgresql", "namespace": "nova",
                            "statement": "SELECT id, name, status FROM instances WHERE project_id = $1 AND id > %d" % i},
                     "host": "bench"},
        })
best = 0.0
for _ in range(5):
    t = time.perf_counter()
    for m in messages:
        driver.notify(m)
    rate = len(messages) / (time.perf_counter() - t)
    best = max(best, rate)
scheme = url.split("://")[0]
if scheme == "mongodb":
    driver.db.profiler.delete_many({"base_id": base_id})
elif scheme == "elasticsearch":
    driver.client.delete_by_query(index=driver.index_name, refresh=True,
                                  body={"query": {"match_phrase": {"base_id": base_id}}})
else:
    driver.db.delete("osprofiler_opt:" + base_id)
print("%s_notify_python %.0f" % (scheme, best))
