//! The `db` point: one model for every DB adapter.
//!
//! An adapter (`osprofiler-sqlx`, `osprofiler-diesel`, `osprofiler-sea-orm`,
//! `osprofiler-postgres`) only translates its library's calls into [`DbEvent`]s; a [`DbTracer`]
//! — what a traced pool or connection knows: where its queries go and how SQL text is recorded
//! — turns an event into a point, and [`DbTracer::run`] runs the call's future as that point
//! and stops it with the rows, the error, or as cancelled when the future is dropped. So every
//! adapter records the same info for the same operation, checks for an active trace before
//! doing anything else, and formats nothing on the query's path: the info is written when the
//! notifier's worker serializes the message.
//!
//! The wrappers are one type too: each adapter's `Traced` is a [`DbHandle`] (the library's
//! value, its tracer and its transaction depth) declared with [`db_wrapper!`](crate::db_wrapper),
//! which gives every adapter the same builder (`database`, `server`, `keep_literals`) and the
//! same transaction points; [`DbPoint::boxed`] and [`DbPoint::boxed_stream`] hand the library's
//! boxed future or stream back untouched when no trace is active. What is left in an adapter
//! is its library's own: which calls are statements, how to read their text, bound values,
//! rows and errors ([`DbSystem`] names the database).
//!
//! ```
//! use osprofiler_core::db::{DbError, DbEvent, DbSystem, DbTracer, Sql, SqlText};
//! # async fn demo() {
//! // Once per pool or connection:
//! let tracer = DbTracer::new("postgresql").database("nova").server("db1:5432");
//!
//! // Per call: the event, the library's future, how to read its outcome.
//! let sql = "SELECT name FROM users WHERE id = $1";
//! let event = DbEvent::Query(&|_with_params: bool| Some(Sql::new(SqlText::Static(sql), 1)));
//! let call = async { Ok::<_, std::io::Error>(vec!["alice".to_owned()]) };
//! let error = |e: &std::io::Error| DbError::new("std::io::Error", e.to_string());
//! let names = tracer.run(event, call, osprofiler_core::db::rows::len, error).await;
//! # }
//! ```
//!
//! # What a `db` point records
//!
//! The same for every adapter. The start message's info is `{"db": {…}}` with:
//!
//! | key | when | value |
//! |---|---|---|
//! | `api` | always | what the call does: `connect` (a new connection), `acquire` (a connection from a pool), `query` (a statement: rows returned, streamed or affected alike), `prepare`, `begin`, `commit`, `rollback`, `savepoint`, `release_savepoint`, `rollback_to_savepoint` |
//! | `system` | always | `postgresql`, `mysql` (MySQL and MariaDB) or `sqlite` |
//! | `namespace` | when known | the database name |
//! | `server` | when known | `host:port`, never credentials |
//! | `depth` | transaction control | 1 for the transaction, 2 and more for savepoints |
//! | `statement` | `trace_sql` on; statements only | the SQL. With bound values, as sent (placeholders); without (raw SQL, `batch_execute`, `simple_query`, `sql_query`, a query with no binds), every literal replaced by `?` for the connection's [`Dialect`] — unless the adapter was told [`DbTracer::keep_literals`] |
//! | `params` | `trace_sql` and `trace_sql_params` on; statements with bound values | the bound values as text |
//! | `fingerprint` | statements (`query`, `prepare`), whether or not `trace_sql` is on | the [`fingerprint::fingerprint_id`] of the statement's shape: 16 lowercase hex digits. It reveals neither text nor values |
//! | `normalized` | `trace_sql` on; statements only | the statement's shape: [`fingerprint::normalize`] (`SELECT a FROM t WHERE id IN (...)`) |
//! | `values` | statements whose values the point sees (below), in a trace with a key | a keyed digest of the statement's values, 16 lowercase hex digits: equal values give equal digests within one deployment (one HMAC key), the values themselves are never recorded |
//!
//! The fingerprint is computed by the notifier's worker, through a cache keyed by the raw text
//! (a statement seen before costs a lookup). To have it with `trace_sql` off the point reads
//! the statement's text anyway — what the adapter hands over with `trace_sql` on, without the
//! parameters: a shared string for tokio-postgres (`SqlText::Shared`, no copy), a copy of the
//! text for sqlx and sea-orm, and diesel's formatted query (its hook gives the query only as
//! `Debug`, so diesel formats it on every traced call, as with `trace_sql` on).
//!
//! **`values`**: SipHash-1-3 of the values (each length-prefixed and tagged literal or bound),
//! under a 128-bit key derived once per trace key as HMAC-SHA1(HMAC key, `"osprofiler-rs db
//! values"`). No digest in a trace without a key (an empty one): unkeyed, a digest of a few
//! possible values could be reversed by trying them. A point records it when it sees the
//! values:
//!
//! | statement | `values` digests | recorded |
//! |---|---|---|
//! | without bound values (raw SQL, `batch_execute`, `simple_query`, `sql_query`, `execute_unprepared`, a query with no binds) | the literals of its text (what [`normalize`](fingerprint::normalize) replaced) | always, whatever `trace_sql` says, every adapter |
//! | with bound values | its literals and the bound values ([`BoundValues`]: their `Debug` text, hashed, never kept) | always, whatever `trace_sql` and `trace_sql_params` say — sqlx (a clone of its `Arguments`, hashed by the worker), sea-orm (a clone of its `Values`, hashed by the worker), diesel (the `binds` of the query's `Debug`, which it formats anyway), tokio-postgres (the parameters' `Debug` streamed into a hasher on the call: no `String`; `query_raw`/`execute_raw` iterators are not read: no `values`) |
//!
//! Bound values cost the query's path a clone at most: formatting sqlx's arguments there (a
//! `PgArguments` prints its buffer byte by byte) was measured at +2.8 µs per call, so the
//! worker formats them, off the path, into the keyed hasher.
//!
//! The stop message's info is one of:
//!
//! | outcome | info |
//! |---|---|
//! | success | `{"db": {"rows": n}}`: rows returned, streamed (counted to the stream's end) or affected; no `rows` where the call has none (transaction control, `prepare`, `connect`) |
//! | error | `etype` (the library's error type), `message` (its text), `{"db": {"original_exception", "sqlstate", "code"}}`: the database's own message, the SQLSTATE (PostgreSQL, MySQL), or the database's code where it has no SQLSTATE (SQLite's result code) |
//! | dropped before it finished | `{"cancelled": true}` |
//!
//! An error point is an error for every collector: its trace appears in `trace list
//! --error-trace` ([`crate::message::Message::error_type`] sees it).
//!
//! Exceptions the libraries impose, and only these:
//! - **diesel** reports no row count and no SQLSTATE through its instrumentation hook: its
//!   points have no `rows`, and errors carry diesel's error kind in `code`
//!   (`UniqueViolation`, `Unknown`, …).
//! - `connect` exists where the library connects through the adapter (diesel), `acquire` where
//!   it hands out pooled connections (sqlx); `prepare` where the library prepares explicitly
//!   (sqlx, tokio-postgres).
//! - `etype` is each library's own error type.

