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
//! Points: `execute`, `execute_unprepared`, `query_one`, `query_all`, `stream` (stops at the
//! end of the stream, its first error or when dropped), `begin`, `commit`, `rollback`. Start
//! info `{"db": {"api", "system", "namespace", "server"}}` plus `statement` when `trace_sql` is
//! on (sea-orm's SQL text; `execute_unprepared` text sanitized) and `params` (sea-orm's bound
//! values) when `trace_sql_params` is on too.
//!
//! sea-orm's traits are `async_trait`s. With no trace active, the query methods hand back
//! sea-orm's own boxed future: the wrapper adds no allocation (a counting-allocator test checks
//! it). Traced calls box one future of their own.
//!
//! [sea-orm]: sea_orm

use osprofiler_core::db::{DbError, DbPoint, DbTarget, SqlText};
use sea_orm::{
    AccessMode, ConnectionTrait, DbBackend, DbErr, ExecResult, IsolationLevel, QueryResult,
    Statement, StreamTrait, TransactionError, TransactionOptions, TransactionSession,
    TransactionTrait,
};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

/// The future type of sea-orm's `async_trait` methods.
type BoxedFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A sea-orm connection or transaction whose calls are `db` points.
#[derive(Debug, Clone)]
pub struct Traced<C> {
    inner: C,
    target: Arc<DbTarget>,
}

fn system_of(backend: DbBackend) -> &'static str {
    match backend {
        DbBackend::Postgres => "postgresql",
        DbBackend::Sqlite => "sqlite",
        DbBackend::MySql => "mysql",
        _ => "unknown",
    }
}

impl<C: ConnectionTrait> Traced<C> {
    /// Wraps a connection (a `DatabaseConnection`, or a transaction).
    pub fn new(inner: C) -> Self {
        let target = Arc::new(DbTarget::new(system_of(inner.get_database_backend())));
        Traced { inner, target }
    }
}

impl<C> Traced<C> {
    /// Records the database name (`db.namespace`).
    pub fn database(mut self, name: impl Into<String>) -> Self {
        self.target = Arc::new((*self.target).clone().namespace(name));
        self
    }

    /// Records the server address (`db.server`, `host:port`; never credentials).
    pub fn server(mut self, server: impl Into<String>) -> Self {
        self.target = Arc::new((*self.target).clone().server(server));
        self
    }

    /// The wrapped connection: calls made on it are not traced.
    pub fn inner(&self) -> &C {
        &self.inner
    }

    /// Unwraps.
    pub fn into_inner(self) -> C {
        self.inner
    }

    fn wrap<T>(&self, inner: T) -> Traced<T> {
        Traced {
            inner,
            target: self.target.clone(),
        }
    }

    fn point(&self, api: &'static str, stmt: Option<&Statement>, raw: Option<&str>) -> DbPoint {
        DbPoint::start(
            api,
            &self.target,
            false,
            || match (stmt, raw) {
                (Some(s), _) if s.values.is_some() => {
                    Some(SqlText::Parameterized(Arc::from(s.sql.as_str())))
                }
                (Some(s), _) => Some(SqlText::Raw(Arc::from(s.sql.as_str()))),
                (None, Some(sql)) => Some(SqlText::Raw(Arc::from(sql))),
                (None, None) => None,
            },
            || {
                stmt.and_then(|s| s.values.as_ref())
                    .map(|v| format!("{:?}", v.0))
            },
        )
    }

    fn fixed(&self, api: &'static str, sql: &'static str) -> DbPoint {
        DbPoint::start(
            api,
            &self.target,
            true,
            || Some(SqlText::Raw(Arc::from(sql))),
            || None,
        )
    }
}

/// The error info of a sea-orm error.
pub fn error_info(e: &DbErr) -> DbError {
    DbError {
        etype: "sea_orm::error::DbErr",
        message: e.to_string(),
        original_exception: e.sql_err().map(|s| s.to_string()),
        sqlstate: None,
    }
}

fn finish<T>(point: DbPoint, result: &Result<T, DbErr>, rows: impl FnOnce(&T) -> Option<u64>) {
    point.finish(result, rows, error_info);
}

#[async_trait::async_trait]
impl<C: ConnectionTrait + Send + Sync> ConnectionTrait for Traced<C> {
    fn get_database_backend(&self) -> DbBackend {
        self.inner.get_database_backend()
    }

