//! What tail keep costs a service in CPU, its notifier's worker and sweeps included, over a
//! real collector that stages: requests without trace headers through the server layer
//! configured from `[profiler]` options (`OsProfilerLayer::from_conf`, the notifier from
//! `osprofiler_collectors::init_from_conf`), then the staging window waited out twice so that
//! every sweep that removes the dropped traces has run; prints the process's CPU time (all
//! threads, `/proc/self/stat`) per request and what is left in the store.
//!
//! Usage: `sampling_cpu <untraced|sampled|dropped|kept> <requests> <connection_string>`
//! - `untraced`: no sampler; `sampled`: `sample_ratio = 1`;
//! - `dropped`: `keep_slow_ms` = 1 h (no request is kept); `kept`: `keep_slow_ms = 0`
//!   (every request is); staging window 1 s.
//!
//! Requests go in bursts of 1,000, each followed by a flush, so that the queue never drops
//! (a run that dropped messages fails).
#![allow(missing_docs)]

use osprofiler_benches::{Ok200, SERVER_KEYS, request_maker, run};
use osprofiler_core::ProfilerConfig;
use osprofiler_http::OsProfilerLayer;
use std::time::{Duration, Instant};
use tower::Layer;

/// utime + stime of the whole process, in seconds (clock ticks of 10 ms).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("/proc/self/stat");
    // Fields after the command name (which is in parentheses and may hold spaces).
    let rest = &stat[stat.rfind(')').expect("a command name") + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap();
    ticks / 100.0
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [mode, n, cs] = &args[..] else {
        eprintln!(
            "usage: sampling_cpu <untraced|sampled|dropped|kept> <requests> <connection_string>"
        );
        std::process::exit(2);
    };
    let n: usize = n.parse().expect("requests: a number");
    let window = Duration::from_secs(1);
    let mut conf = ProfilerConfig::builder()
        .enabled(true)
        .connection_string(cs.as_str())
        .staging_window(window)
        .hmac_keys(SERVER_KEYS);
    conf = match mode.as_str() {
        "untraced" => conf,
        "sampled" => conf.sample_ratio(1.0),
        "dropped" => conf.keep_slow_ms(3_600_000),
        "kept" => conf.keep_slow_ms(0),
        _ => {
            eprintln!("unknown mode {mode}");
            std::process::exit(2);
        }
    };
    let conf = conf.build();
    let guard = osprofiler_collectors::init_from_conf(&conf, "bench", "api", Some("bench"))
        .unwrap_or_else(|e| panic!("{cs}: {e}"));
    let mut svc = OsProfilerLayer::from_conf(&conf).layer(Ok200);
    let plain = request_maker(false);
    let (cpu0, wall0) = (cpu_seconds(), Instant::now());
    for burst in (0..n).step_by(1000) {
        for _ in burst..(burst + 1000).min(n) {
            drop(run(&mut svc, plain()));
        }
        assert!(guard.flush(Duration::from_secs(30)), "queue not drained");
    }
    let requests = wall0.elapsed();
    if mode == "dropped" || mode == "kept" {
        // Pending → dropped after one window, deleted after the second; sweeps every window/4.
        std::thread::sleep(window * 2 + window / 2);
        assert!(guard.flush(Duration::from_secs(30)));
    }
    let cpu = cpu_seconds() - cpu0;
    let stats = guard.stats();
    assert_eq!(
        stats.dropped_full, 0,
        "the queue dropped messages: {stats:?}"
    );
    println!(
        "{mode}: {n} requests in {:.2} s, CPU {:.2} s = {:.1} µs per request (window waited: {}); \
         provisional {:?}; delivered {}",
        requests.as_secs_f64(),
        cpu,
        cpu * 1e6 / n as f64,
        mode == "dropped" || mode == "kept",
        stats.provisional,
        stats.delivered,
    );
    let reader = osprofiler_collectors::open_reader(cs, &conf).expect("a reader");
    match reader.list_traces() {
        Ok(l) => println!("{mode}: {} traces listed after", l.len()),
        Err(e) => println!("{mode}: listing failed: {e}"),
    }
}
