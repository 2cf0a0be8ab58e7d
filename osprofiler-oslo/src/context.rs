//! The trace in an RPC request context: what a caller puts there and a callee continues.
//!
//! OpenStack services carry the trace in the RPC request context as
//! `"trace_info": {"hmac_key", "base_id", "parent_id"}` (oslo.messaging's context
//! serializer); [`TraceContext`] is that object, with [`inject`](TraceContext::inject) /
//! [`extract`](TraceContext::extract) for a JSON context and [`serve`] to run the callee's
//! handler inside the caller's trace. No broker is involved: this module needs no feature.
//!
//! A provisional trace (see [`osprofiler_core::sampling`]) also puts
//! `"osprofiler_provisional": "keep=errors"` (or `"keep=none"`) in the context, next to
//! `trace_info` rather than in it: Python's callees hand `trace_info` to `profiler.init(**…)`,
//! which takes no other key, and ignore context entries they do not know.

use osprofiler_core::sampling::Provisional;
use osprofiler_core::{Profiler, Trace, scope::InTrace, scope::TraceOwned};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::future::Future;

/// The key of the trace context in an oslo-style RPC request context.
pub const CONTEXT_KEY: &str = "trace_info";

/// The key that marks the trace provisional ([`osprofiler_core::sampling::CONTEXT_KEY`]).
pub const PROVISIONAL_KEY: &str = osprofiler_core::sampling::CONTEXT_KEY;

/// A trace handed over an RPC call: the trace, the caller's current point (the callee's
/// parent) and the key that signs onward HTTP calls.
///
/// ```
/// use osprofiler_oslo::context::TraceContext;
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
    /// Set when the trace is provisional: sent as the context's `osprofiler_provisional`
    /// entry, not inside `trace_info`.
    #[serde(skip)]
    pub provisional: Option<Provisional>,
}

/// The key is not shown.
impl std::fmt::Debug for TraceContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TraceContext")
            .field("hmac_key", &"[REDACTED]")
            .field("base_id", &self.base_id)
            .field("parent_id", &self.parent_id)
            .field("provisional", &self.provisional)
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
            provisional: osprofiler_core::sampling::current(),
        })
    }

    /// Adds `"trace_info"` to an RPC request context when a trace is active (and
    /// `"osprofiler_provisional"` when it is provisional).
    pub fn inject(context: &mut Map<String, Value>) {
        if let Some(ctx) = Self::current()
            && let Ok(v) = serde_json::to_value(&ctx)
        {
            context.insert(CONTEXT_KEY.into(), v);
            if let Some(p) = ctx.provisional {
                context.insert(PROVISIONAL_KEY.into(), p.header_value().into());
            }
        }
    }

    /// Reads `"trace_info"` (and `"osprofiler_provisional"`) from an RPC request context;
    /// `None` when absent or malformed.
    ///
    /// ```
    /// use osprofiler_oslo::context::TraceContext;
    /// let ctx = serde_json::json!({
    ///     "trace_info": {"hmac_key": "k", "base_id": "b", "parent_id": "p"},
    ///     "osprofiler_provisional": "keep=errors",
    /// });
    /// let t = TraceContext::extract(&ctx).unwrap();
    /// assert!(t.provisional.is_some_and(|p| p.keep_errors));
    /// ```
    pub fn extract(context: &Value) -> Option<Self> {
        let mut t: TraceContext = serde_json::from_value(context.get(CONTEXT_KEY)?.clone()).ok()?;
        t.provisional = context
            .get(PROVISIONAL_KEY)
            .and_then(Value::as_str)
            .and_then(Provisional::parse);
        Some(t)
    }

    /// A trace root for this context (not installed; see [`serve`]). A provisional trace
    /// gives `None` when this service's collector cannot stage.
    pub fn profiler(&self) -> Option<Profiler> {
        osprofiler_core::headers::Verified {
            base_id: self.base_id.as_str().into(),
            parent_id: Some(self.parent_id.as_str().into()),
            hmac_key: self.hmac_key.as_str().into(),
            provisional: self.provisional,
        }
        .profiler()
    }
}

/// Runs an RPC handler inside the caller's trace (`caller`: from [`TraceContext::profiler`],
/// or from verified AMQP headers), in an `rpc` point with `{"function": {"name": method}}`;
/// without a caller trace the handler runs untraced (and never in whatever trace the polling
/// task happens to have).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use osprofiler_oslo::context::{serve, TraceContext};
/// let ctx = TraceContext { hmac_key: "k".into(), base_id: "b".into(), parent_id: "p".into(), provisional: None };
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
