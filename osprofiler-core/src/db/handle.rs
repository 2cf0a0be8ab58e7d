//! The traced handle every adapter's `Traced` wrapper is made of.

use super::{DbError, DbEvent, DbFuture, DbPoint, DbStream, DbTracer, rows};
use std::future::Future;
use std::pin::Pin;

/// A boxed, sendable future: the type `sqlx`'s executor methods and sea-orm's `async_trait`
/// methods return.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A boxed, sendable stream: the type `sqlx`'s streaming executor methods return.
pub type BoxStream<'a, T> = Pin<Box<dyn futures_core::Stream<Item = T> + Send + 'a>>;

/// What an adapter's `Traced` wrapper holds: the library's pool, connection or transaction,
/// the [`DbTracer`] of its points, and the transaction depth (0 outside a transaction, 1 in
/// one, 2 and more in savepoints).
///
/// The handle does what is the same for every library: the builder settings of the target,
/// child handles for connections taken from a pool and for transactions, transaction points
/// (`begin`/`savepoint`, `commit`/`release_savepoint`, `rollback`/`rollback_to_savepoint`) at
/// the right depth, and running a call as a point with no cost when no trace is active. An
/// adapter adds what is its library's own: which calls are statements, how to read their text,
/// rows and errors. [`db_wrapper!`](crate::db_wrapper) makes the wrapper type around it.
///
/// ```
/// use osprofiler_core::db::{DbError, DbHandle, DbSystem};
/// # async fn demo() -> Result<(), std::io::Error> {
/// struct Conn;
/// impl Conn {
///     async fn begin(&self) -> Result<Conn, std::io::Error> { Ok(Conn) }
///     async fn commit(self) -> Result<(), std::io::Error> { Ok(()) }
/// }
/// let error = |e: &std::io::Error| DbError::new("std::io::Error", e.to_string());
///
/// let db = DbHandle::new(Conn, DbSystem::Sqlite).database("main");
/// let tx = db.tracer().begin(&db, db.inner().begin(), error).await?; // a `begin` point at depth 1
/// assert_eq!(tx.depth(), 1);
/// tx.commit(Conn::commit, error).await?;                              // a `commit` point
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct DbHandle<C> {
    inner: C,
    tracer: DbTracer,
    depth: u32,
}

impl<C> DbHandle<C> {
    /// A handle of `inner`, outside any transaction, for `system`.
    pub fn new(inner: C, system: impl Into<super::DbSystem>) -> Self {
        Self::with_tracer(inner, DbTracer::new(system))
    }

    /// A handle of `inner`, outside any transaction, recording through `tracer`.
    pub fn with_tracer(inner: C, tracer: DbTracer) -> Self {
        DbHandle {
            inner,
            tracer,
            depth: 0,
        }
    }

    /// Records the database name (`db.namespace`).
    pub fn database(mut self, name: impl Into<String>) -> Self {
        self.tracer = self.tracer.database(name);
        self
    }

    /// Records the server address (`db.server`, `host:port`; never put credentials here).
    pub fn server(mut self, server: impl Into<String>) -> Self {
        self.tracer = self.tracer.server(server);
        self
    }

    /// Records statements without bound values with their literals instead of `?`
    /// ([`DbTracer::keep_literals`]).
    pub fn keep_literals(mut self, keep: bool) -> Self {
        self.tracer = self.tracer.keep_literals(keep);
        self
    }

    /// The wrapped value: calls made on it are not traced.
    pub fn inner(&self) -> &C {
        &self.inner
    }

    /// The wrapped value, mutably.
    pub fn inner_mut(&mut self) -> &mut C {
        &mut self.inner
    }

    /// Unwraps.
    pub fn into_inner(self) -> C {
        self.inner
    }

    /// The wrapped value, mutably, and the tracer: for calls that borrow the one while the
    /// other records (a transaction begun on `&mut` connection).
    pub fn split_mut(&mut self) -> (&mut C, &DbTracer) {
        (&mut self.inner, &self.tracer)
    }

