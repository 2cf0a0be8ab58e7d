//! A Tokio runtime owned by a driver, so async client libraries can serve the notifier's
//! (synchronous) worker thread and the CLI alike.

use osprofiler_core::notifier::DriverError;
use std::future::Future;

pub(crate) struct Rt(Option<tokio::runtime::Runtime>);

impl Rt {
    pub(crate) fn new() -> Result<Rt, DriverError> {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map(|rt| Rt(Some(rt)))
            .map_err(|e| DriverError::with_source("cannot start the collector's runtime", e))
    }

    pub(crate) fn handle(&self) -> &tokio::runtime::Runtime {
        self.0.as_ref().expect("runtime lives until drop")
    }

    /// Runs `fut` to completion. From inside another Tokio runtime (the CLI, a test) blocking
    /// that runtime's thread is not allowed, so the work moves to a scoped thread.
    pub(crate) fn run<F: Future + Send>(&self, fut: F) -> F::Output
    where
        F::Output: Send,
    {
        let rt = self.handle();
        if tokio::runtime::Handle::try_current().is_ok() {
            std::thread::scope(|s| {
                s.spawn(|| rt.block_on(fut))
                    .join()
                    .unwrap_or_else(|p| std::panic::resume_unwind(p))
            })
        } else {
            rt.block_on(fut)
        }
    }
}

impl Drop for Rt {
    fn drop(&mut self) {
        // Dropping a runtime inside another runtime panics; this never blocks.
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}
