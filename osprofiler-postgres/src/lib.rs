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
//! Each call is a `db` point with the info every adapter records (the table in
//! [`osprofiler_core::db`]): `api` `query` for `query*`, `execute`, `batch_execute`,
//! `simple_query` and `copy_*`, `prepare`, `begin`/`commit`/`rollback` for a transaction and
//! `savepoint`/`release_savepoint`/`rollback_to_savepoint` for a nested one; the SQL when
//! `trace_sql` is on — with its literals replaced by `?` when no value is bound to it
//! (`batch_execute`, `simple_query`, a query without parameters) unless
//! [`Traced::keep_literals`] is set — and `params` with `trace_sql_params`; rows, or the error
//! with its SQLSTATE (the caller gets the error unchanged). With no active trace every method
//! is tokio-postgres's call and a branch.
//!
//! [tokio-postgres]: tokio_postgres

#![cfg_attr(docsrs, feature(doc_cfg))]

use osprofiler_core::db::{self, DbError, DbEvent, DbHandle, DbStream, DbSystem, SqlText, rows};
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
        Some(self.into())
    }
}

impl Sql for String {
    type Statement = String;
    fn statement(&self) -> &String {
        self
    }
    fn text(&self) -> Option<SqlText> {
        Some(self.as_str().into())
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
        Some(SqlText::Shared(self.text.clone()))
    }
}

/// The error info of a tokio-postgres error: its text with its cause (tokio-postgres's own
/// `Display` says only "db error"), the server's message and SQLSTATE when there is one.
pub fn error_info(e: &Error) -> DbError {
    let message = match std::error::Error::source(e) {
        Some(cause) => format!("{e}: {cause}"),
        None => e.to_string(),
    };
    DbError {
        original_exception: e.as_db_error().map(|d| d.message().to_owned()),
        sqlstate: e.code().map(|c| c.code().to_owned()),
        ..DbError::new("tokio_postgres::error::Error", message)
    }
}

/// The statement of a call with `binds` values bound, `params` their text if known.
fn sql_of<'a, S: ?Sized + Sql>(
    statement: &'a S,
    binds: usize,
    params: Option<&'a [&'a (dyn ToSql + Sync)]>,
) -> impl Fn(bool) -> Option<db::Sql> + 'a {
    move |with_params| {
        // Borrowed for the call only: hashed now, into a hasher (no String), for `values`.
        let values = params
            .filter(|p| !p.is_empty() && db::values_recorded())
            .map(|p| db::BoundValues::hash_now(&p));
        let sql = db::Sql::new(statement.text()?, binds).values(values);
        Some(match params {
            Some(p) if with_params => sql.params(Some(format!("{p:?}"))),
            _ => sql,
        })
    }
}

osprofiler_core::db_wrapper! {
    /// A tokio-postgres client (or [`Transaction`]) whose calls are `db` points.
    ///
    /// Methods mirror tokio-postgres's; [`Traced::inner`] is the escape hatch (untraced).
    pub struct Traced<C>;
    /// Records SQL without bound values (`batch_execute`, `simple_query`, a query without
    /// parameters) with its literals instead of `?`.
    keep_literals;
}

impl<C> Traced<C> {
    /// Wraps a client.
    pub fn new(inner: C) -> Self {
        Self::from_handle(DbHandle::new(inner, DbSystem::PostgreSql))
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
            let sql = sql_of(statement, params.len(), Some(params));
            let fut = self.$get().query(statement.statement(), params);
            self.handle()
                .tracer()
                .run(DbEvent::Query(&sql), fut, rows::len, error_info)
                .await
        }

        /// Like `query_one`: exactly one row.
        pub async fn query_one<S: ?Sized + Sql>(
            &self,
            statement: &S,
            params: &[&(dyn ToSql + Sync)],
        ) -> Result<Row, Error> {
            let sql = sql_of(statement, params.len(), Some(params));
            let fut = self.$get().query_one(statement.statement(), params);
            self.handle()
                .tracer()
                .run(DbEvent::Query(&sql), fut, rows::one, error_info)
                .await
        }

        /// Like `query_opt`: zero or one row.
        pub async fn query_opt<S: ?Sized + Sql>(
            &self,
            statement: &S,
            params: &[&(dyn ToSql + Sync)],
        ) -> Result<Option<Row>, Error> {
            let sql = sql_of(statement, params.len(), Some(params));
            let fut = self.$get().query_opt(statement.statement(), params);
            self.handle()
                .tracer()
                .run(DbEvent::Query(&sql), fut, rows::optional, error_info)
                .await
        }

