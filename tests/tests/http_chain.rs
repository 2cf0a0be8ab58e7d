//! Rust to Rust over real loopback HTTP: a chain of three axum services (A -> B -> C) with the
//! server layer and the reqwest middleware gives one tree with correct parents, also for 1,000
//! concurrent traced requests.
mod common;
use axum::{Router, extract::State, routing::get};
use common::*;
use osprofiler_core as osp;
use osprofiler_http::{OsProfilerLayer, TraceMiddleware};
use reqwest_middleware::{ClientBuilder, ClientWithMiddleware};
use serde_json::Value;
use std::collections::HashMap;

fn client() -> ClientWithMiddleware {
    let inner = reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(64)
        .build()
        .unwrap();
    ClientBuilder::new(inner)
        .with(TraceMiddleware::new())
        .build()
}

/// Serves a service that calls `next` (if any) and answers with what it saw.
async fn spawn_service(name: &'static str, next: Option<String>) -> String {
    async fn handler(
        State((name, next, client)): State<(&'static str, Option<String>, ClientWithMiddleware)>,
    ) -> String {
        drop(osp::Trace::new(
            "db",
            || osp::info!({"db": {"statement": format!("SELECT '{name}'")}}),
        ));
        if let Some(next) = next {
            let resp = client.get(&next).send().await.expect("downstream call");
            assert!(resp.status().is_success());
        }
        name.to_owned()
    }
    let app = Router::new()
        .route("/", get(handler))
        .with_state((name, next, client()))
        .layer(OsProfilerLayer::new(["chain-key"]));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    url
}

async fn chain() -> String {
    let c = spawn_service("C", None).await;
    let b = spawn_service("B", Some(c)).await;
    spawn_service("A", Some(b)).await
}

/// Checks one trace: client http -> A wsgi -> (db, http -> B wsgi -> (db, http -> C wsgi -> db)).
fn check_tree(msgs: &[Value]) -> Result<(), String> {
    let starts: Vec<&Value> = msgs
        .iter()
        .filter(|m| m["name"].as_str().unwrap().ends_with("-start"))
        .collect();
    let stops = msgs.len() - starts.len();
    // client http; A wsgi, db, http; B wsgi, db, http; C wsgi, db.
    if starts.len() != 9 || stops != 9 {
        return Err(format!(
            "expected 9 points, got {} starts and {stops} stops",
            starts.len()
        ));
    }
    let by_id: HashMap<&str, &Value> = starts
        .iter()
        .map(|m| (m["trace_id"].as_str().unwrap(), *m))
        .collect();
    let parent_name = |m: &Value| {
        by_id
            .get(m["parent_id"].as_str().unwrap())
            .map(|p| p["name"].as_str().unwrap().to_owned())
    };
    let mut wsgi_parents = 0;
    for m in &starts {
        let name = m["name"].as_str().unwrap();
        let parent = parent_name(m);
        let ok = match name {
            "wsgi-start" => {
                wsgi_parents += 1;
                parent.as_deref() == Some("http-start")
            }
            "db-start" => parent.as_deref() == Some("wsgi-start"),
            "http-start" => parent.is_none() || parent.as_deref() == Some("wsgi-start"),
            _ => false,
        };
        if !ok {
            return Err(format!("{name} has parent {parent:?}"));
        }
    }
    if wsgi_parents != 3 {
        return Err(format!("{wsgi_parents} wsgi points"));
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_services_make_one_tree() {
    collector();
    let a = chain().await;
    let base = osp::trace_scope(async {
        let p = osp::init("chain-key", None, None).unwrap();
        let body = client().get(&a).send().await.unwrap().text().await.unwrap();
        assert_eq!(body, "A");
        p.base_id().to_string()
    })
    .await;
    let msgs = messages_of(&base);
    check_tree(&msgs).unwrap();
    // The report built from the stored messages is one tree, four levels of wsgi/http deep.
    let report = osp::report::Report::build(&msgs);
    let root = &report.to_value()["children"];
    assert_eq!(
        root.as_array().unwrap().len(),
        1,
        "one root: the client's http point"
    );
    assert_eq!(root[0]["info"]["name"], "http");
    assert_eq!(root[0]["children"][0]["info"]["name"], "wsgi");
    let http_stop = msgs.iter().find(|m| m["name"] == "http-stop").unwrap();
    assert_eq!(http_stop["info"]["requests"]["status_code"], 200);
    let http_start = msgs.iter().find(|m| m["name"] == "http-start").unwrap();
    assert_eq!(http_start["info"]["requests"]["hostname"], "127.0.0.1");
    assert_eq!(http_start["info"]["requests"]["method"], "GET");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_concurrent_requests_are_never_misparented() {
    collector();
    let a = chain().await;
    let client = client();
    let sem = std::sync::Arc::new(tokio::sync::Semaphore::new(100));
    let mut tasks = Vec::new();
    for _ in 0..1000 {
        let (a, client, sem) = (a.clone(), client.clone(), sem.clone());
        tasks.push(tokio::spawn(osp::trace_scope(async move {
            let _permit = sem.acquire().await.unwrap();
            let p = osp::init("chain-key", None, None).unwrap();
            let resp = client.get(&a).send().await.unwrap();
            assert!(resp.status().is_success());
            p.base_id().to_string()
        })));
    }
    let mut bases = Vec::new();
    for t in tasks {
        bases.push(t.await.unwrap());
    }
    // One flush and one read of everything, grouped by trace (not a read per trace: a scan of
    // the 18,000 messages each).
    let c = collector();
    c.flush();
    let mut by_trace: HashMap<String, Vec<Value>> = HashMap::new();
    for m in c.memory.messages() {
        let base = m["base_id"].as_str().unwrap_or_default().to_owned();
        by_trace.entry(base).or_default().push(m);
    }
    let mut bad = Vec::new();
    for base in &bases {
        let msgs = by_trace.remove(base).unwrap_or_default();
        if let Err(e) = check_tree(&msgs) {
            bad.push(format!("{base}: {e}"));
        }
    }
    assert!(
        bad.is_empty(),
        "{} of 1000 traces mis-parented, e.g. {:?}",
        bad.len(),
        bad.first()
    );
}

#[tokio::test]
async fn no_trace_means_no_headers_and_no_point() {
    collector();
    async fn echo(headers: axum::http::HeaderMap) -> String {
        headers.contains_key("x-trace-info").to_string()
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    tokio::spawn(async move {
        axum::serve(listener, Router::new().route("/", get(echo)))
            .await
            .unwrap()
    });
    assert_eq!(
        client()
            .get(&url)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
        "false"
    );
    let seen = osp::trace_scope(async {
        osp::init("k", None, None);
        client()
            .get(&url)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    })
    .await;
    assert_eq!(seen, "true");
}

#[tokio::test]
async fn transport_errors_stop_the_point_with_the_error() {
    collector();
    let base = osp::trace_scope(async {
        let p = osp::init("k", None, None).unwrap();
        // Nothing listens on port 9 of loopback: connection refused.
        assert!(client().get("http://127.0.0.1:9/x").send().await.is_err());
        p.base_id().to_string()
    })
    .await;
    let msgs = messages_of(&base);
    let stop = one(&msgs, "http-stop");
    assert_eq!(stop["info"]["etype"], "reqwest::Error");
    assert!(!stop["info"]["message"].as_str().unwrap().is_empty());
    assert_eq!(one(&msgs, "http-start")["info"]["requests"]["port"], 9);
}
