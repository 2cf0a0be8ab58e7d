//! Test helpers shared by the workspace's integration tests: in-memory collectors (one per
//! test, installed with a scoped dispatch, or one per test binary installed as the global
//! notifier), ways to read what a trace sent, and waits for events.
//!
//! A test that sets switches (`trace_sql`, ...) or needs a notifier of its own makes its own
//! [`Collector`] and runs its traced code in [`Collector::dispatch`]: tests of one binary then
//! run in parallel, without a lock.

pub mod conformance;
pub mod proxy;
pub mod servers;

use osprofiler_core::dispatch::{self, Dispatch, DispatchFutureExt};
use osprofiler_core::message::Message;
use osprofiler_core::notifier::{self, DriverError, QueueNotifier, QueueOptions, Writer};
use osprofiler_core::{Profiler, memory::MemoryCollector};
use serde_json::Value;
use std::sync::{Arc, Condvar, Mutex, Once, OnceLock};
use std::time::{Duration, Instant};

/// An in-memory collector behind a queue notifier: the global one of a test binary
/// ([`collector`]) or a test's own ([`Collector::new`]).
pub struct Collector {
    /// Where messages land.
    pub memory: Arc<MemoryCollector>,
    /// The notifier in front of it.
    pub notifier: Arc<QueueNotifier>,
    stored: Arc<Signal>,
}

/// The memory collector, telling waiters each time a batch is stored.
struct Signal {
    memory: Arc<MemoryCollector>,
    batches: Mutex<u64>,
    cv: Condvar,
}

impl Writer for Signal {
    fn name(&self) -> &str {
        "memory"
    }
    fn notify(&self, batch: &[Message]) -> Result<(), DriverError> {
        self.memory.notify(batch)?;
        *self.batches.lock().unwrap_or_else(|e| e.into_inner()) += 1;
        self.cv.notify_all();
        Ok(())
    }
    // It stages provisional traces as the memory collector does.
    fn stage(&self, window: Duration) -> Result<(), DriverError> {
        self.memory.stage(window)
    }
    fn keep(&self, base_ids: &[&str]) -> Result<(), DriverError> {
        self.memory.keep(base_ids)
    }
    fn sweep(&self) -> Result<u64, DriverError> {
        self.memory.sweep()
    }
}

/// Messages carry project `proj`, service `svc` and host `test-host` (set once: the identity
/// is process-wide, and every test uses the same).
fn test_identity() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        osprofiler_core::identity::set_identity(Some("proj"), Some("svc"), Some("test-host"))
    });
}

impl Collector {
    /// A collector of the caller's own, installed nowhere: traces started in
    /// [`Collector::dispatch`] deliver to it, and nothing else does.
    #[allow(clippy::new_without_default)]
    pub fn new() -> Collector {
        test_identity();
        let memory = MemoryCollector::new();
        let stored = Arc::new(Signal {
            memory: memory.clone(),
            batches: Mutex::new(0),
            cv: Condvar::new(),
        });
        let notifier = QueueNotifier::start(stored.clone(), QueueOptions::default())
            .expect("start the test notifier");
        Collector {
            memory,
            notifier,
            stored,
        }
    }

    /// The dispatch to this collector, with profiling on and `trace_sql` and
    /// `trace_sql_params` off whatever the process-wide switches say; change them with the
    /// builder (`c.dispatch().trace_sql(true)`).
    pub fn dispatch(&self) -> Dispatch {
        Dispatch::new(self.notifier.clone())
            .enabled(true)
            .trace_sql(false)
            .trace_sql_params(false)
    }

    /// Everything queued so far, delivered (panics after 10 s).
    pub fn flush(&self) {
        assert!(
            self.notifier.flush_for(Duration::from_secs(10)),
            "notifier did not flush"
        );
    }

    /// All messages of the trace, in emission order (after flushing the notifier).
    pub fn messages_of(&self, base_id: &str) -> Vec<Value> {
        self.flush();
        self.memory.trace(base_id)
    }

    /// The messages of the trace once `done` says they are all there — for points that stop
    /// after the call that made them returned (a server's, when the response is sent). Waits
    /// for each stored batch, not for a time; panics after `timeout`. Blocks: call it from a
    /// blocking thread in async code (`spawn_blocking`).
    pub fn wait_for(
        &self,
        base_id: &str,
        timeout: Duration,
        done: impl Fn(&[Value]) -> bool,
    ) -> Vec<Value> {
        let deadline = Instant::now() + timeout;
        loop {
            let seen = *self
                .stored
                .batches
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            let left = deadline.saturating_duration_since(Instant::now());
            self.notifier.flush_for(left);
            let msgs = self.memory.trace(base_id);
            if done(&msgs) {
                return msgs;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "trace {base_id} incomplete after {timeout:?}: {msgs:#?}"
            );
            let batches = self
                .stored
                .batches
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            drop(
                self.stored
                    .cv
                    .wait_timeout_while(batches, left, |b| *b == seen)
                    .unwrap_or_else(|e| e.into_inner()),
            );
        }
    }

