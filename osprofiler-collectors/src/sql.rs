//! The SQL collector: SQLite (embedded, the default), PostgreSQL and MySQL/MariaDB.
//!
//! One table, `data`, laid out as OSProfiler's SQLAlchemy driver lays it out (so existing
//! schemas and queries keep working): `id`, `timestamp`, `base_id`, `parent_id`, `trace_id`,
//! `project`, `host`, `service`, `name` and `data` (the message's remaining keys, `info`
//! included, as JSON text). Unlike the Python driver, every batch is one multi-row `INSERT`
//! in a committed transaction, and traces can be read, listed and listed by error.
//!
//! Python indexes every column but `id` and `data`; a new table here gets only the indexes
//! the reads use, `ix_data_base_id` and `ix_data_timestamp` (same names): each index costs
//! every insert a B-tree update, and six unused ones cut write throughput by more than half.
//! A table Python created keeps its indexes and works as is.
//!
//! A second table, `trace_summaries`, holds the partial summaries the notifier writes (see
//! [`osprofiler_core::listing`]): one row per process and trace (`base_id`, `start_us`,
//! `end_us`, `root`, `services` as a JSON array, `messages`, `points`, `db_statements`,
//! `db_us`, `errors`, `error_type`, `error_us`). `osprofiler trace list` adds a trace's rows
//! up and compares their `messages` with the trace's row count in `data`; traces with no or
//! too few summary rows (written by Python, which ignores the table) are computed from
//! `data`. A database without the table (created by Python, or read-only) lists every trace
//! that way.
//!
//! A third, `trace_staging`, stages provisional traces (see [`osprofiler_core::sampling`]):
//! one row per trace (`base_id` VARCHAR(255) primary key, `state` CHAR(1), `since_us` BIGINT
//! microseconds since the epoch, index `ix_trace_staging_state` on `(state, since_us)`), the
//! state `p` pending, `k` kept or `d` dropped. It is created by a writer that stages
//! ([`Writer::stage`], which the notifier calls) when it first records a provisional trace,
//! keeps one or sweeps. The messages of a provisional trace go to `data` like any other (so
//! Python reads them); the transaction that stores them first inserts the trace's row as
//! pending unless it has one (`ON CONFLICT DO NOTHING`; on MySQL `ON DUPLICATE KEY UPDATE`
//! with no change), so a kept trace stays kept. A keep upserts the row to `k`. Every
//! listing (`list_traces`, `list_error_traces`, `list` unless
//! [`ListFilter::include_pending`]) leaves out the traces whose row is `p` or `d` (an
//! anti-join on the primary key), whoever wrote their messages: Python's points of a
//! provisional trace are hidden with it. A trace whose id has the provisional form
//! ([`osprofiler_core::sampling::is_provisional_id`], matched as
//! `base_id LIKE '________-____-8f5b-____-____________'`) is left out too unless its row is
//! `k`: also with no row, and in a database without `trace_staging`, since a Python callee's
//! points reach `data` before the origin's first batch (and its row). [`Reader::trace_state`]
//! reads the row; with none, a provisional-form id is pending and any other stored.
//!
//! A sweep, in one transaction, deletes the messages and summaries of every dropped trace and
//! of every pending one older than the staging window, deletes the dropped rows older than
//! the window (their second window is over), and turns the pending ones older than the window
//! into dropped ones (since now): late points of a dropped trace are removed by the sweeps of
//! its second window. Then it deletes the messages and summaries of the provisional-form
//! traces with no row whose newest message is older than the window: fragments a Python
//! callee wrote for an origin that never recorded the trace (it crashed, or its batch was
//! lost). It finds them among the messages whose timestamps lie between where its previous
//! sweep stopped (less a window; an hour back for a process's first sweep) and now - window,
//! on the timestamp index; older ones are left to retention. Caveat: when the origin's
//! batches are held back longer than the window (a collector outage the notifier's queue
//! rides out), a sweep may remove the callee's part of a trace whose record arrives later.
//! Sweeps of several services over one database are safe (MySQL sweeps at READ COMMITTED,
//! and a keep, sweep or insert that loses a deadlock is tried again).
//!
//! [`Writer::prune`] (the `retention` option) deletes the traces whose newest message is
//! older than the cutoff (found on the timestamp index), from `data`, `trace_summaries` and
//! `trace_staging`, a few hundred per transaction, and kept rows older than the cutoff left
//! with no message. [`Writer::delete_trace`] deletes one trace from the three tables.
//!
//! A database without `trace_staging` (Python's, or one no Rust service staged in) reads as
//! it always did but for provisional-form ids, and a reader ([`SqlDriver::open_read_only`])
//! never creates it.

use osprofiler_core::listing::{self, ListFilter, PartialSummary, StoredTrace, TraceListing};
use osprofiler_core::message::Message;
use osprofiler_core::notifier::{DriverError, Reader, TraceState, TraceSummary, Writer};
use serde_json::{Map, Value};
use sqlx::{AssertSqlSafe, ConnectOptions as _, QueryBuilder, Row};
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::Duration;

/// Columns of the `data` table besides `id` and `data`, in insert order.
const COLUMNS: [&str; 8] = [
    "timestamp",
    "base_id",
    "parent_id",
    "trace_id",
    "project",
    "host",
    "service",
    "name",
];

/// Columns with an index (named `ix_data_<column>` as SQLAlchemy names them).
const INDEXED: [&str; 2] = ["base_id", "timestamp"];

/// Rows per `INSERT` statement (9 binds each: well under every backend's bind limit).
const ROWS_PER_INSERT: usize = 1000;

/// Columns of the `trace_summaries` table, in insert order.
const SUMMARY_COLUMNS: [&str; 12] = [
    "base_id",
    "start_us",
    "end_us",
    "root",
    "services",
    "messages",
    "points",
    "db_statements",
    "db_us",
    "errors",
    "error_type",
    "error_us",
];

/// Traces read per `SELECT ... WHERE base_id IN (...)` when listing traces without summaries
/// (and deleted per statement when pruning).
const IDS_PER_SELECT: usize = 500;

/// The `LIKE` pattern of a provisional trace's base id
/// ([`osprofiler_core::sampling::is_provisional_id`]: a dashed UUID whose third group is
/// `8f5b`). SQLite's and MySQL's `LIKE` ignore case, so there an uppercase `8F5B` matches too
/// (no uuid4, which every other trace id is, has either).
const PROVISIONAL_LIKE: &str = "________-____-8f5b-____-____________";

/// The condition, on a row of `table`, that `trace_staging` does not hide its trace as
/// pending or dropped: an anti-join on the table's primary key.
fn not_staged_away(table: &str) -> String {
    format!(
        "NOT EXISTS (SELECT 1 FROM trace_staging s WHERE s.base_id = {table}.base_id AND s.state <> 'k')"
    )
}

/// The condition, on a row (or group by `base_id`) of `table`, that its trace's id is not a
/// provisional trace's or, with `trace_staging` (`staging`), that its row is `k` (a primary
/// key lookup, made only for such ids). Grouping queries test it in `HAVING`, once a trace
/// rather than once a message (a third of the time of the listing on PostgreSQL).
fn provisional_kept(table: &str, staging: bool) -> String {
    let plain = format!("{table}.base_id NOT LIKE '{PROVISIONAL_LIKE}'");
    if !staging {
        return plain;
    }
    format!(
        "({plain} OR EXISTS (SELECT 1 FROM trace_staging k WHERE k.base_id = {table}.base_id AND k.state = 'k'))"
    )
}

