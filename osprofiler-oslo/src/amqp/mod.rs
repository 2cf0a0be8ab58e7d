//! RabbitMQ for oslo.messaging peers (feature `amqp`): connections as oslo.messaging makes
//! them, and the trace in AMQP message headers.
//!
//! - [`connect`]: a lapin connection from an AMQP URI or an oslo.messaging `transport_url`
//!   ([`transport_uris`]), with TCP_NODELAY and [`CONNECT_TIMEOUT`] per host. The RPC server
//!   and client of this crate and the `messaging://` collector of `osprofiler-collectors`
//!   connect through it.
//! - [`CONTROL_EXCHANGE`] and [`declare_control_exchange`]: oslo.messaging's control exchange.
//! - [`inject`] / [`extract`]: trace headers in AMQP message headers (lapin's `FieldTable`):
//!   the same signed `X-Trace-Info`/`X-Trace-HMAC` pair as over HTTP, so an untrusted broker
//!   cannot forge traces.

mod headers;
mod url;

pub use headers::{extract, inject};
pub use url::transport_uris;

use lapin::options::ExchangeDeclareOptions;
use lapin::tcp::{AsyncTcpStream, TLSConfig};
use lapin::types::FieldTable;
use lapin::uri::{AMQPScheme, AMQPUri};
use lapin::{Channel, Connection, ConnectionProperties, ExchangeKind};

/// oslo.messaging's default control exchange: RPC requests and notifications go there.
pub const CONTROL_EXCHANGE: &str = "openstack";

/// Connects to the broker named by `url` — an AMQP URI (`amqp://`, `amqps://`) or an
/// oslo.messaging `transport_url` (`rabbit://`, see [`transport_uris`]) — with lapin on the
/// current tokio runtime and Nagle's algorithm off. With several hosts, they are tried in
/// turn from a random one (oslo.messaging shuffles them too) until one answers.
///
/// `lapin::Connection::connect` leaves Nagle on, and an AMQP message is several frames
/// (method, header, body) written apart: with Linux's delayed ACKs, a request/reply round
/// trip then often waits 40 ms for nothing (measured on loopback RabbitMQ: a 5–42 ms median
/// oslo.messaging call, against well under a millisecond with this). Every connection of
/// this crate and of the `messaging://` collector is made here.
///
/// ```no_run
/// # async fn demo() -> lapin::Result<()> {
/// let conn = osprofiler_oslo::amqp::connect(
///     "rabbit://nova:secret@rabbit1:5672,nova:secret@rabbit2:5672/",
///     lapin::ConnectionProperties::default(),
/// )
/// .await?;
/// # Ok(()) }
/// ```
pub async fn connect(url: &str, props: ConnectionProperties) -> lapin::Result<Connection> {
    let uris = transport_uris(url)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    let start = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos() as usize)
        % uris.len();
    let mut last = None;
    for uri in uris.iter().cycle().skip(start).take(uris.len()) {
        // A host that drops packets would hold the others back for minutes (SYN retries).
        let attempt =
            tokio::time::timeout(CONNECT_TIMEOUT, connect_uri(uri.clone(), props.clone()));
        match attempt.await {
            Ok(Ok(c)) => return Ok(c),
            Ok(Err(e)) => last = Some(e),
            Err(_) => {
                last = Some(lapin::Error::from(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!(
                        "{}:{} did not answer within {} s",
                        uri.authority.host,
                        uri.authority.port,
                        CONNECT_TIMEOUT.as_secs()
                    ),
                )))
            }
        }
    }
    Err(last.expect("at least one host"))
}

async fn connect_uri(uri: AMQPUri, props: ConnectionProperties) -> lapin::Result<Connection> {
    let runtime = lapin::runtime::default_runtime()?;
    Connection::connector(
        uri,
        runtime,
        async move |uri: AMQPUri, rt| {
            let addrs = rt.to_socket_addrs((uri.authority.host.clone(), uri.authority.port));
            let stream = AsyncTcpStream::connect(&rt, addrs).await?;
            if let AsyncTcpStream::Plain(s) = &stream {
                s.get_ref().set_nodelay(true)?;
            }
            Ok(match uri.scheme {
                AMQPScheme::AMQP => stream,
                AMQPScheme::AMQPS => {
                    stream
                        .into_tls(&uri.authority.host, TLSConfig::default())
                        .await?
                }
            })
        },
        props,
    )
    .await
}

/// How long one host of a transport URL gets to accept the connection.
pub const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Declares the control exchange `exchange` as oslo.messaging does: topic, not durable, not
/// auto-deleted.
pub async fn declare_control_exchange(ch: &Channel, exchange: &str) -> lapin::Result<()> {
    ch.exchange_declare(
        exchange.into(),
        ExchangeKind::Topic,
        ExchangeDeclareOptions::default(),
        FieldTable::default(),
    )
    .await
}
