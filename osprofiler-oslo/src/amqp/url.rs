//! oslo.messaging's `transport_url` and AMQP URIs, read into lapin's `AMQPUri`s.

use lapin::uri::{AMQPAuthority, AMQPScheme, AMQPUri, AMQPUserInfo};
use osprofiler_core::config::PercentDecodeError;

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
/// use osprofiler_oslo::amqp::transport_uris;
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

/// `%XX` decoded by [`osprofiler_core::config::percent_decode`] (a `%` without two hex digits
/// after it is an error, as is text that is not UTF-8 once decoded); errors do not repeat the
/// text.
fn decode(s: &str) -> Result<String, String> {
    osprofiler_core::config::percent_decode(s).map_err(|e| match e {
        PercentDecodeError::NotUtf8 => "the transport URL is not UTF-8 once decoded".into(),
        _ => "bad percent-encoding in the transport URL".into(),
    })
}
