//! The HTTP layers' overhead per request, measured by interleaving (see `benches/README.md`):
//! raw and layered requests alternate and are timed one by one, requests built outside the
//! timing, so this VM's drifts hit both sides of each pair alike.
//!
//! Usage: `http_overhead <mode> <pairs>`
//! - `point`: an empty point (`Trace::new` + stop) in a trace, against nothing — the point
//!   cost the traced-request goal is stated on top of
//! - `server-untraced`: the server layer with a request without trace headers
//! - `server-traced`: the server layer with a signed request (verify + `wsgi` point)
//! - `client`: the client layer in a trace (an `http` point + signed headers)
//! - `sampled`, `provisional-dropped`, `provisional-kept`, `sampler-declines`: a request without
//!   trace headers through the server layer with a sampler (issue 23) that head-samples it
//!   (ratio 1), traces it provisionally and finds no reason to keep it (`keep_slow` 1 h), keeps
//!   it (`keep_slow` 0: every request is slow enough), or declines it (ratio 1/1000), against
//!   the same request through the layer without a sampler (untraced); points go to a queue in
//!   front of a collector that stages and discards
//! - `server-traced-loop`, `server-untraced-loop`, `client-loop`, `raw-loop`, `raw-plain-loop`:
//!   requests through the server layer (signed or not), the client layer (in a trace, unsigned request), or straight to the
//!   service (signed or not), in `counted_loop` only, printing allocations per request, for
//!   `valgrind --tool=callgrind --toggle-collect='*counted_loop*'` (instruction counts are
//!   repeatable where times on this VM are not)
//!
//! Points go to the default-sized queue in front of a driver that discards them; a run in which
//! the queue dropped messages fails instead of reporting flattering numbers.
#![allow(missing_docs)]

use osprofiler_benches::{
    Ok200, SERVER_KEYS, counted_loop, interleaved_with, request_maker, run, warm_up,
};
use osprofiler_core::notifier::QueueOptions;
use osprofiler_core::sampling::Sampler;
use osprofiler_core::{self as osp, Trace};
use osprofiler_http::{OsProfilerLayer, TraceClientLayer};
use tower::Layer;

/// Counts allocations, for the loop modes' report.
#[global_allocator]
static ALLOC: osprofiler_testkit::Counting = osprofiler_testkit::Counting;

/// The loop modes: `op` n times (warm-up), then n times counted, printing allocations per call
/// (all threads; the worker allocates nothing per message).
fn counted(mode: &str, n: usize, op: &mut dyn FnMut()) {
    warm_up(n, op);
    let before = osprofiler_testkit::allocations();
    counted_loop(n, op);
    let per_call = (osprofiler_testkit::allocations() - before) as f64 / n as f64;
    println!("{mode}: {per_call:.2} allocations per request");
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [mode, n] = &args[..] else {
        eprintln!(
            "usage: http_overhead <point|server-untraced|server-traced|client|sampled|provisional-dropped|provisional-kept|sampler-declines|server-traced-loop|server-untraced-loop|client-loop|raw-loop|raw-plain-loop> <pairs>"
        );
        std::process::exit(2);
    };
    let n: usize = n.parse().expect("pairs: a number");
    let capacity = QueueOptions::default().capacity;
    let hour = std::time::Duration::from_secs(3600);
    let sampler = match mode.as_str() {
        "sampled" => Some(Sampler::new().ratio(1.0)),
        "provisional-dropped" => Some(Sampler::new().keep_slow(hour)),
        "provisional-kept" => Some(Sampler::new().keep_slow(std::time::Duration::ZERO)),
        "sampler-declines" => Some(Sampler::new().ratio(0.001)),
        _ => None,
    };
    let staging = std::sync::Arc::new(osprofiler_benches::StagingDiscard::default());
    let queue = match sampler {
        Some(_) => osprofiler_benches::install_staging(staging.clone(), capacity),
        None => osprofiler_benches::install_discard_with(capacity),
    };

    let (plain, signed) = (request_maker(false), request_maker(true));
    let mut raw = Ok200;
    let mut server = OsProfilerLayer::new(SERVER_KEYS).layer(Ok200);
    let mut client = TraceClientLayer::new().layer(Ok200);
    match mode.as_str() {
        "point" => {
            osp::init("key", None, None).unwrap();
            interleaved_with(mode, n, &mut || (), &mut |()| {}, &mut |()| {
                Trace::new("wsgi", osp::Info::new).finish()
            });
            osp::clean();
        }
        "server-untraced" => interleaved_with(
            mode,
            n,
            &mut plain.clone(),
            &mut |r| drop(run(&mut raw, r)),
            &mut |r| drop(run(&mut server, r)),
        ),
        "server-traced" => interleaved_with(
            mode,
            n,
            &mut signed.clone(),
            &mut |r| drop(run(&mut raw, r)),
            &mut |r| drop(run(&mut server, r)),
        ),
        "client" => {
            osp::init("key", None, None).unwrap();
            interleaved_with(
                mode,
                n,
                &mut plain.clone(),
                &mut |r| drop(run(&mut raw, r)),
                &mut |r| drop(run(&mut client, r)),
            );
            osp::clean();
        }
        "sampled" | "provisional-dropped" | "provisional-kept" | "sampler-declines" => {
            let mut untraced = OsProfilerLayer::new(SERVER_KEYS).layer(Ok200);
            let sampler = sampler.expect("a sampler for these modes");
            let mut sampling = OsProfilerLayer::new(SERVER_KEYS)
                .sampler(sampler)
                .layer(Ok200);
            interleaved_with(
                mode,
                n,
                &mut plain.clone(),
                &mut |r| drop(run(&mut untraced, r)),
                &mut |r| drop(run(&mut sampling, r)),
            );
            let stats = queue.stats().provisional;
            println!(
                "{mode}: provisional traces started {}, kept {} (collector: {}), dropped {}",
                stats.started,
                stats.kept,
                staging.kept.load(std::sync::atomic::Ordering::Relaxed),
                stats.dropped
            );
        }
        "client-loop" => {
            osp::init("key", None, None).unwrap();
            counted(mode, n, &mut || drop(run(&mut client, plain())));
            osp::clean();
        }
        "raw-loop" => counted(mode, n, &mut || drop(run(&mut raw, signed()))),
        "raw-plain-loop" => counted(mode, n, &mut || drop(run(&mut raw, plain()))),
        "server-traced-loop" => counted(mode, n, &mut || drop(run(&mut server, signed()))),
        "server-untraced-loop" => counted(mode, n, &mut || drop(run(&mut server, plain()))),
        _ => {
            eprintln!("unknown mode {mode}");
            std::process::exit(2);
        }
    }
    osprofiler_benches::assert_delivered_all(&queue);
}
