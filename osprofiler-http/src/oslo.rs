//! Moved to the osprofiler-oslo crate (its feature `rpc`): the RPC server, client and envelope
//! are at its root (`osprofiler_oslo::RpcServer`, …), the control exchange is
//! `osprofiler_oslo::amqp::CONTROL_EXCHANGE`. These paths are the same items for 0.2, each
//! deprecated with its new path, and go in the next release.

/// Moved: [`osprofiler_oslo::ENVELOPE_VERSION`].
#[deprecated(
    since = "0.2.0",
    note = "moved to the osprofiler-oslo crate: use osprofiler_oslo::ENVELOPE_VERSION"
)]
pub const ENVELOPE_VERSION: &str = osprofiler_oslo::ENVELOPE_VERSION;

/// Moved: [`osprofiler_oslo::amqp::CONTROL_EXCHANGE`].
#[deprecated(
    since = "0.2.0",
    note = "moved to the osprofiler-oslo crate: use osprofiler_oslo::amqp::CONTROL_EXCHANGE"
)]
pub const CONTROL_EXCHANGE: &str = osprofiler_oslo::amqp::CONTROL_EXCHANGE;

/// Moved: [`osprofiler_oslo::DEFAULT_MAX_MESSAGE`].
#[deprecated(
    since = "0.2.0",
    note = "moved to the osprofiler-oslo crate: use osprofiler_oslo::DEFAULT_MAX_MESSAGE"
)]
pub const DEFAULT_MAX_MESSAGE: usize = osprofiler_oslo::DEFAULT_MAX_MESSAGE;

/// Moved: [`osprofiler_oslo::DEFAULT_PREFETCH`].
#[deprecated(
    since = "0.2.0",
    note = "moved to the osprofiler-oslo crate: use osprofiler_oslo::DEFAULT_PREFETCH"
)]
pub const DEFAULT_PREFETCH: u16 = osprofiler_oslo::DEFAULT_PREFETCH;

/// Moved: [`osprofiler_oslo::DEFAULT_STOP_TIMEOUT`].
#[deprecated(
    since = "0.2.0",
    note = "moved to the osprofiler-oslo crate: use osprofiler_oslo::DEFAULT_STOP_TIMEOUT"
)]
pub const DEFAULT_STOP_TIMEOUT: std::time::Duration = osprofiler_oslo::DEFAULT_STOP_TIMEOUT;

/// Moved: [`osprofiler_oslo::EnvelopeError`].
#[deprecated(
    since = "0.2.0",
    note = "moved to the osprofiler-oslo crate: use osprofiler_oslo::EnvelopeError"
)]
pub type EnvelopeError = osprofiler_oslo::EnvelopeError;

/// Moved: [`osprofiler_oslo::Request`].
#[deprecated(
    since = "0.2.0",
    note = "moved to the osprofiler-oslo crate: use osprofiler_oslo::Request"
)]
pub type Request = osprofiler_oslo::Request;

/// Moved: [`osprofiler_oslo::RemoteError`].
#[deprecated(
    since = "0.2.0",
    note = "moved to the osprofiler-oslo crate: use osprofiler_oslo::RemoteError"
)]
pub type RemoteError = osprofiler_oslo::RemoteError;

/// Moved: [`osprofiler_oslo::Reply`].
#[deprecated(
    since = "0.2.0",
    note = "moved to the osprofiler-oslo crate: use osprofiler_oslo::Reply"
)]
pub type Reply = osprofiler_oslo::Reply;

/// Moved: [`osprofiler_oslo::ServerOptions`].
#[deprecated(
    since = "0.2.0",
    note = "moved to the osprofiler-oslo crate: use osprofiler_oslo::ServerOptions"
)]
pub type ServerOptions = osprofiler_oslo::ServerOptions;

/// Moved: [`osprofiler_oslo::RpcServer`].
#[deprecated(
    since = "0.2.0",
    note = "moved to the osprofiler-oslo crate: use osprofiler_oslo::RpcServer"
)]
pub type RpcServer = osprofiler_oslo::RpcServer;

/// Moved: [`osprofiler_oslo::Target`].
#[deprecated(
    since = "0.2.0",
    note = "moved to the osprofiler-oslo crate: use osprofiler_oslo::Target"
)]
pub type Target = osprofiler_oslo::Target;

/// Moved: [`osprofiler_oslo::RpcError`].
#[deprecated(
    since = "0.2.0",
    note = "moved to the osprofiler-oslo crate: use osprofiler_oslo::RpcError"
)]
pub type RpcError = osprofiler_oslo::RpcError;

/// Moved: [`osprofiler_oslo::RpcClient`].
#[deprecated(
    since = "0.2.0",
    note = "moved to the osprofiler-oslo crate: use osprofiler_oslo::RpcClient"
)]
pub type RpcClient = osprofiler_oslo::RpcClient;
