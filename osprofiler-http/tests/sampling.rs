//! The server layer's sampler: unsigned requests traced for a share, provisional traces
//! carried to callees by the client layer, kept by a callee's error or dropped.
use axum::{Router, body::Body, http::StatusCode, routing::get};
use osprofiler_core::dispatch::{Dispatch, DispatchFutureExt};
use osprofiler_core::memory::MemoryCollector;
use osprofiler_core::notifier::{QueueNotifier, QueueOptions, Reader, TraceState};
use osprofiler_core::sampling::Sampler;
use osprofiler_core::{self as osp};
use osprofiler_http::{OsProfilerLayer, TraceClientLayer};
use std::sync::Arc;
use std::time::Duration;
use tower::{Layer, ServiceExt};

const WINDOW: Duration = Duration::from_millis(400);

/// A store that stages, behind its queue, in a dispatch of the test's own.
fn store() -> (Arc<MemoryCollector>, Arc<QueueNotifier>, Dispatch) {
    let memory = MemoryCollector::new();
    let n = QueueNotifier::start(
        memory.clone(),
        QueueOptions {
            staging_window: WINDOW,
            keep_traces: true,
            ..QueueOptions::default()
        },
    )
    .unwrap();
    let d = Dispatch::new(n.clone()).enabled(true);
    (memory, n, d)
}

/// The callee: `/ok` answers, `/boom` fails.
fn callee() -> Router {
    Router::new()
        .route("/ok", get(|| async { "ok" }))
        .route(
            "/boom",
            get(|| async { (StatusCode::INTERNAL_SERVER_ERROR, "boom") }),
        )
        .layer(OsProfilerLayer::new(["key"]))
}

/// The edge: `/call/{path}` calls the callee's `/{path}` through the client layer and
/// answers with its trace's base id (empty when untraced).
fn edge(sampler: Sampler) -> Router {
    let handler = |axum::extract::Path(path): axum::extract::Path<String>| async move {
        let client = TraceClientLayer::new().layer(callee());
        let req = http::Request::get(format!("/{path}"))
            .body(Body::empty())
            .unwrap();
        let status = client.oneshot(req).await.unwrap().status();
        let base = osp::get().map(|p| p.base_id().to_string());
        (status, base.unwrap_or_default())
    };
    Router::new()
        .route("/call/{path}", get(handler))
        .layer(OsProfilerLayer::new(["key"]).sampler(sampler))
}

async fn request(app: Router, d: &Dispatch, path: &str) -> (StatusCode, String) {
    let req = http::Request::get(path).body(Body::empty()).unwrap();
    let resp = app.oneshot(req).with_dispatch(d.clone()).await.unwrap();
    let status = resp.status();
    let body = axum::body::to_bytes(resp.into_body(), 1 << 16)
        .await
        .unwrap();
    (status, String::from_utf8(body.to_vec()).unwrap())
}

fn names(memory: &MemoryCollector, base: &str) -> Vec<String> {
    let mut n: Vec<String> = memory
        .trace(base)
        .iter()
        .map(|m| m["name"].as_str().unwrap().to_owned())
        .collect();
    n.sort();
    n
}

#[tokio::test]
async fn unsigned_requests_are_traced_for_the_samplers_share() {
    let (memory, n, d) = store();
    let (status, base) = request(edge(Sampler::new().ratio(1.0)), &d, "/call/ok").await;
    assert_eq!(status, StatusCode::OK);
    assert!(!base.is_empty(), "traced");
    assert!(n.flush_for(Duration::from_secs(5)));
    // Head-sampled: stored at once, the callee's points too.
    assert_eq!(memory.trace_state(&base).unwrap(), TraceState::Stored);
    assert_eq!(
        names(&memory, &base),
        [
            "http-start",
            "http-stop",
            "wsgi-start",
            "wsgi-start",
            "wsgi-stop",
            "wsgi-stop"
        ]
    );
    let (_, untraced) = request(edge(Sampler::new()), &d, "/call/ok").await;
    assert!(untraced.is_empty(), "no sampler: as Python OSProfiler");
}

#[tokio::test]
async fn a_callees_error_keeps_a_provisional_trace_and_a_quiet_one_goes() {
    let (memory, n, d) = store();
    let sampler = Sampler::new().keep_slow(Duration::from_secs(10));
    let (status, failed) = request(edge(sampler.clone()), &d, "/call/boom").await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    let (status, quiet) = request(edge(sampler), &d, "/call/ok").await;
    assert_eq!(status, StatusCode::OK);
    assert!(n.flush_for(Duration::from_secs(5)));
    // Both were recorded across the hop (the callee saw X-Trace-Provisional) ...
    for base in [&failed, &quiet] {
        assert_eq!(names(&memory, base).len(), 6, "{base}");
    }
    // ... the failed one is kept, the other hidden, then removed after the window.
    assert_eq!(memory.trace_state(&failed).unwrap(), TraceState::Stored);
    assert_eq!(memory.trace_state(&quiet).unwrap(), TraceState::Pending);
    let listed: Vec<String> = memory
        .list_traces()
        .unwrap()
        .into_iter()
        .map(|t| t.base_id)
        .collect();
    assert_eq!(listed, std::slice::from_ref(&failed));
    let p = n.stats().provisional;
    assert_eq!((p.started, p.kept, p.dropped), (2, 1, 1));
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !memory.trace(&quiet).is_empty() {
        assert!(std::time::Instant::now() < deadline, "not swept");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(names(&memory, &failed).len(), 6, "the kept one stays");
}

#[tokio::test]
async fn signed_requests_are_traced_as_always_whatever_the_sampler() {
    let (memory, n, d) = store();
    let h = osp::headers::signed_pack(
        &osp::headers::TraceData {
            base_id: "signed-trace".into(),
            parent_id: Some("caller".into()),
        },
        "key",
    );
    let app = edge(Sampler::new().keep_slow(Duration::from_secs(10)));
    let req = http::Request::get("/call/ok")
        .header("X-Trace-Info", h.x_trace_info)
        .header("X-Trace-HMAC", h.x_trace_hmac)
        .body(Body::empty())
        .unwrap();
    let resp = app.oneshot(req).with_dispatch(d.clone()).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(n.flush_for(Duration::from_secs(5)));
    assert_eq!(
        memory.trace_state("signed-trace").unwrap(),
        TraceState::Stored
    );
    assert_eq!(names(&memory, "signed-trace").len(), 6);
    assert_eq!(n.stats().provisional.started, 0);
}
