//! # osprofiler-postgres
//!
//! OSProfiler `db` points for [tokio-postgres]: wrap a client once, and every call made
//! through it inside a trace becomes a `db` point.
//!
//! ```no_run
//! # async fn demo() -> Result<(), tokio_postgres::Error> {
//! let (client, connection) = tokio_postgres::connect("host=127.0.0.1 user=postgres dbname=test", tokio_postgres::NoTls).await?;
//! tokio::spawn(connection);
//! let db = osprofiler_postgres::Traced::new(client).database("test").server("127.0.0.1:5432"); // the one line
//!
//! let rows = db.query("SELECT $1::int4", &[&1i32]).await?;
//! # Ok(()) }
//! ```
//!
//! Start info `{"db": {"api", "system": "postgresql", "namespace", "server"}}`, plus
//! `statement` when `trace_sql` is on and `params` when `trace_sql_params` is on too; stop info
//! `{"db": {"rows": n}}`, or `etype`/`message`/`db.original_exception`/`db.sqlstate` for an
//! error (the caller gets the error unchanged). Raw SQL (`batch_execute`, `simple_query`) is
//! recorded with its literals replaced by `?` unless [`Traced::keep_literals`] is set.
//! With no active trace every method calls tokio-postgres directly.
//!
//! [tokio-postgres]: tokio_postgres

use osprofiler_core::db::{DbError, DbPoint, DbTarget, SqlText};
use std::ops::Deref;
use std::sync::Arc;
use tokio_postgres::types::{BorrowToSql, ToSql};
use tokio_postgres::{
    Client, Error, Row, RowStream, SimpleQueryMessage, Statement, ToStatement, Transaction,
};

/// Something that gives access to a tokio-postgres [`Client`]: the client itself, a reference,
/// an `Arc`, or a pool's connection object.
pub trait AsClient {
    /// The client.
    fn as_client(&self) -> &Client;
}

impl AsClient for Client {
    fn as_client(&self) -> &Client {
        self
    }
}

/// A client that can start transactions (they need `&mut Client`).
pub trait AsClientMut: AsClient {
    /// The client, mutably.
    fn as_client_mut(&mut self) -> &mut Client;
}

impl AsClientMut for Client {
    fn as_client_mut(&mut self) -> &mut Client {
        self
    }
}

impl AsClient for &Client {
    fn as_client(&self) -> &Client {
        self
    }
}

impl AsClient for Arc<Client> {
    fn as_client(&self) -> &Client {
        self
    }
}

#[cfg(feature = "deadpool")]
mod deadpool_impls {
    use super::{AsClient, AsClientMut};
    use deadpool_postgres::{ClientWrapper, Object};
    use tokio_postgres::Client;

    impl AsClient for Object {
        fn as_client(&self) -> &Client {
            self
        }
    }

    impl AsClientMut for Object {
        fn as_client_mut(&mut self) -> &mut Client {
            self
        }
    }

    impl AsClient for ClientWrapper {
        fn as_client(&self) -> &Client {
            self
        }
    }

    impl AsClientMut for ClientWrapper {
        fn as_client_mut(&mut self) -> &mut Client {
            self
        }
    }
}

/// SQL accepted by the traced methods: text (`&str`, `String`), a tokio-postgres
/// [`Statement`] (its text is not known, so none is recorded), or a [`TracedStatement`] from
/// [`Traced::prepare`], which remembers its text.
pub trait Sql: Sync + Send {
    /// What tokio-postgres is given.
    type Statement: ?Sized + ToStatement + Sync + Send;
    /// The statement to execute.
    fn statement(&self) -> &Self::Statement;
    /// The text to record (called only when `trace_sql` is on).
    fn text(&self) -> Option<SqlText>;
}

impl Sql for str {
    type Statement = str;
    fn statement(&self) -> &str {
        self
    }
    fn text(&self) -> Option<SqlText> {
        Some(SqlText::Parameterized(Arc::from(self)))
    }
}

impl Sql for String {
    type Statement = String;
    fn statement(&self) -> &String {
        self
    }
    fn text(&self) -> Option<SqlText> {
        Some(SqlText::Parameterized(Arc::from(self.as_str())))
    }
}

impl Sql for Statement {
    type Statement = Statement;
    fn statement(&self) -> &Statement {
        self
    }
    fn text(&self) -> Option<SqlText> {
        None
    }
}