    /// Runs `f` inside a fresh trace (in its own trace scope) with `dispatch` installed, and
    /// returns the trace's messages.
    pub async fn traced_run<F: std::future::Future<Output = ()>>(
        &self,
        dispatch: &Dispatch,
        f: F,
    ) -> Vec<Value> {
        let base = osprofiler_core::trace_scope(async {
            let p = osprofiler_core::init("k", None, None).expect("profiling is enabled");
            f.await;
            p.base_id().to_string()
        })
        .with_dispatch(dispatch.clone())
        .await;
        self.messages_of(&base)
    }

    /// [`Collector::traced_run`] for blocking code, on this thread.
    pub fn traced_run_sync(&self, dispatch: &Dispatch, f: impl FnOnce()) -> Vec<Value> {
        let base = dispatch::with_default(dispatch, || {
            let p = osprofiler_core::init("k", None, None).expect("profiling is enabled");
            f();
            osprofiler_core::clean();
            p.base_id().to_string()
        });
        self.messages_of(&base)
    }
}

/// A writer that stores through `0` and writes no trace summary: a service as Python's are
/// (`trace list` then computes the trace from its messages).
pub struct WithoutSummaries(pub Arc<dyn Writer>);

impl Writer for WithoutSummaries {
    fn name(&self) -> &str {
        "without-summaries"
    }

    fn notify(&self, batch: &[Message]) -> Result<(), DriverError> {
        self.0.notify(batch)
    }
}

/// Every point of the trace has stopped (and there is one): the usual `done` of
/// [`Collector::wait_for`].
pub fn all_stopped(msgs: &[Value]) -> bool {
    let ends = |m: &Value, suffix: &str| m["name"].as_str().is_some_and(|n| n.ends_with(suffix));
    !msgs.is_empty()
        && msgs.iter().filter(|m| ends(m, "-start")).all(|start| {
            msgs.iter()
                .any(|m| m["trace_id"] == start["trace_id"] && ends(m, "-stop"))
        })
}

/// One in-memory collector per test binary, installed as the global notifier; messages carry
/// project `proj`, service `svc` and host `test-host`. For tests that change no switch and need
/// no notifier of their own (they read their own traces by base id); the others make a
/// [`Collector::new`].
pub fn collector() -> &'static Collector {
    static C: OnceLock<Collector> = OnceLock::new();
    C.get_or_init(|| {
        let c = Collector::new();
        notifier::set(c.notifier.clone());
        c
    })
}

/// All messages of the trace, in emission order (after flushing the global notifier).
pub fn messages_of(base_id: &str) -> Vec<Value> {
    collector().messages_of(base_id)
}

/// [`Collector::wait_for`] on the global [`collector`].
pub fn wait_for_messages(
    base_id: &str,
    timeout: Duration,
    done: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    collector().wait_for(base_id, timeout, done)
}

/// Waits until `ok()` holds, asking again every few milliseconds; panics naming `what` after
/// `timeout`. For state that tells nobody when it changes (a server's API, a process's exit, a
/// port that starts answering, a notifier's counters); prefer an event when there is one.
pub fn wait_until(what: &str, timeout: Duration, ok: impl FnMut() -> bool) {
    assert!(
        poll_until(timeout, ok),
        "{what} did not happen within {timeout:?}"
    );
}

/// [`wait_until`] that says whether `ok()` came to hold within `timeout` instead of panicking.
pub fn poll_until(timeout: Duration, mut ok: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_millis(1);
    loop {
        if ok() {
            return true;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        // The one pause of the workspace's waits: 1 ms, doubling up to 50 ms.
        std::thread::sleep(pause.min(left));
        pause = (pause * 2).min(Duration::from_millis(50));
    }
}

/// The trace's base id as text.
pub fn base(p: &Profiler) -> String {
    p.base_id().to_string()
}

/// `(name, trace_id, parent_id)` of each message.
pub fn shape(msgs: &[Value]) -> Vec<(String, String, String)> {
    msgs.iter()
        .map(|m| {
            let s = |k: &str| m[k].as_str().unwrap_or_default().to_owned();
            (s("name"), s("trace_id"), s("parent_id"))
        })
        .collect()
}

/// The message named `name` (e.g. "db-start"); panics unless there is exactly one.
pub fn one<'a>(msgs: &'a [Value], name: &str) -> &'a Value {
    let found: Vec<&Value> = msgs.iter().filter(|m| m["name"] == name).collect();
    assert_eq!(found.len(), 1, "expected one {name} in {msgs:#?}");
    found[0]
}

