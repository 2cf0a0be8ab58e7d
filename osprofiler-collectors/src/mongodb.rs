//! The MongoDB collector, laid out as Python OSProfiler's `mongodb://` driver lays it out.
//!
//! Database `osprofiler`, collection `profiler`: one document per message — the message as
//! Python stores it, `project` and `service` included — and, with `filter_error_trace` on,
//! `{base_id, timestamp}` upserted into `profiler_error` for a message with an `etype` (Python's
//! own error path calls pymongo's removed `update()` and fails with pymongo 4; this one works).
//! A notifier batch is one unordered `insert_many`; the `base_id` and `timestamp` indexes are
//! created once, at the first write. Python's `osprofiler trace show/list` read what this driver
//! writes, and the other way round.
//!
//! Retention and clean-up ([`Writer::retain`], [`Writer::prune`], [`Writer::delete_trace`]):
//! `prune` finds the traces with a message older than the cutoff (the `timestamp` index), asks
//! an aggregation for each one's newest message (`$group` by `base_id`, `$max` of
//! `timestamp`), and deletes those whose newest message is older too, with their error
//! markers, a thousand traces per `delete_many`. A TTL index would not do: it deletes
//! documents one by one as each ages, so a trace still being written (a long job, a late
//! callback) would lose its old points while its new ones stay; and it needs a BSON date,
//! where Python's layout stores `timestamp` as text. The text compares as time
//! (`YYYY-MM-DDTHH:MM:SS.ffffff`, UTC). This collector does not stage provisional traces
//! ([`Writer::stage`] is an error: a service with `keep_slow_ms` on it fails at start).
//!
//! The URL is MongoDB's: authentication, TLS (rustls), replica set and timeout options pass
//! through (`mongodb://user:pass@h1,h2/?replicaSet=rs0&tls=true`). Without
//! `serverSelectionTimeoutMS` in it, a server that cannot be reached fails a call after 3 s
//! (the driver's default is 30 s), and the notifier retries the batch later.

use crate::rt::Rt;
use mongodb::bson::{self, Bson, Document, doc};
use mongodb::error::{Error as MongoError, ErrorKind};
use mongodb::options::{ClientOptions, IndexOptions};
use mongodb::{Client, Collection, IndexModel};
use osprofiler_core::clock::{format_timestamp, system_micros};
use osprofiler_core::notifier::{DriverError, Reader, TraceSummary, Writer};
use osprofiler_core::{ProfilerConfig, message::Message};
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

const DATABASE: &str = "osprofiler";
/// Traces per aggregation and per `delete_many` of [`Writer::prune`].
const PRUNE_CHUNK: usize = 1000;

/// A collector storing messages in MongoDB (see the [module docs](self)).
///
/// Nothing is connected until the first write or read; a server that is down only delays
/// delivery (the notifier keeps and retries batches).
///
/// ```no_run
/// use osprofiler_collectors::MongoDriver;
/// use osprofiler_core::notifier::{Reader, Writer};
/// let mongo = MongoDriver::open("mongodb://127.0.0.1:27017", false).unwrap();
/// for t in mongo.list_traces().unwrap() {
///     println!("{} {}", t.base_id, t.timestamp);
/// }
/// ```
pub struct MongoDriver {
    rt: Rt,
    profiler: Collection<Document>,
    errors: Collection<Document>,
    /// `None`: follow the process-wide `filter_error_trace` switch.
    filter_error_trace: Option<bool>,
    indexed: AtomicBool,
}

impl std::fmt::Debug for MongoDriver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MongoDriver")
            .field("database", &DATABASE)
            .field("filter_error_trace", &self.filter_error_trace)
            .finish_non_exhaustive()
    }
}

fn err(what: &str, e: MongoError) -> DriverError {
    DriverError::with_source(what.to_owned(), e)
}

impl MongoDriver {
    /// A driver for a `mongodb://` URL, indexing error traces when `filter_error_trace`. Only
    /// the URL is checked here; nothing is connected yet.
    pub fn open(connection_string: &str, filter_error_trace: bool) -> Result<Self, DriverError> {
        let mut d = Self::from_conf(connection_string, &ProfilerConfig::default())?;
        d.filter_error_trace = Some(filter_error_trace);
        Ok(d)
    }

    /// A driver that indexes error traces while the process-wide `filter_error_trace` switch
    /// is on (what `init_from_conf` uses).
    pub fn from_conf(connection_string: &str, _conf: &ProfilerConfig) -> Result<Self, DriverError> {
        let rt = Rt::new()?;
        let mut options = rt
            .run(async { ClientOptions::parse(connection_string).await })
            .map_err(|e| err("bad mongodb:// connection string", e))?;
        if options.server_selection_timeout.is_none() {
            options.server_selection_timeout = Some(Duration::from_secs(3));
        }
        if options.app_name.is_none() {
            options.app_name = Some("osprofiler-rs".into());
        }
        let client = {
            // The client spawns its monitors on the runtime it is made in.
            let _enter = rt.handle().enter();
            Client::with_options(options).map_err(|e| err("cannot create the MongoDB client", e))?
        };
        let db = client.database(DATABASE);
        Ok(MongoDriver {
            profiler: db.collection("profiler"),
            errors: db.collection("profiler_error"),
            rt,
            filter_error_trace: None,
            indexed: AtomicBool::new(false),
        })
    }