/// A prepared statement that remembers its SQL text (shared, not copied, per call).
#[derive(Clone, Debug)]
pub struct TracedStatement {
    statement: Statement,
    text: Arc<str>,
}

impl TracedStatement {
    /// The SQL text it was prepared from.
    pub fn text(&self) -> &str {
        &self.text
    }
    /// The tokio-postgres statement.
    pub fn inner(&self) -> &Statement {
        &self.statement
    }
}

impl Deref for TracedStatement {
    type Target = Statement;
    fn deref(&self) -> &Statement {
        &self.statement
    }
}

impl Sql for TracedStatement {
    type Statement = Statement;
    fn statement(&self) -> &Statement {
        &self.statement
    }
    fn text(&self) -> Option<SqlText> {
        Some(SqlText::Parameterized(self.text.clone()))
    }
}

/// The error info of a tokio-postgres error: SQLSTATE and the server's message when there is
/// one.
pub fn error_info(e: &Error) -> DbError {
    DbError {
        etype: "tokio_postgres::error::Error",
        message: e.to_string(),
        original_exception: e.as_db_error().map(|d| d.message().to_owned()),
        sqlstate: e.code().map(|c| c.code().to_owned()),
    }
}

fn finish<T>(point: DbPoint, result: &Result<T, Error>, rows: impl FnOnce(&T) -> Option<u64>) {
    point.finish(result, rows, error_info);
}

fn params_text(params: &[&(dyn ToSql + Sync)]) -> Option<String> {
    Some(format!("{params:?}"))
}

/// Settings shared by a traced client and its transactions.
#[derive(Debug, Clone)]
struct Settings {
    target: Arc<DbTarget>,
    keep_literals: bool,
}

/// A tokio-postgres client (or [`Transaction`]) whose calls are `db` points.
///
/// Methods mirror tokio-postgres's; [`Traced::inner`] is the escape hatch (untraced).
#[derive(Debug)]
pub struct Traced<C> {
    inner: C,
    settings: Settings,
}

impl<C> Traced<C> {
    /// Wraps a client.
    pub fn new(inner: C) -> Self {
        Traced {
            inner,
            settings: Settings {
                target: Arc::new(DbTarget::new("postgresql")),
                keep_literals: false,
            },
        }
    }

    /// Records the database name (`db.namespace`).
    pub fn database(mut self, name: impl Into<String>) -> Self {
        let t = (*self.settings.target).clone().namespace(name);
        self.settings.target = Arc::new(t);
        self
    }

    /// Records the server address (`db.server`, `host:port`; never put credentials here).
    pub fn server(mut self, server: impl Into<String>) -> Self {
        let t = (*self.settings.target).clone().server(server);
        self.settings.target = Arc::new(t);
        self
    }

    /// Records raw SQL (`batch_execute`, `simple_query`) with its literals instead of `?`.
    pub fn keep_literals(mut self, keep: bool) -> Self {
        self.settings.keep_literals = keep;
        self
    }

    /// The wrapped client: calls made on it are not traced.
    pub fn inner(&self) -> &C {
        &self.inner
    }

    /// The wrapped client, mutably.
    pub fn inner_mut(&mut self) -> &mut C {
        &mut self.inner
    }

    /// Unwraps.
    pub fn into_inner(self) -> C {
        self.inner
    }

    fn point(
        &self,
        api: &'static str,
        sql: impl FnOnce() -> Option<SqlText>,
        params: impl FnOnce() -> Option<String>,
    ) -> DbPoint {
        DbPoint::start(
            api,
            &self.settings.target,
            self.settings.keep_literals,
            sql,
            params,
        )
    }

    fn raw(sql: &str) -> impl FnOnce() -> Option<SqlText> + '_ {
        move || Some(SqlText::Raw(Arc::from(sql)))
    }
}

