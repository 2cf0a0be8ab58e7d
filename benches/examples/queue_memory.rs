//! Memory per queued point and the RSS of a service whose notifier queue is full: points are
//! emitted while the collector is stuck (its call blocks), until the queue drops.
//!
//! Usage: `queue_memory <plain|db|db_4k|db_64k> [max_bytes]` (`max_bytes` default: the
//! `QueueOptions` default, 64 MiB; the count bound is the default 65,536 messages).
//! - `plain`: a point without info (`Trace::new(name, Info::new)`)
//! - `db`: a `db` point with a copied 120-byte statement and `trace_sql` on (as sqlx records it)
//! - `db_4k`, `db_64k`: the same with a 4 KiB or 64 KiB statement (a bulk `INSERT`)
//!
//! Prints the resident set size before and with the queue full, the messages queued and
//! dropped, and the bytes per queued point (two messages).
#![allow(missing_docs)]

use osprofiler_core::db::{DbEvent, DbTracer, Sql};
use osprofiler_core::message::Message;
use osprofiler_core::notifier::{self, DriverError, QueueNotifier, QueueOptions, Writer};
use osprofiler_core::{self as osp, Trace};
use std::sync::{Arc, Condvar, Mutex};

/// A collector whose calls block until released: the worker holds one batch, the queue fills.
#[derive(Default)]
struct Stuck {
    released: Mutex<bool>,
    cv: Condvar,
}

impl Writer for Stuck {
    fn name(&self) -> &str {
        "stuck"
    }
    fn notify(&self, _batch: &[Message]) -> Result<(), DriverError> {
        let mut r = self.released.lock().unwrap();
        while !*r {
            r = self.cv.wait(r).unwrap();
        }
        Ok(())
    }
}

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("/proc/self/statm");
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mode = args.first().map(String::as_str).unwrap_or("plain");
    let mut opts = QueueOptions::default();
    if let Some(b) = args.get(1) {
        opts.max_bytes = b.parse().expect("max_bytes");
    }
    let sql_len = match mode {
        "plain" => 0,
        "db" => 120,
        "db_4k" => 4 << 10,
        "db_64k" => 64 << 10,
        other => {
            eprintln!("unknown mode {other}: plain, db, db_4k or db_64k");
            std::process::exit(2);
        }
    };
    let sql: String = "SELECT id, name FROM users WHERE id = $1 AND note = 'x' "
        .chars()
        .cycle()
        .take(sql_len)
        .collect();
    let driver = Arc::new(Stuck::default());
    let capacity = opts.capacity;
    let max_bytes = opts.max_bytes;
    let n = QueueNotifier::start(driver.clone(), opts).expect("notifier");
    notifier::set(n.clone());
    osp::set_trace_sql(true);
    let tracer = DbTracer::new("postgresql").database("test");
    let _root = osp::init("key", None, None).unwrap();
    // A first point makes the worker take its batch and block: the rest waits in the queue.
    Trace::new("first", osp::Info::new).finish();
    std::thread::sleep(std::time::Duration::from_millis(100));
    let before = rss_bytes();
    let mut points = 0u64;
    while n.stats().dropped_full == 0 {
        for _ in 0..10 {
            if sql_len == 0 {
                Trace::new("plain", osp::Info::new).finish();
            } else {
                let source = |_: bool| Some(Sql::new(sql.as_str().into(), 1));
                tracer.start(DbEvent::Query(&source)).ok(1);
            }
        }
        points += 10;
    }
    let full = rss_bytes();
    let stats = n.stats();
    let queued = stats.queued.saturating_sub(stats.delivered);
    println!(
        "{mode}: capacity {capacity} messages, max_bytes {} MiB, size_of::<Message>() {} B",
        max_bytes >> 20,
        std::mem::size_of::<Message>()
    );
    println!(
        "  points emitted {points}, messages queued {queued} (heap counted {} KiB), dropped {}",
        n.queued_bytes() >> 10,
        stats.dropped_full
    );
    println!(
        "  RSS before {:.1} MiB, with the queue full {:.1} MiB: {:.0} bytes per queued point",
        before as f64 / 1048576.0,
        full as f64 / 1048576.0,
        (full - before) as f64 / (queued as f64 / 2.0)
    );
    osp::clean();
    *driver.released.lock().unwrap() = true;
    driver.cv.notify_all();
}
