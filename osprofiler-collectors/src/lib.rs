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
//! Each driver has two halves: a [`Writer`], what a service
//! needs ([`open`], [`init_from_conf`]), and a [`Reader`],
//! what the CLI and reports need ([`open_reader`]). A service that only writes links none of the
//! reading code; `otlp://` only exports, so it has no reader.
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
//! let db = osprofiler_collectors::open_reader(&conf.connection_string, &conf).unwrap();
//! let report = db.get_report(&base_id).unwrap();
//! assert_eq!(report.to_value()["children"][0]["info"]["name"], "db");
//! # drop(guard); let _ = std::fs::remove_file(&path);
//! ```

#![cfg_attr(docsrs, feature(doc_cfg))]

use osprofiler_core::config::DriverFactory;
use osprofiler_core::notifier::{DriverError, Reader, Writer};
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

/// Opens the reading half of a collector.
type ReaderFactory =
    fn(connection_string: &str, conf: &ProfilerConfig) -> Result<Arc<dyn Reader>, DriverError>;

/// One collector of this crate: the schemes it answers, and how this build opens its writer and
/// its reader (no reader: it only exports). For a collector the build leaves out, both say
/// which cargo feature brings it.
struct Collector {
    schemes: &'static [&'static str],
    open: (DriverFactory, Option<ReaderFactory>),
}

/// Opens each half of one driver type; `$write`/`$read` build the driver from `(cs, conf)`.
/// Without the cargo feature, both halves are the error naming it.
macro_rules! halves {
    ($feature:literal, |$cs:ident, $conf:ident| $write:expr, $($read:expr)?) => {{
        #[cfg(feature = $feature)]
        let open: (DriverFactory, Option<ReaderFactory>) = (
            |$cs, $conf| Ok(Arc::new($write?) as Arc<dyn Writer>),
            None $(.or(Some(|$cs, $conf| Ok(Arc::new($read?) as Arc<dyn Reader>))))?,
        );
        #[cfg(not(feature = $feature))]
        let open: (DriverFactory, Option<ReaderFactory>) = (
            |_, _| Err(left_out($feature)),
            Some(|_, _| Err(left_out($feature))),
        );
        open
    }};
}

/// Every collector, in the order errors list them.
fn collectors() -> [Collector; 9] {
    [
        Collector {
            schemes: &["sqlite"],
            open: halves!(
                "sqlite",
                |cs, _c| SqlDriver::open(cs),
                SqlDriver::open_read_only(cs)
            ),
        },
        Collector {
            schemes: &["postgres", "postgresql", "postgresql+psycopg2"],
            open: halves!(
                "postgres",
                |cs, _c| SqlDriver::open(cs),
                SqlDriver::open_read_only(cs)
            ),
        },
        Collector {
            schemes: &["mysql", "mysql+pymysql", "mariadb"],
            open: halves!(
                "mysql",
                |cs, _c| SqlDriver::open(cs),
                SqlDriver::open_read_only(cs)
            ),
        },
        Collector {
            schemes: &["redis", "rediss", "redissentinel"],
            open: halves!(
                "redis",
                |cs, conf| RedisDriver::from_conf(cs, conf),
                RedisDriver::from_conf(cs, conf)
            ),
        },
        Collector {
            schemes: &["mongodb"],
            open: halves!(
                "mongodb",
                |cs, conf| MongoDriver::from_conf(cs, conf),
                MongoDriver::from_conf(cs, conf)
            ),
        },
        Collector {
            schemes: &["messaging"],
            open: halves!(
                "messaging",
                |cs, _c| MessagingDriver::open(cs),
                MessagingDriver::open(cs)
            ),
        },
        Collector {
            schemes: &["otlp", "otlp+http", "otlp+https"],
            open: halves!("otlp", |cs, _c| OtlpDriver::open(cs),),
        },
        Collector {
            schemes: &["elasticsearch", "elasticsearch+http", "elasticsearch+https"],
            open: halves!(
                "elasticsearch",
                |cs, conf| ElasticsearchDriver::from_conf(cs, conf),
                ElasticsearchDriver::from_conf(cs, conf)
            ),
        },
        Collector {
            schemes: &["jaeger"],
            open: (
                |_, _| Err(jaeger_retired()),
                Some(|_, _| Err(jaeger_retired())),
            ),
        },
    ]
}

