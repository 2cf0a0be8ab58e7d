//! [`RpcClient`]: calls and casts to oslo.messaging servers, each an `rpc` point whose id is
//! the callee's parent.

use crate::amqp::{CONTROL_EXCHANGE, declare_control_exchange};
use crate::context::TraceContext;
use crate::envelope::{DEFAULT_MAX_MESSAGE, json_properties, unique_id};
use crate::point::rpc_info;
use crate::{RemoteError, Reply, Request};
use futures_util::StreamExt as _;
use lapin::options::{BasicConsumeOptions, BasicPublishOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Channel, Connection, ConnectionProperties};
use osprofiler_core::Trace;
use serde::Serialize;
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::oneshot;

/// Where a client's request goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The topic.
    pub topic: String,
    /// A server of the topic (the request then goes to `<topic>.<server>` only).
    pub server: Option<String>,
    /// The endpoint namespace.
    pub namespace: Option<String>,
    /// The API version (default `1.0`).
    pub version: String,
}

impl Target {
    /// Any server of `topic`.
    pub fn topic(topic: impl Into<String>) -> Self {
        Target {
            topic: topic.into(),
            server: None,
            namespace: None,
            version: "1.0".into(),
        }
    }

    /// This server of the topic.
    pub fn server(mut self, server: impl Into<String>) -> Self {
        self.server = Some(server.into());
        self
    }

    fn routing_key(&self) -> String {
        match &self.server {
            Some(s) => format!("{}.{s}", self.topic),
            None => self.topic.clone(),
        }
    }
}

/// Why a call failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum RpcError {
    /// No reply within the client's timeout.
    Timeout {
        /// The method called.
        method: String,
        /// How long the client waited.
        after: Duration,
    },
    /// The remote side raised an exception.
    Remote(RemoteError),
    /// The broker connection failed.
    Transport(lapin::Error),
    /// The arguments or the context do not serialize to a JSON object (keyword arguments).
    Arguments(String),
}

impl fmt::Display for RpcError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RpcError::Timeout { method, after } => {
                write!(f, "no reply to {method} within {after:?}")
            }
            RpcError::Remote(e) => write!(f, "remote error: {e}"),
            RpcError::Transport(e) => write!(f, "RabbitMQ: {e}"),
            RpcError::Arguments(e) => write!(f, "bad call: {e}"),
        }
    }
}

impl std::error::Error for RpcError {}

impl From<lapin::Error> for RpcError {
    fn from(e: lapin::Error) -> Self {
        RpcError::Transport(e)
    }
}

type Pending = Arc<Mutex<HashMap<String, oneshot::Sender<Reply>>>>;

/// Keyword arguments or a context as a JSON object (`()` and `None`: empty).
fn object(what: &str, v: impl Serialize) -> Result<Map<String, Value>, RpcError> {
    match serde_json::to_value(v) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(Value::Null) => Ok(Map::new()),
        Ok(other) => Err(RpcError::Arguments(format!(
            "{what} must serialize to a JSON object (keyword arguments by name), not {}",
            match other {
                Value::Array(_) => "an array",
                Value::String(_) => "a string",
                Value::Number(_) => "a number",
                _ => "a boolean",
            }
        ))),
        Err(e) => Err(RpcError::Arguments(format!("{what}: {e}"))),
    }
}

/// An RPC client calling oslo.messaging servers (see the [crate docs](crate)).
///
/// ```no_run
/// # async fn demo() -> Result<(), osprofiler_oslo::RpcError> {
/// use osprofiler_oslo::{RpcClient, Target};
/// // oslo.messaging's transport_url, as in the service's [DEFAULT] section.
/// let client = RpcClient::connect("rabbit://guest:guest@127.0.0.1:5672/").await?;
/// // Keyword arguments and context: anything that serializes to a JSON object.
/// let args = serde_json::json!({"instance_id": "42"});
/// let context = serde_json::json!({"user": "alice", "project_id": "p1"});
/// let state = client.call(&Target::topic("compute"), "get_state", args, context).await?;
/// # Ok(()) }
/// ```
pub struct RpcClient {
    conn: Connection,
    ch: Channel,
    exchange: String,
    reply_q: String,
    pending: Pending,
    timeout: Duration,
    max_message: usize,
    hide_args: bool,
}