/// The condition, on a row of `table`, that its trace is shown: not hidden by its
/// `trace_staging` row ([`not_staged_away`], with the table) nor for a provisional trace's id
/// without a `k` row ([`provisional_kept`]).
fn shown(table: &str, staging: bool) -> String {
    if staging {
        format!(
            "{} AND {}",
            not_staged_away(table),
            provisional_kept(table, true)
        )
    } else {
        provisional_kept(table, false)
    }
}

/// How far before the window the first sweep of a process looks for record-less provisional
/// fragments (later sweeps look from where the one before stopped, less a window): an hour.
/// Older fragments, stranded while no service swept, are left to retention.
const FRAGMENT_LOOKBACK_US: i64 = 3_600_000_000;

/// Now, in microseconds since the epoch (the staging records' `since_us`).
fn now_us() -> i64 {
    osprofiler_core::clock::system_micros(std::time::SystemTime::now())
}

enum Pool {
    #[cfg(feature = "sqlite")]
    Sqlite(sqlx::SqlitePool),
    #[cfg(feature = "postgres")]
    Postgres(sqlx::PgPool),
    #[cfg(feature = "mysql")]
    MySql(sqlx::MySqlPool),
}

/// Runs `$body` with `$p` bound to the concrete pool, whatever the backend.
macro_rules! with_pool {
    ($pool:expr, $p:ident => $body:expr) => {
        match $pool {
            #[cfg(feature = "sqlite")]
            Pool::Sqlite($p) => $body,
            #[cfg(feature = "postgres")]
            Pool::Postgres($p) => $body,
            #[cfg(feature = "mysql")]
            Pool::MySql($p) => $body,
        }
    };
}

/// A collector storing messages in an SQL database (see the [module docs](self)).
///
/// Created from a connection string by [`crate::open`] or the notifier set-up: `sqlite://<path>`
/// (`sqlite://:memory:` for a private in-memory database), `postgresql://…`, `mysql://…`.
/// SQLAlchemy-style `+driver` suffixes (`postgresql+psycopg2://`) are accepted.
///
/// ```
/// use osprofiler_collectors::SqlDriver;
/// use osprofiler_core::notifier::{Reader, Writer};
/// let db = SqlDriver::open("sqlite://:memory:").unwrap();
/// assert!(db.list_traces().unwrap().is_empty());
/// ```
pub struct SqlDriver {
    name: &'static str,
    dialect: Dialect,
    pool: Pool,
    rt: crate::rt::Rt,
    schema_ready: AtomicBool,
    /// `trace_summaries`: 0 not yet created, 1 ready, 2 cannot be created (summaries off).
    summaries_state: std::sync::atomic::AtomicU8,
    /// Opened to read ([`SqlDriver::open_read_only`]): never creates anything.
    read_only: bool,
    /// The staging window in microseconds ([`Writer::stage`]); 0: provisional messages are
    /// stored as any other.
    window_us: AtomicI64,
    /// `trace_staging` is known to exist (created here, or found by a read).
    staging_ready: AtomicBool,
    /// Where the next sweep looks for record-less provisional fragments from (a timestamp in
    /// microseconds; 0: none swept yet, [`FRAGMENT_LOOKBACK_US`] before the cut).
    fragments_from: AtomicI64,
}

impl std::fmt::Debug for SqlDriver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqlDriver")
            .field("backend", &self.name)
            .finish_non_exhaustive()
    }
}

/// What differs between the backends' SQL, decided once at open.
#[derive(Debug, Clone, Copy)]
struct Dialect {
    /// The first bind placeholder.
    placeholder: &'static str,
    /// `data` read as text (MySQL's and PostgreSQL's JSON columns do not decode as strings).
    data_text: &'static str,
    /// Appended to the `data` placeholder on insert (PostgreSQL takes no text for JSON).
    json_cast: &'static str,
}

impl Dialect {
    fn of(name: &str) -> Dialect {
        match name {
            "postgresql" => Dialect {
                placeholder: "$1",
                data_text: "data::text",
                json_cast: "::json",
            },
            "mysql" => Dialect {
                placeholder: "?",
                data_text: "CAST(data AS CHAR)",
                json_cast: "",
            },
            _ => Dialect {
                placeholder: "?",
                data_text: "data",
                json_cast: "",
            },
        }
    }
}

fn db_err(what: &str, e: impl std::error::Error + Send + Sync + 'static) -> DriverError {
    DriverError::with_source(what.to_owned(), e)
}

/// Whether the database refused the rows themselves — a value too long, a constraint, bad
/// encoding — rather than being unreachable: SQLSTATE classes 22 (data exception) and 23
/// (integrity constraint) on PostgreSQL and MySQL, SQLite's TOOBIG, CONSTRAINT and MISMATCH.
/// Such a batch fails the same way however often it is retried.
fn refuses_data(e: &sqlx::Error) -> bool {
    let Some(db) = e.as_database_error() else {
        return matches!(e, sqlx::Error::Encode(_));
    };
    if !matches!(db.kind(), sqlx::error::ErrorKind::Other) {
        return true; // a unique, foreign key, not-null or check constraint
    }
    let code = db.code().unwrap_or_default();
    #[cfg(feature = "sqlite")]
    if db.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some() {
        // Result codes, the primary one in the low byte.
        return code
            .parse::<u32>()
            .is_ok_and(|n| matches!(n & 0xff, 18..=20));
    }
    code.starts_with("22") || code.starts_with("23")
}

impl SqlDriver {
    /// Opens (lazily: no connection is made until the first read or write, except for SQLite,
    /// whose file is created and checked at once) the database named by `connection_string`.
    /// The table is created when missing, before the first write.
    pub fn open(connection_string: &str) -> Result<SqlDriver, DriverError> {
        Self::open_with(connection_string, false)
    }

    /// Opens the database to read only, as `osprofiler trace show/list` do: nothing is ever
    /// created (a missing SQLite file, or a database without the `data` table, is an error
    /// saying so, not a new empty store), an SQLite file is opened read-only, and a database
    /// role that may only `SELECT` is enough.
    ///
    /// ```
    /// use osprofiler_collectors::SqlDriver;
    /// let e = SqlDriver::open_read_only("sqlite:///no/such/dir/traces.db").unwrap_err();
    /// assert!(e.to_string().contains("no SQLite database at /no/such/dir/traces.db"), "{e}");
    /// assert!(!std::path::Path::new("/no/such/dir/traces.db").exists());
    /// ```
    pub fn open_read_only(connection_string: &str) -> Result<SqlDriver, DriverError> {
        Self::open_with(connection_string, true)
    }

