//! An in-memory collector, for tests and for programs that read their own traces.

use crate::message::Message;
use crate::notifier::{DriverError, Reader, TraceSummary, Writer};
use serde_json::Value;
use std::sync::{Arc, Mutex};

/// Keeps every message in memory, in arrival order, as the JSON a storage driver would store.
///
/// ```
/// use osprofiler_core::{memory::MemoryCollector, notifier::Reader};
/// let memory = MemoryCollector::new();
/// assert!(memory.list_traces().unwrap().is_empty());
/// ```
#[derive(Debug, Default)]
pub struct MemoryCollector {
    messages: Mutex<Vec<Value>>,
}

impl MemoryCollector {
    /// A new, empty collector (shared: give a clone to the notifier, keep one to read).
    pub fn new() -> Arc<MemoryCollector> {
        Arc::new(MemoryCollector::default())
    }

    /// All messages received so far.
    pub fn messages(&self) -> Vec<Value> {
        self.lock().clone()
    }

    /// The messages of one trace, in arrival order.
    pub fn trace(&self, base_id: &str) -> Vec<Value> {
        self.lock()
            .iter()
            .filter(|m| m["base_id"] == base_id)
            .cloned()
            .collect()
    }

    /// Forgets everything.
    pub fn clear(&self) {
        self.lock().clear();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Value>> {
        self.messages.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Writer for MemoryCollector {
    fn name(&self) -> &str {
        "memory"
    }

    fn notify(&self, batch: &[Message]) -> Result<(), DriverError> {
        let values: Vec<Value> = batch.iter().map(Message::to_value).collect();
        self.lock().extend(values);
        Ok(())
    }
}

impl Reader for MemoryCollector {
    fn trace_messages(&self, base_id: &str) -> Result<Vec<Value>, DriverError> {
        Ok(self.trace(base_id))
    }

    fn list_traces(&self) -> Result<Vec<TraceSummary>, DriverError> {
        Ok(crate::notifier::summarize(self.lock().iter(), false))
    }

    fn list_error_traces(&self) -> Result<Vec<TraceSummary>, DriverError> {
        Ok(crate::notifier::summarize(self.lock().iter(), true))
    }

    fn list(
        &self,
        filter: &crate::listing::ListFilter,
    ) -> Result<Vec<crate::listing::TraceListing>, DriverError> {
        Ok(crate::listing::list_messages(self.lock().iter(), filter))
    }
}