pub mod fingerprint;
mod handle;
mod point;
mod sql;
mod system;

pub use handle::{BoxFuture, BoxStream, DbHandle};
pub use point::{DbFuture, DbPoint, DbStream};
pub use sql::{Dialect, sanitize, sanitize_into};
pub use system::DbSystem;

use crate::message::{Info, LazyInfo, Phase};
use serde_json::{Map, Value};
use std::sync::Arc;

/// Where queries go: the database system, the database name and the server, shared by every
/// point of a pool or connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DbTarget {
    /// The database system (`db.system`).
    pub system: DbSystem,
    /// The database name, if known.
    pub namespace: Option<String>,
    /// `host:port` (never credentials), if known.
    pub server: Option<String>,
}

impl DbTarget {
    /// A target of `system` (a [`DbSystem`] or its name) with nothing else known.
    pub fn new(system: impl Into<DbSystem>) -> Self {
        DbTarget {
            system: system.into(),
            namespace: None,
            server: None,
        }
    }
    /// With the database name.
    pub fn namespace(mut self, name: impl Into<String>) -> Self {
        self.namespace = Some(name.into());
        self
    }
    /// With the server address.
    pub fn server(mut self, server: impl Into<String>) -> Self {
        self.server = Some(server.into());
        self
    }
}