    fn open_with(connection_string: &str, read_only: bool) -> Result<SqlDriver, DriverError> {
        let (scheme, rest) = connection_string
            .split_once("://")
            .ok_or_else(|| DriverError::new("expected <scheme>://..."))?;
        let backend = scheme
            .split('+')
            .next()
            .unwrap_or_default()
            .to_ascii_lowercase();
        let rt = crate::rt::Rt::new()?;
        // sqlx pools must be created inside the runtime that drives their connections.
        let _enter = rt.handle().enter();
        let (name, pool) = match backend.as_str() {
            #[cfg(feature = "sqlite")]
            "sqlite" => {
                use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
                use std::str::FromStr;
                let memory = rest.is_empty() || rest.starts_with(":memory:");
                let path = rest.split('?').next().unwrap_or_default();
                if read_only && !memory && !std::path::Path::new(path).is_file() {
                    return Err(DriverError::new(format!(
                        "no SQLite database at {path}: nothing was stored there (check the path)"
                    )));
                }
                let mut o = SqliteConnectOptions::from_str(&format!("sqlite://{rest}"))
                    .map_err(|e| db_err("bad sqlite:// connection string", e))?
                    .create_if_missing(!read_only)
                    .read_only(read_only && !memory)
                    .busy_timeout(Duration::from_secs(5))
                    .disable_statement_logging();
                if read_only && !memory {
                    o = o
                        .pragma("cache_size", "-65536")
                        .pragma("mmap_size", "268435456");
                } else if !memory {
                    // WAL with NORMAL sync: a commit is durable across a crash of this
                    // process, not of the machine, and costs no fsync. A 64 MiB page cache
                    // and memory-mapped reads keep index pages out of read(2).
                    o = o
                        .journal_mode(SqliteJournalMode::Wal)
                        .synchronous(SqliteSynchronous::Normal)
                        .pragma("cache_size", "-65536")
                        .pragma("mmap_size", "268435456");
                }
                // An in-memory database lives as long as its one connection.
                let opts = pool_options();
                let opts = if memory {
                    opts.max_connections(1)
                        .min_connections(1)
                        .idle_timeout(None)
                        .max_lifetime(None)
                } else {
                    opts
                };
                ("sqlite", Pool::Sqlite(opts.connect_lazy_with(o)))
            }
            #[cfg(feature = "postgres")]
            "postgres" | "postgresql" => {
                use std::str::FromStr;
                let o = sqlx::postgres::PgConnectOptions::from_str(&format!("postgresql://{rest}"))
                    .map_err(|e| db_err("bad postgresql:// connection string", e))?
                    .disable_statement_logging();
                (
                    "postgresql",
                    Pool::Postgres(pool_options().connect_lazy_with(o)),
                )
            }
            #[cfg(feature = "mysql")]
            "mysql" | "mariadb" => {
                use std::str::FromStr;
                let o = sqlx::mysql::MySqlConnectOptions::from_str(&format!("mysql://{rest}"))
                    .map_err(|e| db_err("bad mysql:// connection string", e))?
                    .disable_statement_logging();
                ("mysql", Pool::MySql(pool_options().connect_lazy_with(o)))
            }
            other => {
                return Err(DriverError::new(format!(
                    "the SQL collector has no backend {other:?} in this build (features: {})",
                    enabled_backends()
                )));
            }
        };
        drop(_enter);
        let driver = SqlDriver {
            name,
            dialect: Dialect::of(name),
            pool,
            rt,
            schema_ready: AtomicBool::new(false),
            summaries_state: std::sync::atomic::AtomicU8::new(0),
            read_only,
            window_us: AtomicI64::new(0),
            staging_ready: AtomicBool::new(false),
            fragments_from: AtomicI64::new(0),
        };
        if name == "sqlite" && !read_only {
            driver.run(driver.ensure_schema())?;
        }
        Ok(driver)
    }

    fn run<F: Future + Send>(&self, fut: F) -> F::Output
    where
        F::Output: Send,
    {
        self.rt.run(fut)
    }

    fn create_table_sql(&self) -> String {
        let (id, json, inline_indexes) = match self.name {
            "postgresql" => ("id SERIAL PRIMARY KEY", "JSON", false),
            "mysql" => ("id INTEGER AUTO_INCREMENT PRIMARY KEY", "JSON", true),
            _ => ("id INTEGER PRIMARY KEY", "JSON", false),
        };
        let mut sql = format!("CREATE TABLE IF NOT EXISTS data ({id}");
        for c in COLUMNS {
            let len = if c == "timestamp" { 26 } else { 255 };
            sql.push_str(&format!(", {c} VARCHAR({len})"));
        }
        sql.push_str(&format!(", data {json}"));
        if inline_indexes {
            // MySQL has no CREATE INDEX IF NOT EXISTS.
            for c in INDEXED {
                sql.push_str(&format!(", INDEX ix_data_{c} ({c})"));
            }
        }
        sql.push(')');
        sql
    }

    fn create_summaries_sql(&self) -> String {
        let int = "BIGINT";
        let index = if self.name == "mysql" {
            ", INDEX ix_trace_summaries_base_id (base_id)"
        } else {
            ""
        };
        format!(
            "CREATE TABLE IF NOT EXISTS trace_summaries (base_id VARCHAR(255), start_us {int}, \
             end_us {int}, root VARCHAR(255), services TEXT, messages {int}, points {int}, \
             db_statements {int}, db_us {int}, errors {int}, error_type VARCHAR(255), \
             error_us {int}{index})"
        )
    }

    async fn ensure_schema(&self) -> Result<(), DriverError> {
        if self.schema_ready.load(Ordering::Acquire) {
            return Ok(());
        }
        let mut statements = vec![self.create_table_sql()];
        if self.name != "mysql" {
            statements.extend(
                INDEXED
                    .iter()
                    .map(|c| format!("CREATE INDEX IF NOT EXISTS ix_data_{c} ON data ({c})")),
            );
        }
        with_pool!(&self.pool, p => {
            for s in statements {
                sqlx::query(AssertSqlSafe(s))
                    .execute(p)
                    .await
                    .map_err(|e| db_err(&format!("cannot create the {} table `data`", self.name), e))?;
            }
        });
        self.schema_ready.store(true, Ordering::Release);
        Ok(())
    }

    /// Before a read: the table is created for a driver that writes (it reads what it wrote);
    /// a reader creates nothing.
    async fn before_read(&self) -> Result<(), DriverError> {
        if self.read_only {
            return Ok(());
        }
        self.ensure_schema().await
    }

    async fn insert(&self, batch: &[Message]) -> Result<(), DriverError> {
        self.ensure_schema().await?;
        // The provisional traces of the batch, when staging: recorded as pending (unless
        // they have a record) in the transaction that stores their messages, before them.
        let mut staged: Vec<String> = Vec::new();
        if self.window_us.load(Ordering::Relaxed) > 0 {
            staged = batch
                .iter()
                .filter(|m| m.is_provisional())
                .map(|m| m.base_id().to_string())
                .collect();
            staged.sort_unstable();
            staged.dedup();
        }
        if !staged.is_empty() {
            self.ensure_staging().await?;
        }
        let since = now_us();
        let keep_record = if self.name == "mysql" {
            " ON DUPLICATE KEY UPDATE base_id = base_id"
        } else {
            " ON CONFLICT (base_id) DO NOTHING"
        };
        let rows: Vec<[Option<String>; 9]> = batch.iter().map(row_of).collect();
        let cast = self.dialect.json_cast;
        with_pool!(&self.pool, p => {
            let mut tx = p.begin().await.map_err(|e| db_err("cannot begin", e))?;
            for chunk in staged.chunks(ROWS_PER_INSERT) {
                let mut q = QueryBuilder::new("INSERT INTO trace_staging (base_id, state, since_us) ");
                q.push_values(chunk, |mut b, id| {
                    b.push_bind(id.as_str()).push("'p'").push_bind(since);
                });
                q.push(keep_record);
                q.build().execute(&mut *tx).await.map_err(|e| {
                    let rejected = refuses_data(&e);
                    let e = db_err("cannot record provisional traces in `trace_staging`", e);
                    if rejected { e.rejected() } else { e }
                })?;
            }
            let mut rows = rows.into_iter().peekable();
            while rows.peek().is_some() {
                let mut q = QueryBuilder::new(format!(
                    "INSERT INTO data ({}, data) ",
                    COLUMNS.join(", ")
                ));
                // The values move into the statement's arguments: no copies.
                q.push_values(rows.by_ref().take(ROWS_PER_INSERT), |mut b, row| {
                    let [c0, c1, c2, c3, c4, c5, c6, c7, data] = row;
                    for v in [c0, c1, c2, c3, c4, c5, c6, c7] {
                        b.push_bind(v);
                    }
                    b.push_bind(data).push_unseparated(cast);
                });
                q.build().execute(&mut *tx).await.map_err(|e| {
                    let rejected = refuses_data(&e);
                    let e = db_err("cannot insert messages", e);
                    if rejected { e.rejected() } else { e }
                })?;
            }
            tx.commit().await.map_err(|e| db_err("cannot commit", e))?;
        });
        Ok(())
    }

