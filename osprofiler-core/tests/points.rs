//! Points in sync code: message format, parenting, guards, OSProfiler's init/get/clean/start/stop.
use osprofiler_core::{self as osp, Trace};
use osprofiler_testkit::*;

fn is_uuid4(s: &str) -> bool {
    uuid::Uuid::parse_str(s).is_ok_and(|u| u.get_version_num() == 4)
        && s == s.to_lowercase()
        && s.len() == 36
}

#[test]
fn messages_have_the_reference_format() {
    collector();
    let p = osp::init("k", None, None).unwrap();
    let base = base(&p);
    assert!(is_uuid4(&base), "{base}");
    osp::start("db", || osp::info!({"db": {"statement": "SELECT 1"}}));
    osp::stop(|| osp::info!({"rows": 1}));
    osp::clean();
    let msgs = messages_of(&base);
    assert_eq!(msgs.len(), 2);
    let (start, stop) = (&msgs[0], &msgs[1]);
    assert_eq!(start["name"], "db-start");
    assert_eq!(stop["name"], "db-stop");
    let mut keys: Vec<&str> = start
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "base_id",
            "info",
            "name",
            "parent_id",
            "project",
            "service",
            "timestamp",
            "trace_id"
        ]
    );
    assert_eq!(start["base_id"], base.as_str());
    assert_eq!(
        start["parent_id"],
        base.as_str(),
        "top-level parent defaults to base_id"
    );
    assert!(is_uuid4(start["trace_id"].as_str().unwrap()));
    assert_eq!(start["trace_id"], stop["trace_id"]);
    assert_eq!(stop["parent_id"], base.as_str());
    assert_eq!(
        start["info"],
        serde_json::json!({"db": {"statement": "SELECT 1"}, "host": "test-host"})
    );
    assert_eq!(
        stop["info"],
        serde_json::json!({"rows": 1, "host": "test-host"})
    );
    assert_eq!(
        (start["project"].as_str(), start["service"].as_str()),
        (Some("proj"), Some("svc"))
    );
    for m in &msgs {
        let ts = m["timestamp"].as_str().unwrap();
        assert_eq!(ts.len(), 26, "{ts}");
        assert_eq!(&ts[10..11], "T");
        assert_eq!(&ts[19..20], ".");
        assert!(osp::clock::parse_timestamp(ts).is_some());
    }
    assert!(
        osp::clock::parse_timestamp(stop["timestamp"].as_str().unwrap())
            >= osp::clock::parse_timestamp(start["timestamp"].as_str().unwrap())
    );
}

#[test]
fn nested_points_form_a_stack_and_init_ids_are_used() {
    collector();
    let p = osp::init("k", Some("my-base"), Some("caller-point")).unwrap();
    assert_eq!(p.id().to_string(), "caller-point");
    assert_eq!(p.parent_id().to_string(), "my-base");
    osp::start("a", osp::Info::new);
    let a = osp::get().unwrap();
    assert_eq!(a.current_point(), Some("a"));
    assert_eq!(a.parent_id().to_string(), "caller-point");
    osp::start("b", osp::Info::new);
    osp::stop(osp::Info::new);
    osp::start("c", osp::Info::new);
    osp::stop(osp::Info::new);
    osp::stop(osp::Info::new);
    osp::stop(osp::Info::new); // nothing open: ignored
    osp::stop(osp::Info::new);
    assert_eq!(osp::get().unwrap().id().to_string(), "caller-point");
    osp::clean();
    assert!(osp::get().is_none());
    let s = shape(&messages_of("my-base"));
    let names: Vec<&str> = s.iter().map(|x| x.0.as_str()).collect();
    assert_eq!(
        names,
        [
            "a-start", "b-start", "b-stop", "c-start", "c-stop", "a-stop"
        ]
    );
    let a_id = &s[0].1;
    assert_eq!(s[0].2, "caller-point");
    assert_eq!(
        (&s[1].2, &s[3].2),
        (a_id, a_id),
        "b and c are children of a"
    );
    assert_ne!(s[1].1, s[3].1);
    assert_eq!(s[5], ("a-stop".into(), a_id.clone(), "caller-point".into()));
}

