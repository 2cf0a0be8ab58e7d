//! Retention and clean-up in the document stores, against the real servers: MongoDB
//! (SecantusDB on 127.0.0.1:27017) and OpenSearch (127.0.0.1:9200), both started by
//! `scripts/test`. `prune` deletes the traces whose newest message is older than the cutoff
//! and never one with a newer message; `delete_trace` takes one trace whole. Neither store
//! stages provisional traces: a service configured to keep slow or failed traces on them (or
//! on `messaging://` and `otlp://`) fails at start with an error naming its collector.
//!
//! The old traces are written as Python writes them (documents with text timestamps in 2001),
//! so that the cutoff (2001-06-01) can never reach what other tests store now.

use mongodb::bson::{Document, doc};
use osprofiler_collectors::{ElasticsearchDriver, MongoDriver};
use osprofiler_core::notifier::{Reader, Writer};
use osprofiler_core::{ProfilerConfig, clock::parse_timestamp};
use osprofiler_testkit::error_trace;
use serde_json::{Value, json};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const MONGO: &str = "mongodb://127.0.0.1:27017";
const MONGO_HINT: &str = "MongoDB at 127.0.0.1:27017 (scripts/test starts SecantusDB there)";
const ES: &str = "127.0.0.1:9200";
const ES_HINT: &str = "OpenSearch at 127.0.0.1:9200 (scripts/test builds and starts it)";

/// The cutoff of these tests: every trace wholly before it is theirs.
const CUTOFF: &str = "2001-06-01T00:00:00.000000";
const OLD: &str = "2001-01-01T00:00:00.000000";
const LATER: &str = "2001-09-01T00:00:00.000000";

fn cutoff() -> SystemTime {
    UNIX_EPOCH + Duration::from_micros(parse_timestamp(CUTOFF).unwrap() as u64)
}

fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// One message as Python stores it: `base_id`, a point of its own, at `timestamp`.
fn python_message(base_id: &str, timestamp: &str, phase: &str) -> Value {
    json!({
        "name": format!("wsgi-{phase}"),
        "base_id": base_id,
        "trace_id": new_id(),
        "parent_id": base_id,
        "timestamp": timestamp,
        "info": {"host": "py-host", "project": "py", "service": "api"},
        "project": "py",
        "service": "api",
    })
}

// ---------------------------------------------------------------- MongoDB

fn mongo_collection(rt: &tokio::runtime::Runtime, name: &str) -> mongodb::Collection<Document> {
    rt.block_on(async {
        mongodb::Client::with_uri_str(format!("{MONGO}/?serverSelectionTimeoutMS=3000"))
            .await
            .unwrap_or_else(|e| panic!("{MONGO_HINT}: {e}"))
            .database("osprofiler")
            .collection(name)
    })
}

fn mongo_insert(rt: &tokio::runtime::Runtime, coll: &mongodb::Collection<Document>, v: &[Value]) {
    let docs: Vec<Document> = v
        .iter()
        .map(|m| mongodb::bson::to_document(m).unwrap())
        .collect();
    rt.block_on(async { coll.insert_many(docs).await })
        .unwrap_or_else(|e| panic!("{MONGO_HINT}: {e}"));
}

fn mongo_count(
    rt: &tokio::runtime::Runtime,
    coll: &mongodb::Collection<Document>,
    id: &str,
) -> u64 {
    rt.block_on(async { coll.count_documents(doc! {"base_id": id}).await })
        .unwrap_or_else(|e| panic!("{MONGO_HINT}: {e}"))
}

#[test]
fn mongodb_prune_deletes_whole_old_traces_only() {
    let d = MongoDriver::open(MONGO, true).unwrap();
    d.retain(Duration::from_secs(7 * 86_400))
        .expect("retain needs no I/O and is supported");
    // Old traces left by an earlier run that failed half-way go first.
    d.prune(cutoff())
        .unwrap_or_else(|e| panic!("{MONGO_HINT}: {e}"));

    let rt = tokio::runtime::Runtime::new().unwrap();
    let profiler = mongo_collection(&rt, "profiler");
    let errors = mongo_collection(&rt, "profiler_error");
    // Old: gone. Old with an error marker: gone with it. Old but written to after the
    // cutoff: stays whole. New (stored by the driver): stays.
    let (old, old_err, still_written) = (new_id(), new_id(), new_id());
    mongo_insert(
        &rt,
        &profiler,
        &[
            python_message(&old, OLD, "start"),
            python_message(&old, "2001-01-01T00:00:01.000000", "stop"),
            python_message(&old_err, OLD, "start"),
            python_message(&still_written, OLD, "start"),
            python_message(&still_written, LATER, "stop"),
        ],
    );
    mongo_insert(
        &rt,
        &errors,
        &[json!({"base_id": old_err, "timestamp": OLD})],
    );
    let (new, new_msgs) = error_trace(None);
    d.notify(&new_msgs).unwrap();
    // More old traces than one round of the prune takes (1000).
    let many: Vec<String> = (0..1100).map(|_| new_id()).collect();
    let docs: Vec<Value> = many
        .iter()
        .map(|id| python_message(id, OLD, "start"))
        .collect();
    mongo_insert(&rt, &profiler, &docs);

    assert_eq!(d.prune(cutoff()).unwrap(), 2 + 1100);
    assert_eq!(mongo_count(&rt, &profiler, &old), 0);
    assert_eq!(mongo_count(&rt, &profiler, &old_err), 0);
    assert_eq!(
        mongo_count(&rt, &errors, &old_err),
        0,
        "the error marker goes too"
    );
    assert_eq!(mongo_count(&rt, &profiler, &still_written), 2);
    assert_eq!(mongo_count(&rt, &profiler, &many[1099]), 0);
    assert_eq!(
        d.trace_messages(&new).unwrap().len(),
        new_msgs.len(),
        "a trace of now is untouched"
    );
    // Nothing more to prune.
    assert_eq!(d.prune(cutoff()).unwrap(), 0);

    assert_eq!(d.delete_trace(&still_written).unwrap(), 2);
    assert_eq!(d.delete_trace(&new).unwrap(), new_msgs.len() as u64);
    assert_eq!(mongo_count(&rt, &errors, &new), 0);
}

