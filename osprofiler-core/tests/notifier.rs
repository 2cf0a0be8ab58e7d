//! The queue notifier: never blocks the traced code, drops and counts when full, retries a
//! failing driver and delivers when it recovers, flushes on demand and at shutdown.
//!
//! Each test has its own notifier, installed with a scoped dispatch (profiling on in it): they
//! run in parallel. Only `init_from_conf_wires_...` sets the process-wide notifier and
//! switches, which no other test here reads.
use osprofiler_core::dispatch::{self, DefaultGuard, Dispatch};
use osprofiler_core::notifier::{
    self, DriverError, QueueNotifier, QueueOptions, Reader, TraceSummary, Writer,
};
use osprofiler_core::{self as osp, ProfilerConfig, Trace, message::Message};
use serde_json::Value;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

#[derive(Default)]
struct Flaky {
    down: AtomicBool,
    /// While set, a call blocks (the worker is stuck in the driver) until it is cleared.
    slow: Mutex<bool>,
    /// Told when `slow` changes.
    released: Condvar,
    /// Told after every call (with `stored`'s lock).
    called: Condvar,
    /// Batches holding a point of this name are refused as invalid.
    poison: Mutex<Option<String>>,
    calls: AtomicUsize,
    stored: Mutex<Vec<Value>>,
}

impl Flaky {
    fn set_slow(&self, on: bool) {
        *self.slow.lock().unwrap() = on;
        self.released.notify_all();
    }

    /// Waits (at most 20 s) until `done` holds of the stored messages, woken by each call.
    fn wait_stored(
        &self,
        what: &str,
        done: impl Fn(&[Value]) -> bool,
    ) -> MutexGuard<'_, Vec<Value>> {
        let (stored, timeout) = self
            .called
            .wait_timeout_while(self.stored.lock().unwrap(), Duration::from_secs(20), |s| {
                !done(s)
            })
            .unwrap();
        assert!(!timeout.timed_out(), "{what}: {} stored", stored.len());
        stored
    }

    /// Waits (at most 20 s) until the driver was called `n` times.
    fn wait_calls(&self, n: usize) {
        let (_g, timeout) = self
            .called
            .wait_timeout_while(self.stored.lock().unwrap(), Duration::from_secs(20), |_| {
                self.calls.load(Ordering::SeqCst) < n
            })
            .unwrap();
        assert!(!timeout.timed_out(), "the driver was not called {n} times");
    }
}

impl Writer for Flaky {
    fn name(&self) -> &str {
        "flaky"
    }
    fn notify(&self, batch: &[Message]) -> Result<(), DriverError> {
        drop(
            self.released
                .wait_while(self.slow.lock().unwrap(), |slow| *slow)
                .unwrap(),
        );
        let r = self.store(batch);
        {
            // Counted under the lock the waiters hold, so that none misses the wake-up.
            let _g = self.stored.lock().unwrap();
            self.calls.fetch_add(1, Ordering::SeqCst);
        }
        self.called.notify_all();
        r
    }
}

impl Reader for Flaky {
    fn trace_messages(&self, base_id: &str) -> Result<Vec<Value>, DriverError> {
        Ok(self
            .stored
            .lock()
            .unwrap()
            .iter()
            .filter(|m| m["base_id"] == base_id)
            .cloned()
            .collect())
    }
    fn list_traces(&self) -> Result<Vec<TraceSummary>, DriverError> {
        Ok(vec![])
    }
    fn list_error_traces(&self) -> Result<Vec<TraceSummary>, DriverError> {
        Ok(vec![])
    }
}

impl Flaky {
    fn store(&self, batch: &[Message]) -> Result<(), DriverError> {
        if self.down.load(Ordering::SeqCst) {
            return Err(DriverError::new("connection refused"));
        }
        if let Some(bad) = &*self.poison.lock().unwrap()
            && batch.iter().any(|m| m.point_name() == bad)
        {
            return Err(
                DriverError::new("value too long for type character varying(255)").rejected(),
            );
        }
        self.stored
            .lock()
            .unwrap()
            .extend(batch.iter().map(Message::to_value));
        Ok(())
    }
}

/// A notifier for `driver`, and the guard that installs it (profiling on) on this thread.
fn install(driver: Arc<Flaky>, capacity: usize) -> (Arc<QueueNotifier>, DefaultGuard) {
    install_with(
        driver,
        QueueOptions {
            capacity,
            batch_size: 16,
            interval: Duration::from_millis(5),
            ..QueueOptions::default()
        },
    )
}