    async fn select_trace(&self, base_id: &str) -> Result<Vec<Value>, DriverError> {
        self.before_read().await?;
        let Dialect {
            data_text,
            placeholder,
            ..
        } = self.dialect;
        let sql = format!(
            "SELECT {}, {data_text} FROM data WHERE base_id = {placeholder} ORDER BY id",
            COLUMNS.join(", ")
        );
        let mut out = Vec::new();
        with_pool!(&self.pool, p => {
            let rows = sqlx::query(AssertSqlSafe(sql))
                .bind(base_id)
                .fetch_all(p)
                .await
                .map_err(|e| read_err("cannot read the trace", self.name, e))?;
            for r in rows {
                let mut cols: Vec<Option<String>> = Vec::with_capacity(9);
                for i in 0..9 {
                    cols.push(r.try_get(i).map_err(|e| db_err("bad row in table `data`", e))?);
                }
                out.push(message_of(cols));
            }
        });
        Ok(out)
    }

    /// Creates `trace_summaries` if missing; false when it cannot be (a role that may insert
    /// into `data` but create nothing): summaries are then off (the first call's error says
    /// so) and listing computes traces from their messages.
    async fn ensure_summaries(&self) -> Result<bool, DriverError> {
        match self.summaries_state.load(Ordering::Acquire) {
            1 => return Ok(true),
            2 => return Ok(false),
            _ => {}
        }
        self.ensure_schema().await?;
        let mut statements = vec![self.create_summaries_sql()];
        if self.name != "mysql" {
            statements.push(
                "CREATE INDEX IF NOT EXISTS ix_trace_summaries_base_id ON trace_summaries (base_id)"
                    .into(),
            );
        }
        let mut failure = None;
        with_pool!(&self.pool, p => {
            for s in statements {
                if let Err(e) = sqlx::query(AssertSqlSafe(s)).execute(p).await {
                    failure = Some(e);
                    break;
                }
            }
        });
        match failure {
            None => {
                self.summaries_state.store(1, Ordering::Release);
                Ok(true)
            }
            // Unreachable: retried with the messages.
            Some(e) if e.as_database_error().is_none() => {
                Err(db_err("cannot create the table `trace_summaries`", e))
            }
            Some(e) => {
                // Said once (the notifier logs it); later calls store nothing, quietly.
                self.summaries_state.store(2, Ordering::Release);
                Err(db_err(
                    &format!(
                        "cannot create the {} table `trace_summaries`, so no trace summaries \
                         are stored (`osprofiler trace list` reads each trace's messages)",
                        self.name
                    ),
                    e,
                ))
            }
        }
    }

    async fn insert_summaries(&self, parts: &[PartialSummary]) -> Result<(), DriverError> {
        if !self.ensure_summaries().await? {
            return Ok(());
        }
        let i = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        with_pool!(&self.pool, p => {
            let mut tx = p.begin().await.map_err(|e| db_err("cannot begin", e))?;
            for chunk in parts.chunks(ROWS_PER_INSERT / 2) {
                let mut q = QueryBuilder::new(format!(
                    "INSERT INTO trace_summaries ({}) ",
                    SUMMARY_COLUMNS.join(", ")
                ));
                q.push_values(chunk, |mut b, s| {
                    b.push_bind(clip(&s.base_id))
                        .push_bind(s.start_us)
                        .push_bind(s.end_us)
                        .push_bind(s.root.as_deref().map(clip))
                        .push_bind(serde_json::to_string(&s.services).unwrap_or_default())
                        .push_bind(i(s.messages))
                        .push_bind(i(s.points))
                        .push_bind(i(s.db_statements))
                        .push_bind(i(s.db_us))
                        .push_bind(i(s.errors))
                        .push_bind(s.error_type.as_deref().map(clip))
                        .push_bind(s.error_us);
                });
                q.build().execute(&mut *tx).await.map_err(|e| {
                    let rejected = refuses_data(&e);
                    let e = db_err("cannot insert trace summaries", e);
                    if rejected { e.rejected() } else { e }
                })?;
            }
            tx.commit().await.map_err(|e| db_err("cannot commit", e))?;
        });
        Ok(())
    }

    /// Every trace in `data` with its row count, and every summary row (none when the
    /// database has no `trace_summaries` table); with `include_pending` false, none of the
    /// traces `trace_staging` hides.
    async fn counts_and_summaries(
        &self,
        include_pending: bool,
    ) -> Result<(Vec<StoredTrace>, Vec<PartialSummary>), DriverError> {
        self.before_read().await?;
        let mut counts = Vec::new();
        let mut parts = Vec::new();
        let mut summaries = format!("SELECT {} FROM trace_summaries", SUMMARY_COLUMNS.join(", "));
        let mut count = "SELECT base_id, COUNT(*) FROM data".to_owned();
        if include_pending {
            count.push_str(" GROUP BY base_id");
        } else {
            let staging = self.staging_exists().await?;
            summaries.push_str(&format!(" WHERE {}", shown("trace_summaries", staging)));
            if staging {
                count.push_str(&format!(" WHERE {}", not_staged_away("data")));
            }
            count.push_str(&format!(
                " GROUP BY base_id HAVING {}",
                provisional_kept("data", staging)
            ));
        }
        with_pool!(&self.pool, p => {
            let rows = sqlx::query(AssertSqlSafe(count))
                .fetch_all(p)
                .await
                .map_err(|e| read_err("cannot list traces", self.name, e))?;
            for r in rows {
                let base_id: Option<String> = r.try_get(0).map_err(|e| db_err("bad row", e))?;
                let n: i64 = r.try_get(1).map_err(|e| db_err("bad row", e))?;
                if let Some(base_id) = base_id {
                    counts.push(StoredTrace {
                        base_id,
                        messages: n.max(0) as u64,
                    });
                }
            }
            match sqlx::query(AssertSqlSafe(summaries)).fetch_all(p).await {
                Ok(rows) => {
                    for r in rows {
                        if let Some(s) = summary_of_row(&r) {
                            parts.push(s);
                        }
                    }
                }
                // No summaries table, or not readable by this role: every trace is
                // computed from its messages.
                Err(e) if is_missing_table(&e) || e.as_database_error().is_some() => {}
                Err(e) => return Err(read_err("cannot read trace summaries", self.name, e)),
            }
        });
        Ok((counts, parts))
    }

    /// Every trace's first timestamp (microseconds).
    async fn first_timestamps(
        &self,
    ) -> Result<std::collections::HashMap<String, i64>, DriverError> {
        let mut out = std::collections::HashMap::new();
        with_pool!(&self.pool, p => {
            let rows = sqlx::query("SELECT base_id, MIN(timestamp) FROM data GROUP BY base_id")
                .fetch_all(p)
                .await
                .map_err(|e| read_err("cannot list traces", self.name, e))?;
            for r in rows {
                let base_id: Option<String> = r.try_get(0).ok().flatten();
                let first: Option<String> = r.try_get(1).ok().flatten();
                if let (Some(id), Some(us)) =
                    (base_id, first.as_deref().and_then(osprofiler_core::clock::parse_timestamp))
                {
                    out.insert(id, us);
                }
            }
        });
        Ok(out)
    }