/// Row counters for [`DbTracer::run`] and [`DbStream`]: how many rows a library's result
/// stands for.
pub mod rows {
    /// A collected result: its length.
    // `&Vec`, not a slice: it is used as `fn(&T) -> Option<u64>` where `T` is the `Vec`.
    #[allow(clippy::ptr_arg)]
    pub fn len<T>(rows: &Vec<T>) -> Option<u64> {
        Some(rows.len() as u64)
    }
    /// Exactly one row.
    pub fn one<T>(_: &T) -> Option<u64> {
        Some(1)
    }
    /// Zero or one row.
    pub fn optional<T>(row: &Option<T>) -> Option<u64> {
        Some(u64::from(row.is_some()))
    }
    /// A call without rows (transaction control, `prepare`, `connect`).
    pub fn none<T>(_: &T) -> Option<u64> {
        None
    }
    /// One row per streamed item.
    pub fn each<T>(_: &T) -> u64 {
        1
    }
}

/// What a traced pool or connection knows: its [`DbTarget`], its [`Dialect`] and whether raw
/// SQL keeps its literals. Cheap to clone (one reference count); every adapter's `Traced`
/// holds one and gives it each call as a [`DbEvent`].
#[derive(Debug, Clone)]
pub struct DbTracer {
    settings: Arc<Settings>,
}

#[derive(Debug, Clone)]
struct Settings {
    target: DbTarget,
    dialect: Dialect,
    keep_literals: bool,
}

impl DbTracer {
    /// A tracer for `system` (a [`DbSystem`] or its name: `postgresql`, `mysql`, `sqlite`);
    /// the dialect follows from it.
    pub fn new(system: impl Into<DbSystem>) -> Self {
        Self::for_target(DbTarget::new(system))
    }

    /// A tracer for `target`.
    pub fn for_target(target: DbTarget) -> Self {
        DbTracer {
            settings: Arc::new(Settings {
                dialect: target.system.dialect(),
                target,
                keep_literals: false,
            }),
        }
    }

    fn with(mut self, f: impl FnOnce(&mut Settings)) -> Self {
        f(Arc::make_mut(&mut self.settings));
        self
    }

    /// Records the database name (`namespace`).
    pub fn database(self, name: impl Into<String>) -> Self {
        let name = name.into();
        self.with(|s| s.target.namespace = Some(name))
    }

    /// Records the server address (`server`, `host:port`; never put credentials here).
    pub fn server(self, server: impl Into<String>) -> Self {
        let server = server.into();
        self.with(|s| s.target.server = Some(server))
    }

    /// Records statements without bound values with their literals instead of `?` (default
    /// false: a raw statement's literals are data, and data may be secret).
    pub fn keep_literals(self, keep: bool) -> Self {
        self.with(|s| s.keep_literals = keep)
    }

    /// Sets the dialect raw SQL is read in (by default the system's).
    pub fn dialect(self, dialect: Dialect) -> Self {
        self.with(|s| s.dialect = dialect)
    }

    /// Where the queries go.
    pub fn target(&self) -> &DbTarget {
        &self.settings.target
    }

    /// The dialect raw SQL is sanitized in.
    pub fn sql_dialect(&self) -> Dialect {
        self.settings.dialect
    }

    /// Whether raw SQL keeps its literals.
    pub fn keeps_literals(&self) -> bool {
        self.settings.keep_literals
    }

    /// Opens the point of `event` when a trace is active (an inactive [`DbPoint`] otherwise,
    /// without looking at the event). The point is a child of the current point and is not
    /// made current: nothing nests inside a DB call.
    #[inline]
    pub fn start(&self, event: DbEvent<'_>) -> DbPoint {
        if !crate::is_active() {
            return DbPoint::inactive();
        }
        DbPoint::open(self.call(event))
    }

    /// Runs `fut`, the library's future for `event`, as a `db` point: it stops when the
    /// future completes, with `rows(&value)` or `error(&err)`, or as cancelled when the future
    /// is dropped first. With no active trace it is `fut` and a branch.
    #[inline]
    pub fn run<F, T, E>(
        &self,
        event: DbEvent<'_>,
        fut: F,
        rows: fn(&T) -> Option<u64>,
        error: fn(&E) -> DbError,
    ) -> DbFuture<F, T, E>
    where
        F: Future<Output = Result<T, E>>,
    {
        DbFuture::new(fut, self.start(event), rows, error)
    }

