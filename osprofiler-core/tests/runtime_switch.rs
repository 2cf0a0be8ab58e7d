//! The `enabled` runtime switch turns a running process's tracing off and on at once.
//! One test in this file: it flips process-wide state.
use osprofiler_core::{self as osp, Trace};
use osprofiler_testkit::*;

#[test]
fn switching_off_stops_emission_and_switching_on_resumes() {
    collector();
    let p = osp::init("k", None, None).unwrap();
    let base = base(&p);
    Trace::new("before", osp::Info::new).finish();
    osp::set_enabled(false);
    assert!(!osp::is_active());
    assert!(osp::get().is_none());
    Trace::new("while-off", || -> osp::Info { panic!("no info when off") }).finish();
    osp::set_enabled(true);
    Trace::new("after", osp::Info::new).finish();
    osp::clean();
    let names: Vec<String> = messages_of(&base)
        .iter()
        .map(|m| m["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        names,
        ["before-start", "before-stop", "after-start", "after-stop"]
    );

    osp::set_trace_sql(true);
    assert!(osp::trace_sql());
    osp::set_trace_sql(false);
    assert!(!osp::trace_sql());
}
