//! `redissentinel://` against a real Sentinel topology the test starts on loopback ports of
//! its own (a primary, a replica, one Sentinel; Debian's redis-server): traced work goes on
//! while the primary is shut down and the Sentinel promotes the replica. Every point written
//! before and after the failover is readable afterwards, no traced call waited on the
//! collector, and Python OSProfiler reads the trace through `redis://` on the new primary.

use osprofiler_core::notifier::Reader;
use osprofiler_core::{self as osp, ProfilerConfig, Trace};
use osprofiler_testkit::servers::{Server, redis, redis_cli};
use osprofiler_testkit::{free_port, wait_until};
use std::time::{Duration, Instant};

/// The primary's port as the Sentinel names it now.
fn primary_port(sentinel: u16) -> Option<u16> {
    let out = redis_cli(
        sentinel,
        &["SENTINEL", "get-master-addr-by-name", "mymaster"],
    );
    out.lines().nth(1)?.trim().parse().ok()
}

/// Starts the Sentinel monitoring `primary` (its configuration in a file of its own: a
/// Sentinel rewrites it).
fn sentinel(port: u16, primary: u16) -> (Server, std::path::PathBuf) {
    let conf = std::env::temp_dir().join(format!("osp-sentinel-{port}.conf"));
    std::fs::write(
        &conf,
        format!(
            "port {port}\nbind 127.0.0.1\nsentinel monitor mymaster 127.0.0.1 {primary} 1\n\
             sentinel down-after-milliseconds mymaster 500\nsentinel failover-timeout mymaster 3000\n"
        ),
    )
    .unwrap();
    let server = Server::spawn(
        "redis-server",
        &[conf.to_str().unwrap(), "--sentinel"],
        port,
        "redis-server (with its Sentinel mode)",
    );
    (server, conf)
}

#[test]
fn traced_work_survives_a_failover_and_python_reads_the_trace() {
    let (p_port, r_port, s_port) = (free_port(), free_port(), free_port());
    let mut primary = redis(p_port, &[]);
    let _replica = redis(r_port, &["--replicaof", "127.0.0.1", &p_port.to_string()]);
    let (_sentinel, conf_path) = sentinel(s_port, p_port);
    wait_until("the replica's sync", Duration::from_secs(10), || {
        redis_cli(r_port, &["INFO", "replication"]).contains("master_link_status:up")
    });
    wait_until(
        "the Sentinel seeing the replica",
        Duration::from_secs(10),
        || redis_cli(s_port, &["SENTINEL", "replicas", "mymaster"]).contains(&r_port.to_string()),
    );
    assert_eq!(primary_port(s_port), Some(p_port));

    let cs = format!("redissentinel://127.0.0.1:{s_port}");
    let conf = ProfilerConfig::builder()
        .enabled(true)
        .connection_string(&cs)
        .socket_timeout(0.5)
        .build();
    let guard = osprofiler_collectors::init_from_conf(&conf, "proj", "svc", None).unwrap();

    // Traced work: a trace every few milliseconds, each with a db point inside a wsgi point.
    let mut traces = Vec::new();
    let mut slowest = Duration::ZERO;
    let mut trace_once = || {
        let t0 = Instant::now();
        let p = osp::init("SECRET_KEY", None, None).unwrap();
        {
            let _wsgi = Trace::new("wsgi", osp::Info::new);
            drop(Trace::new(
                "db",
                || osp::info!({"db": {"statement": "SELECT 1"}}),
            ));
        }
        osp::clean();
        slowest = slowest.max(t0.elapsed());
        traces.push(p.base_id().to_string());
        std::thread::sleep(Duration::from_millis(5));
    };
    for _ in 0..100 {
        trace_once();
    }
    // The primary goes away cleanly (its replica has everything) and the Sentinel promotes
    // the replica; traced work goes on all the while.
    redis_cli(p_port, &["SHUTDOWN", "NOSAVE"]);
    assert!(
        primary.wait_exit(Duration::from_secs(10)),
        "the primary shut down"
    );
    let failover_start = Instant::now();
    while primary_port(s_port) != Some(r_port) {
        trace_once();
        assert!(
            failover_start.elapsed() < Duration::from_secs(30),
            "the Sentinel did not promote the replica"
        );
    }
    for _ in 0..100 {
        trace_once();
    }
    assert!(
        slowest < Duration::from_millis(100),
        "a traced call waited on the collector: {slowest:?}"
    );

    assert!(
        guard.flush(Duration::from_secs(30)),
        "everything delivered after the failover"
    );
    let stats = osp::notifier::get().stats();
    assert_eq!(stats.dropped_full + stats.dropped_failed, 0, "{stats:?}");
    assert!(stats.driver_errors > 0, "the outage was seen: {stats:?}");

    // Every point, read back through the Sentinel (the new primary).
    let driver = osprofiler_collectors::RedisDriver::from_conf(&cs, &conf).unwrap();
    for id in &traces {
        assert_eq!(
            driver.trace_messages(id).unwrap().len(),
            4,
            "trace {id}: wsgi and db, start and stop"
        );
    }

    // Python reads one through redis:// on the new primary, as our driver does.
    let id = &traces[traces.len() / 2];
    let theirs = osprofiler_testkit::python_trace_show(id, &format!("redis://127.0.0.1:{r_port}"));
    assert_eq!(*driver.get_report(id).unwrap().to_value(), theirs);
    drop(guard);
    let _ = std::fs::remove_file(conf_path);
}
