//! The server layer: traced only for verified headers, never an error because of them.
use axum::{Router, http::StatusCode, routing::get};
use osprofiler_core::headers::{TraceData, Verified, signed_pack};
use osprofiler_core::{self as osp};
use osprofiler_http::OsProfilerLayer;
use osprofiler_testkit::*;
use tower::ServiceExt;

/// What the handler saw: the trace (base, id, key) and the verified extension.
async fn whoami(ext: Option<axum::Extension<Verified>>) -> String {
    let p = osp::get();
    serde_json::json!({
        "base": p.as_ref().map(|p| p.base_id().to_string()),
        "parent": p.as_ref().map(|p| p.parent_id().to_string()),
        "key": p.as_ref().map(|p| p.hmac_key().to_owned()),
        "verified": ext.map(|e| e.0.base_id.to_string()),
        "onward": osp::trace_headers().map(|h| h.x_trace_info),
    })
    .to_string()
}

fn app(layer: OsProfilerLayer) -> Router {
    Router::new()
        .route("/who", get(whoami))
        .route(
            "/boom",
            get(|| async { (StatusCode::INTERNAL_SERVER_ERROR, "boom") }),
        )
        .layer(layer)
}

async fn call(
    app: Router,
    path: &str,
    headers: &[(&str, &[u8])],
) -> (StatusCode, serde_json::Value) {
    let mut req = http::Request::builder().uri(path);
    for (k, v) in headers {
        req = req.header(*k, http::HeaderValue::from_bytes(v).unwrap());
    }
    let resp = app
        .oneshot(req.body(axum::body::Body::empty()).unwrap())
        .await
        .unwrap();
    let status = resp.status();
    let body = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .unwrap();
    (
        status,
        serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null),
    )
}

fn signed(base: &str, parent: &str, key: &str) -> (String, String) {
    let h = signed_pack(
        &TraceData {
            base_id: base.into(),
            parent_id: Some(parent.into()),
        },
        key,
    );
    (h.x_trace_info, h.x_trace_hmac)
}

