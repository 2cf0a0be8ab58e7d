//! # osprofiler-sqlx
//!
//! OSProfiler `db` points for [sqlx] 0.9: wrap the pool once and use it wherever sqlx takes an
//! executor.
//!
//! ```no_run
//! # async fn demo() -> Result<(), sqlx::Error> {
//! let pool = sqlx::PgPool::connect("postgres://postgres@127.0.0.1/test").await?;
//! let db = osprofiler_sqlx::Traced::new(pool).database("test").server("127.0.0.1:5432"); // the one line
//!
//! let rows = sqlx::query("SELECT $1::int4").bind(7).fetch_all(&db).await?;
//! let mut tx = db.begin().await?;                       // a traced transaction
//! sqlx::query("SELECT 1").execute(&mut tx).await?;      // usable as `&mut tx`
//! tx.commit().await?;
//! # Ok(()) }
//! ```
//!
//! Every executor method called through the wrapper inside a trace is a `db` point named after
//! the method (`fetch_all`, `execute`, ...), with `{"db": {"api", "system", "namespace",
//! "server"}}`, the SQL text when `trace_sql` is on (raw SQL from `sqlx::raw_sql` sanitized),
//! `params` when `trace_sql_params` is on (the bound values, e.g. `[7, "alice", null]`: sqlx
//! has already encoded PostgreSQL and MySQL arguments to the wire format, so the common types
//! are decoded back; SQLite's arguments are shown as sqlx prints them), and
//! `{"db": {"rows": n}}` or the error when it stops.
//! Pool `acquire`, `begin`, `commit` and `rollback` are points too. With no active trace the
//! wrapper hands the query to sqlx unchanged: no box, no copy.
//!
//! [sqlx]: sqlx

mod params;

use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use futures_util::stream::BoxStream;
use osprofiler_core::db::{DbError, DbPoint, DbStream, DbTarget, SqlText};
use sqlx::database::Database;
use sqlx::{Either, Error, Execute, Executor, Pool, Transaction};
use sqlx_core::sql_str::SqlStr;
use std::fmt;
use std::ops::{Deref, DerefMut};
use std::sync::Arc;

/// The databases the wrapper knows: their system name and how to count affected rows.
pub trait TracedDatabase: Database {
    /// OpenTelemetry `db.system`: `postgresql`, `sqlite`, `mysql`.
    const SYSTEM: &'static str;
    /// Rows affected by a statement.
    fn rows_affected(result: &Self::QueryResult) -> u64;
}

#[cfg(feature = "postgres")]
impl TracedDatabase for sqlx::Postgres {
    const SYSTEM: &'static str = "postgresql";
    fn rows_affected(r: &sqlx::postgres::PgQueryResult) -> u64 {
        r.rows_affected()
    }
}

#[cfg(feature = "sqlite")]
impl TracedDatabase for sqlx::Sqlite {
    const SYSTEM: &'static str = "sqlite";
    fn rows_affected(r: &sqlx::sqlite::SqliteQueryResult) -> u64 {
        r.rows_affected()
    }
}

#[cfg(feature = "mysql")]
impl TracedDatabase for sqlx::MySql {
    const SYSTEM: &'static str = "mysql";
    fn rows_affected(r: &sqlx::mysql::MySqlQueryResult) -> u64 {
        r.rows_affected()
    }
}

/// Settings shared by a traced pool and what it hands out.
#[derive(Debug, Clone)]
struct Settings {
    target: Arc<DbTarget>,
}

/// A sqlx pool, transaction or connection whose calls are `db` points. See the crate docs.
pub struct Traced<T> {
    inner: T,
    settings: Settings,
}

impl<T: fmt::Debug> fmt::Debug for Traced<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Traced")
            .field("inner", &self.inner)
            .field("target", &self.settings.target)
            .finish()
    }
}

impl<T: Clone> Clone for Traced<T> {
    fn clone(&self) -> Self {
        Traced {
            inner: self.inner.clone(),
            settings: self.settings.clone(),
        }
    }
}

impl<DB: TracedDatabase> Traced<Pool<DB>> {
    /// Wraps a pool.
    pub fn new(pool: Pool<DB>) -> Self {
        Traced {
            inner: pool,
            settings: Settings {
                target: Arc::new(DbTarget::new(DB::SYSTEM)),
            },
        }
    }