/// [`install`] with these options (and a short shutdown timeout).
fn install_with(driver: Arc<Flaky>, opts: QueueOptions) -> (Arc<QueueNotifier>, DefaultGuard) {
    let opts = QueueOptions {
        shutdown_timeout: Duration::from_millis(200),
        ..opts
    };
    let n = QueueNotifier::start(driver, opts).unwrap();
    let scope = dispatch::set_default(&Dispatch::new(n.clone()).enabled(true));
    (n, scope)
}

#[test]
fn full_queue_drops_and_counts_without_blocking() {
    let driver = Arc::new(Flaky::default());
    driver.set_slow(true); // the worker is stuck in the driver
    let (n, _scope) = install(driver.clone(), 64);
    let p = osp::init("k", None, None).unwrap();
    let t0 = Instant::now();
    for _ in 0..1_000 {
        Trace::new("p", osp::Info::new).finish();
    }
    let elapsed = t0.elapsed();
    osp::clean();
    let stats = n.stats();
    assert!(stats.dropped_full > 0, "{stats:?}");
    assert_eq!(stats.queued + stats.dropped_full, 2_000, "{stats:?}");
    assert!(
        elapsed < Duration::from_secs(2),
        "emitting must not wait for the driver: {elapsed:?}"
    );
    driver.set_slow(false);
    assert!(n.flush_for(Duration::from_secs(10)));
    let delivered = driver
        .trace_messages(&p.base_id().to_string())
        .unwrap()
        .len() as u64;
    assert_eq!(delivered, n.stats().delivered);
    assert_eq!(delivered, stats.queued);
}

#[test]
fn the_queue_bounds_the_bytes_its_messages_hold_not_only_their_count() {
    let driver = Arc::new(Flaky::default());
    driver.set_slow(true); // the worker is stuck in the driver
    let opts = QueueOptions {
        capacity: 10_000,
        max_bytes: 1 << 20,
        batch_size: 1,
        interval: Duration::from_millis(5),
        ..QueueOptions::default()
    };
    let (n, _scope) = install_with(driver.clone(), opts);
    let p = osp::init("k", None, None).unwrap();
    // 16 KiB of SQL text a start message: 1 MiB holds ~64 of them, the count would allow 10,000.
    let sql = "x".repeat(16 << 10);
    for _ in 0..500 {
        Trace::new("db", || osp::info!({"statement": sql.clone()})).finish();
    }
    let stats = n.stats();
    assert!(n.queued_bytes() <= 1 << 20, "{}", n.queued_bytes());
    assert!(n.queued_bytes() > 900 << 10, "{}", n.queued_bytes());
    // Start messages beyond the bound are dropped; their stop messages hold nothing and stay.
    assert!((430..=445).contains(&stats.dropped_full), "{stats:?}");
    assert_eq!(stats.queued + stats.dropped_full, 1_000, "{stats:?}");
    // Points without info are bounded by the count only: still taken while the bytes are full.
    Trace::new("plain", osp::Info::new).finish();
    assert_eq!(n.stats().dropped_full, stats.dropped_full);
    osp::clean();
    driver.set_slow(false);
    assert!(n.flush_for(Duration::from_secs(10)));
    assert_eq!(n.queued_bytes(), 0);
    let stored = driver.trace_messages(&p.base_id().to_string()).unwrap();
    assert_eq!(stored.len() as u64, stats.queued + 2);
    // Once drained, large messages are taken again.
    let p2 = osp::init("k", None, None).unwrap();
    Trace::new("db", || osp::info!({"statement": sql.clone()})).finish();
    osp::clean();
    assert!(n.flush_for(Duration::from_secs(10)));
    assert_eq!(
        driver
            .trace_messages(&p2.base_id().to_string())
            .unwrap()
            .len(),
        2
    );
}

