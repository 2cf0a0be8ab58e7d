//! Query budgets in a user's tests (feature `testing`): run a block with an in-memory
//! collector and get its points, its DB statement count and its [`Analysis`], so a test can say
//! "this endpoint runs at most 3 statements and has no N+1" — Django's `assertNumQueries`,
//! Rails' Bullet.
//!
//! [`capture`] (a closure) and [`capture_async`] (a future) run the code under a scoped
//! [`Dispatch`] of their own — profiling enabled, `trace_sql` and `trace_sql_params` on, every
//! message kept in memory (nothing leaves the process) — in a fresh trace whose root point is
//! named `capture`. The scope is the block's: tests running in parallel threads, or other
//! captures, do not see each other's points. Work the block hands to other threads is in it
//! when carried there as usual ([`spawn_traced`](crate::spawn_traced), or a future polled
//! inside [`capture_async`]).
//!
//! ```
//! use osprofiler_core::db::{DbEvent, DbTracer, Sql, SqlText};
//! use osprofiler_core::testing::capture;
//!
//! // What an adapter does for each statement (here with no database behind it).
//! fn query(db: &DbTracer, sql: &'static str, id: i64) {
//!     let text = move |_with_params: bool| Some(Sql::new(SqlText::Static(sql), 1).params(Some(format!("[{id}]"))));
//!     db.start(DbEvent::Query(&text)).ok(1);
//! }
//!
//! let db = DbTracer::new("postgresql");
//! let c = capture(|| {
//!     query(&db, "SELECT id FROM orders WHERE customer_id = $1", 7);
//!     query(&db, "SELECT name FROM customers WHERE id = $1", 7);
//! });
//! assert_eq!(c.db_statements(), 2);
//! c.assert_max_statements(3);
//! c.assert_no_n_plus_one();
//! c.assert_no_duplicates();
//!
//! // One query per row: an N+1, and the message says which statement.
//! let loop_ = capture(|| (0..10).for_each(|id| query(&db, "SELECT name FROM items WHERE id = $1", id)));
//! let err = std::panic::catch_unwind(|| loop_.assert_no_n_plus_one()).unwrap_err();
//! let msg = err.downcast_ref::<String>().unwrap();
//! assert!(msg.contains("10× SELECT name FROM items WHERE id = ?"), "{msg}");
//! ```

use crate::analysis::{Analysis, AnalysisOptions, db_calls};
use crate::dispatch::{self, Dispatch, DispatchFutureExt};
use crate::memory::MemoryCollector;
use crate::message::Message;
use crate::notifier::{Notifier, Writer};
use crate::report::Report;
use crate::{Profiler, Trace, TraceFutureExt};
use serde_json::Value;
use std::fmt::Write as _;
use std::future::Future;
use std::sync::Arc;

/// Delivers each message to the collector on the emitting thread: no queue, nothing to flush.
struct Inline(Arc<MemoryCollector>);

impl Notifier for Inline {
    fn notify(&self, message: Message) {
        let _ = self.0.notify(std::slice::from_ref(&message));
    }
}

fn setup() -> (Dispatch, Arc<MemoryCollector>) {
    let memory = MemoryCollector::new();
    let d = Dispatch::new(Arc::new(Inline(memory.clone())))
        .enabled(true)
        .trace_sql(true)
        .trace_sql_params(true);
    (d, memory)
}

const KEY: &str = "osprofiler-testing";

/// Runs `f` in a trace of its own and returns what it recorded (see the
/// [module docs](self)).
///
/// ```
/// let c = osprofiler_core::testing::capture(|| {
///     let _p = osprofiler_core::Trace::new("work", || osprofiler_core::info!({}));
/// });
/// assert_eq!(c.points().len(), 2); // `capture` and `work`
/// assert_eq!(c.db_statements(), 0);
/// ```
pub fn capture(f: impl FnOnce()) -> Captured {
    let (d, memory) = setup();
    let base_id = dispatch::with_default(&d, || {
        let p = Profiler::new_root(KEY, None, None).expect("enabled in the capture's dispatch");
        let base_id = p.base_id().to_string();
        crate::scope::with_trace(Some(p), || {
            let _root = Trace::new("capture", || crate::info!({}));
            f();
        });
        base_id
    });
    Captured::new(&memory, base_id)
}