#[tokio::test]
async fn verified_request_runs_in_the_callers_trace_with_a_wsgi_point() {
    collector();
    let base = uuid::Uuid::new_v4().to_string();
    let (info, mac) = signed(&base, "caller-point", "old");
    let (status, seen) = call(
        app(OsProfilerLayer::new(["new", "old"])),
        "/who?x=1",
        &[
            ("X-Trace-Info", info.as_bytes()),
            ("X-Trace-HMAC", mac.as_bytes()),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(seen["base"], base.as_str());
    assert_eq!(
        seen["key"], "old",
        "the key that matched signs onward calls"
    );
    assert_eq!(
        seen["verified"],
        base.as_str(),
        "verified data in the request extensions"
    );
    let msgs = messages_of(&base);
    let start = one(&msgs, "wsgi-start");
    assert_eq!(start["parent_id"], "caller-point");
    assert_eq!(
        start["info"]["request"],
        serde_json::json!({"path": "/who", "query": "x=1", "method": "GET", "scheme": "http"})
    );
    assert_eq!(
        seen["parent"], start["parent_id"],
        "the handler runs inside the wsgi point"
    );
    let stop = one(&msgs, "wsgi-stop");
    assert_eq!(stop["info"]["response"]["status_code"], 200);
    assert!(stop["info"].get("etype").is_none());
    assert!(
        stop["info"].get("request").is_none(),
        "request info on start only"
    );
    // Onward headers carry the wsgi point as parent.
    let onward = seen["onward"].as_str().unwrap();
    let v = osp::headers::signed_unpack(
        onward,
        &osp::headers::generate_hmac(onward, "old"),
        &["old"],
    )
    .unwrap();
    assert_eq!(
        v.parent_id.map(|p| p.to_string()).as_deref(),
        start["trace_id"].as_str()
    );
}

#[tokio::test]
async fn server_errors_are_recorded() {
    collector();
    let base = uuid::Uuid::new_v4().to_string();
    let (info, mac) = signed(&base, "p", "k");
    let (status, _) = call(
        app(OsProfilerLayer::new(["k"])),
        "/boom",
        &[
            ("X-Trace-Info", info.as_bytes()),
            ("X-Trace-HMAC", mac.as_bytes()),
        ],
    )
    .await;
    assert_eq!(
        status,
        StatusCode::INTERNAL_SERVER_ERROR,
        "the response is the application's"
    );
    let msgs = messages_of(&base);
    let stop = one(&msgs, "wsgi-stop");
    assert_eq!(stop["info"]["etype"], "HTTPServerError");
    assert_eq!(stop["info"]["message"], "500 Internal Server Error");
    assert_eq!(stop["info"]["response"]["status_code"], 500);
}

#[tokio::test]
async fn anything_else_runs_untraced_and_succeeds() {
    collector();
    let base = uuid::Uuid::new_v4().to_string();
    let (info, mac) = signed(&base, "p", "other-key");
    let huge = vec![b'A'; 64 * 1024];
    let cases: Vec<Vec<(&str, &[u8])>> = vec![
        vec![],
        vec![("X-Trace-Info", info.as_bytes())],
        vec![
            ("X-Trace-Info", info.as_bytes()),
            ("X-Trace-HMAC", mac.as_bytes()),
        ], // wrong key
        vec![("X-Trace-Info", b"garbage"), ("X-Trace-HMAC", b"garbage")],
        vec![
            ("X-Trace-Info", &[0xff, 0xfe, 0x80]),
            ("X-Trace-HMAC", &[0xc3, 0x28]),
        ],
        vec![("X-Trace-Info", &huge), ("X-Trace-HMAC", mac.as_bytes())],
    ];
    for headers in cases {
        let (status, seen) = call(app(OsProfilerLayer::new(["k"])), "/who", &headers).await;
        assert_eq!(status, StatusCode::OK);
        assert!(
            seen["base"].is_null(),
            "untraced for {:?}",
            headers.iter().map(|h| h.0).collect::<Vec<_>>()
        );
    }
    assert!(messages_of(&base).is_empty());
}

#[tokio::test]
async fn a_disabled_layer_traces_nothing() {
    collector();
    let base = uuid::Uuid::new_v4().to_string();
    let (info, mac) = signed(&base, "p", "k");
    let (status, seen) = call(
        app(OsProfilerLayer::new(["k"]).enabled(false)),
        "/who",
        &[
            ("X-Trace-Info", info.as_bytes()),
            ("X-Trace-HMAC", mac.as_bytes()),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(seen["base"].is_null());
    assert!(messages_of(&base).is_empty());
}

#[tokio::test]
async fn traceparent_is_ignored_by_default_and_accepted_when_asked() {
    collector();
    let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let base = "4bf92f35-77b3-4da6-a3ce-929d0e0e4736";
    let (_, seen) = call(
        app(OsProfilerLayer::new(["k"])),
        "/who",
        &[("traceparent", tp.as_bytes())],
    )
    .await;
    assert!(
        seen["base"].is_null(),
        "off by default: traceparent is unsigned"
    );
    let layer = OsProfilerLayer::new(["first", "second"]).accept_traceparent(true);
    let (_, seen) = call(
        app(layer.clone()),
        "/who",
        &[("traceparent", tp.as_bytes())],
    )
    .await;
    assert_eq!(seen["base"], base);
    assert_eq!(
        seen["key"], "first",
        "onward calls are signed with the first key"
    );
    let msgs = messages_of(base);
    assert_eq!(
        one(&msgs, "wsgi-start")["parent_id"],
        "00000000-0000-0000-00f0-67aa0ba902b7"
    );
    // Invalid traceparent: untraced.
    let (_, seen) = call(app(layer), "/who", &[("traceparent", b"00-zz-yy-01")]).await;
    assert!(seen["base"].is_null());
}

/// The outgoing call a handler makes through the client layer (with `traceparent` on): the
/// `traceparent` it carried.
async fn forwarded() -> String {
    use tower::{Layer as _, Service as _};
    let mut client = osprofiler_http::TraceClientLayer::new()
        .traceparent(true)
        .layer(tower::service_fn(|req: http::Request<()>| async move {
            let tp = req
                .headers()
                .get("traceparent")
                .map(|v| v.to_str().unwrap().to_owned());
            Ok::<_, std::convert::Infallible>(http::Response::new(tp))
        }));
    let req = http::Request::get("http://downstream/").body(()).unwrap();
    let resp = client.call(req).await.unwrap();
    serde_json::json!({"traced": osp::get().is_some(), "traceparent": resp.into_body()}).to_string()
}

#[tokio::test]
async fn an_unsampled_traceparent_is_not_traced_and_goes_on_unsampled() {
    collector();
    let layer = OsProfilerLayer::new(["k"]).accept_traceparent(true);
    let app = Router::new().route("/fwd", get(forwarded)).layer(layer);
    let base = "4bf92f35-77b3-4da6-a3ce-929d0e0e4737";
    let unsampled = "00-4bf92f3577b34da6a3ce929d0e0e4737-00f067aa0ba902b7-00";
    let (_, seen) = call(
        app.clone(),
        "/fwd",
        &[("traceparent", unsampled.as_bytes())],
    )
    .await;
    assert_eq!(
        seen["traced"], false,
        "the caller does not record: neither do we"
    );
    assert_eq!(
        seen["traceparent"], unsampled,
        "its context goes on, still unsampled"
    );
    assert!(messages_of(base).is_empty());

    // Sampled: a trace, and the onward call names our point as its parent, sampled.
    let sampled = "00-4bf92f3577b34da6a3ce929d0e0e4737-00f067aa0ba902b7-01";
    let (_, seen) = call(app.clone(), "/fwd", &[("traceparent", sampled.as_bytes())]).await;
    assert_eq!(seen["traced"], true);
    let onward = seen["traceparent"].as_str().unwrap();
    assert!(onward.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4737-") && onward.ends_with("-01"));
    assert_ne!(onward, sampled, "the parent is our client point");

    // No traceparent at all: nothing is sent on.
    let (_, seen) = call(app, "/fwd", &[]).await;
    assert_eq!(seen["traceparent"], serde_json::Value::Null);
}