    /// The listings of `ids`, computed from their messages, read a few hundred traces at once.
    async fn compute_listings(&self, ids: &[String]) -> Result<Vec<TraceListing>, DriverError> {
        let Dialect {
            data_text,
            placeholder,
            ..
        } = self.dialect;
        let mut out = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(IDS_PER_SELECT) {
            let binds: Vec<String> = (1..=chunk.len())
                .map(|n| {
                    if placeholder == "?" {
                        "?".to_owned()
                    } else {
                        format!("${n}")
                    }
                })
                .collect();
            let sql = format!(
                "SELECT {}, {data_text} FROM data WHERE base_id IN ({}) ORDER BY id",
                COLUMNS.join(", "),
                binds.join(", ")
            );
            let mut by_id: std::collections::HashMap<String, Vec<Value>> = Default::default();
            with_pool!(&self.pool, p => {
                let mut q = sqlx::query(AssertSqlSafe(sql));
                for id in chunk {
                    q = q.bind(id);
                }
                let rows = q
                    .fetch_all(p)
                    .await
                    .map_err(|e| read_err("cannot read traces", self.name, e))?;
                for r in rows {
                    let mut cols: Vec<Option<String>> = Vec::with_capacity(9);
                    for i in 0..9 {
                        // An unreadable column is a missing field: the trace is still listed.
                        cols.push(r.try_get(i).ok().flatten());
                    }
                    let base_id = cols[1].clone().unwrap_or_default();
                    by_id.entry(base_id).or_default().push(message_of(cols));
                }
            });
            for id in chunk {
                let messages = by_id.remove(id).unwrap_or_default();
                out.push(listing::listing_of(id, &messages));
            }
        }
        Ok(out)
    }

    async fn list_traces_filtered(
        &self,
        filter: &ListFilter,
    ) -> Result<Vec<TraceListing>, DriverError> {
        let (counts, parts) = self.counts_and_summaries(filter.include_pending).await?;
        // Traces without (enough) summaries: their starts, when the filter can use them.
        let mut unsummarized = Vec::new();
        let _ = listing::list_from_summaries(
            counts.iter().cloned(),
            parts.iter().cloned(),
            filter,
            |ids| {
                unsummarized = ids.to_vec();
                Ok::<_, DriverError>(Default::default())
            },
            |_| Ok(Vec::new()),
        )?;
        let starts = if unsummarized.is_empty() {
            Default::default()
        } else {
            self.first_timestamps().await?
        };
        let mut missing = Vec::new();
        let mut out = listing::list_from_summaries(
            counts,
            parts,
            filter,
            |_| Ok(starts),
            |ids| {
                missing = ids.to_vec();
                Ok::<_, DriverError>(Vec::new())
            },
        )?;
        if !missing.is_empty() {
            out.extend(self.compute_listings(&missing).await?);
            out = filter.apply(out);
        }
        Ok(out)
    }

    /// Deletes every stored message of one trace (retention, clean-up), its summaries and its
    /// staging record; returns how many messages.
    ///
    /// ```
    /// use osprofiler_collectors::SqlDriver;
    /// let db = SqlDriver::open("sqlite://:memory:").unwrap();
    /// assert_eq!(db.delete_trace("no-such-trace").unwrap(), 0);
    /// ```
    pub fn delete_trace(&self, base_id: &str) -> Result<u64, DriverError> {
        self.run(async {
            self.ensure_schema().await?;
            let sql = format!(
                "DELETE FROM data WHERE base_id = {}",
                self.dialect.placeholder
            );
            let summaries = format!(
                "DELETE FROM trace_summaries WHERE base_id = {}",
                self.dialect.placeholder
            );
            let staging = format!(
                "DELETE FROM trace_staging WHERE base_id = {}",
                self.dialect.placeholder
            );
            Ok(with_pool!(&self.pool, p => {
                match sqlx::query(AssertSqlSafe(summaries)).bind(base_id).execute(p).await {
                    Ok(_) => {}
                    Err(e) if is_missing_table(&e) => {}
                    Err(e) => return Err(db_err("cannot delete the trace's summaries", e)),
                }
                let n = sqlx::query(AssertSqlSafe(sql))
                    .bind(base_id)
                    .execute(p)
                    .await
                    .map_err(|e| db_err("cannot delete the trace", e))?
                    .rows_affected();
                // The record last: a pending trace stays hidden until its messages are gone.
                match sqlx::query(AssertSqlSafe(staging)).bind(base_id).execute(p).await {
                    Ok(_) => {}
                    Err(e) if is_missing_table(&e) => {}
                    Err(e) => return Err(db_err("cannot delete the trace's staging record", e)),
                }
                n
            }))
        })
    }

    /// The `n`th bind placeholder (from 1).
    fn bind_at(&self, n: usize) -> String {
        if self.dialect.placeholder == "?" {
            "?".to_owned()
        } else {
            format!("${n}")
        }
    }

