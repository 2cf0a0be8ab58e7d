//! [`RpcServer`]: answers oslo.messaging calls and casts, each request an `rpc` point in the
//! caller's trace.

use crate::amqp::declare_control_exchange;
use crate::context::TraceContext;
use crate::envelope::{DEFAULT_MAX_MESSAGE, json_properties, reply_address, unique_id};
use crate::point::rpc_info;
use crate::{RemoteError, Reply, Request};
use futures_util::{FutureExt as _, StreamExt as _};
use lapin::options::{
    BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
    BasicRejectOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::{Channel, Connection, ConnectionProperties};
use osprofiler_core::{Profiler, Trace, TraceFutureExt as _};
use serde_json::Value;
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::oneshot;

/// How an [`RpcServer`] serves (`Debug` shows `trusted_keys` as a count).
#[derive(Clone)]
pub struct ServerOptions {
    /// The control exchange (default `openstack`).
    pub exchange: String,
    /// The topic: the queue `<topic>` takes requests for any server.
    pub topic: String,
    /// This server's name: the queue `<topic>.<server>` takes requests for it alone.
    pub server: String,
    /// The name recorded as the `rpc` point's `function.name` before the method
    /// (`<endpoint>.<method>`; default the topic).
    pub endpoint: String,
    /// Record no `args`/`kwargs` on the `rpc` point.
    pub hide_args: bool,
    /// The largest message read (default [`DEFAULT_MAX_MESSAGE`]).
    pub max_message: usize,
    /// The keys a caller's `trace_info` must carry to be continued (default: the process's
    /// verifying keys, `osprofiler_core::identity::hmac_keys()`).
    pub trusted_keys: Option<Vec<String>>,
    /// The most requests handled at once (default [`DEFAULT_PREFETCH`], the size of
    /// oslo.messaging's executor pool; 0: no limit). A request is acknowledged when it has been
    /// answered, and RabbitMQ delivers no more than this many unacknowledged requests to the
    /// server's channel: the rest wait in the queue, for this server or another.
    pub prefetch: u16,
    /// Starts traces for requests that come without a trusted `trace_info` (see
    /// [`osprofiler_core::sampling`]; default: the process-wide sampler when the options are
    /// made, which `init_from_conf` sets from the `[profiler]` options and is none otherwise,
    /// as in Python OSProfiler). Their onward calls carry the first trusted key.
    pub sampler: osprofiler_core::sampling::Sampler,
}

impl std::fmt::Debug for ServerOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerOptions")
            .field("exchange", &self.exchange)
            .field("topic", &self.topic)
            .field("server", &self.server)
            .field("endpoint", &self.endpoint)
            .field("hide_args", &self.hide_args)
            .field("max_message", &self.max_message)
            .field(
                "trusted_keys",
                &self
                    .trusted_keys
                    .as_ref()
                    .map(|k| format!("[REDACTED; {}]", k.len())),
            )
            .field("prefetch", &self.prefetch)
            .field("sampler", &self.sampler)
            .finish()
    }
}

/// The default [`ServerOptions::prefetch`]: oslo.messaging's `executor_thread_pool_size`.
pub const DEFAULT_PREFETCH: u16 = 64;

impl ServerOptions {
    /// Options for `topic` on server `server`.
    pub fn new(topic: impl Into<String>, server: impl Into<String>) -> Self {
        let topic = topic.into();
        ServerOptions {
            exchange: crate::amqp::CONTROL_EXCHANGE.into(),
            endpoint: topic.clone(),
            topic,
            server: server.into(),
            hide_args: false,
            max_message: DEFAULT_MAX_MESSAGE,
            trusted_keys: None,
            prefetch: DEFAULT_PREFETCH,
            sampler: osprofiler_core::sampling::global_sampler(),
        }
    }
}

/// An RPC server answering oslo.messaging calls and casts (see the [crate docs](crate)).
///
/// ```no_run
/// # async fn demo() -> Result<(), lapin::Error> {
/// use osprofiler_oslo::{RemoteError, RpcServer, ServerOptions};
/// let server = RpcServer::start(
///     "amqp://guest:guest@127.0.0.1:5672/%2f",
///     ServerOptions::new("compute", "host-1"),
///     |req| async move {
///         match req.method.as_str() {
///             "ping" => Ok(serde_json::json!("pong")),
///             other => Err(RemoteError::new("NoSuchMethod", other)),
///         }
///     },
/// )
/// .await?;
/// # server.stop().await; Ok(()) }
/// ```
pub struct RpcServer {
    conn: Connection,
    channel: Channel,
    consumer_tags: Vec<String>,
    /// Tells the serving task to take no more requests and drain those in flight until the
    /// instant sent.
    stop: Option<oneshot::Sender<tokio::time::Instant>>,
    task: tokio::task::JoinHandle<()>,
}