#[test]
fn mongodb_delete_trace_takes_messages_and_error_marker() {
    let d = MongoDriver::open(MONGO, true).unwrap();
    let (bad, bad_msgs) = error_trace(None);
    let (other, other_msgs) = error_trace(None);
    d.notify(&bad_msgs)
        .unwrap_or_else(|e| panic!("{MONGO_HINT}: {e}"));
    d.notify(&other_msgs).unwrap();
    assert!(
        d.list_error_traces()
            .unwrap()
            .iter()
            .any(|t| t.base_id == bad)
    );

    assert_eq!(d.delete_trace(&bad).unwrap(), bad_msgs.len() as u64);
    assert!(d.trace_messages(&bad).unwrap().is_empty());
    assert!(!d.list_traces().unwrap().iter().any(|t| t.base_id == bad));
    assert!(
        !d.list_error_traces()
            .unwrap()
            .iter()
            .any(|t| t.base_id == bad)
    );
    assert_eq!(d.trace_messages(&other).unwrap().len(), other_msgs.len());
    // Gone already: nothing to delete, not an error.
    assert_eq!(d.delete_trace(&bad).unwrap(), 0);
    d.delete_trace(&other).unwrap();
}

// ---------------------------------------------------------------- OpenSearch

fn rest(method: &str, path: &str, body: Option<&str>) -> Value {
    osprofiler_testkit::curl_json(ES_HINT, method, &format!("http://{ES}{path}"), body)
}

/// An index of one test, deleted (with its error index and template) on drop.
struct TestIndex(String);