    /// `n` bind placeholders from the `first`, comma-separated.
    fn binds(&self, first: usize, n: usize) -> String {
        (first..first + n)
            .map(|i| self.bind_at(i))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Creates `trace_staging` if missing (by a writer that stages, when it first records,
    /// keeps or sweeps). Unlike summaries, staging cannot be turned off when the table cannot
    /// be created: provisional messages stored without their record would be shown and never
    /// removed, so the error stands (and the batch waits).
    async fn ensure_staging(&self) -> Result<(), DriverError> {
        if self.staging_ready.load(Ordering::Acquire) {
            return Ok(());
        }
        self.ensure_schema().await?;
        let mysql = self.name == "mysql";
        let index = if mysql {
            ", INDEX ix_trace_staging_state (state, since_us)"
        } else {
            ""
        };
        let mut statements = vec![format!(
            "CREATE TABLE IF NOT EXISTS trace_staging (base_id VARCHAR(255) NOT NULL PRIMARY KEY, \
             state CHAR(1) NOT NULL, since_us BIGINT NOT NULL{index})"
        )];
        if !mysql {
            statements.push(
                "CREATE INDEX IF NOT EXISTS ix_trace_staging_state ON trace_staging (state, since_us)"
                    .to_owned(),
            );
        }
        with_pool!(&self.pool, p => {
            for s in statements {
                sqlx::query(AssertSqlSafe(s)).execute(p).await.map_err(|e| {
                    db_err(
                        &format!(
                            "cannot create the {} table `trace_staging`, which provisional traces \
                             (keep_slow_ms, keep_errors) need",
                            self.name
                        ),
                        e,
                    )
                })?;
            }
        });
        self.staging_ready.store(true, Ordering::Release);
        Ok(())
    }

    /// Whether `table` exists and this role may read it; an unreachable database is an error.
    async fn table_exists(&self, table: &str) -> Result<bool, DriverError> {
        let sql = format!("SELECT 1 FROM {table} WHERE 1 = 0");
        with_pool!(&self.pool, p => {
            match sqlx::query(AssertSqlSafe(sql)).fetch_optional(p).await {
                Ok(_) => Ok(true),
                Err(e) if e.as_database_error().is_some() => Ok(false),
                Err(e) => Err(read_err(&format!("cannot read table `{table}`"), self.name, e)),
            }
        })
    }

    /// Whether readers must hide staged traces: `trace_staging` exists (found once, it is
    /// remembered). A database without it (Python's, or one where nothing was staged yet)
    /// reads as it always did.
    async fn staging_exists(&self) -> Result<bool, DriverError> {
        if self.staging_ready.load(Ordering::Acquire) {
            return Ok(true);
        }
        let exists = self.table_exists("trace_staging").await?;
        if exists {
            self.staging_ready.store(true, Ordering::Release);
        }
        Ok(exists)
    }

    async fn keep_traces(&self, base_ids: &[&str]) -> Result<(), DriverError> {
        // An id longer than the column was never stored (its batch was refused).
        let mut ids: Vec<&str> = base_ids
            .iter()
            .copied()
            .filter(|b| b.chars().count() <= 255)
            .collect();
        ids.sort_unstable();
        ids.dedup();
        if ids.is_empty() {
            return Ok(());
        }
        self.ensure_staging().await?;
        let since = now_us();
        let upsert = if self.name == "mysql" {
            " ON DUPLICATE KEY UPDATE state = 'k'"
        } else {
            " ON CONFLICT (base_id) DO UPDATE SET state = 'k'"
        };
        with_pool!(&self.pool, p => {
            for chunk in ids.chunks(ROWS_PER_INSERT) {
                let mut q = QueryBuilder::new("INSERT INTO trace_staging (base_id, state, since_us) ");
                q.push_values(chunk, |mut b, id| {
                    b.push_bind(*id).push("'k'").push_bind(since);
                });
                q.push(upsert);
                q.build()
                    .execute(p)
                    .await
                    .map_err(|e| db_err("cannot keep provisional traces", e))?;
            }
        });
        Ok(())
    }

    async fn sweep_staged(&self, window_us: i64) -> Result<u64, DriverError> {
        self.ensure_staging().await?;
        let summaries = self.summaries_state.load(Ordering::Acquire) == 1
            || self.table_exists("trace_summaries").await?;
        let now = now_us();
        let due = now.saturating_sub(window_us);
        // The traces whose stored data goes: every dropped one (late points in its second
        // window too) and the pending ones past their window.
        let doomed = |s: &str| {
            format!(
                "{s}state = 'd' OR ({s}state = 'p' AND {s}since_us <= {})",
                self.bind_at(1)
            )
        };
        let mut deletes = Vec::new();
        for table in ["data", "trace_summaries"] {
            if table == "trace_summaries" && !summaries {
                continue;
            }
            deletes.push(if self.name == "mysql" {
                // MySQL: a join (a subquery plan is slow on older versions).
                format!(
                    "DELETE t FROM {table} t JOIN trace_staging s ON s.base_id = t.base_id \
                     WHERE {}",
                    doomed("s.")
                )
            } else {
                format!(
                    "DELETE FROM {table} WHERE base_id IN (SELECT base_id FROM trace_staging WHERE {})",
                    doomed("")
                )
            });
        }
        let at = self.bind_at(1);
        let forget = format!("DELETE FROM trace_staging WHERE state = 'd' AND since_us <= {at}");
        let expire = format!(
            "UPDATE trace_staging SET state = 'd', since_us = {at} WHERE state = 'p' AND since_us <= {}",
            self.bind_at(2)
        );
        let expired = with_pool!(&self.pool, p => {
            let mut conn = p.acquire().await.map_err(|e| db_err("cannot connect", e))?;
            if self.name == "mysql" {
                // No gap locks on the rows around those swept (REPEATABLE READ's), which
                // writers inserting provisional messages meanwhile would wait on.
                sqlx::query("SET TRANSACTION ISOLATION LEVEL READ COMMITTED")
                    .execute(&mut *conn)
                    .await
                    .map_err(|e| db_err("cannot set the isolation level", e))?;
            }
            let mut tx = sqlx::Connection::begin(&mut *conn).await.map_err(|e| db_err("cannot begin", e))?;
            for d in deletes {
                sqlx::query(AssertSqlSafe(d))
                    .bind(due)
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| db_err("cannot delete provisional traces not kept", e))?;
            }
            sqlx::query(AssertSqlSafe(forget))
                .bind(due)
                .execute(&mut *tx)
                .await
                .map_err(|e| db_err("cannot delete staging records", e))?;
            let n = sqlx::query(AssertSqlSafe(expire))
                .bind(now)
                .bind(due)
                .execute(&mut *tx)
                .await
                .map_err(|e| db_err("cannot drop provisional traces not kept", e))?
                .rows_affected();
            tx.commit().await.map_err(|e| db_err("cannot commit", e))?;
            n
        });
        Ok(expired)
    }

    /// Deletes the messages and summaries of the provisional-form traces that have no
    /// `trace_staging` row and no message newer than now - window (fragments written straight
    /// to `data`, by Python, whose origin never recorded the trace: it crashed, or its batch
    /// was lost). Looks at the messages with timestamps between where the last sweep stopped
    /// (less a window) and the cut, on the timestamp index; returns how many traces.
    /// The first column of `sql`'s rows (base ids), with `binds` bound in order; `what` says
    /// what failed.
    async fn select_ids(
        &self,
        sql: String,
        binds: &[&str],
        what: &str,
    ) -> Result<Vec<String>, DriverError> {
        let mut ids = Vec::new();
        with_pool!(&self.pool, p => {
            let mut q = sqlx::query(AssertSqlSafe(sql));
            for b in binds {
                q = q.bind(*b);
            }
            for r in q.fetch_all(p).await.map_err(|e| read_err(what, self.name, e))? {
                if let Ok(Some(id)) = r.try_get::<Option<String>, _>(0) {
                    ids.push(id);
                }
            }
        });
        Ok(ids)
    }

    async fn sweep_fragments(&self, window_us: i64) -> Result<u64, DriverError> {
        let cut_us = now_us().saturating_sub(window_us);
        let from_us = match self.fragments_from.load(Ordering::Acquire) {
            0 => cut_us.saturating_sub(FRAGMENT_LOOKBACK_US),
            from => from.min(cut_us),
        };
        let cut = osprofiler_core::clock::format_timestamp(cut_us);
        let from = osprofiler_core::clock::format_timestamp(from_us);
        let find = format!(
            "SELECT o.base_id FROM (SELECT DISTINCT base_id FROM data WHERE timestamp >= {} \
             AND timestamp < {} AND base_id LIKE '{PROVISIONAL_LIKE}') o \
             WHERE NOT EXISTS (SELECT 1 FROM trace_staging s WHERE s.base_id = o.base_id) \
             AND NOT EXISTS (SELECT 1 FROM data n WHERE n.base_id = o.base_id AND n.timestamp >= {})",
            self.bind_at(1),
            self.bind_at(2),
            self.bind_at(3)
        );
        let ids = self
            .select_ids(
                find,
                &[&*from, &*cut, &*cut],
                "cannot find provisional fragments",
            )
            .await?;
        let summaries = !ids.is_empty()
            && (self.summaries_state.load(Ordering::Acquire) == 1
                || self.table_exists("trace_summaries").await?);
        for chunk in ids.chunks(IDS_PER_SELECT) {
            let binds = self.binds(1, chunk.len());
            // Checked again in the transaction: a record that landed since keeps the trace.
            let unrecorded = |table: &str| {
                format!(
                    "NOT EXISTS (SELECT 1 FROM trace_staging s WHERE s.base_id = {table}.base_id)"
                )
            };
            let mut deletes = vec![format!(
                "DELETE FROM data WHERE base_id IN ({binds}) AND timestamp < {} AND {}",
                self.bind_at(chunk.len() + 1),
                unrecorded("data")
            )];
            if summaries {
                deletes.push(format!(
                    "DELETE FROM trace_summaries WHERE base_id IN ({binds}) AND {}",
                    unrecorded("trace_summaries")
                ));
            }
            with_pool!(&self.pool, p => {
                let mut conn = p.acquire().await.map_err(|e| db_err("cannot connect", e))?;
                if self.name == "mysql" {
                    // As in a sweep: no gap locks on `trace_staging`, where writers insert.
                    sqlx::query("SET TRANSACTION ISOLATION LEVEL READ COMMITTED")
                        .execute(&mut *conn)
                        .await
                        .map_err(|e| db_err("cannot set the isolation level", e))?;
                }
                let mut tx = sqlx::Connection::begin(&mut *conn).await.map_err(|e| db_err("cannot begin", e))?;
                for (i, d) in deletes.iter().enumerate() {
                    let mut q = sqlx::query(AssertSqlSafe(d.clone()));
                    for id in chunk {
                        q = q.bind(id);
                    }
                    if i == 0 {
                        q = q.bind(&cut);
                    }
                    q.execute(&mut *tx)
                        .await
                        .map_err(|e| db_err("cannot delete provisional fragments", e))?;
                }
                tx.commit().await.map_err(|e| db_err("cannot commit", e))?;
            });
        }
        self.fragments_from
            .store(cut_us.saturating_sub(window_us).max(1), Ordering::Release);
        Ok(ids.len() as u64)
    }

    async fn prune_before(&self, cutoff: std::time::SystemTime) -> Result<u64, DriverError> {
        if !self.read_only {
            self.ensure_schema().await?;
        }
        let cutoff_us = osprofiler_core::clock::system_micros(cutoff);
        let cut = osprofiler_core::clock::format_timestamp(cutoff_us);
        // Traces with a message older than the cutoff and none since (both sides on the
        // timestamp index, the check per trace on the base_id one).
        let old = format!(
            "SELECT o.base_id FROM (SELECT DISTINCT base_id FROM data WHERE timestamp < {}) o \
             WHERE o.base_id IS NOT NULL AND NOT EXISTS \
             (SELECT 1 FROM data n WHERE n.base_id = o.base_id AND n.timestamp >= {})",
            self.bind_at(1),
            self.bind_at(2)
        );
        let ids = self
            .select_ids(old, &[&*cut, &*cut], "cannot find old traces")
            .await?;
        let mut tables = vec!["trace_summaries", "data"];
        let staging = self.staging_exists().await?;
        if staging {
            tables.push("trace_staging");
        }
        if self.summaries_state.load(Ordering::Acquire) != 1
            && !self.table_exists("trace_summaries").await?
        {
            tables.remove(0);
        }
        for chunk in ids.chunks(IDS_PER_SELECT) {
            let binds = self.binds(1, chunk.len());
            with_pool!(&self.pool, p => {
                let mut tx = p.begin().await.map_err(|e| db_err("cannot begin", e))?;
                for table in &tables {
                    let sql = format!("DELETE FROM {table} WHERE base_id IN ({binds})");
                    let mut q = sqlx::query(AssertSqlSafe(sql));
                    for id in chunk {
                        q = q.bind(id);
                    }
                    q.execute(&mut *tx)
                        .await
                        .map_err(|e| db_err(&format!("cannot delete old traces from `{table}`"), e))?;
                }
                tx.commit().await.map_err(|e| db_err("cannot commit", e))?;
            });
        }
        if staging {
            // Keeps older than the cutoff of traces with no message (none ever came, or they
            // were deleted some other way).
            let sql = format!(
                "DELETE FROM trace_staging WHERE state = 'k' AND since_us < {} AND NOT EXISTS \
                 (SELECT 1 FROM data WHERE data.base_id = trace_staging.base_id)",
                self.bind_at(1)
            );
            with_pool!(&self.pool, p => {
                sqlx::query(AssertSqlSafe(sql))
                    .bind(cutoff_us)
                    .execute(p)
                    .await
                    .map_err(|e| db_err("cannot delete old staging records", e))?;
            });
        }
        Ok(ids.len() as u64)
    }

    async fn state_of(&self, base_id: &str) -> Result<TraceState, DriverError> {
        let sql = format!(
            "SELECT state FROM trace_staging WHERE base_id = {}",
            self.bind_at(1)
        );
        let state: Option<String> = with_pool!(&self.pool, p => {
            match sqlx::query(AssertSqlSafe(sql)).bind(base_id).fetch_optional(p).await {
                Ok(Some(r)) => r.try_get::<Option<String>, _>(0).ok().flatten(),
                Ok(None) => None,
                // No table (nothing staged, or Python's database), or not readable: as no row.
                Err(e) if e.as_database_error().is_some() => None,
                Err(e) => return Err(read_err("cannot read the trace's state", self.name, e)),
            }
        });
        Ok(match state.as_deref().map(str::trim) {
            Some("p") => TraceState::Pending,
            Some("d") => TraceState::Dropped,
            Some(_) => TraceState::Stored,
            // A provisional trace's points before its record (or after it is forgotten).
            None if osprofiler_core::sampling::is_provisional_id(base_id) => TraceState::Pending,
            None => TraceState::Stored,
        })
    }

    async fn summaries(&self, only_errors: bool) -> Result<Vec<TraceSummary>, DriverError> {
        self.before_read().await?;
        let staging = self.staging_exists().await?;
        let mut out = Vec::new();
        if !only_errors {
            let staged_away = if staging {
                format!(" AND {}", not_staged_away("data"))
            } else {
                String::new()
            };
            let sql = format!(
                "SELECT base_id, MIN(timestamp) FROM data WHERE base_id IS NOT NULL{staged_away} \
                 GROUP BY base_id HAVING {} ORDER BY 2",
                provisional_kept("data", staging)
            );
            with_pool!(&self.pool, p => {
                for r in sqlx::query(AssertSqlSafe(sql)).fetch_all(p).await.map_err(|e| read_err("cannot list traces", self.name, e))? {
                    let base_id: Option<String> = r.try_get(0).map_err(|e| db_err("bad row", e))?;
                    let timestamp: Option<String> = r.try_get(1).map_err(|e| db_err("bad row", e))?;
                    if let Some(base_id) = base_id {
                        out.push(TraceSummary { base_id, timestamp: timestamp.unwrap_or_default() });
                    }
                }
            });
            return Ok(out);
        }
        // Candidates by text, confirmed by parsing: an error message's info has a non-null etype.
        let shown = format!(" AND {}", shown("data", staging));
        let data = self.dialect.data_text;
        let sql = format!(
            "SELECT base_id, timestamp, {data} FROM data WHERE {data} LIKE '%\"etype\"%'{shown} ORDER BY timestamp"
        );
        with_pool!(&self.pool, p => {
            for r in sqlx::query(AssertSqlSafe(sql)).fetch_all(p).await.map_err(|e| read_err("cannot list error traces", self.name, e))? {
                let base_id: Option<String> = r.try_get(0).map_err(|e| db_err("bad row", e))?;
                let timestamp: Option<String> = r.try_get(1).map_err(|e| db_err("bad row", e))?;
                let data: Option<String> = r.try_get(2).map_err(|e| db_err("bad row", e))?;
                let is_error = data
                    .and_then(|d| serde_json::from_str::<Value>(&d).ok())
                    .is_some_and(|d| osprofiler_core::notifier::is_error(&d));
                if let (true, Some(base_id)) = (is_error, base_id)
                    && !out.iter().any(|s: &TraceSummary| s.base_id == base_id)
                {
                    out.push(TraceSummary { base_id, timestamp: timestamp.unwrap_or_default() });
                }
            }
        });
        Ok(out)
    }
}

/// Whether a statement lost a lock conflict to another transaction (a deadlock, a
/// serialization failure: SQLSTATE 40001, PostgreSQL's 40P01, MySQL's 1213): the same work
/// succeeds when tried again. Concurrent sweeps, keeps and inserts of provisional traces meet
/// on `trace_staging`.
fn lost_lock_race(e: &DriverError) -> bool {
    std::error::Error::source(e)
        .and_then(|s| s.downcast_ref::<sqlx::Error>())
        .and_then(|e| e.as_database_error())
        .and_then(|d| d.code())
        .is_some_and(|c| matches!(&*c, "40001" | "40P01" | "1213"))
}

/// Runs `op` again (a few times, after a short pause) when it lost a lock conflict.
async fn retry_lost_races<T, Fut>(mut op: impl FnMut() -> Fut) -> Result<T, DriverError>
where
    Fut: Future<Output = Result<T, DriverError>>,
{
    let mut tries = 0;
    loop {
        match op().await {
            Err(e) if tries < 5 && lost_lock_race(&e) => {
                tries += 1;
                tokio::time::sleep(Duration::from_millis(2 << tries)).await;
            }
            r => return r,
        }
    }
}

/// Whether the error says a table does not exist.
fn is_missing_table(e: &sqlx::Error) -> bool {
    e.as_database_error().is_some_and(|d| {
        // PostgreSQL 42P01, MySQL/MariaDB 42S02, SQLite "no such table".
        matches!(d.code().as_deref(), Some("42P01" | "42S02"))
            || d.message().contains("no such table")
    })
}

/// Text cut to the 255 characters of a `VARCHAR(255)` column.
fn clip(s: &str) -> String {
    match s.char_indices().nth(255) {
        Some((i, _)) => s[..i].to_owned(),
        None => s.to_owned(),
    }
}

/// A `trace_summaries` row; `None` when it cannot be read (the trace is then computed from
/// its messages, its counts no longer matching).
fn summary_of_row<R: Row>(r: &R) -> Option<PartialSummary>
where
    usize: sqlx::ColumnIndex<R>,
    for<'a> String: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> i64: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
{
    let text = |i: usize| r.try_get::<Option<String>, _>(i).ok().flatten();
    let int = |i: usize| r.try_get::<Option<i64>, _>(i).ok().flatten();
    let count = |i: usize| int(i).map(|n| n.max(0) as u64);
    Some(PartialSummary {
        base_id: text(0)?,
        start_us: int(1)?,
        end_us: int(2)?,
        root: text(3),
        services: text(4)
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_default(),
        messages: count(5)?,
        points: count(6)?,
        db_statements: count(7)?,
        db_us: count(8)?,
        errors: count(9)?,
        error_type: text(10),
        error_us: int(11),
    })
}

/// A read's error, naming the database system; a database without the table says so in words.
fn read_err(what: &str, system: &str, e: sqlx::Error) -> DriverError {
    let what = format!("{what} from {system}");
    let what = what.as_str();
    let missing = e.as_database_error().is_some_and(|d| {
        // PostgreSQL 42P01, MySQL/MariaDB 42S02, SQLite "no such table".
        matches!(d.code().as_deref(), Some("42P01" | "42S02"))
            || d.message().contains("no such table")
    });
    if missing {
        return DriverError::with_source(
            format!(
                "{what}: the database has no osprofiler table `data`: nothing was stored there (check the connection string)"
            ),
            e,
        );
    }
    db_err(what, e)
}

fn pool_options<DB: sqlx::Database>() -> sqlx::pool::PoolOptions<DB> {
    sqlx::pool::PoolOptions::new()
        .acquire_timeout(Duration::from_secs(5))
        .max_connections(2)
}

fn enabled_backends() -> String {
    [
        (cfg!(feature = "sqlite"), "sqlite"),
        (cfg!(feature = "postgres"), "postgres"),
        (cfg!(feature = "mysql"), "mysql"),
    ]
    .iter()
    .filter(|(on, _)| *on)
    .map(|(_, n)| *n)
    .collect::<Vec<_>>()
    .join(", ")
}

/// A message as a row: the eight columns, then `data` (every other key, as Python's driver
/// stores it: `{"info": {...}}`). The host column is the message's `info.host`.
fn row_of(m: &Message) -> [Option<String>; 9] {
    let id = m.identity();
    let mut data = String::with_capacity(256);
    data.push_str("{\"info\": ");
    data.push_str(&m.info_json());
    data.push('}');
    [
        Some(m.timestamp()),
        Some(m.base_id().to_string()),
        Some(m.parent_id().to_string()),
        Some(m.trace_id().to_string()),
        id.project().map(str::to_owned),
        Some(id.host().to_owned()),
        id.service().map(str::to_owned),
        Some(m.name()),
        Some(data),
    ]
}

/// A stored row back as the message Python's drivers return.
fn message_of(cols: Vec<Option<String>>) -> Value {
    let mut cols = cols.into_iter();
    let mut next = || cols.next().flatten();
    let (timestamp, base_id, parent_id, trace_id, project, _host, service, name, data) = (
        next(),
        next(),
        next(),
        next(),
        next(),
        next(),
        next(),
        next(),
        next(),
    );
    let mut m = Map::new();
    m.insert("name".into(), name.into());
    m.insert("base_id".into(), base_id.into());
    m.insert("trace_id".into(), trace_id.into());
    m.insert("parent_id".into(), parent_id.into());
    m.insert("timestamp".into(), timestamp.into());
    if let Some(Value::Object(rest)) = data.and_then(|d| serde_json::from_str(&d).ok()) {
        m.extend(rest);
    }
    m.insert("project".into(), project.into());
    m.insert("service".into(), service.into());
    Value::Object(m)
}

impl Writer for SqlDriver {
    fn name(&self) -> &str {
        self.name
    }

