use super::*;
use crate::clock::format_timestamp;
use crate::report::Report;
use serde_json::json;

const T0: i64 = 1_700_000_000_000_000;

/// The `api` service's `wsgi` root `w`, 0–100 ms.
fn wsgi_root(m: &mut Vec<Value>) {
    point(
        m,
        "wsgi",
        "w",
        "base",
        "api",
        (0, 100_000),
        (json!({}), json!({})),
    );
}

/// A point's two messages: `start`/`stop` in µs after T0.
fn point(
    out: &mut Vec<Value>,
    name: &str,
    id: &str,
    parent: &str,
    service: &str,
    (start, stop): (i64, i64),
    (start_info, stop_info): (Value, Value),
) {
    for (phase, us, info) in [("start", start, start_info), ("stop", stop, stop_info)] {
        out.push(json!({
            "name": format!("{name}-{phase}"), "base_id": "base", "trace_id": id,
            "parent_id": parent, "timestamp": format_timestamp(T0 + us), "project": "proj",
            "service": service, "info": info,
        }));
    }
}

fn analyse(msgs: &[Value]) -> Analysis {
    Analysis::of(Report::build(msgs).to_value(), &AnalysisOptions::default())
}

fn rust_db(fp: u64, values: Option<u64>) -> Value {
    let mut db = json!({"api": "query", "system": "postgresql",
        "fingerprint": format!("{fp:016x}"), "normalized": format!("SELECT shape {fp}")});
    if let Some(v) = values {
        db["values"] = format!("{v:016x}").into();
    }
    json!({"db": db})
}

fn rows(n: u64) -> Value {
    json!({"db": {"rows": n}})
}

/// wsgi [0, 100 ms]: a list query, then 20 per-row queries with different values, then one
/// statement twice with the same values.
fn list_then_rows() -> Vec<Value> {
    let mut m = Vec::new();
    wsgi_root(&mut m);
    point(
        &mut m,
        "db",
        "list",
        "w",
        "api",
        (1_000, 5_000),
        (rust_db(1, Some(1)), rows(20)),
    );
    for i in 0..20 {
        let s = 6_000 + i * 3_000;
        // An acquire between statements does not break the run.
        let acq = json!({"db": {"api": "acquire", "system": "postgresql"}});
        point(
            &mut m,
            "db",
            &format!("acq{i}"),
            "w",
            "api",
            (s, s + 100),
            (acq, json!({})),
        );
        point(
            &mut m,
            "db",
            &format!("row{i}"),
            "w",
            "api",
            (s + 200, s + 2_000),
            (rust_db(2, Some(100 + i as u64)), rows(1)),
        );
    }
    point(
        &mut m,
        "db",
        "dup1",
        "w",
        "api",
        (70_000, 72_000),
        (rust_db(3, Some(7)), rows(0)),
    );
    point(
        &mut m,
        "db",
        "dup2",
        "w",
        "api",
        (73_000, 75_000),
        (rust_db(3, Some(7)), rows(0)),
    );
    m
}

#[test]
fn n_plus_one_of_twenty_rows_is_found_under_its_parent() {
    let a = analyse(&list_then_rows());
    assert_eq!(a.n_plus_one.len(), 1, "{:?}", a.n_plus_one);
    let n1 = &a.n_plus_one[0];
    assert_eq!(n1.id, "0000000000000002");
    assert_eq!(n1.fingerprint.as_deref(), Some("SELECT shape 2"));
    assert_eq!(
        (n1.parent_id.as_str(), n1.parent_name.as_str()),
        ("w", "wsgi")
    );
    assert_eq!(n1.calls, 20);
    assert_eq!(n1.total_ms, 36.0);
    assert_eq!(n1.trace_ids.len(), 20);
    // Below the threshold: nothing.
    let opts = AnalysisOptions::default().n1_min_calls(21);
    let r = Report::build(&list_then_rows());
    assert!(Analysis::of(r.to_value(), &opts).n_plus_one.is_empty());
}

#[test]
fn a_run_with_the_same_values_is_a_duplicate_not_an_n_plus_one() {
    let mut m = Vec::new();
    wsgi_root(&mut m);
    for i in 0..6 {
        point(
            &mut m,
            "db",
            &format!("q{i}"),
            "w",
            "api",
            (i * 1_000, i * 1_000 + 500),
            (rust_db(9, Some(42)), rows(1)),
        );
    }
    let a = analyse(&m);
    assert!(a.n_plus_one.is_empty());
    assert_eq!(a.duplicates.len(), 1);
    assert_eq!(a.duplicates[0].calls, 6);
}

