//! The cost of a request the sampler traces (issue 23), through the server layer over a
//! service that answers at once, against the same layer with no sampler (untraced): head
//! sampled, provisional and dropped (no reason to keep it), provisional and kept (slow: the
//! keep threshold is zero), and a sampler that declines. Points go to a queue in front of a
//! collector that stages and discards ([`StagingDiscard`]).
//! Run: `cargo bench -p osprofiler-benches --bench sampling`; the paired medians in
//! `benches/README.md` come from `http_overhead` (its `sampled`, `provisional-*` modes).
#![allow(missing_docs)] // criterion_group! generates undocumented items
use criterion::{Criterion, criterion_group, criterion_main};
use osprofiler_benches::{Ok200, SERVER_KEYS, StagingDiscard, request_maker, run};
use osprofiler_core::sampling::Sampler;
use osprofiler_http::OsProfilerLayer;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;
use tower::Layer;

fn bench(c: &mut Criterion) {
    let driver = Arc::new(StagingDiscard::default());
    let n = osprofiler_benches::install_staging(driver.clone(), 1 << 20);
    let (plain, signed) = (request_maker(false), request_maker(true));
    let layer = |s: Sampler| OsProfilerLayer::new(SERVER_KEYS).sampler(s).layer(Ok200);
    let hour = Duration::from_secs(3600);

    let mut g = c.benchmark_group("sampling");
    let mut untraced = OsProfilerLayer::new(SERVER_KEYS).layer(Ok200);
    g.bench_function("untraced", |b| b.iter(|| run(&mut untraced, plain())));
    // Head sampling at 1/1000, no tail keep: nearly every request is declined (a new id and
    // its SHA-1 each).
    let mut declines = layer(Sampler::new().ratio(0.001));
    g.bench_function("sampler_declines", |b| {
        b.iter(|| run(&mut declines, plain()))
    });
    let mut sampled = layer(Sampler::new().ratio(1.0));
    g.bench_function("head_sampled", |b| b.iter(|| run(&mut sampled, plain())));
    let mut dropped = layer(Sampler::new().keep_slow(hour));
    g.bench_function("provisional_dropped", |b| {
        b.iter(|| run(&mut dropped, plain()))
    });
    let before = driver.kept.load(Relaxed);
    let mut kept = layer(Sampler::new().keep_slow(Duration::ZERO));
    g.bench_function("provisional_kept", |b| b.iter(|| run(&mut kept, plain())));
    let mut signed_layer = layer(Sampler::new().keep_slow(hour));
    g.bench_function("signed_with_sampler", |b| {
        b.iter(|| run(&mut signed_layer, signed()))
    });
    g.finish();
    osprofiler_benches::assert_delivered_all(&n);
    assert!(
        driver.kept.load(Relaxed) > before,
        "provisional_kept kept no trace: the numbers are not those of kept traces"
    );
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(2)).sample_size(50);
    targets = bench
}
criterion_main!(benches);
