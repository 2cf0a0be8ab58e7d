//! The server side: [`OsProfilerLayer`], the equivalent of OSProfiler's WSGI middleware.

use crate::{RequestInfo, X_TRACE_HMAC, X_TRACE_INFO, X_TRACE_PROVISIONAL};
use osprofiler_core::headers::{HmacKeys, Verified};
use osprofiler_core::sampling::{Provisional, Sampler};
use osprofiler_core::{Profiler, Trace, TraceFutureExt, scope::InTrace};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tower::{Layer, Service};

/// A tower layer that continues the caller's trace for requests whose `X-Trace-Info` /
/// `X-Trace-HMAC` headers verify against one of its keys.
///
/// Such a request runs inside the trace (base id and parent from the headers, onward calls
/// signed with the key that matched), in a `wsgi` point whose start info is
/// `{"request": {"path", "query", "method", "scheme"}}` and whose stop info is
/// `{"response": {"status_code"}}`; a 5xx response is recorded as an error. The verified data
/// is also put in the request's extensions ([`Verified`]).
///
/// Every other request — no headers, a bad signature, garbage, non-ASCII, huge values — runs
/// untraced and unchanged, unless the layer's [`Sampler`] starts a trace for it (see
/// [`osprofiler_core::sampling`]; none by default): the layer never rejects a request and never
/// fails one because of trace headers.
///
/// A signed request that also carries `X-Trace-Provisional` continues its caller's
/// provisional trace: recorded, and stored for good only if some service keeps it. When this
/// service's collector cannot stage, such a request runs untraced.
///
/// ```
/// use axum::{Router, routing::get};
/// use osprofiler_http::OsProfilerLayer;
///
/// let app: Router = Router::new()
///     .route("/", get(|| async { "hello" }))
///     .layer(OsProfilerLayer::new(["new-key", "old-key"])); // rotation: new key first
/// ```
#[derive(Clone)]
pub struct OsProfilerLayer {
    keys: Arc<HmacKeys>,
    first_key: Option<Arc<str>>,
    enabled: bool,
    traceparent: bool,
    name: &'static str,
    sampler: Sampler,
}

/// Keys are shown as their count.
impl std::fmt::Debug for OsProfilerLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OsProfilerLayer")
            .field("keys", &self.keys)
            .field("enabled", &self.enabled)
            .field("traceparent", &self.traceparent)
            .field("name", &self.name)
            .field("sampler", &self.sampler)
            .finish_non_exhaustive()
    }
}

impl OsProfilerLayer {
    /// A layer that accepts headers signed with any of `hmac_keys`, tried in order.
    pub fn new<I: IntoIterator<Item = S>, S: Into<String>>(hmac_keys: I) -> Self {
        let keys: Vec<String> = hmac_keys.into_iter().map(Into::into).collect();
        OsProfilerLayer {
            first_key: keys.first().map(|k| Arc::from(k.as_str())),
            keys: Arc::new(HmacKeys::new(keys)),
            enabled: true,
            traceparent: false,
            name: "wsgi",
            sampler: Sampler::new(),
        }
    }

    /// A layer with the process-wide keys, sampler and `enabled` switch set by
    /// [`osprofiler_core::init_from_conf`] (keys and sampler are read now).
    pub fn from_global() -> Self {
        Self::new(osprofiler_core::identity::hmac_keys().iter().cloned())
            .sampler(osprofiler_core::sampling::global_sampler())
    }

    /// A layer configured from the `[profiler]` options (`hmac_keys`, `enabled`, and the
    /// sampler's `sample_ratio`, `sample_max_per_second`, `keep_slow_ms`, `keep_errors`,
    /// `tail_ratio`).
    ///
    /// ```
    /// use osprofiler_core::ProfilerConfig;
    /// use osprofiler_http::OsProfilerLayer;
    /// let conf = ProfilerConfig::from_ini_str("[profiler]\nenabled = true\nhmac_keys = k\nsample_ratio = 0.1\n").unwrap();
    /// let layer = OsProfilerLayer::from_conf(&conf);
    /// assert!(format!("{layer:?}").contains("ratio: 0.1"));
    /// ```
    pub fn from_conf(conf: &osprofiler_core::ProfilerConfig) -> Self {
        Self::new(conf.hmac_keys.iter().cloned())
            .enabled(conf.enabled)
            .sampler(Sampler::from_conf(conf))
    }

