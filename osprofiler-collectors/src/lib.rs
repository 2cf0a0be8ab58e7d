//! Collector drivers for [osprofiler-rs](osprofiler_core): where trace points are stored and
//! read back, chosen by a connection string as in Python OSProfiler.
//!
//! | connection string | driver | feature |
//! |---|---|---|
//! | `sqlite://<path>`, `sqlite://:memory:` | [`SqlDriver`], the embedded default: no server | `sqlite` |
//! | `postgresql://user@host:port/db` (`postgres://`) | [`SqlDriver`] | `postgres` |
//! | `mysql://user@host:port/db` (`mariadb://`) | [`SqlDriver`] | `mysql` |
//! | `redis://[:password@]host[:port][/db]` | [`RedisDriver`], byte-compatible with Python's | `redis` |
//! | `redissentinel://[:password@]host:port` | [`RedisDriver`] on the primary a Redis Sentinel names (`sentinel_service_name`) | `redis` |
//! | `mongodb://[user:pass@]host[:port][,…][/?options]` | [`MongoDriver`], Python's layout (database `osprofiler`) | `mongodb` |
//! | `messaging://[user:pass@host:port/vhost]` | [`MessagingDriver`]: oslo.messaging notifications on RabbitMQ (the Ceilometer path) | `messaging` |
//! | `otlp://host:port[/path]`, `otlp+https://…`, `otlp://` (from `OTEL_EXPORTER_OTLP_*`) | [`OtlpDriver`]: spans over OTLP/HTTP(S) (Jaeger, Tempo, the OTel Collector), headers for authentication; export only | `otlp` |
//! | `jaeger://…` | an error pointing to OTLP (the Jaeger client protocol is retired) | |
//! | `elasticsearch://[user:pass@]host[:port][?index=…]`, `elasticsearch+https://…` | [`ElasticsearchDriver`]: Elasticsearch 7.8+ / OpenSearch, Python's indexes, exact `base_id` matches, `_bulk` writes | `elasticsearch` |
//!
//! Call [`register`] once (or use [`init_from_conf`] / [`open`], which do) so that
//! `osprofiler_core::init_from_conf` finds these schemes.
//!
//! Drivers are called by the core's queue notifier on its own thread: a slow or unreachable
//! collector never blocks traced code. Messages wait in the bounded queue and are retried;
//! network drivers connect lazily and reconnect after errors.
//!
//! ```
//! use osprofiler_core::{self as osp, ProfilerConfig, Trace};
//! let path = std::env::temp_dir().join(format!("osp-doc-{}.db", std::process::id()));
//! let conf = ProfilerConfig::builder()
//!     .enabled(true)
//!     .connection_string(format!("sqlite://{}", path.display()))
//!     .build();
//! let guard = osprofiler_collectors::init_from_conf(&conf, "demo", "api", None).unwrap();
//!
//! osp::init("SECRET_KEY", None, None);
//! let base_id = osp::get().unwrap().base_id().to_string();
//! drop(Trace::new("db", || osp::info!({"db": {"statement": "SELECT 1"}})));
//! osp::clean();
//! assert!(guard.flush(std::time::Duration::from_secs(5)));
//!
//! let db = osprofiler_collectors::open(&conf.connection_string, &conf).unwrap();
//! let report = db.get_report(&base_id).unwrap();
//! assert_eq!(report.to_value()["children"][0]["info"]["name"], "db");
//! # drop(guard); let _ = std::fs::remove_file(&path);
//! ```

#![cfg_attr(docsrs, feature(doc_cfg))]

use osprofiler_core::notifier::{Driver, DriverError};
use osprofiler_core::{ProfilerConfig, config::InitError, config::NotifierGuard};
use std::sync::{Arc, Once};

#[cfg(feature = "elasticsearch")]
pub mod elasticsearch;
#[cfg(feature = "_http")]
mod http;
#[cfg(feature = "messaging")]
pub mod messaging;
#[cfg(feature = "mongodb")]
pub mod mongodb;
#[cfg(feature = "otlp")]
pub mod otlp;
#[cfg(feature = "redis")]
pub mod redis;
#[cfg(feature = "_rt")]
mod rt;
#[cfg(feature = "_sql")]
pub mod sql;

