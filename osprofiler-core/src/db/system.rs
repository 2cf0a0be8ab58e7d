//! The database system a `db` point talks to.

use super::Dialect;
use std::fmt;

/// The database system of a traced connection, recorded as `db.system` (OpenTelemetry's
/// names). Adapters name it once from their library's backend type; it also gives the
/// [`Dialect`] raw SQL is sanitized in.
///
/// A name converts into it (`"postgres"` and `"postgresql"` are one system, so are `"mysql"`
/// and `"mariadb"`); a name it does not know is kept as it is.
///
/// ```
/// use osprofiler_core::db::{DbSystem, Dialect};
/// assert_eq!(DbSystem::from("postgres"), DbSystem::PostgreSql);
/// assert_eq!(DbSystem::from("mariadb").as_str(), "mysql");
/// assert_eq!(DbSystem::from("oracle"), DbSystem::Other("oracle"));
/// assert_eq!(DbSystem::Sqlite.dialect(), Dialect::Sqlite);
/// assert_eq!(DbSystem::Sqlite, "sqlite");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DbSystem {
    /// PostgreSQL (`postgresql`).
    PostgreSql,
    /// MySQL or MariaDB (`mysql`).
    MySql,
    /// SQLite (`sqlite`).
    Sqlite,
    /// A system this crate has no name for (recorded as given).
    Other(&'static str),
}

impl DbSystem {
    /// The `db.system` name: `postgresql`, `mysql`, `sqlite`, or the name given.
    pub const fn as_str(self) -> &'static str {
        match self {
            DbSystem::PostgreSql => "postgresql",
            DbSystem::MySql => "mysql",
            DbSystem::Sqlite => "sqlite",
            DbSystem::Other(name) => name,
        }
    }

    /// The dialect its raw SQL is read in (standard SQL quoting for a system not known).
    pub const fn dialect(self) -> Dialect {
        match self {
            DbSystem::MySql => Dialect::MySql,
            DbSystem::Sqlite => Dialect::Sqlite,
            DbSystem::PostgreSql | DbSystem::Other(_) => Dialect::Postgres,
        }
    }

    /// The system of a name as URL schemes and libraries spell it (case-insensitive):
    /// `postgres`/`postgresql`/`pg`, `mysql`/`mariadb`, `sqlite`/`sqlite3`; `None` for another.
    pub fn parse(name: &str) -> Option<DbSystem> {
        let known = [
            ("postgresql", DbSystem::PostgreSql),
            ("postgres", DbSystem::PostgreSql),
            ("pg", DbSystem::PostgreSql),
            ("mysql", DbSystem::MySql),
            ("mariadb", DbSystem::MySql),
            ("sqlite", DbSystem::Sqlite),
            ("sqlite3", DbSystem::Sqlite),
        ];
        known
            .into_iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, s)| s)
    }
}

impl From<&'static str> for DbSystem {
    /// A known name's system ([`DbSystem::parse`]), else [`DbSystem::Other`] with the name.
    fn from(name: &'static str) -> Self {
        DbSystem::parse(name).unwrap_or(DbSystem::Other(name))
    }
}

impl fmt::Display for DbSystem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl PartialEq<&str> for DbSystem {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl PartialEq<str> for DbSystem {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}
