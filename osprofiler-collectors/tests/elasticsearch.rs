//! The `elasticsearch://` driver against a real OpenSearch on 127.0.0.1:9200 (`scripts/test`
//! builds and starts one from Maven Central): Python OSProfiler 4.4's layout and reports both
//! ways, exact trace ids where UUID parts are shared, a trace of 25,000 points read back whole,
//! documents the server refuses dropped alone. Each test but the Python one writes into an
//! index of its own (`?index=`), deleted at the end.

use osprofiler_collectors::ElasticsearchDriver;
use osprofiler_core::notifier::{Reader, Writer};
use osprofiler_core::{self as osp, ProfilerConfig, Trace, message::Message, report::Report};
use osprofiler_testkit::{captured_trace, error_trace};
use serde_json::{Value, json};
use std::process::Command;

const ES: &str = "127.0.0.1:9200";
const HINT: &str = "OpenSearch at 127.0.0.1:9200 (scripts/test builds and starts it)";

/// One REST call to the server; the answer as JSON.
fn rest(method: &str, path: &str, body: Option<&Value>) -> Value {
    let body = body.map(Value::to_string);
    osprofiler_testkit::curl_json(HINT, method, &format!("http://{ES}{path}"), body.as_deref())
}

/// An index name for one test, deleted (with its error index and template) on drop.
struct TestIndex(String);

impl TestIndex {
    fn new(what: &str) -> TestIndex {
        TestIndex(format!("osp-test-{what}-{}", uuid::Uuid::new_v4().simple()))
    }
    fn driver(&self, extra: &str) -> ElasticsearchDriver {
        ElasticsearchDriver::open(&format!("elasticsearch://{ES}?index={}{extra}", self.0))
            .unwrap_or_else(|e| panic!("{HINT}: {e}"))
            .filter_error_trace(true)
    }
}

impl Drop for TestIndex {
    fn drop(&mut self) {
        rest(
            "DELETE",
            &format!("/{0},{0}-error?ignore_unavailable=true", self.0),
            None,
        );
        rest("DELETE", &format!("/_index_template/{}", self.0), None);
    }
}

/// Messages as JSON in one order (a search gives them in no particular order).
fn sorted(mut v: Vec<Value>) -> Vec<Value> {
    let key = |m: &Value| {
        (
            m["timestamp"].as_str().unwrap_or_default().to_owned(),
            m["trace_id"].as_str().unwrap_or_default().to_owned(),
            m["name"].as_str().unwrap_or_default().to_owned(),
        )
    };
    v.sort_by_key(key);
    v
}

fn values(msgs: &[Message]) -> Vec<Value> {
    sorted(msgs.iter().map(Message::to_value).collect())
}

#[test]
fn round_trip_template_listings_and_error_index() {
    let index = TestIndex::new("rt");
    let d = index.driver("");
    let (bad, bad_msgs) = error_trace(None);
    let (good, good_msgs) = captured_trace(|| drop(Trace::new("db", osp::Info::new)));
    d.notify(&bad_msgs)
        .unwrap_or_else(|e| panic!("{HINT}: {e}"));
    d.notify(&good_msgs).unwrap();
    // Sent again (a retry after a timeout): fixed document ids, nothing stored twice.
    d.notify(&bad_msgs).unwrap();

    assert_eq!(d.trace_messages(&bad).unwrap(), values(&bad_msgs));
    assert_eq!(
        d.get_report(&bad).unwrap(),
        Report::build(&values(&bad_msgs))
    );
    let listed = d.list_traces().unwrap();
    let first = &bad_msgs[0];
    assert!(
        listed
            .iter()
            .any(|t| t.base_id == bad && t.timestamp == first.timestamp())
    );
    assert!(listed.iter().any(|t| t.base_id == good));
    let errors = d.list_error_traces().unwrap();
    assert_eq!(
        errors
            .iter()
            .map(|t| t.base_id.as_str())
            .collect::<Vec<_>>(),
        [bad.as_str()]
    );
    assert!(d.trace_messages("no-such-trace").unwrap().is_empty());
    // Every read released its scroll, the empty one too.
    let stats = rest("GET", &format!("/{}/_stats/search", index.0), None);
    assert_eq!(
        stats["indices"][&index.0]["total"]["search"]["scroll_current"], 0,
        "{stats:#}"
    );

    // The template made the ids exact keywords and the timestamp a date.
    let mapping = rest("GET", &format!("/{}/_mapping", index.0), None);
    let props = &mapping[&index.0]["mappings"]["properties"];
    for field in [
        "base_id",
        "trace_id",
        "parent_id",
        "name",
        "project",
        "service",
    ] {
        assert_eq!(props[field]["type"], "keyword", "{field}: {props:#}");
    }
    assert_eq!(props["timestamp"]["type"], "date");
    assert_eq!(props["info"]["dynamic"], "false");
    // The error index holds one {base_id, timestamp} document for the trace.
    let marks = rest("GET", &format!("/{}-error/_search", index.0), None);
    let hits = marks["hits"]["hits"].as_array().unwrap();
    assert_eq!(hits.len(), 1, "{marks:#}");
    assert_eq!(hits[0]["_source"]["base_id"], bad.as_str());

    // Deleting a trace takes its documents and its error marker, and nothing else.
    assert_eq!(d.delete_trace(&bad).unwrap(), bad_msgs.len() as u64);
    assert!(d.trace_messages(&bad).unwrap().is_empty());
    assert!(!d.list_traces().unwrap().iter().any(|t| t.base_id == bad));
    assert!(d.list_error_traces().unwrap().is_empty());
    assert_eq!(d.trace_messages(&good).unwrap(), values(&good_msgs));

    // A reader before anything was written: no index, no traces, no error.
    let empty = TestIndex::new("empty").driver("");
    assert!(empty.list_traces().unwrap().is_empty());
    assert!(empty.trace_messages(&bad).unwrap().is_empty());
}

