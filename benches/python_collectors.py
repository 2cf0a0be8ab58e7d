"""Python OSProfiler 4.4.0's collector drivers' throughput, for the collector tables of
benches/README.md.

Two modes:

* Batch (default, for "Collectors and reports"): messages per second stored by
  `driver.notify`, one message per call as Python's notifier does, with the same shape of
  message as benches/collectors.rs; best of 5 rounds of 512 messages. Redis, MongoDB,
  Elasticsearch.

* Sustained (`--seconds N`, for "Collectors under sustained load", the counterpart of
  benches/examples/collector_load.rs): one "service" thread traces with Python's own profiler
  (`profiler.init`, `profiler.start/stop` of a `wsgi` root and `db` points with a statement,
  traces of `--points` points) for N seconds, the driver set as the notifier
  (`notifier.set(driver.notify)`), so every message is stored synchronously, one `notify`
  call each, as in a Python service. Prints messages/s, points/s (= messages / 2), process CPU
  per point, then checks the store for a sample of the traces and deletes what it wrote.

Usage: .venv-osp/bin/python benches/python_collectors.py [URL] [--seconds N] [--points N]

URLs:
  redis://127.0.0.1:6379[/db]       mongodb://127.0.0.1:27017
  elasticsearch://127.0.0.1:9200    (index osprofiler-notifications; only this run's
                                     documents are deleted)
  sqlite:////tmp/file.db            OSProfiler's sqlalchemy driver, built directly: its
                                     get_driver maps mysql:// and postgresql:// to it, not
                                     sqlite://
  postgresql://postgres@127.0.0.1:5432/bench_load_py
                                    the same driver; needs psycopg2 (not in the oracle
                                     virtualenv: `pip install --target DIR psycopg2-binary`
                                     and PYTHONPATH=DIR)
  messaging://guest:guest@127.0.0.1:5672/bench_load
                                    its messaging driver: oslo.messaging's notifier on a rabbit
                                     transport_url of that vhost; `profiler.info` there is
                                     counted and purged at the end

SQL: OSProfiler 4.4's sqlalchemy driver executes each INSERT on one connection and never
commits; with SQLAlchemy 2 (autobegin) every row stays in one open transaction, visible to no
other connection, and is rolled back when the process ends. The sustained mode counts what
another connection sees after the run and reports it.

Elasticsearch: OSProfiler 4.4 passes es_doc_type on every call, which OpenSearch 2 refuses
unless it is None (elasticsearch-py 7.13 then uses _doc), as in the interop test.
"""
import os
import sys
import time
import uuid
import warnings

warnings.simplefilter("ignore")

from oslo_config import cfg  # noqa: E402

from osprofiler import notifier, opts, profiler  # noqa: E402
from osprofiler.drivers import base  # noqa: E402

argv = [a for a in sys.argv[1:]]
seconds = None
points = 50
positional = []
i = 0
while i < len(argv):
    if argv[i] == "--seconds":
        seconds = float(argv[i + 1])
        i += 2
    elif argv[i] == "--points":
        points = int(argv[i + 1])
        i += 2
    else:
        positional.append(argv[i])
        i += 1
url = positional[0] if positional else "redis://127.0.0.1:6379"
scheme = url.split("://")[0]
project = "bench-load-py-%d" % os.getpid()


def make_driver():
    if scheme.startswith("elasticsearch"):
        opts.set_defaults(cfg.CONF)
        cfg.CONF([], project="bench")
        cfg.CONF.set_override("es_doc_type", None, group="profiler")
        return base.get_driver(url, project=project, service="load", host="bench-host",
                               conf=cfg.CONF)
    if scheme == "sqlite":
        from osprofiler.drivers.sqlalchemy_driver import SQLAlchemyDriver
        return SQLAlchemyDriver(url, project=project, service="load", host="bench-host")
    if scheme == "messaging":
        rest = url.split("://", 1)[1]
        transport = "rabbit://" + (rest or "guest:guest@127.0.0.1:5672/")
        return base.get_driver("messaging://", project=project, service="load",
                               host="bench-host", conf=cfg.CONF, transport_url=transport)
    return base.get_driver(url, project=project, service="load", host="bench-host", conf={})


driver = make_driver()


def batch_mode():
    base_id = str(uuid.uuid4())
    messages = []
    for i in range(256):
        tid = str(uuid.uuid4())
        for phase in ("start", "stop"):
            messages.append({
                "name": "db-" + phase, "base_id": base_id, "trace_id": tid,
                "parent_id": base_id, "timestamp": "2026-11-26T02:29:24.332965",
                "info": {"db": {"api": "fetch_all", "system": "postgresql", "namespace": "nova",
                                "statement": "SELECT id, name, status FROM instances WHERE "
                                             "project_id = $1 AND id > %d" % i},
                         "host": "bench"},
            })
    best = 0.0
    for _ in range(5):
        t = time.perf_counter()
        for m in messages:
            driver.notify(m)
        best = max(best, len(messages) / (time.perf_counter() - t))
    clean_up([base_id])
    print("%s_notify_python %.0f" % (scheme, best))


