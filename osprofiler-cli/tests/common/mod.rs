//! A realistic two-service trace for the analysis views: a list query followed by one query
//! per row (20 rows), one statement run twice with the same values, a slow statement behind
//! an HTTP hop to a second service, and a failed RPC call.

#![allow(dead_code)]

use osprofiler_core::clock::format_timestamp;
use serde_json::{Value, json};

pub const BASE: &str = "7a1e9f54-3c2b-4d8e-9f10-aa00bb11cc22";
const T0: i64 = 1_765_000_000_000_000;

fn point(out: &mut Vec<Value>, p: (&str, &str, &str, &str), us: (i64, i64), info: (Value, Value)) {
    let (name, id, parent, service) = p;
    for (phase, t, info) in [("start", us.0, info.0), ("stop", us.1, info.1)] {
        out.push(json!({
            "name": format!("{name}-{phase}"), "base_id": BASE, "trace_id": id,
            "parent_id": parent, "timestamp": format_timestamp(T0 + t), "project": "shop",
            "service": service, "info": info.as_object().cloned().unwrap_or_default()
                .into_iter().chain([("host".to_owned(), json!(format!("{service}-1")))]).collect::<serde_json::Map<_, _>>(),
        }));
    }
}

fn db(sql: &str, fp: u64, values: u64) -> Value {
    json!({"db": {"api": "query", "system": "postgresql", "namespace": "shop",
        "statement": sql, "fingerprint": format!("{fp:016x}"), "normalized": sql,
        "values": format!("{values:016x}")}})
}

fn rows(n: u64) -> Value {
    json!({"db": {"rows": n}})
}

pub const LIST_SQL: &str = "SELECT id, item FROM orders WHERE customer_id = ?";
pub const ROW_SQL: &str = "SELECT name, price FROM items WHERE id = ?";
pub const DUP_SQL: &str = "SELECT id, name, email FROM customers WHERE id = ?";
pub const SLOW_SQL: &str = "SELECT item, qty FROM stock WHERE item IN (?) FOR UPDATE";

/// The trace's messages, in store order.
pub fn messages() -> Vec<Value> {
    let mut m = Vec::new();
    let wsgi = |path: &str| json!({"request": {"method": "GET", "path": path, "scheme": "http", "query": ""}});
    point(
        &mut m,
        ("wsgi", "api-req", BASE, "api"),
        (0, 124_000),
        (wsgi("/customers/7/orders"), json!({})),
    );
    point(
        &mut m,
        ("db", "db-list", "api-req", "api"),
        (1_200, 4_900),
        (db(LIST_SQL, 0x1001, 1), rows(20)),
    );
    for i in 0..20 {
        let s = 5_300 + i * 1_900;
        point(
            &mut m,
            ("db", &format!("db-row-{i:02}"), "api-req", "api"),
            (s, s + 1_500),
            (db(ROW_SQL, 0x2002, 100 + i as u64), rows(1)),
        );
    }
    point(
        &mut m,
        ("db", "db-dup-1", "api-req", "api"),
        (43_600, 45_100),
        (db(DUP_SQL, 0x3003, 7), rows(1)),
    );
    point(
        &mut m,
        ("db", "db-dup-2", "api-req", "api"),
        (45_400, 46_900),
        (db(DUP_SQL, 0x3003, 7), rows(1)),
    );
    let http = json!({"requests": {"method": "GET", "scheme": "http", "hostname": "inventory", "port": 8080, "path": "/stock"}});
    point(
        &mut m,
        ("http", "api-http", "api-req", "api"),
        (47_500, 116_000),
        (http, json!({})),
    );
    point(
        &mut m,
        ("wsgi", "inv-req", "api-http", "inventory"),
        (49_000, 114_500),
        (wsgi("/stock"), json!({})),
    );
    point(
        &mut m,
        ("db", "db-slow", "inv-req", "inventory"),
        (50_500, 112_000),
        (db(SLOW_SQL, 0x4004, 9), rows(20)),
    );
    let rpc =
        json!({"function": {"name": "shop.notify.order_viewed", "args": "()", "kwargs": "{}"}});
    point(
        &mut m,
        ("rpc", "api-rpc", "api-req", "api"),
        (116_500, 123_000),
        (
            rpc,
            json!({"etype": "TimeoutError", "message": "notify: no reply in 5 ms"}),
        ),
    );
    m
}

/// The trace saved as `trace show --json` would save it, in `dir`.
pub fn saved_report(dir: &std::path::Path) -> std::path::PathBuf {
    let report = osprofiler_core::report::Report::build(&messages()).into_value();
    let path = dir.join("realistic.json");
    std::fs::write(&path, osprofiler_cli::render_json(&report)).unwrap();
    path
}