impl TestIndex {
    fn new(what: &str) -> TestIndex {
        TestIndex(format!("osp-test-{what}-{}", uuid::Uuid::new_v4().simple()))
    }
    fn driver(&self) -> ElasticsearchDriver {
        ElasticsearchDriver::open(&format!("elasticsearch://{ES}?index={}", self.0))
            .unwrap_or_else(|e| panic!("{ES_HINT}: {e}"))
            .filter_error_trace(true)
    }
    /// Stores documents as Python does (one `_bulk` here), into `index`.
    fn insert(&self, index: &str, docs: &[Value]) {
        // A hundred a request: the body is one argument of curl's.
        for chunk in docs.chunks(100) {
            let mut body = String::new();
            for d in chunk {
                body.push_str(&json!({"index": {"_index": index}}).to_string());
                body.push('\n');
                body.push_str(&d.to_string());
                body.push('\n');
            }
            let r = rest("POST", "/_bulk?refresh=true", Some(&body));
            assert_eq!(r["errors"], false, "{r:#}");
        }
    }
    fn count(&self, index: &str, id: &str) -> u64 {
        let r = rest(
            "POST",
            &format!("/{index}/_search?size=0&track_total_hits=true"),
            Some(&json!({"query": {"match_phrase": {"base_id": id}}}).to_string()),
        );
        r["hits"]["total"]["value"]
            .as_u64()
            .unwrap_or_else(|| panic!("{r:#}"))
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

/// The prune checks on one index; `python_first`: the index is made by documents written
/// as Python writes them (dynamic mapping: `base_id` text with a keyword sub-field), not by
/// the driver (its template: keyword).
fn es_prune(python_first: bool) {
    let index = TestIndex::new(if python_first { "prune-py" } else { "prune" });
    let d = index.driver();
    d.retain(Duration::from_secs(86_400)).unwrap();
    // No index yet: nothing to prune, no error.
    assert_eq!(
        d.prune(cutoff())
            .unwrap_or_else(|e| panic!("{ES_HINT}: {e}")),
        0
    );
    let (old, old_err, still_written) = (new_id(), new_id(), new_id());
    let mut docs = vec![
        python_message(&old, OLD, "start"),
        python_message(&old, "2001-01-01T00:00:01.000000", "stop"),
        python_message(&old_err, OLD, "start"),
        python_message(&still_written, OLD, "start"),
        python_message(&still_written, LATER, "stop"),
    ];
    // More old traces than one page of the prune (1000).
    let many: Vec<String> = (0..1100).map(|_| new_id()).collect();
    docs.extend(many.iter().map(|id| python_message(id, OLD, "start")));
    let (new, new_msgs) = error_trace(None);
    if python_first {
        index.insert(&index.0, &docs);
        d.notify(&new_msgs).unwrap();
    } else {
        d.notify(&new_msgs).unwrap();
        index.insert(&index.0, &docs);
    }
    index.insert(
        &format!("{}-error", index.0),
        &[json!({"base_id": old_err, "timestamp": OLD})],
    );
    let mapping = rest("GET", &format!("/{}/_mapping/field/base_id", index.0), None);
    let kind = &mapping[&index.0]["mappings"]["base_id"]["mapping"]["base_id"]["type"];
    assert_eq!(
        kind,
        if python_first { "text" } else { "keyword" },
        "{mapping:#}"
    );

    assert_eq!(d.prune(cutoff()).unwrap(), 2 + 1100);
    assert_eq!(index.count(&index.0, &old), 0);
    assert_eq!(index.count(&index.0, &old_err), 0);
    assert_eq!(index.count(&format!("{}-error", index.0), &old_err), 0);
    assert_eq!(
        index.count(&index.0, &still_written),
        2,
        "written to later: kept"
    );
    assert_eq!(index.count(&index.0, &many[0]), 0);
    assert_eq!(index.count(&index.0, &many[1099]), 0);
    assert_eq!(d.trace_messages(&new).unwrap().len(), new_msgs.len());
    assert_eq!(d.prune(cutoff()).unwrap(), 0);

    // delete_trace counts messages (not the error marker, which goes too).
    assert_eq!(d.delete_trace(&new).unwrap(), new_msgs.len() as u64);
    assert!(d.list_error_traces().unwrap().is_empty());
    assert_eq!(d.delete_trace(&still_written).unwrap(), 2);
    assert_eq!(d.delete_trace(&still_written).unwrap(), 0);
}

#[test]
fn opensearch_prune_deletes_whole_old_traces_only() {
    es_prune(false);
}

#[test]
fn opensearch_prune_on_an_index_python_created() {
    es_prune(true);
}

// ---------------------------------------------------------------- start-up errors

/// A service that must stage (keep_slow_ms) or prune (retention) on a collector that cannot
/// fails at start with an error naming the collector. Nothing is connected to find that out.
/// MongoDB and Elasticsearch prune: retention starts on them.
#[test]
fn collectors_that_cannot_stage_or_prune_fail_at_start_naming_themselves() {
    for (cs, name) in [
        (MONGO, "mongodb"),
        ("elasticsearch://127.0.0.1:9200", "elasticsearch"),
        ("messaging://guest:guest@127.0.0.1:5672/", "messaging"),
        ("otlp://127.0.0.1:4318", "otlp"),
    ] {
        let conf = ProfilerConfig::builder()
            .enabled(true)
            .connection_string(cs)
            .keep_slow_ms(500)
            .build();
        let e = osprofiler_collectors::init_from_conf(&conf, "proj", "api", None)
            .map(drop)
            .expect_err(cs)
            .to_string();
        assert!(
            e.contains(&format!(
                "the {name} collector cannot stage provisional traces (keep_slow_ms, keep_errors)"
            )),
            "{cs}: {e}"
        );
        assert!(
            e.contains("sqlite://") && e.contains("redis://"),
            "{cs}: {e}"
        );
    }
    for (cs, name) in [
        ("messaging://guest:guest@127.0.0.1:5672/", "messaging"),
        ("otlp://127.0.0.1:4318", "otlp"),
    ] {
        let conf = ProfilerConfig::builder()
            .enabled(true)
            .connection_string(cs)
            .retention(Duration::from_secs(7 * 86_400))
            .build();
        let e = osprofiler_collectors::init_from_conf(&conf, "proj", "api", None)
            .map(drop)
            .expect_err(cs)
            .to_string();
        assert!(
            e.contains(&format!(
                "the {name} collector cannot delete old traces (retention)"
            )),
            "{cs}: {e}"
        );
    }
    // Retention on the document stores starts (the first prune runs at once: a century, so
    // that it deletes nothing other tests wrote).
    for cs in [MONGO, "elasticsearch://127.0.0.1:9200"] {
        let conf = ProfilerConfig::builder()
            .enabled(true)
            .connection_string(cs)
            .retention(Duration::from_secs(100 * 365 * 86_400))
            .build();
        let guard = osprofiler_collectors::init_from_conf(&conf, "proj", "api", None)
            .unwrap_or_else(|e| panic!("{cs}: {e}"));
        assert!(guard.notifier().is_some());
    }
}
