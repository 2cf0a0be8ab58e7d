//! HTTP interop with Python OSProfiler 4.4.0, live: a Python client's headers start a Rust
//! trace, a Rust client's headers start a Python trace, key rotation both ways.
mod common;
use axum::{Router, routing::get};
use common::*;
use osprofiler_core as osp;
use osprofiler_http::{OsProfilerLayer, TraceMiddleware};
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

async fn rust_service(keys: &[&str]) -> String {
    let app = Router::new()
        .route(
            "/",
            get(|| async {
                osp::get()
                    .map(|p| p.base_id().to_string())
                    .unwrap_or_default()
            }),
        )
        .layer(OsProfilerLayer::new(keys.iter().copied()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    url
}

async fn python_client(url: &str, key: &str) -> Value {
    let out = tokio::process::Command::new(python())
        .arg(script("client.py"))
        .arg(url)
        .arg(key)
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "python client failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

struct PyServer {
    child: Child,
    url: String,
}

impl Drop for PyServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn python_server(keys: &str) -> PyServer {
    let mut child = Command::new(python())
        .arg(script("wsgi_server.py"))
        .arg(keys)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let port: u16 = line
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("python WSGI server did not start: {line:?}"));
    PyServer {
        child,
        url: format!("http://127.0.0.1:{port}/"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_client_starts_a_rust_trace_with_rotation() {
    collector();
    let url = rust_service(&["new", "old"]).await;
    for key in ["new", "old"] {
        let py = python_client(&url, key).await;
        let base = py["base_id"].as_str().unwrap();
        assert_eq!(
            py["body"], base,
            "the Rust handler ran in the Python trace ({key})"
        );
        let msgs = messages_of(base);
        let start = one(&msgs, "wsgi-start");
        assert_eq!(
            start["parent_id"], py["parent_id"],
            "parent = the Python caller's point"
        );
    }
    let py = python_client(&url, "wrong").await;
    assert_eq!(py["body"], "", "wrong key: untraced");
    assert!(messages_of(py["base_id"].as_str().unwrap()).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_client_starts_a_python_trace_with_rotation() {
    collector();
    let server = python_server("new,old");
    let client = reqwest_middleware::ClientBuilder::new(
        reqwest::Client::builder().no_proxy().build().unwrap(),
    )
    .with(TraceMiddleware::new())
    .build();
    for key in ["new", "old", "wrong"] {
        let (base, seen) = osp::trace_scope(async {
            let p = osp::init(key, None, None).unwrap();
            let body = client
                .get(&server.url)
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            (
                p.base_id().to_string(),
                serde_json::from_str::<Value>(&body).unwrap(),
            )
        })
        .await;
        if key == "wrong" {
            assert_eq!(seen["traced"], false, "wrong key: Python runs untraced");
            continue;
        }
        assert_eq!(seen["traced"], true, "{key}");
        assert_eq!(seen["base_id"], base.as_str());
        assert_eq!(
            seen["hmac_key"], key,
            "Python remembers the key that matched"
        );
        let msgs = messages_of(&base);
        assert_eq!(
            seen["parent_id"],
            one(&msgs, "http-start")["trace_id"],
            "Python's parent = the Rust http point"
        );
    }
}
