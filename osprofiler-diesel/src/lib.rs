//! # osprofiler-diesel
//!
//! OSProfiler `db` points for [diesel] 2.4 (and 2.3) through its `Instrumentation` hook: install it on a
//! connection, as the default for every new connection, or on an r2d2 pool.
//!
//! ```no_run
//! use diesel::prelude::*;
//! let mut conn = SqliteConnection::establish(":memory:").unwrap();
//! osprofiler_diesel::instrument(&mut conn);                 // this connection
//! osprofiler_diesel::install_default().unwrap();            // or every new connection
//! ```
//!
//! Every query diesel runs inside a trace is a `db` point with the info every adapter records
//! (the table in [`osprofiler_core::db`]): `api` `query`; the SQL when `trace_sql` is on —
//! without its bind values, which are recorded as `params` only when `trace_sql_params` is on,
//! and with every literal replaced by `?` when nothing is bound (`sql_query` text,
//! `batch_execute`) unless [`OsProfilerInstrumentation::keep_literals`] is set; the error when
//! it fails. Transaction control is `begin`/`commit`/`rollback`, nested transactions
//! `savepoint`/`release_savepoint`/`rollback_to_savepoint`, with their depth; establishing a
//! connection is a point (`connect`) with the server taken from the URL — never its
//! credentials. diesel's instrumentation hook reports no row count and no SQLSTATE: these
//! points have no `rows`, and an error records diesel's error kind as `db.code`.
//! Sync diesel calls made from async code through `osprofiler_core::spawn_blocking_traced`
//! stay in the trace.
//!
//! [diesel]: diesel

#![cfg_attr(docsrs, feature(doc_cfg))]

use diesel::connection::{Instrumentation, InstrumentationEvent};
use osprofiler_core::db::{self, DbError, DbEvent, DbPoint, DbSystem, DbTarget, DbTracer};

/// The transaction event whose statement comes next.
#[derive(Debug, Clone, Copy)]
enum Pending {
    Begin(u32),
    Commit(u32),
    Rollback(u32),
}

/// The `Instrumentation` that records `db` points.
#[derive(Debug)]
pub struct OsProfilerInstrumentation {
    tracer: DbTracer,
    /// Whether the target was set explicitly (then a connection URL does not replace it).
    fixed_target: bool,
    /// Open points, innermost last.
    open: Vec<DbPoint>,
    /// The transaction event the next statement carries out.
    pending: Option<Pending>,
}

