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
//! Every executor method called through the wrapper inside a trace is a `db` point with the
//! info every adapter records (the table in [`osprofiler_core::db`]): `api` `query` (`prepare`
//! for `prepare_with`), the SQL when `trace_sql` is on — with every literal replaced by `?`
//! when no value is bound to it (`sqlx::raw_sql`, a `sqlx::query` without binds) unless
//! [`Traced::keep_literals`] is set — `params` when `trace_sql_params` is on (the bound values,
//! e.g. `[7, "alice", null]`: sqlx has already encoded PostgreSQL and MySQL arguments to the
//! wire format, so the common types are decoded back; SQLite's arguments are shown as sqlx
//! prints them), and the rows (returned, streamed or affected) or the error with its SQLSTATE
//! when it stops. Pool `acquire`, `begin`, `commit` and `rollback` are points too, and so are
//! nested transactions (`savepoint`, `release_savepoint`, `rollback_to_savepoint`). With no
//! active trace the wrapper hands the query to sqlx unchanged: no box, no copy.
//!
//! [sqlx]: sqlx

#![cfg_attr(docsrs, feature(doc_cfg))]

mod params;

use futures_util::future::BoxFuture;
use futures_util::stream::BoxStream;
use osprofiler_core::db::{self, DbError, DbEvent, DbHandle, DbPoint, DbSystem, DbTracer, rows};
use sqlx::database::Database;
use sqlx::{Arguments, Either, Error, Execute, Executor, Pool, Transaction};
use sqlx_core::sql_str::SqlStr;
use std::fmt;
use std::ops::{Deref, DerefMut};

/// The databases the wrapper knows: their system name and how to count affected rows.
#[diagnostic::on_unimplemented(
    message = "osprofiler-sqlx is built without support for `{Self}`",
    label = "no `TracedDatabase` for `{Self}`",
    note = "enable the osprofiler-sqlx feature of that database: `postgres`, `mysql` or `sqlite` \
            (osprofiler-sqlx = {{ version = \"…\", features = [\"sqlite\"] }})"
)]
pub trait TracedDatabase: Database {
    /// The database system (`db.system`).
    const SYSTEM: DbSystem;
    /// Whether the database's error codes are SQLSTATEs (`db.sqlstate`) or its own (`db.code`).
    const SQLSTATE: bool;
    /// Rows affected by a statement.
    fn rows_affected(result: &Self::QueryResult) -> u64;
}

#[cfg(feature = "postgres")]
impl TracedDatabase for sqlx::Postgres {
    const SYSTEM: DbSystem = DbSystem::PostgreSql;
    const SQLSTATE: bool = true;
    fn rows_affected(r: &sqlx::postgres::PgQueryResult) -> u64 {
        r.rows_affected()
    }
}

#[cfg(feature = "sqlite")]
impl TracedDatabase for sqlx::Sqlite {
    const SYSTEM: DbSystem = DbSystem::Sqlite;
    const SQLSTATE: bool = false;
    fn rows_affected(r: &sqlx::sqlite::SqliteQueryResult) -> u64 {
        r.rows_affected()
    }
}

#[cfg(feature = "mysql")]
impl TracedDatabase for sqlx::MySql {
    const SYSTEM: DbSystem = DbSystem::MySql;
    const SQLSTATE: bool = true;
    fn rows_affected(r: &sqlx::mysql::MySqlQueryResult) -> u64 {
        r.rows_affected()
    }
}

osprofiler_core::db_wrapper! {
    /// A sqlx pool, transaction or connection whose calls are `db` points. See the crate docs.
    pub struct Traced<T>;
    /// Records SQL without bound values (`sqlx::raw_sql`, a query without binds) with its
    /// literals instead of `?`.
    keep_literals;
}

impl<DB: TracedDatabase> Traced<Pool<DB>> {
    /// Wraps a pool.
    pub fn new(pool: Pool<DB>) -> Self {
        Self::from_handle(DbHandle::new(pool, DB::SYSTEM))
    }

