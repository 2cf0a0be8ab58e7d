//! Fuzzes the report builder: any messages a store can hold — generated parent links (cycles,
//! self-parents, missing parents), duplicates, start- or stop-only points, wrong types,
//! garbage — or the input itself as JSON, must give a report without panicking, with every
//! readable point in the tree exactly once and every other entry counted as unreadable; and
//! every view (terminal tree, precise walk, --json layout read back, compact HTML data, clone,
//! compare, drop) must work on it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use osprofiler_core::pyjson::{self, Layout};
use osprofiler_core::report::{Report, ReportOptions, Walk, drop_deep, precise_children};
use serde_json::{Value, json};
use std::collections::HashSet;

/// Four bytes per message: kind, point id, parent id, time.
fn messages(data: &[u8]) -> (Vec<Value>, u64) {
    let mut out = Vec::new();
    let mut garbage = 0;
    for c in data.chunks_exact(4) {
        let (kind, id, parent, t) = (c[0], c[1] % 16, c[2] % 20, c[3]);
        let mut m = json!({
            "name": if kind & 1 == 0 { "db-start" } else { "db-stop" },
            "base_id": "base",
            "trace_id": format!("t{id}"),
            // Ids 16..19 are never stored; 19 is the base id (a root).
            "parent_id": if parent == 19 { "base".to_owned() } else { format!("t{parent}") },
            "timestamp": format!("2024-01-01T00:00:{:02}.{:06}", t / 60, u32::from(t) * 997 % 1_000_000),
            "info": {"host": "h", "db": {"statement": "SELECT 1"}},
            "project": null,
            "service": "s",
        });
        match kind >> 1 {
            0..=90 => {}
            91 => m["info"] = json!("not an object"),
            92 => m["parent_id"] = json!(7),
            93 => m["info"]["etype"] = json!({"odd": []}),
            94 => m["service"] = json!(["list"]),
            _ => {
                garbage += 1;
                match kind >> 1 {
                    95 => m["trace_id"] = json!(3),
                    96 => m["timestamp"] = json!("2024-02-30T25:00:00"),
                    97 => m["timestamp"] = json!("99999999999999999999-01-01T00:00:00"),
                    98 => m["name"] = Value::Null,
                    99 => m = json!("not a message"),
                    100 => m = json!([1, [2, [3]]]),
                    101 => {
                        m.as_object_mut().unwrap().remove("timestamp");
                    }
                    _ => m["timestamp"] = json!(-1),
                }
            }
        }
        out.push(m);
    }
    (out, garbage)
}

fn check(report: &Report, readable: Option<&HashSet<String>>, garbage: Option<u64>) {
    let v = report.to_value();
    let mut seen: Vec<String> = Vec::new();
    let mut todo: Vec<&Value> = v["children"].as_array().unwrap().iter().collect();
    while let Some(n) = todo.pop() {
        seen.push(n["trace_id"].as_str().unwrap().to_owned());
        todo.extend(n["children"].as_array().unwrap());
    }
    let unique: HashSet<String> = seen.iter().cloned().collect();
    assert_eq!(unique.len(), seen.len(), "a point twice in the tree");
    if let Some(readable) = readable {
        assert_eq!(&unique, readable, "every readable point in the tree");
    }
    if let Some(g) = garbage {
        assert_eq!(report.unreadable(), g);
    }
    let walk = Walk::new(v);
    assert_eq!(walk.points.len(), seen.len());
    let _ = precise_children(v);
    let tree = report.render_tree();
    assert_eq!(tree.lines().filter(|l| l.contains("─ ")).count(), seen.len());
    let text = pyjson::to_string_pretty_sorted(v);
    let back = pyjson::from_str_deep(&text).expect("the --json layout reads back");
    assert_eq!(pyjson::to_string(&back), {
        let mut o = Vec::new();
        pyjson::write_value(&mut o, &back, Layout::Python);
        String::from_utf8(o).unwrap()
    });
    drop_deep(back);
    let mut html = Vec::new();
    pyjson::write_value(&mut html, v, Layout::Compact);
    let html = pyjson::from_str_deep(std::str::from_utf8(&html).unwrap());
    drop_deep(html.expect("the HTML page's data reads back"));
    let copy = report.clone();
    assert_eq!(&copy, report);
}

fuzz_target!(|data: &[u8]| {
    // The input as JSON messages, when it is JSON.
    if let Ok(text) = std::str::from_utf8(data)
        && let Ok(v) = pyjson::from_str_deep(text)
    {
        let msgs = match v {
            Value::Array(items) => items,
            other => vec![other],
        };
        for keep_full_names in [false, true] {
            let r = Report::build_with(&msgs, ReportOptions { keep_full_names });
            check(&r, None, None);
        }
        drop_deep(Value::Array(msgs));
        return;
    }
    let (msgs, garbage) = messages(data);
    let readable: HashSet<String> = msgs
        .iter()
        .filter(|m| {
            m["trace_id"].is_string()
                && m["name"].is_string()
                && m["timestamp"].as_str().is_some_and(|t| t.starts_with("2024-01-01"))
        })
        .map(|m| m["trace_id"].as_str().unwrap().to_owned())
        .collect();
    let r = Report::build_owned(msgs, ReportOptions::default());
    check(&r, Some(&readable), Some(garbage));
});
