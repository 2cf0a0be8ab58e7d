//! `osprofiler trace list` on 10,000 stored traces: how long `Reader::list` takes on SQLite
//! and Redis, with and without filters, from the per-trace summaries the notifier writes and
//! (`plain`) computed from the messages, as for traces Python wrote.
//!
//! Usage: `list_traces [sqlite|redis] [summaries|plain] [traces]` (default: every combination,
//! 10,000 traces). Each trace is a `wsgi` root with 9 children (3 `db`), written through the
//! queue notifier by the tracing API; every 10th has an error, half are service `api`, half
//! `worker`. Redis uses database 12 (flushed first).
#![allow(missing_docs)]

use osprofiler_collectors::{RedisDriver, SqlDriver};
use osprofiler_core::dispatch::{self, Dispatch};
use osprofiler_core::listing::{ListFilter, SortBy};
use osprofiler_core::notifier::{Driver, QueueNotifier, QueueOptions, Writer};
use osprofiler_core::{self as osp, Info, Trace};
use osprofiler_testkit::WithoutSummaries;
use std::sync::Arc;
use std::time::{Duration, Instant};

const REDIS: &str = "redis://127.0.0.1:6379/12";

fn store(driver: Arc<dyn Driver>, summaries: bool, traces: usize) {
    let writer: Arc<dyn Writer> = if summaries {
        driver
    } else {
        Arc::new(WithoutSummaries(driver))
    };
    let n = QueueNotifier::start(
        writer,
        QueueOptions {
            capacity: 1 << 20,
            ..QueueOptions::default()
        },
    )
    .unwrap();
    let d = Dispatch::new(n.clone());
    let t0 = Instant::now();
    for i in 0..traces {
        if i == 0 || i == traces / 2 {
            let service = if i == 0 { "api" } else { "worker" };
            osp::identity::set_identity(Some("bench"), Some(service), None);
        }
        dispatch::with_default(&d, || {
            osp::init("key", None, None);
            let root = Trace::new("wsgi", Info::new);
            for j in 0..9 {
                let name = if j % 3 == 0 { "db" } else { "rpc" };
                let mut t = Trace::new(name, Info::new);
                if j == 8 && i % 10 == 0 {
                    t.error_with("ValueError", "bad");
                }
            }
            root.finish();
            osp::clean();
        });
    }
    assert!(n.flush_for(Duration::from_secs(600)));
    let stats = osp::notifier::Notifier::stats(&*n);
    assert_eq!(stats.dropped_full + stats.dropped_failed, 0, "{stats:?}");
    eprintln!(
        "  stored {traces} traces ({} messages) in {:.1} s",
        stats.delivered,
        t0.elapsed().as_secs_f64()
    );
}

fn time(name: &str, reader: &dyn Driver, filter: &ListFilter) {
    let mut best = Duration::MAX;
    let mut shown = 0;
    for _ in 0..3 {
        let t0 = Instant::now();
        shown = reader.list(filter).unwrap().len();
        best = best.min(t0.elapsed());
    }
    println!(
        "  {name:<44} {:>8.1} ms  ({shown} listed)",
        best.as_secs_f64() * 1e3
    );
}

fn run(backend: &str, summaries: bool, traces: usize) {
    println!(
        "{backend}, {} ({traces} traces):",
        if summaries {
            "summaries"
        } else {
            "plain (no summaries)"
        }
    );
    let path = std::env::temp_dir().join(format!("osp-list-bench-{}.db", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let open = || -> Arc<dyn Driver> {
        match backend {
            "sqlite" => Arc::new(SqlDriver::open(&format!("sqlite://{}", path.display())).unwrap()),
            _ => Arc::new(RedisDriver::open(REDIS, false).unwrap()),
        }
    };
    if backend == "redis" {
        let mut c = redis::Client::open(REDIS)
            .unwrap()
            .get_connection()
            .unwrap();
        let _: () = redis::cmd("FLUSHDB").query(&mut c).unwrap();
    }
    store(open(), summaries, traces);
    let reader = open();
    let all = ListFilter::default();
    time("all (--all)", &*reader, &all);
    time(
        "newest 50 (default)",
        &*reader,
        &ListFilter {
            limit: Some(50),
            ..all.clone()
        },
    );
    let since = osp::listing::parse_since("1h", now()).unwrap();
    time(
        "--since 1h --service worker --errors",
        &*reader,
        &ListFilter {
            since_us: Some(since),
            service: Some("worker".into()),
            errors_only: true,
            limit: Some(50),
            ..all.clone()
        },
    );
    time(
        "--min-duration 0.1 --sort duration",
        &*reader,
        &ListFilter {
            min_duration_ms: Some(0.1),
            sort: SortBy::Duration,
            limit: Some(50),
            ..all.clone()
        },
    );
    let _ = std::fs::remove_file(&path);
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros() as i64
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let backends: Vec<&str> = match args.first().map(String::as_str) {
        Some(b @ ("sqlite" | "redis")) => vec![b],
        _ => vec!["sqlite", "redis"],
    };
    let modes: Vec<bool> = match args.get(1).map(String::as_str) {
        Some("summaries") => vec![true],
        Some("plain") => vec![false],
        _ => vec![true, false],
    };
    let traces: usize = args.get(2).map_or(10_000, |n| n.parse().expect("traces"));
    for b in &backends {
        for &m in &modes {
            run(b, m, traces);
        }
    }
}