    /// Builds the start info of `event` (only called with a trace active).
    #[inline(never)]
    fn call(&self, event: DbEvent<'_>) -> DbCall {
        let (api, depth, source) = match event {
            DbEvent::Connect => (Api::Connect, None, None),
            DbEvent::Acquire => (Api::Acquire, None, None),
            DbEvent::Query(sql) => (Api::Query, None, Some(sql)),
            DbEvent::Prepare(sql) => (Api::Prepare, None, Some(sql)),
            DbEvent::Begin { depth } => (
                if depth > 1 {
                    Api::Savepoint
                } else {
                    Api::Begin
                },
                Some(depth),
                None,
            ),
            DbEvent::Commit { depth } => (
                if depth > 1 {
                    Api::ReleaseSavepoint
                } else {
                    Api::Commit
                },
                Some(depth),
                None,
            ),
            DbEvent::Rollback { depth } => (
                if depth > 1 {
                    Api::RollbackToSavepoint
                } else {
                    Api::Rollback
                },
                Some(depth),
                None,
            ),
        };
        // The statement is read for its fingerprint even without `trace_sql`: most adapters
        // hand over text they hold (a copy at most); its parameters only when recorded.
        let record_sql = source.is_some() && crate::trace_sql();
        let with_params = record_sql && crate::trace_sql_params();
        let (statement, params, bound) = match source.and_then(|s| s.sql(with_params)) {
            Some(sql) => {
                let raw = sql.binds == 0;
                let bound = if raw { None } else { sql.values };
                let params = if raw || !with_params {
                    None
                } else {
                    sql.params
                };
                (
                    Some(Statement {
                        text: sql.text,
                        sanitize: raw && !self.settings.keep_literals,
                        binds: sql.binds,
                    }),
                    params,
                    bound,
                )
            }
            _ => (None, None, None),
        };
        // The trace's root, for the key of the values digest (none without a key).
        let values = statement
            .as_ref()
            .filter(|st| st.binds == 0 || bound.is_some())
            .and_then(|_| keyed_root())
            .map(TraceRoot);
        DbCall {
            api,
            depth,
            settings: self.settings.clone(),
            statement,
            record_sql,
            params,
            bound: if values.is_some() { bound } else { None },
            values,
        }
    }
}

/// The active trace's root when it has a key: what keys the `values` digest.
fn keyed_root() -> Option<Arc<crate::context::Root>> {
    crate::context::CURRENT
        .try_with(|c| {
            c.borrow()
                .as_ref()
                .filter(|f| !f.root.hmac_key.is_empty())
                .map(|f| f.root.clone())
        })
        .ok()
        .flatten()
}

/// Whether a statement's bound values would be digested into `db.values` now: a trace is
/// active and has a key. An adapter asks before it copies or hashes the values for
/// [`BoundValues`], so a trace without a key costs it nothing more.
///
/// ```
/// assert!(!osprofiler_core::db::values_recorded()); // no trace here
/// ```
pub fn values_recorded() -> bool {
    keyed_root().is_some()
}

/// One DB call, as an adapter reports it. Built of references: making one costs nothing, and
/// nothing in it is read unless a trace is active (the SQL only when `trace_sql` is on).
#[derive(Clone, Copy)]
#[non_exhaustive]
pub enum DbEvent<'a> {
    /// Establishing a connection (`api` `connect`).
    Connect,
    /// Taking a connection from a pool (`acquire`).
    Acquire,
    /// Running a statement (`query`), whatever the library returns: rows, a stream of rows, or
    /// the number of rows affected.
    Query(&'a dyn SqlSource),
    /// Preparing a statement (`prepare`).
    Prepare(&'a dyn SqlSource),
    /// `BEGIN` at `depth` 1 (`begin`), a savepoint deeper (`savepoint`).
    Begin {
        /// 1 for the transaction, 2 and more for nested savepoints.
        depth: u32,
    },
    /// `COMMIT` at `depth` 1 (`commit`), releasing a savepoint deeper (`release_savepoint`).
    Commit {
        /// The depth of the transaction or savepoint that ends.
        depth: u32,
    },
    /// `ROLLBACK` at `depth` 1 (`rollback`), to a savepoint deeper (`rollback_to_savepoint`).
    Rollback {
        /// The depth of the transaction or savepoint that ends.
        depth: u32,
    },
}

impl std::fmt::Debug for DbEvent<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DbEvent::Connect => f.write_str("Connect"),
            DbEvent::Acquire => f.write_str("Acquire"),
            DbEvent::Query(_) => f.write_str("Query(..)"),
            DbEvent::Prepare(_) => f.write_str("Prepare(..)"),
            DbEvent::Begin { depth } => write!(f, "Begin {{ depth: {depth} }}"),
            DbEvent::Commit { depth } => write!(f, "Commit {{ depth: {depth} }}"),
            DbEvent::Rollback { depth } => write!(f, "Rollback {{ depth: {depth} }}"),
        }
    }
}

