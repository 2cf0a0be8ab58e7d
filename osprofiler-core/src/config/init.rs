//! Start-up: [`init_from_conf`] wires the switches, keys, identity and the notifier from a
//! [`ProfilerConfig`].

use super::{ConfigError, DEFAULT_HMAC_KEY, ProfilerConfig, create_driver, redact};
use crate::notifier::{self, DriverError, QueueNotifier, QueueOptions};
use crate::switches;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;
/// Why [`init_from_conf`] failed. `Debug` prints the `Display` text: it is what a `main`
/// returning the error shows.
///
/// ```
/// let conf = osprofiler_core::ProfilerConfig::builder().enabled(true).build();
/// // The core alone knows only memory://; the collectors register the rest.
/// let e = osprofiler_core::init_from_conf(&conf, "p", "s", None).map(drop).unwrap_err();
/// assert_eq!(format!("{e:?}"), e.to_string());
/// assert!(e.to_string().contains("osprofiler_collectors::init_from_conf"));
/// ```
#[non_exhaustive]
pub enum InitError {
    /// A configuration value is unusable.
    Config(ConfigError),
    /// No driver is registered for the connection string's scheme.
    UnknownScheme {
        /// The scheme asked for.
        scheme: String,
        /// The schemes registered.
        known: Vec<String>,
    },
    /// The driver could not start (server down, bad URL, ...).
    Driver {
        /// The connection string, password redacted.
        connection_string: String,
        /// The driver's error.
        source: DriverError,
    },
}

impl InitError {
    /// The error of a driver that could not start for `connection_string` (stored with its
    /// password redacted).
    ///
    /// ```
    /// use osprofiler_core::{config::InitError, notifier::DriverError};
    /// let e = InitError::driver("redis://:pw@h:6379", DriverError::new("refused"));
    /// assert!(e.to_string().contains("redis://:***@h:6379") && !e.to_string().contains("pw"));
    /// ```
    pub fn driver(connection_string: &str, source: DriverError) -> InitError {
        InitError::Driver {
            connection_string: redact(connection_string),
            source,
        }
    }
}

impl fmt::Display for InitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InitError::Config(e) => e.fmt(f),
            InitError::UnknownScheme { scheme, known } => write!(
                f,
                "invalid value for option [profiler] connection_string: no collector driver for scheme {scheme:?} \
                 (registered: {}). The collectors (sqlite, postgresql, mysql, redis, redissentinel, mongodb, \
                 elasticsearch, messaging, otlp) are in the osprofiler-collectors crate: start with \
                 osprofiler_collectors::init_from_conf, or call osprofiler_collectors::register() first",
                known.join(", ")
            ),
            InitError::Driver {
                connection_string,
                source,
            } => {
                write!(
                    f,
                    "cannot start the collector for connection_string {connection_string:?}: {source}"
                )
            }
        }
    }
}

impl fmt::Debug for InitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl std::error::Error for InitError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            InitError::Config(e) => Some(e),
            InitError::Driver { source, .. } => Some(source),
            InitError::UnknownScheme { .. } => None,
        }
    }
}

impl From<ConfigError> for InitError {
    fn from(e: ConfigError) -> Self {
        InitError::Config(e)
    }
}

/// Keeps the notifier installed by [`init_from_conf`]; flushes and stops it when dropped, so
/// messages queued at shutdown are delivered.
#[must_use = "dropping the guard flushes and stops the notifier"]
#[derive(Debug)]
pub struct NotifierGuard {
    notifier: Option<Arc<QueueNotifier>>,
}

impl NotifierGuard {
    /// The installed notifier (none when profiling is disabled).
    pub fn notifier(&self) -> Option<&Arc<QueueNotifier>> {
        self.notifier.as_ref()
    }
    /// The notifier's counters, provisional traces included (zeros when profiling is
    /// disabled).
    pub fn stats(&self) -> notifier::NotifierStats {
        self.notifier
            .as_ref()
            .map_or_else(Default::default, |n| n.stats())
    }
    /// Delivers everything queued, waiting at most `timeout`.
    pub fn flush(&self, timeout: Duration) -> bool {
        self.notifier.as_ref().is_none_or(|n| n.flush_for(timeout))
    }
}

impl Drop for NotifierGuard {
    fn drop(&mut self) {
        if let Some(n) = self.notifier.take() {
            if Arc::ptr_eq(
                &(n.clone() as Arc<dyn notifier::Notifier>),
                &notifier::get(),
            ) {
                notifier::set(Arc::new(notifier::NoopNotifier));
            }
            n.shutdown();
        }
    }
}

/// Configures this process from `conf` (OSProfiler's `initializer.init_from_conf`): runtime
/// switches (`enabled`, `trace_sql`, `trace_sql_params`), the server-side `hmac_keys`, the
/// identity stamped on every message (`project`, `service`, `host`; `None` host = hostname),
/// and — when enabled — the collector driver behind a [`QueueNotifier`], installed as the
/// global notifier.
///
/// Unlike Python, a driver that cannot start is an error, not silently disabled tracing.
///
/// ```
/// use osprofiler_core::{self as osp, ProfilerConfig};
/// let conf = ProfilerConfig::builder().enabled(true).connection_string("memory://").build();
/// let guard = osp::init_from_conf(&conf, "demo", "api", None).unwrap();
/// assert!(guard.notifier().is_some());
///
/// let bad = ProfilerConfig::builder().enabled(true).connection_string("nosuch://x").build();
/// let e = osp::init_from_conf(&bad, "demo", "api", None).unwrap_err();
/// assert!(e.to_string().contains("nosuch"));
/// ```
pub fn init_from_conf(
    conf: &ProfilerConfig,
    project: &str,
    service: &str,
    host: Option<&str>,
) -> Result<NotifierGuard, InitError> {
    let notifier = if conf.enabled {
        let driver = create_driver(&conf.connection_string, conf)?;
        let opts = QueueOptions {
            staging_window: conf.staging_window,
            keep_traces: crate::sampling::Sampler::from_conf(conf).keeps(),
            retention: conf.retention,
            ..QueueOptions::default()
        };
        let n = QueueNotifier::start(driver, opts)
            .map_err(|e| InitError::driver(&conf.connection_string, e))?;
        notifier::set(n.clone());
        Some(n)
    } else {
        None
    };
    crate::identity::set_identity(Some(project), Some(service), host);
    crate::identity::set_hmac_keys(conf.hmac_keys.clone());
    switches::set_trace_sql(conf.trace_sqlalchemy);
    switches::set_trace_sql_params(conf.trace_sql_params);
    switches::set_filter_error_trace(conf.filter_error_trace);
    crate::sampling::set_global(crate::sampling::Sampler::from_conf(conf));
    switches::set_enabled(conf.enabled);
    for (option, why) in conf.inert_options() {
        log::warn!("osprofiler: [profiler] {option} has no effect here: {why}");
    }
    if conf.enabled && conf.hmac_keys.iter().any(|k| k == DEFAULT_HMAC_KEY) {
        static ONCE: std::sync::Once = std::sync::Once::new();
        ONCE.call_once(|| {
            log::warn!(
                "osprofiler: profiling is enabled with OSProfiler's default key {DEFAULT_HMAC_KEY:?} \
                 in [profiler] hmac_keys: anyone who knows it can trace requests to this \
                 service; set a key of your own (the same in every service of a trace)"
            );
        });
    }
    Ok(NotifierGuard { notifier })
}
