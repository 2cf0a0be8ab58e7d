//! Reports of any shape a store can hold: deep, wide, cyclic, orphaned, duplicated, garbage.

use osprofiler_core::pyjson;
use osprofiler_core::report::{Detached, Report, Walk, drop_deep};
use proptest::prelude::*;
use serde_json::{Value, json};

/// A message of point `id` under `parent`, `us` microseconds after 2024-01-01T00:00:00.
fn msg(id: &str, parent: &str, name: &str, us: i64) -> Value {
    let (s, f) = (us / 1_000_000, us % 1_000_000);
    json!({"name": name, "base_id": "base", "trace_id": id, "parent_id": parent,
           "timestamp": format!("2024-01-01T00:{:02}:{:02}.{f:06}", s / 60, s % 60),
           "info": {"host": "h"}, "project": "p", "service": "s"})
}

fn point(id: &str, parent: &str, start_us: i64, stop_us: i64) -> [Value; 2] {
    [
        msg(id, parent, "db-start", start_us),
        msg(id, parent, "db-stop", stop_us),
    ]
}

/// Every node of a report's tree, counted without recursion, by trace id.
fn tree_ids(report: &Value) -> Vec<String> {
    let mut out = Vec::new();
    let mut todo: Vec<&Value> = report["children"].as_array().unwrap().iter().collect();
    while let Some(n) = todo.pop() {
        out.push(n["trace_id"].as_str().unwrap().to_owned());
        todo.extend(n["children"].as_array().unwrap());
    }
    out
}

const N: usize = 100_000;

#[test]
fn a_chain_as_deep_as_it_is_long_builds_renders_clones_and_drops() {
    // Runs on a test thread (2 MiB of stack by default).
    let mut msgs = Vec::with_capacity(2 * N);
    for i in 0..N {
        let parent = if i == 0 {
            "base".to_owned()
        } else {
            format!("p{}", i - 1)
        };
        let i64i = i as i64;
        msgs.extend(point(&format!("p{i}"), &parent, i64i, 2 * N as i64 - i64i));
    }
    let r = Report::build_owned(msgs, Default::default());
    let copy = r.clone();
    assert_eq!(copy, r);
    let v = r.to_value();
    assert_eq!(tree_ids(v).len(), N);
    let walk = Walk::new(v);
    assert_eq!(walk.points.len(), N);
    assert_eq!(walk.points[N - 1].depth, N - 1);
    assert!(walk.points.iter().all(|p| p.detached.is_none()));
    let tree = r.render_tree();
    assert_eq!(tree.lines().count(), 1 + N + 2);
    assert!(
        tree.contains("[depth 99999] └─ db"),
        "the depth is written out"
    );
    let text = pyjson::to_string_pretty_sorted(v);
    let back = pyjson::from_str_deep(&text).unwrap();
    assert_eq!(tree_ids(&back).len(), N);
    drop_deep(back);
    drop(copy);
}

#[test]
fn a_wide_trace_builds_and_renders() {
    let mut msgs = Vec::with_capacity(2 * N);
    for i in 0..N as i64 {
        // Store order the reverse of start order.
        msgs.extend(point(&format!("p{i}"), "base", 1_000_000 - i, 1_000_000));
    }
    let r = Report::build_owned(msgs, Default::default());
    assert_eq!(r.to_value()["children"].as_array().unwrap().len(), N);
    let walk = Walk::new(r.to_value());
    assert_eq!(walk.points[0].node["trace_id"], format!("p{}", N - 1));
    assert!(
        walk.points
            .windows(2)
            .all(|w| w[0].start_us <= w[1].start_us)
    );
    assert_eq!(r.render_tree().lines().count(), 1 + N + 2);
}