    /// A traced connection from the pool (`acquire` is a point).
    pub async fn acquire(&self) -> Result<Traced<sqlx::pool::PoolConnection<DB>>, Error> {
        let fut = self.inner().acquire();
        let tracer = self.handle().tracer();
        let conn = tracer
            .run(DbEvent::Acquire, fut, rows::none, error_info::<DB>)
            .await?;
        Ok(Traced::from_handle(self.handle().child(conn, 0)))
    }

    /// A traced transaction (`begin` is a point; so are `commit` and `rollback`).
    pub async fn begin(&self) -> Result<Traced<Transaction<'static, DB>>, Error> {
        let fut = self.inner().begin();
        let tracer = self.handle().tracer();
        let tx = tracer.begin(self.handle(), fut, error_info::<DB>).await?;
        Ok(Traced::from_handle(tx))
    }
}

impl<T> Traced<T> {
    /// Wraps a single connection (`Traced::connection(&mut conn)`), or anything that
    /// dereferences to one.
    pub fn connection<DB: TracedDatabase>(inner: T) -> Self
    where
        T: DerefMut<Target = DB::Connection>,
    {
        Self::from_handle(DbHandle::new(inner, DB::SYSTEM))
    }
}

impl<'t, DB: TracedDatabase> Traced<Transaction<'t, DB>> {
    /// A nested transaction: a savepoint (a point, api `savepoint`).
    pub async fn begin(&mut self) -> Result<Traced<Transaction<'_, DB>>, Error> {
        let depth = self.handle().depth() + 1;
        let (tx, tracer) = self.handle_mut().split_mut();
        let fut = sqlx::Acquire::begin(tx);
        Ok(Traced::from_handle(
            tracer.begin_at(depth, fut, error_info::<DB>).await?,
        ))
    }

    /// Commits (a point, api `commit`; `release_savepoint` for a nested transaction).
    pub async fn commit(self) -> Result<(), Error> {
        self.handle
            .commit(Transaction::commit, error_info::<DB>)
            .await
    }

    /// Rolls back (a point, api `rollback`; `rollback_to_savepoint` for a nested transaction).
    pub async fn rollback(self) -> Result<(), Error> {
        self.handle
            .rollback(Transaction::rollback, error_info::<DB>)
            .await
    }
}

