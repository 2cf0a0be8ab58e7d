//! The Redis collectors, byte-compatible with Python OSProfiler's `redis://` driver:
//! `redis://` to one server, and `redissentinel://` to the primary a Sentinel names.
//!
//! Each message is pushed as Python-style JSON with `LPUSH osprofiler_opt:<base_id>` (one list
//! per trace, newest first, no expiry); with `filter_error_trace` on, an error message also sets
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
//! `redissentinel://[:password@]host:port` asks the Sentinel at `host:port` for the primary of
//! the service `sentinel_service_name` (default `mymaster`) and stores there exactly what
//! `redis://` stores; after a failover the next batch goes to the new primary. (Python's own
//! `redissentinel` driver is broken in 4.4.0 with current redis-py; Python reads what this one
//! stores through `redis://` on the primary.) `socket_timeout` (seconds, default 0.1 as in
//! Python) bounds connecting and every read and write.

use ::redis::sentinel::{SentinelClient, SentinelNodeConnectionInfo, SentinelServerType};
use ::redis::{Client, Connection, RedisError};
use osprofiler_core::listing::{self, ListFilter, PartialSummary, StoredTrace, TraceListing};
use osprofiler_core::notifier::{DriverError, Reader, TraceSummary, Writer};
use osprofiler_core::{ProfilerConfig, message::Message};
use serde_json::Value;
use std::sync::Mutex;
use std::time::Duration;

const OPT: &str = "osprofiler_opt:";
const ERROR: &str = "osprofiler_error:";
const SUMMARY: &str = "osprofiler_summary:";

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
    conn: Mutex<Option<Connection>>,
    /// `None`: follow the process-wide `filter_error_trace` switch.
    filter_error_trace: Option<bool>,
    timeout: Duration,
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
        let mut guard = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        if guard.is_none() {
            *guard = Some(self.connect().map_err(Failure::Connect)?);
        }
        let conn = guard.as_mut().expect("connected above");
        f(conn).map_err(|e| {
            if refused_commands(&e).is_empty() {
                *guard = None;
            }
            Failure::Redis(e)
        })
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

    /// Deletes one trace's messages, its error marker and its summaries (retention,
    /// clean-up); returns how many keys went.
    pub fn delete_trace(&self, base_id: &str) -> Result<u64, DriverError> {
        self.with_conn("cannot delete the trace from Redis", |c| {
            c.del((
                format!("{OPT}{base_id}"),
                format!("{ERROR}{base_id}"),
                format!("{SUMMARY}{base_id}"),
            ))
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
        // One LPUSH per run of messages of the same trace: `LPUSH k a b` leaves the list as
        // `LPUSH k a; LPUSH k b` does (newest first), in one command.
        let mut pipe = ::redis::pipe();
        // How many messages each command of the pipeline stores.
        let mut stores: Vec<usize> = Vec::new();
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
        match self.call(|c| pipe.query::<()>(c)) {
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
        self.with_conn("cannot store trace summaries in Redis", |c| {
            pipe.query::<()>(c)
        })
    }
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

    fn list_traces(&self) -> Result<Vec<TraceSummary>, DriverError> {
        let firsts: Vec<(String, Option<Vec<u8>>)> =
            self.with_conn("cannot list traces in Redis", |c| {
                let keys = Self::scan(c, &format!("{OPT}*"))?;
                let mut pipe = ::redis::pipe();
                for k in &keys {
                    pipe.cmd("LINDEX").arg(k).arg(-1);
                }
                // A key under the prefix that is not a list is not a trace: skipped, not an
                // error that would hide every trace.
                let firsts: Vec<::redis::RedisResult<Option<Vec<u8>>>> =
                    pipe.ignore_errors().query(c)?;
                Ok(keys
                    .into_iter()
                    .zip(firsts)
                    .map(|(k, first)| (k, first.ok().flatten()))
                    .collect())
            })?;
        let timestamp_of = |entry: &[u8]| -> Option<String> {
            let v: Value = serde_json::from_slice(entry).ok()?;
            v["timestamp"].as_str().map(str::to_owned)
        };
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
            let mut pipe = ::redis::pipe();
            for k in &keys {
                pipe.cmd("LLEN").arg(k);
                pipe.cmd("LRANGE")
                    .arg(format!("{SUMMARY}{}", &k[OPT.len()..]))
                    .arg(0)
                    .arg(-1);
            }
            // A key that is not a list (under either prefix) is skipped, not an error.
            let replies: Vec<::redis::Value> = pipe.ignore_errors().query(c)?;
            let mut counts = Vec::with_capacity(keys.len());
            let mut parts = Vec::new();
            for (k, pair) in keys.iter().zip(replies.chunks(2)) {
                let Some(::redis::Value::Int(n)) = pair.first() else {
                    continue;
                };
                counts.push(StoredTrace {
                    base_id: k[OPT.len()..].to_owned(),
                    messages: (*n).max(0) as u64,
                });
                if let Some(::redis::Value::Array(items)) = pair.get(1) {
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

    fn list_error_traces(&self) -> Result<Vec<TraceSummary>, DriverError> {
        let values: Vec<Option<Vec<u8>>> =
            self.with_conn("cannot list error traces in Redis", |c| {
                let keys = Self::scan(c, &format!("{ERROR}*"))?;
                if keys.is_empty() {
                    return Ok(Vec::new());
                }
                c.mget(keys)
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
