//! Shared helpers for the integration tests.
#![allow(dead_code)]

use std::path::PathBuf;

/// A script of `tests/python/`.
pub fn script(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("python")
        .join(name)
}

#[allow(unused_imports)] // not every test file uses every helper
pub use osprofiler_testkit::{collector, messages_of, one, python};
