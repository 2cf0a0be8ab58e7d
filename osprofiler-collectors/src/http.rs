//! The HTTP(S) client the HTTP-based collectors (OTLP, Elasticsearch) share: hyper over plain
//! TCP or rustls (ring), the system's root certificates plus an optional CA file.

use osprofiler_core::notifier::DriverError;
use std::time::Duration;

/// HTTP/1.1 over plain TCP or rustls (ring), with the system's roots and any given CA.
pub(crate) type Client = hyper_util::client::legacy::Client<
    hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
    http_body_util::Full<bytes::Bytes>,
>;

/// `%XX` sequences decoded (URL user info and query values, the OTel header variables):
/// [`osprofiler_core::config::percent_decode`], strict about malformed sequences.
pub(crate) fn percent_decode(s: &str) -> Result<String, DriverError> {
    osprofiler_core::config::percent_decode(s).map_err(|e| DriverError::new(e.to_string()))
}

/// An error with its causes (hyper's own text is terse: "client error (Connect)").
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cause = c.source();
    }
    s
}

/// The HTTP(S) client: rustls on ring with the system's root certificates, plus those of the
/// PEM file `ca` when given. Call it inside the runtime that will drive it (the connection
/// pool's background tasks run there).
pub(crate) fn client(ca: Option<&str>) -> Result<Client, DriverError> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject as _;
    let mut roots = rustls::RootCertStore::empty();
    // A machine without a CA bundle still talks plain HTTP; HTTPS then needs `ca`.
    for cert in rustls_native_certs::load_native_certs().certs {
        let _ = roots.add(cert);
    }
    if let Some(path) = ca {
        let pem = std::fs::read(path).map_err(|e| {
            DriverError::with_source(format!("cannot read the CA certificate file {path}"), e)
        })?;
        let mut added = 0;
        for cert in CertificateDer::pem_slice_iter(&pem) {
            let cert = cert.map_err(|e| {
                DriverError::new(format!("{path}: not a PEM certificate bundle: {e:?}"))
            })?;
            roots.add(cert).map_err(|e| {
                DriverError::with_source(format!("{path}: a certificate rustls refuses"), e)
            })?;
            added += 1;
        }
        if added == 0 {
            return Err(DriverError::new(format!("{path} holds no PEM certificate")));
        }
    }
    let tls = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| DriverError::with_source("cannot set up TLS", e))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .build();
    Ok(
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build(connector),
    )
}

/// The TLS crypto provider: the process's default when the application installed one (an
/// aws-lc-rs provider with post-quantum key exchange, say), else *ring* — this crate's
/// dependency, which rustls 0.23.48 deprecated for lacking post-quantum key exchange; still
/// supported and audited, and it builds without a C toolchain beyond `cc`.
pub(crate) fn provider() -> std::sync::Arc<rustls::crypto::CryptoProvider> {
    rustls::crypto::CryptoProvider::get_default()
        .cloned()
        .unwrap_or_else(|| {
            #[allow(deprecated)]
            let ring = rustls::crypto::ring::default_provider();
            std::sync::Arc::new(ring)
        })
}

/// Sends `req` and reads the whole answer, both within `timeout`. The error names `target`
/// (a URL without credentials) and is a retryable one: the server could not be reached or
/// did not answer in time.
pub(crate) async fn send(
    client: &Client,
    req: http::Request<http_body_util::Full<bytes::Bytes>>,
    timeout: Duration,
    target: &str,
) -> Result<(http::StatusCode, bytes::Bytes), DriverError> {
    use http_body_util::BodyExt as _;
    let cannot = |e: &dyn std::fmt::Display| DriverError::new(format!("{target}: {e}"));
    let exchange = async {
        let resp = client
            .request(req)
            .await
            .map_err(|e| cannot(&error_chain(&e)))?;
        let status = resp.status();
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| cannot(&error_chain(&e)))?
            .to_bytes();
        Ok((status, body))
    };
    tokio::time::timeout(timeout, exchange).await.map_err(|_| {
        cannot(&format_args!(
            "no answer within {} s",
            timeout.as_secs_f32()
        ))
    })?
}
