//! A proptest over arbitrary header bytes: never a panic, never an error response, traced only
//! for valid signatures.
use axum::{Router, routing::get};
use osprofiler_core::headers::{TraceData, signed_pack};
use osprofiler_http::OsProfilerLayer;
use proptest::prelude::*;
use tower::ServiceExt;

fn app() -> Router {
    Router::new()
        .route(
            "/",
            get(|| async {
                if osprofiler_core::get().is_some() {
                    "traced"
                } else {
                    "untraced"
                }
            }),
        )
        .layer(OsProfilerLayer::new(["k1", "k2"]))
}

fn run(info: Option<Vec<u8>>, mac: Option<Vec<u8>>) -> (u16, String) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut req = http::Request::builder().uri("/");
        if let Some(i) = info.and_then(|i| http::HeaderValue::from_bytes(&i).ok()) {
            req = req.header("X-Trace-Info", i);
        }
        if let Some(m) = mac.and_then(|m| http::HeaderValue::from_bytes(&m).ok()) {
            req = req.header("X-Trace-HMAC", m);
        }
        let resp = app()
            .oneshot(req.body(axum::body::Body::empty()).unwrap())
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let body = axum::body::to_bytes(resp.into_body(), 1024).await.unwrap();
        (status, String::from_utf8_lossy(&body).into_owned())
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_headers_never_fail_the_request(info in proptest::collection::vec(any::<u8>(), 0..600),
                                                mac in proptest::collection::vec(any::<u8>(), 0..80)) {
        let (status, body) = run(Some(info), Some(mac));
        prop_assert_eq!(status, 200);
        prop_assert_eq!(body, "untraced");
    }

    #[test]
    fn arbitrary_ids_signed_with_a_known_key_are_traced(base in "\\PC{1,40}", parent in proptest::option::of("\\PC{0,40}"), key in 0usize..3) {
        let keys = ["k1", "k2", "unknown"];
        let h = signed_pack(&TraceData { base_id: base, parent_id: parent }, keys[key]);
        let (status, body) = run(Some(h.x_trace_info.into_bytes()), Some(h.x_trace_hmac.into_bytes()));
        prop_assert_eq!(status, 200);
        prop_assert_eq!(body, if key < 2 { "traced" } else { "untraced" });
    }

    #[test]
    fn a_valid_signature_on_mangled_data_is_untraced(flip in 0usize..100) {
        let h = signed_pack(&TraceData { base_id: "b".into(), parent_id: Some("p".into()) }, "k1");
        let mut info = h.x_trace_info.into_bytes();
        let i = flip % info.len();
        info[i] = if info[i] == b'A' { b'B' } else { b'A' };
        let (status, body) = run(Some(info), Some(h.x_trace_hmac.into_bytes()));
        prop_assert_eq!(status, 200);
        prop_assert_eq!(body, "untraced");
    }
}
