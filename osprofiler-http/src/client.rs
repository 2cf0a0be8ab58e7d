//! The client side for `http::Request` services: [`TraceClientLayer`].

use crate::{RequestInfo, X_TRACE_HMAC, X_TRACE_INFO, X_TRACE_PROVISIONAL, point_name};
use osprofiler_core::{Trace, TraceFutureExt, scope::InTrace};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tower::{Layer, Service};

/// A tower layer for HTTP clients (`Service<http::Request<B>>`, e.g. a hyper-util client):
/// when a trace is active, it records an `http`/`https` point around the call and adds the
/// signed trace headers, with the new point as the callee's parent. With no active trace the
/// request goes out untouched.
///
/// Start info `{"requests": {"method", "query", "path", "hostname", "port", "scheme"}}`, stop
/// info `{"requests": {"status_code"}}`; a transport error stops the point with
/// `etype`/`message`.
#[derive(Clone, Copy, Debug, Default)]
pub struct TraceClientLayer {
    traceparent: bool,
}

impl TraceClientLayer {
    /// The layer.
    pub fn new() -> Self {
        TraceClientLayer::default()
    }

    /// Also send a W3C `traceparent` header (default off; see [`crate::w3c`]).
    pub fn traceparent(mut self, on: bool) -> Self {
        self.traceparent = on;
        self
    }
}

impl<S> Layer<S> for TraceClientLayer {
    type Service = TraceClient<S>;
    fn layer(&self, inner: S) -> TraceClient<S> {
        TraceClient {
            inner,
            traceparent: self.traceparent,
        }
    }
}

/// The service made by [`TraceClientLayer`].
#[derive(Clone, Debug)]
pub struct TraceClient<S> {
    inner: S,
    traceparent: bool,
}

/// A client call's open point, with the info its start and stop messages share.
pub(crate) struct ClientPoint {
    trace: Trace,
    info: Arc<RequestInfo>,
}

impl ClientPoint {
    /// A profiler positioned at the point, to run the call in.
    pub(crate) fn profiler(&self) -> Option<osprofiler_core::Profiler> {
        self.trace.profiler()
    }

    /// Stops the point with the response status, or with the transport error.
    pub(crate) fn finish<E: std::fmt::Display + ?Sized>(
        mut self,
        result: Result<http::StatusCode, &E>,
        etype: &str,
    ) {
        match result {
            Ok(status) => {
                self.info.set_status(status);
                self.trace.finish_shared(self.info);
            }
            Err(e) => self.trace.error_with(etype, e),
        }
    }
}

/// Opens the client point for a request and adds the signed headers to it.
pub(crate) fn start_client_point(
    method: &http::Method,
    url: &http::Uri,
    headers: &mut http::HeaderMap,
    traceparent: bool,
) -> ClientPoint {
    let scheme = url.scheme_str().unwrap_or("http");
    let info = Arc::new(RequestInfo::new(method, url, true));
    let point = Trace::new_detached(point_name(scheme), || {
        osprofiler_core::message::lazy_shared(info.clone())
    });
    if let Some(h) = point.profiler().and_then(|p| p.headers()) {
        // Base64 and hex are always valid header values; the strings' buffers become the
        // values (no copy).
        let value = |s: String| http::HeaderValue::from_maybe_shared(bytes::Bytes::from(s));
        if let (Ok(info), Ok(mac)) = (value(h.x_trace_info), value(h.x_trace_hmac)) {
            headers.insert(X_TRACE_INFO.clone(), info);
            headers.insert(X_TRACE_HMAC.clone(), mac);
        }
        if let Some(p) = h.x_trace_provisional {
            headers.insert(
                X_TRACE_PROVISIONAL.clone(),
                http::HeaderValue::from_static(p),
            );
        }
    }
    if traceparent {
        let value = point
            .profiler()
            .and_then(|p| crate::w3c::traceparent(p.base_id(), p.id()));
        if let Some(v) = value.and_then(|v| http::HeaderValue::from_str(&v).ok()) {
            headers.insert(crate::w3c::TRACEPARENT, v);
        }
    }
    ClientPoint { trace: point, info }
}

impl<S, B, ResBody> Service<http::Request<B>> for TraceClient<S>
where
    S: Service<http::Request<B>, Response = http::Response<ResBody>>,
    S::Error: std::fmt::Display,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = TraceClientFuture<S::Future>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: http::Request<B>) -> Self::Future {
        if !osprofiler_core::is_active() {
            if self.traceparent
                && let Some(v) = crate::w3c::unsampled()
            {
                req.headers_mut().insert(crate::w3c::TRACEPARENT, v);
            }
            return TraceClientFuture {
                kind: TraceClientFutureKind::Untraced {
                    inner: self.inner.call(req),
                },
            };
        }
        // Parts, to borrow the method and URI while adding headers (cloning the URI allocates).
        let (mut parts, body) = req.into_parts();
        let point = start_client_point(
            &parts.method,
            &parts.uri,
            &mut parts.headers,
            self.traceparent,
        );
        let req = http::Request::from_parts(parts, body);
        let ctx = point.profiler();
        let inner = osprofiler_core::scope::with_trace(ctx.clone(), || self.inner.call(req));
        TraceClientFuture {
            kind: TraceClientFutureKind::Traced {
                inner: inner.in_trace(ctx),
                point: Some(point),
            },
        }
    }
}

pin_project_lite::pin_project! {
    /// The response future of [`TraceClient`]. No boxing either way.
    pub struct TraceClientFuture<F> {
        #[pin]
        kind: TraceClientFutureKind<F>,
    }
}

pin_project_lite::pin_project! {
    #[project = TraceClientFutureProj]
    enum TraceClientFutureKind<F> {
        Untraced { #[pin] inner: F },
        Traced { #[pin] inner: InTrace<F>, point: Option<ClientPoint> },
    }
}

impl<F, ResBody, E> Future for TraceClientFuture<F>
where
    F: Future<Output = Result<http::Response<ResBody>, E>>,
    E: std::fmt::Display,
{
    type Output = F::Output;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        match self.project().kind.project() {
            TraceClientFutureProj::Untraced { inner } => inner.poll(cx),
            TraceClientFutureProj::Traced { inner, point } => {
                let out = std::task::ready!(inner.poll(cx));
                if let Some(point) = point.take() {
                    point.finish(
                        out.as_ref().map(http::Response::status),
                        std::any::type_name::<E>(),
                    );
                }
                Poll::Ready(out)
            }
        }
    }
}