#[cfg(feature = "elasticsearch")]
pub use crate::elasticsearch::ElasticsearchDriver;
#[cfg(feature = "messaging")]
pub use crate::messaging::MessagingDriver;
#[cfg(feature = "mongodb")]
pub use crate::mongodb::MongoDriver;
#[cfg(feature = "otlp")]
pub use crate::otlp::OtlpDriver;
#[cfg(feature = "redis")]
pub use crate::redis::RedisDriver;
#[cfg(feature = "_sql")]
pub use crate::sql::SqlDriver;

/// The connection string the CLI and the demo use when none is given: an SQLite file in the
/// current directory.
pub const DEFAULT_CONNECTION_STRING: &str = "sqlite://osprofiler.db";

/// Registers, for the schemes of a driver this build leaves out, an error naming the cargo
/// feature that brings it (rather than "unknown scheme").
#[allow(unused_macros)] // with every feature on
macro_rules! without {
    ($feature:literal: $($scheme:literal),+) => {
        for scheme in [$($scheme),+] {
            osprofiler_core::config::register_driver(scheme, |_, _| {
                Err(DriverError::new(concat!(
                    "this build of osprofiler-collectors leaves this collector out: enable its \
                     cargo feature, osprofiler-collectors = { features = [\"",
                    $feature,
                    "\"] }"
                )))
            });
        }
    };
}

/// Registers every driver of this build with the core's driver registry. Idempotent.
pub fn register() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        #[cfg(not(feature = "sqlite"))]
        without!("sqlite": "sqlite");
        #[cfg(not(feature = "postgres"))]
        without!("postgres": "postgres", "postgresql", "postgresql+psycopg2");
        #[cfg(not(feature = "mysql"))]
        without!("mysql": "mysql", "mysql+pymysql", "mariadb");
        #[cfg(not(feature = "redis"))]
        without!("redis": "redis", "rediss", "redissentinel");
        #[cfg(not(feature = "mongodb"))]
        without!("mongodb": "mongodb");
        #[cfg(not(feature = "messaging"))]
        without!("messaging": "messaging");
        #[cfg(not(feature = "otlp"))]
        without!("otlp": "otlp", "otlp+http", "otlp+https");
        #[cfg(not(feature = "elasticsearch"))]
        without!("elasticsearch": "elasticsearch", "elasticsearch+http", "elasticsearch+https");
        // One SQL driver: it knows which of its databases this build has.
        #[cfg(feature = "_sql")]
        #[allow(clippy::single_element_loop)] // a build with one SQL database
        for scheme in [
            #[cfg(feature = "sqlite")]
            "sqlite",
            #[cfg(feature = "postgres")]
            "postgres",
            #[cfg(feature = "postgres")]
            "postgresql",
            #[cfg(feature = "postgres")]
            "postgresql+psycopg2",
            #[cfg(feature = "mysql")]
            "mysql",
            #[cfg(feature = "mysql")]
            "mysql+pymysql",
            #[cfg(feature = "mysql")]
            "mariadb",
        ] {
            osprofiler_core::config::register_driver(scheme, |cs, _| {
                Ok(Arc::new(SqlDriver::open(cs)?) as Arc<dyn Driver>)
            });
        }
        #[cfg(feature = "redis")]
        for scheme in ["redis", "rediss", "redissentinel"] {
            osprofiler_core::config::register_driver(scheme, |cs, conf| {
                Ok(Arc::new(RedisDriver::from_conf(cs, conf)?) as Arc<dyn Driver>)
            });
        }
        #[cfg(feature = "mongodb")]
        osprofiler_core::config::register_driver("mongodb", |cs, conf| {
            Ok(Arc::new(MongoDriver::from_conf(cs, conf)?) as Arc<dyn Driver>)
        });
        #[cfg(feature = "messaging")]
        osprofiler_core::config::register_driver("messaging", |cs, _| {
            Ok(Arc::new(MessagingDriver::open(cs)?) as Arc<dyn Driver>)
        });
        #[cfg(feature = "otlp")]
        for scheme in ["otlp", "otlp+http", "otlp+https"] {
            osprofiler_core::config::register_driver(scheme, |cs, _| {
                Ok(Arc::new(OtlpDriver::open(cs)?) as Arc<dyn Driver>)
            });
        }
        #[cfg(feature = "elasticsearch")]
        for scheme in ["elasticsearch", "elasticsearch+http", "elasticsearch+https"] {
            osprofiler_core::config::register_driver(scheme, |cs, conf| {
                Ok(Arc::new(ElasticsearchDriver::from_conf(cs, conf)?) as Arc<dyn Driver>)
            });
        }
        osprofiler_core::config::register_driver("jaeger", |_, _| {
            Err(DriverError::new(
                "the Jaeger client protocol is retired and not supported; Jaeger ingests OTLP: \
                 use otlp://<jaeger-host>:4318",
            ))
        });
    });
}

