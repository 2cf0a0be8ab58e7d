//! # osprofiler-sea-orm
//!
//! OSProfiler `db` points for [sea-orm] 2.0: `Traced::new(db)` is a connection, a stream
//! source and a transaction source, so `Entity::find().all(&db)`, `ActiveModel::insert(&db)`,
//! `db.transaction(..)` and streams all work, and transactions stay traced.
//!
//! ```no_run
//! # async fn demo() -> Result<(), sea_orm::DbErr> {
//! let db = sea_orm::Database::connect("sqlite::memory:").await?;
//! let db = osprofiler_sea_orm::Traced::new(db); // the one line
//! # Ok(()) }
//! ```
//!
//! Every call is a `db` point with the info every adapter records (the table in
//! [`osprofiler_core::db`]): `api` `query` for `execute`, `execute_unprepared`, `query_one`,
//! `query_all` and streams (which stop at the end of the stream, its first error or when
//! dropped), `begin`/`commit`/`rollback` for a transaction and
//! `savepoint`/`release_savepoint`/`rollback_to_savepoint` for a nested one; the SQL when
//! `trace_sql` is on — literals replaced by `?` when no value is bound to it
//! (`execute_unprepared`, a statement without values) unless [`Traced::keep_literals`] is set —
//! `params` (sea-orm's bound values) when `trace_sql_params` is on too; rows, or the error with
//! its SQLSTATE (PostgreSQL, MySQL) or SQLite code.
//!
//! sea-orm's traits are `async_trait`s. With no trace active, the query methods hand back
//! sea-orm's own boxed future: the wrapper adds no allocation (a counting-allocator test checks
//! it). Traced calls box one future of their own.
//!
//! [sea-orm]: sea_orm

#![cfg_attr(docsrs, feature(doc_cfg))]

use osprofiler_core::db::{self, DbError, DbEvent, DbHandle, DbSystem, rows};
#[cfg(feature = "_sqlx")]
use sea_orm::RuntimeErr;
use sea_orm::{
    AccessMode, ConnectionTrait, DbBackend, DbErr, ExecResult, IsolationLevel, QueryResult,
    Statement, StreamTrait, TransactionError, TransactionOptions, TransactionSession,
    TransactionTrait,
};
use std::future::Future;
use std::pin::Pin;

/// The future type of sea-orm's `async_trait` methods.
type BoxedFuture<'a, T> = db::BoxFuture<'a, T>;

osprofiler_core::db_wrapper! {
    /// A sea-orm connection or transaction whose calls are `db` points.
    pub struct Traced<C>;
    /// Records SQL without bound values (`execute_unprepared`, a statement without values)
    /// with its literals instead of `?`.
    keep_literals;
}

fn system_of(backend: DbBackend) -> DbSystem {
    match backend {
        DbBackend::Postgres => DbSystem::PostgreSql,
        DbBackend::Sqlite => DbSystem::Sqlite,
        DbBackend::MySql => DbSystem::MySql,
        _ => DbSystem::Other("unknown"),
    }
}

impl<C: ConnectionTrait> Traced<C> {
    /// Wraps a connection (a `DatabaseConnection`, or a transaction).
    pub fn new(inner: C) -> Self {
        let system = system_of(inner.get_database_backend());
        Self::from_handle(DbHandle::new(inner, system))
    }
}

/// The statement of a sea-orm call.
fn sql_of(stmt: &Statement) -> impl Fn(bool) -> Option<db::Sql> + '_ {
    move |with_params| {
        let binds = stmt.values.as_ref().map_or(0, |v| v.0.len());
        let params = (with_params && binds > 0)
            .then(|| stmt.values.as_ref().map(|v| format!("{:?}", v.0)))
            .flatten();
        // A clone of the values (nothing formatted): the worker hashes it for `values`.
        let values = stmt
            .values
            .as_ref()
            .filter(|_| binds > 0 && db::values_recorded())
            .map(|v| db::BoundValues::owned(v.0.clone()));
        Some(
            db::Sql::new(stmt.sql.as_str().into(), binds)
                .params(params)
                .values(values),
        )
    }
}

