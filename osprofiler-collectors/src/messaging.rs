//! The messaging collector: OSProfiler's Ceilometer path, as oslo.messaging notifications on
//! RabbitMQ.
//!
//! Each message is published exactly as Python's `messaging://` driver publishes it through
//! oslo.messaging (notification format v1, no `oslo.message` envelope), so any oslo.messaging
//! notification listener — Ceilometer included — receives it:
//!
//! * exchange `openstack` (the control exchange; topic type, not durable), routing key
//!   `profiler.info`; the queue `profiler.info` is declared and bound, as oslo.messaging does,
//!   so nothing is lost before a listener exists;
//! * properties `content_type: application/json`, `content_encoding: utf-8`,
//!   `delivery_mode: 2`, `priority: 0`;
//! * body (Python-style JSON): `{"message_id", "publisher_id": <host>, "event_type":
//!   "profiler.<service>", "priority": "INFO", "payload": <the message>, "timestamp":
//!   "YYYY-MM-DD HH:MM:SS.ffffff", "_unique_id"}`.
//!
//! Batches are published with publisher confirms. Reading looks at the queue without
//! consuming: every notification read is returned to it, in its order, so `trace show` and
//! `trace list` can be repeated and a listener such as Ceilometer still gets everything. A
//! driver made [`MessagingDriver::consuming`] takes the trace it reads off the queue instead
//! (only that trace's notifications; Python's reader drains the whole topic). While one reader
//! has the queue's notifications in hand, before it returns them, another reader sees them
//! missing: readers of the same queue should take turns.

use crate::rt::Rt;
use lapin::options::{
    BasicAckOptions, BasicGetOptions, BasicNackOptions, BasicPublishOptions, ConfirmSelectOptions,
    QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};
use osprofiler_core::message::Message;
use osprofiler_core::notifier::{DriverError, Reader, TraceSummary, Writer, summarize};
use osprofiler_oslo::amqp;
use serde_json::Value;
use std::task::Poll;
use std::time::Duration;
use tokio::sync::Mutex;

/// The broker used by `messaging://` with nothing after it.
pub const DEFAULT_TRANSPORT_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";
const TOPIC: &str = "profiler.info";

/// A collector publishing oslo.messaging notifications (see the [module docs](self)).
///
/// Connection strings: `messaging://` (RabbitMQ on 127.0.0.1:5672 as guest),
/// `messaging://user:password@host:port/vhost`, or
/// `messaging://?transport_url=rabbit://user:password@host:port/` as in oslo.config;
/// `&exchange=<name>` changes the control exchange.
///
/// ```no_run
/// use osprofiler_collectors::MessagingDriver;
/// use osprofiler_core::notifier::{Reader, Writer};
/// let bus = MessagingDriver::open("messaging://").unwrap();
/// for t in bus.list_traces().unwrap() {
///     println!("{} {}", t.base_id, t.timestamp);
/// }
/// ```
pub struct MessagingDriver {
    url: String,
    exchange: String,
    rt: Rt,
    channel: Mutex<Option<(Connection, Channel)>>,
    consume: bool,
}

impl std::fmt::Debug for MessagingDriver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MessagingDriver")
            .field("url", &osprofiler_core::config::redact(&self.url))
            .field("exchange", &self.exchange)
            .finish_non_exhaustive()
    }
}

fn amqp_err(what: &str, e: lapin::Error) -> DriverError {
    DriverError::with_source(what.to_owned(), e)
}

/// `%XX` decoding for query values (transport URLs are usually percent-encoded there): a `%`
/// without two hex digits stays as it is, bytes that are not UTF-8 become U+FFFD.
fn percent_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

