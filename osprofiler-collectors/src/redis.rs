//! The Redis collectors, byte-compatible with Python OSProfiler's `redis://` driver:
//! `redis://` to one server, and `redissentinel://` to the primary a Sentinel names.
//!
//! Each message is pushed as Python-style JSON with `LPUSH osprofiler_opt:<base_id>` (one list
//! per trace, newest first, no expiry unless staged or retained, below); with
//! `filter_error_trace` on, an error message also sets
//! `osprofiler_error:<base_id>` to `{"base_id": …, "timestamp": …}`. A batch goes in one
//! pipeline. Python's `osprofiler trace show/list` read what this driver writes, and the other
//! way round.
//!
//! Partial trace summaries (see [`osprofiler_core::listing`]) go to a list per trace,
//! `osprofiler_summary:<base_id>`, one JSON object per partial (`RPUSH`): a key none of
//! Python's driver's scans (`osprofiler_opt:*`, `osprofiler:*`, `osprofiler_error:*`) matches,
//! so Python reads the store as before. `osprofiler trace list` adds a trace's partials up
//! when their message count equals the trace list's length (`LLEN`), and reads the messages
//! of the other traces (written by Python, or partly), a few hundred per round trip.
//!
//! # Staging provisional traces
//!
//! A provisional trace (see [`osprofiler_core::sampling`]) is stored in the same keys as any
//! other, so that Python's driver, which knows nothing of staging, writes its points into the
//! same list. What hides it and removes it is a record by base id, in keys none of Python's
//! scans match:
//!
//! - `osprofiler_state:<base_id>`: `p` pending, `d` dropped, `k` kept. Readers skip the traces
//!   whose state is `p` or `d` (`list_traces`, `list_error_traces`, and `list` unless
//!   `include_pending`; one `GET` per trace in the listing's own pipeline), and
//!   `trace_state` reads it. A trace whose base id has a provisional trace's form
//!   ([`osprofiler_core::sampling::is_provisional_id`]) is skipped too, and pending, unless
//!   its state is `k` — also when it has no state key: a Python callee writes its points
//!   straight to `osprofiler_opt:<id>` before the first batch of the Rust service that started
//!   the trace (and with it the state key) lands. Other traces without a state key (a store
//!   written by Python, or by a service that does not stage) read as before; Python's CLI,
//!   which reads none of this, lists pending traces too. A trace of a provisional trace's
//!   form that never gets a state key from a service that stages (its origin died before its
//!   first batch; Python points written after its dropped record was forgotten) is never
//!   swept: it stays hidden until `prune` or `delete_trace` removes it.
//! - `osprofiler_staging`: a sorted set of the pending traces, scored by when they were first
//!   staged (ms, Redis's clock: the hosts' clocks play no part), so that a sweep finds those
//!   whose window is over with one `ZRANGEBYSCORE`.
//! - `osprofiler_dropped`: the same for dropped traces, scored by when they were dropped: a
//!   sweep deletes the keys of each again (late points, ours or Python's), and forgets it once
//!   its second window is over. (One set of both with the state in the key would make each
//!   sweep read the state of every pending trace to find the dropped ones.)
//!
//! Every change to a trace's record is a Lua script, so that concurrent writers, keeps and
//! sweeps never lose a keep nor hide a kept trace again. Next to a batch's messages, in the
//! same pipeline, go two `EVAL`s (their text comes along, so that a `SCRIPT FLUSH` or a new
//! primary cannot leave a batch half stored): before the messages, the batch's provisional
//! traces without a record get `p` and their `since` (never replacing `k` or `d`); after
//! them, the expiries below. Keeps, sweeps and prunes, which may run twice, use `EVALSHA`
//! (loaded on each connection that needs them, again after `NOSCRIPT`): `keep` sets `k`
//! whatever was there (also before any point). A sweep makes a few script calls, none per
//! trace: each handles up to 200 traces that it reads from the sets itself (so the sweeping
//! service sends and parses no id) and returns counts. First the dropped traces, by rank:
//! the keys of each that has any again (`EXISTS`: late points, ours or Python's) are deleted,
//! and the trace is forgotten once its second window is over. (A concurrent sweep's removals
//! may shift a trace past one call's ranks: the next sweep handles it.) Then the due pending
//! traces, `ZRANGEBYSCORE … LIMIT`: each call takes its traces out of `osprofiler_staging`,
//! deletes their data and makes them dropped, so that services sweeping concurrently count
//! each trace once. A dropped trace written to again after its record is gone starts pending
//! again when written by a service that stages (and is hidden anyway when its id has a
//! provisional trace's form), and goes the same way.
//!
//! As a safety net for when no service sweeps any more, the keys of a trace pending or dropped
//! (messages, error marker, summaries, record) expire three windows after its last write by
//! this driver; a keep makes them persistent again (or expire after the retention).
//!
//! # Retention and deletion
//!
//! With `retain(age)` every write by this driver of a trace not pending (messages, summaries,
//! a keep) sets its keys to expire `age` later: a trace expires `age` after its last write,
//! with no scan. `prune` handles the keys without expiry (written by Python, or before the
//! retention was set): it scans `osprofiler_opt:*`, reads the head of each list (the newest
//! entry pushed) and deletes, with a script that checks every entry's timestamp (arrival and
//! time order may differ), the traces none of whose messages is as recent as the cutoff.
//! `delete_trace` deletes a trace's four keys and its staging entries at once.
//!
//! `redissentinel://[:password@]host:port` asks the Sentinel at `host:port` for the primary of
//! the service `sentinel_service_name` (default `mymaster`) and stores there exactly what
//! `redis://` stores; after a failover the next batch goes to the new primary. (Python's own
//! `redissentinel` driver is broken in 4.4.0 with current redis-py; Python reads what this one
//! stores through `redis://` on the primary.) `socket_timeout` (seconds, default 0.1 as in
//! Python) bounds connecting and every read and write.

