//! The OTLP collector against an in-process OTLP/HTTP receiver: the request is decoded with
//! the OpenTelemetry protobuf types and checked span by span (ids, parents, names, error
//! status); stops pair with their starts by id across batches and interleavings; a failed
//! export loses nothing and sends nothing twice. And against a real back end: Jaeger
//! (127.0.0.1:4318 and :16686, which `scripts/test` builds and starts) gives back the trace as
//! it was sent.

use axum::Router;
use axum::body::Bytes;
use axum::http::StatusCode;
use axum::routing::post;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as Any;
use opentelemetry_proto::tonic::trace::v1::Span;
use osprofiler_collectors::OtlpDriver;
use osprofiler_core::notifier::Writer;
use osprofiler_core::{self as osp, Trace, message::Message};
use osprofiler_testkit::captured_trace;
use prost::Message as _;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

#[derive(Clone, Default)]
struct Receiver {
    requests: Arc<Mutex<Vec<ExportTraceServiceRequest>>>,
    fail_next: Arc<AtomicUsize>,
}

impl Receiver {
    fn spans(&self) -> Vec<(String, Span)> {
        let mut out = Vec::new();
        for r in self.requests.lock().unwrap().iter() {
            for rs in &r.resource_spans {
                let service = rs.resource.as_ref().unwrap().attributes[0]
                    .value
                    .as_ref()
                    .and_then(|v| match &v.value {
                        Some(Any::StringValue(s)) => Some(s.clone()),
                        _ => None,
                    })
                    .unwrap();
                for ss in &rs.scope_spans {
                    out.extend(ss.spans.iter().map(|s| (service.clone(), s.clone())));
                }
            }
        }
        out
    }
}

