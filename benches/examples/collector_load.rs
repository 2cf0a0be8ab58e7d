//! One service's points into a real collector under sustained load: the global
//! [`QueueNotifier`] with default [`QueueOptions`] in front of the collector a service builds
//! from its connection string ([`osprofiler_collectors::open`], what `init_from_conf` uses),
//! fed by a loop that emits traced `db` points (a statement each, in traces of
//! `points-per-trace` points under a `wsgi` root) for `seconds`.
//!
//! Usage: `collector_load <connection-url> [seconds=10] [points-per-trace=50]
//! [--rate N] [--threads N] [--keep]`
//! - without `--rate`: points as fast as the emitting threads make them; the queue drops what
//!   the collector cannot take (the collector's ceiling);
//! - `--rate N`: N points a second offered steadily (paced per trace), to find the rate
//!   sustained with no drop;
//! - `--threads N`: emitting threads (default 1; the rate is shared among them);
//! - `--keep`: leave what was written in the store.
//!
//! Prints points/s offered and stored within the run (stored = messages the collector took /
//! 2, counted by a wrapper around the driver), messages the queue dropped, the mean batch the
//! driver was handed, the share of the run the notifier's worker spent in the driver, and the
//! process CPU time (utime + stime of all threads, as `getrusage(RUSAGE_SELF)`) per stored
//! point: all of it, and less the emitting threads' own (what the notifier and the driver
//! cost). Then it drains the queue, checks that the store holds every message of a sample of
//! the traces that lost none (for `messaging://`, that `profiler.info` of its virtual host
//! holds as many as were published), and deletes what it wrote.
//!
//! The store should be the run's own: SQLite a file, PostgreSQL/MySQL a database of its own
//! (`postgresql://postgres@127.0.0.1:5432/bench_load`), Redis a database number of its own
//! (`redis://127.0.0.1:6379/11`), Elasticsearch an `index=` of its own (deleted at the end,
//! with its template), RabbitMQ a virtual host of its own (`messaging://guest:guest@127.0.0.1:5672/bench_load`;
//! its `profiler.info` is purged at the end). MongoDB's database is always `osprofiler`: only
//! the run's traces are deleted from it.
#![allow(missing_docs)]

use osprofiler_core::message::Message;
use osprofiler_core::notifier::{self, DriverError, PartialSummary, QueueNotifier, Writer};
use osprofiler_core::{self as osp, ProfilerConfig, Trace};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

/// The driver, counting what it stores: messages, batches, and time spent storing.
struct Counting {
    inner: Arc<dyn Writer>,
    messages: AtomicU64,
    batches: AtomicU64,
    busy_ns: AtomicU64,
}

impl Writer for Counting {
    fn name(&self) -> &str {
        self.inner.name()
    }
    fn notify(&self, batch: &[Message]) -> Result<(), DriverError> {
        let t = Instant::now();
        let r = self.inner.notify(batch);
        self.busy_ns
            .fetch_add(t.elapsed().as_nanos() as u64, Relaxed);
        let stored = match &r {
            Ok(()) => batch.len(),
            Err(e) => batch.len() - e.refused().unwrap_or(batch.len()).min(batch.len()),
        };
        if stored > 0 {
            self.messages.fetch_add(stored as u64, Relaxed);
            self.batches.fetch_add(1, Relaxed);
        }
        r
    }
    fn stores_summaries(&self) -> bool {
        self.inner.stores_summaries()
    }
    fn write_summaries(&self, parts: &[PartialSummary]) -> Result<(), DriverError> {
        self.inner.write_summaries(parts)
    }
    fn stage(&self, window: Duration) -> Result<(), DriverError> {
        self.inner.stage(window)
    }
    fn keep(&self, base_ids: &[&str]) -> Result<(), DriverError> {
        self.inner.keep(base_ids)
    }
    fn sweep(&self) -> Result<u64, DriverError> {
        self.inner.sweep()
    }
    fn retain(&self, age: Duration) -> Result<(), DriverError> {
        self.inner.retain(age)
    }
    fn prune(&self, cutoff: std::time::SystemTime) -> Result<u64, DriverError> {
        self.inner.prune(cutoff)
    }
    fn delete_trace(&self, base_id: &str) -> Result<u64, DriverError> {
        self.inner.delete_trace(base_id)
    }
}