def emit_trace(seq):
    profiler.init("SECRET_KEY")
    base_id = profiler.get().get_base_id()
    profiler.start("wsgi", {"request": {"path": "/v2.1/servers/detail", "method": "GET",
                                        "query": "limit=50", "scheme": "http"}})
    for _ in range(points - 1):
        seq += 1
        profiler.start("db", {"db": {
            "api": "fetch_all", "system": "postgresql", "namespace": "nova",
            "statement": "SELECT instances.id, instances.uuid, instances.vm_state, "
                         "instances.task_state FROM instances WHERE instances.project_id = $1 "
                         "AND instances.deleted = 0 AND instances.id > %d ORDER BY "
                         "instances.created_at DESC LIMIT 50" % seq}})
        profiler.stop()
    profiler.stop()
    profiler.clean()
    return base_id, seq


def count_stored(base_id):
    """Messages of one trace the store holds, as another client sees them."""
    if scheme == "redis":
        return driver.db.llen("osprofiler_opt:" + base_id)
    if scheme == "mongodb":
        return driver.db.profiler.count_documents({"base_id": base_id})
    if scheme.startswith("elasticsearch"):
        driver.client.indices.refresh(index=driver.index_name)
        return driver.client.count(
            index=driver.index_name,
            body={"query": {"match_phrase": {"base_id": base_id}}})["count"]
    return None


def sql_rows():
    """(rows this run's connection sees, rows a new connection sees) in `data`."""
    import sqlalchemy as sa
    q = sa.text("SELECT count(*) FROM data WHERE project = :p")
    own = driver._conn.execute(q, {"p": project}).scalar()
    try:
        with sa.create_engine(url).connect() as other:
            seen = other.execute(q, {"p": project}).scalar()
    except sa.exc.OperationalError as e:
        # SQLite: the open write transaction holds the file's lock.
        seen = "none (%s)" % str(e.orig)
    return own, seen


def queue_depth(purge=False):
    import amqp
    rest = url.split("://", 1)[1]
    userpass, hostvhost = rest.split("@", 1)
    user, password = userpass.split(":", 1)
    host, vhost = hostvhost.split("/", 1)
    with amqp.Connection(host=host, userid=user, password=password,
                         virtual_host=vhost or "/") as c:
        ch = c.channel()
        _, n, _ = ch.queue_declare("profiler.info", passive=True)
        if purge:
            ch.queue_purge("profiler.info")
        return n


def clean_up(base_ids):
    if scheme == "redis":
        for i in range(0, len(base_ids), 1000):
            driver.db.delete(*["osprofiler_opt:" + b for b in base_ids[i:i + 1000]])
    elif scheme == "mongodb":
        driver.db.profiler.delete_many({"base_id": {"$in": base_ids}})
    elif scheme.startswith("elasticsearch"):
        for b in base_ids if len(base_ids) == 1 else []:
            driver.client.delete_by_query(index=driver.index_name, refresh=True, body={
                "query": {"match_phrase": {"base_id": b}}})
        if len(base_ids) > 1:
            driver.client.delete_by_query(index=driver.index_name, refresh=True, body={
                "query": {"match_phrase": {"project": project}}})
    elif scheme == "messaging":
        queue_depth(purge=True)


def sustained_mode():
    calls = [0]
    notify = driver.notify

    def counting(info):
        notify(info)
        calls[0] += 1

    notifier.set(counting)
    emit_trace(0)  # warm-up: connections, tables
    before = queue_depth() if scheme == "messaging" else 0
    calls[0] = 0
    traces = []
    seq = 0
    cpu0, t0 = time.process_time(), time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        base_id, seq = emit_trace(seq)
        traces.append(base_id)
    wall = time.perf_counter() - t0
    cpu = time.process_time() - cpu0
    messages = calls[0]
    print("%s python: %.0f messages/s, %.0f points/s, CPU %.1f us/point, %d traces"
          % (scheme, messages / wall, messages / 2 / wall, cpu * 1e6 / (messages / 2),
             len(traces)))
    print("RESULT scheme=%s python_pps=%.0f python_cpu_us=%.1f"
          % (scheme, messages / 2 / wall, cpu * 1e6 / (messages / 2)))
    # What the store holds.
    if scheme in ("sqlite", "postgresql", "mysql"):
        own, seen = sql_rows()
        print("verify: the driver's connection sees %d rows of this run, another connection %s "
              "(never committed)" % (own, seen))
    elif scheme == "messaging":
        after = queue_depth()
        print("verify: profiler.info holds %d new notifications, %d sent"
              % (after - before, messages))
    else:
        sample = traces[:: max(1, len(traces) // 20)]
        bad = [b for b in sample if count_stored(b) != 2 * points]
        print("verify: %d of %d sampled traces hold all %d messages"
              % (len(sample) - len(bad), len(sample), 2 * points))
    t = time.perf_counter()
    clean_up(traces)
    print("cleaned up %d traces in %.1f s" % (len(traces), time.perf_counter() - t))


if seconds is None:
    batch_mode()
else:
    sustained_mode()