    /// The tracer of its points.
    pub fn tracer(&self) -> &DbTracer {
        &self.tracer
    }

    /// 0 outside a transaction, the transaction's depth inside one (2 and more: a savepoint).
    pub fn depth(&self) -> u32 {
        self.depth
    }

    /// A handle of `inner` (a connection from this pool, a transaction of this connection) at
    /// `depth`, recording as this one.
    pub fn child<U>(&self, inner: U, depth: u32) -> DbHandle<U> {
        DbHandle {
            inner,
            tracer: self.tracer.clone(),
            depth,
        }
    }

    /// Ends the transaction this handle holds with `commit` (a `commit` point, or
    /// `release_savepoint` in a savepoint); `commit` is the library's call on the transaction.
    pub async fn commit<F, E>(
        self,
        commit: impl FnOnce(C) -> F,
        error: fn(&E) -> DbError,
    ) -> Result<(), E>
    where
        F: Future<Output = Result<(), E>>,
    {
        let event = DbEvent::Commit { depth: self.depth };
        self.tracer
            .run(event, commit(self.inner), rows::none, error)
            .await
    }

    /// Ends the transaction this handle holds with `rollback` (a `rollback` point, or
    /// `rollback_to_savepoint` in a savepoint).
    pub async fn rollback<F, E>(
        self,
        rollback: impl FnOnce(C) -> F,
        error: fn(&E) -> DbError,
    ) -> Result<(), E>
    where
        F: Future<Output = Result<(), E>>,
    {
        let event = DbEvent::Rollback { depth: self.depth };
        self.tracer
            .run(event, rollback(self.inner), rows::none, error)
            .await
    }
}

impl DbTracer {
    /// Runs `fut`, the library's call that opens a transaction inside `parent` (a connection:
    /// `begin` at depth 1; a transaction: a `savepoint` one deeper), as that point, and hands
    /// the transaction back as a handle of its depth.
    pub async fn begin<P, U, E>(
        &self,
        parent: &DbHandle<P>,
        fut: impl Future<Output = Result<U, E>>,
        error: fn(&E) -> DbError,
    ) -> Result<DbHandle<U>, E> {
        self.begin_at(parent.depth + 1, fut, error).await
    }

    /// [`DbTracer::begin`] with the new transaction's `depth` given (for a parent that is
    /// borrowed by `fut`).
    pub async fn begin_at<U, E>(
        &self,
        depth: u32,
        fut: impl Future<Output = Result<U, E>>,
        error: fn(&E) -> DbError,
    ) -> Result<DbHandle<U>, E> {
        let inner = self
            .run(DbEvent::Begin { depth }, fut, rows::none, error)
            .await?;
        Ok(DbHandle {
            inner,
            tracer: self.clone(),
            depth,
        })
    }
}

impl DbPoint {
    /// `fut` run as this point, boxed as the library's own boxed futures are — or, when the
    /// point is inactive (no trace), `fut` itself: the wrapper then adds no allocation.
    #[inline]
    pub fn boxed<'a, T, E>(
        self,
        fut: BoxFuture<'a, Result<T, E>>,
        rows: fn(&T) -> Option<u64>,
        error: fn(&E) -> DbError,
    ) -> BoxFuture<'a, Result<T, E>>
    where
        T: Send + 'a,
        E: Send + 'a,
    {
        if !self.is_active() {
            return fut;
        }
        Box::pin(DbFuture::new(fut, self, rows, error))
    }

    /// `stream` recorded as this point (see [`DbStream::new`]), boxed — or, when the point is
    /// inactive, `stream` itself.
    #[inline]
    pub fn boxed_stream<'a, T, E>(
        self,
        stream: BoxStream<'a, Result<T, E>>,
        count: fn(&T) -> u64,
        error: fn(&E) -> DbError,
    ) -> BoxStream<'a, Result<T, E>>
    where
        T: Send + 'a,
        E: Send + 'a,
    {
        if !self.is_active() {
            return stream;
        }
        Box::pin(DbStream::new(stream, self, count, error))
    }

    /// The outcome of a call that opens a stream (a query whose rows are read later): the
    /// stream, recorded as this point until it ends; or the error, which stops the point.
    pub fn stream<S, T, E>(
        self,
        opened: Result<S, E>,
        count: fn(&T) -> u64,
        error: fn(&E) -> DbError,
    ) -> Result<DbStream<S, T, E>, E> {
        match opened {
            Ok(stream) => Ok(DbStream::new(stream, self, count, error)),
            Err(e) => {
                if self.is_active() {
                    self.err(error(&e));
                }
                Err(e)
            }
        }
    }
}