    fn indexes_errors(&self) -> bool {
        self.filter_error_trace
            .unwrap_or_else(osprofiler_core::filter_error_trace)
    }

    async fn ensure_indexes(&self) -> Result<(), DriverError> {
        if self.indexed.load(Ordering::Acquire) {
            return Ok(());
        }
        let index = |key: &str| {
            IndexModel::builder()
                .keys(doc! { key: 1 })
                .options(IndexOptions::builder().name(format!("{key}_1")).build())
                .build()
        };
        self.profiler
            .create_indexes([index("base_id"), index("timestamp")])
            .await
            .map_err(|e| classify("cannot create the profiler indexes", e))?;
        self.errors
            .create_index(index("base_id"))
            .await
            .map_err(|e| classify("cannot create the profiler_error index", e))?;
        self.indexed.store(true, Ordering::Release);
        Ok(())
    }

    async fn insert(&self, batch: &[Message]) -> Result<(), DriverError> {
        self.ensure_indexes().await?;
        let mut docs = Vec::with_capacity(batch.len());
        let mut unconvertible = 0;
        for m in batch {
            match document_of(&m.to_value()) {
                Some(d) => docs.push(d),
                None => unconvertible += 1,
            }
        }
        let mut refused = unconvertible;
        if !docs.is_empty() {
            match self.profiler.insert_many(docs).ordered(false).await {
                Ok(_) => {}
                Err(e) => match *e.kind {
                    // Unordered: the server stored every other document.
                    ErrorKind::InsertMany(ref f)
                        if f.write_concern_error.is_none() && f.write_errors.is_some() =>
                    {
                        refused += f.write_errors.as_ref().map_or(0, Vec::len);
                    }
                    _ => return Err(classify("cannot store messages in MongoDB", e)),
                },
            }
        }
        if self.indexes_errors() {
            for m in batch.iter().filter(|m| m.error_type().is_some()) {
                let id = m.base_id().to_text();
                let marker = doc! { "base_id": id.as_ref(), "timestamp": m.timestamp() };
                self.errors
                    .replace_one(doc! { "base_id": id.as_ref() }, marker)
                    .upsert(true)
                    .await
                    .map_err(|e| classify("cannot mark an error trace in MongoDB", e))?;
            }
        }
        if refused > 0 {
            return Err(DriverError::new(format!(
                "MongoDB refused {refused} of {} messages",
                batch.len()
            ))
            .partly_stored(refused));
        }
        Ok(())
    }

    async fn find(
        &self,
        coll: &Collection<Document>,
        filter: Document,
        projection: Document,
        sort: Document,
    ) -> Result<Vec<Value>, MongoError> {
        let mut cursor = coll.find(filter).projection(projection).sort(sort).await?;
        let mut out = Vec::new();
        while cursor.advance().await? {
            let d = cursor.deserialize_current()?;
            out.push(Bson::Document(d).into_relaxed_extjson());
        }
        Ok(out)
    }

    async fn summaries(&self, errors: bool) -> Result<Vec<TraceSummary>, DriverError> {
        let (coll, what) = if errors {
            (&self.errors, "cannot list error traces in MongoDB")
        } else {
            (&self.profiler, "cannot list traces in MongoDB")
        };
        let docs = self
            .find(
                coll,
                doc! {},
                doc! { "_id": 0, "base_id": 1, "timestamp": 1 },
                doc! { "timestamp": 1 },
            )
            .await
            .map_err(|e| err(what, e))?;
        // The first timestamp of each trace (the documents come oldest first).
        let mut first: BTreeMap<String, String> = BTreeMap::new();
        for d in docs {
            // A trace is listed whatever its documents' timestamps are (a non-string one sorts
            // before the strings: it gives no timestamp, and a later string one replaces it).
            if let Some(id) = d["base_id"].as_str() {
                let ts = d["timestamp"].as_str();
                let e = first
                    .entry(id.to_owned())
                    .or_insert_with(|| ts.unwrap_or_default().to_owned());
                if let Some(ts) = ts.filter(|_| e.is_empty()) {
                    ts.clone_into(e);
                }
            }
        }
        let mut out: Vec<TraceSummary> = first
            .into_iter()
            .map(|(base_id, timestamp)| TraceSummary { base_id, timestamp })
            .collect();
        out.sort_by(|a, b| a.timestamp.cmp(&b.timestamp));
        Ok(out)
    }