#[test]
fn failing_driver_is_retried_and_delivery_resumes() {
    let driver = Arc::new(Flaky::default());
    driver.down.store(true, Ordering::SeqCst);
    let (n, _scope) = install(driver.clone(), 1024);
    let p = osp::init("k", None, None).unwrap();
    for _ in 0..10 {
        Trace::new("p", osp::Info::new).finish();
    }
    osp::clean();
    // The driver is retried: a third call has started, so the first two failures are counted
    // (the worker counts each after its call returns).
    driver.wait_calls(3);
    assert!(n.stats().driver_errors >= 2, "{:?}", n.stats());
    // A flush cannot succeed while the driver is down: it says so at its timeout (which is
    // what this waits for: the flush's own deadline, kept short).
    assert!(
        !n.flush_for(Duration::from_millis(50)),
        "cannot flush while the driver is down"
    );
    assert_eq!(n.stats().delivered, 0);
    driver.down.store(false, Ordering::SeqCst);
    assert!(n.flush_for(Duration::from_secs(10)));
    assert_eq!(
        driver
            .trace_messages(&p.base_id().to_string())
            .unwrap()
            .len(),
        20,
        "nothing lost"
    );
}

#[test]
fn dropping_the_notifier_delivers_what_is_queued() {
    let driver = Arc::new(Flaky::default());
    let n = QueueNotifier::start(
        driver.clone(),
        QueueOptions {
            interval: Duration::from_secs(3600),
            ..QueueOptions::default()
        },
    )
    .unwrap();
    let scope = Dispatch::new(n.clone()).enabled(true);
    let p = dispatch::with_default(&scope, || {
        let p = osp::init("k", None, None).unwrap();
        Trace::new("p", osp::Info::new).finish();
        osp::clean();
        p
    });
    drop(scope);
    drop(p); // the trace held the notifier too
    assert_eq!(Arc::strong_count(&n), 1);
    drop(n); // shutdown flushes despite the hour-long interval
    assert_eq!(driver.stored.lock().unwrap().len(), 2);
}

#[test]
fn init_from_conf_wires_the_notifier_and_reports_driver_errors() {
    // The one test here of the process-wide notifier and switches (init_from_conf sets them):
    // the others install their own in their scopes, so none needs to wait for this one.
    osp::config::register_driver("failing", |_, _| {
        Err(DriverError::new(
            "server at 127.0.0.1:1 refused the connection",
        ))
    });
    let conf = ProfilerConfig::builder()
        .enabled(true)
        .connection_string("failing://:pw@127.0.0.1:1")
        .build();
    let e = osp::init_from_conf(&conf, "p", "s", None)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("refused") && e.contains("failing://:***@127.0.0.1:1") && !e.contains("pw@"),
        "{e}"
    );

    // A scheme whose collector this test keeps, to read back what the notifier wrote.
    static STORE: std::sync::OnceLock<Arc<osp::memory::MemoryCollector>> =
        std::sync::OnceLock::new();
    osp::config::register_driver("kept", |_, _| {
        Ok(STORE.get_or_init(osp::memory::MemoryCollector::new).clone())
    });
    let conf = ProfilerConfig::builder()
        .enabled(true)
        .connection_string("kept://")
        .hmac_keys(["new", "old"])
        .trace_sql(true)
        .build();
    // A trace before: this thread has read (and keeps) the identity in use until now.
    osp::init("k", None, None).unwrap();
    osp::clean();
    let guard = osp::init_from_conf(&conf, "nova", "api", Some("node-1")).unwrap();
    assert_eq!(&*osp::identity::hmac_keys(), ["new", "old"]);
    assert!(osp::trace_sql());
    let p = osp::init("new", None, None).unwrap();
    Trace::new("x", osp::Info::new).finish();
    osp::clean();
    assert!(guard.flush(Duration::from_secs(5)));
    assert_eq!(guard.notifier().unwrap().driver().name(), "memory");
    let msgs = STORE.get().unwrap().trace(&p.base_id().to_string());
    assert_eq!(msgs.len(), 2);
    assert_eq!(
        (
            msgs[0]["project"].as_str(),
            msgs[0]["service"].as_str(),
            msgs[0]["info"]["host"].as_str()
        ),
        (Some("nova"), Some("api"), Some("node-1"))
    );
    drop(guard);
    assert!(
        notifier::get().stats() == notifier::NotifierStats::default(),
        "dropping the guard uninstalls its notifier"
    );

    let off = ProfilerConfig::builder().enabled(false).build();
    let g = osp::init_from_conf(&off, "p", "s", None).unwrap();
    assert!(g.notifier().is_none());
    assert!(
        osp::init("k", None, None).is_none(),
        "enabled = false means false"
    );
    osp::set_enabled(true);
}