/// The methods shared by traced clients and traced transactions; `$get` yields the object
/// tokio-postgres's inherent methods are called on.
macro_rules! traced_methods {
    ($get:ident) => {
        /// Like `query`: the rows.
        pub async fn query<S: ?Sized + Sql>(
            &self,
            statement: &S,
            params: &[&(dyn ToSql + Sync)],
        ) -> Result<Vec<Row>, Error> {
            if !osprofiler_core::is_active() {
                return self.$get().query(statement.statement(), params).await;
            }
            let point = self.point("query", || statement.text(), || params_text(params));
            let r = self.$get().query(statement.statement(), params).await;
            finish(point, &r, |rows| Some(rows.len() as u64));
            r
        }

        /// Like `query_one`: exactly one row.
        pub async fn query_one<S: ?Sized + Sql>(
            &self,
            statement: &S,
            params: &[&(dyn ToSql + Sync)],
        ) -> Result<Row, Error> {
            if !osprofiler_core::is_active() {
                return self.$get().query_one(statement.statement(), params).await;
            }
            let point = self.point("query_one", || statement.text(), || params_text(params));
            let r = self.$get().query_one(statement.statement(), params).await;
            finish(point, &r, |_| Some(1));
            r
        }

        /// Like `query_opt`: zero or one row.
        pub async fn query_opt<S: ?Sized + Sql>(
            &self,
            statement: &S,
            params: &[&(dyn ToSql + Sync)],
        ) -> Result<Option<Row>, Error> {
            if !osprofiler_core::is_active() {
                return self.$get().query_opt(statement.statement(), params).await;
            }
            let point = self.point("query_opt", || statement.text(), || params_text(params));
            let r = self.$get().query_opt(statement.statement(), params).await;
            finish(point, &r, |row| Some(u64::from(row.is_some())));
            r
        }

        /// Like `query_raw`: a stream of rows. The point stops when the stream ends, at its
        /// first error, or when it is dropped (then marked cancelled).
        pub async fn query_raw<S, P, I>(
            &self,
            statement: &S,
            params: I,
        ) -> Result<TracedRowStream, Error>
        where
            S: ?Sized + Sql,
            P: BorrowToSql,
            I: IntoIterator<Item = P>,
            I::IntoIter: ExactSizeIterator,
        {
            if !osprofiler_core::is_active() {
                let inner = self.$get().query_raw(statement.statement(), params).await?;
                return Ok(TracedRowStream::new(inner, None, one_row, error_info));
            }
            let point = self.point("query_raw", || statement.text(), || None);
            match self.$get().query_raw(statement.statement(), params).await {
                Ok(inner) => Ok(TracedRowStream::new(
                    inner,
                    Some(point),
                    one_row,
                    error_info,
                )),
                Err(e) => {
                    point.err(error_info(&e));
                    Err(e)
                }
            }
        }

        /// Like `execute`: the number of rows affected.
        pub async fn execute<S: ?Sized + Sql>(
            &self,
            statement: &S,
            params: &[&(dyn ToSql + Sync)],
        ) -> Result<u64, Error> {
            if !osprofiler_core::is_active() {
                return self.$get().execute(statement.statement(), params).await;
            }
            let point = self.point("execute", || statement.text(), || params_text(params));
            let r = self.$get().execute(statement.statement(), params).await;
            finish(point, &r, |n| Some(*n));
            r
        }

        /// Like `prepare`, returning a statement that remembers its text.
        pub async fn prepare(&self, query: &str) -> Result<TracedStatement, Error> {
            let point = if osprofiler_core::is_active() {
                Some(self.point("prepare", || query.text(), || None))
            } else {
                None
            };
            let r = self.$get().prepare(query).await;
            if let Some(point) = point {
                finish(point, &r, |_| None);
            }
            Ok(TracedStatement {
                statement: r?,
                text: Arc::from(query),
            })
        }

        /// Like `batch_execute` (raw SQL: literals sanitized unless kept).
        pub async fn batch_execute(&self, query: &str) -> Result<(), Error> {
            if !osprofiler_core::is_active() {
                return self.$get().batch_execute(query).await;
            }
            let point = self.point("batch_execute", Self::raw(query), || None);
            let r = self.$get().batch_execute(query).await;
            finish(point, &r, |_| None);
            r
        }

        /// Like `simple_query` (raw SQL: literals sanitized unless kept); rows = rows returned.
        pub async fn simple_query(&self, query: &str) -> Result<Vec<SimpleQueryMessage>, Error> {
            if !osprofiler_core::is_active() {
                return self.$get().simple_query(query).await;
            }
            let point = self.point("simple_query", Self::raw(query), || None);
            let r = self.$get().simple_query(query).await;
            finish(point, &r, |msgs| {
                Some(
                    msgs.iter()
                        .filter(|m| matches!(m, SimpleQueryMessage::Row(_)))
                        .count() as u64,
                )
            });
            r
        }

        /// Like `copy_out`: a stream of data; the point covers the call (the statement starting).
        pub async fn copy_out<S: ?Sized + Sql>(
            &self,
            statement: &S,
        ) -> Result<tokio_postgres::CopyOutStream, Error> {
            if !osprofiler_core::is_active() {
                return self.$get().copy_out(statement.statement()).await;
            }
            let point = self.point("copy_out", || statement.text(), || None);
            let r = self.$get().copy_out(statement.statement()).await;
            finish(point, &r, |_| None);
            r
        }

        /// Like `copy_in`: a sink for data; the point covers the call (the statement starting).
        pub async fn copy_in<S, U>(
            &self,
            statement: &S,
        ) -> Result<tokio_postgres::CopyInSink<U>, Error>
        where
            S: ?Sized + Sql,
            U: bytes::Buf + 'static + Send,
        {
            if !osprofiler_core::is_active() {
                return self.$get().copy_in(statement.statement()).await;
            }
            let point = self.point("copy_in", || statement.text(), || None);
            let r = self.$get().copy_in(statement.statement()).await;
            finish(point, &r, |_| None);
            r
        }
    };
}