impl Default for OsProfilerInstrumentation {
    fn default() -> Self {
        OsProfilerInstrumentation {
            tracer: DbTracer::new(DbSystem::Other("unknown")),
            fixed_target: false,
            open: Vec::new(),
            pending: None,
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
        let keep = self.tracer.keeps_literals();
        self.tracer = DbTracer::for_target(target).keep_literals(keep);
        self.fixed_target = true;
        self
    }

    /// Names the database system (`postgresql`, `mysql`, `sqlite`) until the connection URL
    /// tells more (server, database); [`instrument`] sets it from the connection's backend.
    pub fn system(mut self, system: impl Into<DbSystem>) -> Self {
        if !self.fixed_target {
            let keep = self.tracer.keeps_literals();
            self.tracer = DbTracer::new(system).keep_literals(keep);
        }
        self
    }

    /// Records SQL without bound values (`sql_query` text, `batch_execute`) with its literals
    /// instead of `?`.
    pub fn keep_literals(mut self, keep: bool) -> Self {
        self.tracer = self.tracer.keep_literals(keep);
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
        "file" => DbSystem::Sqlite,
        scheme => DbSystem::parse(scheme).unwrap_or(DbSystem::Other("unknown")),
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

/// A diesel statement as its `Debug` text gives it: the SQL, and the bind values' text
/// (`None` for text run as is, such as `batch_execute`'s).
#[derive(Debug, PartialEq, Eq)]
struct Parsed {
    sql: String,
    binds: Option<String>,
}

/// Reads diesel's `Debug` of a query: `Query { sql: "…", binds: [...] }` for a built or
/// `sql_query` statement, `"…"` for text run as is. The SQL is a Rust string literal, so where
/// it ends is certain whatever the SQL or the values contain; text in another shape is taken
/// whole, as SQL without binds (sanitized, never leaking a value). The common case — no escape
/// in the SQL — reuses `text`'s buffer for the SQL.
fn parse_debug(mut text: String) -> Parsed {
    const QUERY: &str = "Query { sql: \"";
    if let Some(body) = text.strip_prefix(QUERY) {
        let end = body.bytes().position(|c| c == b'"' || c == b'\\');
        if let Some(end) = end.filter(|&e| body.as_bytes()[e] == b'"') {
            if let Some(binds) = body[end + 1..]
                .strip_prefix(", binds: ")
                .and_then(|b| b.strip_suffix(" }"))
            {
                let binds = Some(binds.to_owned());
                text.truncate(QUERY.len() + end);
                text.drain(..QUERY.len());
                return Parsed { sql: text, binds };
            }
        } else if let Some((sql, after)) = rust_string(&text[QUERY.len() - 1..])
            && let Some(binds) = after
                .strip_prefix(", binds: ")
                .and_then(|b| b.strip_suffix(" }"))
        {
            return Parsed {
                sql,
                binds: Some(binds.to_owned()),
            };
        }
    }
    if let Some((sql, "")) = rust_string(&text) {
        return Parsed { sql, binds: None };
    }
    Parsed {
        sql: text,
        binds: None,
    }
}

/// The value of the Rust string literal (as `Debug` writes it) at the start of `s`, and the
/// text after it.
fn rust_string(s: &str) -> Option<(String, &str)> {
    let body = s.strip_prefix('"')?;
    let mut out = String::with_capacity(body.len());
    let mut rest = body;
    loop {
        // Runs without quote or escape are copied whole (most SQL has no escapes but `\n`).
        let at = rest.find(['"', '\\'])?;
        out.push_str(&rest[..at]);
        if rest.as_bytes()[at] == b'"' {
            let end = body.len() - rest.len() + at;
            return Some((out, &body[end + 1..]));
        }
        let mut chars = rest[at + 1..].chars();
        match chars.next()? {
            'n' => out.push('\n'),
            'r' => out.push('\r'),
            't' => out.push('\t'),
            '0' => out.push('\0'),
            'u' => {
                let '{' = chars.next()? else {
                    return None;
                };
                let mut code = 0u32;
                loop {
                    let d = chars.next()?;
                    if d == '}' {
                        break;
                    }
                    code = code.checked_mul(16)?.checked_add(d.to_digit(16)?)?;
                }
                out.push(char::from_u32(code)?);
            }
            other => out.push(other),
        }
        rest = chars.as_str();
    }
}

/// How many values a `Debug` list of binds (`[1, "a, b", None]`) holds: its top-level
/// commas, outside strings and nested brackets.
fn count_binds(list: &str) -> usize {
    let inner = list.trim();
    let Some(inner) = inner.strip_prefix('[').and_then(|l| l.strip_suffix(']')) else {
        return 1;
    };
    if inner.trim().is_empty() {
        return 0;
    }
    let (mut depth, mut in_str, mut escaped, mut n) = (0i32, false, false, 1);
    for c in inner.chars() {
        match (in_str, c) {
            (true, _) if escaped => escaped = false,
            (true, '\\') => escaped = true,
            (true, '"') => in_str = false,
            (true, _) => {}
            (false, '"') => in_str = true,
            (false, '[' | '(' | '{') => depth += 1,
            (false, ']' | ')' | '}') => depth -= 1,
            (false, ',') if depth == 0 => n += 1,
            _ => {}
        }
    }
    n
}

impl Instrumentation for OsProfilerInstrumentation {
    fn on_connection_event(&mut self, event: InstrumentationEvent<'_>) {
        match event {
            InstrumentationEvent::StartEstablishConnection { url, .. } => {
                if !self.fixed_target {
                    let keep = self.tracer.keeps_literals();
                    self.tracer = DbTracer::for_target(target_of_url(url)).keep_literals(keep);
                }
                self.open.push(self.tracer.start(DbEvent::Connect));
            }
            InstrumentationEvent::FinishEstablishConnection { error, .. } => {
                if let Some(point) = self.open.pop() {
                    match error {
                        Some(e) => point.err(DbError::new(
                            "diesel::result::ConnectionError",
                            e.to_string(),
                        )),
                        None => point.done(),
                    }
                }
            }
            InstrumentationEvent::BeginTransaction { depth, .. } => {
                self.pending = Some(Pending::Begin(depth.get()));
            }
            InstrumentationEvent::CommitTransaction { depth, .. } => {
                self.pending = Some(Pending::Commit(depth.get()));
            }
            InstrumentationEvent::RollbackTransaction { depth, .. } => {
                self.pending = Some(Pending::Rollback(depth.get()));
            }
            InstrumentationEvent::StartQuery { query, .. } => {
                let point = match self.pending.take() {
                    Some(Pending::Begin(depth)) => self.tracer.start(DbEvent::Begin { depth }),
                    Some(Pending::Commit(depth)) => self.tracer.start(DbEvent::Commit { depth }),
                    Some(Pending::Rollback(depth)) => {
                        self.tracer.start(DbEvent::Rollback { depth })
                    }
                    None => {
                        // Formatting walks the query: only when the SQL is recorded.
                        let source = |with_params: bool| {
                            // Sized up front: grown from empty it reallocates several times.
                            let mut text = String::with_capacity(256);
                            let _ =
                                std::fmt::Write::write_fmt(&mut text, format_args!("{query:?}"));
                            let parsed = parse_debug(text);
                            let binds = parsed.binds.as_deref().map_or(0, count_binds);
                            // The binds' text is made anyway (diesel gives the query only
                            // as `Debug`): the worker hashes it for `values`.
                            let (params, values) = match parsed.binds {
                                Some(b) if binds > 0 && with_params => {
                                    (Some(b.clone()), Some(db::BoundValues::owned(b)))
                                }
                                Some(b) if binds > 0 => (None, Some(db::BoundValues::owned(b))),
                                _ => (None, None),
                            };
                            Some(
                                db::Sql::new(db::SqlText::Owned(parsed.sql), binds)
                                    .params(params)
                                    .values(values),
                            )
                        };
                        self.tracer.start(DbEvent::Query(&source))
                    }
                };
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

/// The error info of a diesel error: the database's message, and diesel's error kind as
/// `db.code` (diesel exposes no SQLSTATE).
pub fn error_info(e: &diesel::result::Error) -> DbError {
    use diesel::result::Error as E;
    let (original, code) = match e {
        E::DatabaseError(kind, info) => (Some(info.message().to_owned()), format!("{kind:?}")),
        E::NotFound => (None, "NotFound".to_owned()),
        E::QueryBuilderError(_) => (None, "QueryBuilderError".to_owned()),
        E::DeserializationError(_) => (None, "DeserializationError".to_owned()),
        E::SerializationError(_) => (None, "SerializationError".to_owned()),
        E::RollbackErrorOnCommit { .. } => (None, "RollbackErrorOnCommit".to_owned()),
        E::RollbackTransaction => (None, "RollbackTransaction".to_owned()),
        E::AlreadyInTransaction => (None, "AlreadyInTransaction".to_owned()),
        E::NotInTransaction => (None, "NotInTransaction".to_owned()),
        E::BrokenTransactionManager => (None, "BrokenTransactionManager".to_owned()),
        _ => (None, "Other".to_owned()),
    };
    DbError {
        original_exception: original,
        code: Some(code),
        ..DbError::new("diesel::result::Error", e.to_string())
    }
}

/// The system of a diesel backend type (`diesel::pg::Pg` → `postgresql`, …).
///
/// ```
/// # #[cfg(feature = "sqlite")]
/// assert_eq!(osprofiler_diesel::system_of::<diesel::sqlite::Sqlite>(), "sqlite");
/// ```
pub fn system_of<B: ?Sized>() -> DbSystem {
    let name = std::any::type_name::<B>();
    let last = name.rsplit("::").next().unwrap_or(name);
    match last {
        "Pg" => DbSystem::PostgreSql,
        "Mysql" => DbSystem::MySql,
        "Sqlite" => DbSystem::Sqlite,
        _ => DbSystem::Other("unknown"),
    }
}

/// Installs the instrumentation on one connection: its points name the connection's system
/// (from its backend), and server and database once it reconnects (set them with
/// [`instrument_with`] for an open connection).
pub fn instrument<C: diesel::Connection>(conn: &mut C) {
    conn.set_instrumentation(OsProfilerInstrumentation::new().system(system_of::<C::Backend>()));
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

static DEFAULT_KEEPS_LITERALS: std::sync::atomic::AtomicBool =
    std::sync::atomic::AtomicBool::new(false);

fn boxed() -> Option<Box<dyn Instrumentation>> {
    let keep = DEFAULT_KEEPS_LITERALS.load(std::sync::atomic::Ordering::Relaxed);
    Some(Box::new(
        OsProfilerInstrumentation::new().keep_literals(keep),
    ))
}

/// Makes every connection established from now on instrumented (diesel's default
/// instrumentation).
pub fn install_default() -> diesel::QueryResult<()> {
    install_default_with(false)
}

/// [`install_default`], recording SQL without bound values with its literals when
/// `keep_literals` (see [`OsProfilerInstrumentation::keep_literals`]).
pub fn install_default_with(keep_literals: bool) -> diesel::QueryResult<()> {
    DEFAULT_KEEPS_LITERALS.store(keep_literals, std::sync::atomic::Ordering::Relaxed);
    diesel::connection::set_default_instrumentation(boxed)
}

/// An r2d2 connection customizer that instruments every pooled connection (feature `r2d2`).
///
/// ```no_run
/// use diesel::r2d2::{ConnectionManager, Pool};
/// let pool = Pool::builder()
///     .connection_customizer(Box::new(osprofiler_diesel::Customizer::new(osprofiler_core::db::DbTarget::new("sqlite"))))
///     .build(ConnectionManager::<diesel::SqliteConnection>::new(":memory:"))
///     .unwrap();
/// ```
#[cfg(feature = "r2d2")]
#[derive(Debug, Clone)]
pub struct Customizer {
    target: DbTarget,
    keep_literals: bool,
}

#[cfg(feature = "r2d2")]
impl Customizer {
    /// A customizer recording `target` for every connection.
    pub fn new(target: DbTarget) -> Self {
        Customizer {
            target,
            keep_literals: false,
        }
    }

    /// See [`OsProfilerInstrumentation::keep_literals`].
    pub fn keep_literals(mut self, keep: bool) -> Self {
        self.keep_literals = keep;
        self
    }
}

#[cfg(feature = "r2d2")]
impl<C: diesel::Connection> diesel::r2d2::CustomizeConnection<C, diesel::r2d2::Error>
    for Customizer
{
    fn on_acquire(&self, conn: &mut C) -> Result<(), diesel::r2d2::Error> {
        conn.set_instrumentation(
            OsProfilerInstrumentation::new()
                .target(self.target.clone())
                .keep_literals(self.keep_literals),
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Whatever the SQL and the bound values contain, the SQL comes back exactly and no
        /// bound value ends up in it.
        #[test]
        fn any_sql_and_binds_split_exactly(sql in "(?s).{0,60}", binds in prop::collection::vec("\\PC{0,20}", 0..4)) {
            let text = format!("Query {{ sql: {sql:?}, binds: {binds:?} }}");
            let parsed = parse_debug(text);
            prop_assert_eq!(&parsed.sql, &sql);
            prop_assert_eq!(parsed.binds.as_deref().map(count_binds), Some(binds.len()));
        }
    }

    #[test]
    fn urls_never_leak_credentials() {
        let t = target_of_url("postgres://admin:s3cret@db.example:5433/nova?sslmode=require");
        assert_eq!(
            (t.system, t.server.as_deref(), t.namespace.as_deref()),
            (DbSystem::PostgreSql, Some("db.example:5433"), Some("nova"))
        );
        assert!(!format!("{t:?}").contains("s3cret"));
        let t = target_of_url("mysql://root@127.0.0.1:3306/test");
        assert_eq!(
            (t.system, t.server.as_deref()),
            (DbSystem::MySql, Some("127.0.0.1:3306"))
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
    fn debug_text_splits_into_sql_and_binds_whatever_they_contain() {
        // A value that looks like the separator, and SQL that does.
        let sql = "SELECT ' -- binds: [1]' \"q\" \\ é\n";
        let binds = vec![" -- binds: ", "\" }"];
        let text = format!("Query {{ sql: {sql:?}, binds: {binds:?} }}");
        assert_eq!(
            parse_debug(text),
            Parsed {
                sql: sql.to_owned(),
                binds: Some(format!("{binds:?}"))
            }
        );
        assert_eq!(count_binds(&format!("{binds:?}")), 2);
        assert_eq!(count_binds("[]"), 0);
        assert_eq!(count_binds("[1, Some([2, 3]), \"a, b\"]"), 3);
        assert_eq!(
            parse_debug(format!("{:?}", "BEGIN; SELECT '\u{1}'")),
            Parsed {
                sql: "BEGIN; SELECT '\u{1}'".to_owned(),
                binds: None
            }
        );
        assert_eq!(parse_debug("odd".into()).sql, "odd");
        // Escapes in the SQL take the slow path, which unescapes.
        let sql = "SELECT 'a\\b\n'";
        assert_eq!(
            parse_debug(format!("Query {{ sql: {sql:?}, binds: [] }}")),
            Parsed {
                sql: sql.to_owned(),
                binds: Some("[]".to_owned())
            }
        );
    }
}

// The README's examples are compiled (and run, unless `no_run`) as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