fn affected(result: &ExecResult) -> Option<u64> {
    Some(result.rows_affected())
}

/// The error info of a sea-orm error: with sea-orm's sqlx drivers (features `sqlx-postgres`,
/// `sqlx-sqlite`, `sqlx-mysql`), the database's message and its SQLSTATE (PostgreSQL, MySQL)
/// or result code (SQLite).
pub fn error_info(e: &DbErr) -> DbError {
    #[allow(unused_mut)] // without a sqlx driver there is nothing more to add
    let mut info = DbError {
        original_exception: e.sql_err().map(|s| s.to_string()),
        ..DbError::new("sea_orm::error::DbErr", e.to_string())
    };
    #[cfg(feature = "_sqlx")]
    if let DbErr::Exec(RuntimeErr::SqlxError(x))
    | DbErr::Query(RuntimeErr::SqlxError(x))
    | DbErr::Conn(RuntimeErr::SqlxError(x)) = e
        && let Some(d) = x.as_database_error()
    {
        info.original_exception = Some(d.message().to_owned());
        let code = d.code().map(|c| c.into_owned());
        #[cfg(feature = "sqlx-sqlite")]
        let sqlite = d
            .try_downcast_ref::<sea_orm::sqlx::sqlite::SqliteError>()
            .is_some();
        #[cfg(not(feature = "sqlx-sqlite"))]
        let sqlite = false;
        if sqlite {
            info.code = code;
        } else {
            info.sqlstate = code;
        }
    }
    info
}

#[async_trait::async_trait]
impl<C: ConnectionTrait + Send + Sync> ConnectionTrait for Traced<C> {
    fn get_database_backend(&self) -> DbBackend {
        self.inner().get_database_backend()
    }

    // The query methods are written out (not `async fn`) so that with no trace active they
    // return sea-orm's own boxed future: the wrapper then allocates nothing of its own.
    fn execute_raw<'life0, 'async_trait>(
        &'life0 self,
        stmt: Statement,
    ) -> BoxedFuture<'async_trait, Result<ExecResult, DbErr>>
    where
        'life0: 'async_trait,
        Self: 'async_trait,
    {
        let point = self.handle().tracer().start(DbEvent::Query(&sql_of(&stmt)));
        point.boxed(self.inner().execute_raw(stmt), affected, error_info)
    }

    fn execute_unprepared<'life0, 'life1, 'async_trait>(
        &'life0 self,
        sql: &'life1 str,
    ) -> BoxedFuture<'async_trait, Result<ExecResult, DbErr>>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        Self: 'async_trait,
    {
        let point = self
            .handle()
            .tracer()
            .start(DbEvent::Query(&|_: bool| Some(db::Sql::new(sql.into(), 0))));
        point.boxed(self.inner().execute_unprepared(sql), affected, error_info)
    }

    fn query_one_raw<'life0, 'async_trait>(
        &'life0 self,
        stmt: Statement,
    ) -> BoxedFuture<'async_trait, Result<Option<QueryResult>, DbErr>>
    where
        'life0: 'async_trait,
        Self: 'async_trait,
    {
        let point = self.handle().tracer().start(DbEvent::Query(&sql_of(&stmt)));
        point.boxed(self.inner().query_one_raw(stmt), rows::optional, error_info)
    }

    fn query_all_raw<'life0, 'async_trait>(
        &'life0 self,
        stmt: Statement,
    ) -> BoxedFuture<'async_trait, Result<Vec<QueryResult>, DbErr>>
    where
        'life0: 'async_trait,
        Self: 'async_trait,
    {
        let point = self.handle().tracer().start(DbEvent::Query(&sql_of(&stmt)));
        point.boxed(self.inner().query_all_raw(stmt), rows::len, error_info)
    }

    fn support_returning(&self) -> bool {
        self.inner().support_returning()
    }

    fn is_mock_connection(&self) -> bool {
        self.inner().is_mock_connection()
    }
}

