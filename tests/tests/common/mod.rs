//! Shared helpers for the integration tests.
#![allow(dead_code)]

use std::path::PathBuf;

/// The Python interpreter of the oracle virtualenv (made by `scripts/test`).
pub fn python() -> PathBuf {
    if let Ok(p) = std::env::var("OSPROFILER_PYTHON") {
        return PathBuf::from(p);
    }
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.venv-osp/bin/python");
    assert!(
        p.exists(),
        "Python OSProfiler oracle missing: {} does not exist. Run `scripts/test` (it creates the virtualenv with \
         osprofiler==4.4.0) or set OSPROFILER_PYTHON.",
        p.display()
    );
    p
}

/// A script of `tests/python/`.
pub fn script(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("python")
        .join(name)
}

#[allow(unused_imports)] // not every test file uses every helper
pub use osprofiler_testkit::{collector, messages_of, one};