#[test]
fn cycles_and_self_parents_are_shown_as_detached_top_level_points() {
    let mut msgs = Vec::new();
    msgs.extend(point("root", "base", 0, 100));
    msgs.extend(point("a", "b", 10, 20)); // a -> b -> a
    msgs.extend(point("b", "a", 11, 19));
    msgs.extend(point("c", "e", 30, 40)); // c -> e -> d -> c, with f hanging from d
    msgs.extend(point("d", "c", 31, 39));
    msgs.extend(point("e", "d", 32, 38));
    msgs.extend(point("f", "d", 33, 34));
    msgs.extend(point("me", "me", 50, 60));
    let r = Report::build(&msgs);
    let v = r.to_value();
    let mut ids = tree_ids(v);
    ids.sort();
    assert_eq!(ids, ["a", "b", "c", "d", "e", "f", "me", "root"]);
    let top: Vec<&str> = v["children"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["trace_id"].as_str().unwrap())
        .collect();
    // Each cycle cut at its first stored point; all start in millisecond 0: the JSON's order
    // is then the order they became top-level (the walk's is by the microsecond, below).
    assert_eq!(top, ["root", "me", "a", "c"]);
    let walk = Walk::new(v);
    let detached: Vec<(&str, Option<Detached>)> = walk
        .points
        .iter()
        .filter(|p| p.depth == 0)
        .map(|p| (p.node["trace_id"].as_str().unwrap(), p.detached.clone()))
        .collect();
    assert_eq!(
        detached,
        [
            ("root", None),
            ("a", Some(Detached::InCycle)),
            ("c", Some(Detached::InCycle)),
            ("me", Some(Detached::OwnParent)),
        ]
    );
    let tree = r.render_tree();
    assert!(
        tree.starts_with("total 0 ms, 8 points, 3 detached\n"),
        "{tree}"
    );
    assert!(tree.contains("(detached: in a cycle)"), "{tree}");
    assert!(tree.contains("(detached: its own parent)"), "{tree}");
}

#[test]
fn a_point_whose_parent_is_not_stored_is_detached_not_hidden() {
    let mut msgs = Vec::new();
    msgs.extend(point("root", "base", 0, 100));
    msgs.extend(point("orphan", "elsewhere", 10, 20));
    let r = Report::build(&msgs);
    let tree = r.render_tree();
    assert!(
        tree.contains("db  @0.010 ms  0.010 ms  [s@h]  (detached: parent elsewhere not stored)"),
        "{tree}"
    );
    assert!(!tree.lines().nth(1).unwrap().contains("detached"), "{tree}");
    // Python's shape: the orphan is a root, the JSON has no extra key.
    assert_eq!(r.to_value()["children"][1]["trace_id"], "orphan");
    assert!(r.to_value()["info"].get("unreadable").is_none());
}

#[test]
fn unreadable_entries_are_counted_in_the_json_and_the_header() {
    let mut msgs = Vec::new();
    msgs.extend(point("root", "base", 0, 100));
    let mut no_id = msg("x", "base", "db-start", 5);
    no_id["trace_id"] = json!(42);
    let mut bad_ts = msg("y", "base", "db-start", 5);
    bad_ts["timestamp"] = json!("yesterday");
    let mut no_name = msg("z", "base", "db-start", 5);
    no_name.as_object_mut().unwrap().remove("name");
    let mut info_string = msg("w", "base", "db-start", 7);
    info_string["info"] = json!("not an object");
    msgs.extend([
        no_id,
        bad_ts,
        no_name,
        json!("garbage"),
        json!(null),
        info_string,
    ]);
    // A point with only a stop, another with its start stored twice.
    msgs.push(msg("stop-only", "base", "db-stop", 50));
    msgs.push(msg("twice", "base", "db-start", 60));
    msgs.push(msg("twice", "base", "db-start", 60));
    let r = Report::build(&msgs);
    assert_eq!(r.unreadable(), 5);
    assert_eq!(r.to_value()["info"]["unreadable"], 5);
    let mut ids = tree_ids(r.to_value());
    ids.sort();
    assert_eq!(ids, ["root", "stop-only", "twice", "w"]);
    let tree = r.render_tree();
    assert!(
        tree.starts_with("total 0 ms, 4 points, 5 unreadable entries not shown\n"),
        "{tree}"
    );
    assert!(tree.contains("db  @0.050 ms  0.000 ms"), "{tree}");
}