/// Two traces whose ids share four of their five hyphen-separated parts: a full-text match on
/// a text `base_id` (Python's query on Python's dynamic mapping) takes both.
#[test]
fn ids_sharing_uuid_parts_stay_apart() {
    let a = "3f2b8c1e-9d4a-4e6b-8f1c-2a7d5e9b0c11";
    let b = "3f2b8c1e-9d4a-4e6b-8f1c-5c0e8a2d7f44";
    let (_, a_msgs) = error_trace(Some(a));
    let (_, b_msgs) = error_trace(Some(b));

    // Our template: exact keywords.
    let ours = TestIndex::new("shared");
    let d = ours.driver("");
    d.notify(&a_msgs).unwrap();
    d.notify(&b_msgs).unwrap();
    assert_eq!(d.trace_messages(a).unwrap(), values(&a_msgs));
    assert_eq!(d.trace_messages(b).unwrap(), values(&b_msgs));

    // An index mapped dynamically, as Python's driver leaves it: text ids.
    let dynamic = TestIndex::new("dynamic");
    let mut bulk = String::new();
    for m in a_msgs.iter().chain(&b_msgs) {
        bulk.push_str(&json!({"index": {"_index": dynamic.0}}).to_string());
        bulk.push('\n');
        bulk.push_str(&m.to_value().to_string());
        bulk.push('\n');
    }
    let out = osprofiler_testkit::curl_json(
        HINT,
        "POST",
        &format!("http://{ES}/_bulk?refresh=true"),
        Some(&bulk),
    );
    assert_eq!(out["errors"], false, "{out:#}");
    let mapping = rest("GET", &format!("/{}/_mapping", dynamic.0), None);
    assert_eq!(
        mapping[&dynamic.0]["mappings"]["properties"]["base_id"]["type"],
        "text"
    );
    // What Python's query finds there: both traces.
    let python_query = rest(
        "POST",
        &format!("/{}/_search?size=100", dynamic.0),
        Some(&json!({"query": {"match": {"base_id": a}}})),
    );
    assert_eq!(
        python_query["hits"]["hits"].as_array().unwrap().len(),
        a_msgs.len() + b_msgs.len(),
        "a match query on text ids pulls in the other trace"
    );
    // What ours finds: one.
    let d = dynamic.driver("");
    assert_eq!(d.trace_messages(a).unwrap(), values(&a_msgs));
    assert_eq!(d.get_report(a).unwrap(), Report::build(&values(&a_msgs)));
}

#[test]
fn a_trace_of_25000_points_reads_back_whole() {
    let index = TestIndex::new("large");
    let mut conf = ProfilerConfig::default();
    conf.es_scroll_size = 4000; // several pages, and a last page that is not full
    let d =
        ElasticsearchDriver::from_conf(&format!("elasticsearch://{ES}?index={}", index.0), &conf)
            .unwrap();
    let (base, msgs) = captured_trace(|| {
        for i in 0..25_000 {
            drop(Trace::new("db", || osp::info!({"i": i})));
        }
    });
    assert_eq!(msgs.len(), 50_000);
    for batch in msgs.chunks(5_000) {
        d.notify(batch).unwrap_or_else(|e| panic!("{HINT}: {e}"));
    }
    let back = d.trace_messages(&base).unwrap();
    assert_eq!(back.len(), 50_000, "every message of the trace");
    assert_eq!(back, values(&msgs));
    let report = d.get_report(&base).unwrap().into_value();
    assert_eq!(report["children"].as_array().unwrap().len(), 25_000);
    // No scroll left open on the index (Python's driver leaves each open for es_scroll_time).
    let stats = rest("GET", &format!("/{}/_stats/search", index.0), None);
    let search = &stats["indices"][&index.0]["total"]["search"];
    assert_eq!(search["scroll_current"], 0, "scrolls released: {search:#}");
    assert!(search["scroll_total"].as_u64().unwrap() >= 1, "{search:#}");
}