/// How long [`RpcServer::stop`] lets requests in flight finish (oslo.messaging's
/// `graceful_shutdown_timeout` default).
pub const DEFAULT_STOP_TIMEOUT: Duration = Duration::from_secs(60);

impl fmt::Debug for RpcServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RpcServer").finish_non_exhaustive()
    }
}

impl RpcServer {
    /// Connects to `url`, declares the exchange and the queues `<topic>` and
    /// `<topic>.<server>` and serves each request with `handler` (concurrently, up to
    /// [`ServerOptions::prefetch`] at once).
    pub async fn start<H, Fut>(
        url: &str,
        opts: ServerOptions,
        handler: H,
    ) -> Result<RpcServer, lapin::Error>
    where
        H: Fn(Request) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Value, RemoteError>> + Send + 'static,
    {
        let conn = crate::amqp::connect(url, ConnectionProperties::default()).await?;
        let ch = conn.create_channel().await?;
        if opts.prefetch > 0 {
            // `global`: one limit for the channel's two consumers (topic and topic.server).
            ch.basic_qos(opts.prefetch, BasicQosOptions { global: true })
                .await?;
        }
        declare_control_exchange(&ch, &opts.exchange).await?;
        let mut streams = Vec::new();
        let mut consumer_tags = Vec::new();
        for queue in [
            opts.topic.clone(),
            format!("{}.{}", opts.topic, opts.server),
        ] {
            // As oslo.messaging declares a topic consumer's queue: not durable, not
            // auto-deleted, no arguments; bound with its own name.
            ch.queue_declare(
                queue.as_str().into(),
                QueueDeclareOptions::default(),
                FieldTable::default(),
            )
            .await?;
            ch.queue_bind(
                queue.as_str().into(),
                opts.exchange.as_str().into(),
                queue.as_str().into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await?;
            let tag = format!("osprofiler-rs-{}", unique_id());
            let consumer = ch
                .basic_consume(
                    queue.as_str().into(),
                    tag.as_str().into(),
                    BasicConsumeOptions::default(),
                    FieldTable::default(),
                )
                .await?;
            consumer_tags.push(tag);
            streams.push(consumer);
        }
        let handler = Arc::new(handler);
        let opts = Arc::new(opts);
        let mut incoming = futures_util::stream::select_all(streams);
        let (stop, mut stopped) = oneshot::channel::<tokio::time::Instant>();
        let channel = ch.clone();
        let task = tokio::spawn(async move {
            let mut in_flight = tokio::task::JoinSet::new();
            let deadline = loop {
                tokio::select! {
                    biased;
                    at = &mut stopped => break at.ok(),
                    Some(_) = in_flight.join_next(), if !in_flight.is_empty() => {}
                    next = incoming.next() => match next {
                        Some(Ok(delivery)) => {
                            let (ch, handler, opts) = (ch.clone(), handler.clone(), opts.clone());
                            in_flight.spawn(async move {
                                handle(&ch, delivery, &*handler, &opts).await;
                            });
                        }
                        Some(Err(_)) => continue,
                        // The broker cancelled the consumers (queue deleted, failover): the
                        // requests in flight still finish and answer.
                        None => {
                            log::warn!(
                                "osprofiler oslo RpcServer: the broker ended the consumers; \
                                 finishing the requests in flight, taking no more"
                            );
                            break Some(tokio::time::Instant::now() + DEFAULT_STOP_TIMEOUT);
                        }
                    },
                }
            };
            // Stopping: the requests in flight finish, until the deadline. Those still running
            // then are abandoned unacknowledged, as are the ones delivered but not started:
            // RabbitMQ gives them to another server when the connection closes.
            if let Some(deadline) = deadline {
                let drained = async { while in_flight.join_next().await.is_some() {} };
                let _ = tokio::time::timeout_at(deadline, drained).await;
            }
            in_flight.abort_all();
        });
        Ok(RpcServer {
            conn,
            channel,
            consumer_tags,
            stop: Some(stop),
            task,
        })
    }

    /// Stops gracefully: takes no more requests, lets those in flight finish (their replies
    /// are sent) for up to [`DEFAULT_STOP_TIMEOUT`], then closes the connection, which hands
    /// the requests not finished back to RabbitMQ for another server. See
    /// [`RpcServer::stop_within`].
    pub async fn stop(self) {
        self.stop_within(DEFAULT_STOP_TIMEOUT).await;
    }

    /// [`RpcServer::stop`] with the time requests in flight get to finish. A SIGTERM handler
    /// calls this: no call is lost, none is answered twice unless its handler was cut off at
    /// the deadline (it then runs again on another server, as oslo.messaging's would).
    pub async fn stop_within(mut self, timeout: Duration) {
        let now = tokio::time::Instant::now();
        // `Duration::MAX` means "as long as they take".
        let deadline = now
            .checked_add(timeout)
            .unwrap_or_else(|| now + Duration::from_secs(100 * 365 * 86_400));
        // The serving task starts no more requests and waits for those in flight (told
        // first: cancelling the consumers ends their streams, which it would take for a lost
        // connection); then RabbitMQ delivers nothing more to this server.
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(deadline);
        }
        // A broker that went silent must not hold the stop beyond its deadline (and a short
        // grace for the cancel and close frames).
        let grace = deadline + Duration::from_secs(5);
        let cancel = async {
            for tag in &self.consumer_tags {
                let _ = self
                    .channel
                    .basic_cancel(tag.as_str().into(), BasicCancelOptions::default())
                    .await;
            }
        };
        let _ = tokio::time::timeout_at(grace, cancel).await;
        let _ = (&mut self.task).await;
        let _ = tokio::time::timeout_at(grace, self.conn.close(200, "bye".into())).await;
    }
}