/// The error info of a sqlx error: the database's message, and its SQLSTATE (PostgreSQL,
/// MySQL) or result code (SQLite).
pub fn error_info<DB: TracedDatabase>(e: &Error) -> DbError {
    let db = e.as_database_error();
    let code = db.and_then(|d| d.code()).map(|c| c.into_owned());
    let (sqlstate, code) = if DB::SQLSTATE {
        (code, None)
    } else {
        (None, code)
    };
    DbError {
        original_exception: db.map(|d| d.message().to_owned()),
        sqlstate,
        code,
        ..DbError::new("sqlx_core::error::Error", e.to_string())
    }
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
fn open<'q, DB, E>(tracer: &DbTracer, mut query: E) -> (DbPoint, Captured<DB>)
where
    DB: Database,
    E: Execute<'q, DB>,
    DB::Arguments: fmt::Debug + Clone + Send + Sync + 'static,
{
    let arguments = query.take_arguments();
    let statement = query.statement().cloned();
    let persistent = query.persistent();
    let sql = query.sql();
    let args = arguments.as_ref().ok().and_then(Option::as_ref);
    let source = |with_params: bool| {
        let binds = args.map_or(0, Arguments::len);
        let params = (with_params && binds > 0)
            .then(|| args.map(|a| params::readable(format!("{a:?}"))))
            .flatten();
        // A clone (buffers copied, nothing formatted): the worker hashes it for `values`.
        let values = args
            .filter(|_| binds > 0 && db::values_recorded())
            .map(|a| db::BoundValues::owned(a.clone()));
        Some(
            db::Sql::new(sql.as_str().into(), binds)
                .params(params)
                .values(values),
        )
    };
    let point = tracer.start(DbEvent::Query(&source));
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

/// One executor method: with no trace active the query goes to sqlx as it came; otherwise the
/// point is opened first (its text is read before sqlx takes the query) and the call recorded
/// as it (`boxed`: a future, `boxed_stream`: a stream).
macro_rules! traced {
    ($this:ident = $self_:expr, $inner:expr, $method:ident($query:ident), $kind:ident $rows:expr, $db:ty) => {{
        let $this = $self_;
        if !osprofiler_core::is_active() {
            return $inner.$method($query);
        }
        let (point, $query) = open($this.handle().tracer(), $query);
        point.$kind($inner.$method($query), $rows, error_info::<$db>)
    }};
}

/// The executor methods, each a `db` point; `$inner` is the sqlx executor the wrapper delegates
/// to. With no trace active each hands the query to sqlx as it came.
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
            traced!($self = self, $inner, fetch_many(query), boxed_stream either_rows::<$db>, $db)
        }

        fn fetch<'e, 'q: 'e, E>(
            self,
            query: E,
        ) -> BoxStream<'e, Result<<$db as Database>::Row, Error>>
        where
            'c: 'e,
            E: 'q + Execute<'q, $db>,
        {
            traced!($self = self, $inner, fetch(query), boxed_stream rows::each, $db)
        }

        fn execute_many<'e, 'q: 'e, E>(
            self,
            query: E,
        ) -> BoxStream<'e, Result<<$db as Database>::QueryResult, Error>>
        where
            'c: 'e,
            E: 'q + Execute<'q, $db>,
        {
            traced!($self = self, $inner, execute_many(query), boxed_stream <$db as TracedDatabase>::rows_affected, $db)
        }

        fn execute<'e, 'q: 'e, E>(
            self,
            query: E,
        ) -> BoxFuture<'e, Result<<$db as Database>::QueryResult, Error>>
        where
            'c: 'e,
            E: 'q + Execute<'q, $db>,
        {
            traced!($self = self, $inner, execute(query), boxed |r| Some(<$db as TracedDatabase>::rows_affected(r)), $db)
        }

        fn fetch_all<'e, 'q: 'e, E>(
            self,
            query: E,
        ) -> BoxFuture<'e, Result<Vec<<$db as Database>::Row>, Error>>
        where
            'c: 'e,
            E: 'q + Execute<'q, $db>,
        {
            traced!($self = self, $inner, fetch_all(query), boxed rows::len, $db)
        }

        fn fetch_one<'e, 'q: 'e, E>(
            self,
            query: E,
        ) -> BoxFuture<'e, Result<<$db as Database>::Row, Error>>
        where
            'c: 'e,
            E: 'q + Execute<'q, $db>,
        {
            traced!($self = self, $inner, fetch_one(query), boxed rows::one, $db)
        }

        fn fetch_optional<'e, 'q: 'e, E>(
            self,
            query: E,
        ) -> BoxFuture<'e, Result<Option<<$db as Database>::Row>, Error>>
        where
            'c: 'e,
            E: 'q + Execute<'q, $db>,
        {
            traced!($self = self, $inner, fetch_optional(query), boxed rows::optional, $db)
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
            let source = |_: bool| Some(db::Sql::new(sql.as_str().into(), 0));
            let point = $self.handle().tracer().start(DbEvent::Prepare(&source));
            point.boxed(
                $inner.prepare_with(sql, parameters),
                rows::none,
                error_info::<$db>,
            )
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
    DB::Arguments: fmt::Debug + Clone + Send + Sync + 'static,
    for<'x> &'x mut DB::Connection: Executor<'x, Database = DB>,
{
    traced_executor!(DB, this => this.inner());
}

impl<'c, T> Executor<'c> for &'c mut Traced<T>
where
    T: DerefMut + Send + fmt::Debug,
    T::Target: sqlx::Connection,
    <T::Target as sqlx::Connection>::Database: TracedDatabase,
    <<T::Target as sqlx::Connection>::Database as Database>::Arguments:
        fmt::Debug + Clone + Send + Sync + 'static,
    for<'x> &'x mut T::Target: Executor<'x, Database = <T::Target as sqlx::Connection>::Database>,
{
    traced_executor!(<T::Target as sqlx::Connection>::Database, this => &mut **this.inner_mut());
}

impl<T: Deref> Deref for Traced<T> {
    type Target = T::Target;
    fn deref(&self) -> &T::Target {
        self.inner()
    }
}

// The README's examples are compiled (and run, unless `no_run`) as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
