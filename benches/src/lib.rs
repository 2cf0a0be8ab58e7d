//! Shared pieces of the benchmarks in `benches/`.

use osprofiler_core::Message;
use osprofiler_core::notifier::{
    self, Driver, DriverError, QueueNotifier, QueueOptions, TraceSummary,
};
use std::hint::black_box;
use std::sync::Arc;

/// A driver that accepts and discards batches: benchmarks measure the traced side, not a store.
#[derive(Debug, Clone, Copy, Default)]
pub struct Discard;

impl Driver for Discard {
    fn name(&self) -> &str {
        "discard"
    }
    fn notify(&self, batch: &[Message]) -> Result<(), DriverError> {
        black_box(batch.len());
        Ok(())
    }
    fn trace_messages(&self, _: &str) -> Result<Vec<serde_json::Value>, DriverError> {
        Ok(vec![])
    }
    fn list_traces(&self) -> Result<Vec<TraceSummary>, DriverError> {
        Ok(vec![])
    }
    fn list_error_traces(&self) -> Result<Vec<TraceSummary>, DriverError> {
        Ok(vec![])
    }
}

/// Installs a large-queue notifier in front of [`Discard`] as the global notifier.
pub fn install_discard() -> Arc<QueueNotifier> {
    let n = QueueNotifier::start(
        Arc::new(Discard),
        QueueOptions {
            capacity: 1 << 20,
            ..QueueOptions::default()
        },
    )
    .expect("start the benchmark notifier");
    notifier::set(n.clone());
    n
}
