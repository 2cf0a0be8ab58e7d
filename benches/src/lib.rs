//! Shared pieces of the benchmarks in `benches/`.

use osprofiler_core::message::Message;
use osprofiler_core::notifier::{
    self, DriverError, QueueNotifier, QueueOptions, Reader, TraceSummary, Writer,
};
use std::hint::black_box;
use std::sync::Arc;

/// A driver that accepts and discards batches: benchmarks measure the traced side, not a store.
#[derive(Debug, Clone, Copy, Default)]
pub struct Discard;

impl Writer for Discard {
    fn name(&self) -> &str {
        "discard"
    }
    fn notify(&self, batch: &[Message]) -> Result<(), DriverError> {
        black_box(batch.len());
        Ok(())
    }
}

impl Reader for Discard {
    fn trace_messages(&self, _: &str) -> Result<Vec<serde_json::Value>, DriverError> {
        Ok(vec![])
    }
    fn list_traces(&self) -> Result<Vec<TraceSummary>, DriverError> {
        Ok(vec![])
    }
    fn list_error_traces(&self) -> Result<Vec<TraceSummary>, DriverError> {
        Ok(vec![])
    }
}

/// Installs a large queue notifier (2^20 messages) in front of [`Discard`] as the global
/// notifier: criterion's tight loops emit points faster than the worker drains a
/// default-sized queue (~14 million messages a second), which would drop some.
pub fn install_discard() -> Arc<QueueNotifier> {
    install_discard_with(1 << 20)
}

/// [`install_discard`] with a queue of `capacity` messages.
pub fn install_discard_with(capacity: usize) -> Arc<QueueNotifier> {
    let opts = QueueOptions {
        capacity,
        ..QueueOptions::default()
    };
    let n = QueueNotifier::start(Arc::new(Discard), opts).expect("start the benchmark notifier");
    notifier::set(n.clone());
    n
}

/// [`Discard`] that also stages (as the SQL and Redis collectors do): a service with a sampler
/// that keeps slow or failed requests traces them provisionally only in front of such a
/// collector. Keeps and sweeps are counted, not stored: the benchmarks measure the traced
/// side.
#[derive(Debug, Default)]
pub struct StagingDiscard {
    /// Traces kept so far (the ids handed to [`Writer::keep`]).
    pub kept: std::sync::atomic::AtomicU64,
}

impl Writer for StagingDiscard {
    fn name(&self) -> &str {
        "staging-discard"
    }
    fn notify(&self, batch: &[Message]) -> Result<(), DriverError> {
        black_box(batch.len());
        Ok(())
    }
    fn stage(&self, _window: std::time::Duration) -> Result<(), DriverError> {
        Ok(())
    }
    fn keep(&self, base_ids: &[&str]) -> Result<(), DriverError> {
        self.kept
            .fetch_add(base_ids.len() as u64, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }
    fn sweep(&self) -> Result<u64, DriverError> {
        Ok(0)
    }
}

/// Installs a queue notifier of `capacity` messages in front of `driver` as the global
/// notifier, staging (`keep_traces`: the driver must stage), and returns it.
pub fn install_staging(driver: Arc<dyn Writer>, capacity: usize) -> Arc<QueueNotifier> {
    let opts = QueueOptions {
        capacity,
        keep_traces: true,
        ..QueueOptions::default()
    };
    let n = QueueNotifier::start(driver, opts).expect("start the benchmark notifier");
    notifier::set(n.clone());
    n
}

/// Waits for the queue to drain and fails if it dropped messages: a dropped message costs
/// less than a delivered one, so the numbers would flatter.
pub fn assert_delivered_all(n: &QueueNotifier) {
    assert!(
        n.flush_for(std::time::Duration::from_secs(30)),
        "queue not drained"
    );
    let stats = n.stats();
    assert_eq!(
        stats.dropped_full, 0,
        "the queue dropped messages, the numbers are not valid: {stats:?}"
    );
}

/// The warm-up: the same calls, not counted.
#[inline(never)]
pub fn warm_up(n: usize, op: &mut dyn FnMut()) {
    for _ in 0..n {
        op();
    }
}

/// The counted calls (`callgrind --toggle-collect='*counted_loop*'`).
#[inline(never)]
pub fn counted_loop(n: usize, op: &mut dyn FnMut()) {
    for i in 0..n {
        op();
        // Keeps this body different from `warm_up`'s, which the compiler would otherwise fold
        // into one function (and callgrind would count the warm-up too, or nothing).
        black_box(i);
    }
}

/// Raw and traced calls alternated (which goes first alternates too), timed one by one: the
/// machine's slow drifts hit both alike, and the paired differences give the overhead with a
/// confidence interval. Prints one line headed `mode`.
pub fn interleaved(mode: &str, n: usize, raw: &mut dyn FnMut(), traced: &mut dyn FnMut()) {
    interleaved_with(mode, n, &mut || (), &mut |()| raw(), &mut |()| traced());
}

/// [`interleaved`] where each call takes an input made by `prepare` outside the timing (an
/// HTTP request, say).
pub fn interleaved_with<T>(
    mode: &str,
    n: usize,
    prepare: &mut dyn FnMut() -> T,
    raw: &mut dyn FnMut(T),
    traced: &mut dyn FnMut(T),
) {
    use std::time::Instant;
    for _ in 0..n / 10 + 1 {
        raw(prepare());
        traced(prepare());
    }
    let (mut r, mut t, mut d) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    for i in 0..n {
        let (x, y) = (prepare(), prepare());
        let time = |f: &mut dyn FnMut(T), input: T| {
            let s = Instant::now();
            f(input);
            s.elapsed().as_nanos() as f64
        };
        let (a, b) = if i % 2 == 0 {
            let a = time(raw, x);
            (a, time(traced, y))
        } else {
            let b = time(traced, y);
            (time(raw, x), b)
        };
        r.push(a);
        t.push(b);
        d.push(b - a);
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let mean = d.iter().sum::<f64>() / n as f64;
    let var = d.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n as f64 - 1.0);
    let ci = 1.96 * (var / n as f64).sqrt();
    let (mr, mt, md) = (median(&mut r), median(&mut t), median(&mut d));
    let unit = if mr < 10_000.0 {
        ("ns", 1.0)
    } else {
        ("µs", 1e3)
    };
    let u = |x: f64| x / unit.1;
    println!(
        "{mode}: raw median {:.1} {u0}, traced median {:.1} {u0}; paired difference median {:+.2} {u0} ({:+.2}%), mean {:+.2} ± {:.2} {u0} ({:+.2}% ± {:.2}%)",
        u(mr),
        u(mt),
        u(md),
        100.0 * md / mr,
        u(mean),
        u(ci),
        100.0 * mean / mr,
        100.0 * ci / mr,
        u0 = unit.0,
    );
}

/// The cheapest possible HTTP service: answers 200 at once (so a layer's cost is all there is).
#[derive(Debug, Clone, Copy)]
pub struct Ok200;

impl<B> tower::Service<http::Request<B>> for Ok200 {
    type Response = http::Response<()>;
    type Error = std::convert::Infallible;
    type Future = std::future::Ready<Result<http::Response<()>, std::convert::Infallible>>;
    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), std::convert::Infallible>> {
        std::task::Poll::Ready(Ok(()))
    }
    fn call(&mut self, _: http::Request<B>) -> Self::Future {
        std::future::ready(Ok(http::Response::new(())))
    }
}

