//! Traces a small async program — an incoming request, nested and concurrent points, a traced
//! function that fails — collects the messages in memory and prints them and the trace tree.
//!
//! Run: `cargo run -p osprofiler-core --example quickstart`
use osprofiler_core::{
    self as osp, Trace, memory::MemoryCollector, notifier::QueueNotifier, trace,
};
use std::time::Duration;

#[derive(Debug)]
struct NotFound(u64);
impl std::fmt::Display for NotFound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "user {} not found", self.0)
    }
}

/// A fake query: a `db` point with its SQL, as the DB adapters record it.
async fn query(sql: &'static str, ms: u64) {
    let point = Trace::new_detached("db", || osp::info!({"db": {"statement": sql}}));
    point
        .scope(tokio::time::sleep(Duration::from_millis(ms)))
        .await;
}

#[trace(name = "rpc")]
async fn load_user(id: u64) -> Result<String, NotFound> {
    query("SELECT name FROM users WHERE id = $1", 3).await;
    if id == 0 {
        return Err(NotFound(id));
    }
    Ok(format!("user-{id}"))
}

#[trace(name = "rpc", hide_args)]
async fn load_orders(user: &str) -> usize {
    // Two queries at once: each is its own child of this point.
    tokio::join!(
        query("SELECT * FROM orders WHERE user = $1", 4),
        query("SELECT count(*) FROM carts", 2)
    );
    user.len()
}

#[tokio::main]
async fn main() {
    osp::identity::set_identity(Some("demo"), Some("quickstart"), None);
    let memory = MemoryCollector::new();
    let notifier =
        QueueNotifier::start(memory.clone(), Default::default()).expect("start the notifier");
    osp::notifier::set(notifier.clone());

    // What the HTTP server layer does for a request that carries valid trace headers.
    let base_id = tokio::spawn(osp::trace_scope(async {
        let p = osp::init("SECRET_KEY", None, None).expect("profiling is enabled");
        let _request = Trace::new(
            "wsgi",
            || osp::info!({"request": {"method": "GET", "path": "/users/7"}}),
        );
        let user = load_user(7).await.expect("user 7 exists");
        let (orders, missing) = tokio::join!(load_orders(&user), load_user(0));
        println!(
            "handled request: {user} has {orders} orders; user 0: {}",
            missing.unwrap_err()
        );
        p.base_id().to_string()
    }))
    .await
    .expect("request task");

    notifier.flush_for(Duration::from_secs(5));
    let messages = memory.trace(&base_id);
    println!("\n{} messages of trace {base_id}:", messages.len());
    for m in &messages {
        println!("  {}", osp::pyjson::to_string(m));
    }
    println!("\n{}", osp::report::Report::build(&messages).render_tree());
}