        /// Like `query_raw`: a stream of rows. The point stops when the stream ends (with the
        /// rows counted), at its first error, or when it is dropped (then marked cancelled).
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
            let params = params.into_iter();
            let sql = sql_of(statement, params.len(), None);
            let point = self.handle().tracer().start(DbEvent::Query(&sql));
            let opened = self.$get().query_raw(statement.statement(), params).await;
            point.stream(opened, rows::each, error_info)
        }

        /// Like `execute`: the number of rows affected.
        pub async fn execute<S: ?Sized + Sql>(
            &self,
            statement: &S,
            params: &[&(dyn ToSql + Sync)],
        ) -> Result<u64, Error> {
            let sql = sql_of(statement, params.len(), Some(params));
            let fut = self.$get().execute(statement.statement(), params);
            self.handle()
                .tracer()
                .run(DbEvent::Query(&sql), fut, |n| Some(*n), error_info)
                .await
        }

        /// Like `prepare`, returning a statement that remembers its text.
        pub async fn prepare(&self, query: &str) -> Result<TracedStatement, Error> {
            let sql = sql_of(query, 0, None);
            let fut = self.$get().prepare(query);
            let statement = self
                .handle()
                .tracer()
                .run(DbEvent::Prepare(&sql), fut, rows::none, error_info)
                .await?;
            Ok(TracedStatement {
                statement,
                text: Arc::from(query),
            })
        }

        /// Like `batch_execute` (SQL without bound values: literals replaced unless kept).
        pub async fn batch_execute(&self, query: &str) -> Result<(), Error> {
            let sql = sql_of(query, 0, None);
            let fut = self.$get().batch_execute(query);
            self.handle()
                .tracer()
                .run(DbEvent::Query(&sql), fut, rows::none, error_info)
                .await
        }

        /// Like `simple_query` (SQL without bound values: literals replaced unless kept);
        /// rows = rows returned.
        pub async fn simple_query(&self, query: &str) -> Result<Vec<SimpleQueryMessage>, Error> {
            let sql = sql_of(query, 0, None);
            let fut = self.$get().simple_query(query);
            self.handle()
                .tracer()
                .run(
                    DbEvent::Query(&sql),
                    fut,
                    |msgs| {
                        Some(
                            msgs.iter()
                                .filter(|m| matches!(m, SimpleQueryMessage::Row(_)))
                                .count() as u64,
                        )
                    },
                    error_info,
                )
                .await
        }

        /// Like `copy_out`: a stream of data; the point covers the call (the statement starting).
        pub async fn copy_out<S: ?Sized + Sql>(
            &self,
            statement: &S,
        ) -> Result<tokio_postgres::CopyOutStream, Error> {
            let sql = sql_of(statement, 0, None);
            let fut = self.$get().copy_out(statement.statement());
            self.handle()
                .tracer()
                .run(DbEvent::Query(&sql), fut, rows::none, error_info)
                .await
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
            let sql = sql_of(statement, 0, None);
            let fut = self.$get().copy_in(statement.statement());
            self.handle()
                .tracer()
                .run(DbEvent::Query(&sql), fut, rows::none, error_info)
                .await
        }
    };
}

impl<C: AsClient> Traced<C> {
    fn client(&self) -> &Client {
        self.inner().as_client()
    }

    traced_methods!(client);
}

impl<C: AsClientMut> Traced<C> {
    /// Like `transaction`: `BEGIN` is a point (api `begin`), and so are the transaction's
    /// calls, `commit` and `rollback`.
    pub async fn transaction(&mut self) -> Result<Traced<Transaction<'_>>, Error> {
        let (client, tracer) = self.handle_mut().split_mut();
        let fut = client.as_client_mut().transaction();
        Ok(Traced::from_handle(
            tracer.begin_at(1, fut, error_info).await?,
        ))
    }
}

impl<'a> Traced<Transaction<'a>> {
    fn client(&self) -> &Transaction<'a> {
        self.inner()
    }

    traced_methods!(client);

    /// Commits (a point, api `commit`; `release_savepoint` for a nested transaction).
    pub async fn commit(self) -> Result<(), Error> {
        self.handle.commit(Transaction::commit, error_info).await
    }

    /// Rolls back (a point, api `rollback`; `rollback_to_savepoint` for a nested transaction).
    pub async fn rollback(self) -> Result<(), Error> {
        self.handle
            .rollback(Transaction::rollback, error_info)
            .await
    }

    /// A nested transaction (a savepoint; a point, api `savepoint`).
    pub async fn transaction(&mut self) -> Result<Traced<Transaction<'_>>, Error> {
        let depth = self.handle().depth() + 1;
        let (tx, tracer) = self.handle_mut().split_mut();
        Ok(Traced::from_handle(
            tracer.begin_at(depth, tx.transaction(), error_info).await?,
        ))
    }
}

/// The rows of [`Traced::query_raw`]; its point stops with the stream (at its end, first error
/// or drop).
pub type TracedRowStream = DbStream<RowStream, Row, Error>;

// The README's examples are compiled (and run, unless `no_run`) as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