/// utime + stime in seconds from a `/proc/.../stat` file (clock ticks of 10 ms).
fn cpu_seconds(path: &str) -> f64 {
    let stat = std::fs::read_to_string(path).expect("a /proc stat file");
    let rest = &stat[stat.rfind(')').expect("a command name") + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    (f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap()) / 100.0
}

/// What one emitting thread did.
#[derive(Default)]
struct Emitted {
    points: u64,
    /// Traces during whose emission the queue dropped nothing (of this or another thread).
    whole: Vec<String>,
    /// Every trace started, less those the queue dropped whole.
    all: Vec<String>,
    cpu: f64,
}

/// One trace of `points` points: a `wsgi` root and `points - 1` `db` points with a statement.
fn emit_trace(points: usize, seq: &mut u64) -> String {
    let p = osp::init("SECRET_KEY", None, None).expect("profiling enabled");
    let base_id = p.base_id().to_string();
    {
        let _wsgi = Trace::new("wsgi", || {
            osp::info!({"request": {"path": "/v2.1/servers/detail", "method": "GET",
                                    "query": "limit=50", "scheme": "http"}})
        });
        for _ in 1..points {
            *seq += 1;
            let i = *seq;
            drop(Trace::new("db", || {
                osp::info!({"db": {"api": "fetch_all", "system": "postgresql", "namespace": "nova",
                    "statement": format!("SELECT instances.id, instances.uuid, instances.vm_state, instances.task_state \
                        FROM instances WHERE instances.project_id = $1 AND instances.deleted = 0 AND instances.id > {i} \
                        ORDER BY instances.created_at DESC LIMIT 50")}})
            }));
        }
    }
    osp::clean();
    base_id
}

fn emitter(
    n: Arc<QueueNotifier>,
    stop: Arc<AtomicBool>,
    points: usize,
    rate: Option<f64>,
    single: bool,
) -> Emitted {
    let mut out = Emitted::default();
    let mut seq = 0u64;
    let start = Instant::now();
    while !stop.load(Relaxed) {
        if let Some(rate) = rate {
            // Paced per trace: the next one starts when the points so far are due.
            let due = start + Duration::from_secs_f64(out.points as f64 / rate);
            let now = Instant::now();
            if due > now {
                std::thread::sleep(due - now);
                continue;
            }
        }
        let dropped = n.stats().dropped_full;
        let id = emit_trace(points, &mut seq);
        let lost = n.stats().dropped_full - dropped;
        if lost == 0 {
            out.whole.push(id.clone());
        }
        // A trace all of whose messages were dropped has nothing to delete (with one thread;
        // with several, drops of the others count too, so every trace is deleted).
        if !(single && lost == 2 * points as u64) {
            out.all.push(id);
        }
        out.points += points as u64;
    }
    out.cpu = cpu_seconds("/proc/thread-self/stat");
    out
}

struct Args {
    url: String,
    seconds: f64,
    points: usize,
    rate: Option<f64>,
    threads: usize,
    keep: bool,
}

fn args() -> Args {
    let mut pos = Vec::new();
    let (mut rate, mut threads, mut keep) = (None, 1, false);
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--rate" => rate = it.next().and_then(|v| v.parse().ok()),
            "--threads" => threads = it.next().and_then(|v| v.parse().ok()).unwrap_or(1),
            "--keep" => keep = true,
            _ => pos.push(a),
        }
    }
    let Some(url) = pos.first().cloned() else {
        eprintln!(
            "usage: collector_load <connection-url> [seconds=10] [points-per-trace=50] [--rate N] [--threads N] [--keep]"
        );
        std::process::exit(2);
    };
    Args {
        url,
        seconds: pos.get(1).map_or(10.0, |s| s.parse().expect("seconds")),
        points: pos
            .get(2)
            .map_or(50, |s| s.parse().expect("points per trace")),
        rate,
        threads: threads.max(1),
        keep,
    }
}

