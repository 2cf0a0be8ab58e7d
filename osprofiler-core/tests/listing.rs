//! Per-trace summaries written by the queue notifier's worker: one additive partial per
//! process and trace when the process has no open point left for it, summed by readers, and a
//! fall back to the messages where the partials do not account for every stored message.
//!
//! Only `two_services_write_one_trace` changes the process-wide identity (and asserts services).
use osprofiler_core::dispatch::{self, Dispatch};
use osprofiler_core::listing::{self, ListFilter, PartialSummary, TraceListing};
use osprofiler_core::notifier::{
    DriverError, QueueNotifier, QueueOptions, Reader, TraceSummary, Writer,
};
use osprofiler_core::{self as osp, Trace, message::Message};
use serde_json::Value;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A store keeping messages and partial summaries (or messages only, like Python's drivers).
#[derive(Default)]
struct Store {
    summaries: bool,
    messages: Mutex<Vec<Value>>,
    partials: Mutex<Vec<PartialSummary>>,
}

impl Writer for Store {
    fn name(&self) -> &str {
        "test"
    }
    fn notify(&self, batch: &[Message]) -> Result<(), DriverError> {
        let mut m = self.messages.lock().unwrap();
        m.extend(batch.iter().map(Message::to_value));
        Ok(())
    }
    fn stores_summaries(&self) -> bool {
        self.summaries
    }
    fn write_summaries(&self, parts: &[PartialSummary]) -> Result<(), DriverError> {
        self.partials.lock().unwrap().extend_from_slice(parts);
        Ok(())
    }
}

impl Reader for Store {
    fn trace_messages(&self, base_id: &str) -> Result<Vec<Value>, DriverError> {
        let m = self.messages.lock().unwrap();
        Ok(m.iter()
            .filter(|m| m["base_id"] == base_id)
            .cloned()
            .collect())
    }
    fn list_traces(&self) -> Result<Vec<TraceSummary>, DriverError> {
        Ok(osp::notifier::summarize(
            self.messages.lock().unwrap().iter(),
            false,
        ))
    }
    fn list_error_traces(&self) -> Result<Vec<TraceSummary>, DriverError> {
        Ok(osp::notifier::summarize(
            self.messages.lock().unwrap().iter(),
            true,
        ))
    }
    fn list(&self, filter: &ListFilter) -> Result<Vec<TraceListing>, DriverError> {
        let mut counts = std::collections::BTreeMap::<String, u64>::new();
        for m in self.messages.lock().unwrap().iter() {
            *counts
                .entry(m["base_id"].as_str().unwrap().into())
                .or_default() += 1;
        }
        let partials = self.partials.lock().unwrap().clone();
        let stored = counts
            .into_iter()
            .map(|(base_id, messages)| listing::StoredTrace { base_id, messages });
        listing::list_from_summaries(
            stored,
            partials,
            filter,
            |_| Ok(Default::default()),
            |ids| {
                ids.iter()
                    .map(|id| Ok(listing::listing_of(id, &self.trace_messages(id)?)))
                    .collect()
            },
        )
    }
}

fn store(summaries: bool) -> Arc<Store> {
    Arc::new(Store {
        summaries,
        ..Store::default()
    })
}

fn notifier(store: &Arc<Store>, opts: QueueOptions) -> (Arc<QueueNotifier>, Dispatch) {
    let n = QueueNotifier::start(store.clone(), opts).unwrap();
    let d = Dispatch::new(n.clone());
    (n, d)
}

/// The listing computed from the stored messages alone (what Python-written traces get).
fn computed(store: &Store) -> Vec<TraceListing> {
    let all = store.list_traces().unwrap();
    let mut out: Vec<TraceListing> = all
        .iter()
        .map(|t| listing::listing_of(&t.base_id, &store.trace_messages(&t.base_id).unwrap()))
        .collect();
    out.sort_by(|a, b| a.base_id.cmp(&b.base_id));
    out
}

fn listed(store: &Store) -> Vec<TraceListing> {
    let mut l = store.list(&ListFilter::default()).unwrap();
    l.sort_by(|a, b| a.base_id.cmp(&b.base_id));
    l
}

/// A request: `wsgi` with two `db` points, the second failing.
fn request() -> String {
    let p = osp::init("key", None, None).unwrap();
    let root = Trace::new("wsgi", osp::Info::new);
    Trace::new("db", osp::Info::new).finish();
    let mut failing = Trace::new("db", osp::Info::new);
    failing.error_with("ValueError", "bad");
    failing.finish();
    root.finish();
    osp::clean();
    p.base_id().to_string()
}

#[test]
fn a_trace_gets_one_partial_that_lists_as_its_messages_do() {
    let s = store(true);
    let (n, d) = notifier(&s, QueueOptions::default());
    let ids: Vec<String> = dispatch::with_default(&d, || (0..3).map(|_| request()).collect());
    assert!(n.flush_for(Duration::from_secs(10)));
    let partials = s.partials.lock().unwrap().clone();
    assert_eq!(partials.len(), 3, "{partials:?}");
    let listed = listed(&s);
    assert_eq!(listed, computed(&s));
    let one = listed.iter().find(|l| l.base_id == ids[0]).unwrap();
    assert_eq!(one.root.as_deref(), Some("wsgi"));
    assert_eq!((one.points, one.db_statements, one.errors), (3, 2, 1));
    assert_eq!(one.error_type.as_deref(), Some("ValueError"));
}

#[test]
fn late_points_add_a_partial_and_the_sum_stays_right() {
    let s = store(true);
    let (n, d) = notifier(&s, QueueOptions::default());
    let id = dispatch::with_default(&d, request);
    assert!(n.flush_for(Duration::from_secs(10)));
    dispatch::with_default(&d, || {
        osp::init("key", Some(&id), Some(&id));
        Trace::new("late", osp::Info::new).finish();
        osp::clean();
    });
    assert!(n.flush_for(Duration::from_secs(10)));
    assert_eq!(s.partials.lock().unwrap().len(), 2);
    let listed = listed(&s);
    assert_eq!(listed, computed(&s));
    assert_eq!(listed[0].points, 4);
}

#[test]
fn the_oldest_open_trace_is_summarized_when_too_many_are_open() {
    let s = store(true);
    let opts = QueueOptions {
        summary_traces: 2,
        ..QueueOptions::default()
    };
    let (n, d) = notifier(&s, opts);
    dispatch::with_default(&d, || {
        // Three traces open at once (one thread each keeps its trace open).
        let open: Vec<_> = (0..3)
            .map(|_| {
                let (tx, rx) = std::sync::mpsc::channel::<()>();
                let (started_tx, started_rx) = std::sync::mpsc::channel::<()>();
                let d = d.clone();
                let h = std::thread::spawn(move || {
                    dispatch::with_default(&d, || {
                        osp::init("key", None, None);
                        let root = Trace::new("wsgi", osp::Info::new);
                        started_tx.send(()).unwrap();
                        rx.recv().unwrap();
                        root.finish();
                        osp::clean();
                    })
                });
                started_rx.recv().unwrap();
                (tx, h)
            })
            .collect();
        assert!(n.flush_for(Duration::from_secs(10)));
        // The first trace was evicted with what was known: its start.
        assert_eq!(s.partials.lock().unwrap().len(), 1);
        for (tx, h) in open {
            tx.send(()).unwrap();
            h.join().unwrap();
        }
    });
    assert!(n.flush_for(Duration::from_secs(10)));
    // Each stop may evict another open trace (how many depends on the batches): the
    // partials still add up to every trace.
    assert!(s.partials.lock().unwrap().len() >= 4);
    assert_eq!(listed(&s), computed(&s));
}

#[test]
fn a_part_written_without_summaries_is_computed_from_messages() {
    let s = store(true);
    let (n, d) = notifier(&s, QueueOptions::default());
    let id = dispatch::with_default(&d, request);
    assert!(n.flush_for(Duration::from_secs(10)));
    // Another process (say Python's) adds points to the trace and writes no summary.
    let plain = QueueNotifier::start(
        Arc::new(Forward(s.clone())) as Arc<dyn Writer>,
        QueueOptions::default(),
    )
    .unwrap();
    dispatch::with_default(&Dispatch::new(plain.clone()), || {
        osp::init("key", Some(&id), Some(&id));
        Trace::new("python", osp::Info::new).finish();
        osp::clean();
    });
    assert!(plain.flush_for(Duration::from_secs(10)));
    assert_eq!(s.partials.lock().unwrap().len(), 1);
    let listed = listed(&s);
    assert_eq!(listed, computed(&s));
    assert_eq!(listed[0].points, 4);
}

/// Stores messages into a [`Store`] and no summary.
struct Forward(Arc<Store>);
impl Writer for Forward {
    fn name(&self) -> &str {
        "plain"
    }
    fn notify(&self, batch: &[Message]) -> Result<(), DriverError> {
        self.0.notify(batch)
    }
}

#[test]
fn two_services_write_one_trace() {
    let s = store(true);
    let (api_n, api) = notifier(&s, QueueOptions::default());
    let (worker_n, worker) = notifier(&s, QueueOptions::default());
    osp::identity::set_identity(Some("p"), Some("api"), None);
    let id = dispatch::with_default(&api, || {
        let p = osp::init("key", None, None).unwrap();
        let root = Trace::new("wsgi", osp::Info::new);
        let rpc = Trace::new("rpc", osp::Info::new);
        let caller = osp::get().unwrap().id().to_string();
        let base = p.base_id().to_string();
        osp::identity::set_identity(Some("p"), Some("worker"), None);
        let (b, w) = (base.clone(), worker.clone());
        std::thread::spawn(move || {
            dispatch::with_default(&w, || {
                osp::init("key", Some(&b), Some(&caller));
                let handler = Trace::new("handler", osp::Info::new);
                Trace::new("db", osp::Info::new).finish();
                handler.finish();
                osp::clean();
            })
        })
        .join()
        .unwrap();
        rpc.finish();
        root.finish();
        osp::clean();
        base
    });
    assert!(worker_n.flush_for(Duration::from_secs(10)));
    assert!(api_n.flush_for(Duration::from_secs(10)));
    let partials = s.partials.lock().unwrap().clone();
    assert_eq!(partials.len(), 2, "{partials:?}");
    let listed = listed(&s);
    assert_eq!(listed, computed(&s));
    let l = &listed[0];
    assert_eq!(l.base_id, id);
    assert_eq!(l.services, ["api", "worker"]);
    assert_eq!(
        (l.root.as_deref(), l.points, l.db_statements),
        (Some("wsgi"), 4, 1)
    );
}