/// The stop message of the point whose start message is `start`; panics if it never stopped.
pub fn stop_of<'a>(msgs: &'a [Value], start: &Value) -> &'a Value {
    msgs.iter()
        .find(|m| {
            m["trace_id"] == start["trace_id"]
                && m["name"].as_str().is_some_and(|n| n.ends_with("-stop"))
        })
        .unwrap_or_else(|| panic!("no stop message for {start}"))
}

/// The start messages of the points whose parent is the point `parent` starts.
pub fn children_of<'a>(msgs: &'a [Value], parent: &Value) -> Vec<&'a Value> {
    msgs.iter()
        .filter(|m| {
            m["parent_id"] == parent["trace_id"]
                && m["name"].as_str().is_some_and(|n| n.ends_with("-start"))
        })
        .collect()
}

/// A fresh table name.
pub fn table() -> String {
    format!("osp_{}", uuid::Uuid::new_v4().simple())
}

/// `(api, statement, rows)` of each db point, from its start and stop messages.
pub fn db_points(msgs: &[Value]) -> Vec<(String, Option<String>, Value)> {
    msgs.iter()
        .filter(|m| m["name"] == "db-start")
        .map(|s| {
            let stop = msgs
                .iter()
                .find(|m| m["name"] == "db-stop" && m["trace_id"] == s["trace_id"])
                .expect("every db point stops");
            (
                s["info"]["db"]["api"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                s["info"]["db"]["statement"].as_str().map(str::to_owned),
                stop["info"]["db"]["rows"].clone(),
            )
        })
        .collect()
}

/// A global allocator that counts allocations, for "free when off" tests:
/// `#[global_allocator] static A: osprofiler_testkit::Counting = osprofiler_testkit::Counting;`
/// then compare [`allocations`] before and after.
pub struct Counting;

static ALLOCS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Allocations made so far by the whole process (with [`Counting`] installed).
pub fn allocations() -> usize {
    ALLOCS.load(std::sync::atomic::Ordering::Relaxed)
}

thread_local! {
    /// No destructor and a const initializer: usable from inside the allocator.
    static THREAD_ALLOCS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// Allocations made so far by the calling thread (with [`Counting`] installed): for code that
/// runs on one thread, unaffected by what the test harness or other threads allocate meanwhile.
pub fn thread_allocations() -> usize {
    THREAD_ALLOCS.with(std::cell::Cell::get)
}

#[allow(unsafe_code)] // delegating to the system allocator is the only unsafe here
unsafe impl std::alloc::GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let _ = THREAD_ALLOCS.try_with(|n| n.set(n.get() + 1));
        // SAFETY: same contract as the caller's.
        unsafe { std::alloc::System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: std::alloc::Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { std::alloc::System.dealloc(ptr, layout) }
    }
}

/// Runs `f` inside a fresh trace (in its own scope) and returns the trace's messages, through
/// the global [`collector`].
pub async fn traced_run<F: std::future::Future<Output = ()>>(f: F) -> Vec<Value> {
    let base = osprofiler_core::trace_scope(async {
        let p = osprofiler_core::init("k", None, None).expect("profiling is enabled");
        f.await;
        p.base_id().to_string()
    })
    .await;
    messages_of(&base)
}

/// The most common value (the first of equals); 0 for an empty slice.
pub fn mode(v: &[usize]) -> usize {
    let mut best = (0, 0);
    for x in v {
        let n = v.iter().filter(|y| *y == x).count();
        if n > best.1 {
            best = (*x, n);
        }
    }
    best.0
}

/// A notifier that keeps every message as a [`Message`], for feeding drivers directly: one per
/// [`captured_trace`], installed in its scope only.
struct Capture(Mutex<Vec<Message>>);

impl notifier::Notifier for Capture {
    fn notify(&self, message: Message) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(message);
    }
}

/// Runs `f` inside a new trace and returns the trace's base id and the messages it sent, as
/// `Message` values in emission order. Messages carry project `proj`, service `svc` and host
/// `test-host`. Safe to call from parallel tests: each call has its own notifier, installed
/// with a scoped dispatch (profiling on, whatever the process-wide switch says).
pub fn captured_trace(f: impl FnOnce()) -> (String, Vec<Message>) {
    captured_trace_with(None, f)
}