impl fmt::Debug for RpcClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RpcClient")
            .field("exchange", &self.exchange)
            .field("reply_q", &self.reply_q)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl RpcClient {
    /// Connects to `url` with the control exchange `openstack`, a reply queue of its own
    /// (`reply_<uuid>`, as oslo.messaging names and declares it) and a 60 s call timeout.
    pub async fn connect(url: &str) -> Result<RpcClient, RpcError> {
        Self::connect_to(url, CONTROL_EXCHANGE).await
    }

    /// [`RpcClient::connect`] with another control exchange.
    pub async fn connect_to(url: &str, exchange: &str) -> Result<RpcClient, RpcError> {
        let conn = crate::amqp::connect(url, ConnectionProperties::default()).await?;
        let ch = conn.create_channel().await?;
        declare_control_exchange(&ch, exchange).await?;
        let reply_q = format!("reply_{}", unique_id());
        let mut args = FieldTable::default();
        // oslo.messaging's rabbit_transient_queues_ttl: an unused reply queue goes in 30 min.
        args.insert("x-expires".into(), AMQPValue::LongLongInt(1_800_000));
        ch.queue_declare(
            reply_q.as_str().into(),
            QueueDeclareOptions::default(),
            args,
        )
        .await?;
        let mut replies = ch
            .basic_consume(
                reply_q.as_str().into(),
                format!("osprofiler-rs-{}", unique_id()).as_str().into(),
                BasicConsumeOptions {
                    no_ack: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await?;
        let pending: Pending = Arc::default();
        let waiting = pending.clone();
        tokio::spawn(async move {
            while let Some(delivery) = replies.next().await {
                let Ok(delivery) = delivery else { continue };
                match Reply::parse(&delivery.data, DEFAULT_MAX_MESSAGE) {
                    Ok(reply) => {
                        let tx = waiting
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .remove(&reply.msg_id);
                        if let Some(tx) = tx {
                            let _ = tx.send(reply);
                        }
                    }
                    Err(e) => log::warn!("osprofiler: ignored a malformed RPC reply: {e}"),
                }
            }
        });
        Ok(RpcClient {
            conn,
            ch,
            exchange: exchange.to_owned(),
            reply_q,
            pending,
            timeout: Duration::from_secs(60),
            max_message: DEFAULT_MAX_MESSAGE,
            hide_args: false,
        })
    }

    /// How long a call waits for its reply.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Record no `args`/`kwargs` on the caller's `rpc` points.
    pub fn hide_args(mut self, hide: bool) -> Self {
        self.hide_args = hide;
        self
    }

    async fn send(&self, target: &Target, req: &Request) -> Result<(), RpcError> {
        let body = req.to_body();
        if body.len() > self.max_message {
            return Err(RpcError::Remote(RemoteError::new(
                "MessageTooLarge",
                format!("{} bytes, over {}", body.len(), self.max_message),
            )));
        }
        self.ch
            .basic_publish(
                self.exchange.as_str().into(),
                target.routing_key().as_str().into(),
                BasicPublishOptions::default(),
                &body,
                json_properties(),
            )
            .await?;
        Ok(())
    }

    fn request(
        &self,
        target: &Target,
        method: &str,
        args: Map<String, Value>,
        context: Map<String, Value>,
    ) -> Request {
        Request {
            namespace: target.namespace.clone(),
            version: Some(target.version.clone()),
            context,
            // Inside the caller's rpc point: the callee's parent.
            trace: TraceContext::current(),
            ..Request::new(method, args)
        }
    }

    /// Calls `method` and waits for its result: an `rpc` point of the caller, the callee's
    /// parent. `args` are the keyword arguments and `context` the request context: anything
    /// that serializes to a JSON object (a struct, a map, `serde_json::json!({...})`; `()` for
    /// none). A remote exception is [`RpcError::Remote`]; no reply in time
    /// [`RpcError::Timeout`]; arguments that are not an object [`RpcError::Arguments`].
    pub async fn call(
        &self,
        target: &Target,
        method: &str,
        args: impl Serialize,
        context: impl Serialize,
    ) -> Result<Value, RpcError> {
        let (args, context) = (object("args", args)?, object("context", context)?);
        let mut point = Trace::new("rpc", || rpc_info(method, &args, self.hide_args));
        let mut req = self.request(target, method, args, context);
        let msg_id = unique_id();
        req.msg_id = Some(msg_id.clone());
        req.reply_q = Some(self.reply_q.clone());
        let (tx, rx) = oneshot::channel();
        self.pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(msg_id.clone(), tx);
        let result = match self.send(target, &req).await {
            Err(e) => Err(e),
            Ok(()) => match tokio::time::timeout(self.timeout, rx).await {
                Ok(Ok(reply)) => reply.outcome.map_err(RpcError::Remote),
                _ => Err(RpcError::Timeout {
                    method: method.to_owned(),
                    after: self.timeout,
                }),
            },
        };
        self.pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&msg_id);
        match &result {
            Err(RpcError::Remote(e)) => point.error_with(&e.class, &e.message),
            Err(e) => point.error_with("RpcError", e),
            Ok(_) => {}
        }
        result
    }

    /// Casts `method` (no reply): an `rpc` point of the caller. `args` and `context` as for
    /// [`RpcClient::call`].
    pub async fn cast(
        &self,
        target: &Target,
        method: &str,
        args: impl Serialize,
        context: impl Serialize,
    ) -> Result<(), RpcError> {
        let (args, context) = (object("args", args)?, object("context", context)?);
        let mut point = Trace::new("rpc", || rpc_info(method, &args, self.hide_args));
        let req = self.request(target, method, args, context);
        let r = self.send(target, &req).await;
        if let Err(e) = &r {
            point.error_with("RpcError", e);
        }
        r
    }

    /// Closes the connection (the reply queue expires after 30 min unused, as oslo's do).
    pub async fn close(self) {
        let _ = self.conn.close(200, "bye".into()).await;
    }
}