fn jaeger_retired() -> DriverError {
    DriverError::new(
        "the Jaeger client protocol is retired and not supported; Jaeger ingests OTLP: \
         use otlp://<jaeger-host>:4318",
    )
}

/// The error for a collector this build leaves out: it names the cargo feature that brings it.
#[allow(dead_code)] // a build with every collector leaves none out
fn left_out(feature: &str) -> DriverError {
    DriverError::new(format!(
        "this build of osprofiler-collectors leaves this collector out: enable its cargo \
         feature, osprofiler-collectors = {{ features = [\"{feature}\"] }}"
    ))
}

/// Registers every driver of this build with the core's driver registry, and for the schemes
/// of a driver this build leaves out an error naming the cargo feature that brings it (rather
/// than "unknown scheme"). Idempotent.
pub fn register() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        for collector in collectors() {
            for scheme in collector.schemes {
                osprofiler_core::config::register_driver(scheme, collector.open.0);
            }
        }
    });
}

/// The collector writer for `connection_string` (after [`register`]): what the notifier
/// writes to. Errors name the string (password redacted) and, for an unknown scheme, the known
/// ones.
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
pub fn open(connection_string: &str, conf: &ProfilerConfig) -> Result<Arc<dyn Writer>, InitError> {
    register();
    osprofiler_core::config::create_driver(connection_string, conf)
}

/// The collector reader for `connection_string` (what `osprofiler trace show/list` use):
/// nothing is created — a missing SQLite file or `data` table is an error saying so, and a
/// database role that may only read is enough ([`SqlDriver::open_read_only`]). The other
/// collectors create nothing when they read anyway. `otlp://` has no reader: the error says
/// where to read such traces.
///
/// ```
/// let conf = osprofiler_core::ProfilerConfig::default();
/// let path = std::env::temp_dir().join("osp-doc-no-such.db");
/// let e = osprofiler_collectors::open_reader(&format!("sqlite://{}", path.display()), &conf)
///     .map(drop)
///     .unwrap_err();
/// assert!(e.to_string().contains("no SQLite database"), "{e}");
/// assert!(!path.exists(), "reading created nothing");
/// let e = osprofiler_collectors::open_reader("otlp://127.0.0.1:4318", &conf).map(drop).unwrap_err();
/// assert!(e.to_string().contains("exports spans only"), "{e}");
/// // A collector this build leaves out names the feature that brings it here too.
/// # #[cfg(not(feature = "redis"))] {
/// let e = osprofiler_collectors::open_reader("redis://localhost", &conf).map(drop).unwrap_err();
/// assert!(e.to_string().contains("features = [\"redis\"]"), "{e}");
/// # }
/// ```
pub fn open_reader(
    connection_string: &str,
    conf: &ProfilerConfig,
) -> Result<Arc<dyn Reader>, InitError> {
    let scheme = connection_string
        .split_once("://")
        .map(|(s, _)| s.to_ascii_lowercase())
        .unwrap_or_default();
    let all = collectors();
    let Some(collector) = all.iter().find(|c| c.schemes.contains(&scheme.as_str())) else {
        // Not a collector of this crate: the registry's error (bad syntax, unknown scheme).
        return open(connection_string, conf).and_then(|_| {
            let e = DriverError::new("this collector cannot be read from");
            Err(InitError::driver(connection_string, e))
        });
    };
    let opened = match collector.open.1 {
        None => Err(DriverError::new(format!(
            "the {scheme}:// collector exports spans only: read the trace in Jaeger, Tempo or \
             your OTLP back end"
        ))),
        Some(reader) => reader(connection_string, conf),
    };
    opened.map_err(|source| InitError::driver(connection_string, source))
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