use ::redis::sentinel::{SentinelClient, SentinelNodeConnectionInfo, SentinelServerType};
use ::redis::{Client, Connection, RedisError};
use osprofiler_core::listing::{self, ListFilter, PartialSummary, StoredTrace, TraceListing};
use osprofiler_core::notifier::{DriverError, Reader, TraceState, TraceSummary, Writer};
use osprofiler_core::{ProfilerConfig, message::Message};
use serde_json::Value;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

const OPT: &str = "osprofiler_opt:";
const ERROR: &str = "osprofiler_error:";
const SUMMARY: &str = "osprofiler_summary:";
/// A trace's staging state: `p` pending, `d` dropped, `k` kept.
const STATE: &str = "osprofiler_state:";
/// Pending traces: member base id, score the time (ms, Redis's clock) they were first staged.
const STAGING: &str = "osprofiler_staging";
/// Dropped traces: member base id, score the time (ms) they were dropped.
const DROPPED: &str = "osprofiler_dropped";

/// Traces handled in one pipeline by prunes.
const IDS_PER_PIPELINE: usize = 500;

/// Traces handled by one call of a sweep's scripts (each blocks Redis while it runs).
const IDS_PER_SCRIPT: u64 = 200;

/// Traces whose messages are read in one pipeline when listing traces without summaries.
const TRACES_PER_PIPELINE: usize = 200;

/// A collector storing messages in Redis (see the [module docs](self)).
///
/// The connection is made on first use and remade after any error (through the Sentinel
/// again for `redissentinel://`), so a Redis that is down at start, restarts or fails over
/// only delays delivery: the notifier keeps and retries batches.
///
/// ```no_run
/// use osprofiler_collectors::RedisDriver;
/// use osprofiler_core::notifier::{Reader, Writer};
/// let redis = RedisDriver::open("redis://127.0.0.1:6379", false).unwrap();
/// for t in redis.list_traces().unwrap() {
///     println!("{} {}", t.base_id, t.timestamp);
/// }
/// ```
pub struct RedisDriver {
    server: Server,
    conn: Mutex<Option<Conn>>,
    /// `None`: follow the process-wide `filter_error_trace` switch.
    filter_error_trace: Option<bool>,
    timeout: Duration,
    /// The staging window in milliseconds ([`Writer::stage`]); 0: not staging.
    window_ms: AtomicU64,
    /// The retention in milliseconds ([`Writer::retain`]); 0: none.
    retention_ms: AtomicU64,
}

/// A connection, and the hashes of the [`scripts`] once loaded on its server.
struct Conn {
    c: Connection,
    shas: Option<Vec<String>>,
}

/// Where the connection goes.
enum Server {
    Direct(Client),
    /// The primary the Sentinel names, asked again at every (re)connection.
    Sentinel(Mutex<SentinelClient>),
}

impl std::fmt::Debug for RedisDriver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self.server {
            Server::Direct(_) => "redis",
            Server::Sentinel(_) => "redissentinel",
        };
        f.debug_struct("RedisDriver")
            .field("server", &kind)
            .field("filter_error_trace", &self.filter_error_trace)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

fn err(what: &str, e: RedisError) -> DriverError {
    DriverError::with_source(what.to_owned(), e)
}

/// A call that failed: no connection, or an error from Redis.
enum Failure {
    Connect(DriverError),
    Redis(RedisError),
}

/// The pipeline's commands Redis refused for what they were given (a key of another type),
/// which fail again however often they are retried; empty when the error is anything else —
/// the connection's or the server's state (down, loading, read-only after a failover) — or
/// when another kind of error came with them.
fn refused_commands(e: &RedisError) -> Vec<usize> {
    let Some(errs) = e.clone().into_server_errors() else {
        return Vec::new();
    };
    if errs.iter().all(|(_, s)| s.code() == "WRONGTYPE") {
        errs.iter().map(|(i, _)| *i).collect()
    } else {
        Vec::new()
    }
}

/// Whether Redis answered `NOSCRIPT` (to any command of a pipeline).
fn no_script(e: &RedisError) -> bool {
    e.clone()
        .into_server_errors()
        .is_some_and(|errs| errs.iter().any(|(_, s)| s.code() == "NOSCRIPT"))
}

/// The `socket_timeout` option as a duration (at least a millisecond).
fn timeout_of(conf: &ProfilerConfig) -> Duration {
    Duration::from_secs_f64(conf.socket_timeout.max(0.001))
}

impl RedisDriver {
    /// A driver for `redis://[:password@]host[:port][/db]` (also `rediss://` for TLS when the
    /// redis crate is built with it) or `redissentinel://[:password@]host:port` (service
    /// `mymaster`), indexing error traces when `filter_error_trace`, with the default
    /// `socket_timeout` (0.1 s). Only the URL is checked here; nothing is connected yet.
    pub fn open(connection_string: &str, filter_error_trace: bool) -> Result<Self, DriverError> {
        let mut driver = Self::from_conf(connection_string, &ProfilerConfig::default())?;
        driver.filter_error_trace = Some(filter_error_trace);
        Ok(driver)
    }

    /// A driver configured by the `[profiler]` options: `socket_timeout`,
    /// `sentinel_service_name`, and error traces indexed while the process-wide
    /// `filter_error_trace` switch is on (`osprofiler_core::set_filter_error_trace` takes effect
    /// at the next batch). What `init_from_conf` uses.
    pub fn from_conf(connection_string: &str, conf: &ProfilerConfig) -> Result<Self, DriverError> {
        let timeout = timeout_of(conf);
        let server = match connection_string.split_once("://") {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("redissentinel") => {
                Server::Sentinel(Mutex::new(sentinel(rest, &conf.sentinel_service_name)?))
            }
            _ => Server::Direct(
                Client::open(connection_string)
                    .map_err(|e| err("bad redis:// connection string", e))?,
            ),
        };
        Ok(RedisDriver {
            server,
            conn: Mutex::new(None),
            filter_error_trace: None,
            timeout,
            window_ms: AtomicU64::new(0),
            retention_ms: AtomicU64::new(0),
        })
    }