#[test]
fn documents_the_server_refuses_are_dropped_alone() {
    let index = TestIndex::new("refuse");
    // An index that exists already, with a mapping two of the messages cannot fit: a number
    // field given text, and a keyword over Lucene's 32 KiB term limit.
    rest(
        "PUT",
        &format!("/{}", index.0),
        Some(&json!({"mappings": {"properties": {"info": {"properties": {
            "size": {"type": "long"}, "blob": {"type": "keyword"}
        }}}}})),
    );
    let (base, msgs) = captured_trace(|| {
        drop(Trace::new("ok", || osp::info!({"size": 3})));
        drop(Trace::new("conflict", || osp::info!({"size": "large"})));
        drop(Trace::new(
            "immense",
            || osp::info!({"blob": "x".repeat(40_000)}),
        ));
    });
    let d = index.driver("");
    let e = d.notify(&msgs).unwrap_err();
    // The start messages of both bad points carry their info: 2 of 6 refused.
    assert_eq!(e.refused(), Some(2), "{e}");
    assert!(e.to_string().contains("400"), "{e}");
    let back = d.trace_messages(&base).unwrap();
    let mut names: Vec<&str> = back.iter().map(|m| m["name"].as_str().unwrap()).collect();
    names.sort_unstable();
    assert_eq!(
        names,
        ["conflict-stop", "immense-stop", "ok-start", "ok-stop"]
    );
    // The notifier counts those in `dropped_failed` and never sends them again (core's
    // poison-batch rule, tested with every driver's refusals in osprofiler-core).
}

fn python_es(args: &[&str]) -> Value {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/python/es_peer.py");
    let mut cmd = Command::new(osprofiler_testkit::python());
    cmd.arg(script).args(args);
    osprofiler_testkit::json_output(
        &format!("Python OSProfiler's elasticsearch driver ({HINT}) {args:?}"),
        &mut cmd,
    )
}

/// Python's index, both ways: Python's `osprofiler trace show --json` shows a trace our
/// driver stored as our driver's report does, and our driver reads one Python stored.
#[test]
fn python_reads_ours_and_we_read_pythons() {
    let cs = format!("elasticsearch://{ES}");
    let d = ElasticsearchDriver::open(&format!("{cs}?refresh=wait_for"))
        .unwrap()
        .filter_error_trace(true);
    let (ours, msgs) = error_trace(None);
    d.notify(&msgs).unwrap_or_else(|e| panic!("{HINT}: {e}"));
    let theirs = python_es(&["show", &ours, &cs]);
    assert_eq!(*d.get_report(&ours).unwrap().to_value(), theirs);
    assert_eq!(theirs["children"][0]["info"]["service"], "svc");

    let stored = python_es(&["store", &cs]);
    let base = stored["base_id"].as_str().unwrap();
    let back = d.trace_messages(base).unwrap();
    assert_eq!(back.len(), 6, "{back:#?}");
    assert!(
        back.iter()
            .all(|m| m["project"] == "pyproj" && m["service"] == "pysvc")
    );
    let report = d.get_report(base).unwrap();
    assert_eq!(*report.to_value(), python_es(&["show", base, &cs]));
    let report = report.into_value();
    let rpc = report["children"][0]["children"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["info"]["name"] == "rpc")
        .expect("the rpc point under wsgi");
    assert_eq!(rpc["info"]["exception"], "ValueError");
    // Python marked its error trace in the error index; ours lists it.
    assert!(
        d.list_error_traces()
            .unwrap()
            .iter()
            .any(|t| t.base_id == base)
    );
    assert!(
        d.list_error_traces()
            .unwrap()
            .iter()
            .any(|t| t.base_id == ours)
    );
    // Python's index is shared by every run against this server: leave it as it was.
    for t in [base, ours.as_str()] {
        assert!(d.delete_trace(t).unwrap() > 0);
    }
}