/// [`capture`] for a future: `fut` runs in a trace of its own, with the capture's dispatch
/// installed at each of its polls, on whatever thread polls it.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let c = osprofiler_core::testing::capture_async(async {
///     let _p = osprofiler_core::Trace::new("work", || osprofiler_core::info!({}));
///     tokio::task::yield_now().await;
/// })
/// .await;
/// assert_eq!(c.points()[1].name, "work");
/// # }
/// ```
pub async fn capture_async<F: Future>(fut: F) -> Captured {
    let (d, memory) = setup();
    let p = dispatch::with_default(&d, || Profiler::new_root(KEY, None, None))
        .expect("enabled in the capture's dispatch");
    let base_id = p.base_id().to_string();
    async move {
        let _root = Trace::new("capture", || crate::info!({}));
        fut.await;
    }
    .in_trace(Some(p))
    .with_dispatch(d)
    .await;
    Captured::new(&memory, base_id)
}

/// A point recorded by a capture.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct CapturedPoint {
    /// The point's name (`db`, `rpc`, …; `capture` for the root).
    pub name: String,
    /// The point's id.
    pub trace_id: String,
    /// Its parent's id.
    pub parent_id: String,
    /// Its start message's info.
    pub info: Value,
    /// Its stop message's info (`None` while it has not stopped).
    pub stop_info: Option<Value>,
}

/// What a block recorded: its messages, and views of them.
#[derive(Debug, Clone)]
pub struct Captured {
    base_id: String,
    messages: Vec<Value>,
}

impl Captured {
    fn new(memory: &MemoryCollector, base_id: String) -> Captured {
        Captured {
            messages: memory.trace(&base_id),
            base_id,
        }
    }

    /// The capture's trace id.
    pub fn base_id(&self) -> &str {
        &self.base_id
    }

    /// Every message, in the order they were sent.
    pub fn messages(&self) -> &[Value] {
        &self.messages
    }

    /// The points, in the order they started (the `capture` root first).
    pub fn points(&self) -> Vec<CapturedPoint> {
        let mut points: Vec<CapturedPoint> = Vec::new();
        let mut index = std::collections::HashMap::new();
        for m in &self.messages {
            let (Some(name), Some(id)) = (m["name"].as_str(), m["trace_id"].as_str()) else {
                continue;
            };
            if let Some(name) = name.strip_suffix("-start") {
                index.insert(id.to_owned(), points.len());
                points.push(CapturedPoint {
                    name: name.to_owned(),
                    trace_id: id.to_owned(),
                    parent_id: m["parent_id"].as_str().unwrap_or_default().to_owned(),
                    info: m["info"].clone(),
                    stop_info: None,
                });
            } else if let Some(&i) = index.get(id) {
                points[i].stop_info = Some(m["info"].clone());
            }
        }
        points
    }

    /// The report of the capture's trace.
    pub fn report(&self) -> Report {
        Report::build(&self.messages)
    }

    /// The analysis of the capture's trace (N+1 runs from 5 calls).
    pub fn analysis(&self) -> Analysis {
        self.analysis_with(&AnalysisOptions::default())
    }

    /// [`Captured::analysis`] with options (another N+1 threshold).
    pub fn analysis_with(&self, opts: &AnalysisOptions) -> Analysis {
        Analysis::of(self.report().to_value(), opts)
    }

    /// How many statements ran (transaction control, `connect`, `acquire` and `prepare` are
    /// not statements).
    pub fn db_statements(&self) -> usize {
        self.analysis().db.statements
    }

    /// Panics, listing the statements, when more than `max` ran.
    #[track_caller]
    pub fn assert_max_statements(&self, max: usize) {
        let calls = db_calls(self.report().to_value());
        if calls.len() <= max {
            return;
        }
        let mut msg = format!("expected at most {max} statements, {} ran:\n", calls.len());
        for (i, c) in calls.iter().enumerate() {
            let _ = writeln!(
                msg,
                "  {}. {} ({:.3} ms)",
                i + 1,
                c.text.as_deref().unwrap_or("(text not recorded)"),
                c.duration_us as f64 / 1000.0
            );
        }
        panic!("{msg}");
    }

    /// Panics, listing them, when the analysis finds an N+1 (5 or more executions of one
    /// statement with different values in a row under one parent).
    #[track_caller]
    pub fn assert_no_n_plus_one(&self) {
        let a = self.analysis();
        if a.n_plus_one.is_empty() {
            return;
        }
        let mut msg = String::from("N+1 queries:\n");
        for n in &a.n_plus_one {
            let _ = writeln!(
                msg,
                "  {}× {} under {} ({:.3} ms)",
                n.calls,
                n.fingerprint.as_deref().unwrap_or(&n.id),
                n.parent_name,
                n.total_ms
            );
        }
        panic!("{msg}");
    }

