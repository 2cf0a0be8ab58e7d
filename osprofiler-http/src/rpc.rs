//! Trace context for RPC: what a caller puts in its request context and a callee continues.
//!
//! OpenStack services carry the trace in the RPC request context as
//! `"trace_info": {"hmac_key", "base_id", "parent_id"}` (oslo.messaging's context
//! serializer); [`TraceContext`] is that object, with [`inject`](TraceContext::inject) /
//! [`extract`](TraceContext::extract) for a JSON context and [`serve`] to run the callee's
//! handler inside the caller's trace.

use osprofiler_core::{Profiler, Trace, scope::InTrace, scope::TraceOwned};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::future::Future;

/// The key of the trace context in an oslo-style RPC request context.
pub const CONTEXT_KEY: &str = "trace_info";

/// A trace handed over an RPC call: the trace, the caller's current point (the callee's
/// parent) and the key that signs onward HTTP calls.
///
/// ```
/// use osprofiler_http::rpc::TraceContext;
/// osprofiler_core::init("SECRET_KEY", Some("b"), Some("p"));
/// let mut ctx = serde_json::Map::new();
/// TraceContext::inject(&mut ctx);
/// assert_eq!(ctx["trace_info"]["base_id"], "b");
/// let got = TraceContext::extract(&serde_json::Value::Object(ctx)).unwrap();
/// assert_eq!(got.parent_id, "p");
/// osprofiler_core::clean();
/// ```
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TraceContext {
    /// The key that admitted the trace.
    pub hmac_key: String,
    /// The trace's id.
    pub base_id: String,
    /// The caller's current point.
    pub parent_id: String,
}

/// The key is not shown.
impl std::fmt::Debug for TraceContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TraceContext")
            .field("hmac_key", &"[REDACTED]")
            .field("base_id", &self.base_id)
            .field("parent_id", &self.parent_id)
            .finish()
    }
}

impl TraceContext {
    /// The context of the current trace, if one is active.
    pub fn current() -> Option<Self> {
        let p = osprofiler_core::get()?;
        Some(TraceContext {
            hmac_key: p.hmac_key().to_owned(),
            base_id: p.base_id().to_string(),
            parent_id: p.id().to_string(),
        })
    }

    /// Adds `"trace_info"` to an RPC request context when a trace is active.
    pub fn inject(context: &mut Map<String, Value>) {
        if let Some(ctx) = Self::current()
            && let Ok(v) = serde_json::to_value(ctx)
        {
            context.insert(CONTEXT_KEY.into(), v);
        }
    }

    /// Reads `"trace_info"` from an RPC request context; `None` when absent or malformed.
    pub fn extract(context: &Value) -> Option<Self> {
        serde_json::from_value(context.get(CONTEXT_KEY)?.clone()).ok()
    }

    /// A trace root for this context (not installed; see [`serve`]).
    pub fn profiler(&self) -> Option<Profiler> {
        Profiler::new_root(&self.hmac_key, Some(&self.base_id), Some(&self.parent_id))
    }
}

/// Runs an RPC handler inside the caller's trace (`caller`: from [`TraceContext::profiler`],
/// or from verified AMQP headers), in an `rpc` point with `{"function": {"name": method}}`;
/// without a caller trace the handler runs untraced (and never in whatever trace the polling
/// task happens to have).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use osprofiler_http::rpc::{serve, TraceContext};
/// let ctx = TraceContext { hmac_key: "k".into(), base_id: "b".into(), parent_id: "p".into() };
/// let seen = serve(ctx.profiler(), "compute.get", async {
///     osprofiler_core::get().map(|p| p.base_id().to_string())
/// })
/// .await;
/// assert_eq!(seen.as_deref(), Some("b"));
/// # }
/// ```
pub fn serve<F: Future>(
    caller: Option<Profiler>,
    method: &str,
    handler: F,
) -> InTrace<TraceOwned<F>> {
    let point = match caller {
        Some(root) => root.child("rpc", || {
            let mut info = osprofiler_core::Info::new();
            info.insert("function".into(), serde_json::json!({"name": method}));
            info
        }),
        None => Trace::inactive(),
    };
    point.scope(handler)
}

