//! One global subscriber, a multi-thread runtime: instrumented futures moved between worker
//! threads and into `tokio::spawn` keep their parents, under concurrency.

use osprofiler_core::{self as osp, Info, Trace};
use osprofiler_testkit::{messages_of, traced_run};
use tracing::{Instrument, info_span, instrument};
use tracing_subscriber::prelude::*;

#[instrument(fields(osprofiler.point = "rpc"))]
async fn call(i: u32) {
    for _ in 0..3 {
        tokio::task::yield_now().await;
        let _db = Trace::new("db", || osp::info!({"i": i}));
        // Resumed by the timer, wherever the runtime polls it (the move is tested; no wait).
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_instrumented_tasks_keep_their_parents() {
    osprofiler_testkit::collector();
    tracing_subscriber::registry()
        .with(osprofiler_tracing::layer())
        .init();

    let msgs = traced_run(async {
        let handles: Vec<_> = (0..50)
            .map(|i| {
                let span = info_span!("job", i);
                osp::spawn_traced(async move {
                    tokio::spawn(call(i).instrument(span)).await.unwrap();
                })
            })
            .collect();
        for h in handles {
            h.await.unwrap();
        }
    })
    .await;
    let starts = |name: &str| -> Vec<&serde_json::Value> {
        msgs.iter().filter(|m| m["name"] == name).collect()
    };
    let (jobs, rpcs, dbs) = (
        starts("span-start"),
        starts("rpc-start"),
        starts("db-start"),
    );
    assert_eq!((jobs.len(), rpcs.len(), dbs.len()), (50, 50, 150));
    let mut misparented = 0;
    for rpc in &rpcs {
        let i = &rpc["info"]["fields"]["i"];
        let job = jobs
            .iter()
            .find(|j| j["trace_id"] == rpc["parent_id"])
            .expect("every rpc point is a child of a job span");
        misparented += usize::from(&job["info"]["fields"]["i"] != i);
        misparented += dbs
            .iter()
            .filter(|d| d["parent_id"] == rpc["trace_id"] && &d["info"]["i"] != i)
            .count();
        let mine = dbs
            .iter()
            .filter(|d| d["parent_id"] == rpc["trace_id"])
            .count();
        assert_eq!(mine, 3, "three db points under each rpc");
    }
    assert_eq!(misparented, 0);
    // After the tasks, no span's point is left current anywhere we can see.
    assert!(osp::get().is_none());
    let _ = (Info::new(), messages_of);
}