/// The AMQP URL and exchange of a `messaging://` connection string.
fn parse(connection_string: &str) -> Result<(String, String), DriverError> {
    let rest = connection_string
        .split_once("://")
        .map(|(_, r)| r)
        .unwrap_or_default();
    let (authority, query) = rest.split_once('?').unwrap_or((rest, ""));
    // The authority is read as oslo.messaging reads a transport_url's (several hosts, its
    // virtual host rules): see osprofiler_oslo::amqp::transport_uris.
    let mut url = if authority.is_empty() {
        DEFAULT_TRANSPORT_URL.to_owned()
    } else {
        format!("rabbit://{authority}")
    };
    let mut exchange = amqp::CONTROL_EXCHANGE.to_owned();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        match k {
            "transport_url" => {
                let v = percent_decode(v);
                let (scheme, rest) = v
                    .split_once("://")
                    .ok_or_else(|| {
                        // Not a URL: it may be credentials; only its length is shown.
                        DriverError::new(format!(
                            "transport_url ({} characters) is not a URL (rabbit://user:pass@host:5672/)",
                            v.len()
                        ))
                    })?;
                if !matches!(
                    scheme,
                    "rabbit" | "amqp" | "amqps" | "kombu" | "kombu+rabbit"
                ) {
                    return Err(DriverError::new(format!(
                        "transport_url scheme {scheme:?} is not supported (rabbit:// or amqp://)"
                    )));
                }
                url = if scheme == "kombu" {
                    format!("rabbit://{rest}")
                } else {
                    v.clone()
                };
            }
            "exchange" => exchange = percent_decode(v),
            other => {
                return Err(DriverError::new(format!(
                    "unknown messaging:// option {other:?} (known: transport_url, exchange)"
                )));
            }
        }
    }
    // Checked now (connections are made lazily): a bad URL is an error at start-up.
    amqp::transport_uris(&url)
        .map_err(|e| DriverError::new(format!("messaging:// transport: {e}")))?;
    Ok((url, exchange))
}

/// Python's `str(datetime.utcnow())`: microseconds omitted when zero.
fn python_utcnow() -> String {
    let us = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64);
    let iso = osprofiler_core::clock::format_timestamp(us);
    let text = iso.replacen('T', " ", 1);
    text.strip_suffix(".000000")
        .map(str::to_owned)
        .unwrap_or(text)
}

/// The notification body for one message: oslo.messaging's keys in its order, written
/// straight from the message (no `Value` copy of the payload).
fn notification(m: &Message) -> Vec<u8> {
    use osprofiler_core::pyjson::write;
    let identity = m.identity();
    fn field(out: &mut Vec<u8>, first: bool, key: &str) {
        if !first {
            out.extend_from_slice(b", ");
        }
        write(out, key);
        out.extend_from_slice(b": ");
    }
    let mut out = Vec::with_capacity(1024);
    out.push(b'{');
    field(&mut out, true, "message_id");
    write(&mut out, &uuid::Uuid::new_v4().to_string());
    field(&mut out, false, "publisher_id");
    write(&mut out, identity.host());
    field(&mut out, false, "event_type");
    write(
        &mut out,
        &format!("profiler.{}", identity.service().unwrap_or("None")),
    );
    field(&mut out, false, "priority");
    write(&mut out, "INFO");
    field(&mut out, false, "payload");
    write(&mut out, m);
    field(&mut out, false, "timestamp");
    write(&mut out, &python_utcnow());
    field(&mut out, false, "_unique_id");
    write(&mut out, &uuid::Uuid::new_v4().simple().to_string());
    out.push(b'}');
    out
}

impl MessagingDriver {
    /// A driver for a `messaging://` connection string (see the type's docs). Connects on
    /// first use and again after any error.
    pub fn open(connection_string: &str) -> Result<MessagingDriver, DriverError> {
        let (url, exchange) = parse(connection_string)?;
        Ok(MessagingDriver {
            url,
            exchange,
            rt: Rt::new()?,
            channel: Mutex::new(None),
            consume: false,
        })
    }

    /// Whether reading a trace takes its notifications off the queue (default false: they
    /// are returned to it).
    pub fn consuming(mut self, consume: bool) -> Self {
        self.consume = consume;
        self
    }