    /// Whether error traces are indexed now.
    fn indexes_errors(&self) -> bool {
        self.filter_error_trace
            .unwrap_or_else(osprofiler_core::filter_error_trace)
    }

    fn connect(&self) -> Result<Connection, DriverError> {
        let client = match &self.server {
            Server::Direct(c) => c.clone(),
            Server::Sentinel(s) => s
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get_client()
                .map_err(|e| err("the Redis Sentinel named no reachable primary", e))?,
        };
        let c = client
            .get_connection_with_timeout(self.timeout)
            .map_err(|e| err("cannot connect to Redis", e))?;
        c.set_read_timeout(Some(self.timeout))
            .and_then(|()| c.set_write_timeout(Some(self.timeout)))
            .map_err(|e| err("cannot set Redis timeouts", e))?;
        Ok(c)
    }

    /// Runs `f` on the connection, connecting first if needed; drops the connection after an
    /// error (other than Redis refusing some data) so the next call reconnects.
    fn call<T>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, RedisError>,
    ) -> Result<T, Failure> {
        self.call_with(false, |c, _| f(c))
    }

    /// [`RedisDriver::call`], with the hashes of the [`scripts`] (indexed as
    /// [`scripts::ALL`]) when `scripts`: loaded (`SCRIPT LOAD`) on each new connection that
    /// needs them, so that readers never load them (a read-only role may not be allowed to),
    /// and again after a failover or a restart (the error drops the connection).
    fn call_with<T>(
        &self,
        scripts: bool,
        f: impl FnOnce(&mut Connection, &[String]) -> Result<T, RedisError>,
    ) -> Result<T, Failure> {
        let mut guard = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        if guard.is_none() {
            *guard = Some(Conn {
                c: self.connect().map_err(Failure::Connect)?,
                shas: None,
            });
        }
        let conn = guard.as_mut().expect("connected above");
        if scripts && conn.shas.is_none() {
            let mut pipe = ::redis::pipe();
            for body in scripts::ALL.iter() {
                pipe.cmd("SCRIPT").arg("LOAD").arg(body);
            }
            match pipe.query::<Vec<String>>(&mut conn.c) {
                Ok(shas) => conn.shas = Some(shas),
                Err(e) => {
                    *guard = None;
                    return Err(Failure::Redis(e));
                }
            }
        }
        let shas = conn.shas.as_deref().unwrap_or(&[]);
        f(&mut conn.c, shas).map_err(|e| {
            if refused_commands(&e).is_empty() {
                *guard = None;
            }
            Failure::Redis(e)
        })
    }

    /// [`RedisDriver::call_with`] the scripts, with the error described as `what`. Once more
    /// on a new connection when Redis lost the scripts (`SCRIPT FLUSH`, a restart between two
    /// calls): what calls this (keeps, sweeps, prunes) may run twice.
    fn with_scripts<T>(
        &self,
        what: &str,
        mut f: impl FnMut(&mut Connection, &[String]) -> Result<T, RedisError>,
    ) -> Result<T, DriverError> {
        let result = match self.call_with(true, &mut f) {
            Err(Failure::Redis(e)) if no_script(&e) => self.call_with(true, &mut f),
            result => result,
        };
        result.map_err(|e| match e {
            Failure::Connect(e) => e,
            Failure::Redis(e) => err(what, e),
        })
    }

    /// The staging window, when staging.
    fn window(&self) -> Option<u64> {
        Some(self.window_ms.load(Relaxed)).filter(|&w| w > 0)
    }

    /// The expiry of the keys of a provisional trace not kept (a safety net for when no
    /// service sweeps any more): three windows.
    fn pending_ttl_ms(&self) -> u64 {
        self.window_ms.load(Relaxed).saturating_mul(3)
    }

    /// [`RedisDriver::call`] with the error described as `what`.
    fn with_conn<T>(
        &self,
        what: &str,
        f: impl FnOnce(&mut Connection) -> Result<T, RedisError>,
    ) -> Result<T, DriverError> {
        self.call(f).map_err(|e| match e {
            Failure::Connect(e) => e,
            Failure::Redis(e) => err(what, e),
        })
    }

    fn scan(conn: &mut Connection, pattern: &str) -> Result<Vec<String>, RedisError> {
        let mut keys: Vec<String> = conn.scan_match(pattern)?.collect::<Result<_, _>>()?;
        keys.sort();
        keys.dedup();
        Ok(keys)
    }
}

/// The Sentinel client of `[:password@]host:port` (what follows `redissentinel://`): the
/// password is the primary's, as in Python's driver.
fn sentinel(rest: &str, service: &str) -> Result<SentinelClient, DriverError> {
    let bad = || {
        DriverError::new(format!(
            "expected redissentinel://[:password@]host:port (one Sentinel), got redissentinel://{}",
            osprofiler_core::config::redact(&format!("x://{rest}")).trim_start_matches("x://")
        ))
    };
    let rest = rest.trim_end_matches('/');
    let (password, addr) = match rest.rsplit_once('@') {
        Some((userinfo, addr)) => (
            Some(userinfo.rsplit_once(':').map_or(userinfo, |(_, p)| p)),
            addr,
        ),
        None => (None, rest),
    };
    if addr.is_empty() || addr.contains('/') || !addr.contains(':') {
        return Err(bad());
    }
    let mut node = ::redis::RedisConnectionInfo::default();
    if let Some(p) = password.filter(|p| !p.is_empty()) {
        node = node.set_password(p);
    }
    let info = SentinelNodeConnectionInfo::default().set_redis_connection_info(node);
    SentinelClient::build(
        vec![format!("redis://{addr}")],
        service.to_owned(),
        Some(info),
        SentinelServerType::Master,
    )
    .map_err(|e| err("bad redissentinel:// connection string", e))
}

use ::redis::Commands as _;

impl Writer for RedisDriver {
    fn name(&self) -> &str {
        "redis"
    }

