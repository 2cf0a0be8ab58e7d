//! The Redis collector, byte-compatible with Python OSProfiler's `redis://` driver.
//!
//! Each message is pushed as Python-style JSON with `LPUSH osprofiler_opt:<base_id>` (one list
//! per trace, newest first, no expiry); with `filter_error_trace` on, an error message also sets
//! `osprofiler_error:<base_id>` to `{"base_id": …, "timestamp": …}`. A batch goes in one
//! pipeline. Python's `osprofiler trace show/list` read what this driver writes, and the other
//! way round.

use ::redis::{Client, Connection, RedisError};
use osprofiler_core::Message;
use osprofiler_core::notifier::{Driver, DriverError, TraceSummary};
use serde_json::Value;
use std::sync::Mutex;
use std::time::Duration;

const OPT: &str = "osprofiler_opt:";
const ERROR: &str = "osprofiler_error:";

/// A collector storing messages in Redis (see the [module docs](self)).
///
/// The connection is made on first use and remade after any error, so a Redis that is down
/// at start or restarts later only delays delivery (the notifier keeps and retries batches).
///
/// ```no_run
/// use osprofiler_collectors::RedisDriver;
/// use osprofiler_core::notifier::Driver;
/// let redis = RedisDriver::open("redis://127.0.0.1:6379", false).unwrap();
/// for t in redis.list_traces().unwrap() {
///     println!("{} {}", t.base_id, t.timestamp);
/// }
/// ```
pub struct RedisDriver {
    client: Client,
    conn: Mutex<Option<Connection>>,
    filter_error_trace: bool,
    timeout: Duration,
}

impl std::fmt::Debug for RedisDriver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisDriver")
            .field("filter_error_trace", &self.filter_error_trace)
            .finish_non_exhaustive()
    }
}

fn err(what: &str, e: RedisError) -> DriverError {
    DriverError::with_source(what.to_owned(), e)
}

impl RedisDriver {
    /// A driver for `redis://[:password@]host[:port][/db]` (also `rediss://` for TLS when the
    /// redis crate is built with it). Only the URL is checked here; nothing is connected yet.
    pub fn open(connection_string: &str, filter_error_trace: bool) -> Result<Self, DriverError> {
        let client = Client::open(connection_string)
            .map_err(|e| err("bad redis:// connection string", e))?;
        Ok(RedisDriver {
            client,
            conn: Mutex::new(None),
            filter_error_trace,
            timeout: Duration::from_secs(2),
        })
    }

    /// Runs `f` on the connection, connecting first if needed; drops the connection after an
    /// error so the next call reconnects.
    fn with_conn<T>(
        &self,
        what: &str,
        f: impl FnOnce(&mut Connection) -> Result<T, RedisError>,
    ) -> Result<T, DriverError> {
        let mut guard = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        if guard.is_none() {
            let c = self
                .client
                .get_connection_with_timeout(self.timeout)
                .map_err(|e| err("cannot connect to Redis", e))?;
            c.set_read_timeout(Some(self.timeout))
                .and_then(|()| c.set_write_timeout(Some(self.timeout)))
                .map_err(|e| err("cannot set Redis timeouts", e))?;
            *guard = Some(c);
        }
        let conn = guard.as_mut().expect("connected above");
        f(conn).map_err(|e| {
            *guard = None;
            err(what, e)
        })
    }

    /// Deletes one trace's messages and its error marker (retention, clean-up); returns how
    /// many keys went.
    pub fn delete_trace(&self, base_id: &str) -> Result<u64, DriverError> {
        self.with_conn("cannot delete the trace from Redis", |c| {
            c.del((format!("{OPT}{base_id}"), format!("{ERROR}{base_id}")))
        })
    }

    fn scan(conn: &mut Connection, pattern: &str) -> Result<Vec<String>, RedisError> {
        let mut keys: Vec<String> = conn.scan_match(pattern)?.collect::<Result<_, _>>()?;
        keys.sort();
        keys.dedup();
        Ok(keys)
    }
}

use ::redis::Commands as _;

impl Driver for RedisDriver {
    fn name(&self) -> &str {
        "redis"
    }

    fn notify(&self, batch: &[Message]) -> Result<(), DriverError> {
        if batch.is_empty() {
            return Ok(());
        }
        // One LPUSH per run of messages of the same trace: `LPUSH k a b` leaves the list as
        // `LPUSH k a; LPUSH k b` does (newest first), in one command.
        let mut pipe = ::redis::pipe();
        let mut run: Option<(String, ::redis::Cmd)> = None;
        for m in batch {
            let base_id = m.base_id().to_text();
            match &mut run {
                Some((id, cmd)) if *id == *base_id => {
                    cmd.arg(m.to_json());
                }
                _ => {
                    if let Some((_, cmd)) = run.take() {
                        pipe.add_command(cmd).ignore();
                    }
                    let mut cmd = ::redis::cmd("LPUSH");
                    cmd.arg(format!("{OPT}{base_id}")).arg(m.to_json());
                    run = Some((base_id.to_string(), cmd));
                }
            }
            if self.filter_error_trace && m.error_type().is_some() {
                if let Some((_, cmd)) = run.take() {
                    pipe.add_command(cmd).ignore();
                }
                let marker = osprofiler_core::pyjson::to_string(&serde_json::json!({
                    "base_id": base_id,
                    "timestamp": m.timestamp(),
                }));
                pipe.cmd("SET")
                    .arg(format!("{ERROR}{base_id}"))
                    .arg(marker)
                    .ignore();
            }
        }
        if let Some((_, cmd)) = run.take() {
            pipe.add_command(cmd).ignore();
        }
        self.with_conn("cannot store messages in Redis", |c| pipe.query::<()>(c))
    }

    fn trace_messages(&self, base_id: &str) -> Result<Vec<Value>, DriverError> {
        let raw: Vec<Vec<u8>> = self.with_conn("cannot read the trace from Redis", |c| {
            c.lrange(format!("{OPT}{base_id}"), 0, -1)
        })?;
        // Newest first, as Python reads them: the report then breaks ties between points that
        // started in the same millisecond exactly as Python's does.
        Ok(raw
            .iter()
            .filter_map(|b| serde_json::from_slice(b).ok())
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
                let firsts: Vec<Option<Vec<u8>>> = pipe.query(c)?;
                Ok(keys.into_iter().zip(firsts).collect())
            })?;
        let mut out: Vec<TraceSummary> = firsts
            .into_iter()
            .filter_map(|(key, first)| {
                let first: Value = serde_json::from_slice(&first?).ok()?;
                Some(TraceSummary {
                    base_id: key[OPT.len()..].to_owned(),
                    timestamp: first["timestamp"].as_str().unwrap_or_default().to_owned(),
                })
            })
            .collect();
        out.sort_by(|a, b| a.timestamp.cmp(&b.timestamp));
        Ok(out)
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
