//! # osprofiler-diesel
//!
//! OSProfiler `db` points for [diesel] 2.3 through its `Instrumentation` hook: install it on a
//! connection, as the default for every new connection, or on an r2d2 pool.
//!
//! ```no_run
//! use diesel::prelude::*;
//! let mut conn = SqliteConnection::establish(":memory:").unwrap();
//! osprofiler_diesel::instrument(&mut conn);                 // this connection
//! osprofiler_diesel::install_default().unwrap();            // or every new connection
//! ```
//!
//! Every query diesel runs inside a trace is a `db` point: `{"db": {"api", "system",
//! "namespace", "server"}}` at the start, plus `statement` when `trace_sql` is on — the SQL
//! without bind values, which diesel's text carries after `-- binds:` and which are recorded as
//! `params` only when `trace_sql_params` is on; `{"db": {"rows"}}`-less stops, or the error.
//! Transaction control gets its own api name (`begin`, `savepoint`, `commit`, `rollback`), and
//! establishing a connection is a point (`connect`) with the server taken from the URL — never
//! its credentials. Sync diesel calls made from async code through
//! `osprofiler_core::spawn_blocking_traced` stay in the trace.
//!
//! [diesel]: diesel

use diesel::connection::{Instrumentation, InstrumentationEvent};
use osprofiler_core::db::{DbError, DbPoint, DbTarget, SqlText};
use std::sync::Arc;

/// The `Instrumentation` that records `db` points.
#[derive(Debug)]
pub struct OsProfilerInstrumentation {
    target: Arc<DbTarget>,
    /// Open query points, innermost last.
    open: Vec<DbPoint>,
    /// The api name for the next query (set by transaction events).
    next_api: Option<&'static str>,
}

impl Default for OsProfilerInstrumentation {
    fn default() -> Self {
        OsProfilerInstrumentation {
            target: Arc::new(DbTarget::new("unknown")),
            open: Vec::new(),
            next_api: None,
        }
    }
}

impl OsProfilerInstrumentation {
    /// An instrumentation that learns the system and server when the connection is
    /// established (or set them with [`OsProfilerInstrumentation::target`]).
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the target explicitly (for a connection instrumented after it was established).
    pub fn target(mut self, target: DbTarget) -> Self {
        self.target = Arc::new(target);
        self
    }
}

/// `(system, namespace, server)` of a diesel connection URL; credentials are never kept.
pub fn target_of_url(url: &str) -> DbTarget {
    let (scheme, rest) = match url.split_once("://") {
        Some((s, r)) => (s.to_ascii_lowercase(), r),
        None => {
            // SQLite: a path, `:memory:` or `file:` URI.
            let name = url.strip_prefix("file:").unwrap_or(url);
            let name = name.split('?').next().unwrap_or(name);
            return DbTarget::new("sqlite").namespace(if name.is_empty() { "main" } else { name });
        }
    };
    let system = match scheme.as_str() {
        "postgres" | "postgresql" => "postgresql",
        "mysql" | "mariadb" => "mysql",
        "sqlite" | "file" => "sqlite",
        _ => "unknown",
    };
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let db = rest[authority_end..]
        .trim_start_matches('/')
        .split('?')
        .next()
        .unwrap_or("");
    let mut t = DbTarget::new(system);
    if !host_port.is_empty() {
        t = t.server(host_port);
    }
    if !db.is_empty() {
        t = t.namespace(db);
    }
    t
}

/// Splits diesel's query text into the SQL and the bind values.
fn split_binds(text: &str) -> (&str, Option<&str>) {
    match text.rsplit_once(" -- binds: ") {
        Some((sql, binds)) => (sql, Some(binds)),
        None => (text, None),
    }
}

impl Instrumentation for OsProfilerInstrumentation {
    fn on_connection_event(&mut self, event: InstrumentationEvent<'_>) {
        match event {
            InstrumentationEvent::StartEstablishConnection { url, .. } => {
                self.target = Arc::new(target_of_url(url));
                if osprofiler_core::is_active() {
                    self.open.push(DbPoint::start(
                        "connect",
                        &self.target,
                        true,
                        || None,
                        || None,
                    ));
                }
            }
            InstrumentationEvent::FinishEstablishConnection { error, .. } => {
                if let Some(point) = self.open.pop() {
                    match error {
                        Some(e) => point.err(DbError {
                            etype: "diesel::result::ConnectionError",
                            message: e.to_string(),
                            original_exception: None,
                            sqlstate: None,
                        }),
                        None => point.done(),
                    }
                }
            }
            InstrumentationEvent::BeginTransaction { depth, .. } => {
                self.next_api = Some(if depth.get() > 1 {
                    "savepoint"
                } else {
                    "begin"
                });
            }
            InstrumentationEvent::CommitTransaction { depth, .. } => {
                self.next_api = Some(if depth.get() > 1 {
                    "release_savepoint"
                } else {
                    "commit"
                });
            }
            InstrumentationEvent::RollbackTransaction { depth, .. } => {
                self.next_api = Some(if depth.get() > 1 {
                    "rollback_to_savepoint"
                } else {
                    "rollback"
                });
            }
            InstrumentationEvent::StartQuery { query, .. } => {
                let api = self.next_api.take().unwrap_or("query");
                if !osprofiler_core::is_active() {
                    return;
                }
                // Formatting walks the query: done once, and only when SQL is recorded.
                let text = std::cell::OnceCell::new();
                let text_of = || {
                    text.get_or_init(|| {
                        // Sized up front: growing from empty reallocated several times per
                        // statement, half of the formatting's cost.
                        use std::fmt::Write as _;
                        let mut s = String::with_capacity(256);
                        let _ = write!(s, "{query}");
                        s
                    })
                    .as_str()
                };
                let point = DbPoint::start(
                    api,
                    &self.target,
                    false,
                    || {
                        let (sql, binds) = split_binds(text_of());
                        // Diesel's SQL is parameterized unless it has no binds at all (raw
                        // `sql_query`/`batch_execute` text may carry literals).
                        Some(if binds.is_some() {
                            SqlText::Parameterized(Arc::from(sql))
                        } else {
                            SqlText::Raw(Arc::from(sql))
                        })
                    },
                    || split_binds(text_of()).1.map(str::to_owned),
                );
                self.open.push(point);
            }
            InstrumentationEvent::FinishQuery { error, .. } => {
                if let Some(point) = self.open.pop() {
                    match error {
                        Some(e) => point.err(error_info(e)),
                        None => point.done(),
                    }
                }
            }
            _ => {}
        }
    }
}