    fn notify(&self, batch: &[Message]) -> Result<(), DriverError> {
        if batch.is_empty() {
            return Ok(());
        }
        let index_errors = self.indexes_errors();
        let window = self.window();
        let retention = self.retention_ms.load(Relaxed);
        // Traces to stage before their messages go in (so that no reader sees them in
        // between), and traces whose keys get an expiry after: the safety net of those
        // pending, the retention of the others.
        let mut staged: Vec<String> = Vec::new();
        let mut touched: Vec<String> = Vec::new();
        if window.is_some() || retention > 0 {
            for m in batch {
                let provisional = window.is_some() && m.is_provisional();
                if !provisional && retention == 0 {
                    continue;
                }
                let id = m.base_id().to_text();
                if provisional && !staged.iter().any(|s| *s == id) {
                    staged.push(id.to_string());
                }
                if !touched.iter().any(|s| *s == id) {
                    touched.push(id.to_string());
                }
            }
        }
        let ttl = self.pending_ttl_ms();
        // How many messages each command of the pipeline stores.
        let mut stores: Vec<usize> = Vec::new();
        let result = self.call(|c| {
            let mut pipe = ::redis::pipe();
            if !staged.is_empty() {
                let mut keys = vec![STAGING.to_owned()];
                keys.extend(staged.iter().map(|id| key(STATE, id)));
                eval(&mut pipe, scripts::STAGE, &keys)
                    .arg(ttl)
                    .arg(&staged)
                    .ignore();
                stores.push(0);
            }
            // One LPUSH per run of messages of the same trace: `LPUSH k a b` leaves the list
            // as `LPUSH k a; LPUSH k b` does (newest first), in one command.
            let mut run: Run = None;
            type Run = Option<(String, ::redis::Cmd, usize)>;
            fn end_run(pipe: &mut ::redis::Pipeline, stores: &mut Vec<usize>, run: &mut Run) {
                if let Some((_, cmd, n)) = run.take() {
                    pipe.add_command(cmd).ignore();
                    stores.push(n);
                }
            }
            for m in batch {
                let base_id = m.base_id().to_text();
                match &mut run {
                    Some((id, cmd, n)) if *id == *base_id => {
                        cmd.arg(m.to_json());
                        *n += 1;
                    }
                    _ => {
                        end_run(&mut pipe, &mut stores, &mut run);
                        let mut cmd = ::redis::cmd("LPUSH");
                        cmd.arg(format!("{OPT}{base_id}")).arg(m.to_json());
                        run = Some((base_id.to_string(), cmd, 1));
                    }
                }
                if index_errors && m.error_type().is_some() {
                    end_run(&mut pipe, &mut stores, &mut run);
                    let marker = osprofiler_core::pyjson::to_string(&serde_json::json!({
                        "base_id": base_id,
                        "timestamp": m.timestamp(),
                    }));
                    pipe.cmd("SET")
                        .arg(format!("{ERROR}{base_id}"))
                        .arg(marker)
                        .ignore();
                    stores.push(0);
                }
            }
            end_run(&mut pipe, &mut stores, &mut run);
            if !touched.is_empty() {
                touch(&mut pipe, &touched, ttl, retention);
                stores.push(0);
            }
            pipe.query::<()>(c)
        });
        match result {
            Ok(()) => Ok(()),
            Err(Failure::Connect(e)) => Err(e),
            Err(Failure::Redis(e)) => {
                // Redis ran every other command of the pipeline: say how many messages it
                // refused rather than have the batch sent again.
                let refused: usize = refused_commands(&e)
                    .iter()
                    .map(|&i| stores.get(i).copied().unwrap_or(0))
                    .sum();
                let e = err("cannot store messages in Redis", e);
                Err(if refused > 0 {
                    e.partly_stored(refused)
                } else {
                    e
                })
            }
        }
    }

    fn stores_summaries(&self) -> bool {
        true
    }

    fn write_summaries(&self, parts: &[PartialSummary]) -> Result<(), DriverError> {
        if parts.is_empty() {
            return Ok(());
        }
        let mut pipe = ::redis::pipe();
        for p in parts {
            let json = serde_json::to_string(p).map_err(|e| {
                DriverError::with_source("cannot encode a trace summary", e).rejected()
            })?;
            pipe.cmd("RPUSH")
                .arg(format!("{SUMMARY}{}", p.base_id))
                .arg(json)
                .ignore();
        }
        // The summaries of a pending trace expire with its messages; those of the others
        // after the retention.
        let retention = self.retention_ms.load(Relaxed);
        if self.window().is_none() && retention == 0 {
            return self.with_conn("cannot store trace summaries in Redis", |c| {
                pipe.query::<()>(c)
            });
        }
        let mut ids: Vec<&str> = parts.iter().map(|p| p.base_id.as_str()).collect();
        ids.sort_unstable();
        ids.dedup();
        let ttl = self.pending_ttl_ms();
        self.with_conn("cannot store trace summaries in Redis", |c| {
            touch(&mut pipe, &ids, ttl, retention);
            pipe.query::<()>(c)
        })
    }

    fn stage(&self, window: Duration) -> Result<(), DriverError> {
        self.window_ms.store(
            u64::try_from(window.as_millis()).unwrap_or(u64::MAX).max(1),
            Relaxed,
        );
        Ok(())
    }

    fn keep(&self, base_ids: &[&str]) -> Result<(), DriverError> {
        if base_ids.is_empty() {
            return Ok(());
        }
        let retention = self.retention_ms.load(Relaxed);
        self.with_scripts("cannot keep traces in Redis", |c, shas| {
            let mut pipe = ::redis::pipe();
            for id in base_ids {
                let [opt, error, summary, state] = trace_keys(id);
                evalsha(
                    &mut pipe,
                    shas,
                    scripts::KEEP,
                    &[
                        state,
                        STAGING.to_owned(),
                        DROPPED.to_owned(),
                        opt,
                        error,
                        summary,
                    ],
                )
                .arg(*id)
                .arg(retention)
                .ignore();
            }
            pipe.query::<()>(c)
        })
    }