    /// A traced connection from the pool (`acquire` is a point).
    pub async fn acquire(&self) -> Result<Traced<sqlx::pool::PoolConnection<DB>>, Error> {
        let conn = run(
            "acquire",
            &self.settings,
            None,
            self.inner.acquire(),
            |_| None,
        )
        .await?;
        Ok(Traced {
            inner: conn,
            settings: self.settings.clone(),
        })
    }

    /// A traced transaction (`begin` is a point; so are `commit` and `rollback`).
    pub async fn begin(&self) -> Result<Traced<Transaction<'static, DB>>, Error> {
        let tx = run(
            "begin",
            &self.settings,
            Some("BEGIN"),
            self.inner.begin(),
            |_| None,
        )
        .await?;
        Ok(Traced {
            inner: tx,
            settings: self.settings.clone(),
        })
    }
}

impl<T> Traced<T> {
    /// Wraps a single connection (`Traced::connection(&mut conn)`), or anything that
    /// dereferences to one.
    pub fn connection<DB: TracedDatabase>(inner: T) -> Self
    where
        T: DerefMut<Target = DB::Connection>,
    {
        Traced {
            inner,
            settings: Settings {
                target: Arc::new(DbTarget::new(DB::SYSTEM)),
            },
        }
    }

    /// Records the database name (`db.namespace`).
    pub fn database(mut self, name: impl Into<String>) -> Self {
        self.settings.target = Arc::new((*self.settings.target).clone().namespace(name));
        self
    }

    /// Records the server address (`db.server`, `host:port`; never credentials).
    pub fn server(mut self, server: impl Into<String>) -> Self {
        self.settings.target = Arc::new((*self.settings.target).clone().server(server));
        self
    }

    /// The wrapped value: calls made on it are not traced.
    pub fn inner(&self) -> &T {
        &self.inner
    }

    /// The wrapped value, mutably.
    pub fn inner_mut(&mut self) -> &mut T {
        &mut self.inner
    }

    /// Unwraps.
    pub fn into_inner(self) -> T {
        self.inner
    }
}

impl<DB: TracedDatabase> Traced<Transaction<'static, DB>> {
    /// Commits (a point, api `commit`).
    pub async fn commit(self) -> Result<(), Error> {
        let Traced { inner, settings } = self;
        run("commit", &settings, Some("COMMIT"), inner.commit(), |_| {
            None
        })
        .await
    }

    /// Rolls back (a point, api `rollback`).
    pub async fn rollback(self) -> Result<(), Error> {
        let Traced { inner, settings } = self;
        run(
            "rollback",
            &settings,
            Some("ROLLBACK"),
            inner.rollback(),
            |_| None,
        )
        .await
    }
}

/// Runs `fut` as a point (when a trace is active) with a fixed statement.
async fn run<T, F>(
    api: &'static str,
    settings: &Settings,
    sql: Option<&'static str>,
    fut: F,
    rows: impl FnOnce(&T) -> Option<u64>,
) -> Result<T, Error>
where
    F: Future<Output = Result<T, Error>>,
{
    if !osprofiler_core::is_active() {
        return fut.await;
    }
    let point = DbPoint::start(
        api,
        &settings.target,
        true,
        || sql.map(|s| SqlText::Raw(Arc::from(s))),
        || None,
    );
    let r = fut.await;
    finish(point, &r, rows);
    r
}

/// The error info of a sqlx error: the database's message and SQLSTATE when there is one.
pub fn error_info(e: &Error) -> DbError {
    let db = e.as_database_error();
    DbError {
        etype: "sqlx_core::error::Error",
        message: e.to_string(),
        original_exception: db.map(|d| d.message().to_owned()),
        sqlstate: db.and_then(|d| d.code()).map(|c| c.into_owned()),
    }
}

fn finish<T>(point: DbPoint, result: &Result<T, Error>, rows: impl FnOnce(&T) -> Option<u64>) {
    point.finish(result, rows, error_info);
}

/// A query whose SQL text, arguments and statement were taken out up front, so that the text
/// can be recorded before sqlx consumes it.
struct Captured<DB: Database> {
    sql: SqlStr,
    statement: Option<DB::Statement>,
    arguments: Option<Result<Option<DB::Arguments>, sqlx::error::BoxDynError>>,
    persistent: bool,
}