/// [`captured_trace`] with the trace's `base_id` given (any text, as a caller's header could
/// carry it).
pub fn captured_trace_with(base_id: Option<&str>, f: impl FnOnce()) -> (String, Vec<Message>) {
    test_identity();
    let cap = Arc::new(Capture(Mutex::default()));
    let scope = Dispatch::new(cap.clone()).enabled(true);
    let base_id = dispatch::with_default(&scope, || {
        let p = osprofiler_core::init("SECRET_KEY", base_id, None).expect("profiling enabled");
        let id = base(&p);
        f();
        osprofiler_core::clean();
        id
    });
    let all = std::mem::take(&mut *cap.0.lock().unwrap_or_else(|e| e.into_inner()));
    let mine = all
        .into_iter()
        .filter(|m| m.base_id().to_text() == base_id)
        .collect();
    (base_id, mine)
}

/// A trace with nesting, SQL, non-ASCII text and one failed point (the collectors' tests),
/// with the `base_id` given or a new one.
pub fn error_trace(base_id: Option<&str>) -> (String, Vec<Message>) {
    use osprofiler_core::{self as osp, Trace};
    captured_trace_with(base_id, || {
        let _wsgi = Trace::new(
            "wsgi",
            || osp::info!({"request": {"path": "/v1/ünïcode", "method": "GET", "query": "", "scheme": "http"}}),
        );
        drop(Trace::new(
            "db",
            || osp::info!({"db": {"statement": "SELECT 'it''s' -- \"etype\"", "system": "sqlite"}}),
        ));
        let mut failing = Trace::new("db", || osp::info!({"db": {"statement": "SELEC 1"}}));
        failing.error_with("OperationalError", "syntax error near \"SELEC\"");
    })
}

/// The Python interpreter of the OSProfiler 4.4.0 oracle virtualenv (made by `scripts/test`),
/// or `$OSPROFILER_PYTHON`. Panics with instructions when it is missing.
pub fn python() -> std::path::PathBuf {
    if let Ok(p) = std::env::var("OSPROFILER_PYTHON") {
        return std::path::PathBuf::from(p);
    }
    let p = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.venv-osp/bin/python");
    assert!(
        p.exists(),
        "Python OSProfiler oracle missing: {} does not exist. Run `scripts/test` (it creates the virtualenv with \
         osprofiler==4.4.0) or set OSPROFILER_PYTHON.",
        p.display()
    );
    p
}

/// A command-line tool of the oracle virtualenv (`osprofiler`, the Python CLI).
pub fn python_tool(name: &str) -> std::path::PathBuf {
    python().with_file_name(name)
}

/// Python OSProfiler's report of a trace: `osprofiler trace show <base_id> --json
/// --connection-string <connection_string>` of the oracle virtualenv; panics with its stderr
/// when it fails.
pub fn python_trace_show(base_id: &str, connection_string: &str) -> Value {
    let mut cmd = std::process::Command::new(python_tool("osprofiler"));
    cmd.args(["trace", "show", base_id, "--json", "--connection-string"])
        .arg(connection_string);
    json_output(
        &format!("Python's `osprofiler trace show` over {connection_string}"),
        &mut cmd,
    )
}