/// Calls `svc` and polls the response future once (the services here answer at once).
pub fn run<S: tower::Service<http::Request<()>>>(
    svc: &mut S,
    req: http::Request<()>,
) -> Option<S::Response> {
    use std::future::Future as _;
    let mut fut = std::pin::pin!(svc.call(req));
    let waker = std::task::Waker::noop();
    match fut
        .as_mut()
        .poll(&mut std::task::Context::from_waker(waker))
    {
        std::task::Poll::Ready(r) => r.ok(),
        std::task::Poll::Pending => None,
    }
}

/// The keys a benchmark server verifies against (a rotation: the request is signed with the
/// second, as during one).
pub const SERVER_KEYS: [&str; 2] = ["new-key", "old-key"];

/// The benchmarks' request, `GET /v2/servers?limit=5`: without trace headers, or (`signed`)
/// with a caller's headers signed with the second of [`SERVER_KEYS`].
pub fn request_maker(signed: bool) -> impl Fn() -> http::Request<()> + Clone {
    use osprofiler_core::headers::{TraceData, signed_pack};
    let h = signed.then(|| {
        signed_pack(
            &TraceData {
                base_id: "11111111-1111-4111-8111-111111111111".into(),
                parent_id: Some("22222222-2222-4222-8222-222222222222".into()),
            },
            SERVER_KEYS[1],
        )
    });
    move || {
        let mut b = http::Request::get("/v2/servers?limit=5");
        if let Some(h) = &h {
            for (name, value) in h.pairs() {
                b = b.header(name, value);
            }
        }
        b.body(()).expect("a valid request")
    }
}

/// A statement of about 1 KiB in `dialect` without bound values, as an application writes raw
/// SQL: an insert of several rows of literals (strings with quotes inside, numbers, a blob),
/// identifiers quoted the dialect's way, and comments with quotes in them.
pub fn statement_1kib(dialect: osprofiler_core::db::Dialect) -> String {
    use osprofiler_core::db::Dialect;
    let (q, esc, comment) = match dialect {
        Dialect::MySql => ('`', r"'it\'s'", "# it's a note\n"),
        Dialect::Sqlite => ('"', "'it''s'", "-- it's a note\n"),
        _ => ('"', "E'it\\'s'", "/* it's /* nested */ */ "),
    };
    let mut s = format!(
        "{comment}INSERT INTO {q}audit_log{q} ({q}user_id{q}, {q}action{q}, {q}detail{q}, amount, \
         token, created_at) VALUES "
    );
    let mut i = 0;
    while s.len() < 960 {
        if i > 0 {
            s.push_str(", ");
        }
        s.push_str(&format!(
            "({}, 'login', {esc}, {}.{:02}, X'DEADBEEF{i:02}', '2026-12-03 12:{:02}:00')",
            1000 + i,
            i * 37,
            i % 100,
            i % 60
        ));
        i += 1;
    }
    s.push_str(" -- trailing 'comment'");
    s
}

/// One span's life, as the `tracing` bridge benchmarks measure it: created (with a field),
/// entered, exited, closed.
#[inline(never)]
pub fn span_cycle(user: u64) {
    let span = tracing::info_span!("get_user", user);
    let _entered = span.enter();
    black_box(user);
}

/// The same work as a `#[trace]`d call (its argument recorded, as the span's field is): what a
/// span point is compared with.
#[osprofiler_core::trace(name = "span")]
#[inline(never)]
pub fn traced_call(user: u64) {
    black_box(user);
}

/// A `#[trace]`d function of two arguments (the `rpc` point of `benches/core.rs` and
/// `examples/icount.rs`).
/// `#[inline]`: as in the benchmarks' own crate before, the caller may inline it.
#[osprofiler_core::trace(name = "rpc")]
#[inline]
pub fn traced_fn(a: u64, b: &str) -> u64 {
    a + b.len() as u64
}

/// [`traced_fn`] without the attribute: the baseline for `#[trace]`'s cost.
#[inline(never)]
pub fn plain_fn(a: u64, b: &str) -> u64 {
    a + b.len() as u64
}