impl<'q, DB: Database> Execute<'q, DB> for Captured<DB> {
    fn sql(self) -> SqlStr {
        self.sql
    }
    fn statement(&self) -> Option<&DB::Statement> {
        self.statement.as_ref()
    }
    fn take_arguments(&mut self) -> Result<Option<DB::Arguments>, sqlx::error::BoxDynError> {
        self.arguments.take().unwrap_or(Ok(None))
    }
    fn persistent(&self) -> bool {
        self.persistent
    }
}

/// Opens the point for `query` and returns the query to hand to sqlx.
fn open<'q, DB, E>(api: &'static str, settings: &Settings, mut query: E) -> (DbPoint, Captured<DB>)
where
    DB: Database,
    E: Execute<'q, DB>,
    DB::Arguments: fmt::Debug,
{
    let arguments = query.take_arguments();
    let statement = query.statement().cloned();
    let persistent = query.persistent();
    let sql = query.sql();
    let point = DbPoint::start(
        api,
        &settings.target,
        false,
        || {
            let text: Arc<str> = Arc::from(sql.as_str());
            // A query without arguments may be raw SQL with inline literals: sanitize it.
            Some(if matches!(arguments, Ok(Some(_))) {
                SqlText::Parameterized(text)
            } else {
                SqlText::Raw(text)
            })
        },
        || match &arguments {
            Ok(Some(args)) => Some(params::readable(format!("{args:?}"))),
            _ => None,
        },
    );
    (
        point,
        Captured {
            sql,
            statement,
            arguments: Some(arguments),
            persistent,
        },
    )
}

fn either_rows<DB: TracedDatabase>(v: &Either<DB::QueryResult, DB::Row>) -> u64 {
    match v {
        Either::Left(r) => DB::rows_affected(r),
        Either::Right(_) => 1,
    }
}