    /// Starts traces for requests without valid signed headers, as `sampler` decides: head
    /// sampled (stored) or provisional (kept if slow or failed); see
    /// [`osprofiler_core::sampling`]. Their onward calls are signed with the first key.
    /// Default: none, as Python OSProfiler.
    ///
    /// ```
    /// use axum::{Router, routing::get};
    /// use osprofiler_core::sampling::Sampler;
    /// use osprofiler_http::OsProfilerLayer;
    /// use std::time::Duration;
    ///
    /// let sampler = Sampler::new()
    ///     .ratio(0.01)
    ///     .keep_slow(Duration::from_millis(500)); // and failed requests
    /// let app: Router = Router::new()
    ///     .route("/", get(|| async { "hello" }))
    ///     .layer(OsProfilerLayer::new(["key"]).sampler(sampler));
    /// ```
    pub fn sampler(mut self, sampler: Sampler) -> Self {
        self.sampler = sampler;
        self
    }

    /// Turns the layer off (every request untraced) or on. The process-wide switch
    /// ([`osprofiler_core::set_enabled`]) is honoured as well.
    pub fn enabled(mut self, enabled: bool) -> Self {
        self.enabled = enabled;
        self
    }

    /// Also continue traces from a W3C `traceparent` header when no valid OSProfiler headers
    /// are present (default off: `traceparent` is unsigned, see [`crate::w3c`]). Onward calls of
    /// such a trace are signed with the first configured key.
    pub fn accept_traceparent(mut self, on: bool) -> Self {
        self.traceparent = on;
        self
    }

    /// The point name (default `wsgi`, as OSProfiler's middleware).
    pub fn point_name(mut self, name: &'static str) -> Self {
        self.name = name;
        self
    }
}

impl OsProfilerLayer {
    /// The trace a request continues, if any: verified OSProfiler headers, else (when
    /// accepted) a valid `traceparent`.
    fn admit<B>(&self, req: &http::Request<B>) -> Option<Admitted> {
        if !self.enabled || !osprofiler_core::is_enabled() {
            return None;
        }
        if req.headers().contains_key(&X_TRACE_INFO)
            && let Some(mut v) = verify_request(req, &self.keys)
        {
            v.provisional = req
                .headers()
                .get(&X_TRACE_PROVISIONAL)
                .and_then(|h| h.to_str().ok())
                .and_then(Provisional::parse);
            return Some(Admitted::Headers(v));
        }
        if self.traceparent {
            let value = req.headers().get(crate::w3c::TRACEPARENT)?.to_str().ok()?;
            let tp = crate::w3c::parse(value)?;
            if !tp.sampled {
                // The caller does not record: neither do we, but its context goes on.
                return Some(Admitted::Unsampled(Arc::from(tp.to_header()?)));
            }
            let key = self.first_key.as_deref().unwrap_or("");
            return Some(Admitted::Traceparent(Profiler::new_root(
                key,
                Some(&tp.base_id),
                Some(&tp.parent_id),
            )?));
        }
        if self.sampler.is_active() {
            return Some(Admitted::Sampled);
        }
        None
    }
}

/// How a request joined a trace.
enum Admitted {
    Headers(Verified),
    Traceparent(Profiler),
    /// An unsampled `traceparent`: not traced, forwarded by the clients.
    Unsampled(Arc<str>),
    /// No trace from the caller: the sampler decides.
    Sampled,
}

impl<S> Layer<S> for OsProfilerLayer {
    type Service = OsProfiler<S>;

