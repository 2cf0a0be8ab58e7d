//! The layer never disables a span for the other layers: with a per-layer filter on the
//! osprofiler layer, `fmt` still logs every span, inside a trace and outside.

use osprofiler_core as osp;
use std::io::Write;
use std::sync::{Arc, Mutex};
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::fmt::format::FmtSpan;
use tracing_subscriber::prelude::*;

#[derive(Clone, Default)]
struct Buffer(Arc<Mutex<Vec<u8>>>);

impl Write for Buffer {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn fmt_keeps_logging_every_span() {
    osprofiler_testkit::collector();
    let buffer = Buffer::default();
    let out = buffer.clone();
    let subscriber = tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(move || out.clone())
                .with_ansi(false)
                .with_span_events(FmtSpan::CLOSE)
                .with_filter(LevelFilter::TRACE),
        )
        .with(osprofiler_tracing::layer().with_filter(LevelFilter::INFO));
    let base = tracing::subscriber::with_default(subscriber, || {
        drop(tracing::trace_span!("untraced_trace_level").entered());
        drop(tracing::info_span!("untraced_info_level").entered());
        let p = osp::init("k", None, None).unwrap();
        drop(tracing::trace_span!("traced_trace_level").entered());
        drop(tracing::info_span!("traced_info_level").entered());
        osp::clean();
        p.base_id().to_string()
    });
    let log = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
    for span in [
        "untraced_trace_level",
        "untraced_info_level",
        "traced_trace_level",
        "traced_info_level",
    ] {
        assert!(
            log.contains(&format!("{span}: fmt_layer: close")),
            "{span} not logged:\n{log}"
        );
    }
    let msgs = osprofiler_testkit::messages_of(&base);
    let names: Vec<String> = msgs
        .iter()
        .map(|m| format!("{} {}", m["name"], m["info"]["function"]["name"]))
        .collect();
    assert_eq!(
        names,
        [
            r#""span-start" "fmt_layer::traced_info_level""#,
            r#""span-stop" null"#
        ],
        "only the INFO span in the trace is a point"
    );
}
