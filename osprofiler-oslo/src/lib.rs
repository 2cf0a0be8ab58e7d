//! # osprofiler-oslo
//!
//! OSProfiler traces over oslo.messaging, wire-compatible with OpenStack's OSProfiler: a Rust
//! service in the same RPC trace as Python OpenStack services, called by them and calling them.
//!
//! - [`context`] (no feature): the trace in an RPC request context, oslo-style
//!   (`"trace_info": {"hmac_key", "base_id", "parent_id"}`), and [`context::serve`] to run a
//!   callee's handler inside the caller's trace, whatever carries the message.
//! - [`amqp`] (feature `amqp`): RabbitMQ connections from oslo.messaging's `transport_url` or
//!   an AMQP URI (TCP_NODELAY, a timeout per host), the control exchange, and the signed
//!   `X-Trace-Info`/`X-Trace-HMAC` pair in AMQP message headers.
//! - The crate root (feature `rpc`): an oslo.messaging RPC server and client on RabbitMQ.
//!
//! ## oslo.messaging RPC (feature `rpc`)
//!
//! oslo.messaging 18 sends an RPC request to the control exchange (`openstack`, a topic
//! exchange) with the routing key `<topic>` or `<topic>.<server>`, as an envelope
//! `{"oslo.version": "2.0", "oslo.message": "<JSON text>"}`. The inner message carries
//! `method`, `args`, `namespace`, `version`, `_unique_id`, for a call `_msg_id` and `_reply_q`,
//! and the request context flattened as `_context_<key>` entries — the trace among them, as
//! `_context_trace_info` (`{"hmac_key", "base_id", "parent_id"}`, what Nova's
//! `ProfilerRequestContextSerializer` puts there). The reply goes through the default exchange
//! to the caller's reply queue: `{"result", "failure", "ending": true, "_msg_id"}`, in the
//! same envelope.
//!
//! - [`Request`], [`Reply`], [`RemoteError`]: the envelope, parsed and built.
//! - [`RpcServer`]: answers `call` and `cast` on `<exchange>`/`<topic>` and
//!   `<topic>.<server>`, declared as oslo.messaging declares them; each request is an `rpc`
//!   point, child of the caller's point, recorded as Python's `trace_cls` records an RPC
//!   method (`function.name`, and `args`/`kwargs` unless hidden); a handler's error or panic is
//!   a failure reply and a failed point. Malformed, oversized or unknown-version messages are
//!   rejected (dead-lettered where the queue has a dead-letter exchange, never redelivered);
//!   one with a reply queue gets a failure reply. The consumer never stops on bad input.
//! - [`RpcClient`]: `call` (waits for the reply; a timeout is [`RpcError::Timeout`], a
//!   `failure` reply [`RpcError::Remote`] with the remote exception's type and message) and
//!   `cast`, each an `rpc` point whose id is the callee's parent.
//!
//! The trace is accepted only with one of the verifying keys ([`osprofiler_core::identity::hmac_keys`]
//! by default, as the HTTP server layer does): oslo's `trace_info` carries its key in clear,
//! so a request with another key runs untraced.

#![cfg_attr(docsrs, feature(doc_cfg))]
// The crate docs name the RPC items, which exist with the `rpc` feature only.
#![cfg_attr(not(feature = "rpc"), allow(rustdoc::broken_intra_doc_links))]

#[cfg(feature = "amqp")]
pub mod amqp;
#[cfg(feature = "rpc")]
mod client;
pub mod context;
#[cfg(feature = "rpc")]
mod envelope;
#[cfg(feature = "rpc")]
mod point;
#[cfg(feature = "rpc")]
mod reply;
#[cfg(feature = "rpc")]
mod request;
#[cfg(feature = "rpc")]
mod server;

#[cfg(feature = "rpc")]
pub use client::{RpcClient, RpcError, Target};
#[cfg(feature = "rpc")]
pub use envelope::{DEFAULT_MAX_MESSAGE, ENVELOPE_VERSION, EnvelopeError};
#[cfg(feature = "rpc")]
pub use reply::{RemoteError, Reply};
#[cfg(feature = "rpc")]
pub use request::Request;
#[cfg(feature = "rpc")]
pub use server::{DEFAULT_PREFETCH, DEFAULT_STOP_TIMEOUT, RpcServer, ServerOptions};

// The README's examples are compiled (and run, unless `no_run`) as doctests; they use the
// `rpc` feature (the crate's dev-dependency on itself turns it on).
#[cfg(all(doctest, feature = "rpc"))]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