    // The four query methods are written out (not `async fn`) so that with no trace active
    // they return sea-orm's own boxed future: the wrapper then allocates nothing of its own.
    fn execute_raw<'life0, 'async_trait>(
        &'life0 self,
        stmt: Statement,
    ) -> BoxedFuture<'async_trait, Result<ExecResult, DbErr>>
    where
        'life0: 'async_trait,
        Self: 'async_trait,
    {
        if !osprofiler_core::is_active() {
            return self.inner.execute_raw(stmt);
        }
        Box::pin(async move {
            let point = self.point("execute", Some(&stmt), None);
            let r = self.inner.execute_raw(stmt).await;
            finish(point, &r, |e| Some(e.rows_affected()));
            r
        })
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
        if !osprofiler_core::is_active() {
            return self.inner.execute_unprepared(sql);
        }
        Box::pin(async move {
            let point = self.point("execute_unprepared", None, Some(sql));
            let r = self.inner.execute_unprepared(sql).await;
            finish(point, &r, |e| Some(e.rows_affected()));
            r
        })
    }

    fn query_one_raw<'life0, 'async_trait>(
        &'life0 self,
        stmt: Statement,
    ) -> BoxedFuture<'async_trait, Result<Option<QueryResult>, DbErr>>
    where
        'life0: 'async_trait,
        Self: 'async_trait,
    {
        if !osprofiler_core::is_active() {
            return self.inner.query_one_raw(stmt);
        }
        Box::pin(async move {
            let point = self.point("query_one", Some(&stmt), None);
            let r = self.inner.query_one_raw(stmt).await;
            finish(point, &r, |row| Some(u64::from(row.is_some())));
            r
        })
    }

    fn query_all_raw<'life0, 'async_trait>(
        &'life0 self,
        stmt: Statement,
    ) -> BoxedFuture<'async_trait, Result<Vec<QueryResult>, DbErr>>
    where
        'life0: 'async_trait,
        Self: 'async_trait,
    {
        if !osprofiler_core::is_active() {
            return self.inner.query_all_raw(stmt);
        }
        Box::pin(async move {
            let point = self.point("query_all", Some(&stmt), None);
            let r = self.inner.query_all_raw(stmt).await;
            finish(point, &r, |rows| Some(rows.len() as u64));
            r
        })
    }

    fn support_returning(&self) -> bool {
        self.inner.support_returning()
    }

    fn is_mock_connection(&self) -> bool {
        self.inner.is_mock_connection()
    }
}

/// The rows of a traced stream; its point stops with the stream (end, first error or drop).
pub type TracedStream<S> = osprofiler_core::db::DbStream<S, QueryResult, DbErr>;

impl<C: StreamTrait> StreamTrait for Traced<C> {
    type Stream<'a>
        = TracedStream<C::Stream<'a>>
    where
        Self: 'a;

    fn get_database_backend(&self) -> DbBackend {
        self.inner.get_database_backend()
    }

    fn stream_raw<'a>(
        &'a self,
        stmt: Statement,
    ) -> Pin<Box<dyn Future<Output = Result<Self::Stream<'a>, DbErr>> + 'a + Send>> {
        let point = if osprofiler_core::is_active() {
            Some(self.point("stream", Some(&stmt), None))
        } else {
            None
        };
        let fut = self.inner.stream_raw(stmt);
        Box::pin(async move {
            match fut.await {
                Ok(inner) => Ok(TracedStream::new(inner, point, |_| 1, error_info)),
                Err(e) => {
                    if let Some(p) = point {
                        p.err(error_info(&e));
                    }
                    Err(e)
                }
            }
        })
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
        let point = osprofiler_core::is_active().then(|| self.fixed("begin", "BEGIN"));
        let r = self
            .inner
            .begin_with_config(isolation_level, access_mode)
            .await;
        if let Some(p) = point {
            finish(p, &r, |_| None);
        }
        r.map(|tx| self.wrap(tx))
    }

    async fn begin_with_options(
        &self,
        options: TransactionOptions,
    ) -> Result<Self::Transaction, DbErr> {
        let point = osprofiler_core::is_active().then(|| self.fixed("begin", "BEGIN"));
        let r = self.inner.begin_with_options(options).await;
        if let Some(p) = point {
            finish(p, &r, |_| None);
        }
        r.map(|tx| self.wrap(tx))
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
        let point = osprofiler_core::is_active().then(|| self.fixed("commit", "COMMIT"));
        let r = self.inner.commit().await;
        if let Some(p) = point {
            finish(p, &r, |_| None);
        }
        r
    }

    async fn rollback(self) -> Result<(), DbErr> {
        let point = osprofiler_core::is_active().then(|| self.fixed("rollback", "ROLLBACK"));
        let r = self.inner.rollback().await;
        if let Some(p) = point {
            finish(p, &r, |_| None);
        }
        r
    }
}
