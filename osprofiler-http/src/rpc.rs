//! Moved to the osprofiler-oslo crate: the request context is `osprofiler_oslo::context`, the
//! AMQP functions `osprofiler_oslo::amqp` (its feature `amqp`). These paths are the same items
//! for 0.2, each deprecated with its new path, and go in the next release.

use osprofiler_core::Profiler;
use osprofiler_core::scope::{InTrace, TraceOwned};
use std::future::Future;

moved! {
    const CONTEXT_KEY: &str = osprofiler_oslo::context::CONTEXT_KEY
        => "moved to the osprofiler-oslo crate: use osprofiler_oslo::context::CONTEXT_KEY";
}

moved! {
    type TraceContext = osprofiler_oslo::context::TraceContext
        => "moved to the osprofiler-oslo crate: use osprofiler_oslo::context::TraceContext";
}

/// Moved: [`osprofiler_oslo::context::serve`].
#[deprecated(
    since = "0.2.0",
    note = "moved to the osprofiler-oslo crate: use osprofiler_oslo::context::serve"
)]
pub fn serve<F: Future>(
    caller: Option<Profiler>,
    method: &str,
    handler: F,
) -> InTrace<TraceOwned<F>> {
    osprofiler_oslo::context::serve(caller, method, handler)
}

/// Moved: [`osprofiler_oslo::amqp`] (feature `amqp` of osprofiler-oslo).
#[cfg(feature = "amqp")]
pub mod amqp {
    use lapin::types::FieldTable;
    use lapin::uri::AMQPUri;
    use lapin::{Connection, ConnectionProperties};
    use osprofiler_core::headers::{HmacKeys, Verified};

    moved! {
        const CONNECT_TIMEOUT: std::time::Duration = osprofiler_oslo::amqp::CONNECT_TIMEOUT
            => "moved to the osprofiler-oslo crate: use osprofiler_oslo::amqp::CONNECT_TIMEOUT";
    }

    /// Moved: [`osprofiler_oslo::amqp::connect`].
    #[deprecated(
        since = "0.2.0",
        note = "moved to the osprofiler-oslo crate: use osprofiler_oslo::amqp::connect"
    )]
    pub async fn connect(url: &str, props: ConnectionProperties) -> lapin::Result<Connection> {
        osprofiler_oslo::amqp::connect(url, props).await
    }

    /// Moved: [`osprofiler_oslo::amqp::transport_uris`].
    #[deprecated(
        since = "0.2.0",
        note = "moved to the osprofiler-oslo crate: use osprofiler_oslo::amqp::transport_uris"
    )]
    pub fn transport_uris(url: &str) -> Result<Vec<AMQPUri>, String> {
        osprofiler_oslo::amqp::transport_uris(url)
    }

    /// Moved: [`osprofiler_oslo::amqp::inject`].
    #[deprecated(
        since = "0.2.0",
        note = "moved to the osprofiler-oslo crate: use osprofiler_oslo::amqp::inject"
    )]
    pub fn inject(headers: &mut FieldTable) {
        osprofiler_oslo::amqp::inject(headers)
    }

    /// Moved: [`osprofiler_oslo::amqp::extract`].
    #[deprecated(
        since = "0.2.0",
        note = "moved to the osprofiler-oslo crate: use osprofiler_oslo::amqp::extract"
    )]
    pub fn extract(headers: Option<&FieldTable>, keys: &HmacKeys) -> Option<Verified> {
        osprofiler_oslo::amqp::extract(headers, keys)
    }
}