/// Runs `cmd`, which must succeed and print JSON; `what` names it in every failure.
pub fn json_output(what: &str, cmd: &mut std::process::Command) -> Value {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot run {:?}: {e}", cmd.get_program()));
    assert!(
        out.status.success(),
        "{what}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|_| {
        panic!(
            "{what} printed no JSON: {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

const WARM_UP: usize = 50;

/// Checks that `wrapped` allocations per round equal `raw` ones: same median and same mode.
/// Drivers' buffer reuse makes the extremes wander by a couple of allocations from run to run;
/// an allocation added per call moves the median and the mode.
pub fn assert_same_allocations(what: &str, mut raw: Vec<usize>, mut wrapped: Vec<usize>) {
    raw.sort_unstable();
    wrapped.sort_unstable();
    let n = raw.len();
    println!(
        "{what}: allocations per round: raw min/median/max {}/{}/{}, traced (no trace) {}/{}/{}",
        raw[0],
        raw[n / 2],
        raw[n - 1],
        wrapped[0],
        wrapped[n / 2],
        wrapped[n - 1]
    );
    assert!(
        raw[0] > 0,
        "{what}: the counter sees the library's allocations"
    );
    assert_eq!(wrapped[n / 2], raw[n / 2], "{what}: median per round");
    assert_eq!(
        mode(&wrapped),
        mode(&raw),
        "{what}: most common count per round"
    );
}

/// Runs `raw(i)` and `traced(i)` for `n` rounds (after a warm-up), alternating which goes
/// first so position favours neither, and asserts they allocate alike
/// ([`assert_same_allocations`]). Needs [`Counting`] as the global allocator.
pub async fn assert_alloc_parity(
    what: &str,
    n: usize,
    mut raw: impl AsyncFnMut(i64),
    mut traced: impl AsyncFnMut(i64),
) {
    let (mut r, mut t) = (Vec::with_capacity(n), Vec::with_capacity(n));
    for i in 0..(n + WARM_UP) {
        let a = allocations();
        if i % 2 == 0 {
            raw(i as i64).await;
        } else {
            traced(i as i64).await;
        }
        let b = allocations();
        if i % 2 == 0 {
            traced(i as i64).await;
        } else {
            raw(i as i64).await;
        }
        let c = allocations();
        if i >= WARM_UP {
            let (x, y) = if i % 2 == 0 {
                (b - a, c - b)
            } else {
                (c - b, b - a)
            };
            r.push(x);
            t.push(y);
        }
    }
    assert_same_allocations(what, r, t);
}

/// [`assert_alloc_parity`] for blocking calls.
pub fn assert_alloc_parity_sync(
    what: &str,
    n: usize,
    mut raw: impl FnMut(i64),
    mut traced: impl FnMut(i64),
) {
    let rt = std::cell::RefCell::new((&mut raw, &mut traced));
    let fut = assert_alloc_parity(
        what,
        n,
        async |i| (rt.borrow_mut().0)(i),
        async |i| (rt.borrow_mut().1)(i),
    );
    // The closures never wait: one poll completes the future.
    let waker = std::task::Waker::noop();
    let mut cx = std::task::Context::from_waker(waker);
    let mut fut = std::pin::pin!(fut);
    assert!(
        fut.as_mut().poll(&mut cx).is_ready(),
        "blocking closures completed in one poll"
    );
}

/// A TCP port on 127.0.0.1 that was free a moment ago (for a server the test starts itself).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind 127.0.0.1:0")
}

/// One HTTP call to a local service's REST API with curl (JSON body in, JSON answer out), for
/// tests that read back what a server stored (OpenSearch, Jaeger). `service` names the server
/// in every failure message.
pub fn curl_json(service: &str, method: &str, url: &str, body: Option<&str>) -> Value {
    let mut cmd = std::process::Command::new("curl");
    cmd.args(["-sS", "--max-time", "60", "-X", method, url]);
    if let Some(b) = body {
        // NDJSON for _bulk bodies, JSON otherwise.
        let ct = if url.contains("/_bulk") {
            "Content-Type: application/x-ndjson"
        } else {
            "Content-Type: application/json"
        };
        cmd.args(["-H", ct, "--data-binary", b]);
    }
    // curl is Debian's package curl (scripts/test installs it).
    json_output(&format!("{service}: {method} {url}"), &mut cmd)
}

/// The id of the process of this machine that listens on TCP `port` (Linux: from `/proc`), to
/// signal a real server in a test (SIGSTOP to hang it). `None` when none is found.
pub fn pid_listening_on(port: u16) -> Option<u32> {
    let mut inodes = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            // local_address is HEX_IP:HEX_PORT; state 0A is LISTEN; field 9 the inode.
            let listening = f.len() > 9
                && f[3] == "0A"
                && f[1]
                    .rsplit_once(':')
                    .and_then(|(_, p)| u16::from_str_radix(p, 16).ok())
                    == Some(port);
            if listening {
                inodes.push(format!("socket:[{}]", f[9]));
            }
        }
    }
    for proc in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = proc
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(fds) = std::fs::read_dir(proc.path().join("fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            if let Ok(link) = std::fs::read_link(fd.path())
                && inodes.iter().any(|i| link.as_os_str() == i.as_str())
            {
                return Some(pid);
            }
        }
    }
    None
}

/// The first of `secrets` that one of `texts` shows, as `(secret, text)`: for the tests that
/// no key or password reaches `Debug`, errors or logs.
pub fn first_leak<'a>(texts: &'a [String], secrets: &[&'a str]) -> Option<(&'a str, &'a str)> {
    texts.iter().find_map(|t| {
        secrets
            .iter()
            .find(|s| t.contains(**s))
            .map(|s| (*s, t.as_str()))
    })
}