#[test]
fn unknown_value_digests_count_as_different_for_n_plus_one_and_never_duplicate() {
    let mut m = Vec::new();
    wsgi_root(&mut m);
    for i in 0..5 {
        point(
            &mut m,
            "db",
            &format!("q{i}"),
            "w",
            "api",
            (i * 1_000, i * 1_000 + 500),
            (rust_db(9, None), rows(1)),
        );
    }
    let a = analyse(&m);
    assert_eq!(a.n_plus_one.len(), 1);
    assert_eq!(a.n_plus_one[0].calls, 5);
    assert!(a.duplicates.is_empty());
}

#[test]
fn a_statement_run_twice_with_the_same_values_is_a_duplicate() {
    let a = analyse(&list_then_rows());
    assert_eq!(a.duplicates.len(), 1, "{:?}", a.duplicates);
    let d = &a.duplicates[0];
    assert_eq!(
        (d.id.as_str(), d.calls, d.total_ms),
        ("0000000000000003", 2, 4.0)
    );
    assert_eq!(d.trace_ids, ["dup1", "dup2"]);
}

#[test]
fn fingerprints_db_totals_errors_and_the_json_keys() {
    let mut m = list_then_rows();
    point(
        &mut m,
        "rpc",
        "r",
        "w",
        "api",
        (90_000, 95_000),
        (
            json!({}),
            json!({"etype": "ValueError", "message": "bad row"}),
        ),
    );
    let a = analyse(&m);
    assert_eq!(a.base_id.as_deref(), Some("base"));
    assert_eq!(a.duration_ms, 100.0);
    assert_eq!(a.points, 1 + 1 + 40 + 2 + 1);
    assert_eq!(a.db.statements, 23);
    assert_eq!(a.db.total_ms, 4.0 + 36.0 + 4.0);
    assert_eq!(a.db.share, 0.44);
    let ids: Vec<_> = a.fingerprints.iter().map(|f| f.id.as_str()).collect();
    assert_eq!(
        ids,
        ["0000000000000002", "0000000000000001", "0000000000000003"]
    );
    let f = &a.fingerprints[0];
    assert_eq!(
        (f.calls, f.total_ms, f.mean_ms, f.max_ms, f.rows),
        (20, 36.0, 1.8, 1.8, 20)
    );
    assert_eq!(f.services, ["api"]);
    assert_eq!(a.errors.len(), 1);
    assert_eq!(a.errors[0].message, "bad row");
    assert_eq!(a.errors[0].trace_id, "r");
    let v = serde_json::to_value(&a).unwrap();
    let mut keys: Vec<_> = v.as_object().unwrap().keys().cloned().collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "base_id",
            "critical_path",
            "db",
            "duplicates",
            "duration_ms",
            "errors",
            "fingerprints",
            "n_plus_one",
            "points",
            "services"
        ]
    );
    assert_eq!(v["n_plus_one"][0].as_object().unwrap().len(), 6);
    assert_eq!(v["duplicates"][0].as_object().unwrap().len(), 4);
    assert_eq!(
        v["errors"][0],
        json!({"trace_id": "r", "name": "rpc", "service": "api", "message": "bad row"})
    );
}

#[test]
fn share_is_the_union_of_overlapping_intervals() {
    let mut m = Vec::new();
    wsgi_root(&mut m);
    point(
        &mut m,
        "task",
        "t1",
        "w",
        "api",
        (0, 80_000),
        (json!({}), json!({})),
    );
    point(
        &mut m,
        "db",
        "a",
        "t1",
        "api",
        (10_000, 50_000),
        (rust_db(1, Some(1)), rows(1)),
    );
    point(
        &mut m,
        "db",
        "b",
        "w",
        "api",
        (30_000, 70_000),
        (rust_db(2, Some(1)), rows(1)),
    );
    point(
        &mut m,
        "db",
        "c",
        "w",
        "api",
        (80_000, 90_000),
        (rust_db(3, Some(1)), rows(1)),
    );
    let a = analyse(&m);
    assert_eq!(a.db.total_ms, 90.0);
    assert_eq!(a.db.share, 0.7);
}