impl<C: AsClient> Traced<C> {
    fn client(&self) -> &Client {
        self.inner.as_client()
    }

    traced_methods!(client);
}

impl<C: AsClientMut> Traced<C> {
    /// Like `transaction`: `BEGIN` is a point (api `begin`), and so are the transaction's
    /// calls, `commit` and `rollback`.
    pub async fn transaction(&mut self) -> Result<Traced<Transaction<'_>>, Error> {
        let settings = self.settings.clone();
        let tx = begin(&settings, self.inner.as_client_mut().transaction()).await?;
        Ok(Traced {
            inner: tx,
            settings,
        })
    }
}

async fn begin<'a, F>(settings: &Settings, start: F) -> Result<Transaction<'a>, Error>
where
    F: std::future::Future<Output = Result<Transaction<'a>, Error>>,
{
    if !osprofiler_core::is_active() {
        return start.await;
    }
    let point = DbPoint::start(
        "begin",
        &settings.target,
        true,
        || Some(SqlText::Raw(Arc::from("BEGIN"))),
        || None,
    );
    let r = start.await;
    finish(point, &r, |_| None);
    r
}

impl<'a> Traced<Transaction<'a>> {
    fn client(&self) -> &Transaction<'a> {
        &self.inner
    }

    traced_methods!(client);

    /// Commits (a point, api `commit`).
    pub async fn commit(self) -> Result<(), Error> {
        let Traced { inner, settings } = self;
        if !osprofiler_core::is_active() {
            return inner.commit().await;
        }
        let point = DbPoint::start(
            "commit",
            &settings.target,
            true,
            || Some(SqlText::Raw(Arc::from("COMMIT"))),
            || None,
        );
        let r = inner.commit().await;
        finish(point, &r, |_| None);
        r
    }

    /// Rolls back (a point, api `rollback`).
    pub async fn rollback(self) -> Result<(), Error> {
        let Traced { inner, settings } = self;
        if !osprofiler_core::is_active() {
            return inner.rollback().await;
        }
        let point = DbPoint::start(
            "rollback",
            &settings.target,
            true,
            || Some(SqlText::Raw(Arc::from("ROLLBACK"))),
            || None,
        );
        let r = inner.rollback().await;
        finish(point, &r, |_| None);
        r
    }

    /// A nested transaction (a savepoint; a point, api `savepoint`).
    pub async fn transaction(&mut self) -> Result<Traced<Transaction<'_>>, Error> {
        let settings = self.settings.clone();
        if !osprofiler_core::is_active() {
            let tx = self.inner.transaction().await?;
            return Ok(Traced {
                inner: tx,
                settings,
            });
        }
        let point = DbPoint::start(
            "savepoint",
            &settings.target,
            true,
            || Some(SqlText::Raw(Arc::from("SAVEPOINT"))),
            || None,
        );
        let r = self.inner.transaction().await;
        finish(point, &r, |_| None);
        Ok(Traced {
            inner: r?,
            settings,
        })
    }
}

/// The rows of [`Traced::query_raw`]; its point stops with the stream (at its end, first error
/// or drop).
pub type TracedRowStream = osprofiler_core::db::DbStream<RowStream, Row, Error>;

fn one_row(_: &Row) -> u64 {
    1
}