    async fn connect(&self) -> Result<(Connection, Channel), DriverError> {
        let conn = tokio::time::timeout(
            Duration::from_secs(5),
            amqp::connect(&self.url, ConnectionProperties::default()),
        )
        .await
        .map_err(|_| DriverError::new("timed out connecting to RabbitMQ"))?
        .map_err(|e| amqp_err("cannot connect to RabbitMQ", e))?;
        let ch = conn
            .create_channel()
            .await
            .map_err(|e| amqp_err("cannot open an AMQP channel", e))?;
        amqp::declare_control_exchange(&ch, &self.exchange)
            .await
            .map_err(|e| amqp_err("cannot declare the notification exchange", e))?;
        ch.queue_declare(
            TOPIC.into(),
            QueueDeclareOptions::default(),
            FieldTable::default(),
        )
        .await
        .map_err(|e| amqp_err("cannot declare the profiler.info queue", e))?;
        ch.queue_bind(
            TOPIC.into(),
            self.exchange.as_str().into(),
            TOPIC.into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .map_err(|e| amqp_err("cannot bind the profiler.info queue", e))?;
        ch.confirm_select(ConfirmSelectOptions::default())
            .await
            .map_err(|e| amqp_err("cannot enable publisher confirms", e))?;
        Ok((conn, ch))
    }

    /// Runs `f` with the channel, connecting first if needed; forgets the connection after an
    /// error so the next call reconnects.
    async fn with_channel<T, F, Fut>(&self, f: F) -> Result<T, DriverError>
    where
        F: FnOnce(Channel) -> Fut,
        Fut: std::future::Future<Output = Result<T, DriverError>>,
    {
        let mut guard = self.channel.lock().await;
        if guard
            .as_ref()
            .is_none_or(|(c, ch)| !c.status().connected() || !ch.status().connected())
        {
            *guard = Some(self.connect().await?);
        }
        let ch = guard.as_ref().map(|(_, ch)| ch.clone()).expect("connected");
        let r = f(ch).await;
        if r.is_err() {
            *guard = None;
        }
        r
    }

    async fn publish(&self, batch: &[Message]) -> Result<(), DriverError> {
        let exchange = self.exchange.clone();
        self.with_channel(|ch| async move {
            let props = BasicProperties::default()
                .with_content_type("application/json".into())
                .with_content_encoding("utf-8".into())
                .with_delivery_mode(2)
                .with_priority(0)
                .with_headers(FieldTable::default());
            // Every publish of the batch is started before any is awaited: each one's frames
            // are queued for lapin's I/O thread at its first poll, in the batch's order, and
            // the thread writes them together. Awaiting each before starting the next cost a
            // wake-up of that thread and back per message, most of the client's CPU time.
            let bodies: Vec<Vec<u8>> = batch.iter().map(notification).collect();
            let mut sends: Vec<_> = bodies
                .iter()
                .map(|body| {
                    Box::pin(ch.basic_publish(
                        exchange.as_str().into(),
                        TOPIC.into(),
                        BasicPublishOptions::default(),
                        body,
                        props.clone(),
                    ))
                })
                .collect();
            let mut sent: Vec<Option<lapin::Result<_>>> = sends.iter().map(|_| None).collect();
            let (mut next, mut started) = (0, false);
            std::future::poll_fn(|cx| {
                // First every publish once, in order; later (they complete in order) from the
                // first one still pending up to the next pending one.
                for i in next..sends.len() {
                    if sent[i].is_some() {
                        continue;
                    }
                    match sends[i].as_mut().poll(cx) {
                        Poll::Ready(r) => sent[i] = Some(r),
                        Poll::Pending if started => break,
                        Poll::Pending => {}
                    }
                }
                started = true;
                while sent.get(next).is_some_and(Option::is_some) {
                    next += 1;
                }
                if next == sent.len() {
                    Poll::Ready(())
                } else {
                    Poll::Pending
                }
            })
            .await;
            drop(sends);
            let mut confirms = Vec::with_capacity(sent.len());
            for r in sent.into_iter().flatten() {
                confirms.push(r.map_err(|e| amqp_err("cannot publish a notification", e))?);
            }
            for c in confirms {
                let confirmation = c
                    .await
                    .map_err(|e| amqp_err("the broker did not confirm a notification", e))?;
                if confirmation.is_nack() {
                    return Err(DriverError::new("the broker refused a notification"));
                }
            }
            Ok(())
        })
        .await
    }

    /// Takes every ready notification from `profiler.info`, keeps (acks) those `keep` selects
    /// and puts the others back in the queue, in their order.
    async fn sweep(&self, keep: impl Fn(&Value) -> bool + Send) -> Result<Vec<Value>, DriverError> {
        self.with_channel(|ch| async move {
            let mut kept = Vec::new();
            let mut returned = Vec::new();
            loop {
                let got = ch
                    .basic_get(TOPIC.into(), BasicGetOptions::default())
                    .await
                    .map_err(|e| amqp_err("cannot read profiler.info", e))?;
                let Some(msg) = got else { break };
                let tag = msg.delivery.delivery_tag;
                let payload = serde_json::from_slice::<Value>(&msg.delivery.data)
                    .ok()
                    .map(|mut v| v["payload"].take());
                match payload {
                    Some(p) if keep(&p) => {
                        kept.push(p);
                        ch.basic_ack(tag, BasicAckOptions::default())
                            .await
                            .map_err(|e| amqp_err("cannot ack a notification", e))?;
                    }
                    _ => returned.push(tag),
                }
                if msg.message_count == 0 {
                    break;
                }
            }
            for tag in returned {
                ch.basic_nack(
                    tag,
                    BasicNackOptions {
                        requeue: true,
                        ..Default::default()
                    },
                )
                .await
                .map_err(|e| amqp_err("cannot return a notification to its queue", e))?;
            }
            // A method the broker answers, after the nacks on the same channel: once it has
            // answered, the notifications are back in the queue for every other reader.
            ch.queue_declare(
                TOPIC.into(),
                QueueDeclareOptions {
                    passive: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .map_err(|e| amqp_err("cannot check the profiler.info queue", e))?;
            Ok(kept)
        })
        .await
    }

    async fn peek_all(&self) -> Result<Vec<Value>, DriverError> {
        // Everything is returned to the queue; the payloads are copied out on the way.
        let seen = std::sync::Mutex::new(Vec::new());
        self.sweep(|p| {
            seen.lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(p.clone());
            false
        })
        .await?;
        Ok(seen.into_inner().unwrap_or_else(|e| e.into_inner()))
    }
}

impl Writer for MessagingDriver {
    fn name(&self) -> &str {
        "messaging"
    }

    fn notify(&self, batch: &[Message]) -> Result<(), DriverError> {
        if batch.is_empty() {
            return Ok(());
        }
        self.rt.run(self.publish(batch))
    }
}

impl Reader for MessagingDriver {
    /// The trace's notifications in `profiler.info`, left in the queue — or taken off it when
    /// the driver is [`MessagingDriver::consuming`]; other traces' notifications always stay.
    fn trace_messages(&self, base_id: &str) -> Result<Vec<Value>, DriverError> {
        if self.consume {
            return self.rt.run(self.sweep(|p| p["base_id"] == base_id));
        }
        let mut all = self.rt.run(self.peek_all())?;
        all.retain(|p| p["base_id"] == base_id);
        Ok(all)
    }

    fn list_traces(&self) -> Result<Vec<TraceSummary>, DriverError> {
        Ok(summarize(&self.rt.run(self.peek_all())?, false))
    }

    fn list_error_traces(&self) -> Result<Vec<TraceSummary>, DriverError> {
        Ok(summarize(&self.rt.run(self.peek_all())?, true))
    }

    /// One read of the queue (its notifications are returned to it), every trace in it
    /// computed from its messages.
    fn list(
        &self,
        filter: &osprofiler_core::listing::ListFilter,
    ) -> Result<Vec<osprofiler_core::listing::TraceListing>, DriverError> {
        let all = self.rt.run(self.peek_all())?;
        Ok(osprofiler_core::listing::list_messages(&all, filter))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_strings() {
        assert_eq!(
            parse("messaging://").unwrap(),
            (DEFAULT_TRANSPORT_URL.to_owned(), "openstack".to_owned())
        );
        assert_eq!(
            parse("messaging://u:p@mq:5673/vh").unwrap().0,
            "rabbit://u:p@mq:5673/vh"
        );
        assert_eq!(
            parse("messaging://?transport_url=rabbit%3A%2F%2Fu%3Ap%40mq%3A5672%2F&exchange=nova")
                .unwrap(),
            ("rabbit://u:p@mq:5672/".to_owned(), "nova".to_owned())
        );
        // oslo's several hosts.
        let (url, _) = parse("messaging://u:p@mq1:5672,u:p@mq2:5672/").unwrap();
        assert_eq!(amqp::transport_uris(&url).unwrap().len(), 2);
        assert!(parse("messaging://u:p@mq:notaport/").is_err());
        assert!(parse("messaging://?transport_url=kafka://x").is_err());
        assert!(parse("messaging://?colour=blue").is_err());
    }

    #[test]
    fn timestamp_is_pythons_str_of_a_datetime() {
        let t = python_utcnow();
        assert_eq!(&t[10..11], " ");
        assert!(t.len() == 19 || t.len() == 26, "{t}");
    }
}