#[test]
fn critical_path_takes_the_last_finishing_child_and_skips_concurrent_ones() {
    let mut m = Vec::new();
    point(
        &mut m,
        "wsgi",
        "root",
        "base",
        "api",
        (0, 100_000),
        (json!({}), json!({})),
    );
    point(
        &mut m,
        "rpc",
        "a",
        "root",
        "api",
        (10_000, 60_000),
        (json!({}), json!({})),
    );
    point(
        &mut m,
        "rpc",
        "b",
        "root",
        "api",
        (20_000, 90_000),
        (json!({}), json!({})),
    );
    point(
        &mut m,
        "wsgi",
        "b1",
        "b",
        "worker",
        (25_000, 85_000),
        (json!({}), json!({})),
    );
    point(
        &mut m,
        "db",
        "c",
        "root",
        "api",
        (92_000, 98_000),
        (rust_db(1, Some(1)), rows(1)),
    );
    let a = analyse(&m);
    let path: Vec<(&str, f64)> = a
        .critical_path
        .iter()
        .map(|p| (p.trace_id.as_str(), p.self_ms))
        .collect();
    // root: 98..100, 90..92, 0..20 = 24; b: 85..90 + 20..25 = 10; b1: 60; c: 6. `a` ran
    // while `b` did and finished first: off the path.
    assert_eq!(
        path,
        [("root", 24.0), ("b", 10.0), ("b1", 60.0), ("c", 6.0)]
    );
    assert_eq!(a.critical_path[2].service.as_deref(), Some("worker"));
    let total: f64 = a.critical_path.iter().map(|p| p.self_ms).sum();
    assert_eq!(total, 100.0);
}

#[test]
fn critical_path_clips_children_to_their_parent() {
    let mut m = Vec::new();
    point(
        &mut m,
        "wsgi",
        "root",
        "base",
        "api",
        (0, 10_000),
        (json!({}), json!({})),
    );
    // Finishes after its parent (clock skew between hosts): clipped to the parent's end.
    point(
        &mut m,
        "rpc",
        "late",
        "root",
        "api",
        (5_000, 20_000),
        (json!({}), json!({})),
    );
    let a = analyse(&m);
    let path: Vec<(&str, f64)> = a
        .critical_path
        .iter()
        .map(|p| (p.trace_id.as_str(), p.self_ms))
        .collect();
    assert_eq!(path, [("root", 5.0), ("late", 5.0)]);
}

#[test]
fn services_get_their_self_time() {
    let mut m = Vec::new();
    point(
        &mut m,
        "wsgi",
        "root",
        "base",
        "api",
        (0, 100_000),
        (json!({}), json!({})),
    );
    point(
        &mut m,
        "wsgi",
        "w",
        "root",
        "worker",
        (10_000, 70_000),
        (json!({}), json!({})),
    );
    point(
        &mut m,
        "db",
        "d1",
        "w",
        "worker",
        (20_000, 40_000),
        (json!({}), json!({})),
    );
    point(
        &mut m,
        "db",
        "d2",
        "w",
        "worker",
        (30_000, 50_000),
        (json!({}), json!({})),
    );
    let a = analyse(&m);
    let s: Vec<(Option<&str>, usize, f64)> = a
        .services
        .iter()
        .map(|s| (s.service.as_deref(), s.points, s.self_ms))
        .collect();
    // worker: 60 - 30 (union of d1, d2) + 20 + 20 = 70; api: 100 - 60 = 40.
    assert_eq!(s, [(Some("worker"), 3, 70.0), (Some("api"), 1, 40.0)]);
    assert_eq!(a.services[0].project.as_deref(), Some("proj"));
}

