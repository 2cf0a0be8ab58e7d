//! The `tracing` bridge: what a span costs with `osprofiler_tracing::layer()` installed, outside
//! an OSProfiler trace (against the registry alone) and inside one (against a `#[trace]`d call,
//! and against tracing-opentelemetry's layer with a no-op exporter on the same span).
//! Run: `cargo bench -p osprofiler-benches --bench tracing`.
#![allow(missing_docs)] // criterion_group! generates undocumented items
use criterion::{Criterion, black_box, criterion_group, criterion_main};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SdkTracerProvider, SpanData, SpanExporter};
use osprofiler_benches::{span_cycle, traced_call};
use osprofiler_core::{self as osp, notifier};
use tracing_subscriber::prelude::*;

#[derive(Debug)]
struct NoopExporter;

impl SpanExporter for NoopExporter {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        black_box(batch);
        Ok(())
    }
}

fn bench(c: &mut Criterion) {
    let _queue = osprofiler_benches::install_discard();

    let mut g = c.benchmark_group("tracing_no_trace");
    osp::clean();
    // The first group of a run measured high and wide here (the process still settling after
    // the queue's allocation): a second of the same work first.
    let settle = std::time::Instant::now();
    tracing::subscriber::with_default(tracing_subscriber::registry(), || {
        while settle.elapsed() < std::time::Duration::from_secs(1) {
            span_cycle(black_box(7));
        }
    });
    tracing::subscriber::with_default(tracing_subscriber::registry(), || {
        g.bench_function("registry_alone", |b| b.iter(|| span_cycle(black_box(7))));
    });
    // What any layer costs the registry: a layer that does nothing.
    let identity = tracing_subscriber::registry().with(tracing_subscriber::layer::Identity::new());
    tracing::subscriber::with_default(identity, || {
        g.bench_function("registry_with_noop_layer", |b| {
            b.iter(|| span_cycle(black_box(7)))
        });
    });
    let layered = tracing_subscriber::registry().with(osprofiler_tracing::layer());
    tracing::subscriber::with_default(layered, || {
        g.bench_function("registry_with_osprofiler_layer", |b| {
            b.iter(|| span_cycle(black_box(7)))
        });
        // The same while another task's span is a point somewhere in the process (a busy
        // service): enter and exit then look the span up to see whether it is a point.
        let p = osp::Profiler::new_root("SECRET_KEY", None, None).unwrap();
        let other = osp::scope::with_trace(Some(p), || tracing::info_span!("other_request"));
        g.bench_function("registry_with_osprofiler_layer_points_elsewhere", |b| {
            b.iter(|| span_cycle(black_box(7)))
        });
        drop(other);
    });
    g.finish();

    // Inside a trace, twice: with the standard queue notifier (what a service runs; its worker
    // thread shares the 2 cores) and with a notifier that drops each message at once (the
    // traced thread's own work, steadier).
    for (group, queue) in [
        ("tracing_in_trace", true),
        ("tracing_in_trace_noop_notifier", false),
    ] {
        if queue {
            notifier::set(_queue.clone());
        } else {
            notifier::set(std::sync::Arc::new(notifier::NoopNotifier));
        }
        let mut g = c.benchmark_group(group);
        osp::init("SECRET_KEY", None, None).unwrap();
        g.bench_function("trace_macro_call", |b| b.iter(|| traced_call(black_box(7))));
        let layered = tracing_subscriber::registry().with(osprofiler_tracing::layer());
        tracing::subscriber::with_default(layered, || {
            g.bench_function("osprofiler_layer_span", |b| {
                b.iter(|| span_cycle(black_box(7)))
            });
        });
        osp::clean();
        g.finish();
    }

    let mut g = c.benchmark_group("tracing_in_trace");
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(NoopExporter)
        .build();
    let otel = tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("bench")));
    tracing::subscriber::with_default(otel, || {
        g.bench_function("opentelemetry_layer_span", |b| {
            b.iter(|| span_cycle(black_box(7)))
        });
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(std::time::Duration::from_secs(1))
        .measurement_time(std::time::Duration::from_secs(3));
    targets = bench
}
criterion_main!(benches);
