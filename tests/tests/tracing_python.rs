//! Span points read by Python: a trace whose points come from `tracing` spans, stored in Redis
//! by our collector, shown by Python OSProfiler 4.4.0's `osprofiler trace show --json` with the
//! same tree, names, function names and fields (unicode and quotes included).
//! One global subscriber and notifier: one test in this file.

use osprofiler_core::{self as osp, ProfilerConfig, Trace};
use serde_json::json;
use std::time::Duration;
use tracing::instrument;
use tracing_subscriber::prelude::*;

const REDIS: &str = "redis://127.0.0.1:6379";

#[instrument(fields(osprofiler.point = "rpc"))]
fn get_user(name: &str, id: u64) {
    let _db = Trace::new("db", || osp::info!({"db": {"statement": "SELECT ?"}}));
    lookup(id);
}

#[instrument]
fn lookup(id: u64) {
    tracing::error!(id, "row {id} is missing");
}

#[test]
fn pythons_cli_shows_span_points_as_we_stored_them() {
    let conf = ProfilerConfig::builder()
        .enabled(true)
        .connection_string(REDIS)
        .build();
    let guard = osprofiler_collectors::init_from_conf(&conf, "rs", "rstracing", Some("rshost"))
        .expect("Redis at 127.0.0.1:6379 is needed (scripts/test starts it)");
    tracing_subscriber::registry()
        .with(osprofiler_tracing::layer())
        .init();

    let p = osp::init("SECRET_KEY", None, None).unwrap();
    get_user("zoë \"quoted\" 🦀", 7);
    osp::clean();
    let base = p.base_id().to_string();
    assert!(
        guard.flush(Duration::from_secs(10)),
        "points delivered to Redis"
    );

    let report = osprofiler_testkit::python_trace_show(&base, REDIS);
    let rpc = &report["children"][0];
    assert_eq!(rpc["info"]["name"], "rpc", "{report:#}");
    let start = &rpc["info"]["meta.raw_payload.rpc-start"]["info"];
    assert_eq!(start["function"]["name"], "tracing_python::get_user");
    assert_eq!(
        start["fields"],
        json!({"name": "zoë \"quoted\" 🦀", "id": 7})
    );
    let children: Vec<&str> = rpc["children"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["info"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(children, ["db"], "{rpc:#}");
    let lookup = &rpc["children"][0]["children"][0];
    assert_eq!(lookup["info"]["name"], "span");
    let stop = &lookup["info"]["meta.raw_payload.span-stop"]["info"];
    assert_eq!(stop["etype"], "Error");
    assert_eq!(stop["message"], "row 7 is missing");
}