fn main() {
    let a = args();
    let scheme = a.url.split("://").next().unwrap_or_default().to_owned();
    if scheme.starts_with("elasticsearch") && !a.url.contains("index=") {
        eprintln!("give the run an index of its own: elasticsearch://host:9200?index=bench-load");
        std::process::exit(2);
    }
    let conf = ProfilerConfig::builder()
        .enabled(true)
        .connection_string(a.url.as_str())
        .build();
    let driver = osprofiler_collectors::open(&a.url, &conf).unwrap_or_else(|e| panic!("{e}"));
    let counting = Arc::new(Counting {
        inner: driver,
        messages: AtomicU64::new(0),
        batches: AtomicU64::new(0),
        busy_ns: AtomicU64::new(0),
    });
    let queued_before = messaging_count(&a.url, false);
    let n = QueueNotifier::start(counting.clone(), Default::default()).expect("notifier");
    notifier::set(n.clone());
    osp::identity::set_identity(Some("bench"), Some("load"), Some("bench-host"));
    osp::switches::set_enabled(true);

    // A warm-up trace, flushed: connections made, schema and indexes created.
    let mut seq = 0;
    let warm = emit_trace(a.points, &mut seq);
    assert!(n.flush_for(Duration::from_secs(60)), "warm-up not stored");
    let (m0, b0, busy0) = (
        counting.messages.load(Relaxed),
        counting.batches.load(Relaxed),
        counting.busy_ns.load(Relaxed),
    );
    let s0 = n.stats();

    let stop = Arc::new(AtomicBool::new(false));
    let (cpu0, t0) = (cpu_seconds("/proc/self/stat"), Instant::now());
    let workers: Vec<_> = (0..a.threads)
        .map(|_| {
            let (n, stop) = (n.clone(), stop.clone());
            let (points, rate) = (a.points, a.rate.map(|r| r / a.threads as f64));
            let single = a.threads == 1;
            std::thread::spawn(move || emitter(n, stop, points, rate, single))
        })
        .collect();
    std::thread::sleep(Duration::from_secs_f64(a.seconds));
    stop.store(true, Relaxed);
    let emitted: Vec<Emitted> = workers.into_iter().map(|w| w.join().unwrap()).collect();
    let wall = t0.elapsed().as_secs_f64();
    let cpu = cpu_seconds("/proc/self/stat") - cpu0;
    let stored = counting.messages.load(Relaxed) - m0;
    let batches = counting.batches.load(Relaxed) - b0;
    let busy = (counting.busy_ns.load(Relaxed) - busy0) as f64 / 1e9;
    let s1 = n.stats();
    let offered: u64 = emitted.iter().map(|e| e.points).sum();
    let emit_cpu: f64 = emitted.iter().map(|e| e.cpu).sum();
    let dropped = s1.dropped_full - s0.dropped_full;

    // Whatever is still queued goes in too, then the store is checked.
    let t_drain = Instant::now();
    let drained = n.flush_for(Duration::from_secs(600));
    let drain = t_drain.elapsed().as_secs_f64();
    let total = counting.messages.load(Relaxed) - m0;
    let s2 = n.stats();

    let stored_pps = stored as f64 / 2.0 / wall;
    println!(
        "{scheme} {}: offered {:.0} points/s, stored {:.0} points/s, dropped {} messages \
         ({:.1}% of offered), mean batch {:.0} messages, worker in driver {:.0}% of the run, \
         CPU {:.1} us/stored point ({:.1} us less the emitters'), driver errors {}, \
         drained {} messages in {:.1} s{}",
        a.rate.map_or("max".to_owned(), |r| format!("rate {r:.0}")),
        offered as f64 / wall,
        stored_pps,
        dropped,
        100.0 * dropped as f64 / (offered * 2).max(1) as f64,
        stored as f64 / batches.max(1) as f64,
        100.0 * busy / wall,
        cpu * 1e6 / (stored as f64 / 2.0).max(1.0),
        (cpu - emit_cpu) * 1e6 / (stored as f64 / 2.0).max(1.0),
        s2.driver_errors - s0.driver_errors,
        total - stored,
        drain,
        if drained { "" } else { " (NOT all drained)" },
    );
    println!(
        "RESULT scheme={scheme} mode={} offered_pps={:.0} stored_pps={stored_pps:.0} dropped={dropped} \
         batch={:.0} busy={:.2} cpu_us={:.1} collector_cpu_us={:.1}",
        a.rate.map_or("max".to_owned(), |r| format!("{r:.0}")),
        offered as f64 / wall,
        stored as f64 / batches.max(1) as f64,
        busy / wall,
        cpu * 1e6 / (stored as f64 / 2.0).max(1.0),
        (cpu - emit_cpu) * 1e6 / (stored as f64 / 2.0).max(1.0),
    );

    // The store holds what was reported.
    let whole: Vec<&String> = emitted.iter().flat_map(|e| e.whole.iter()).collect();
    let all: Vec<&String> = std::iter::once(&warm)
        .chain(emitted.iter().flat_map(|e| e.all.iter()))
        .collect();
    let mut problems = 0;
    if let Some(before) = queued_before {
        let after = messaging_count(&a.url, false).unwrap_or(0);
        let want = counting.messages.load(Relaxed);
        println!(
            "verify: profiler.info holds {} new notifications, {want} published",
            after - before
        );
        if after - before != want {
            problems += 1;
        }
    } else {
        let reader = osprofiler_collectors::open_reader(&a.url, &conf).unwrap();
        let step = (whole.len() / 50).max(1);
        let sample: Vec<&&String> = whole.iter().step_by(step).collect();
        for id in &sample {
            let got = reader.trace_messages(id).unwrap().len();
            if got != 2 * a.points {
                eprintln!("trace {id}: {got} messages stored, {} sent", 2 * a.points);
                problems += 1;
            }
        }
        println!(
            "verify: {} of {} sampled whole traces hold all {} messages ({} traces lost none)",
            sample.len() - problems,
            sample.len(),
            2 * a.points,
            whole.len()
        );
    }

    if !a.keep {
        let t = Instant::now();
        clean_up(&a.url, &scheme, counting.as_ref(), &all);
        println!(
            "cleaned up {} traces in {:.1} s",
            all.len(),
            t.elapsed().as_secs_f64()
        );
    }
    if problems > 0 || !drained {
        std::process::exit(1);
    }
}

