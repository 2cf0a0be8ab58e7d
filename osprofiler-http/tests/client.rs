//! The tower client layer: headers and an http point only inside a trace.
use osprofiler_core::{self as osp, headers::signed_unpack};
use osprofiler_http::TraceClientLayer;
use osprofiler_testkit::*;
use std::sync::{Arc, Mutex};
use tower::{Layer, Service, ServiceExt, service_fn};

type Seen = Arc<Mutex<Option<http::HeaderMap>>>;

/// A fake transport that records the request headers and answers `status` (or fails).
fn transport(
    seen: Seen,
    status: Option<u16>,
) -> impl Service<
    http::Request<()>,
    Response = http::Response<()>,
    Error = std::io::Error,
    Future = impl std::future::Future<Output = Result<http::Response<()>, std::io::Error>>,
> + Clone {
    service_fn(move |req: http::Request<()>| {
        let seen = seen.clone();
        async move {
            *seen.lock().unwrap() = Some(req.headers().clone());
            match status {
                Some(s) => Ok(http::Response::builder().status(s).body(()).unwrap()),
                None => Err(std::io::Error::other("connection reset by peer")),
            }
        }
    })
}

fn request() -> http::Request<()> {
    http::Request::get("https://api.example.test:8443/v2/servers?limit=5")
        .body(())
        .unwrap()
}

#[tokio::test]
async fn no_trace_means_the_request_goes_out_untouched() {
    collector();
    let seen = Seen::default();
    let resp = TraceClientLayer::new()
        .layer(transport(seen.clone(), Some(204)))
        .oneshot(request())
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    assert!(seen.lock().unwrap().as_ref().unwrap().is_empty());
}

#[tokio::test]
async fn traced_request_carries_signed_headers_and_records_a_point() {
    collector();
    let seen = Seen::default();
    let base: String = osp::trace_scope(async {
        let p = osp::init("key", None, None).unwrap();
        let mut svc = TraceClientLayer::new()
            .traceparent(true)
            .layer(transport(seen.clone(), Some(201)));
        let r = svc.ready().await.unwrap().call(request()).await.unwrap();
        assert_eq!(r.status(), 201);
        p.base_id().to_string()
    })
    .await;
    let headers = seen.lock().unwrap().clone().unwrap();
    let v = signed_unpack(
        headers["x-trace-info"].to_str().unwrap(),
        headers["x-trace-hmac"].to_str().unwrap(),
        &["key"],
    )
    .unwrap();
    let msgs = messages_of(&base);
    let start = one(&msgs, "https-start");
    assert_eq!(v.base_id, base.as_str());
    assert_eq!(
        v.parent_id.map(|p| p.to_string()).as_deref(),
        start["trace_id"].as_str(),
        "the callee's parent is the client point"
    );
    assert_eq!(
        start["info"]["requests"],
        serde_json::json!({"method": "GET", "query": "limit=5", "path": "/v2/servers", "hostname": "api.example.test", "port": 8443, "scheme": "https"})
    );
    assert_eq!(
        one(&msgs, "https-stop")["info"]["requests"],
        serde_json::json!({"status_code": 201}),
        "stop: the status only"
    );
    let tp = headers["traceparent"].to_str().unwrap();
    let point = osp::id::Id::from(start["trace_id"].as_str().unwrap());
    assert_eq!(
        Some(tp.to_owned()),
        osprofiler_http::w3c::traceparent(&osp::id::Id::from(base.as_str()), &point)
    );
}

#[tokio::test]
async fn transport_error_stops_the_point_with_it() {
    collector();
    let seen = Seen::default();
    let base = osp::trace_scope(async {
        let p = osp::init("key", None, None).unwrap();
        let err = TraceClientLayer::new()
            .layer(transport(seen.clone(), None))
            .oneshot(request())
            .await
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "connection reset by peer",
            "the caller gets the error unchanged"
        );
        p.base_id().to_string()
    })
    .await;
    let msgs = messages_of(&base);
    let stop = one(&msgs, "https-stop");
    assert_eq!(stop["info"]["etype"], "std::io::error::Error");
    assert_eq!(stop["info"]["message"], "connection reset by peer");
}
