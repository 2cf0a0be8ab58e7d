//! Moved to the osprofiler-oslo crate (its feature `rpc`): the RPC server, client and envelope
//! are at its root (`osprofiler_oslo::RpcServer`, …), the control exchange is
//! `osprofiler_oslo::amqp::CONTROL_EXCHANGE`. These paths are the same items for 0.2, each
//! deprecated with its new path, and go in the next release.

moved! {
    const ENVELOPE_VERSION: &str = osprofiler_oslo::ENVELOPE_VERSION
        => "moved to the osprofiler-oslo crate: use osprofiler_oslo::ENVELOPE_VERSION";
    const CONTROL_EXCHANGE: &str = osprofiler_oslo::amqp::CONTROL_EXCHANGE
        => "moved to the osprofiler-oslo crate: use osprofiler_oslo::amqp::CONTROL_EXCHANGE";
    const DEFAULT_MAX_MESSAGE: usize = osprofiler_oslo::DEFAULT_MAX_MESSAGE
        => "moved to the osprofiler-oslo crate: use osprofiler_oslo::DEFAULT_MAX_MESSAGE";
    const DEFAULT_PREFETCH: u16 = osprofiler_oslo::DEFAULT_PREFETCH
        => "moved to the osprofiler-oslo crate: use osprofiler_oslo::DEFAULT_PREFETCH";
    const DEFAULT_STOP_TIMEOUT: std::time::Duration = osprofiler_oslo::DEFAULT_STOP_TIMEOUT
        => "moved to the osprofiler-oslo crate: use osprofiler_oslo::DEFAULT_STOP_TIMEOUT";
}

moved! {
    type EnvelopeError = osprofiler_oslo::EnvelopeError
        => "moved to the osprofiler-oslo crate: use osprofiler_oslo::EnvelopeError";
    type Request = osprofiler_oslo::Request
        => "moved to the osprofiler-oslo crate: use osprofiler_oslo::Request";
    type RemoteError = osprofiler_oslo::RemoteError
        => "moved to the osprofiler-oslo crate: use osprofiler_oslo::RemoteError";
    type Reply = osprofiler_oslo::Reply
        => "moved to the osprofiler-oslo crate: use osprofiler_oslo::Reply";
    type ServerOptions = osprofiler_oslo::ServerOptions
        => "moved to the osprofiler-oslo crate: use osprofiler_oslo::ServerOptions";
    type RpcServer = osprofiler_oslo::RpcServer
        => "moved to the osprofiler-oslo crate: use osprofiler_oslo::RpcServer";
    type Target = osprofiler_oslo::Target
        => "moved to the osprofiler-oslo crate: use osprofiler_oslo::Target";
    type RpcError = osprofiler_oslo::RpcError
        => "moved to the osprofiler-oslo crate: use osprofiler_oslo::RpcError";
    type RpcClient = osprofiler_oslo::RpcClient
        => "moved to the osprofiler-oslo crate: use osprofiler_oslo::RpcClient";
}