#[test]
fn second_init_keeps_the_first_and_clean_ends_it() {
    collector();
    let first = osp::init("k1", Some("first"), None).unwrap();
    let second = osp::init("k2", Some("second"), None).unwrap();
    assert_eq!(second.base_id().to_string(), "first");
    assert_eq!(second.hmac_key(), "k1");
    assert_eq!(first.id().to_string(), "first");
    osp::clean();
    let third = osp::init("k3", Some("third"), None).unwrap();
    assert_eq!(third.base_id().to_string(), "third");
    osp::clean();
}

#[test]
fn no_trace_means_no_messages() {
    let c = collector();
    osp::clean();
    let before = c.notifier.flush_for(std::time::Duration::from_secs(5));
    assert!(before);
    osp::start("x", || -> osp::Info {
        panic!("info must not be built without a trace")
    });
    osp::stop(|| -> osp::Info { panic!("info must not be built without a trace") });
    let t = Trace::new("y", || -> osp::Info { panic!("info must not be built") });
    assert!(!t.is_active() && t.id().is_none());
    drop(t);
    assert!(osp::trace_headers().is_none());
}

#[test]
fn guard_records_errors_and_stops_its_own_point_out_of_order() {
    collector();
    let p = osp::init("k", None, None).unwrap();
    let base = base(&p);
    let mut outer = Trace::new("outer", osp::Info::new);
    let inner = Trace::new("inner", osp::Info::new);
    let inner_id = inner.id().unwrap().to_string();
    outer.error(&std::io::Error::other("disk on fire"));
    drop(outer); // dropped before inner: stops outer, leaves inner current
    assert_eq!(osp::get().unwrap().id().to_string(), inner_id);
    drop(inner);
    osp::clean();
    let msgs = messages_of(&base);
    let outer_stop = one(&msgs, "outer-stop");
    assert_eq!(outer_stop["info"]["etype"], "std::io::error::Error");
    assert_eq!(outer_stop["info"]["message"], "disk on fire");
    assert_eq!(one(&msgs, "inner-stop")["trace_id"], inner_id.as_str());
    assert_eq!(
        one(&msgs, "inner-stop")["parent_id"],
        one(&msgs, "outer-start")["trace_id"]
    );
}

/// A caller's headers for `base`/`parent` signed with `key`, as verified against `keys`.
fn verified(base: &str, parent: &str, key: &str, keys: &[&str]) -> osp::headers::Verified {
    let h = osp::headers::signed_pack(
        &osp::headers::TraceData {
            base_id: base.into(),
            parent_id: Some(parent.into()),
        },
        key,
    );
    osp::headers::signed_unpack(&h.x_trace_info, &h.x_trace_hmac, keys).unwrap()
}

#[test]
fn trace_headers_carry_the_innermost_point_and_the_admitting_key() {
    collector();
    let v = verified("hdr-base", "up", "old", &["new", "old"]);
    v.init().unwrap();
    let plain = osp::trace_headers().unwrap();
    let d =
        osp::headers::signed_unpack(&plain.x_trace_info, &plain.x_trace_hmac, &["old"]).unwrap();
    assert_eq!(
        (d.base_id.to_string(), d.parent_id.map(|p| p.to_string())),
        ("hdr-base".to_owned(), Some("up".to_owned()))
    );
    let point = Trace::new("http", osp::Info::new);
    let h2 = osp::trace_headers().unwrap();
    assert!(
        osp::headers::signed_unpack(&h2.x_trace_info, &h2.x_trace_hmac, &["new"]).is_none(),
        "signed with the admitting key only"
    );
    let d2 = osp::headers::signed_unpack(&h2.x_trace_info, &h2.x_trace_hmac, &["old"]).unwrap();
    assert_eq!(d2.parent_id.as_ref(), point.id());
    drop(point);
    osp::clean();
    // No key, no headers (as Python).
    osp::init("", None, None);
    assert!(osp::trace_headers().is_none());
    osp::clean();
}