/// The executor methods, each a point named after itself; `$inner` is the sqlx executor the
/// wrapper delegates to.
macro_rules! traced_executor {
    ($db:ty, $self:ident => $inner:expr) => {
        type Database = $db;

        fn fetch_many<'e, 'q: 'e, E>(
            self,
            query: E,
        ) -> BoxStream<
            'e,
            Result<Either<<$db as Database>::QueryResult, <$db as Database>::Row>, Error>,
        >
        where
            'c: 'e,
            E: 'q + Execute<'q, $db>,
        {
            let $self = self;
            if !osprofiler_core::is_active() {
                return $inner.fetch_many(query);
            }
            let (point, query) = open("fetch_many", &$self.settings, query);
            let inner = $inner.fetch_many(query);
            Box::pin(DbStream::new(
                inner,
                Some(point),
                either_rows::<$db>,
                error_info,
            ))
        }

        fn fetch<'e, 'q: 'e, E>(
            self,
            query: E,
        ) -> BoxStream<'e, Result<<$db as Database>::Row, Error>>
        where
            'c: 'e,
            E: 'q + Execute<'q, $db>,
        {
            let $self = self;
            if !osprofiler_core::is_active() {
                return $inner.fetch(query);
            }
            let (point, query) = open("fetch", &$self.settings, query);
            let inner = $inner.fetch(query);
            Box::pin(DbStream::new(inner, Some(point), |_| 1, error_info))
        }

        fn execute_many<'e, 'q: 'e, E>(
            self,
            query: E,
        ) -> BoxStream<'e, Result<<$db as Database>::QueryResult, Error>>
        where
            'c: 'e,
            E: 'q + Execute<'q, $db>,
        {
            let $self = self;
            if !osprofiler_core::is_active() {
                return $inner.execute_many(query);
            }
            let (point, query) = open("execute_many", &$self.settings, query);
            let inner = $inner.execute_many(query);
            Box::pin(DbStream::new(
                inner,
                Some(point),
                <$db as TracedDatabase>::rows_affected,
                error_info,
            ))
        }

        fn execute<'e, 'q: 'e, E>(
            self,
            query: E,
        ) -> BoxFuture<'e, Result<<$db as Database>::QueryResult, Error>>
        where
            'c: 'e,
            E: 'q + Execute<'q, $db>,
        {
            let $self = self;
            if !osprofiler_core::is_active() {
                return $inner.execute(query);
            }
            let (point, query) = open("execute", &$self.settings, query);
            let fut = $inner.execute(query);
            Box::pin(fut.map(move |r| {
                finish(point, &r, |q| {
                    Some(<$db as TracedDatabase>::rows_affected(q))
                });
                r
            }))
        }

        fn fetch_all<'e, 'q: 'e, E>(
            self,
            query: E,
        ) -> BoxFuture<'e, Result<Vec<<$db as Database>::Row>, Error>>
        where
            'c: 'e,
            E: 'q + Execute<'q, $db>,
        {
            let $self = self;
            if !osprofiler_core::is_active() {
                return $inner.fetch_all(query);
            }
            let (point, query) = open("fetch_all", &$self.settings, query);
            let fut = $inner.fetch_all(query);
            Box::pin(fut.map(move |r| {
                finish(point, &r, |rows| Some(rows.len() as u64));
                r
            }))
        }

        fn fetch_one<'e, 'q: 'e, E>(
            self,
            query: E,
        ) -> BoxFuture<'e, Result<<$db as Database>::Row, Error>>
        where
            'c: 'e,
            E: 'q + Execute<'q, $db>,
        {
            let $self = self;
            if !osprofiler_core::is_active() {
                return $inner.fetch_one(query);
            }
            let (point, query) = open("fetch_one", &$self.settings, query);
            let fut = $inner.fetch_one(query);
            Box::pin(fut.map(move |r| {
                finish(point, &r, |_| Some(1));
                r
            }))
        }

        fn fetch_optional<'e, 'q: 'e, E>(
            self,
            query: E,
        ) -> BoxFuture<'e, Result<Option<<$db as Database>::Row>, Error>>
        where
            'c: 'e,
            E: 'q + Execute<'q, $db>,
        {
            let $self = self;
            if !osprofiler_core::is_active() {
                return $inner.fetch_optional(query);
            }
            let (point, query) = open("fetch_optional", &$self.settings, query);
            let fut = $inner.fetch_optional(query);
            Box::pin(fut.map(move |r| {
                finish(point, &r, |row| Some(u64::from(row.is_some())));
                r
            }))
        }

        fn prepare_with<'e>(
            self,
            sql: SqlStr,
            parameters: &'e [<$db as Database>::TypeInfo],
        ) -> BoxFuture<'e, Result<<$db as Database>::Statement, Error>>
        where
            'c: 'e,
        {
            let $self = self;
            if !osprofiler_core::is_active() {
                return $inner.prepare_with(sql, parameters);
            }
            let text: Arc<str> = Arc::from(sql.as_str());
            let point = DbPoint::start(
                "prepare",
                &$self.settings.target,
                false,
                || Some(SqlText::Parameterized(text)),
                || None,
            );
            let fut = $inner.prepare_with(sql, parameters);
            Box::pin(fut.map(move |r| {
                finish(point, &r, |_| None);
                r
            }))
        }

        fn describe<'e>(
            self,
            sql: SqlStr,
        ) -> BoxFuture<'e, Result<sqlx_core::describe::Describe<$db>, Error>>
        where
            'c: 'e,
        {
            let $self = self;
            $inner.describe(sql)
        }
    };
}

impl<'c, DB> Executor<'c> for &'c Traced<Pool<DB>>
where
    DB: TracedDatabase,
    DB::Arguments: fmt::Debug,
    for<'x> &'x mut DB::Connection: Executor<'x, Database = DB>,
{
    traced_executor!(DB, this => &this.inner);
}

impl<'c, T> Executor<'c> for &'c mut Traced<T>
where
    T: DerefMut + Send + fmt::Debug,
    T::Target: sqlx::Connection,
    <T::Target as sqlx::Connection>::Database: TracedDatabase,
    <<T::Target as sqlx::Connection>::Database as Database>::Arguments: fmt::Debug,
    for<'x> &'x mut T::Target: Executor<'x, Database = <T::Target as sqlx::Connection>::Database>,
{
    traced_executor!(<T::Target as sqlx::Connection>::Database, this => &mut *this.inner);
}

impl<T: Deref> Deref for Traced<T> {
    type Target = T::Target;
    fn deref(&self) -> &T::Target {
        &self.inner
    }
}