/// A statement's SQL, read only when the point records SQL (`trace_sql` on). Closures
/// `Fn(bool) -> Option<Sql>` are sources.
pub trait SqlSource {
    /// The statement's text and bound values (`None` when the text is not known);
    /// `with_params` says whether [`Sql::params`] will be recorded (`trace_sql_params` on), so
    /// that they need not be formatted otherwise.
    fn sql(&self, with_params: bool) -> Option<Sql>;
}

impl<F: Fn(bool) -> Option<Sql>> SqlSource for F {
    fn sql(&self, with_params: bool) -> Option<Sql> {
        self(with_params)
    }
}

/// A statement as an adapter hands it over: see [`SqlSource`].
#[derive(Debug)]
pub struct Sql {
    /// The text as sent to the database.
    pub text: SqlText,
    /// How many values are bound to it. 0 means any data is inline, so the text's literals
    /// are replaced (see the [module docs](self)).
    pub binds: usize,
    /// The bound values as text (`[7, "alice"]`), recorded as `params` with
    /// `trace_sql_params`.
    pub params: Option<String>,
    /// The bound values for the `values` digest (see [`Sql::values`]).
    values: Option<BoundValues>,
}

/// Bound values as the `values` digest reads them: never recorded, only hashed (with the
/// trace's key) into `db.values`, so equal values can be told from different ones.
///
/// Two forms, for what an adapter has in hand:
/// - [`BoundValues::owned`]: values the adapter can give away (a clone of sqlx's `Arguments`,
///   of sea-orm's `Values`, diesel's formatted binds). Their `Debug` text is hashed by the
///   notifier's worker: the query's path only moves them.
/// - [`BoundValues::hash_now`]: values only borrowed for the call (tokio-postgres's
///   `&[&dyn ToSql]`): their `Debug` text is hashed on the spot, into a hasher, with no
///   `String` made; the worker keys that hash.
///
/// ```
/// use osprofiler_core::db::{BoundValues, Sql, SqlText};
/// let sql = Sql::new(SqlText::Static("SELECT * FROM t WHERE id = $1"), 1)
///     .values(Some(BoundValues::owned(vec![7_i64])));
/// assert_eq!(sql.binds, 1);
/// ```
pub struct BoundValues(Bound);

enum Bound {
    Owned(Box<dyn std::fmt::Debug + Send + Sync>),
    Hashed(u128),
}

impl BoundValues {
    /// Values the worker formats (`Debug`) into the digest.
    pub fn owned(values: impl std::fmt::Debug + Send + Sync + 'static) -> BoundValues {
        BoundValues(Bound::Owned(Box::new(values)))
    }

    /// Values hashed now (their `Debug` text streamed into SipHash-1-3-128, no allocation).
    pub fn hash_now(values: &dyn std::fmt::Debug) -> BoundValues {
        BoundValues(Bound::Hashed(fingerprint::debug_hash128(values)))
    }
}

impl std::fmt::Debug for BoundValues {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the values: this Debug reaches logs.
        f.write_str(match self.0 {
            Bound::Owned(_) => "BoundValues(owned, ..)",
            Bound::Hashed(_) => "BoundValues(hashed, ..)",
        })
    }
}

impl Sql {
    /// A statement with `binds` bound values and no parameter text.
    pub fn new(text: SqlText, binds: usize) -> Self {
        Sql {
            text,
            binds,
            params: None,
            values: None,
        }
    }