/// Trace headers in AMQP message headers (lapin's `FieldTable`): the same signed
/// `X-Trace-Info`/`X-Trace-HMAC` pair as over HTTP, so an untrusted broker cannot forge traces.
#[cfg(feature = "amqp")]
pub mod amqp {
    use lapin::tcp::{AsyncTcpStream, TLSConfig};
    use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
    use lapin::uri::{AMQPAuthority, AMQPScheme, AMQPUri, AMQPUserInfo};
    use lapin::{Connection, ConnectionProperties};
    use osprofiler_core::headers::{HmacKeys, Verified, X_TRACE_HMAC, X_TRACE_INFO};

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
    /// let conn = osprofiler_http::rpc::amqp::connect(
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

    /// The AMQP URIs a URL names, one per host. `amqp://` and `amqps://` URIs are taken as
    /// AMQP defines them. oslo.messaging's `transport_url` is read as oslo.messaging reads it:
    /// `rabbit://[user:pass@]host[:port][,[user:pass@]host2[:port]…]/[virtual_host][?query]`
    /// (also `kombu+rabbit://`, `amqp` for `rabbit`): user, password and virtual host are
    /// percent-decoded; an empty virtual host is `/`, the broker's default, and `//` names `/`
    /// too; a host without credentials uses `guest`/`guest` and one without a port 5672;
    /// `?ssl=1` (or `true`) means TLS; other query options (oslo's driver options) are
    /// ignored. Errors never contain the password.
    ///
    /// ```
    /// use osprofiler_http::rpc::amqp::transport_uris;
    /// let uris = transport_uris("rabbit://nova:s%40cret@r1,nova:s%40cret@r2:5673/").unwrap();
    /// assert_eq!(uris.len(), 2);
    /// assert_eq!((uris[0].authority.host.as_str(), uris[0].authority.port), ("r1", 5672));
    /// assert_eq!(uris[1].authority.userinfo.password, "s@cret");
    /// assert_eq!(uris[1].vhost, "/");
    /// assert_eq!(transport_uris("rabbit://h/nova").unwrap()[0].vhost, "nova");
    /// assert_eq!(transport_uris("rabbit://h//").unwrap()[0].vhost, "/");
    /// // AMQP URIs keep AMQP's rules; an IP address stays the host.
    /// let amqp = transport_uris("amqp://u:p@10.0.0.5:5673/%2f").unwrap();
    /// assert_eq!((amqp[0].authority.host.as_str(), amqp[0].authority.port), ("10.0.0.5", 5673));
    /// assert_eq!(amqp[0].vhost, "/");
    /// ```
    pub fn transport_uris(url: &str) -> Result<Vec<AMQPUri>, String> {
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| "expected rabbit://host:5672/ or amqp://host:5672/%2f".to_owned())?;
        let scheme = scheme.to_ascii_lowercase();
        if scheme == "amqp" || scheme == "amqps" {
            if !rest.contains(',') {
                // AMQP's own rules (virtual host, query options) from lapin's parser; the host
                // from ours: lapin's takes an IP address for "localhost".
                let mut uri = url
                    .parse::<AMQPUri>()
                    .map_err(|_| "bad AMQP URI (amqp://user:pass@host:5672/vhost)".to_owned())?;
                let authority = rest.split(['/', '?']).next().unwrap_or_default();
                let hostport = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
                let host = match hostport.rsplit_once(':') {
                    Some((h, p)) if !p.contains(']') => h,
                    _ => hostport,
                };
                let host = host.trim_start_matches('[').trim_end_matches(']');
                if !host.is_empty() {
                    uri.authority.host = decode(host)?;
                }
                return Ok(vec![uri]);
            }
        } else if !matches!(scheme.as_str(), "rabbit" | "kombu+rabbit" | "kombu+amqp") {
            return Err(format!(
                "unsupported transport {scheme:?}: use rabbit:// (oslo.messaging's transport_url) \
                 or amqp:// / amqps://"
            ));
        }
        let (location, query) = rest.split_once('?').unwrap_or((rest, ""));
        let (netloc, path) = match location.find('/') {
            Some(i) => (&location[..i], &location[i + 1..]),
            None => (location, ""),
        };
        let vhost = decode(path)?;
        let vhost = if vhost.is_empty() {
            "/".to_owned()
        } else {
            vhost
        };
        let tls = scheme == "amqps"
            || query.split('&').any(|p| {
                matches!(
                    p.split_once('=').map(|(k, v)| (k, v.to_ascii_lowercase())),
                    Some(("ssl", ref v)) if v == "1" || v == "true"
                )
            });
        let mut uris = Vec::new();
        for host in netloc.split(',').filter(|h| !h.is_empty()) {
            let (cred, hostport) = match host.rsplit_once('@') {
                Some((c, h)) => (Some(c), h),
                None => (None, host),
            };
            let (user, pass) = match cred {
                Some(c) => {
                    let (u, p) = c.split_once(':').unwrap_or((c, ""));
                    (decode(u)?, decode(p)?)
                }
                None => ("guest".to_owned(), "guest".to_owned()),
            };
            let (hostname, port) = match hostport.rsplit_once(':') {
                Some((h, p)) if !p.contains(']') => (
                    h,
                    p.parse::<u16>()
                        .map_err(|_| format!("bad port {p:?} in the transport URL"))?,
                ),
                _ => (hostport, 5672),
            };
            let hostname = hostname.trim_start_matches('[').trim_end_matches(']');
            if hostname.is_empty() {
                return Err("a host of the transport URL is empty".into());
            }
            uris.push(AMQPUri {
                scheme: if tls {
                    AMQPScheme::AMQPS
                } else {
                    AMQPScheme::AMQP
                },
                authority: AMQPAuthority {
                    userinfo: AMQPUserInfo {
                        username: user,
                        password: pass,
                    },
                    host: hostname.to_owned(),
                    port,
                },
                vhost: vhost.clone(),
                ..Default::default()
            });
        }
        if uris.is_empty() {
            // oslo.messaging's default: localhost, guest/guest.
            uris.push(AMQPUri {
                vhost,
                ..Default::default()
            });
        }
        Ok(uris)
    }

    /// `%XX` decoded; a bad sequence is an error that does not repeat the text.
    fn decode(s: &str) -> Result<String, String> {
        let b = s.as_bytes();
        let mut out = Vec::with_capacity(b.len());
        let mut i = 0;
        while i < b.len() {
            if b[i] == b'%' {
                let hex = s
                    .get(i + 1..i + 3)
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or("bad percent-encoding in the transport URL")?;
                out.push(hex);
                i += 3;
            } else {
                out.push(b[i]);
                i += 1;
            }
        }
        String::from_utf8(out).map_err(|_| "the transport URL is not UTF-8 once decoded".into())
    }

    /// Adds the signed headers of the current trace (parent = the current point) to `headers`;
    /// does nothing when no trace is active.
    pub fn inject(headers: &mut FieldTable) {
        if let Some(h) = osprofiler_core::trace_headers() {
            headers.insert(
                ShortString::from(X_TRACE_INFO),
                AMQPValue::LongString(LongString::from(h.x_trace_info)),
            );
            headers.insert(
                ShortString::from(X_TRACE_HMAC),
                AMQPValue::LongString(LongString::from(h.x_trace_hmac)),
            );
        }
    }

    /// Verifies the trace headers of a received message against `keys`.
    pub fn extract(headers: Option<&FieldTable>, keys: &HmacKeys) -> Option<Verified> {
        let table = headers?.inner();
        let get = |name: &str| match table.get(name) {
            Some(AMQPValue::LongString(s)) => Some(s.as_bytes().to_vec()),
            _ => None,
        };
        keys.verify_bytes(&get(X_TRACE_INFO)?, &get(X_TRACE_HMAC)?)
    }
}
