//! The HTML report in a real browser: headless Chromium driven by ChromeDriver (W3C WebDriver
//! over HTTP). The page is opened from a file with the network unused, a node is expanded, the
//! rendered rows are checked, a `db` point's details are opened, and the filter box is used.

mod common;

use serde_json::{Value, json};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A ChromeDriver process and one browser session; both end on drop.
struct Browser {
    driver: Child,
    base: String,
    session: String,
    http: reqwest::Client,
}

impl Browser {
    async fn start() -> Browser {
        let port = osprofiler_testkit::free_port();
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect(
                "chromedriver not found: the HTML report test needs Debian's chromium and \
                 chromium-driver packages (scripts/test installs them)",
            );
        let base = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::builder().no_proxy().build().unwrap();
        // Its port answers once it is up (a blocking wait, off the runtime's threads).
        tokio::task::spawn_blocking(move || {
            osprofiler_testkit::wait_until(
                &format!("chromedriver answering on 127.0.0.1:{port}"),
                Duration::from_secs(10),
                || std::net::TcpStream::connect(("127.0.0.1", port)).is_ok(),
            )
        })
        .await
        .unwrap();
        assert!(
            http.get(format!("{base}/status")).send().await.is_ok(),
            "chromedriver did not answer on {base}"
        );
        let profile = std::env::temp_dir().join(format!("osp-chromium-{}", uuid::Uuid::new_v4()));
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                         "--no-first-run", "--disable-background-networking",
                         "--disable-component-update", "--disable-sync",
                         format!("--user-data-dir={}", profile.display())]
            }
        }}});
        let mut b = Browser {
            driver,
            base,
            session: String::new(),
            http,
        };
        let v = b.call("POST", "/session", caps).await;
        b.session = v["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no Chromium session: {v}"))
            .to_owned();
        b
    }

    async fn call(&self, method: &str, path: &str, body: Value) -> Value {
        let url = if path == "/session" {
            format!("{}{path}", self.base)
        } else {
            format!("{}/session/{}{path}", self.base, self.session)
        };
        let req = match method {
            "POST" => self.http.post(url).body(body.to_string()),
            "DELETE" => self.http.delete(url),
            _ => self.http.get(url),
        };
        let resp = req
            .header("content-type", "application/json")
            .send()
            .await
            .expect("WebDriver request");
        let status = resp.status();
        let v: Value = serde_json::from_str(&resp.text().await.unwrap()).unwrap();
        assert!(status.is_success(), "WebDriver {method} {path}: {v}");
        v["value"].clone()
    }

    async fn js(&self, script: &str) -> Value {
        self.call(
            "POST",
            "/execute/sync",
            json!({"script": script, "args": []}),
        )
        .await
    }

    async fn element(&self, css: &str) -> String {
        let v = self
            .call(
                "POST",
                "/element",
                json!({"using": "css selector", "value": css}),
            )
            .await;
        v.as_object()
            .and_then(|o| o.values().next())
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("no element {css}"))
            .to_owned()
    }

    async fn click(&self, css: &str) {
        let id = self.element(css).await;
        self.call("POST", &format!("/element/{id}/click"), json!({}))
            .await;
    }

    async fn visible_rows(&self) -> Vec<String> {
        let v = self
            .js("return Array.from(document.querySelectorAll('tr.point')).filter(r => !r.hidden)\
                 .map(r => r.dataset.depth + ':' + r.dataset.name + ':' + r.querySelector('td.what').textContent);")
            .await;
        serde_json::from_value(v).unwrap()
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn html_report_expands_shows_details_and_filters_in_chromium() {
    let tmp = std::env::temp_dir().join(format!("osp-html-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&tmp).unwrap();
    let cs = format!("sqlite://{}", tmp.join("t.db").display());
    let out = Command::new(env!("CARGO_BIN_EXE_osprofiler"))
        .args(["demo", "--connection-string", &cs, "--dir"])
        .arg(tmp.join("dbs"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let id = text
        .lines()
        .find_map(|l| l.strip_prefix("trace ")?.split_whitespace().next())
        .unwrap()
        .to_owned();
    let page = tmp.join("trace.html");
    let st = Command::new(env!("CARGO_BIN_EXE_osprofiler"))
        .args([
            "trace",
            "show",
            &id,
            "--html",
            "--connection-string",
            &cs,
            "--out",
        ])
        .arg(&page)
        .status()
        .unwrap();
    assert!(st.success());

    let b = Browser::start().await;
    b.call(
        "POST",
        "/url",
        json!({"url": format!("file://{}", page.display())}),
    )
    .await;
    let title = b.js("return document.title;").await;
    assert_eq!(title, format!("OSProfiler trace {id}"));
    assert_eq!(
        b.js("return document.querySelectorAll('tr.point').length;")
            .await,
        35
    );

    // At first: the API's request and its direct children (26 statements and the HTTP call).
    let rows = b.visible_rows().await;
    assert_eq!(rows.len(), 28, "{rows:?}");
    assert_eq!(rows[0], "0:wsgi:GET /orders/1");
    assert!(
        rows[1].starts_with("1:db:SELECT item FROM orders"),
        "{rows:?}"
    );
    assert!(
        rows[27].starts_with("1:http:GET http://127.0.0.1:"),
        "{rows:?}"
    );

    // Expand the outgoing call, then the worker's request.
    b.click("tr.point[data-depth='1'][data-name='http'] .toggle")
        .await;
    let rows = b.visible_rows().await;
    assert_eq!(rows.len(), 29, "{rows:?}");
    assert_eq!(rows[28], "2:wsgi:GET /stock/widget");
    b.click("tr.point[data-depth='2'][data-name='wsgi'] .toggle")
        .await;
    let rows = b.visible_rows().await;
    assert_eq!(rows.len(), 35, "{rows:?}");
    assert_eq!(rows[32], "3:db:begin");

    // Details of a db point.
    assert_eq!(
        b.js("return document.getElementById('details').hidden;")
            .await,
        true
    );
    b.click("tr.point[data-depth='3']:nth-last-child(2)").await;
    assert_eq!(
        b.js("return document.getElementById('details').hidden;")
            .await,
        false
    );
    let statement = b
        .js("return document.querySelector('#details .field-db-statement').textContent;")
        .await;
    assert_eq!(statement, "INSERT INTO reservations (item) VALUES (?)");
    let raw_start = b
        .js("return document.querySelector('#details .raw-start').textContent;")
        .await;
    let raw_start: Value = serde_json::from_str(raw_start.as_str().unwrap()).unwrap();
    assert_eq!(raw_start["name"], "db-start");
    assert_eq!(raw_start["service"], "worker");

    // Filter: the matching point and its ancestors only.
    let input = b.element("#filter").await;
    b.call(
        "POST",
        &format!("/element/{input}/value"),
        json!({"text": "reservations"}),
    )
    .await;
    let rows = b.visible_rows().await;
    let names: Vec<String> = rows
        .iter()
        .map(|r| r.splitn(3, ':').take(2).collect::<Vec<_>>().join(":"))
        .collect();
    assert_eq!(names, ["0:wsgi", "1:http", "2:wsgi", "3:db"], "{rows:?}");

    b.call("DELETE", "", json!({})).await;
    drop(b);
    std::fs::remove_dir_all(&tmp).unwrap();
}

/// The analysis on the page: the summary bar, the statements table, N+1 and duplicate warnings
/// that jump to their points, the critical path marked in the waterfall, siblings in
/// microsecond order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn html_report_shows_the_analysis_in_chromium() {
    // Kept in the target's scratch directory: the page of a realistic trace, to look at.
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("html-analysis");
    std::fs::create_dir_all(&dir).unwrap();
    let saved = common::saved_report(&dir);
    let page = dir.join("realistic-trace.html");
    let st = Command::new(env!("CARGO_BIN_EXE_osprofiler"))
        .args(["trace", "show"])
        .arg(&saved)
        .args(["--html", "--out"])
        .arg(&page)
        .status()
        .unwrap();
    assert!(st.success());

    let b = Browser::start().await;
    b.call(
        "POST",
        "/url",
        json!({"url": format!("file://{}", page.display())}),
    )
    .await;
    let text = |id: &str| format!("return document.getElementById('{id}').textContent;");
    assert_eq!(b.js(&text("sum-duration")).await, "124.000 ms");
    assert_eq!(b.js(&text("sum-db")).await, "98.200 ms (79.2%)");
    assert_eq!(b.js(&text("sum-statements")).await, "24");
    assert_eq!(b.js(&text("sum-errors")).await, "1");

    // The statements table: most total time first.
    let fps: Vec<Vec<String>> = serde_json::from_value(
        b.js(
            "return Array.from(document.querySelectorAll('#fingerprints tbody tr'))\
              .map(r => Array.from(r.cells).map(c => c.textContent));",
        )
        .await,
    )
    .unwrap();
    assert_eq!(fps.len(), 4, "{fps:?}");
    assert_eq!(
        fps[0],
        [
            "1",
            "61.500",
            "61.500",
            "61.500",
            "20",
            "inventory",
            common::SLOW_SQL
        ]
    );
    assert_eq!(
        fps[1],
        [
            "20",
            "30.000",
            "1.500",
            "1.500",
            "20",
            "api",
            common::ROW_SQL
        ]
    );

    // Warnings: an N+1, a duplicate, an error; each link names the point it jumps to.
    let warnings: Vec<(String, String, String)> = serde_json::from_value(
        b.js("return Array.from(document.querySelectorAll('#warnings .warning'))\
              .map(w => [w.textContent, w.querySelector('a').dataset.target, w.querySelector('a').dataset.points]);")
            .await,
    )
    .unwrap();
    assert_eq!(warnings.len(), 3, "{warnings:?}");
    assert!(
        warnings[0].0.starts_with(&format!(
            "N+1 20× {} under wsgi — 30.000 ms",
            common::ROW_SQL
        )),
        "{warnings:?}"
    );
    assert_eq!(
        (warnings[0].1.as_str(), warnings[0].2.as_str()),
        ("db-row-00", "20")
    );
    assert!(
        warnings[1].0.starts_with(&format!(
            "Duplicate 2× with the same values {}",
            common::DUP_SQL
        )),
        "{warnings:?}"
    );
    assert_eq!(
        (warnings[1].1.as_str(), warnings[1].2.as_str()),
        ("db-dup-1", "2")
    );
    assert!(
        warnings[2].0.contains("notify: no reply in 5 ms"),
        "{warnings:?}"
    );
    for (_, target, _) in &warnings {
        assert_eq!(
            b.js(&format!(
                "return document.querySelectorAll('tr.point[data-trace-id=\"{target}\"]').length;"
            ))
            .await,
            1,
            "the warning's point {target} is on the page"
        );
    }

    // Their points carry a warning sign from the start.
    assert_eq!(
        b.js("return document.querySelectorAll('tr.point.suspect').length;")
            .await,
        22
    );

    // The critical path: the request, the HTTP hop, the worker's request and its slow
    // statement are marked; the per-row queries that ran before the hop are on it too (they
    // ran one after the other), the failed RPC after it as well.
    let critical: Vec<String> = serde_json::from_value(
        b.js("return Array.from(document.querySelectorAll('tr.point.critical')).map(r => r.dataset.traceId);")
            .await,
    )
    .unwrap();
    for id in ["api-req", "api-http", "inv-req", "db-slow", "api-rpc"] {
        assert!(
            critical.iter().any(|c| c == id),
            "{id} on the critical path: {critical:?}"
        );
    }

    // The slow statement is hidden at first (two levels down); its warning-free path: click the
    // N+1 warning and its 20 points are expanded, marked, the first one selected.
    assert_eq!(
        b.js("return document.querySelector('tr.point[data-trace-id=\"db-slow\"]').hidden;")
            .await,
        true
    );
    b.click("#warnings .n-plus-one a").await;
    assert_eq!(
        b.js("return document.querySelectorAll('tr.point.flagged').length;")
            .await,
        20
    );
    assert_eq!(
        b.js("return document.querySelectorAll('tr.point.flagged:not([hidden])').length;")
            .await,
        20
    );
    assert_eq!(
        b.js("return document.querySelector('tr.point.selected').dataset.traceId;")
            .await,
        "db-row-00"
    );
    // A statements-table row shows its points: the slow one, two levels down.
    b.click("#fingerprints tbody tr:first-child").await;
    assert_eq!(
        b.js("return document.querySelector('tr.point[data-trace-id=\"db-slow\"]').hidden;")
            .await,
        false
    );
    assert_eq!(
        b.js("return document.querySelector('tr.point.selected').dataset.traceId;")
            .await,
        "db-slow"
    );

    // Siblings by their start to the microsecond, whatever the store's order.
    let order: Vec<String> = serde_json::from_value(
        b.js("return Array.from(document.querySelectorAll('tr.point[data-depth=\"1\"]')).map(r => r.dataset.traceId);")
            .await,
    )
    .unwrap();
    assert_eq!(order.first().map(String::as_str), Some("db-list"));
    assert_eq!(order.last().map(String::as_str), Some("api-rpc"));

    b.call("DELETE", "", json!({})).await;
    drop(b);
}

/// Siblings that start within one millisecond, stored in the wrong order: the report (Python's
/// order) keeps the store's order; the page orders them by the microsecond.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn html_report_orders_siblings_by_the_microsecond_in_chromium() {
    let msg = |name: &str, id: &str, parent: &str, us: i64| {
        json!({"name": name, "base_id": "b", "trace_id": id, "parent_id": parent,
               "timestamp": osprofiler_core::clock::format_timestamp(1_765_000_000_000_000 + us),
               "project": "p", "service": "s", "info": {"host": "h"}})
    };
    let msgs = [
        msg("wsgi-start", "root", "b", 0),
        msg("late-start", "late", "root", 9_907),
        msg("early-start", "early", "root", 9_491),
        msg("early-stop", "early", "root", 9_600),
        msg("late-stop", "late", "root", 9_950),
        msg("wsgi-stop", "root", "b", 10_000),
    ];
    let report = osprofiler_core::report::Report::build(&msgs).into_value();
    let dir = std::env::temp_dir().join(format!("osp-html-us-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let page = dir.join("p.html");
    std::fs::write(&page, osprofiler_cli::render_html(&report, "b")).unwrap();
    let b = Browser::start().await;
    b.call(
        "POST",
        "/url",
        json!({"url": format!("file://{}", page.display())}),
    )
    .await;
    let names: Vec<String> = serde_json::from_value(
        b.js("return Array.from(document.querySelectorAll('tr.point')).map(r => r.dataset.name);")
            .await,
    )
    .unwrap();
    assert_eq!(names, ["wsgi", "early", "late"]);
    b.call("DELETE", "", json!({})).await;
    drop(b);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn html_report_opens_and_filters_a_trace_as_deep_as_it_is_long_in_chromium() {
    // Each point the parent of the next: deeper than any recursion the page could afford.
    const DEPTH: i64 = 20_000;
    let mut msgs = Vec::with_capacity(2 * DEPTH as usize);
    for i in 0..DEPTH {
        let (id, parent) = (
            format!("p{i}"),
            if i == 0 {
                "b".to_owned()
            } else {
                format!("p{}", i - 1)
            },
        );
        for (phase, us) in [("start", i), ("stop", 2 * DEPTH - i)] {
            msgs.push(
                json!({"name": format!("step-{phase}"), "base_id": "b", "trace_id": id,
                "parent_id": parent, "project": "p", "service": "s",
                "timestamp": osprofiler_core::clock::format_timestamp(1_765_000_000_000_000 + us),
                "info": {"host": "h", "function": {"name": format!("f{i}")}}}),
            );
        }
    }
    let report = osprofiler_core::report::Report::build(&msgs).into_value();
    let page_text = osprofiler_cli::render_html(&report, "b");
    osprofiler_core::report::drop_deep(report);
    let dir = std::env::temp_dir().join(format!("osp-html-deep-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let page = dir.join("p.html");
    std::fs::write(&page, page_text).unwrap();
    let b = Browser::start().await;
    b.call(
        "POST",
        "/url",
        json!({"url": format!("file://{}", page.display())}),
    )
    .await;
    assert_eq!(
        b.js("return document.querySelectorAll('tr.point').length;")
            .await,
        DEPTH
    );
    // Filtering for the deepest point shows it with every ancestor.
    let input = b.element("#filter").await;
    b.call(
        "POST",
        &format!("/element/{input}/value"),
        json!({"text": format!("f{}", DEPTH - 1)}),
    )
    .await;
    assert_eq!(
        b.js("return Array.from(document.querySelectorAll('tr.point')).filter(r => !r.hidden).length;")
            .await,
        DEPTH
    );
    b.call("DELETE", "", json!({})).await;
    drop(b);
    std::fs::remove_dir_all(&dir).unwrap();
}
