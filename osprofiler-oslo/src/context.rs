//! The trace in an RPC request context: what a caller puts there and a callee continues.
//!
//! OpenStack services carry the trace in the RPC request context as
//! `"trace_info": {"hmac_key", "base_id", "parent_id"}` (oslo.messaging's context
//! serializer); [`TraceContext`] is that object, with [`inject`](TraceContext::inject) /
//! [`extract`](TraceContext::extract) for a JSON context and [`serve`] to run the callee's
//! handler inside the caller's trace. No broker is involved: this module needs no feature.

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
/// use osprofiler_oslo::context::{serve, TraceContext};
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