    fn notify(&self, batch: &[Message]) -> Result<(), DriverError> {
        if batch.is_empty() {
            return Ok(());
        }
        self.run(retry_lost_races(|| self.insert(batch)))
    }

    fn stores_summaries(&self) -> bool {
        !self.read_only
    }

    fn write_summaries(&self, parts: &[PartialSummary]) -> Result<(), DriverError> {
        if parts.is_empty() || self.read_only {
            return Ok(());
        }
        self.run(self.insert_summaries(parts))
    }

    /// Records provisional traces in `trace_staging` from now on (see the
    /// [module docs](self)). An error for a driver opened read-only.
    fn stage(&self, window: Duration) -> Result<(), DriverError> {
        if self.read_only {
            return Err(DriverError::new(format!(
                "the {} collector was opened read-only: it cannot stage provisional traces",
                self.name
            )));
        }
        let us = i64::try_from(window.as_micros()).unwrap_or(i64::MAX).max(1);
        self.window_us.store(us, Ordering::Relaxed);
        Ok(())
    }

    fn keep(&self, base_ids: &[&str]) -> Result<(), DriverError> {
        if base_ids.is_empty() || self.read_only {
            return Ok(());
        }
        self.run(retry_lost_races(|| self.keep_traces(base_ids)))
    }

