//! Every `[profiler]` option has its effect or is named in one warning at start-up: the options
//! accepted for compatibility (`trace_requests`, `es_*`, and `socket_timeout` or
//! `sentinel_service_name` with a collector that does not use them) each log one warning from
//! `init_from_conf` saying why; options left at their defaults, or that take effect, log none.
//!
//! One test: it installs the process's logger.

use osprofiler_core::{self as osp, ProfilerConfig};
use std::sync::Mutex;

static WARNINGS: Mutex<Vec<String>> = Mutex::new(Vec::new());

struct Capture;

impl log::Log for Capture {
    fn enabled(&self, m: &log::Metadata<'_>) -> bool {
        m.level() <= log::Level::Warn
    }
    fn log(&self, r: &log::Record<'_>) {
        if self.enabled(r.metadata()) {
            WARNINGS.lock().unwrap().push(r.args().to_string());
        }
    }
    fn flush(&self) {}
}

fn warnings_of(ini: &str) -> Vec<String> {
    let conf = ProfilerConfig::from_ini_str(ini).unwrap();
    WARNINGS.lock().unwrap().clear();
    let _guard = osp::init_from_conf(&conf, "p", "s", None).unwrap();
    std::mem::take(&mut *WARNINGS.lock().unwrap())
}

#[test]
fn inert_options_are_named_once_at_start_up() {
    log::set_logger(&Capture).unwrap();
    log::set_max_level(log::LevelFilter::Warn);

    let got = warnings_of(
        "[profiler]\ntrace_requests = true\nes_doc_type = doc\nes_scroll_time = 5m\n\
         socket_timeout = 2\nsentinel_service_name = prod\n",
    );
    let named: Vec<&str> = got
        .iter()
        .map(|w| w.split_whitespace().nth(2).unwrap())
        .collect();
    assert_eq!(
        named,
        [
            "trace_requests",
            "es_doc_type",
            "es_scroll_time",
            "socket_timeout",
            "sentinel_service_name"
        ],
        "{got:#?}"
    );
    assert!(got[0].contains("client middleware"), "{}", got[0]);
    assert!(got[1].contains("mapping types are gone"), "{}", got[1]);
    assert!(
        got[2].contains("only the elasticsearch:// collector"),
        "{}",
        got[2]
    );

    // Defaults, and options that take effect with the collector given: no warning.
    assert!(warnings_of("[profiler]\nenabled = false\n").is_empty());
    assert!(
        warnings_of(
            "[profiler]\nconnection_string = redissentinel://127.0.0.1:26379\n\
             socket_timeout = 2\nsentinel_service_name = prod\n"
        )
        .is_empty()
    );
    assert!(
        warnings_of(
            "[profiler]\nconnection_string = elasticsearch://127.0.0.1:9200\n\
             es_scroll_time = 5m\nes_scroll_size = 500\n"
        )
        .is_empty()
    );

    // Enabled with OSProfiler's well-known default key: one warning, once per process.
    let own_key =
        "[profiler]\nenabled = true\nhmac_keys = k3y-of-our-own\nconnection_string = memory://\n";
    assert!(warnings_of(own_key).is_empty());
    let default_key = "[profiler]\nenabled = true\nconnection_string = memory://\n";
    let got = warnings_of(default_key);
    assert_eq!(got.len(), 1, "{got:#?}");
    assert!(got[0].contains("default key \"SECRET_KEY\""), "{}", got[0]);
    assert!(warnings_of(default_key).is_empty(), "said once");
}