/// The driver for `connection_string` (after [`register`]); errors name the string (password
/// redacted) and, for an unknown scheme, the known ones.
///
/// ```
/// let conf = osprofiler_core::ProfilerConfig::default();
/// let e = osprofiler_collectors::open("jaeger://localhost:6831", &conf).map(drop).unwrap_err();
/// assert!(e.to_string().contains("otlp://"));
/// let e = osprofiler_collectors::open("nosuch://x", &conf).map(drop).unwrap_err();
/// assert!(e.to_string().contains("\"nosuch\""));
/// // A collector this build leaves out names the feature that brings it.
/// # #[cfg(not(feature = "redis"))] {
/// let e = osprofiler_collectors::open("redis://localhost", &conf).map(drop).unwrap_err();
/// assert!(e.to_string().contains("features = [\"redis\"]"));
/// # }
/// ```
pub fn open(connection_string: &str, conf: &ProfilerConfig) -> Result<Arc<dyn Driver>, InitError> {
    register();
    osprofiler_core::config::create_driver(connection_string, conf)
}

/// The driver for `connection_string`, to read only (what `osprofiler trace show/list` use):
/// nothing is created — a missing SQLite file or `data` table is an error saying so, and a
/// database role that may only read is enough ([`SqlDriver::open_read_only`]). The other
/// collectors create nothing when they read anyway.
///
/// ```
/// let conf = osprofiler_core::ProfilerConfig::default();
/// let path = std::env::temp_dir().join("osp-doc-no-such.db");
/// let e = osprofiler_collectors::open_reader(&format!("sqlite://{}", path.display()), &conf)
///     .map(drop)
///     .unwrap_err();
/// assert!(e.to_string().contains("no SQLite database"), "{e}");
/// assert!(!path.exists(), "reading created nothing");
/// ```
pub fn open_reader(
    connection_string: &str,
    conf: &ProfilerConfig,
) -> Result<Arc<dyn Driver>, InitError> {
    #[cfg(feature = "_sql")]
    {
        let scheme = connection_string
            .split_once("://")
            .map(|(s, _)| s.split('+').next().unwrap_or_default().to_ascii_lowercase());
        let sql = matches!(
            scheme.as_deref(),
            Some("sqlite" | "postgres" | "postgresql" | "mysql" | "mariadb")
        );
        if sql {
            return SqlDriver::open_read_only(connection_string)
                .map(|d| Arc::new(d) as Arc<dyn Driver>)
                .map_err(|source| InitError::Driver {
                    connection_string: osprofiler_core::config::redact(connection_string),
                    source,
                });
        }
    }
    open(connection_string, conf)
}

/// [`osprofiler_core::init_from_conf`] with this crate's drivers registered.
pub fn init_from_conf(
    conf: &ProfilerConfig,
    project: &str,
    service: &str,
    host: Option<&str>,
) -> Result<NotifierGuard, InitError> {
    register();
    osprofiler_core::init_from_conf(conf, project, service, host)
}

// The README's examples are compiled (and run, unless `no_run`) as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