/// The rows of a traced stream; its point stops with the stream (end, first error or drop).
pub type TracedStream<S> = db::DbStream<S, QueryResult, DbErr>;

impl<C: StreamTrait> StreamTrait for Traced<C> {
    type Stream<'a>
        = TracedStream<C::Stream<'a>>
    where
        Self: 'a;

    fn get_database_backend(&self) -> DbBackend {
        self.inner().get_database_backend()
    }

    fn stream_raw<'a>(
        &'a self,
        stmt: Statement,
    ) -> Pin<Box<dyn Future<Output = Result<Self::Stream<'a>, DbErr>> + 'a + Send>> {
        let point = self.handle().tracer().start(DbEvent::Query(&sql_of(&stmt)));
        let fut = self.inner().stream_raw(stmt);
        Box::pin(async move { point.stream(fut.await, rows::each, error_info) })
    }
}

#[async_trait::async_trait]
impl<C> TransactionTrait for Traced<C>
where
    C: TransactionTrait + Send + Sync,
    C::Transaction: Sync,
{
    type Transaction = Traced<C::Transaction>;

    async fn begin(&self) -> Result<Self::Transaction, DbErr> {
        self.begin_with_options(TransactionOptions::default()).await
    }

    async fn begin_with_config(
        &self,
        isolation_level: Option<IsolationLevel>,
        access_mode: Option<AccessMode>,
    ) -> Result<Self::Transaction, DbErr> {
        let fut = self.inner().begin_with_config(isolation_level, access_mode);
        let tracer = self.handle().tracer();
        let tx = tracer.begin(self.handle(), fut, error_info).await?;
        Ok(Traced::from_handle(tx))
    }

    async fn begin_with_options(
        &self,
        options: TransactionOptions,
    ) -> Result<Self::Transaction, DbErr> {
        let fut = self.inner().begin_with_options(options);
        let tracer = self.handle().tracer();
        let tx = tracer.begin(self.handle(), fut, error_info).await?;
        Ok(Traced::from_handle(tx))
    }

    async fn transaction<F, T, E>(&self, callback: F) -> Result<T, TransactionError<E>>
    where
        F: for<'c> FnOnce(
                &'c Self::Transaction,
            ) -> Pin<Box<dyn Future<Output = Result<T, E>> + Send + 'c>>
            + Send,
        T: Send,
        E: std::fmt::Display + std::fmt::Debug + Send,
    {
        // BEGIN with the backend's defaults, as `begin()`.
        self.transaction_with_config(callback, None, None).await
    }

    async fn transaction_with_config<F, T, E>(
        &self,
        callback: F,
        isolation_level: Option<IsolationLevel>,
        access_mode: Option<AccessMode>,
    ) -> Result<T, TransactionError<E>>
    where
        F: for<'c> FnOnce(
                &'c Self::Transaction,
            ) -> Pin<Box<dyn Future<Output = Result<T, E>> + Send + 'c>>
            + Send,
        T: Send,
        E: std::fmt::Display + std::fmt::Debug + Send,
    {
        let tx = self
            .begin_with_config(isolation_level, access_mode)
            .await
            .map_err(TransactionError::Connection)?;
        match callback(&tx).await {
            Ok(v) => {
                tx.commit().await.map_err(TransactionError::Connection)?;
                Ok(v)
            }
            Err(e) => {
                tx.rollback().await.map_err(TransactionError::Connection)?;
                Err(TransactionError::Transaction(e))
            }
        }
    }
}

#[async_trait::async_trait]
impl<C: TransactionSession + Send> TransactionSession for Traced<C> {
    async fn commit(self) -> Result<(), DbErr> {
        self.handle.commit(C::commit, error_info).await
    }

    async fn rollback(self) -> Result<(), DbErr> {
        self.handle.rollback(C::rollback, error_info).await
    }
}

// The README's examples are compiled (and run, unless `no_run`) as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
