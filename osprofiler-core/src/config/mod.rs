//! The `[profiler]` options of OSProfiler, read from an oslo.config INI file, from
//! `OSPROFILER_*` environment variables, or set with a builder; and [`init_from_conf`], which
//! wires switches, keys and the notifier from them.
//!
//! One concern per module, all used from here: the options ([`ProfilerConfig`], its builder
//! and parsing), the driver registry ([`register_driver`], [`create_driver`]), redaction of
//! secrets in connection strings ([`redact`], [`redact_urls`]), their percent-encoded parts
//! ([`percent_decode`]), and start-up ([`init_from_conf`]).

mod init;
mod options;
mod percent;
mod redact;
mod registry;

pub use init::{InitError, NotifierGuard, init_from_conf};
use options::err;
pub use options::{ConfigError, DEFAULT_HMAC_KEY, OPTIONS, ProfilerConfig, ProfilerConfigBuilder};
pub use percent::{PercentDecodeError, percent_decode};
pub use redact::{redact, redact_urls};
pub use registry::{DriverFactory, create_driver, register_driver};