    /// Panics, listing them, when a statement ran more than once with the same values.
    #[track_caller]
    pub fn assert_no_duplicates(&self) {
        let a = self.analysis();
        if a.duplicates.is_empty() {
            return;
        }
        let mut msg = String::from("statements run more than once with the same values:\n");
        for d in &a.duplicates {
            let _ = writeln!(
                msg,
                "  {}× {} ({:.3} ms)",
                d.calls,
                d.fingerprint.as_deref().unwrap_or(&d.id),
                d.total_ms
            );
        }
        panic!("{msg}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::{DbEvent, DbTracer, Sql, SqlText};
    use std::sync::Barrier;

    fn query(db: &DbTracer, sql: &'static str, id: i64) {
        let text = move |_: bool| {
            Some(
                Sql::new(SqlText::Static(sql), 1)
                    .params(Some(format!("[{id}]")))
                    .values(Some(crate::db::BoundValues::owned(id))),
            )
        };
        db.start(DbEvent::Query(&text)).ok(1);
    }

    #[test]
    fn parallel_captures_see_only_their_own_points() {
        let barrier = Arc::new(Barrier::new(2));
        let run = |n: i64, sql: &'static str| {
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                let db = DbTracer::new("postgresql");
                capture(|| {
                    // Both captures are open at once, each thread's statements interleaved
                    // with the other's.
                    barrier.wait();
                    for i in 0..n {
                        query(&db, sql, i);
                        std::thread::yield_now();
                    }
                    barrier.wait();
                })
            })
        };
        let a = run(3, "SELECT a FROM t WHERE id = $1");
        let b = run(7, "SELECT b FROM t WHERE id = $1");
        let (a, b) = (a.join().unwrap(), b.join().unwrap());
        assert_ne!(a.base_id(), b.base_id());
        assert_eq!(a.db_statements(), 3);
        assert_eq!(b.db_statements(), 7);
        for (c, want) in [(&a, "SELECT a"), (&b, "SELECT b")] {
            for p in c.points().iter().filter(|p| p.name == "db") {
                let sql = p.info["db"]["statement"].as_str().unwrap();
                assert!(sql.starts_with(want), "{sql}");
            }
        }
        // Outside a capture nothing is traced.
        assert!(!crate::is_active());
    }

    #[test]
    fn assertions_list_the_offending_statements() {
        let db = DbTracer::new("postgresql");
        let c = capture(|| {
            query(&db, "SELECT a FROM t WHERE id = $1", 1);
            query(&db, "SELECT a FROM t WHERE id = $1", 1);
            query(&db, "SELECT b FROM t WHERE id = $1", 1);
        });
        c.assert_max_statements(3);
        c.assert_no_n_plus_one();
        let err = std::panic::catch_unwind(|| c.assert_max_statements(2)).unwrap_err();
        let msg = err.downcast_ref::<String>().unwrap();
        assert!(
            msg.starts_with(
                "expected at most 2 statements, 3 ran:\n  1. SELECT a FROM t WHERE id = ? ("
            ),
            "{msg}"
        );
        assert!(msg.contains("  3. SELECT b FROM t WHERE id = ? ("), "{msg}");
        let err = std::panic::catch_unwind(|| c.assert_no_duplicates()).unwrap_err();
        let msg = err.downcast_ref::<String>().unwrap();
        assert!(msg.contains("  2× SELECT a FROM t WHERE id = ? ("), "{msg}");
        let points = c.points();
        assert_eq!(points[0].name, "capture");
        assert_eq!(points[1].parent_id, points[0].trace_id);
        assert_eq!(points[1].stop_info.as_ref().unwrap()["db"]["rows"], 1);
    }

    #[test]
    fn an_async_capture_follows_its_future_across_threads() {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let c = rt.block_on(async {
            let db = DbTracer::new("mysql");
            tokio::spawn(capture_async(async move {
                for i in 0..6 {
                    query(&db, "SELECT x FROM y WHERE id = ?", i);
                    tokio::task::yield_now().await;
                }
            }))
            .await
            .unwrap()
        });
        assert_eq!(c.db_statements(), 6);
        let a = c.analysis();
        assert_eq!(a.n_plus_one.len(), 1);
        assert_eq!(a.n_plus_one[0].parent_name, "capture");
        assert!(std::panic::catch_unwind(|| c.assert_no_n_plus_one()).is_err());
    }
}