async fn receiver() -> (String, Receiver) {
    let r = Receiver::default();
    let state = r.clone();
    let app = Router::new().route(
        "/v1/traces",
        post(move |body: Bytes| {
            let state = state.clone();
            async move {
                if state
                    .fail_next
                    .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                    .is_ok()
                {
                    return StatusCode::SERVICE_UNAVAILABLE;
                }
                let req = ExportTraceServiceRequest::decode(body).expect("a protobuf OTLP request");
                state.requests.lock().unwrap().push(req);
                StatusCode::OK
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("otlp://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, r)
}

fn low64(id: &str) -> Vec<u8> {
    uuid::Uuid::parse_str(id).unwrap().as_bytes()[8..].to_vec()
}

fn attr(span: &Span, key: &str) -> Option<Any> {
    span.attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.clone()?.value)
}

fn starts(msgs: &[Message]) -> Vec<&Message> {
    msgs.iter()
        .filter(|m| m.name().ends_with("-start"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_carry_the_reference_ids_names_and_errors() {
    let (url, rx) = receiver().await;
    let (base, msgs) = captured_trace(|| {
        let _wsgi = Trace::new(
            "wsgi",
            || osp::info!({"request": {"path": "/v2/servers", "method": "GET", "query": "", "scheme": "http"}}),
        );
        drop(Trace::new(
            "db",
            || osp::info!({"db": {"statement": "select * from instances", "system": "postgresql"}}),
        ));
        drop(Trace::new(
            "http",
            || osp::info!({"requests": {"method": "GET", "hostname": "glance", "port": 9292, "path": "/v2/images", "query": "", "scheme": "http"}}),
        ));
        let mut bad = Trace::new("db", || osp::info!({"db": {"statement": "SELEC 1"}}));
        bad.error_with("ProgrammingError", "syntax error at or near \"SELEC\"");
    });
    let d = OtlpDriver::open(&url).unwrap();
    d.notify(&msgs).unwrap();

    let spans = rx.spans();
    assert_eq!(spans.len(), 4);
    let trace_bytes = uuid::Uuid::parse_str(&base).unwrap().as_bytes().to_vec();
    for (service, s) in &spans {
        assert_eq!(service, "proj-svc");
        assert_eq!(s.trace_id, trace_bytes);
    }
    // Spans come in stop order: find each by its id.
    let started = starts(&msgs);
    let by_id = |m: &Message| {
        spans
            .iter()
            .map(|(_, s)| s)
            .find(|s| s.span_id == low64(&m.trace_id().to_text()))
            .unwrap_or_else(|| panic!("no span for {}", m.name()))
            .clone()
    };
    let (wsgi, db, http, bad) = (
        by_id(started[0]),
        by_id(started[1]),
        by_id(started[2]),
        by_id(started[3]),
    );
    assert!(
        wsgi.parent_span_id.is_empty(),
        "the root has no parent span"
    );
    for child in [&db, &http, &bad] {
        assert_eq!(child.parent_span_id, wsgi.span_id);
    }
    assert_eq!(wsgi.name, "WSGI_GET_/v2/servers");
    assert_eq!(db.name, "SQL_SELECT");
    assert_eq!(http.name, "REQUESTS_GET_glance");
    assert_eq!(bad.name, "SQL_SELEC");
    assert_eq!(
        attr(&db, "db.query.text"),
        Some(Any::StringValue("select * from instances".into()))
    );
    assert_eq!(
        attr(&db, "db.system.name"),
        Some(Any::StringValue("postgresql".into()))
    );
    assert_eq!(
        attr(&db, "db.operation.name"),
        Some(Any::StringValue("SELECT".into()))
    );
    assert_eq!(
        attr(&bad, "error.type"),
        Some(Any::StringValue("ProgrammingError".into()))
    );
    assert_eq!(attr(&http, "http.port"), Some(Any::IntValue(9292)));
    assert!(db.end_time_unix_nano >= db.start_time_unix_nano && db.start_time_unix_nano > 0);
    assert!(wsgi.start_time_unix_nano <= db.start_time_unix_nano);

    let status = bad.status.as_ref().expect("error status");
    assert_eq!(status.code, 2, "STATUS_CODE_ERROR");
    assert_eq!(attr(&bad, "error"), Some(Any::BoolValue(true)));
    let ev = &bad.events[0];
    assert_eq!(ev.name, "log");
    assert_eq!(
        ev.attributes
            .iter()
            .map(|kv| kv.key.as_str())
            .collect::<Vec<_>>(),
        ["error.kind", "message"]
    );
    assert!(db.status.is_none() && db.events.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overlapping_points_pair_by_id_across_batches() {
    let (url, rx) = receiver().await;
    let (_, msgs) = captured_trace(|| {
        drop(Trace::new(
            "db",
            || osp::info!({"db": {"statement": "SELECT 1"}}),
        ));
        drop(Trace::new(
            "db",
            || osp::info!({"db": {"statement": "UPDATE t"}}),
        ));
    });
    let [a_start, a_stop, b_start, b_stop] = <[Message; 4]>::try_from(msgs).ok().unwrap();
    let d = OtlpDriver::open(&url).unwrap();
    // Both start, then both stop in start order: a stack would give A's stop to B's start.
    d.notify(&[a_start.clone(), b_start.clone()]).unwrap();
    assert!(rx.spans().is_empty(), "nothing is exported before a stop");
    d.notify(&[a_stop, b_stop]).unwrap();
    let spans = rx.spans();
    assert_eq!(spans.len(), 2);
    for (start, name) in [(&a_start, "SQL_SELECT"), (&b_start, "SQL_UPDATE")] {
        let s = spans
            .iter()
            .map(|(_, s)| s)
            .find(|s| s.span_id == low64(&start.trace_id().to_text()))
            .unwrap();
        assert_eq!(s.name, name);
        assert_eq!(
            s.start_time_unix_nano,
            start.timestamp_micros() as u64 * 1000
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_export_is_retried_without_loss_or_duplicates() {
    let (url, rx) = receiver().await;
    let (_, msgs) = captured_trace(|| {
        let _outer = Trace::new(
            "wsgi",
            || osp::info!({"request": {"path": "/", "method": "GET", "query": "", "scheme": "http"}}),
        );
        drop(Trace::new(
            "db",
            || osp::info!({"db": {"statement": "SELECT 1"}}),
        ));
    });
    let d = OtlpDriver::open(&url).unwrap();
    // wsgi start alone; then the rest, whose first export fails.
    d.notify(&msgs[..1]).unwrap();
    rx.fail_next.store(1, Ordering::SeqCst);
    assert!(d.notify(&msgs[1..]).is_err());
    assert!(rx.spans().is_empty());
    d.notify(&msgs[1..]).unwrap(); // what the notifier does: the same batch again
    let spans = rx.spans();
    let mut names: Vec<&str> = spans.iter().map(|(_, s)| s.name.as_str()).collect();
    names.sort();
    assert_eq!(names, ["SQL_SELECT", "WSGI_GET_/"]);
}

#[test]
fn reading_back_points_to_the_tracing_back_end() {
    // An export-only collector has no reader: opening one says where to read instead.
    let conf = osprofiler_core::ProfilerConfig::default();
    let e = osprofiler_collectors::open_reader("otlp://127.0.0.1:4318", &conf)
        .map(drop)
        .unwrap_err()
        .to_string();
    assert!(e.contains("Jaeger"), "{e}");
}

/// An OTLP/HTTPS receiver with a self-signed certificate for `localhost` that wants
/// `authorization: Bearer t0k`: a minimal HTTP/1.1 server over rustls. Returns its port, the
/// certificate's PEM file, and what it received.
async fn https_receiver() -> (
    u16,
    std::path::PathBuf,
    Arc<Mutex<Vec<ExportTraceServiceRequest>>>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let pem_path = std::env::temp_dir().join(format!("osp-otlp-ca-{}.pem", uuid::Uuid::new_v4()));
    std::fs::write(&pem_path, cert.cert.pem()).unwrap();
    // The test server's TLS: *ring*, as the client's default (deprecated in rustls 0.23.48
    // for lacking post-quantum key exchange; fine for a loopback test).
    #[allow(deprecated)]
    let ring = rustls::crypto::ring::default_provider();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(ring))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.cert.der().clone()],
            rustls::pki_types::PrivateKeyDer::Pkcs8(cert.key_pair.serialize_der().into()),
        )
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let received: Arc<Mutex<Vec<ExportTraceServiceRequest>>> = Arc::default();
    let store = received.clone();
    tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            let (acceptor, store) = (acceptor.clone(), store.clone());
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut buf = Vec::new();
                loop {
                    // One request: headers, then Content-Length bytes of body.
                    let head_end = loop {
                        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            break i + 4;
                        }
                        let mut chunk = [0u8; 4096];
                        match tls.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    };
                    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
                    let len: usize = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:"))
                        .map_or(0, |v| v.trim().parse().unwrap());
                    while buf.len() < head_end + len {
                        let mut chunk = [0u8; 4096];
                        match tls.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    let body: Vec<u8> = buf.drain(..head_end + len).skip(head_end).collect();
                    let status = if head.contains("\r\nauthorization: bearer t0k\r\n") {
                        store
                            .lock()
                            .unwrap()
                            .push(ExportTraceServiceRequest::decode(&body[..]).unwrap());
                        "200 OK"
                    } else {
                        "401 Unauthorized"
                    };
                    let resp = format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\n\r\n");
                    if tls.write_all(resp.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (port, pem_path, received)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exports_over_https_with_a_private_ca_and_auth_headers() {
    let (port, ca, received) = https_receiver().await;
    let (_, msgs) = captured_trace(|| {
        drop(Trace::new(
            "db",
            || osp::info!({"db": {"statement": "SELECT 1"}}),
        ));
    });
    let cs = |token: &str| {
        format!(
            "otlp+https://localhost:{port}?headers=authorization%3DBearer%2520{token}&certificate={}",
            ca.display()
        )
    };
    let d = OtlpDriver::open(&cs("t0k")).unwrap();
    assert_eq!(d.endpoint(), format!("https://localhost:{port}/v1/traces"));
    let rt_msgs = msgs.clone();
    tokio::task::spawn_blocking(move || d.notify(&rt_msgs))
        .await
        .unwrap()
        .unwrap();
    let names: Vec<String> = received
        .lock()
        .unwrap()
        .iter()
        .flat_map(|r| &r.resource_spans)
        .flat_map(|rs| &rs.scope_spans)
        .flat_map(|ss| &ss.spans)
        .map(|s| s.name.clone())
        .collect();
    assert_eq!(names, ["SQL_SELECT"]);

    // A wrong token: the receiver refuses the spans themselves (401), which retrying would
    // not change.
    let d = OtlpDriver::open(&cs("wrong")).unwrap();
    let e = tokio::task::spawn_blocking(move || d.notify(&msgs))
        .await
        .unwrap()
        .unwrap_err();
    assert!(e.is_rejected() && e.to_string().contains("401"), "{e}");

    // Without the CA the certificate is not trusted: an error, retried later.
    let untrusting = OtlpDriver::open(&format!("otlp+https://localhost:{port}")).unwrap();
    let (_, more) = captured_trace(|| Trace::new("db", osp::Info::new).finish());
    let e = tokio::task::spawn_blocking(move || untrusting.notify(&more))
        .await
        .unwrap()
        .unwrap_err();
    assert!(!e.is_rejected(), "{e}");
    let _ = std::fs::remove_file(ca);
}

const JAEGER: &str = "Jaeger (OTLP on 127.0.0.1:4318, query API on 127.0.0.1:16686; scripts/test builds and starts it)";

/// Jaeger's tag `key` of a span of its query API, as JSON.
fn tag<'a>(span: &'a serde_json::Value, key: &str) -> Option<&'a serde_json::Value> {
    span["tags"]
        .as_array()?
        .iter()
        .find(|t| t["key"] == key)
        .map(|t| &t["value"])
}

/// A trace exported to a real Jaeger comes back from its query API as it was sent: every point
/// a span, with its parent, its start and its duration to the microsecond, the database
/// attributes of OpenTelemetry's conventions, and the error point marked.
#[test]
fn jaeger_gives_back_the_trace_as_sent() {
    use serde_json::json;
    let (base, msgs) = captured_trace(|| {
        let _wsgi = Trace::new(
            "wsgi",
            || osp::info!({"request": {"path": "/v2/servers", "method": "GET", "query": "", "scheme": "http"}}),
        );
        {
            let _rpc = Trace::new("rpc", || osp::info!({"function": {"name": "compute.get"}}));
            let mut db = Trace::new("db", || {
                osp::info!({"db": {"api": "query", "system": "postgresql", "namespace": "nova",
                    "server": "db1.example:5432", "statement": "SELECT * FROM instances WHERE id = $1"}})
            });
            // A point that lasts: its duration must come back to the microsecond.
            std::thread::sleep(std::time::Duration::from_millis(3));
            db.stop_info(|i| {
                i.insert("db".into(), json!({"rows": 3}));
            });
        }
        let mut bad = Trace::new(
            "db",
            || osp::info!({"db": {"api": "query", "system": "postgresql", "statement": "SELEC 1"}}),
        );
        bad.error_with("ProgrammingError", "syntax error at or near \"SELEC\"");
        bad.stop_info(|i| {
            i.insert("db".into(), json!({"sqlstate": "42601"}));
        });
    });
    OtlpDriver::open("otlp://127.0.0.1:4318")
        .unwrap()
        .notify(&msgs)
        .unwrap_or_else(|e| panic!("{JAEGER}: {e}"));

    let hex = uuid::Uuid::parse_str(&base).unwrap().simple().to_string();
    let url = format!("http://127.0.0.1:16686/api/traces/{hex}");
    // Jaeger stores what it receives a moment later, and tells nobody: ask until it has it.
    let mut got = serde_json::Value::Null;
    let stored = osprofiler_testkit::poll_until(std::time::Duration::from_secs(30), || {
        got = osprofiler_testkit::curl_json(JAEGER, "GET", &url, None);
        got["data"][0]["spans"].as_array().map_or(0, Vec::len) >= 4
    });
    assert!(stored, "{JAEGER}: the trace's 4 spans within 30 s: {got}");
    let trace = got["data"][0].clone();
    let spans = trace["spans"].as_array().unwrap();
    assert_eq!(spans.len(), 4, "{trace:#}");
    let span_of = |m: &Message| {
        let id = hex_of(&low64(&m.trace_id().to_text()));
        spans
            .iter()
            .find(|s| s["spanID"] == id.as_str())
            .unwrap_or_else(|| panic!("no span {id} for {}: {trace:#}", m.name()))
    };
    let started = starts(&msgs);
    let stop_of = |start: &Message| {
        msgs.iter()
            .find(|m| m.trace_id() == start.trace_id() && m.name().ends_with("-stop"))
            .unwrap()
    };
    let parent_of = |span: &serde_json::Value| {
        span["references"]
            .as_array()
            .and_then(|r| r.iter().find(|r| r["refType"] == "CHILD_OF"))
            .map(|r| r["spanID"].as_str().unwrap().to_owned())
    };
    for start in &started {
        let span = span_of(start);
        assert_eq!(span["traceID"], hex.as_str());
        assert_eq!(
            span["startTime"].as_i64(),
            Some(start.timestamp_micros()),
            "{}",
            start.name()
        );
        assert_eq!(
            span["duration"].as_i64(),
            Some(stop_of(start).timestamp_micros() - start.timestamp_micros()),
            "{}",
            start.name()
        );
        let want_parent = (start.parent_id() != start.base_id())
            .then(|| hex_of(&low64(&start.parent_id().to_text())));
        assert_eq!(parent_of(span), want_parent, "{}: {span:#}", start.name());
        let process = &trace["processes"][span["processID"].as_str().unwrap()];
        assert_eq!(process["serviceName"], "proj-svc");
    }
    let (wsgi, rpc, db, bad) = (
        span_of(started[0]),
        span_of(started[1]),
        span_of(started[2]),
        span_of(started[3]),
    );
    assert_eq!(wsgi["operationName"], "WSGI_GET_/v2/servers");
    assert_eq!(rpc["operationName"], "rpc");
    assert_eq!(db["operationName"], "SQL_SELECT");
    assert!(db["duration"].as_i64().unwrap() >= 3000, "{db:#}");
    for (key, want) in [
        ("db.system.name", json!("postgresql")),
        ("db.namespace", json!("nova")),
        (
            "db.query.text",
            json!("SELECT * FROM instances WHERE id = $1"),
        ),
        ("db.operation.name", json!("SELECT")),
        ("server.address", json!("db1.example")),
        ("server.port", json!(5432)),
        ("db.response.returned_rows", json!(3)),
        ("span.kind", json!("client")),
    ] {
        assert_eq!(tag(db, key), Some(&want), "{key}: {db:#}");
    }
    assert_eq!(tag(db, "error"), None, "{db:#}");
    for (key, want) in [
        ("error", json!(true)),
        ("error.type", json!("ProgrammingError")),
        ("db.response.status_code", json!("42601")),
        ("otel.status_code", json!("ERROR")),
    ] {
        assert_eq!(tag(bad, key), Some(&want), "{key}: {bad:#}");
    }
    let log = &bad["logs"][0]["fields"];
    assert!(
        log.as_array()
            .unwrap()
            .iter()
            .any(|f| f["key"] == "error.kind" && f["value"] == "ProgrammingError"),
        "{bad:#}"
    );
}

fn hex_of(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