#[test]
fn a_verified_request_starts_its_first_point_under_the_caller() {
    collector();
    let v = verified("sp-base", "sp-caller", "k", &["k"]);
    let point = v.start_point("wsgi", || osp::info!({"request": {"path": "/"}}));
    let ctx = point.profiler().unwrap();
    assert_eq!(
        (ctx.base_id().to_string(), ctx.parent_id().to_string()),
        ("sp-base".to_owned(), "sp-caller".to_owned())
    );
    assert!(osp::get().is_none(), "not installed");
    // Work inside it nests under it; onward calls carry it as parent, signed with the key.
    let inner_id = osp::scope::with_trace(Some(ctx.clone()), || {
        let db = Trace::new("db", osp::Info::new);
        let h = osp::trace_headers().unwrap();
        let d = osp::headers::signed_unpack(&h.x_trace_info, &h.x_trace_hmac, &["k"]).unwrap();
        assert_eq!(d.parent_id.as_ref(), db.id());
        db.id().unwrap().to_string()
    });
    drop(point);
    let msgs = messages_of("sp-base");
    let shape: Vec<(&str, &str, &str)> = msgs
        .iter()
        .map(|m| {
            (
                m["name"].as_str().unwrap(),
                m["trace_id"].as_str().unwrap(),
                m["parent_id"].as_str().unwrap(),
            )
        })
        .collect();
    let wsgi = ctx.id().to_string();
    assert_eq!(
        shape,
        [
            ("wsgi-start", &*wsgi, "sp-caller"),
            ("db-start", &*inner_id, &*wsgi),
            ("db-stop", &*inner_id, &*wsgi),
            ("wsgi-stop", &*wsgi, "sp-caller"),
        ]
    );
    assert_eq!(msgs[0]["info"]["request"]["path"], "/");
}

#[test]
fn threads_have_their_own_context_and_with_trace_carries_it() {
    collector();
    let p = osp::init("k", None, None).unwrap();
    let base = base(&p);
    let p2 = p.clone();
    std::thread::spawn(move || {
        assert!(osp::get().is_none(), "a new thread starts untraced");
        osp::scope::with_trace(Some(p2), || {
            let _t = Trace::new("in-thread", osp::Info::new);
        });
        assert!(osp::get().is_none());
    })
    .join()
    .unwrap();
    osp::clean();
    let msgs = messages_of(&base);
    assert_eq!(one(&msgs, "in-thread-start")["parent_id"], base.as_str());
}

#[test]
fn report_from_collected_messages() {
    collector();
    let p = osp::init("k", None, None).unwrap();
    let base = base(&p);
    {
        let _w = Trace::new("wsgi", osp::Info::new);
        let _d = Trace::new("db", osp::Info::new);
    }
    let mut e = Trace::new("rpc", osp::Info::new);
    e.error_with("ValueError", "bad");
    drop(e);
    osp::clean();
    let report = osp::report::Report::build(&messages_of(&base));
    let v = report.to_value();
    assert_eq!(v["info"]["name"], "total");
    let kids = v["children"].as_array().unwrap();
    assert_eq!(kids.len(), 2);
    assert_eq!(kids[0]["info"]["name"], "wsgi");
    assert_eq!(kids[0]["children"][0]["info"]["name"], "db");
    assert_eq!(kids[0]["info"]["exception"], "None");
    assert_eq!(kids[1]["info"]["exception"], "ValueError");
    assert_eq!(v["stats"]["db"]["count"], 1);
    assert!(kids[0]["info"]["meta.raw_payload.wsgi-start"].is_object());
}

#[test]
fn db_points_stop_with_rows_nothing_an_error_or_as_cancelled() {
    use osp::db::{DbError, DbEvent, DbTracer};
    collector();
    let tracer = DbTracer::new("sqlite");
    let p = osp::init("k", None, None).unwrap();
    let source = |_: bool| None;
    let start = || tracer.start(DbEvent::Query(&source));
    start().ok(3);
    start().done();
    start().err(DbError::new("E", "boom".into()));
    drop(start());
    osp::clean();
    let msgs = messages_of(&base(&p));
    let stops: Vec<&serde_json::Value> = msgs.iter().filter(|m| m["name"] == "db-stop").collect();
    let starts = msgs.iter().filter(|m| m["name"] == "db-start");
    assert!(
        starts
            .into_iter()
            .all(|m| m["info"]["db"]["api"] == "query")
    );
    let without_host = |m: &serde_json::Value| {
        let mut info = m["info"].clone();
        info.as_object_mut().unwrap().remove("host");
        info
    };
    assert_eq!(
        without_host(stops[0]),
        serde_json::json!({"db": {"rows": 3}})
    );
    assert_eq!(
        without_host(stops[1]),
        serde_json::json!({}),
        "done: no rows, not cancelled"
    );
    assert_eq!(stops[2]["info"]["etype"], "E");
    assert!(stops[2]["info"].get("cancelled").is_none());
    assert_eq!(
        without_host(stops[3]),
        serde_json::json!({"cancelled": true})
    );
}
