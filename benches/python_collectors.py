"""Python OSProfiler 4.4.0's Redis and MongoDB drivers' throughput, for the collector table
of benches/README.md: messages per second stored by `driver.notify`, one message per call as
Python's notifier does, with the same shape of message as benches/collectors.rs.

Usage: .venv-osp/bin/python benches/python_collectors.py [redis://127.0.0.1:6379 | mongodb://127.0.0.1:27017]
"""
import sys
import time
import uuid

from osprofiler.drivers import base

url = sys.argv[1] if len(sys.argv) > 1 else "redis://127.0.0.1:6379"
driver = base.get_driver(url, project="bench", service="bench", host="bench", conf={})
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
else:
    driver.db.delete("osprofiler_opt:" + base_id)
print("%s_notify_python %.0f" % (scheme, best))