/// Declares an adapter's `Traced` wrapper around a [`DbHandle`]: the struct (with a private
/// field `handle`), `Debug`, `Clone`, and the methods every adapter's wrapper has —
/// `database`, `server`, `keep_literals`, `inner`, `inner_mut`, `into_inner` — plus private
/// `from_handle`, `handle` and `handle_mut` for the adapter's own methods. The adapter writes
/// its constructors and its library's traits.
///
/// ```
/// osprofiler_core::db_wrapper! {
///     /// A connection whose calls are `db` points.
///     pub struct Traced<C>;
///     /// Records statements without bound values with their literals instead of `?`.
///     keep_literals;
/// }
///
/// impl<C> Traced<C> {
///     /// Wraps a connection.
///     pub fn new(conn: C) -> Self {
///         Self::from_handle(osprofiler_core::db::DbHandle::new(conn, "sqlite"))
///     }
/// }
///
/// let db = Traced::new(42).database("main");
/// assert_eq!(*db.inner(), 42);
/// ```
#[macro_export]
macro_rules! db_wrapper {
    (
        $(#[$attr:meta])*
        $vis:vis struct $name:ident<$c:ident>;
        $(#[$keep_doc:meta])*
        keep_literals;
    ) => {
        $(#[$attr])*
        $vis struct $name<$c> {
            handle: $crate::db::DbHandle<$c>,
        }

        impl<$c: ::core::fmt::Debug> ::core::fmt::Debug for $name<$c> {
            fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                f.debug_struct(::core::stringify!($name))
                    .field("inner", self.handle.inner())
                    .field("tracer", self.handle.tracer())
                    .field("depth", &self.handle.depth())
                    .finish()
            }
        }

        impl<$c: ::core::clone::Clone> ::core::clone::Clone for $name<$c> {
            fn clone(&self) -> Self {
                $name {
                    handle: ::core::clone::Clone::clone(&self.handle),
                }
            }
        }

        #[allow(dead_code)] // not every adapter uses every accessor
        impl<$c> $name<$c> {
            /// Records the database name (`db.namespace`).
            pub fn database(self, name: impl ::core::convert::Into<::std::string::String>) -> Self {
                $name {
                    handle: self.handle.database(name),
                }
            }

            /// Records the server address (`db.server`, `host:port`; never put credentials
            /// here).
            pub fn server(self, server: impl ::core::convert::Into<::std::string::String>) -> Self {
                $name {
                    handle: self.handle.server(server),
                }
            }

            $(#[$keep_doc])*
            pub fn keep_literals(self, keep: bool) -> Self {
                $name {
                    handle: self.handle.keep_literals(keep),
                }
            }

            /// The wrapped value: calls made on it are not traced.
            pub fn inner(&self) -> &$c {
                self.handle.inner()
            }

            /// The wrapped value, mutably: calls made on it are not traced.
            pub fn inner_mut(&mut self) -> &mut $c {
                self.handle.inner_mut()
            }

            /// Unwraps.
            pub fn into_inner(self) -> $c {
                self.handle.into_inner()
            }

            fn from_handle(handle: $crate::db::DbHandle<$c>) -> Self {
                $name { handle }
            }

            fn handle(&self) -> &$crate::db::DbHandle<$c> {
                &self.handle
            }

            fn handle_mut(&mut self) -> &mut $crate::db::DbHandle<$c> {
                &mut self.handle
            }
        }
    };
}