    /// With the bound values' text.
    pub fn params(mut self, params: Option<String>) -> Self {
        self.params = params;
        self
    }

    /// With the bound values for the `values` digest (whatever `trace_sql` and
    /// `trace_sql_params` say: the digest reveals no value). Without them a statement with
    /// bound values has no `values`.
    pub fn values(mut self, values: Option<BoundValues>) -> Self {
        self.values = values;
        self
    }
}

/// SQL text handed to the notifier: a static string and shared text cost no copy.
#[derive(Debug, Clone)]
pub enum SqlText {
    /// A string literal of the program.
    Static(&'static str),
    /// Shared text (a prepared statement's).
    Shared(Arc<str>),
    /// Text the adapter made or copied.
    Owned(String),
}

impl SqlText {
    /// The text.
    pub fn as_str(&self) -> &str {
        match self {
            SqlText::Static(s) => s,
            SqlText::Shared(s) => s,
            SqlText::Owned(s) => s,
        }
    }
}

impl From<&str> for SqlText {
    /// Copies the text.
    fn from(s: &str) -> Self {
        SqlText::Owned(s.to_owned())
    }
}

/// The `api` of a `db` point (see the [module docs](self)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Api {
    Connect,
    Acquire,
    Query,
    Prepare,
    Begin,
    Commit,
    Rollback,
    Savepoint,
    ReleaseSavepoint,
    RollbackToSavepoint,
}

impl Api {
    fn as_str(self) -> &'static str {
        match self {
            Api::Connect => "connect",
            Api::Acquire => "acquire",
            Api::Query => "query",
            Api::Prepare => "prepare",
            Api::Begin => "begin",
            Api::Commit => "commit",
            Api::Rollback => "rollback",
            Api::Savepoint => "savepoint",
            Api::ReleaseSavepoint => "release_savepoint",
            Api::RollbackToSavepoint => "rollback_to_savepoint",
        }
    }
}

/// Whether a `db` point with this `db.api` is an executed statement, as the analysis, the
/// listing and `stats` count them: `query`, or no `api` at all (Python's SQLAlchemy points);
/// transaction control, `prepare`, `connect` and `acquire` are not.
pub(crate) fn is_statement_api(api: Option<&str>) -> bool {
    api.is_none_or(|a| a == Api::Query.as_str())
}

/// A statement's text and whether its literals are replaced when it is serialized.
#[derive(Debug)]
struct Statement {
    text: SqlText,
    sanitize: bool,
    /// [`Sql::binds`].
    binds: usize,
}

/// The start info of a `db` point, written by the notifier's worker.
#[derive(Debug)]
struct DbCall {
    api: Api,
    depth: Option<u32>,
    settings: Arc<Settings>,
    statement: Option<Statement>,
    /// `trace_sql` was on: `statement` and `normalized` are recorded.
    record_sql: bool,
    params: Option<String>,
    /// The bound values for the digest, when `values` is recorded.
    bound: Option<BoundValues>,
    /// The trace's root when `values` is recorded (its key keys the digest).
    values: Option<TraceRoot>,
}

/// A trace's root, shown without its key.
struct TraceRoot(Arc<crate::context::Root>);

impl std::fmt::Debug for TraceRoot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TraceRoot(..)")
    }
}

impl LazyInfo for DbCall {
    fn db_api(&self) -> Option<&str> {
        Some(self.api.as_str())
    }

    fn heap_size(&self) -> usize {
        let text = match self.statement.as_ref().map(|s| &s.text) {
            Some(SqlText::Owned(t)) => t.capacity(),
            // Static text is the program's; shared text is the prepared statement's.
            _ => 0,
        };
        let params = self.params.as_ref().map_or(0, String::capacity);
        let bound = match &self.bound {
            Some(BoundValues(Bound::Owned(_))) => 64,
            _ => 0,
        };
        text + params + bound
    }

