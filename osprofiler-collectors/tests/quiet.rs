//! The collectors' own database traffic never shows up as the application's logs: an
//! application logging every `tracing` event (sqlx logs each statement it runs as one) sees
//! none of the SQL collector's INSERTs and SELECTs. One test: it installs the process's
//! subscriber.

use osprofiler_collectors::SqlDriver;
use osprofiler_core::notifier::{Reader, Writer};
use osprofiler_core::{Info, Trace};
use std::io::Write;
use std::sync::{Arc, Mutex};

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn the_sql_collectors_statements_are_not_the_applications_logs() {
    let logs = Captured::default();
    let sink = logs.clone();
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || sink.clone())
        .init();
    tracing::info!("the application logs");

    let path = std::env::temp_dir().join(format!("osp-quiet-{}.db", uuid::Uuid::new_v4()));
    for cs in [
        format!("sqlite://{}", path.display()),
        "postgresql://postgres@127.0.0.1:5432/test".to_owned(),
    ] {
        let d = SqlDriver::open(&cs).unwrap();
        let (id, msgs) =
            osprofiler_testkit::captured_trace(|| Trace::new("db", Info::new).finish());
        d.notify(&msgs).unwrap_or_else(|e| panic!("{cs}: {e}"));
        assert_eq!(d.trace_messages(&id).unwrap().len(), 2);
        assert!(d.list_traces().unwrap().iter().any(|t| t.base_id == id));
        d.delete_trace(&id).unwrap();
        let reader = SqlDriver::open_read_only(&cs).unwrap();
        let _ = reader.list_traces().unwrap();
    }
    let _ = std::fs::remove_file(&path);

    let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(
        text.contains("the application logs"),
        "the capture works: {text}"
    );
    for sql in [
        "INSERT INTO data",
        "SELECT",
        "CREATE TABLE",
        "DELETE FROM data",
    ] {
        assert!(
            !text.contains(sql),
            "{sql} in the application's logs:\n{text}"
        );
    }
}