#[test]
fn the_terminal_tree_orders_siblings_by_the_microsecond() {
    let mut msgs = Vec::new();
    msgs.extend(point("root", "base", 0, 20_000));
    // Both start in millisecond 9: the JSON keeps store order, the tree the true order.
    msgs.extend(point("late", "root", 9_907, 9_950));
    msgs.extend(point("early", "root", 9_491, 9_500));
    let r = Report::build(&msgs);
    let kids = r.to_value()["children"][0]["children"].as_array().unwrap();
    assert_eq!(kids[0]["trace_id"], "late", "Python's order in the JSON");
    let tree = r.render_tree();
    let early = tree.find("@9.491 ms").unwrap();
    let late = tree.find("@9.907 ms").unwrap();
    assert!(early < late, "{tree}");
    assert!(tree.contains("├─ db  @9.491"), "{tree}");
    assert!(tree.contains("└─ db  @9.907"), "{tree}");
}

/// One generated message: a point's start or stop with a random parent, or garbage.
#[derive(Debug, Clone)]
enum Gen {
    Point {
        id: u8,
        parent: u8,
        stop: bool,
        us: u32,
    },
    Garbage(u8),
}

fn gen_msg() -> impl Strategy<Value = Gen> {
    prop_oneof![
        8 => (0u8..24, 0u8..30, any::<bool>(), 0u32..5_000).prop_map(|(id, parent, stop, us)| Gen::Point { id, parent, stop, us }),
        1 => (0u8..8).prop_map(Gen::Garbage),
    ]
}

fn materialize(g: &Gen) -> Value {
    match *g {
        // Parents 24..30 are never stored: orphans.
        Gen::Point {
            id,
            parent,
            stop,
            us,
        } => msg(
            &format!("t{id}"),
            &format!("t{parent}"),
            if stop { "db-stop" } else { "db-start" },
            i64::from(us),
        ),
        Gen::Garbage(kind) => {
            let mut m = msg("g", "t0", "db-start", 0);
            match kind {
                0 => m["trace_id"] = json!(7),
                1 => m["timestamp"] = json!("2024-13-45T99:99:99"),
                2 => m["name"] = json!(["db-start"]),
                3 => return json!("not a message"),
                4 => return json!([1, 2]),
                5 => m["timestamp"] = json!(1_704_067_200),
                6 => {
                    m.as_object_mut().unwrap().remove("trace_id");
                }
                _ => m["timestamp"] = json!("99999999999-01-01T00:00:00"),
            }
            m
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn any_parent_links_give_every_readable_point_exactly_once(gens in proptest::collection::vec(gen_msg(), 0..80)) {
        let msgs: Vec<Value> = gens.iter().map(materialize).collect();
        let garbage = gens.iter().filter(|g| matches!(g, Gen::Garbage(_))).count() as u64;
        let mut expected: Vec<String> = gens.iter().filter_map(|g| match g {
            Gen::Point { id, .. } => Some(format!("t{id}")),
            Gen::Garbage(_) => None,
        }).collect();
        expected.sort();
        expected.dedup();
        let r = Report::build(&msgs);
        let mut ids = tree_ids(r.to_value());
        ids.sort();
        prop_assert_eq!(&ids, &expected);
        prop_assert_eq!(r.unreadable(), garbage);
        let walk = Walk::new(r.to_value());
        prop_assert_eq!(walk.points.len(), expected.len());
        // Every top-level point whose parent is stored or is itself is marked detached.
        for p in walk.points.iter().filter(|p| p.depth == 0) {
            let parent = p.node["parent_id"].as_str().unwrap();
            let stored = expected.iter().any(|e| e == parent);
            prop_assert_eq!(p.detached.is_some(), stored || parent != "base");
        }
        let tree = r.render_tree();
        prop_assert_eq!(tree.lines().filter(|l| l.contains("─ db")).count(), expected.len());
        let text = pyjson::to_string_pretty_sorted(r.to_value());
        prop_assert!(pyjson::from_str_deep(&text).is_ok());
    }
}