    fn sweep(&self) -> Result<u64, DriverError> {
        match self.window_us.load(Ordering::Relaxed) {
            0 => Ok(0),
            w => {
                let expired = self.run(retry_lost_races(|| self.sweep_staged(w)))?;
                self.run(retry_lost_races(|| self.sweep_fragments(w)))?;
                Ok(expired)
            }
        }
    }

    fn retain(&self, _age: Duration) -> Result<(), DriverError> {
        Ok(())
    }

    fn prune(&self, cutoff: std::time::SystemTime) -> Result<u64, DriverError> {
        self.run(self.prune_before(cutoff))
    }

    fn delete_trace(&self, base_id: &str) -> Result<u64, DriverError> {
        SqlDriver::delete_trace(self, base_id)
    }
}

impl Reader for SqlDriver {
    fn trace_messages(&self, base_id: &str) -> Result<Vec<Value>, DriverError> {
        self.run(self.select_trace(base_id))
    }

    fn list_traces(&self) -> Result<Vec<TraceSummary>, DriverError> {
        self.run(self.summaries(false))
    }

    fn list_error_traces(&self) -> Result<Vec<TraceSummary>, DriverError> {
        self.run(self.summaries(true))
    }

    /// From `trace_staging`: pending or dropped by its record; without one (or without the
    /// table) pending for a provisional trace's id (its points came before its record), else
    /// stored.
    fn trace_state(&self, base_id: &str) -> Result<TraceState, DriverError> {
        self.run(self.state_of(base_id))
    }

    /// From the `trace_summaries` rows where they account for every stored message, else
    /// from the messages (see the [module docs](self)).
    fn list(&self, filter: &ListFilter) -> Result<Vec<TraceListing>, DriverError> {
        self.run(self.list_traces_filtered(filter))
    }
}