    /// Removes the late points of the dropped traces (and their records once their second
    /// window is over), then drops the pending traces whose window is over (see the
    /// [module docs](self)).
    fn sweep(&self) -> Result<u64, DriverError> {
        let Some(window) = self.window() else {
            return Ok(0);
        };
        let ttl = self.pending_ttl_ms();
        self.with_scripts("cannot sweep provisional traces in Redis", |c, shas| {
            // Late points of the dropped traces, a chunk of the set per call from the lowest
            // rank up: what a call keeps in the set is skipped by the next one. (A trace that
            // a concurrent sweep's removals move past is handled by the next sweep.)
            let mut rank = 0;
            loop {
                let (seen, left, _purged): (u64, u64, u64) = evalsha_cmd(shas, scripts::PURGE)
                    .arg(1)
                    .arg(DROPPED)
                    .arg(window)
                    .arg(rank)
                    .arg(IDS_PER_SCRIPT)
                    .query(c)?;
                rank += left;
                if seen < IDS_PER_SCRIPT {
                    break;
                }
            }
            // The due pending traces, a chunk per call: each call takes them out of the set, so
            // that each is counted by one call of one sweep.
            let mut expired = 0;
            loop {
                let (seen, turned): (u64, u64) = evalsha_cmd(shas, scripts::EXPIRE)
                    .arg(2)
                    .arg(STAGING)
                    .arg(DROPPED)
                    .arg(window)
                    .arg(ttl)
                    .arg(IDS_PER_SCRIPT)
                    .query(c)?;
                expired += turned;
                if seen < IDS_PER_SCRIPT {
                    break;
                }
            }
            Ok(expired)
        })
    }

    /// From now on every write of a trace not pending sets its keys to expire `age` after it
    /// (see the [module docs](self)).
    fn retain(&self, age: Duration) -> Result<(), DriverError> {
        self.retention_ms.store(
            u64::try_from(age.as_millis()).unwrap_or(u64::MAX).max(1),
            Relaxed,
        );
        Ok(())
    }

    /// Scans `osprofiler_opt:*`: a trace whose newest entry (the head of its list) is older
    /// than `cutoff` is deleted by a script that checks every entry (entries are in arrival
    /// order, not quite time order).
    fn prune(&self, cutoff: std::time::SystemTime) -> Result<u64, DriverError> {
        let cutoff =
            osprofiler_core::clock::format_timestamp(osprofiler_core::clock::system_micros(cutoff));
        self.with_scripts("cannot delete old traces from Redis", |c, shas| {
            let keys = Self::scan(c, &format!("{OPT}*"))?;
            let mut pruned = 0;
            for chunk in keys.chunks(IDS_PER_PIPELINE) {
                let mut pipe = ::redis::pipe();
                for k in chunk {
                    pipe.cmd("LINDEX").arg(k).arg(0);
                }
                let heads: Vec<::redis::RedisResult<Option<Vec<u8>>>> =
                    pipe.ignore_errors().query(c)?;
                let mut pipe = ::redis::pipe();
                let mut any = false;
                for (k, head) in chunk.iter().zip(heads) {
                    let Ok(Some(head)) = head else { continue };
                    if timestamp_of(&head).is_some_and(|t| t >= cutoff) {
                        continue;
                    }
                    let id = &k[OPT.len()..];
                    let [opt, error, summary, state] = trace_keys(id);
                    evalsha(
                        &mut pipe,
                        shas,
                        scripts::PRUNE,
                        &[
                            opt,
                            error,
                            summary,
                            state,
                            STAGING.to_owned(),
                            DROPPED.to_owned(),
                        ],
                    )
                    .arg(id)
                    .arg(&cutoff);
                    any = true;
                }
                if any {
                    let deleted: Vec<::redis::RedisResult<u64>> = pipe.ignore_errors().query(c)?;
                    pruned += deleted.into_iter().filter_map(Result::ok).sum::<u64>();
                }
            }
            Ok(pruned)
        })
    }

    fn delete_trace(&self, base_id: &str) -> Result<u64, DriverError> {
        let [opt, error, summary, state] = trace_keys(base_id);
        let (len, ..): (u64, u64, u64, u64) =
            self.with_conn("cannot delete the trace from Redis", |c| {
                ::redis::pipe()
                    .atomic()
                    .cmd("LLEN")
                    .arg(&opt)
                    .cmd("DEL")
                    .arg(&[&opt, &error, &summary, &state])
                    .cmd("ZREM")
                    .arg(STAGING)
                    .arg(base_id)
                    .cmd("ZREM")
                    .arg(DROPPED)
                    .arg(base_id)
                    .query(c)
            })?;
        Ok(len)
    }
}

/// `prefix` + `id`.
fn key(prefix: &str, id: &str) -> String {
    format!("{prefix}{id}")
}

/// A trace's keys: messages, error marker, summaries, staging state.
fn trace_keys(id: &str) -> [String; 4] {
    [
        key(OPT, id),
        key(ERROR, id),
        key(SUMMARY, id),
        key(STATE, id),
    ]
}

/// Adds `EVALSHA` of one of the [`scripts`] with `keys` to `pipe`; the caller adds the
/// arguments.
fn evalsha<'p>(
    pipe: &'p mut ::redis::Pipeline,
    shas: &[String],
    script: usize,
    keys: &[String],
) -> &'p mut ::redis::Pipeline {
    pipe.cmd("EVALSHA")
        .arg(shas.get(script).map_or("", String::as_str))
        .arg(keys.len())
        .arg(keys)
}

/// `EVALSHA` of one of the [`scripts`]; the caller adds the number of keys, the keys and the
/// arguments.
fn evalsha_cmd(shas: &[String], script: usize) -> ::redis::Cmd {
    let mut cmd = ::redis::cmd("EVALSHA");
    cmd.arg(shas.get(script).map_or("", String::as_str));
    cmd
}

/// Adds `EVAL` of one of the [`scripts`] with `keys` to `pipe`; the caller adds the arguments.
/// For the scripts of a batch of messages: never `NOSCRIPT` (the script's text comes along,
/// and Redis caches it by its hash), so the batch is never half stored for want of a script.
fn eval<'p>(
    pipe: &'p mut ::redis::Pipeline,
    script: usize,
    keys: &[String],
) -> &'p mut ::redis::Pipeline {
    pipe.cmd("EVAL")
        .arg(&scripts::ALL[script])
        .arg(keys.len())
        .arg(keys)
}

