//! What every DB adapter shares: the `db` point's info, SQL text handling and error recording.
//!
//! Adapters (`osprofiler-postgres`, `osprofiler-sqlx`, ...) stay thin: they check
//! [`crate::is_active`], open a point with [`DbCall`] as lazy info, run the inner call and stop
//! the point with [`Rows`] or [`DbError`]. Everything textual — the SQL, sanitizing it, the
//! JSON — happens in the notifier's worker, off the query's path.

use crate::message::{Info, LazyInfo, Phase};
use crate::{Trace, switches};
use serde_json::{Map, Value, json};
use std::sync::Arc;

/// Where queries go: the database system, the database name and the server, shared by every
/// point of a pool or connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DbTarget {
    /// `postgresql`, `sqlite` or `mysql` (OpenTelemetry's `db.system` names).
    pub system: &'static str,
    /// The database name, if known.
    pub namespace: Option<String>,
    /// `host:port` (never credentials), if known.
    pub server: Option<String>,
}

impl DbTarget {
    /// A target of `system` with nothing else known.
    pub fn new(system: &'static str) -> Self {
        DbTarget {
            system,
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

/// SQL text recorded on a point.
#[derive(Debug, Clone)]
pub enum SqlText {
    /// Parameterized SQL as sent (`$1`/`?` placeholders): recorded as is. Shared text (a
    /// prepared statement's) costs a reference count, not a copy.
    Parameterized(Arc<str>),
    /// Raw SQL that may carry inline literals (`batch_execute`, `simple_query`,
    /// `execute_unprepared`): sanitized when serialized unless the adapter was told otherwise.
    Raw(Arc<str>),
}

/// The start info of a `db` point: `{"db": {"api", "system", "namespace", "server",
/// "statement", "params"}}`, built by the worker.
#[derive(Debug)]
pub struct DbCall {
    /// The adapter method (`query`, `execute`, `begin`, ...).
    pub api: &'static str,
    /// Where it goes.
    pub target: Arc<DbTarget>,
    /// The SQL, when `trace_sql` is on.
    pub statement: Option<SqlText>,
    /// Keep raw SQL literals (default false: they are replaced with `?`).
    pub keep_literals: bool,
    /// Bound parameters' text, when `trace_sql_params` is on.
    pub params: Option<String>,
}

impl LazyInfo for DbCall {
    fn write(&self, info: &mut Info) {
        let mut db = Map::new();
        db.insert("api".into(), self.api.into());
        db.insert("system".into(), self.target.system.into());
        if let Some(n) = &self.target.namespace {
            db.insert("namespace".into(), n.as_str().into());
        }
        if let Some(s) = &self.target.server {
            db.insert("server".into(), s.as_str().into());
        }
        match &self.statement {
            Some(SqlText::Parameterized(sql)) => {
                db.insert("statement".into(), Value::from(&**sql));
            }
            Some(SqlText::Raw(sql)) if self.keep_literals => {
                db.insert("statement".into(), Value::from(&**sql));
            }
            Some(SqlText::Raw(sql)) => {
                db.insert("statement".into(), sanitize(sql).into());
            }
            None => {}
        }
        if let Some(p) = &self.params {
            db.insert("params".into(), p.as_str().into());
        }
        info.insert("db".into(), Value::Object(db));
    }
}

/// Stop info of a successful call: `{"db": {"rows": n}}` (rows returned or affected).
#[derive(Debug, Clone, Copy)]
pub struct Rows(pub u64);

impl LazyInfo for Rows {
    fn write(&self, info: &mut Info) {
        info.insert("db".into(), json!({"rows": self.0}));
    }
}

/// Stop info of a failed call: `etype`, `message`, and `{"db": {"original_exception",
/// "sqlstate"}}` as OSProfiler's SQLAlchemy integration records.
#[derive(Debug, Clone)]
pub struct DbError {
    /// The error's type name.
    pub etype: &'static str,
    /// Its `Display` text.
    pub message: String,
    /// The driver's own error text (the database's message), if different.
    pub original_exception: Option<String>,
    /// The SQLSTATE code, when the database gave one.
    pub sqlstate: Option<String>,
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
        info.insert("db".into(), Value::Object(db));
    }
}

/// Marks a point whose future was dropped before the call finished.
#[derive(Debug, Clone, Copy)]
pub struct Cancelled;

impl LazyInfo for Cancelled {
    fn write(&self, info: &mut Info) {
        info.insert("cancelled".into(), true.into());
    }
}

/// A `db` point guard for adapters: stops as cancelled if dropped before [`DbPoint::ok`] or
/// [`DbPoint::err`].
#[derive(Debug)]
pub struct DbPoint {
    trace: Trace,
    /// The start message's info, which the stop message of a success shares (with the rows).
    info: Option<Arc<DbInfo>>,
}

/// A `db` point's call (start message) and, after a success, its rows (stop message): one
/// allocation for both messages.
#[derive(Debug)]
struct DbInfo {
    call: DbCall,
    /// [`DbInfo::NO_ROWS`] until [`DbPoint::ok`].
    rows: std::sync::atomic::AtomicU64,
}

impl DbInfo {
    const NO_ROWS: u64 = u64::MAX;
}

impl LazyInfo for DbInfo {
    fn write(&self, info: &mut Info) {
        self.call.write(info);
    }

    fn write_for(&self, phase: Phase, info: &mut Info) {
        match phase {
            Phase::Start => self.call.write(info),
            Phase::Stop => {
                let rows = self.rows.load(std::sync::atomic::Ordering::Relaxed);
                if rows != Self::NO_ROWS {
                    Rows(rows).write(info);
                }
            }
        }
    }
}

impl DbPoint {
    /// Opens a `db` point (as a child of the current point, not made current: nothing nests in
    /// a DB call). `sql` is called only when `trace_sql` is on, `params` only when
    /// `trace_sql_params` is on too.
    #[inline]
    pub fn start(
        api: &'static str,
        target: &Arc<DbTarget>,
        keep_literals: bool,
        sql: impl FnOnce() -> Option<SqlText>,
        params: impl FnOnce() -> Option<String>,
    ) -> DbPoint {
        if !crate::is_active() {
            // Nothing to record: no call, no closure built, and a guard whose drop is one
            // null check.
            return DbPoint {
                trace: Trace::inactive(),
                info: None,
            };
        }
        let with_sql = switches::trace_sql();
        let statement = if with_sql { sql() } else { None };
        let params = if with_sql && switches::trace_sql_params() {
            params()
        } else {
            None
        };
        let info = Arc::new(DbInfo {
            call: DbCall {
                api,
                target: target.clone(),
                statement,
                keep_literals,
                params,
            },
            rows: std::sync::atomic::AtomicU64::new(DbInfo::NO_ROWS),
        });
        let trace = Trace::new_detached("db", || crate::lazy_shared(info.clone()));
        DbPoint {
            trace,
            info: Some(info),
        }
    }

    /// Whether the point is recorded (a trace is active).
    #[inline]
    pub fn is_active(&self) -> bool {
        self.trace.is_active()
    }

    /// Stops the point with the rows returned or affected.
    #[inline]
    pub fn ok(mut self, rows: u64) {
        let trace = self.take_trace();
        // `None` only without a point.
        if let Some(info) = self.info.take() {
            // Before the stop message is queued, which orders it before the worker's read.
            info.rows.store(
                rows.min(DbInfo::NO_ROWS - 1),
                std::sync::atomic::Ordering::Relaxed,
            );
            trace.finish_shared(info);
        }
    }

    /// Stops the point with no row count.
    #[inline]
    pub fn done(mut self) {
        self.take_trace().finish();
    }

    /// Stops the point with an error.
    pub fn err(mut self, error: DbError) {
        self.take_trace().finish_lazy(error);
    }

    /// The point, leaving an inactive guard: a point taken out has been stopped, so the drop
    /// of the `DbPoint` does not stop it again as cancelled.
    #[inline]
    fn take_trace(&mut self) -> Trace {
        std::mem::replace(&mut self.trace, Trace::inactive())
    }

    /// Stops the point with the outcome of a call: `rows` of a success (`None`: no count), or
    /// the error described by `error`.
    #[inline]
    pub fn finish<T, E>(
        self,
        result: &Result<T, E>,
        rows: impl FnOnce(&T) -> Option<u64>,
        error: impl FnOnce(&E) -> DbError,
    ) {
        match result {
            Ok(v) => match rows(v) {
                Some(n) => self.ok(n),
                None => self.done(),
            },
            Err(e) => self.err(error(e)),
        }
    }
}

pin_project_lite::pin_project! {
    /// A stream of rows (or results) whose `db` point stops with it: at its end with the rows
    /// counted, at its first error, or when dropped (as cancelled). Without a point it is the
    /// inner stream as is.
    pub struct DbStream<S, T, E> {
        #[pin]
        inner: S,
        point: Option<DbPoint>,
        rows: u64,
        count: fn(&T) -> u64,
        error: fn(&E) -> DbError,
    }
}

impl<S, T, E> DbStream<S, T, E> {
    /// Wraps `inner`; `count` gives the rows an item stands for, `error` describes an error.
    pub fn new(
        inner: S,
        point: Option<DbPoint>,
        count: fn(&T) -> u64,
        error: fn(&E) -> DbError,
    ) -> Self {
        DbStream {
            inner,
            point,
            rows: 0,
            count,
            error,
        }
    }

    /// The wrapped stream.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<S, T, E> futures_core::Stream for DbStream<S, T, E>
where
    S: futures_core::Stream<Item = Result<T, E>>,
{
    type Item = Result<T, E>;

    fn poll_next(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        let this = self.project();
        let item = std::task::ready!(this.inner.poll_next(cx));
        match &item {
            Some(Ok(v)) => *this.rows += (this.count)(v),
            Some(Err(e)) => {
                if let Some(p) = this.point.take() {
                    p.err((this.error)(e));
                }
            }
            None => {
                if let Some(p) = this.point.take() {
                    p.ok(*this.rows);
                }
            }
        }
        std::task::Poll::Ready(item)
    }
}

impl Drop for DbPoint {
    #[inline]
    fn drop(&mut self) {
        if self.trace.is_active() {
            self.take_trace().finish_lazy(Cancelled);
        }
    }
}

/// Replaces SQL literals — quoted strings, numbers, `X'..'` blobs, dollar-quoted strings —
/// with `?`, leaving identifiers (also quoted ones), keywords, comments' absence and
/// placeholders alone.
///
/// ```
/// use osprofiler_core::db::sanitize;
/// assert_eq!(
///     sanitize("INSERT INTO t (a, \"b1\") VALUES ('it''s', 42, -3.5e2, x'ff'); SELECT $1"),
///     "INSERT INTO t (a, \"b1\") VALUES (?, ?, -?, ?); SELECT $1"
/// );
/// ```
pub fn sanitize(sql: &str) -> String {
    let b = sql.as_bytes();
    let mut out = String::with_capacity(sql.len());
    let mut i = 0;
    let mut prev_word = false; // previous char was part of an identifier
    while i < b.len() {
        let c = b[i];
        match c {
            b'\'' => {
                i = skip_quoted(b, i + 1, b'\'');
                out.push('?');
                prev_word = false;
            }
            b'"' | b'`' => {
                let end = skip_quoted(b, i + 1, c);
                out.push_str(&sql[i..end]);
                i = end;
                prev_word = false;
            }
            b'x' | b'X' | b'b' | b'B' | b'e' | b'E'
                if !prev_word && b.get(i + 1) == Some(&b'\'') =>
            {
                i = skip_quoted(b, i + 2, b'\'');
                out.push('?');
            }
            b'$' if !prev_word && !b.get(i + 1).is_some_and(u8::is_ascii_digit) => {
                // Dollar quoting: $$...$$ or $tag$...$tag$.
                let tag_end = b[i + 1..]
                    .iter()
                    .position(|&x| x == b'$')
                    .map(|p| i + 1 + p);
                match tag_end {
                    Some(te)
                        if b[i + 1..te]
                            .iter()
                            .all(|x| x.is_ascii_alphanumeric() || *x == b'_') =>
                    {
                        let tag = &sql[i..=te];
                        match sql[te + 1..].find(tag) {
                            Some(p) => {
                                i = te + 1 + p + tag.len();
                                out.push('?');
                            }
                            None => {
                                out.push_str(&sql[i..]);
                                i = b.len();
                            }
                        }
                    }
                    _ => {
                        out.push('$');
                        i += 1;
                    }
                }
                prev_word = false;
            }
            b'0'..=b'9' if !prev_word => {
                let mut j = i;
                while j < b.len()
                    && (b[j].is_ascii_alphanumeric()
                        || b[j] == b'.'
                        || ((b[j] == b'-' || b[j] == b'+') && matches!(b[j - 1], b'e' | b'E')))
                {
                    j += 1;
                }
                out.push('?');
                i = j;
                prev_word = false;
            }
            _ => {
                let ch = sql[i..].chars().next().unwrap_or(' ');
                out.push(ch);
                prev_word = ch.is_alphanumeric() || ch == '_' || ch == '$';
                i += ch.len_utf8();
            }
        }
    }
    out
}

/// The index just past the closing `quote` (doubled quotes and backslash escapes skipped).
fn skip_quoted(b: &[u8], mut i: usize, quote: u8) -> usize {
    while i < b.len() {
        if b[i] == b'\\' && quote == b'\'' {
            i += 2;
            continue;
        }
        if b[i] == quote {
            if b.get(i + 1) == Some(&quote) {
                i += 2;
                continue;
            }
            return i + 1;
        }
        i += 1;
    }
    b.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sanitizes_literals_only() {
        for (sql, want) in [
            ("SELECT 1", "SELECT ?"),
            (
                "SELECT * FROM t1 WHERE id = 10 AND name = 'bob'",
                "SELECT * FROM t1 WHERE id = ? AND name = ?",
            ),
            ("SELECT a-1, b - 2 FROM t", "SELECT a-?, b - ? FROM t"),
            ("SELECT -5, (-2)", "SELECT -?, (-?)"),
            (
                "UPDATE t SET s = E'a\\'b', d = $$x'y$$, e = $q$ $$ $q$ WHERE c = $1",
                "UPDATE t SET s = ?, d = ?, e = ? WHERE c = $1",
            ),
            (
                "SELECT \"col 1\", `c2` FROM \"T\" WHERE x IN (1, 2.5, 3e-4)",
                "SELECT \"col 1\", `c2` FROM \"T\" WHERE x IN (?, ?, ?)",
            ),
            (
                "INSERT INTO t VALUES ('a''b', 'é ü', X'DEAD')",
                "INSERT INTO t VALUES (?, ?, ?)",
            ),
            ("SELECT 'unterminated", "SELECT ?"),
            ("SELECT 'é' || ?", "SELECT ? || ?"),
        ] {
            assert_eq!(sanitize(sql), want, "{sql}");
        }
    }

    #[test]
    fn db_call_info() {
        let target = Arc::new(
            DbTarget::new("postgresql")
                .namespace("test")
                .server("127.0.0.1:5432"),
        );
        let mut info = Info::new();
        DbCall {
            api: "query",
            target,
            statement: Some(SqlText::Raw("SELECT 'x'".into())),
            keep_literals: false,
            params: None,
        }
        .write(&mut info);
        assert_eq!(
            Value::Object(info),
            json!({"db": {"api": "query", "system": "postgresql", "namespace": "test", "server": "127.0.0.1:5432", "statement": "SELECT ?"}})
        );
    }
}
