//! The collector drivers by connection-string scheme: collector crates register theirs, and
//! [`create_driver`] opens the one a connection string names.

use super::{InitError, ProfilerConfig, err};
use crate::notifier::{DriverError, Writer};
use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock, RwLock};
/// Creates the writing half of a collector (what the notifier needs) from a connection string.
pub type DriverFactory =
    fn(connection_string: &str, conf: &ProfilerConfig) -> Result<Arc<dyn Writer>, DriverError>;

fn registry() -> &'static RwLock<BTreeMap<String, DriverFactory>> {
    static REGISTRY: OnceLock<RwLock<BTreeMap<String, DriverFactory>>> = OnceLock::new();
    REGISTRY.get_or_init(|| {
        let mut m: BTreeMap<String, DriverFactory> = BTreeMap::new();
        m.insert("memory".into(), |_, _| {
            Ok(crate::memory::MemoryCollector::new())
        });
        RwLock::new(m)
    })
}

/// Registers a collector driver for a connection-string scheme (`redis`, `sqlite`, ...).
/// Collector crates call this; the last registration of a scheme wins.
pub fn register_driver(scheme: &str, factory: DriverFactory) {
    registry()
        .write()
        .unwrap_or_else(|e| e.into_inner())
        .insert(scheme.to_ascii_lowercase(), factory);
}

/// Creates the collector writer for `connection_string` (scheme looked up in the registry).
pub fn create_driver(
    connection_string: &str,
    conf: &ProfilerConfig,
) -> Result<Arc<dyn Writer>, InitError> {
    let scheme = connection_string
        .split_once("://")
        .map(|(s, _)| s.to_ascii_lowercase());
    let Some(scheme) = scheme.filter(|s| !s.is_empty()) else {
        return Err(InitError::Config(err(
            "connection_string",
            connection_string,
            "expected <scheme>://...",
        )));
    };
    let factory = registry()
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .get(&scheme)
        .copied();
    match factory {
        Some(f) => f(connection_string, conf).map_err(|e| InitError::driver(connection_string, e)),
        None => Err(InitError::UnknownScheme {
            scheme,
            known: registry()
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .keys()
                .cloned()
                .collect(),
        }),
    }
}