/// Adds the [`scripts::TOUCH`] of traces `ids` to `pipe`.
fn touch(pipe: &mut ::redis::Pipeline, ids: &[impl AsRef<str>], ttl: u64, retention: u64) {
    let keys: Vec<String> = ids
        .iter()
        .flat_map(|id| {
            let [opt, error, summary, state] = trace_keys(id.as_ref());
            [state, opt, error, summary]
        })
        .collect();
    eval(pipe, scripts::TOUCH, &keys)
        .arg(ttl)
        .arg(retention)
        .ignore();
}

/// The `timestamp` of a stored message.
fn timestamp_of(entry: &[u8]) -> Option<String> {
    let v: Value = serde_json::from_slice(entry).ok()?;
    v["timestamp"].as_str().map(str::to_owned)
}

/// The staging state of trace `base_id` whose record (`GET osprofiler_state:<id>`) is
/// `state`: its record's, else pending for an id of a provisional trace's form (its points
/// came before its record: see [`osprofiler_core::sampling::is_provisional_id`]), else stored.
fn state_of(base_id: &str, state: Option<&[u8]>) -> TraceState {
    match state {
        Some(b"p") => TraceState::Pending,
        Some(b"d") => TraceState::Dropped,
        Some(b"k") => TraceState::Stored,
        _ if osprofiler_core::sampling::is_provisional_id(base_id) => TraceState::Pending,
        _ => TraceState::Stored,
    }
}

/// Whether trace `base_id` with this record is hidden from readers: pending or dropped (by
/// [`state_of`]).
fn hidden(base_id: &str, state: Option<&[u8]>) -> bool {
    state_of(base_id, state) != TraceState::Stored
}