/// Lazy info that records which thread dropped it.
struct DropSpy(Arc<Mutex<Vec<std::thread::ThreadId>>>);

impl osp::message::LazyInfo for DropSpy {
    fn write(&self, info: &mut osp::Info) {
        info.insert("spy".into(), true.into());
    }
}

impl Drop for DropSpy {
    fn drop(&mut self) {
        self.0.lock().unwrap().push(std::thread::current().id());
    }
}

#[test]
fn delivered_messages_memory_is_freed_by_the_traced_thread() {
    let driver = Arc::new(Flaky::default());
    let (n, scope) = install(driver.clone(), 1024);
    let drops = Arc::new(Mutex::new(Vec::new()));
    let p = osp::init("k", None, None).unwrap();
    for _ in 0..10 {
        Trace::new("spied", || osp::message::lazy(DropSpy(drops.clone()))).finish();
    }
    assert!(n.flush_for(Duration::from_secs(10)));
    let stored = driver.trace_messages(&p.base_id().to_string()).unwrap();
    assert_eq!(stored.len(), 20);
    assert!(stored.iter().filter(|m| m["info"]["spy"] == true).count() == 10);
    assert!(drops.lock().unwrap().is_empty(), "delivered, not yet freed");
    // Each later message frees one delivered message's memory, here.
    for _ in 0..5 {
        Trace::new("other", osp::Info::new).finish();
    }
    osp::clean();
    let here = std::thread::current().id();
    assert_eq!(*drops.lock().unwrap(), vec![here; 10]);
    drop(scope);
    drop(n);
}

#[test]
fn a_filling_queue_wakes_the_sleeping_worker() {
    let driver = Arc::new(Flaky::default());
    let opts = QueueOptions {
        capacity: 2048,
        batch_size: 64,
        // Without an early wake-up the worker would sleep through the whole test.
        interval: Duration::from_secs(600),
        ..QueueOptions::default()
    };
    let (n, scope) = install_with(driver.clone(), opts);
    let p = osp::init("k", None, None).unwrap();
    // 8,000 messages, four times the capacity, in bursts of 800. Each burst passes a quarter
    // of the capacity (512), so the worker is woken; before the next burst, at most 512 may
    // still wait (what arrived after its last wake-up), so no burst can overflow the queue.
    let mut sent = 0;
    for _ in 0..10 {
        for _ in 0..400 {
            Trace::new("burst", osp::Info::new).finish();
        }
        sent += 800;
        // Each stored batch wakes this wait; without the early wake-up none comes.
        drop(driver.wait_stored("the worker was not woken", |s| sent - s.len() < 512));
    }
    osp::clean();
    let stats = n.stats();
    assert_eq!(stats.dropped_full, 0, "{stats:?}");
    assert!(n.flush_for(Duration::from_secs(10)));
    let stored = driver.trace_messages(&p.base_id().to_string()).unwrap();
    assert_eq!(stored.len(), 8_000);
    drop(scope);
    drop(n);
}

#[test]
fn an_invalid_message_is_dropped_and_counted_without_holding_up_or_taking_valid_ones() {
    let driver = Arc::new(Flaky::default());
    *driver.poison.lock().unwrap() = Some("bad".into());
    let (n, _scope) = install(driver.clone(), 1024);
    let p = osp::init("k", None, None).unwrap();
    // Valid points around an invalid one, in the same batches.
    for i in 0..40 {
        Trace::new(if i == 7 { "bad" } else { "good" }, osp::Info::new).finish();
    }
    assert!(
        n.flush_for(Duration::from_secs(5)),
        "the invalid message does not hold up the queue"
    );
    for _ in 0..10 {
        Trace::new("good", osp::Info::new).finish();
    }
    assert!(n.flush_for(Duration::from_secs(5)));
    osp::clean();
    let stored = driver.trace_messages(&p.base_id().to_string()).unwrap();
    assert_eq!(stored.len(), 98, "every valid message delivered");
    assert!(
        stored
            .iter()
            .all(|m| m["name"] != "bad-start" && m["name"] != "bad-stop")
    );
    let stats = n.stats();
    assert_eq!(
        stats.dropped_failed, 2,
        "the invalid point's two messages, counted"
    );
    assert_eq!(stats.delivered, 98);
    assert_eq!(stats.queued, 100);
}