/// The caller's trace, if its key is one this server trusts.
fn trusted_root(trace: Option<&TraceContext>, opts: &ServerOptions) -> Option<Profiler> {
    let t = trace?;
    let trusted = match &opts.trusted_keys {
        Some(keys) => keys.contains(&t.hmac_key),
        None => osprofiler_core::identity::hmac_keys().contains(&t.hmac_key),
    };
    if !trusted || t.base_id.is_empty() {
        return None;
    }
    t.profiler()
}

async fn publish_reply(ch: &Channel, reply_q: &str, reply: &Reply) {
    let _ = ch
        .basic_publish(
            "".into(),
            reply_q.into(),
            BasicPublishOptions::default(),
            &reply.to_body(),
            json_properties(),
        )
        .await;
}

/// Serves one delivery: a reply for a call, an ack in every case but a malformed message,
/// which is rejected without requeueing (dead-lettered where configured).
async fn handle<H, Fut>(
    ch: &Channel,
    delivery: lapin::message::Delivery,
    handler: &H,
    opts: &ServerOptions,
) where
    H: Fn(Request) -> Fut,
    Fut: Future<Output = Result<Value, RemoteError>>,
{
    let req = match Request::parse(&delivery.data, opts.max_message) {
        Ok(r) => r,
        Err(e) => {
            log::warn!("osprofiler: rejected an RPC message on {}: {e}", opts.topic);
            // If the reply queue can be read at all, tell the caller instead of letting it wait.
            if let Some((id, q)) = reply_address(&delivery.data, opts.max_message) {
                let reply = Reply {
                    msg_id: id,
                    outcome: Err(RemoteError::new("MessageRejected", e.to_string())),
                };
                publish_reply(ch, &q, &reply).await;
            }
            let _ = delivery.reject(BasicRejectOptions { requeue: false }).await;
            return;
        }
    };
    let root = trusted_root(req.trace.as_ref(), opts);
    let info = || {
        let name = format!("{}.{}", opts.endpoint, req.method);
        rpc_info(&name, &req.args, opts.hide_args)
    };
    let mut point = match &root {
        Some(r) => r.child("rpc", info),
        None if opts.sampler.is_active() => {
            let process_keys;
            let keys = match &opts.trusted_keys {
                Some(keys) => &keys[..],
                None => {
                    process_keys = osprofiler_core::identity::hmac_keys();
                    &process_keys[..]
                }
            };
            let key = keys.first().map_or("", String::as_str);
            opts.sampler.start_point(key, "rpc", info)
        }
        None => Trace::inactive(),
    };
    let reply_to = req.msg_id.clone().zip(req.reply_q.clone());
    let method = req.method.clone();
    let run = std::panic::AssertUnwindSafe(handler(req).in_trace(point.profiler()));
    let outcome = match run.catch_unwind().await {
        Ok(outcome) => outcome,
        Err(panic) => {
            let text = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "the handler panicked".into());
            log::error!("osprofiler: RPC handler for {method} panicked: {text}");
            Err(RemoteError::new("HandlerPanicked", text))
        }
    };
    if let Err(e) = &outcome {
        point.error_with(&e.class, &e.message);
    }
    drop(point);
    if let Some((msg_id, reply_q)) = reply_to {
        publish_reply(ch, &reply_q, &Reply { msg_id, outcome }).await;
    }
    let _ = delivery.ack(BasicAckOptions::default()).await;
}