impl Reader for RedisDriver {
    fn trace_messages(&self, base_id: &str) -> Result<Vec<Value>, DriverError> {
        let raw: Vec<Vec<u8>> = self.with_conn("cannot read the trace from Redis", |c| {
            c.lrange(format!("{OPT}{base_id}"), 0, -1)
        })?;
        // Newest first, as Python reads them: the report then breaks ties between points that
        // started in the same millisecond exactly as Python's does. An entry that is not JSON
        // comes as a string of its text: the report counts it as unreadable, not hidden.
        Ok(raw
            .iter()
            .map(|b| {
                serde_json::from_slice(b)
                    .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(b).into_owned()))
            })
            .collect())
    }

    /// Hides the traces whose `osprofiler_state:<base_id>` is `p` or `d` (read in the same
    /// pipeline as the first entries), and those with an id of a provisional trace's form
    /// unless it is `k`.
    fn list_traces(&self) -> Result<Vec<TraceSummary>, DriverError> {
        let firsts: Vec<(String, Option<Vec<u8>>)> =
            self.with_conn("cannot list traces in Redis", |c| {
                let keys = Self::scan(c, &format!("{OPT}*"))?;
                if keys.is_empty() {
                    // An empty pipeline is an error ("empty command"), not an empty answer.
                    return Ok(Vec::new());
                }
                let mut pipe = ::redis::pipe();
                for k in &keys {
                    pipe.cmd("LINDEX").arg(k).arg(-1);
                    pipe.cmd("GET").arg(key(STATE, &k[OPT.len()..]));
                }
                // A key under the prefix that is not a list is not a trace: skipped, not an
                // error that would hide every trace.
                let replies: Vec<::redis::RedisResult<Option<Vec<u8>>>> =
                    pipe.ignore_errors().query(c)?;
                let mut replies = replies.into_iter();
                let mut out = Vec::with_capacity(keys.len());
                for k in keys {
                    let (Some(first), Some(state)) = (replies.next(), replies.next()) else {
                        break;
                    };
                    if !hidden(&k[OPT.len()..], state.ok().flatten().as_deref()) {
                        out.push((k, first.ok().flatten()));
                    }
                }
                Ok(out)
            })?;
        let mut out: Vec<TraceSummary> = Vec::with_capacity(firsts.len());
        // Traces whose first stored entry is unreadable (written by another tool, cut short):
        // listed all the same, with the earliest timestamp of their readable entries.
        let mut unreadable_first: Vec<String> = Vec::new();
        for (key, first) in firsts {
            let Some(first) = first else { continue };
            match timestamp_of(&first) {
                Some(timestamp) => out.push(TraceSummary {
                    base_id: key[OPT.len()..].to_owned(),
                    timestamp,
                }),
                None => unreadable_first.push(key),
            }
        }
        if !unreadable_first.is_empty() {
            let entries: Vec<Vec<Vec<u8>>> =
                self.with_conn("cannot list traces in Redis", |c| {
                    let mut pipe = ::redis::pipe();
                    for k in &unreadable_first {
                        pipe.cmd("LRANGE").arg(k).arg(0).arg(-1);
                    }
                    pipe.query(c)
                })?;
            for (key, entries) in unreadable_first.into_iter().zip(entries) {
                let timestamp = entries
                    .iter()
                    .filter_map(|e| timestamp_of(e))
                    .min()
                    .unwrap_or_default();
                out.push(TraceSummary {
                    base_id: key[OPT.len()..].to_owned(),
                    timestamp,
                });
            }
        }
        out.sort_by(|a, b| a.timestamp.cmp(&b.timestamp));
        Ok(out)
    }

    /// From the `osprofiler_summary:<base_id>` partials where they account for every stored
    /// message, else from the messages (see the [module docs](self)).
    fn list(&self, filter: &ListFilter) -> Result<Vec<TraceListing>, DriverError> {
        type Found = (Vec<StoredTrace>, Vec<PartialSummary>);
        let (counts, parts): Found = self.with_conn("cannot list traces in Redis", |c| {
            let keys = Self::scan(c, &format!("{OPT}*"))?;
            if keys.is_empty() {
                return Ok((Vec::new(), Vec::new()));
            }
            let mut pipe = ::redis::pipe();
            for k in &keys {
                pipe.cmd("LLEN").arg(k);
                pipe.cmd("LRANGE")
                    .arg(format!("{SUMMARY}{}", &k[OPT.len()..]))
                    .arg(0)
                    .arg(-1);
                pipe.cmd("GET").arg(key(STATE, &k[OPT.len()..]));
            }
            // A key that is not a list (under either prefix) is skipped, not an error.
            let replies: Vec<::redis::Value> = pipe.ignore_errors().query(c)?;
            let mut counts = Vec::with_capacity(keys.len());
            let mut parts = Vec::new();
            for (k, triple) in keys.iter().zip(replies.chunks(3)) {
                let Some(::redis::Value::Int(n)) = triple.first() else {
                    continue;
                };
                let state = match triple.get(2) {
                    Some(::redis::Value::BulkString(state)) => Some(state.as_slice()),
                    _ => None,
                };
                if !filter.include_pending && hidden(&k[OPT.len()..], state) {
                    continue;
                }
                counts.push(StoredTrace {
                    base_id: k[OPT.len()..].to_owned(),
                    messages: (*n).max(0) as u64,
                });
                if let Some(::redis::Value::Array(items)) = triple.get(1) {
                    for item in items {
                        if let ::redis::Value::BulkString(b) = item
                            && let Ok(p) = serde_json::from_slice::<PartialSummary>(b)
                        {
                            parts.push(p);
                        }
                    }
                }
            }
            Ok((counts, parts))
        })?;
        let mut missing = Vec::new();
        let starts = |ids: &[String]| {
            // The oldest entry of each list, as Python's `list_traces` reads it.
            let firsts: Vec<::redis::RedisResult<Option<Vec<u8>>>> =
                self.with_conn("cannot list traces in Redis", |c| {
                    let mut pipe = ::redis::pipe();
                    for id in ids {
                        pipe.cmd("LINDEX").arg(format!("{OPT}{id}")).arg(-1);
                    }
                    pipe.ignore_errors().query(c)
                })?;
            Ok(ids
                .iter()
                .zip(firsts)
                .filter_map(|(id, first)| {
                    let first: Value = serde_json::from_slice(&first.ok()??).ok()?;
                    let us = osprofiler_core::clock::parse_timestamp(first["timestamp"].as_str()?)?;
                    Some((id.clone(), us))
                })
                .collect())
        };
        let mut out = listing::list_from_summaries(counts, parts, filter, starts, |ids| {
            missing = ids.to_vec();
            Ok::<_, DriverError>(Vec::new())
        })?;
        if missing.is_empty() {
            return Ok(out);
        }
        for chunk in missing.chunks(TRACES_PER_PIPELINE) {
            let lists: Vec<::redis::RedisResult<Vec<Vec<u8>>>> =
                self.with_conn("cannot read traces from Redis", |c| {
                    let mut pipe = ::redis::pipe();
                    for id in chunk {
                        pipe.cmd("LRANGE").arg(format!("{OPT}{id}")).arg(0).arg(-1);
                    }
                    pipe.ignore_errors().query(c)
                })?;
            for (id, raw) in chunk.iter().zip(lists) {
                // Unparsable entries are skipped: the trace is listed whatever they hold.
                let messages: Vec<Value> = raw
                    .unwrap_or_default()
                    .iter()
                    .filter_map(|b| serde_json::from_slice(b).ok())
                    .collect();
                out.push(listing::listing_of(id, &messages));
            }
        }
        Ok(filter.apply(out))
    }

    /// `osprofiler_state:<base_id>`: `p` pending, `d` dropped, `k` stored; without one,
    /// pending for an id of a provisional trace's form, else stored.
    fn trace_state(&self, base_id: &str) -> Result<TraceState, DriverError> {
        let state: Option<Vec<u8>> = self
            .with_conn("cannot read a trace's state in Redis", |c| {
                c.get(key(STATE, base_id))
            })?;
        Ok(state_of(base_id, state.as_deref()))
    }

    /// Hides the traces whose `osprofiler_state:<base_id>` is `p` or `d`, and those with an
    /// id of a provisional trace's form unless it is `k`.
    fn list_error_traces(&self) -> Result<Vec<TraceSummary>, DriverError> {
        let values: Vec<Option<Vec<u8>>> =
            self.with_conn("cannot list error traces in Redis", |c| {
                let keys = Self::scan(c, &format!("{ERROR}*"))?;
                if keys.is_empty() {
                    return Ok(Vec::new());
                }
                let states: Vec<Option<Vec<u8>>> = c.mget(
                    keys.iter()
                        .map(|k| key(STATE, &k[ERROR.len()..]))
                        .collect::<Vec<_>>(),
                )?;
                let shown: Vec<&String> = keys
                    .iter()
                    .zip(states)
                    .filter(|(k, state)| !hidden(&k[ERROR.len()..], state.as_deref()))
                    .map(|(k, _)| k)
                    .collect();
                if shown.is_empty() {
                    return Ok(Vec::new());
                }
                c.mget(shown)
            })?;
        let mut out: Vec<TraceSummary> = values
            .into_iter()
            .flatten()
            .filter_map(|b| serde_json::from_slice::<Value>(&b).ok())
            .filter_map(|v| {
                Some(TraceSummary {
                    base_id: v["base_id"].as_str()?.to_owned(),
                    timestamp: v["timestamp"].as_str().unwrap_or_default().to_owned(),
                })
            })
            .collect();
        out.sort_by(|a, b| a.timestamp.cmp(&b.timestamp));
        Ok(out)
    }
}

/// The Lua scripts of staging, retention and deletion (`EVAL` with a batch of messages,
/// `EVALSHA` loaded once per connection otherwise): each reads and writes its traces' keys
/// atomically, so that concurrent writers, keeps and sweeps from any number of processes
/// never lose a keep, never hide a kept trace again, and count each expired trace once. Times are Redis's (`TIME`), so the hosts' clocks
/// do not matter.
mod scripts {
    use super::{ERROR, OPT, STATE, SUMMARY};

