//! Free when off: with no active trace, or with profiling disabled, hooks allocate nothing.
//! One test in this file: it flips the global switch. Allocations are counted on the test's
//! thread (the harness's own threads allocate at times of their own).
use osprofiler_core::{self as osp, Trace, trace};
#[global_allocator]
static GLOBAL: osprofiler_testkit::Counting = osprofiler_testkit::Counting;

#[trace(name = "rpc", hide_result = false)]
fn traced(x: u64, s: &str) -> Result<u64, std::io::Error> {
    Ok(x + s.len() as u64)
}

#[trace(name = "db")]
async fn traced_async(x: u64) -> u64 {
    x * 2
}

fn hooks(i: u64, err: &std::io::Error) -> u64 {
    osp::start("db", || osp::info!({"statement": format!("SELECT {i}")}));
    osp::stop(|| osp::info!({"rows": i}));
    let mut t = Trace::new("db", || osp::info!({"i": i}));
    t.stop_info(|info| {
        info.insert("x".into(), i.into());
    });
    t.error(err);
    drop(t);
    let d = Trace::new_detached("d", osp::Info::new);
    drop(d);
    let _ = osp::trace_headers();
    let _ = osp::get();
    let _ = osp::is_active();
    let fut = std::pin::pin!(traced_async(i));
    let out = match std::future::Future::poll(
        fut,
        &mut std::task::Context::from_waker(std::task::Waker::noop()),
    ) {
        std::task::Poll::Ready(v) => v,
        std::task::Poll::Pending => unreachable!(),
    };
    traced(i, "abc").unwrap() + out
}

#[test]
fn hooks_allocate_nothing_without_a_trace_or_when_disabled() {
    let err = std::io::Error::other("x"); // made once: its own allocations are not the hooks'
    // Warm up thread-locals and lazies.
    osp::clean();
    hooks(0, &err);

    // 1. Enabled, but no trace active.
    let before = osprofiler_testkit::thread_allocations();
    let mut sum = 0;
    for i in 0..10_000 {
        sum += hooks(i, &err);
    }
    let no_trace = osprofiler_testkit::thread_allocations() - before;
    assert!(sum > 0);
    assert_eq!(no_trace, 0, "allocations with no active trace");

    // 2. A trace is active but profiling is switched off.
    osp::init("k", None, None).unwrap();
    osp::set_enabled(false);
    hooks(0, &err);
    let before = osprofiler_testkit::thread_allocations();
    for i in 0..10_000 {
        sum += hooks(i, &err);
    }
    let disabled = osprofiler_testkit::thread_allocations() - before;
    assert!(sum > 0);
    assert_eq!(disabled, 0, "allocations with profiling disabled");
    assert!(
        osp::init("k", None, None).is_none(),
        "init starts nothing while disabled"
    );

    // 3. Sanity: the counter does see allocations when tracing is on.
    osp::set_enabled(true);
    let before = osprofiler_testkit::thread_allocations();
    hooks(1, &err);
    assert!(
        osprofiler_testkit::thread_allocations() > before,
        "the counting allocator must observe traced work"
    );
    osp::clean();
    println!(
        "allocations over 10,000 iterations of every hook: no trace = {no_trace}, disabled = {disabled}"
    );
}