#[test]
fn python_db_points_with_only_statement_and_params() {
    let py = |id: i64| {
        json!({"db": {
        "statement": "SELECT  users.id FROM users WHERE users.id = %(id_1)s",
        "params": {"id_1": id}}})
    };
    let mut m = Vec::new();
    point(
        &mut m,
        "wsgi",
        "w",
        "base",
        "nova",
        (0, 50_000),
        (json!({}), json!({})),
    );
    for i in 0..6 {
        point(
            &mut m,
            "db",
            &format!("p{i}"),
            "w",
            "nova",
            (i * 5_000, i * 5_000 + 1_000),
            (py(i), json!({})),
        );
    }
    point(
        &mut m,
        "db",
        "p6",
        "w",
        "nova",
        (40_000, 41_000),
        (py(0), json!({})),
    );
    let a = analyse(&m);
    assert_eq!(a.db.statements, 7);
    assert_eq!(a.fingerprints.len(), 1);
    let f = &a.fingerprints[0];
    assert_eq!(f.calls, 7);
    assert!(
        f.fingerprint
            .as_deref()
            .is_some_and(|t| t.contains("users.id")),
        "{f:?}"
    );
    assert_eq!(f.id.len(), 16);
    assert_eq!(a.n_plus_one.len(), 1);
    assert_eq!(a.n_plus_one[0].calls, 7);
    // p0 and p6 ran with the same params.
    assert_eq!(a.duplicates.len(), 1);
    assert_eq!(a.duplicates[0].trace_ids, ["p0", "p6"]);
    let calls = db_calls(Report::build(&m).to_value());
    assert_eq!(calls.len(), 7);
    assert_eq!(calls[0].duration_us, 1_000);
    assert_eq!(calls[0].base_id.as_deref(), Some("base"));
    assert_eq!(calls[0].parent_id.as_deref(), Some("w"));
    assert_eq!(calls[0].start_us, T0);
    assert_eq!(calls[0].id, calls[6].id);
    assert_eq!(calls[0].values, calls[6].values);
    assert_ne!(calls[0].values, calls[1].values);
}

#[test]
fn siblings_are_ordered_by_the_microsecond_for_runs() {
    // Two shapes interleaved within one millisecond, in store order B A B A …: sorted by
    // microseconds they are A A A … B B B …
    let mut m = Vec::new();
    point(
        &mut m,
        "wsgi",
        "w",
        "base",
        "api",
        (0, 10_000),
        (json!({}), json!({})),
    );
    for i in 0..5 {
        point(
            &mut m,
            "db",
            &format!("b{i}"),
            "w",
            "api",
            (600 + i * 10, 601 + i * 10),
            (rust_db(2, Some(i as u64)), rows(1)),
        );
        point(
            &mut m,
            "db",
            &format!("a{i}"),
            "w",
            "api",
            (100 + i * 10, 101 + i * 10),
            (rust_db(1, Some(i as u64)), rows(1)),
        );
    }
    let a = analyse(&m);
    let found: Vec<_> = a
        .n_plus_one
        .iter()
        .map(|n| (n.id.as_str(), n.calls))
        .collect();
    assert_eq!(found.len(), 2, "{found:?}");
    assert_eq!(a.n_plus_one.iter().map(|n| n.calls).sum::<usize>(), 10);
}

#[test]
fn reports_without_raw_messages_use_the_whole_milliseconds() {
    let report = json!({"info": {"name": "total", "started": 0, "finished": 10}, "children": [
        {"trace_id": "x", "parent_id": "b", "info": {"name": "wsgi", "started": 0, "finished": 10},
         "children": [{"trace_id": "y", "parent_id": "x", "children": [],
            "info": {"name": "db", "started": 2, "finished": 6, "exception": "IOError"}}]}]});
    let a = Analysis::of(&report, &AnalysisOptions::default());
    assert_eq!(a.duration_ms, 10.0);
    assert_eq!(a.points, 2);
    assert_eq!(a.errors[0].message, "IOError");
    assert_eq!(a.critical_path.len(), 2);
    assert_eq!(a.base_id, None);
}

#[test]
fn any_json_is_survived() {
    let garbage = [
        json!(null),
        json!(1),
        json!("x"),
        json!([1, 2]),
        json!({"children": 3}),
        json!({"children": [null, 1, "x", {"children": {"a": 1}}]}),
        json!({"children": [{"info": [1], "trace_id": 5, "parent_id": {"a": 1}, "children": [
            {"info": {"name": 3, "started": i64::MAX, "finished": i64::MIN, "exception": 4,
                "meta.raw_payload.db-start": {"timestamp": "garbage", "info": {"db": {
                    "statement": 5, "fingerprint": "zz", "values": 7, "params": null}}},
                "meta.raw_payload.db-stop": {"timestamp": "2024-01-01T00:00:00", "info": 3}},
             "children": []}]}]}),
        json!({"children": [{"info": {"started": i64::MIN, "finished": i64::MAX,
            "meta.raw_payload.x-start": {"info": {"db": {"api": "query"}}}}}]}),
    ];
    for g in &garbage {
        let a = Analysis::of(g, &AnalysisOptions::default().n1_min_calls(0));
        let _ = serde_json::to_string(&a).unwrap();
        let _ = db_calls(g);
    }
}

