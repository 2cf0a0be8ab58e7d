//! #[trace] and #[trace_impl]: info, hidden args and results, errors, async, cancellation.
use osprofiler_core::{self as osp, trace, trace_impl};
use osprofiler_testkit::*;

#[derive(Debug)]
struct MyError;
impl std::fmt::Display for MyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("it broke")
    }
}

#[trace(name = "rpc")]
fn add(a: i32, b: &str) -> i32 {
    a + b.len() as i32
}

#[trace(name = "rpc", hide_args, hide_result = false)]
fn secret(password: String) -> Result<usize, MyError> {
    if password.is_empty() {
        return Err(MyError);
    }
    Ok(password.len())
}

#[trace]
fn early_return(x: u8) -> Option<u8> {
    if x == 0 {
        return None;
    }
    Some(x)
}

#[trace(name = "db", hide_result = false)]
async fn fetch(id: u64) -> Result<String, std::io::Error> {
    tokio::task::yield_now().await; // suspended once: the point must survive it
    let _inner = osp::Trace::new("inner", osp::Info::new);
    if id == 0 {
        return Err(std::io::Error::other("no row"));
    }
    Ok(format!("row {id}"))
}

struct Repo {
    table: &'static str,
}

#[trace_impl(name = "db")]
impl Repo {
    pub fn count(&self, filter: &str) -> usize {
        self.helper() + filter.len() + self.table.len()
    }
    fn helper(&self) -> usize {
        1
    }
    #[no_trace]
    pub fn untraced(&self) -> usize {
        2
    }
    pub async fn load(&self, id: u32) -> u32 {
        tokio::task::yield_now().await;
        id
    }
}

struct Private;

#[trace_impl(name = "svc", trace_private, hide_args)]
impl Private {
    fn hidden(&self, _x: u8) {}
}

fn function_of(m: &serde_json::Value) -> &serde_json::Value {
    &m["info"]["function"]
}

#[test]
fn sync_fn_records_name_args_and_hides_result_by_default() {
    collector();
    let p = osp::init("k", None, None).unwrap();
    assert_eq!(add(2, "abc"), 5);
    assert_eq!(early_return(0), None);
    osp::clean();
    let msgs = messages_of(&base(&p));
    let start = one(&msgs, "rpc-start");
    assert_eq!(function_of(start)["name"], "macros::add");
    assert_eq!(function_of(start)["args"], "(2, \"abc\")");
    assert_eq!(function_of(start)["kwargs"], "{}");
    assert!(
        one(&msgs, "rpc-stop")["info"].get("function").is_none(),
        "result hidden by default"
    );
    assert_eq!(
        function_of(one(&msgs, "early_return-start"))["args"],
        "(0,)"
    );
    assert_eq!(
        one(&msgs, "early_return-stop")["trace_id"],
        one(&msgs, "early_return-start")["trace_id"]
    );
}

#[test]
fn hidden_args_shown_result_and_errors() {
    collector();
    let p = osp::init("k", None, None).unwrap();
    assert_eq!(secret("hunter2".into()).unwrap(), 7);
    assert!(secret(String::new()).is_err());
    osp::clean();
    let msgs = messages_of(&base(&p));
    let starts: Vec<_> = msgs.iter().filter(|m| m["name"] == "rpc-start").collect();
    assert_eq!(starts.len(), 2);
    for s in &starts {
        assert!(function_of(s).get("args").is_none(), "hide_args");
        assert!(!s.to_string().contains("hunter2"));
    }
    let stops: Vec<_> = msgs.iter().filter(|m| m["name"] == "rpc-stop").collect();
    assert_eq!(function_of(stops[0])["result"], "Ok(7)");
    assert_eq!(stops[1]["info"]["etype"], "macros::MyError");
    assert_eq!(stops[1]["info"]["message"], "it broke");
    assert!(stops[1]["info"].get("function").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_fn_nests_children_and_records_errors() {
    collector();
    let base = osp::trace_scope(async {
        let p = osp::init("k", None, None).unwrap();
        let (a, b) = tokio::join!(fetch(1), fetch(0));
        assert_eq!(a.unwrap(), "row 1");
        assert!(b.is_err());
        base(&p)
    })
    .await;
    let msgs = messages_of(&base);
    let starts: Vec<_> = msgs.iter().filter(|m| m["name"] == "db-start").collect();
    assert_eq!(starts.len(), 2);
    for s in &starts {
        assert_eq!(
            s["parent_id"],
            base.as_str(),
            "both calls are children of the root, not of each other"
        );
    }
    let ids: Vec<_> = starts.iter().map(|s| s["trace_id"].clone()).collect();
    let inner_parents: Vec<_> = msgs
        .iter()
        .filter(|m| m["name"] == "inner-start")
        .map(|m| m["parent_id"].clone())
        .collect();
    assert_eq!(inner_parents.len(), 2);
    assert!(inner_parents.iter().all(|p| ids.contains(p)));
    assert_ne!(inner_parents[0], inner_parents[1]);
    let stops: Vec<_> = msgs.iter().filter(|m| m["name"] == "db-stop").collect();
    let err_stop = stops
        .iter()
        .find(|s| s["info"].get("etype").is_some())
        .unwrap();
    assert_eq!(err_stop["info"]["etype"], "std::io::error::Error");
    assert_eq!(err_stop["info"]["message"], "no row");
    let ok_stop = stops
        .iter()
        .find(|s| s["info"].get("etype").is_none())
        .unwrap();
    assert_eq!(ok_stop["info"]["function"]["result"], "Ok(\"row 1\")");
}

#[tokio::test]
async fn cancelled_async_fn_stops_its_point_as_cancelled() {
    collector();
    let base = osp::trace_scope(async {
        let p = osp::init("k", None, None).unwrap();
        #[trace(name = "slow")]
        async fn slow() {
            std::future::pending::<()>().await;
        }
        // Started (polled once, pending), then dropped: cancelled.
        osprofiler_testkit::conformance::poll_once(slow()).await;
        base(&p)
    })
    .await;
    let msgs = messages_of(&base);
    assert_eq!(one(&msgs, "slow-stop")["info"]["cancelled"], true);
}

#[tokio::test]
async fn trace_impl_traces_public_methods_only() {
    collector();
    let base = osp::trace_scope(async {
        let p = osp::init("k", None, None).unwrap();
        let repo = Repo { table: "users" };
        assert_eq!(repo.count("x"), 7);
        assert_eq!(repo.untraced(), 2);
        assert_eq!(repo.load(9).await, 9);
        Private.hidden(1);
        base(&p)
    })
    .await;
    let msgs = messages_of(&base);
    let names: Vec<String> = msgs
        .iter()
        .filter(|m| m["name"].as_str().unwrap().ends_with("-start"))
        .map(|m| m["info"]["function"]["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        names,
        [
            "macros::Repo::count",
            "macros::Repo::load",
            "macros::Private::hidden"
        ]
    );
    assert_eq!(function_of(&msgs[0])["args"], "(\"x\",)");
    assert!(function_of(one(&msgs, "svc-start")).get("args").is_none());
}
