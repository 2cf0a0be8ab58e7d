//! HTTP layer overhead per request: untraced, traced (verify + wsgi point), client injection.
//! Run: `cargo bench -p osprofiler-benches --bench http`.
#![allow(missing_docs)] // criterion_group! generates undocumented items
use criterion::{Criterion, criterion_group, criterion_main};
use osprofiler_benches::{Ok200, SERVER_KEYS, request_maker, run};
use osprofiler_core::{self as osp, notifier};
use osprofiler_http::{OsProfilerLayer, TraceClientLayer};
use std::time::{Duration, Instant};
use tower::Layer;

fn bench(c: &mut Criterion) {
    let n = osprofiler_benches::install_discard();
    let (plain, signed) = (request_maker(false), request_maker(true));

    let mut g = c.benchmark_group("server");
    let mut raw = Ok200;
    g.bench_function("raw_service", |b| b.iter(|| run(&mut raw, plain())));
    let mut layered = OsProfilerLayer::new(SERVER_KEYS).layer(Ok200);
    g.bench_function("untraced_request", |b| {
        b.iter(|| run(&mut layered, plain()))
    });
    g.bench_function("raw_service_signed_headers", |b| {
        b.iter(|| run(&mut raw, signed()))
    });
    g.bench_function("traced_request", |b| b.iter(|| run(&mut layered, signed())));
    // The overhead itself, robust to this VM's drifts: raw and traced requests alternate and
    // are timed one by one (requests built outside the timing); criterion gets the sum of the
    // differences, so its "time" is the mean paired overhead per request.
    g.bench_function("traced_overhead_paired", |b| {
        b.iter_custom(|iters| {
            let (mut raw_t, mut traced_t) = (Duration::ZERO, Duration::ZERO);
            for i in 0..iters {
                let (r1, r2) = (signed(), signed());
                let time_raw = || {
                    let s = Instant::now();
                    run(&mut raw, r1);
                    s.elapsed()
                };
                let time_traced = || {
                    let s = Instant::now();
                    run(&mut layered, r2);
                    s.elapsed()
                };
                if i % 2 == 0 {
                    raw_t += time_raw();
                    traced_t += time_traced();
                } else {
                    traced_t += time_traced();
                    raw_t += time_raw();
                }
            }
            traced_t.saturating_sub(raw_t)
        })
    });
    notifier::set(std::sync::Arc::new(notifier::NoopNotifier));
    g.bench_function("traced_request_noop_notifier", |b| {
        b.iter(|| run(&mut layered, signed()))
    });
    notifier::set(n.clone());
    g.finish();

    let mut g = c.benchmark_group("client");
    let mut client = TraceClientLayer::new().layer(Ok200);
    g.bench_function("no_trace", |b| b.iter(|| run(&mut client, plain())));
    osp::init("SECRET_KEY", None, None).unwrap();
    g.bench_function("traced_injection", |b| b.iter(|| run(&mut client, plain())));
    osp::clean();
    g.finish();
    osprofiler_benches::assert_delivered_all(&n);
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(2)).sample_size(50);
    targets = bench
}
criterion_main!(benches);
