//! Collector throughput and report building. Each driver stores batches of 512 real messages
//! (256 `db` points with a statement, as the notifier hands them over); criterion reports
//! messages per second. Needs the local services: SQLite is a file under the temp directory,
//! PostgreSQL at 127.0.0.1:5432 (database `test`), Redis at 127.0.0.1:6379, MongoDB (or
//! SecantusDB, as `scripts/test` starts it) at 127.0.0.1:27017, OpenSearch at 127.0.0.1:9200
//! (index `osp-bench-<pid>`, deleted at the end).
//! Run: `cargo bench -p osprofiler-benches --bench collectors`.
#![allow(missing_docs)] // criterion_group! generates undocumented items
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use osprofiler_core::notifier::Writer;
use osprofiler_core::{self as osp, Trace, message::Message, report::Report};
use std::time::Duration;

fn messages(points: usize) -> (String, Vec<Message>) {
    osprofiler_testkit::captured_trace(|| {
        let _wsgi = Trace::new(
            "wsgi",
            || osp::info!({"request": {"path": "/v2/servers", "method": "GET", "query": "", "scheme": "http"}}),
        );
        for i in 0..points - 1 {
            drop(Trace::new("db", || {
                osp::info!({"db": {"api": "fetch_all", "system": "postgresql", "namespace": "nova",
                            "statement": format!("SELECT id, name, status FROM instances WHERE project_id = $1 AND id > {i}")}})
            }));
        }
    })
}

fn bench(c: &mut Criterion) {
    let (_, batch) = messages(256);
    let dir = std::env::temp_dir().join(format!("osp-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let drivers: Vec<(&str, Box<dyn Writer>)> = vec![
        (
            "sqlite_memory",
            Box::new(osprofiler_collectors::SqlDriver::open("sqlite://:memory:").unwrap()),
        ),
        (
            "sqlite_file",
            Box::new(
                osprofiler_collectors::SqlDriver::open(&format!(
                    "sqlite://{}",
                    dir.join("bench.db").display()
                ))
                .unwrap(),
            ),
        ),
        (
            "postgresql",
            Box::new(
                osprofiler_collectors::SqlDriver::open("postgresql://postgres@127.0.0.1:5432/test")
                    .unwrap(),
            ),
        ),
        (
            "redis",
            Box::new(
                osprofiler_collectors::RedisDriver::open("redis://127.0.0.1:6379", false).unwrap(),
            ),
        ),
        (
            "mongodb",
            Box::new(
                osprofiler_collectors::MongoDriver::open("mongodb://127.0.0.1:27017", false)
                    .unwrap(),
            ),
        ),
    ];
    let mut g = c.benchmark_group("collector_notify_512");
    g.throughput(Throughput::Elements(batch.len() as u64));
    g.measurement_time(Duration::from_secs(5));
    for (name, d) in &drivers {
        d.notify(&batch)
            .unwrap_or_else(|e| panic!("{name} is needed for this benchmark: {e}"));
        g.bench_function(*name, |b| b.iter(|| d.notify(&batch).unwrap()));
    }
    // Elasticsearch documents have fixed ids (point and phase): the same batch again would
    // overwrite, not add. Each iteration stores a new trace's batch (made outside the timing).
    let index = format!("osp-bench-{}", std::process::id());
    let es = osprofiler_collectors::ElasticsearchDriver::open(&format!(
        "elasticsearch://127.0.0.1:9200?index={index}"
    ))
    .unwrap();
    es.notify(&batch)
        .unwrap_or_else(|e| panic!("OpenSearch is needed for this benchmark: {e}"));
    g.bench_function("elasticsearch", |b| {
        b.iter_batched(
            || messages(256).1,
            |fresh| es.notify(&fresh).unwrap(),
            criterion::BatchSize::PerIteration,
        )
    });
    g.finish();
    let _ = std::process::Command::new("curl")
        .args(["-s", "-X", "DELETE"])
        .arg(format!("http://127.0.0.1:9200/{index}*"))
        .output();

    // One 10,000-point trace (20,000 messages) into a report.
    let (_, big) = messages(10_000);
    let values: Vec<serde_json::Value> = big.iter().map(Message::to_value).collect();
    let mut g = c.benchmark_group("report");
    g.sample_size(10);
    // What `trace show` does: the driver's messages moved into the report.
    g.bench_function("build_10k_points", |b| {
        b.iter_batched(
            || values.clone(),
            |v| Report::build_owned(v, Default::default()),
            criterion::BatchSize::LargeInput,
        )
    });
    // From borrowed messages (each copied into the report).
    g.bench_function("build_10k_points_borrowed", |b| {
        b.iter_batched(
            || (),
            |()| Report::build(&values),
            criterion::BatchSize::LargeInput,
        )
    });
    g.finish();
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(benches, bench);
criterion_main!(benches);
