//! Shared helpers: one in-memory collector per test binary, installed as the global notifier.
#![allow(dead_code)]

use osprofiler_core::notifier::{self, QueueNotifier, QueueOptions};
use osprofiler_core::{MemoryCollector, Profiler};
use serde_json::Value;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

pub struct Collector {
    pub memory: Arc<MemoryCollector>,
    pub notifier: Arc<QueueNotifier>,
}

pub fn collector() -> &'static Collector {
    static C: OnceLock<Collector> = OnceLock::new();
    C.get_or_init(|| {
        osprofiler_core::set_identity(Some("proj"), Some("svc"), Some("test-host"));
        let memory = MemoryCollector::new();
        let notifier = QueueNotifier::start(memory.clone(), QueueOptions::default()).unwrap();
        notifier::set(notifier.clone());
        Collector { memory, notifier }
    })
}

/// All messages of the trace, in emission order.
pub fn messages_of(base_id: &str) -> Vec<Value> {
    let c = collector();
    assert!(
        c.notifier.flush_for(Duration::from_secs(10)),
        "notifier did not flush"
    );
    c.memory.trace(base_id)
}

pub fn base(p: &Profiler) -> String {
    p.base_id().to_string()
}

/// `(name, trace_id, parent_id)` of each message.
pub fn shape(msgs: &[Value]) -> Vec<(String, String, String)> {
    msgs.iter()
        .map(|m| {
            (
                m["name"].as_str().unwrap().to_owned(),
                m["trace_id"].as_str().unwrap().to_owned(),
                m["parent_id"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// The message named `name` (e.g. "db-start"); panics if not exactly one.
pub fn one<'a>(msgs: &'a [Value], name: &str) -> &'a Value {
    let found: Vec<&Value> = msgs.iter().filter(|m| m["name"] == name).collect();
    assert_eq!(found.len(), 1, "expected one {name} in {msgs:#?}");
    found[0]
}

/// A fresh table name.
pub fn table() -> String {
    format!("osp_{}", uuid::Uuid::new_v4().simple())
}

/// `(api, statement, rows)` of each db point, from its start and stop messages.
pub fn db_points(msgs: &[Value]) -> Vec<(String, Option<String>, Value)> {
    let starts: Vec<&Value> = msgs.iter().filter(|m| m["name"] == "db-start").collect();
    starts
        .iter()
        .map(|s| {
            let stop = msgs
                .iter()
                .find(|m| m["name"] == "db-stop" && m["trace_id"] == s["trace_id"])
                .expect("every db point stops");
            (
                s["info"]["db"]["api"].as_str().unwrap().to_owned(),
                s["info"]["db"]["statement"].as_str().map(str::to_owned),
                stop["info"]["db"]["rows"].clone(),
            )
        })
        .collect()
}