    /// Deletes one trace's messages and its error marker; returns how many messages went.
    async fn delete_one(&self, base_id: &str) -> Result<u64, DriverError> {
        let filter = doc! { "base_id": base_id };
        let deleted = self
            .profiler
            .delete_many(filter.clone())
            .await
            .map_err(|e| err("cannot delete the trace from MongoDB", e))?;
        self.errors
            .delete_many(filter)
            .await
            .map_err(|e| err("cannot delete the trace's error marker from MongoDB", e))?;
        Ok(deleted.deleted_count)
    }

    /// Runs an aggregation on the messages; `each` gets every result whose `_id` is text,
    /// with that text.
    async fn grouped(
        &self,
        pipeline: Vec<Document>,
        mut each: impl FnMut(&str, &Document),
    ) -> Result<(), MongoError> {
        let mut cursor = self.profiler.aggregate(pipeline).await?;
        while cursor.advance().await? {
            let d = cursor.deserialize_current()?;
            if let Ok(id) = d.get_str("_id") {
                each(id, &d);
            }
        }
        Ok(())
    }

    /// Deletes the traces whose newest message is older than `cutoff` (OSProfiler's text
    /// timestamp); returns how many.
    async fn prune_before(&self, cutoff: &str) -> Result<u64, DriverError> {
        self.ensure_indexes().await?;
        let failed = |e| err("cannot delete old traces from MongoDB", e);
        // The traces with at least one old message (the timestamp index finds them; `$lt` on
        // text matches text timestamps only).
        let mut candidates = Vec::new();
        self.grouped(
            vec![
                doc! { "$match": { "timestamp": { "$lt": cutoff } } },
                doc! { "$group": { "_id": "$base_id" } },
            ],
            |id, _| candidates.push(id.to_owned()),
        )
        .await
        .map_err(failed)?;
        let mut pruned = 0;
        for chunk in candidates.chunks(PRUNE_CHUNK) {
            // Of those, the ones whose newest message is old too (text sorts after numbers:
            // a trace with a text timestamp has a text newest).
            let mut old: Vec<Bson> = Vec::new();
            self.grouped(
                vec![
                    doc! { "$match": { "base_id": { "$in": chunk } } },
                    doc! { "$group": { "_id": "$base_id", "newest": { "$max": "$timestamp" } } },
                ],
                |id, d| {
                    if d.get_str("newest").is_ok_and(|newest| newest < cutoff) {
                        old.push(Bson::String(id.to_owned()));
                    }
                },
            )
            .await
            .map_err(failed)?;
            if old.is_empty() {
                continue;
            }
            let filter = doc! { "base_id": { "$in": &old } };
            self.profiler
                .delete_many(filter.clone())
                .await
                .map_err(failed)?;
            self.errors.delete_many(filter).await.map_err(failed)?;
            pruned += old.len() as u64;
        }
        Ok(pruned)
    }
}

/// A message as a BSON document; `None` for one BSON cannot hold (an integer over 2^63).
fn document_of(v: &Value) -> Option<Document> {
    match bson::to_bson(v).ok()? {
        Bson::Document(d) => Some(d),
        _ => None,
    }
}

/// A MongoDB error as a driver error: the server refusing the documents themselves (a write
/// error, an invalid document) is `rejected`; the rest (unreachable, no primary, timeouts)
/// is retried.
fn classify(what: &str, e: MongoError) -> DriverError {
    let refused = matches!(
        *e.kind,
        ErrorKind::Write(mongodb::error::WriteFailure::WriteError(_))
            | ErrorKind::InvalidArgument { .. }
            | ErrorKind::BsonSerialization(_)
    );
    let e = err(what, e);
    if refused { e.rejected() } else { e }
}

impl Writer for MongoDriver {
    fn name(&self) -> &str {
        "mongodb"
    }

    fn notify(&self, batch: &[Message]) -> Result<(), DriverError> {
        if batch.is_empty() {
            return Ok(());
        }
        self.rt.run(self.insert(batch))
    }

    /// Nothing to prepare: [`Writer::prune`] does the work.
    fn retain(&self, _age: Duration) -> Result<(), DriverError> {
        Ok(())
    }

    fn prune(&self, cutoff: SystemTime) -> Result<u64, DriverError> {
        let cutoff = format_timestamp(system_micros(cutoff));
        self.rt.run(self.prune_before(&cutoff))
    }

    fn delete_trace(&self, base_id: &str) -> Result<u64, DriverError> {
        self.rt.run(self.delete_one(base_id))
    }
}

impl Reader for MongoDriver {
    fn trace_messages(&self, base_id: &str) -> Result<Vec<Value>, DriverError> {
        self.rt.run(async {
            // In the order they were stored (ids are made in insertion order).
            self.find(
                &self.profiler,
                doc! { "base_id": base_id },
                doc! { "_id": 0 },
                doc! { "_id": 1 },
            )
            .await
            .map_err(|e| err("cannot read the trace from MongoDB", e))
        })
    }

    fn list_traces(&self) -> Result<Vec<TraceSummary>, DriverError> {
        self.rt.run(self.summaries(false))
    }

    fn list_error_traces(&self) -> Result<Vec<TraceSummary>, DriverError> {
        self.rt.run(self.summaries(true))
    }
}
