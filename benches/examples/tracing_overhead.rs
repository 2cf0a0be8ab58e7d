//! The `tracing` bridge's costs, interleaved (criterion's means drift by more than the 5 ns
//! this is about): blocks of 100 span cycles (create, enter, exit, close) with and without the
//! osprofiler layer, or against 100 `#[trace]`d calls, alternated and timed one by one.
//!
//! Usage: `tracing_overhead <mode> <pairs>`; mode:
//! - `no_trace`: registry alone vs registry + layer, no OSProfiler trace
//! - `points_elsewhere`: the same while another span of the process is a point
//! - `in_trace`: a `#[trace]`d call vs a span with the layer, inside a trace (queue notifier)
//! - `in_trace_noop`: the same with a notifier that drops messages at once
//!
//! Every figure printed is per block of 100.
//!
//! `count-<mode>-<side>` (side `raw`, `traced` or `identity`: a no-op layer) runs one side alone in `counted_loop`, for
//! instruction counts: `valgrind --tool=callgrind --toggle-collect='*counted_loop*'`.
#![allow(missing_docs)]

use osprofiler_benches::{interleaved, span_cycle, traced_call};
use osprofiler_core::{self as osp, notifier};
use std::hint::black_box;
use tracing::Dispatch;
use tracing_subscriber::prelude::*;

fn block(dispatch: &Dispatch, f: fn(u64)) -> impl FnMut() + '_ {
    move || {
        tracing::dispatcher::with_default(dispatch, || {
            for i in 0..100 {
                f(black_box(i));
            }
        })
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [mode, n] = &args[..] else {
        eprintln!(
            "usage: tracing_overhead <no_trace|points_elsewhere|in_trace|in_trace_noop> <pairs>"
        );
        std::process::exit(2);
    };
    let n: usize = n.parse().expect("pairs");
    let queue = osprofiler_benches::install_discard();
    let bare = Dispatch::new(tracing_subscriber::registry());
    let layered = Dispatch::new(tracing_subscriber::registry().with(osprofiler_tracing::layer()));
    if let Some(rest) = mode.strip_prefix("count-") {
        let (which, side) = rest.rsplit_once('-').expect("count-<mode>-<raw|traced>");
        let traced = side == "traced";
        let p = osp::Profiler::new_root("SECRET_KEY", None, None).unwrap();
        let _other = (which == "points_elsewhere").then(|| {
            tracing::dispatcher::with_default(&layered, || {
                osp::scope::with_trace(Some(p.clone()), || tracing::info_span!("other_request"))
            })
        });
        if which == "in_trace_noop" {
            notifier::set(std::sync::Arc::new(notifier::NoopNotifier));
        }
        let in_trace = which.starts_with("in_trace");
        if in_trace {
            osp::init("SECRET_KEY", None, None).unwrap();
        }
        // `identity`: a layer that does nothing, for what any layer costs the registry.
        let identity = Dispatch::new(
            tracing_subscriber::registry().with(tracing_subscriber::layer::Identity::new()),
        );
        let mut op: Box<dyn FnMut()> = match (in_trace, traced) {
            _ if side == "identity" => Box::new(block(&identity, span_cycle)),
            (_, true) => Box::new(block(&layered, span_cycle)),
            (true, false) => Box::new(block(&bare, traced_call)),
            (false, false) => Box::new(block(&bare, span_cycle)),
        };
        osprofiler_benches::warm_up(n, &mut op);
        osprofiler_benches::counted_loop(n, &mut op);
        osp::clean();
        return;
    }
    match mode.as_str() {
        "no_trace" => interleaved(
            mode,
            n,
            &mut block(&bare, span_cycle),
            &mut block(&layered, span_cycle),
        ),
        "points_elsewhere" => {
            let p = osp::Profiler::new_root("SECRET_KEY", None, None).unwrap();
            let _other = tracing::dispatcher::with_default(&layered, || {
                osp::scope::with_trace(Some(p), || tracing::info_span!("other_request"))
            });
            interleaved(
                mode,
                n,
                &mut block(&bare, span_cycle),
                &mut block(&layered, span_cycle),
            );
        }
        "in_trace" | "in_trace_noop" => {
            if mode == "in_trace_noop" {
                notifier::set(std::sync::Arc::new(notifier::NoopNotifier));
            }
            osp::init("SECRET_KEY", None, None).unwrap();
            interleaved(
                mode,
                n,
                &mut block(&bare, traced_call),
                &mut block(&layered, span_cycle),
            );
            osp::clean();
        }
        _ => panic!("unknown mode {mode}"),
    }
    osprofiler_benches::assert_delivered_all(&queue);
}
