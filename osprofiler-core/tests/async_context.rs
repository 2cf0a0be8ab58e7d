//! The context follows the future: across .await on a multi-thread runtime, in join!, into
//! spawned tasks only when asked, into spawn_blocking, and points stop on cancellation.
use osprofiler_core::{self as osp, Trace, TraceFutureExt};
use osprofiler_testkit::*;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trace_survives_await_across_worker_threads() {
    collector();
    let base = tokio::spawn(osp::trace_scope(async {
        let p = osp::init("k", None, None).unwrap();
        for _ in 0..50 {
            let _t = Trace::new("step", osp::Info::new);
            // Resumed by the timer, then by a yield: wherever the runtime polls it next. The
            // suspension is what is tested, not a wait (1 ms, the timer's resolution).
            tokio::time::sleep(Duration::from_millis(1)).await;
            tokio::task::yield_now().await;
            assert_eq!(
                osp::get().unwrap().base_id(),
                p.base_id(),
                "trace lost after await"
            );
        }
        base(&p)
    }))
    .await
    .unwrap();
    let msgs = messages_of(&base);
    assert_eq!(msgs.len(), 100);
    assert!(msgs.iter().all(|m| m["parent_id"] == base.as_str()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_futures_in_join_keep_their_own_parents() {
    collector();
    let base = osp::trace_scope(async {
        let p = osp::init("k", None, None).unwrap();
        let _root = Trace::new("root", osp::Info::new);
        async fn branch(name: &'static str) {
            let t = Trace::new_detached(name, osp::Info::new);
            t.scope(async move {
                for _ in 0..5 {
                    tokio::task::yield_now().await;
                    let _leaf = Trace::new(format!("{name}-leaf"), osp::Info::new);
                    tokio::task::yield_now().await;
                }
            })
            .await
        }
        tokio::join!(branch("a"), branch("b"));
        base(&p)
    })
    .await;
    let msgs = messages_of(&base);
    let id_of = |n: &str| one(&msgs, n)["trace_id"].as_str().unwrap().to_owned();
    let (root, a, b) = (id_of("root-start"), id_of("a-start"), id_of("b-start"));
    assert_eq!(one(&msgs, "a-start")["parent_id"], root.as_str());
    assert_eq!(one(&msgs, "b-start")["parent_id"], root.as_str());
    let leaves = |p: &str| {
        msgs.iter()
            .filter(|m| m["name"] == format!("{p}-leaf-start"))
            .map(|m| m["parent_id"].clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(leaves("a"), vec![serde_json::Value::from(a); 5]);
    assert_eq!(leaves("b"), vec![serde_json::Value::from(b); 5]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spawn_does_not_inherit_but_spawn_traced_and_blocking_do() {
    collector();
    let base = osp::trace_scope(async {
        let p = osp::init("k", None, None).unwrap();
        let _parent = Trace::new("parent", osp::Info::new);
        let plain = tokio::spawn(async { osp::get().is_some() }).await.unwrap();
        assert!(!plain, "tokio::spawn must not inherit");
        osp::spawn_traced(async {
            let _c = Trace::new("child-task", osp::Info::new);
            tokio::task::yield_now().await;
        })
        .await
        .unwrap();
        osp::spawn_blocking_traced(|| {
            let _c = Trace::new("blocking", osp::Info::new);
        })
        .await
        .unwrap();
        let fut = async { osp::get().map(|p| p.id().clone()) }.in_current_trace();
        let seen = tokio::spawn(fut).await.unwrap();
        assert_eq!(seen.as_ref(), osp::get().map(|p| p.id().clone()).as_ref());
        base(&p)
    })
    .await;
    assert!(osp::get().is_none(), "the scope kept the trace to itself");
    let msgs = messages_of(&base);
    let parent = one(&msgs, "parent-start")["trace_id"].clone();
    assert_eq!(one(&msgs, "child-task-start")["parent_id"], parent);
    assert_eq!(one(&msgs, "blocking-start")["parent_id"], parent);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_concurrent_tasks_do_not_cross_talk() {
    collector();
    let mut handles = Vec::new();
    for i in 0..100 {
        handles.push(tokio::spawn(osp::trace_scope(async move {
            let p = osp::init(
                "k",
                Some(&format!("task-{i}-{}", uuid::Uuid::new_v4())),
                None,
            )
            .unwrap();
            for _ in 0..3 {
                let _t = Trace::new("work", osp::Info::new);
                tokio::task::yield_now().await;
                let _inner = Trace::new("inner", osp::Info::new);
                // Resumed by the timer, interleaved with the 99 other tasks (not a wait).
                tokio::time::sleep(Duration::from_micros(100)).await;
            }
            base(&p)
        })));
    }
    for h in handles {
        let base = h.await.unwrap();
        let msgs = messages_of(&base);
        assert_eq!(msgs.len(), 12, "{base}");
        let works: Vec<&str> = msgs
            .iter()
            .filter(|m| m["name"] == "work-start")
            .map(|m| m["trace_id"].as_str().unwrap())
            .collect();
        for m in msgs.iter().filter(|m| m["name"] == "inner-start") {
            assert!(works.contains(&m["parent_id"].as_str().unwrap()));
        }
        assert!(
            msgs.iter()
                .filter(|m| m["name"] == "work-start")
                .all(|m| m["parent_id"] == base.as_str())
        );
    }
}

#[tokio::test]
async fn dropped_future_still_stops_its_point() {
    collector();
    let base = osp::trace_scope(async {
        let p = osp::init("k", None, None).unwrap();
        let slow = Trace::new_detached("slow", osp::Info::new).scope(std::future::pending::<()>());
        // Started (polled once, pending), then dropped.
        osprofiler_testkit::conformance::poll_once(slow).await;
        base(&p)
    })
    .await;
    let msgs = messages_of(&base);
    assert_eq!(
        one(&msgs, "slow-stop")["trace_id"],
        one(&msgs, "slow-start")["trace_id"]
    );
}