/// The error info of a diesel error.
pub fn error_info(e: &diesel::result::Error) -> DbError {
    let original = match e {
        diesel::result::Error::DatabaseError(_, info) => Some(info.message().to_owned()),
        _ => None,
    };
    DbError {
        etype: "diesel::result::Error",
        message: e.to_string(),
        original_exception: original,
        sqlstate: None,
    }
}

/// Installs the instrumentation on one connection (its target is taken from the connection
/// URL when it reconnects; set it with [`instrument_with`] for an open connection).
pub fn instrument<C: diesel::Connection>(conn: &mut C) {
    conn.set_instrumentation(OsProfilerInstrumentation::new());
}

/// Installs the instrumentation on one connection with an explicit target.
pub fn instrument_with<C: diesel::Connection>(conn: &mut C, target: DbTarget) {
    conn.set_instrumentation(OsProfilerInstrumentation::new().target(target));
}

/// Installs the instrumentation on a diesel-async connection (feature `async`): the same
/// points as a sync connection, and since diesel-async runs the query in the caller's task,
/// no `spawn_blocking` is involved.
///
/// ```no_run
/// # async fn demo() -> diesel::ConnectionResult<()> {
/// use diesel_async::{AsyncConnection, AsyncPgConnection};
/// let url = "postgres://postgres@127.0.0.1/test";
/// let mut conn = AsyncPgConnection::establish(url).await?;
/// osprofiler_diesel::instrument_async(&mut conn, osprofiler_diesel::target_of_url(url));
/// # Ok(()) }
/// ```
#[cfg(feature = "async")]
pub fn instrument_async<C: diesel_async::AsyncConnection>(conn: &mut C, target: DbTarget) {
    conn.set_instrumentation(OsProfilerInstrumentation::new().target(target));
}

fn boxed() -> Option<Box<dyn Instrumentation>> {
    Some(Box::new(OsProfilerInstrumentation::new()))
}

/// Makes every connection established from now on instrumented (diesel's default
/// instrumentation).
pub fn install_default() -> diesel::QueryResult<()> {
    diesel::connection::set_default_instrumentation(boxed)
}

/// An r2d2 connection customizer that instruments every pooled connection.
///
/// ```no_run
/// use diesel::r2d2::{ConnectionManager, Pool};
/// let pool = Pool::builder()
///     .connection_customizer(Box::new(osprofiler_diesel::Customizer::new(osprofiler_core::db::DbTarget::new("sqlite"))))
///     .build(ConnectionManager::<diesel::SqliteConnection>::new(":memory:"))
///     .unwrap();
/// ```
#[derive(Debug, Clone)]
pub struct Customizer {
    target: DbTarget,
}

impl Customizer {
    /// A customizer recording `target` for every connection.
    pub fn new(target: DbTarget) -> Self {
        Customizer { target }
    }
}

impl<C: diesel::Connection> diesel::r2d2::CustomizeConnection<C, diesel::r2d2::Error>
    for Customizer
{
    fn on_acquire(&self, conn: &mut C) -> Result<(), diesel::r2d2::Error> {
        instrument_with(conn, self.target.clone());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_never_leak_credentials() {
        let t = target_of_url("postgres://admin:s3cret@db.example:5433/nova?sslmode=require");
        assert_eq!(
            (t.system, t.server.as_deref(), t.namespace.as_deref()),
            ("postgresql", Some("db.example:5433"), Some("nova"))
        );
        assert!(!format!("{t:?}").contains("s3cret"));
        let t = target_of_url("mysql://root@127.0.0.1:3306/test");
        assert_eq!(
            (t.system, t.server.as_deref()),
            ("mysql", Some("127.0.0.1:3306"))
        );
        assert_eq!(target_of_url(":memory:").system, "sqlite");
        assert_eq!(
            target_of_url("file:/tmp/x.db?mode=rwc")
                .namespace
                .as_deref(),
            Some("/tmp/x.db")
        );
    }

    #[test]
    fn binds_are_split_off() {
        assert_eq!(
            split_binds("SELECT $1 -- binds: [1]"),
            ("SELECT $1", Some("[1]"))
        );
        assert_eq!(split_binds("BEGIN"), ("BEGIN", None));
    }
}
