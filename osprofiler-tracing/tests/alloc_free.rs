//! Outside a trace the layer adds no allocation and no point (counting allocator, counted on
//! the test's thread; one test in this file).

use osprofiler_testkit::{Counting, thread_allocations as allocations};
use tracing::Dispatch;
use tracing_subscriber::prelude::*;

#[global_allocator]
static A: Counting = Counting;

fn spans(dispatch: &Dispatch, n: usize) -> usize {
    tracing::dispatcher::with_default(dispatch, || {
        let before = allocations();
        for i in 0..n {
            let span = tracing::info_span!("work", i, name = "x");
            let _e = span.enter();
            tracing::info!("inside");
            tracing::error!("an error outside a trace");
        }
        allocations() - before
    })
}

#[test]
fn no_allocation_and_no_point_outside_a_trace() {
    let c = osprofiler_testkit::collector();
    let bare = Dispatch::new(tracing_subscriber::registry());
    let layered = Dispatch::new(tracing_subscriber::registry().with(osprofiler_tracing::layer()));
    // Warm up: slab pages, thread-locals.
    spans(&bare, 100);
    spans(&layered, 100);
    // Alternate, and compare the fewest of each: the registry's own allocations (slab pages,
    // thread-local pools) come and go between rounds.
    let (mut b, mut l) = (usize::MAX, usize::MAX);
    for _ in 0..5 {
        b = b.min(spans(&bare, 1000));
        l = l.min(spans(&layered, 1000));
    }
    println!("allocations for 1,000 spans: registry {b}, registry + osprofiler layer {l}");
    assert!(
        l <= b,
        "the layer allocates nothing outside a trace: {l} > {b}"
    );
    assert!(c.notifier.flush_for(std::time::Duration::from_secs(5)));
    assert!(c.memory.messages().is_empty(), "no point outside a trace");

    // And the same spans inside a trace do become points (the test above would pass for a
    // layer that never does anything).
    tracing::dispatcher::with_default(&layered, || {
        let p = osprofiler_core::init("k", None, None).unwrap();
        drop(tracing::info_span!("work").entered());
        osprofiler_core::clean();
        assert_eq!(
            osprofiler_testkit::messages_of(&p.base_id().to_string()).len(),
            2
        );
    });
}
