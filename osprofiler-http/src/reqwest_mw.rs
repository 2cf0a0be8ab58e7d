//! [`TraceMiddleware`] for reqwest-middleware clients.

use crate::client::start_client_point;
use osprofiler_core::TraceFutureExt;

/// reqwest-middleware middleware: when a trace is active, records an `http`/`https` point
/// around the request and sends the signed trace headers (parent = that point). With no
/// active trace the request goes out untouched.
///
/// ```
/// let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
///     .with(osprofiler_http::TraceMiddleware::new())
///     .build();
/// # drop(client);
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct TraceMiddleware {
    traceparent: bool,
}

impl TraceMiddleware {
    /// The middleware.
    pub fn new() -> Self {
        TraceMiddleware::default()
    }

    /// Also send a W3C `traceparent` header (default off; see [`crate::w3c`]).
    pub fn traceparent(mut self, on: bool) -> Self {
        self.traceparent = on;
        self
    }
}

#[async_trait::async_trait]
impl reqwest_middleware::Middleware for TraceMiddleware {
    async fn handle(
        &self,
        mut req: reqwest::Request,
        extensions: &mut http::Extensions,
        next: reqwest_middleware::Next<'_>,
    ) -> reqwest_middleware::Result<reqwest::Response> {
        if !osprofiler_core::is_active() {
            if self.traceparent
                && let Some(v) = crate::w3c::unsampled()
            {
                req.headers_mut().insert(crate::w3c::TRACEPARENT, v);
            }
            return next.run(req, extensions).await;
        }
        let uri: Option<http::Uri> = req.url().as_str().parse().ok();
        let Some(uri) = uri else {
            return next.run(req, extensions).await;
        };
        let method = req.method().clone();
        let point = start_client_point(&method, &uri, req.headers_mut(), self.traceparent);
        let ctx = point.profiler();
        let result = next.run(req, extensions).in_trace(ctx).await;
        let etype = match &result {
            Err(reqwest_middleware::Error::Reqwest(_)) => "reqwest::Error",
            _ => "reqwest_middleware::Error",
        };
        point.finish(result.as_ref().map(reqwest::Response::status), etype);
        result
    }
}