    /// `now_ms()`: Redis's clock in milliseconds. Scripts that write after reading the time
    /// need effects replication: the default from Redis 5, asked for on older ones.
    const NOW: &str = "
if redis.replicate_commands then redis.replicate_commands() end
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
";

    /// Before a batch's messages, for its provisional traces: a pending record for each
    /// unless it has one (pending, dropped or kept: never downgraded).
    /// KEYS: staging, then each trace's state. ARGV: expiry (ms), then each trace's base id.
    pub(super) const STAGE: usize = 0;
    /// After a batch's messages or summaries, for its traces: the expiry of each one's keys,
    /// the safety net (three windows) while pending or dropped, else the retention if any.
    /// KEYS: state, opt, error, summary of each trace. ARGV: safety expiry (ms, 0 none),
    /// retention (ms, 0 none).
    pub(super) const TOUCH: usize = 1;
    /// Keeps a trace: state `k` (no expiry, or the retention), out of the staging sets, its
    /// keys persisted (or expiring after the retention).
    /// KEYS: state, staging, dropped, opt, error, summary. ARGV: base id, retention (ms, 0 none).
    pub(super) const KEEP: usize = 2;
    /// Up to `count` pending traces whose window is over, taken out of the staging set: the
    /// data of each whose record is still `p` deleted, its record turned dropped (since now).
    /// Returns {traces taken, traces turned} (each counted by the one call that took it,
    /// however many sweep). The traces' keys are made from their ids (as every key of this
    /// driver, on one server: no Redis Cluster).
    /// KEYS: staging, dropped. ARGV: window (ms), expiry (ms), count.
    pub(super) const EXPIRE: usize = 3;
    /// The dropped traces of ranks `start`..`start + count`: the data of each deleted again
    /// when there is any (late points: `EXISTS` first, so that a trace with none costs no
    /// write); each forgotten once its second window is over (or its record is no longer
    /// `d`). Returns {traces read, traces left in the set, traces whose data was deleted}.
    /// KEYS: dropped. ARGV: window (ms), start, count.
    pub(super) const PURGE: usize = 4;
    /// Deletes a trace, its record included, when no stored message of it is as recent as the
    /// cutoff (and one has a timestamp); 1 when deleted.
    /// KEYS: opt, error, summary, state, staging, dropped. ARGV: base id, cutoff (OSProfiler's
    /// timestamp text, which sorts as time does).
    pub(super) const PRUNE: usize = 5;

    pub(super) static ALL: std::sync::LazyLock<[String; 6]> = std::sync::LazyLock::new(|| {
        [
            format!(
                "{NOW}
local now = nil
for i = 2, #KEYS do
  if redis.call('EXISTS', KEYS[i]) == 0 then
    now = now or now_ms()
    redis.call('SET', KEYS[i], 'p', 'PX', ARGV[1])
    redis.call('ZADD', KEYS[1], 'NX', now, ARGV[i])
  end
end
return 0"
            ),
            "
for j = 1, #KEYS, 4 do
  local s = redis.call('GET', KEYS[j])
  local ttl = tonumber(ARGV[2])
  if s == 'p' or s == 'd' then ttl = tonumber(ARGV[1]) end
  if ttl > 0 then
    for i = j, j + 3 do redis.call('PEXPIRE', KEYS[i], ttl) end
  end
end
return 0"
                .to_owned(),
            "
redis.call('SET', KEYS[1], 'k')
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1])
local r = tonumber(ARGV[2])
for i = 4, 6 do
  if r > 0 then redis.call('PEXPIRE', KEYS[i], r) else redis.call('PERSIST', KEYS[i]) end
end
if r > 0 then redis.call('PEXPIRE', KEYS[1], r) end
return 0"
                .to_owned(),
            format!(
                "{NOW}
local now = now_ms()
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[1]),
  'LIMIT', 0, tonumber(ARGV[3]))
local turned = 0
for _, id in ipairs(due) do
  redis.call('ZREM', KEYS[1], id)
  local st = '{STATE}' .. id
  if redis.call('GET', st) == 'p' then
    redis.call('DEL', '{OPT}' .. id, '{ERROR}' .. id, '{SUMMARY}' .. id)
    redis.call('SET', st, 'd', 'PX', ARGV[2])
    redis.call('ZADD', KEYS[2], now, id)
    turned = turned + 1
  end
end
return {{#due, turned}}"
            ),
            format!(
                "{NOW}
local start = tonumber(ARGV[2])
local seen = redis.call('ZRANGE', KEYS[1], start, start + tonumber(ARGV[3]) - 1, 'WITHSCORES')
local over = now_ms() - tonumber(ARGV[1])
local left, purged = 0, 0
for i = 1, #seen, 2 do
  local id = seen[i]
  local st = '{STATE}' .. id
  local s = redis.call('GET', st)
  if s == 'd' or not s then
    local opt, err, sum = '{OPT}' .. id, '{ERROR}' .. id, '{SUMMARY}' .. id
    if redis.call('EXISTS', opt, err, sum) > 0 then
      redis.call('DEL', opt, err, sum)
      purged = purged + 1
    end
  end
  if s ~= 'd' or tonumber(seen[i + 1]) <= over then
    if s == 'd' then redis.call('DEL', st) end
    redis.call('ZREM', KEYS[1], id)
  else
    left = left + 1
  end
end
return {{#seen / 2, left, purged}}"
            ),
            "
local seen = false
for _, e in ipairs(redis.call('LRANGE', KEYS[1], 0, -1)) do
  local ok, m = pcall(cjson.decode, e)
  if ok and type(m) == 'table' and type(m.timestamp) == 'string' then
    if m.timestamp >= ARGV[2] then return 0 end
    seen = true
  end
end
if not seen then return 0 end
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3], KEYS[4])
redis.call('ZREM', KEYS[5], ARGV[1])
redis.call('ZREM', KEYS[6], ARGV[1])
return 1"
                .to_owned(),
        ]
    });
}
