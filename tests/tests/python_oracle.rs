//! Live interop with Python OSProfiler 4.4.0, run in the virtualenv the test script makes
//! (`scripts/test` creates `.venv-osp`; `OSPROFILER_PYTHON` may point at another interpreter).
//! The oracle is required: a missing virtualenv fails these tests with a message naming it.
mod common;
use common::python;
use osprofiler_core::headers::{TraceData, signed_pack, signed_unpack};
use osprofiler_core::{self as osp, Trace, memory::MemoryCollector, notifier, report::Report};
use serde_json::{Value, json};
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

fn oracle(req: Value) -> Value {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("python/oracle.py");
    let mut child = Command::new(python())
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cannot start the Python oracle");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(req.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "Python oracle failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn cases() -> Vec<(String, TraceData)> {
    let mut v = vec![
        (
            "SECRET_KEY".to_owned(),
            TraceData {
                base_id: uuid::Uuid::new_v4().to_string(),
                parent_id: Some(uuid::Uuid::new_v4().to_string()),
            },
        ),
        (
            "k".to_owned(),
            TraceData {
                base_id: "ÿþ>>>???".into(),
                parent_id: Some("x".into()),
            },
        ),
        (
            "ключ 🔑".to_owned(),
            TraceData {
                base_id: "b/with+chars=".into(),
                parent_id: None,
            },
        ),
        (
            String::new(),
            TraceData {
                base_id: "empty-key".into(),
                parent_id: Some("p".into()),
            },
        ),
    ];
    for i in 0..4 {
        v.push((
            format!("key-{i}-{}", "x".repeat(i * 40)),
            TraceData {
                base_id: uuid::Uuid::new_v4().to_string(),
                parent_id: Some(format!("p{i}")),
            },
        ));
    }
    v
}

#[test]
fn oracle_is_osprofiler_4_4_0() {
    assert_eq!(oracle(json!({"op": "version"})), "4.4.0");
}

#[test]
fn python_signs_rust_verifies_byte_identical() {
    let cases = cases();
    let req: Vec<Value> = cases
        .iter()
        .map(|(k, d)| json!({"key": k, "data": d}))
        .collect();
    let signed = oracle(json!({"op": "sign", "cases": req}));
    for ((key, data), py) in cases.iter().zip(signed.as_array().unwrap()) {
        let ours = signed_pack(data, key);
        assert_eq!(ours.x_trace_info, py["info"], "X-Trace-Info for {key:?}");
        if key.is_empty() {
            // Python does not sign without a key (and sends no headers at all then).
            assert_eq!(py["hmac"], Value::Null);
            assert_eq!(ours.x_trace_hmac, "");
            continue;
        }
        assert_eq!(ours.x_trace_hmac, py["hmac"], "X-Trace-HMAC for {key:?}");
        let v = signed_unpack(
            py["info"].as_str().unwrap(),
            py["hmac"].as_str().unwrap(),
            &["other", key.as_str()],
        )
        .unwrap();
        assert_eq!(
            (
                v.base_id.to_string(),
                v.parent_id.map(|p| p.to_string()),
                &*v.hmac_key
            ),
            (data.base_id.clone(), data.parent_id.clone(), key.as_str())
        );
    }
}

#[test]
fn rust_signs_python_verifies_with_rotation() {
    let new_key_case = signed_pack(
        &TraceData {
            base_id: "b1".into(),
            parent_id: Some("p1".into()),
        },
        "new",
    );
    let old_key_case = signed_pack(
        &TraceData {
            base_id: "b2".into(),
            parent_id: Some("p2".into()),
        },
        "old",
    );
    let req = json!({"op": "verify", "cases": [
        {"info": new_key_case.x_trace_info, "hmac": new_key_case.x_trace_hmac, "keys": "new,old"},
        {"info": old_key_case.x_trace_info, "hmac": old_key_case.x_trace_hmac, "keys": "new,old"},
        {"info": old_key_case.x_trace_info, "hmac": old_key_case.x_trace_hmac, "keys": "new"},
        {"info": new_key_case.x_trace_info, "hmac": format!("  {}\n", new_key_case.x_trace_hmac), "keys": "new"},
    ]});
    let got = oracle(req);
    assert_eq!(
        got[0],
        json!({"base_id": "b1", "parent_id": "p1", "hmac_key": "new"})
    );
    assert_eq!(
        got[1],
        json!({"base_id": "b2", "parent_id": "p2", "hmac_key": "old"})
    );
    assert_eq!(got[2], Value::Null, "wrong key: untraced");
    assert_eq!(
        got[3]["hmac_key"], "new",
        "whitespace around the MAC is accepted"
    );
    // And Rust agrees on every one.
    assert_eq!(
        signed_unpack(
            &new_key_case.x_trace_info,
            &new_key_case.x_trace_hmac,
            &["new", "old"]
        )
        .unwrap()
        .hmac_key,
        "new".into()
    );
    assert_eq!(
        signed_unpack(
            &old_key_case.x_trace_info,
            &old_key_case.x_trace_hmac,
            &["new", "old"]
        )
        .unwrap()
        .hmac_key,
        "old".into()
    );
    assert!(
        signed_unpack(
            &old_key_case.x_trace_info,
            &old_key_case.x_trace_hmac,
            &["new"]
        )
        .is_none()
    );
}

/// Hand-made header values, signed correctly, that probe the edges of Python's decoder: both
/// sides must accept or reject each one alike.
#[test]
fn edge_cases_accepted_and_rejected_alike() {
    use base64::Engine as _;
    let std_b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let url_b64 = |s: &str| base64::engine::general_purpose::URL_SAFE.encode(s);
    let url_nopad = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
    let infos = vec![
        url_b64(r#"{"base_id": "b", "parent_id": "p"}"#),
        std_b64(r#"{"base_id":"b?>>","parent_id":"p"}"#),
        url_b64(r#"{"base_id": "b?>>"}"#),
        url_nopad(r#"{"base_id": "b?"}"#),
        url_b64(r#"{"base_id": "b", "parent_id": "p", "x": 1}"#),
        url_b64(r#"{"parent_id": "p"}"#),
        url_b64(r#"["b"]"#),
        url_b64("not json"),
        url_b64("\u{ff}\u{fe}"),
        format!("{}\n", url_b64(r#"{"base_id": "b"}"#)),
        format!("  {}", url_b64(r#"{"base_id": "b"}"#)),
        "@@@@".to_owned(),
    ];
    let cases: Vec<Value> = infos
        .iter()
        .map(|i| json!({"info": i, "hmac": osp::headers::generate_hmac(i, "k"), "keys": ["k"]}))
        .collect();
    let py = oracle(json!({"op": "verify", "cases": cases}));
    for (i, info) in infos.iter().enumerate() {
        let ours = signed_unpack(info, &osp::headers::generate_hmac(info, "k"), &["k"]);
        assert_eq!(
            ours.is_some(),
            !py[i].is_null(),
            "case {i} {info:?}: python {}",
            py[i]
        );
        if let Some(v) = ours {
            assert_eq!(json!(v.base_id.to_string()), py[i]["base_id"], "case {i}");
        }
    }
}

/// Our messages have the shape Python's profiler gives, and Python's report of our messages
/// equals ours.
#[test]
fn messages_and_report_match_python() {
    let py = oracle(
        json!({"op": "trace", "key": "SECRET_KEY", "base_id": "py-base", "parent_id": "py-parent"}),
    );
    let py_msgs = py["messages"].as_array().unwrap();
    let names: Vec<&str> = py_msgs
        .iter()
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["wsgi-start", "db-start", "db-stop", "wsgi-stop"]);

    let memory = MemoryCollector::new();
    let n = notifier::QueueNotifier::start(memory.clone(), Default::default()).unwrap();
    let _scope = osp::dispatch::set_default(&osp::dispatch::Dispatch::new(n.clone()).enabled(true));
    let p = osp::init("SECRET_KEY", Some("rs-base"), Some("rs-parent")).unwrap();
    osp::start("wsgi", || osp::info!({"request": {"path": "/"}}));
    osp::start("db", osp::Info::new);
    // A point that lasts, so that the reports' durations are not all zero.
    std::thread::sleep(Duration::from_millis(3));
    osp::stop(|| osp::info!({"rows": 1}));
    let mut failing = Trace::new("rpc", osp::Info::new);
    failing.error_with("ValueError", "bad");
    drop(failing);
    osp::stop(osp::Info::new);
    osp::stop(osp::Info::new);
    osp::clean();
    assert!(n.flush_for(Duration::from_secs(5)));
    let ours = memory.trace(&p.base_id().to_string());

    // Same keys per message (Python's payload has no project/service: drivers add them).
    let ours_like_py: Vec<&Value> = ours
        .iter()
        .filter(|m| !m["name"].as_str().unwrap().starts_with("rpc"))
        .collect();
    assert_eq!(ours_like_py.len(), py_msgs.len());
    for (py_m, rs_m) in py_msgs.iter().zip(ours_like_py) {
        let mut py_keys: Vec<&String> = py_m.as_object().unwrap().keys().collect();
        let mut rs_keys: Vec<&String> = rs_m
            .as_object()
            .unwrap()
            .keys()
            .filter(|k| *k != "project" && *k != "service")
            .collect();
        py_keys.sort();
        rs_keys.sort();
        assert_eq!(py_keys, rs_keys);
        assert_eq!(py_m["name"], rs_m["name"]);
        assert_eq!(
            py_m["timestamp"].as_str().unwrap().len(),
            rs_m["timestamp"].as_str().unwrap().len()
        );
    }
    // Top-level parent and headers behave alike.
    assert_eq!(py_msgs[0]["parent_id"], "py-parent");
    assert_eq!(ours[0]["parent_id"], "rs-parent");
    let py_hdr = &py["headers"];
    let v = signed_unpack(
        py_hdr["X-Trace-Info"].as_str().unwrap(),
        py_hdr["X-Trace-HMAC"].as_str().unwrap(),
        &["SECRET_KEY"],
    )
    .unwrap();
    assert_eq!(
        (v.base_id.to_string(), v.parent_id.map(|p| p.to_string())),
        ("py-base".to_owned(), Some("py-parent".to_owned())),
        "no point open: parent = init's parent"
    );

    // Python's report of our messages equals ours, node for node.
    let py_report = oracle(json!({"op": "report", "messages": ours}));
    let our_report = Report::build(&ours);
    assert_eq!(our_report.to_value(), &py_report);
    assert_eq!(py_report["stats"]["rpc"]["count"], 1);
    assert_eq!(
        py_report["children"][0]["children"][1]["info"]["exception"],
        "ValueError"
    );
}