    fn layer(&self, inner: S) -> OsProfiler<S> {
        OsProfiler {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service made by [`OsProfilerLayer`].
#[derive(Clone, Debug)]
pub struct OsProfiler<S> {
    inner: S,
    layer: OsProfilerLayer,
}

impl<S> OsProfiler<S> {
    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

/// Verifies a request's trace headers against `keys`; `None` unless both are present and valid.
pub fn verify_request<B>(req: &http::Request<B>, keys: &HmacKeys) -> Option<Verified> {
    let info = req.headers().get(&X_TRACE_INFO)?;
    let mac = req.headers().get(&X_TRACE_HMAC)?;
    keys.verify_bytes(info.as_bytes(), mac.as_bytes())
}

impl<S, ReqBody, ResBody> Service<http::Request<ReqBody>> for OsProfiler<S>
where
    S: Service<http::Request<ReqBody>, Response = http::Response<ResBody>>,
    S::Error: std::fmt::Display,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: http::Request<ReqBody>) -> Self::Future {
        let Some(admitted) = self.layer.admit(&req) else {
            return ResponseFuture {
                kind: ResponseFutureKind::Untraced {
                    inner: self.inner.call(req),
                },
            };
        };
        // One info for both messages: the request now, the status when the response is ready.
        let make_info = || Arc::new(RequestInfo::new(req.method(), req.uri(), false));
        let lazy = |info: &Arc<RequestInfo>| osprofiler_core::message::lazy_shared(info.clone());
        let name = self.layer.name;
        let (point, verified, info) = match admitted {
            Admitted::Headers(v) => {
                let info = make_info();
                (v.start_point(name, || lazy(&info)), Some(v), info)
            }
            Admitted::Traceparent(root) => {
                let info = make_info();
                (root.child(name, || lazy(&info)), None, info)
            }
            Admitted::Sampled => {
                // The info is made only for a request the sampler traces.
                let key = self.layer.first_key.as_deref().unwrap_or("");
                let mut made = None;
                let point = self.layer.sampler.start_point(key, name, || {
                    let info = made.insert(make_info());
                    lazy(info)
                });
                match made {
                    Some(info) if point.is_active() => (point, None, info),
                    _ => {
                        return ResponseFuture {
                            kind: ResponseFutureKind::Untraced {
                                inner: self.inner.call(req),
                            },
                        };
                    }
                }
            }
            Admitted::Unsampled(traceparent) => {
                let inner = crate::w3c::with_unsampled(&traceparent, || self.inner.call(req));
                return ResponseFuture {
                    kind: ResponseFutureKind::Unsampled { inner, traceparent },
                };
            }
        };
        let ctx = point.profiler();
        if let Some(verified) = verified {
            req.extensions_mut().insert(verified);
        }
        let inner = osprofiler_core::scope::with_trace(ctx.clone(), || self.inner.call(req));
        ResponseFuture {
            kind: ResponseFutureKind::Traced {
                inner: inner.in_trace(ctx),
                point: Some((point, info)),
            },
        }
    }
}

pin_project_lite::pin_project! {
    /// The response future of [`OsProfiler`]: the inner future as is for untraced requests,
    /// run inside the request's trace otherwise. No boxing either way.
    pub struct ResponseFuture<F> {
        #[pin]
        kind: ResponseFutureKind<F>,
    }
}

pin_project_lite::pin_project! {
    #[project = ResponseFutureProj]
    enum ResponseFutureKind<F> {
        Untraced { #[pin] inner: F },
        Unsampled { #[pin] inner: F, traceparent: Arc<str> },
        Traced { #[pin] inner: InTrace<F>, point: Option<(Trace, Arc<RequestInfo>)> },
    }
}

impl<F, ResBody, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<http::Response<ResBody>, E>>,
    E: std::fmt::Display,
{
    type Output = F::Output;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        match self.project().kind.project() {
            ResponseFutureProj::Untraced { inner } => inner.poll(cx),
            ResponseFutureProj::Unsampled { inner, traceparent } => {
                crate::w3c::with_unsampled(traceparent, || inner.poll(cx))
            }
            ResponseFutureProj::Traced { inner, point } => {
                let out = std::task::ready!(inner.poll(cx));
                if let Some((mut point, info)) = point.take() {
                    match &out {
                        Ok(resp) => {
                            let status = resp.status();
                            if status.is_server_error() {
                                point.error_with("HTTPServerError", status);
                            }
                            info.set_status(status);
                            point.finish_shared(info);
                        }
                        Err(e) => point.error_with(std::any::type_name::<E>(), e),
                    }
                }
                Poll::Ready(out)
            }
        }
    }
}
