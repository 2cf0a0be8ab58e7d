//! Shared helpers for the integration tests.
#![allow(dead_code)]

use osprofiler_core::MemoryCollector;
use osprofiler_core::notifier::{self, QueueNotifier, QueueOptions};
use serde_json::Value;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// The Python interpreter of the oracle virtualenv (made by `scripts/test`).
pub fn python() -> PathBuf {
    if let Ok(p) = std::env::var("OSPROFILER_PYTHON") {
        return PathBuf::from(p);
    }
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.venv-osp/bin/python");
    assert!(
        p.exists(),
        "Python OSProfiler oracle missing: {} does not exist. Run `scripts/test` (it creates the virtualenv with \
         osprofiler==4.4.0) or set OSPROFILER_PYTHON.",
        p.display()
    );
    p
}

/// A script of `tests/python/`.
pub fn script(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("python")
        .join(name)
}

pub struct Collector {
    pub memory: Arc<MemoryCollector>,
    pub notifier: Arc<QueueNotifier>,
}

/// One in-memory collector per test binary, installed as the global notifier.
pub fn collector() -> &'static Collector {
    static C: OnceLock<Collector> = OnceLock::new();
    C.get_or_init(|| {
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

/// The message named `name`; panics if not exactly one.
pub fn one<'a>(msgs: &'a [Value], name: &str) -> &'a Value {
    let found: Vec<&Value> = msgs.iter().filter(|m| m["name"] == name).collect();
    assert_eq!(found.len(), 1, "expected one {name} in {msgs:#?}");
    found[0]
}