#[test]
fn self_parents_and_cycles_in_the_messages_are_survived() {
    let mut m = Vec::new();
    point(
        &mut m,
        "wsgi",
        "a",
        "a",
        "api",
        (0, 10_000),
        (json!({}), json!({})),
    );
    point(
        &mut m,
        "rpc",
        "b",
        "c",
        "api",
        (1_000, 2_000),
        (json!({}), json!({})),
    );
    point(
        &mut m,
        "rpc",
        "c",
        "b",
        "api",
        (3_000, 4_000),
        (json!({}), json!({})),
    );
    let a = analyse(&m);
    assert!(a.points >= 1);
}

#[test]
fn a_trace_as_deep_as_it_is_long_needs_no_recursion() {
    // 100,000 nested points, built innermost first (no recursion here either).
    let n = 100_000i64;
    let mut node = Value::Null;
    for i in (0..n).rev() {
        let info = json!({"name": "f", "started": 0, "finished": 0,
            "meta.raw_payload.f-start": {"timestamp": format_timestamp(T0 + i), "base_id": "b"},
            "meta.raw_payload.f-stop": {"timestamp": format_timestamp(T0 + 2 * n - i)}});
        let children = if node.is_null() {
            vec![]
        } else {
            vec![std::mem::take(&mut node)]
        };
        // Built by moving: json! would serialize (copy, recursively) the subtree.
        let mut m = Map::new();
        m.insert("trace_id".into(), format!("p{i}").into());
        m.insert("parent_id".into(), "x".into());
        m.insert("info".into(), info);
        m.insert("children".into(), Value::Array(children));
        node = Value::Object(m);
    }
    let mut report = Map::new();
    report.insert("info".into(), json!({"name": "total"}));
    report.insert("children".into(), Value::Array(vec![node]));
    let report = Value::Object(report);
    let a = Analysis::of(&report, &AnalysisOptions::default());
    assert_eq!(a.points, n as usize);
    assert_eq!(a.critical_path.len(), n as usize);
    assert_eq!(a.duration_ms, 2.0 * n as f64 / 1000.0);
    // serde_json drops values recursively: leak this one rather than overflow the stack.
    std::mem::forget(report);
}

mod garbage {
    use super::*;
    use proptest::prelude::*;

    /// JSON of any shape, biased toward the keys a report has (so the analysis gets deep into
    /// nodes, raw messages and `db` info with wrong types).
    fn any_json() -> impl Strategy<Value = Value> {
        let key = prop_oneof![
            Just("children".to_owned()),
            Just("info".to_owned()),
            Just("trace_id".to_owned()),
            Just("parent_id".to_owned()),
            Just("name".to_owned()),
            Just("service".to_owned()),
            Just("started".to_owned()),
            Just("finished".to_owned()),
            Just("exception".to_owned()),
            Just("meta.raw_payload.db-start".to_owned()),
            Just("meta.raw_payload.db-stop".to_owned()),
            Just("timestamp".to_owned()),
            Just("db".to_owned()),
            Just("statement".to_owned()),
            Just("params".to_owned()),
            Just("fingerprint".to_owned()),
            Just("values".to_owned()),
            Just("rows".to_owned()),
            Just("api".to_owned()),
            "[a-z_.-]{0,12}",
        ];
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<f64>()
                .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
            Just(Value::from("2024-01-01T00:00:00.000001")),
            Just(Value::from("9999-12-31T23:59:59.999999")),
            Just(Value::from("0000000000000001")),
            Just(Value::from("query")),
            Just(Value::from("None")),
            ".{0,12}".prop_map(Value::from),
        ];
        leaf.prop_recursive(6, 96, 8, move |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::vec((key.clone(), inner), 0..8)
                    .prop_map(|kv| Value::Object(kv.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]
        #[test]
        fn the_analysis_of_any_json_never_panics(v in any_json(), n1 in 0usize..4) {
            let a = Analysis::of(&v, &AnalysisOptions::default().n1_min_calls(n1));
            prop_assert!(a.db.share >= 0.0 && a.db.share <= 1.0);
            prop_assert!(serde_json::to_string(&a).is_ok());
            let _ = db_calls(&v);
            let wrapped = json!({"children": [v]});
            let _ = Analysis::of(&wrapped, &AnalysisOptions::default());
        }
    }
}