/// For `messaging://`: the notifications waiting in the virtual host's `profiler.info`
/// (and, with `purge`, removed). `None` for other collectors.
fn messaging_count(url: &str, purge: bool) -> Option<u64> {
    let rest = url.strip_prefix("messaging://")?;
    let amqp = if rest.is_empty() {
        "amqp://guest:guest@127.0.0.1:5672/%2f".to_owned()
    } else {
        format!("rabbit://{rest}")
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        use lapin::options::{QueueDeclareOptions, QueuePurgeOptions};
        let conn = osprofiler_oslo::amqp::connect(&amqp, Default::default())
            .await
            .expect("RabbitMQ");
        let ch = conn.create_channel().await.unwrap();
        let q = ch
            .queue_declare(
                "profiler.info".into(),
                QueueDeclareOptions::default(),
                Default::default(),
            )
            .await
            .unwrap();
        if purge {
            ch.queue_purge("profiler.info".into(), QueuePurgeOptions::default())
                .await
                .unwrap();
        }
        let _ = conn.close(200, "done".into()).await;
        Some(u64::from(q.message_count()))
    })
}

/// Deletes what the run wrote: the file, index or queue when the store is the run's own, the
/// traces one by one otherwise.
fn clean_up(url: &str, scheme: &str, driver: &dyn Writer, traces: &[&String]) {
    if scheme == "messaging" {
        if url == "messaging://" {
            eprintln!("left in the default vhost's profiler.info (shared): not purged");
        } else {
            messaging_count(url, true);
        }
        return;
    }
    if let Some(path) = url.strip_prefix("sqlite://").filter(|p| *p != ":memory:") {
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{path}{suffix}"));
        }
        return;
    }
    if scheme.starts_with("elasticsearch") {
        // elasticsearch://host:port?index=NAME: the index, its error index and the template.
        let (authority, query) = url.split_once("://").unwrap().1.split_once('?').unwrap();
        let index = query
            .split('&')
            .find_map(|kv| kv.strip_prefix("index="))
            .unwrap();
        let http = if scheme.ends_with("https") {
            "https"
        } else {
            "http"
        };
        for path in [
            // (an error index exists only with filter_error_trace)
            format!("{index},{index}-error?ignore_unavailable=true"),
            format!("_index_template/{index}"),
        ] {
            let _ = std::process::Command::new("curl")
                .args(["-s", "-o", "/dev/null", "-X", "DELETE"])
                .arg(format!("{http}://{authority}/{path}"))
                .status();
        }
        return;
    }
    for id in traces {
        if let Err(e) = driver.delete_trace(id) {
            eprintln!("cannot delete trace {id}: {e}");
            return;
        }
    }
}