    fn write(&self, info: &mut Info) {
        let target = &self.settings.target;
        let mut db = Map::new();
        db.insert("api".into(), self.api.as_str().into());
        db.insert("system".into(), target.system.as_str().into());
        if let Some(n) = &target.namespace {
            db.insert("namespace".into(), n.as_str().into());
        }
        if let Some(s) = &target.server {
            db.insert("server".into(), s.as_str().into());
        }
        if let Some(depth) = self.depth {
            db.insert("depth".into(), depth.into());
        }
        if let Some(st) = &self.statement {
            let text = st.text.as_str();
            let dialect = self.settings.dialect;
            let entry = fingerprint::lookup(text, dialect);
            db.insert(
                "fingerprint".into(),
                fingerprint::format_id(entry.fingerprint.id).into(),
            );
            if self.record_sql {
                let statement = if st.sanitize {
                    sanitize(text, dialect)
                } else {
                    text.to_owned()
                };
                db.insert("statement".into(), statement.into());
                db.insert("normalized".into(), (*entry.fingerprint.text).into());
            }
            if let Some(TraceRoot(root)) = &self.values {
                let key = *root
                    .values_key
                    .get_or_init(|| fingerprint::values_key(&root.hmac_key));
                let digest =
                    fingerprint::values_digest(key, text, &entry.literals, self.bound.as_ref());
                db.insert("values".into(), fingerprint::format_id(digest).into());
            }
        }
        if let Some(p) = &self.params {
            db.insert("params".into(), p.as_str().into());
        }
        info.insert("db".into(), Value::Object(db));
    }
}

/// Stop info of a failed call: `etype`, `message`, and `{"db": {"original_exception",
/// "sqlstate", "code"}}` (see the [module docs](self)).
#[derive(Debug, Clone)]
pub struct DbError {
    /// The error's type name.
    pub etype: &'static str,
    /// Its `Display` text.
    pub message: String,
    /// The database's own message, if the library gives it apart.
    pub original_exception: Option<String>,
    /// The SQLSTATE code (PostgreSQL, MySQL), when the database gave one.
    pub sqlstate: Option<String>,
    /// The database's or library's error code where there is no SQLSTATE (SQLite's result
    /// code, diesel's error kind).
    pub code: Option<String>,
}

impl DbError {
    /// An error of type `etype` with `message` and nothing else known.
    pub fn new(etype: &'static str, message: String) -> Self {
        DbError {
            etype,
            message,
            original_exception: None,
            sqlstate: None,
            code: None,
        }
    }
}

impl LazyInfo for DbError {
    fn write(&self, info: &mut Info) {
        info.insert("etype".into(), self.etype.into());
        info.insert("message".into(), self.message.as_str().into());
        let mut db = Map::new();
        db.insert(
            "original_exception".into(),
            self.original_exception
                .as_deref()
                .unwrap_or(&self.message)
                .into(),
        );
        if let Some(code) = &self.sqlstate {
            db.insert("sqlstate".into(), code.as_str().into());
        }
        if let Some(code) = &self.code {
            db.insert("code".into(), code.as_str().into());
        }
        info.insert("db".into(), Value::Object(db));
    }

    fn error_type(&self, _phase: Phase) -> Option<&str> {
        Some(self.etype)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn start_info(tracer: &DbTracer, event: DbEvent<'_>) -> Value {
        let mut info = Info::new();
        tracer.call(event).write(&mut info);
        Value::Object(info)
    }

    #[test]
    fn start_info_per_event() {
        let tracer = DbTracer::new("postgresql")
            .database("test")
            .server("127.0.0.1:5432");
        assert_eq!(
            start_info(&tracer, DbEvent::Begin { depth: 2 }),
            json!({"db": {"api": "savepoint", "system": "postgresql", "namespace": "test", "server": "127.0.0.1:5432", "depth": 2}})
        );
        assert_eq!(
            start_info(&tracer, DbEvent::Commit { depth: 1 })["db"]["api"],
            "commit"
        );
        assert_eq!(
            start_info(&tracer, DbEvent::Rollback { depth: 3 })["db"]["api"],
            "rollback_to_savepoint"
        );
        assert_eq!(
            start_info(&DbTracer::new("sqlite"), DbEvent::Acquire),
            json!({"db": {"api": "acquire", "system": "sqlite"}})
        );
    }

    #[test]
    fn error_answers_its_type() {
        let e = DbError::new("E", "m".into());
        assert_eq!(e.error_type(Phase::Stop), Some("E"));
        let mut info = Info::new();
        e.write(&mut info);
        assert_eq!(
            Value::Object(info),
            json!({"etype": "E", "message": "m", "db": {"original_exception": "m"}})
        );
    }
}
