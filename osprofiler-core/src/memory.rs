//! An in-memory collector, for tests and for programs that read their own traces.

use crate::message::Message;
use crate::notifier::{DriverError, Reader, TraceState, TraceSummary, Writer};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

/// Keeps every message in memory, in arrival order, as the JSON a storage driver would store.
///
/// It stages provisional traces (see [`crate::sampling`]) as the SQL and Redis collectors do:
/// their messages are kept but hidden from the [`Reader`] listings until kept, and a sweep
/// removes those not kept within the staging window. [`MemoryCollector::messages`] and
/// [`MemoryCollector::trace`] show everything stored, hidden or not.
///
/// ```
/// use osprofiler_core::{memory::MemoryCollector, notifier::Reader};
/// let memory = MemoryCollector::new();
/// assert!(memory.list_traces().unwrap().is_empty());
/// ```
#[derive(Debug, Default)]
pub struct MemoryCollector {
    messages: Mutex<Vec<Value>>,
    staging: Mutex<Staging>,
}

#[derive(Debug, Default)]
struct Staging {
    window: Option<Duration>,
    /// Provisional traces and kept ones: since when, and their state.
    traces: HashMap<String, (Instant, TraceState)>,
}

impl MemoryCollector {
    /// A new, empty collector (shared: give a clone to the notifier, keep one to read).
    pub fn new() -> Arc<MemoryCollector> {
        Arc::new(MemoryCollector::default())
    }

    /// All messages received so far (provisional ones too).
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
        self.staged().traces.clear();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Value>> {
        self.messages.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn staged(&self) -> std::sync::MutexGuard<'_, Staging> {
        self.staging.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The messages readers see: none of a trace that is pending or dropped.
    fn visible(&self) -> Vec<Value> {
        let staged = self.staged();
        self.lock()
            .iter()
            .filter(|m| {
                m["base_id"]
                    .as_str()
                    .is_none_or(|b| state_of(&staged, b) == TraceState::Stored)
            })
            .cloned()
            .collect()
    }

    fn remove(&self, base_ids: &[String]) -> u64 {
        let mut messages = self.lock();
        let before = messages.len();
        messages.retain(|m| {
            m["base_id"]
                .as_str()
                .is_none_or(|b| !base_ids.iter().any(|x| x == b))
        });
        (before - messages.len()) as u64
    }
}

impl Writer for MemoryCollector {
    fn name(&self) -> &str {
        "memory"
    }

    fn notify(&self, batch: &[Message]) -> Result<(), DriverError> {
        let values: Vec<Value> = batch.iter().map(Message::to_value).collect();
        let mut staged = self.staged();
        if staged.window.is_some() {
            let now = Instant::now();
            for m in batch.iter().filter(|m| m.is_provisional()) {
                staged
                    .traces
                    .entry(m.base_id().to_string())
                    .or_insert((now, TraceState::Pending));
            }
        }
        drop(staged);
        self.lock().extend(values);
        Ok(())
    }

    fn stage(&self, window: Duration) -> Result<(), DriverError> {
        self.staged().window = Some(window);
        Ok(())
    }

    fn keep(&self, base_ids: &[&str]) -> Result<(), DriverError> {
        let mut staged = self.staged();
        let now = Instant::now();
        for b in base_ids {
            staged
                .traces
                .insert((*b).to_owned(), (now, TraceState::Stored));
        }
        Ok(())
    }

    fn sweep(&self) -> Result<u64, DriverError> {
        let mut staged = self.staged();
        let Some(window) = staged.window else {
            return Ok(0);
        };
        let now = Instant::now();
        let due = |since: &Instant| now.duration_since(*since) >= window;
        // Late messages of dropped traces, then the tombstones past their second window.
        let mut remove: Vec<String> = Vec::new();
        let mut expired = 0;
        staged.traces.retain(|b, (since, state)| match state {
            TraceState::Dropped if due(since) => {
                remove.push(b.clone());
                false
            }
            TraceState::Dropped => {
                remove.push(b.clone());
                true
            }
            TraceState::Pending if due(since) => {
                remove.push(b.clone());
                *state = TraceState::Dropped;
                *since = now;
                expired += 1;
                true
            }
            _ => true,
        });
        drop(staged);
        self.remove(&remove);
        Ok(expired)
    }

    fn retain(&self, _age: Duration) -> Result<(), DriverError> {
        Ok(())
    }

    fn prune(&self, cutoff: SystemTime) -> Result<u64, DriverError> {
        let cutoff = crate::clock::format_timestamp(crate::clock::system_micros(cutoff));
        let mut newest: HashMap<String, String> = HashMap::new();
        for m in self.lock().iter() {
            if let (Some(b), Some(t)) = (m["base_id"].as_str(), m["timestamp"].as_str()) {
                let e = newest.entry(b.to_owned()).or_default();
                if t > e.as_str() {
                    *e = t.to_owned();
                }
            }
        }
        let old: Vec<String> = newest
            .into_iter()
            .filter(|(_, t)| *t < cutoff)
            .map(|(b, _)| b)
            .collect();
        self.remove(&old);
        let mut staged = self.staged();
        for b in &old {
            staged.traces.remove(b);
        }
        Ok(old.len() as u64)
    }

    fn delete_trace(&self, base_id: &str) -> Result<u64, DriverError> {
        self.staged().traces.remove(base_id);
        Ok(self.remove(&[base_id.to_owned()]))
    }
}

/// A trace's state: its record's, else pending for a provisional trace's id (its points came
/// before its record), else stored.
fn state_of(staged: &Staging, base_id: &str) -> TraceState {
    match staged.traces.get(base_id) {
        Some((_, s)) => *s,
        None if crate::sampling::is_provisional_id(base_id) => TraceState::Pending,
        None => TraceState::Stored,
    }
}

impl Reader for MemoryCollector {
    fn trace_messages(&self, base_id: &str) -> Result<Vec<Value>, DriverError> {
        Ok(self.trace(base_id))
    }

    fn list_traces(&self) -> Result<Vec<TraceSummary>, DriverError> {
        Ok(crate::notifier::summarize(self.visible().iter(), false))
    }

    fn list_error_traces(&self) -> Result<Vec<TraceSummary>, DriverError> {
        Ok(crate::notifier::summarize(self.visible().iter(), true))
    }

    fn trace_state(&self, base_id: &str) -> Result<TraceState, DriverError> {
        Ok(state_of(&self.staged(), base_id))
    }

    fn list(
        &self,
        filter: &crate::listing::ListFilter,
    ) -> Result<Vec<crate::listing::TraceListing>, DriverError> {
        if filter.include_pending {
            return Ok(crate::listing::list_messages(self.lock().iter(), filter));
        }
        Ok(crate::listing::list_messages(self.visible().iter(), filter))
    }
}
