//! `osprofiler`: show and list stored traces, and run the demo.

use clap::{Args, Parser, Subcommand};
use osprofiler_cli::{CliError, demo};
use osprofiler_collectors::DEFAULT_CONNECTION_STRING;
use osprofiler_core::notifier::TraceState;
use osprofiler_core::report::ReportOptions;
use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "osprofiler",
    version,
    about = "Show OSProfiler traces stored by Rust or Python services, delete old ones, and run a demo"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Args, Clone)]
struct Conn {
    /// The collector's connection string (the help text lists the forms).
    #[arg(
        long = "connection-string",
        value_name = "URL",
        env = "OSPROFILER_CONNECTION_STRING",
        // --help would print the variable's value, password included.
        hide_env_values = true,
        help = "Where traces are stored: sqlite://PATH, postgresql://…, mysql://…, redis://HOST:PORT, redissentinel://HOST:PORT, mongodb://HOST:PORT, elasticsearch://HOST:PORT, messaging://[USER:PASS@HOST:PORT/VHOST] [default: sqlite://osprofiler.db, or the --config-file's]"
    )]
    connection_string: Option<String>,
    /// The service's oslo.config file: the `connection_string` of its `[profiler]` section is
    /// used unless --connection-string (or OSPROFILER_CONNECTION_STRING) is given.
    #[arg(long = "config-file", value_name = "PATH")]
    config_file: Option<PathBuf>,
}

impl Conn {
    /// The connection string: given, else the config file's, else the default.
    fn resolve(&self) -> Result<String, CliError> {
        if let Some(cs) = &self.connection_string {
            return Ok(cs.clone());
        }
        let Some(path) = &self.config_file else {
            return Ok(DEFAULT_CONNECTION_STRING.to_owned());
        };
        let text = std::fs::read_to_string(path)
            .map_err(|e| CliError(format!("--config-file {}: {e}", path.display())))?;
        // Which connection_string the file gives, if any (defaults would hide its absence).
        let mut given = osprofiler_core::ProfilerConfig::default();
        given.connection_string = String::new();
        given
            .apply_ini_str(&text)
            .map_err(|e| CliError(format!("--config-file {}: {e}", path.display())))?;
        if given.connection_string.is_empty() {
            // Python's services default to messaging://; ours to SQLite: say it, guess neither.
            return Err(CliError(format!(
                "--config-file {}: its [profiler] section has no connection_string (a Python \
                 service then uses messaging://): give --connection-string",
                path.display()
            )));
        }
        Ok(given.connection_string)
    }
}

#[derive(Subcommand)]
enum Command {
    /// Work with stored traces.
    Trace {
        #[command(subcommand)]
        command: TraceCommand,
    },
    /// Statements and endpoints across many traces: calls, total, mean, p95 and max time,
    /// rows, and the slowest trace of each to open (pg_stat_statements that counts the
    /// application's own time too). Most total time first.
    Stats {
        #[command(flatten)]
        conn: Conn,
        /// Only traces that started since then: a duration back from now (90s, 30m, 1h, 7d,
        /// 2w) or a time (2024-05-01T10:00:00Z, or OSProfiler's 2024-05-01T10:00:00.000000).
        #[arg(long, value_name = "WHEN", value_parser = parse_since_arg)]
        since: Option<i64>,
        /// Only this service's statements, and the requests it served as endpoints.
        #[arg(long, value_name = "NAME")]
        service: Option<String>,
        /// Read at most the newest N traces.
        #[arg(long = "max-traces", value_name = "N", default_value_t = 1000)]
        max_traces: usize,
        /// Rows per table in the terminal output (the JSON has every row).
        #[arg(long, value_name = "N", default_value_t = 20)]
        top: usize,
        /// The statistics as JSON (keys: traces, service, endpoints, statements).
        #[arg(long)]
        json: bool,
    },
    /// Delete the stored traces whose newest point is older than --older-than.
    ///
    /// Traces of Rust and Python services alike, provisional ones too, each whole: its
    /// messages, summaries, error index and staging record (a trace with a newer point is
    /// never cut). Prints how many. A service's `retention` option does the same by itself.
    /// Needs a collector that can delete: sqlite://, postgresql://, mysql://, redis://,
    /// mongodb:// or elasticsearch://.
    Prune {
        #[command(flatten)]
        conn: Conn,
        /// How old a trace's newest point must be: a number and a unit, s, m, h, d or w (90s,
        /// 30m, 12h, 7d, 2w); at least 1m (a younger trace may still be being written).
        #[arg(long = "older-than", value_name = "AGE", value_parser = parse_age)]
        older_than: std::time::Duration,
        /// Only say how many traces would be deleted (from the listing), delete nothing.
        #[arg(long = "dry-run")]
        dry_run: bool,
    },
    /// Start two demo services on loopback, send one traced request and show its trace.
    Demo {
        #[command(flatten)]
        conn: Conn,
        /// Where the demo services keep their SQLite databases (default: a temporary directory,
        /// removed afterwards).
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// The demo's worker service (started by `osprofiler demo`).
    #[command(hide = true, name = "demo-worker")]
    DemoWorker {
        #[command(flatten)]
        conn: Conn,
        #[arg(long)]
        dir: PathBuf,
    },
}

#[derive(Subcommand)]
enum TraceCommand {
    /// Show one trace: a tree in the terminal (default), or JSON, HTML or DOT.
    Show {
        /// The trace's base id, or a report saved with --json.
        trace: String,
        #[command(flatten)]
        conn: Conn,
        /// Python's `osprofiler trace show --json` output.
        #[arg(long, group = "format")]
        json: bool,
        /// One self-contained HTML page (works offline).
        #[arg(long, group = "format")]
        html: bool,
        /// A Graphviz digraph.
        #[arg(long, group = "format")]
        dot: bool,
        /// Write to FILE instead of standard output.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        /// Keep point names whole (`compute-api`); Python cuts them at the first `-`.
        #[arg(long)]
        keep_names: bool,
        /// messaging:// only: take the trace's notifications off the profiler.info queue
        /// (by default they are read and returned to it).
        #[arg(long)]
        consume: bool,
        /// Show the trace even if it is provisional and not kept (yet): a trace a service
        /// started to keep only if slow or failed (keep_slow_ms), removed unless kept within
        /// the staging window. The tree then starts with a line saying so (the other formats
        /// say it on standard error).
        #[arg(long)]
        pending: bool,
    },
    /// Delete one trace (not one written to in the last minute, unless --force).
    ///
    /// Its messages, summaries, error index and staging record go; prints how many messages.
    /// A trace with a point written less than a minute ago may still be being written: it is
    /// refused unless --force. A trace that is not stored is an error.
    Delete {
        /// The trace's base id.
        trace: String,
        #[command(flatten)]
        conn: Conn,
        /// Delete it even if its newest point is less than a minute old.
        #[arg(long)]
        force: bool,
    },
    /// Where the time went: DB share, statements by total time, N+1 and duplicate statements,
    /// errors, the critical path.
    Analyze {
        /// The trace's base id, or a report saved with `trace show --json`.
        trace: String,
        #[command(flatten)]
        conn: Conn,
        /// The analysis as JSON (keys: base_id, duration_ms, points, errors, services, db,
        /// fingerprints, n_plus_one, duplicates, critical_path).
        #[arg(long)]
        json: bool,
        /// The fewest different-value executions of one statement in a row under one parent
        /// reported as an N+1.
        #[arg(long, value_name = "N", default_value_t = 5)]
        n1_min_calls: usize,
        /// Keep point names whole (`compute-api`); Python cuts them at the first `-`.
        #[arg(long)]
        keep_names: bool,
    },
    /// List stored traces, one line each: base id, start, duration, root point, points, DB
    /// statements, DB time, errors (count and first error type), services. The newest 50
    /// (oldest of them first) unless sorted by duration (longest first).
    List {
        #[command(flatten)]
        conn: Conn,
        /// Only traces with an error (`--error-trace`, Python's name, works too).
        #[arg(long = "errors", visible_alias = "error-trace")]
        errors: bool,
        /// Only traces that started since then: a duration back from now (90s, 30m, 1h, 7d,
        /// 2w) or a time (2024-05-01T10:00:00Z, 2024-05-01T10:00:00+02:00, or OSProfiler's
        /// 2024-05-01T10:00:00.000000 in UTC).
        #[arg(long, value_name = "WHEN", value_parser = parse_since_arg)]
        since: Option<i64>,
        /// Only traces that took at least MS milliseconds.
        #[arg(
            long = "min-duration",
            value_name = "MS",
            value_parser = parse_min_duration,
            allow_hyphen_values = true
        )]
        min_duration: Option<f64>,
        /// Only traces with a point written by this service.
        #[arg(long, value_name = "NAME")]
        service: Option<String>,
        /// The order: by start (oldest first, the newest last) or by duration (longest first).
        #[arg(long, value_enum, default_value_t = ListSort::Start)]
        sort: ListSort,
        /// How many traces: the newest (--sort start) or the longest (--sort duration).
        #[arg(long, value_name = "N", default_value_t = 50, conflicts_with = "all")]
        limit: usize,
        /// List every trace.
        #[arg(long)]
        all: bool,
        /// A JSON array of objects with the keys base_id, start, duration_ms, root, services,
        /// points, db_statements, db_ms, errors, error_type (and state, with --pending).
        #[arg(long)]
        json: bool,
        /// Also provisional traces not kept (yet) (keep_slow_ms: removed unless a service keeps
        /// them within the staging window), with a state column: stored, pending (may still be
        /// kept) or dropped (not kept, being removed); JSON gets a "state" key.
        #[arg(long)]
        pending: bool,
    },
}

/// `trace list --sort`.
#[derive(Clone, Copy, clap::ValueEnum)]
enum ListSort {
    /// Oldest first.
    Start,
    /// Longest first.
    Duration,
}

/// `--since`: microseconds since the epoch.
fn parse_since_arg(text: &str) -> Result<i64, String> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64);
    osprofiler_core::listing::parse_since(text, now)
}

/// `prune --older-than`: at least a minute.
fn parse_age(text: &str) -> Result<std::time::Duration, String> {
    let age = osprofiler_cli::parse_age(text)?;
    if age < osprofiler_cli::STILL_WRITTEN {
        return Err(format!(
            "{text:?} is less than 1m: a trace that young may still be being written"
        ));
    }
    Ok(age)
}

/// `--min-duration`: milliseconds, a number ≥ 0.
fn parse_min_duration(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(ms) if ms.is_finite() && ms >= 0.0 => Ok(ms),
        _ => Err(format!(
            "{text:?} is not a number of milliseconds ≥ 0 (such as 250 or 1.5)"
        )),
    }
}

/// The `trace list` table; with `states` (`--pending`), a state column after the base id.
fn render_listing(
    traces: &[osprofiler_core::listing::TraceListing],
    states: Option<&[TraceState]>,
) -> String {
    let state_column = |s: &str| {
        if states.is_some() {
            format!("{s:<7}  ")
        } else {
            String::new()
        }
    };
    let mut text = format!(
        "{:<36}  {}{:<26}  {:>11}  {:<16}  {:>6}  {:>5}  {:>11}  {:<20}  {}\n",
        "base_id",
        state_column("state"),
        "start",
        "duration",
        "root",
        "points",
        "db",
        "db time",
        "errors",
        "services"
    );
    for (i, t) in traces.iter().enumerate() {
        let state = states.map_or("", |s| state_name(s[i]));
        let errors = match (t.errors, &t.error_type) {
            (0, _) => "-".to_owned(),
            (n, Some(e)) => format!("{n} {e}"),
            (n, None) => n.to_string(),
        };
        text.push_str(&format!(
            "{:<36}  {}{:<26}  {:>8.1} ms  {:<16}  {:>6}  {:>5}  {:>8.1} ms  {:<20}  {}\n",
            t.base_id,
            state_column(state),
            t.start,
            t.duration_ms,
            t.root.as_deref().unwrap_or("-"),
            t.points,
            t.db_statements,
            t.db_ms,
            errors,
            t.services.join(",")
        ));
    }
    text
}

/// A listed trace and its state (`trace list --pending --json`): the listing's keys, then
/// `state`.
#[derive(serde::Serialize)]
struct WithState<'a> {
    #[serde(flatten)]
    listing: &'a osprofiler_core::listing::TraceListing,
    state: &'static str,
}

/// A trace state as `trace list --pending` shows it.
fn state_name(s: TraceState) -> &'static str {
    match s {
        TraceState::Stored => "stored",
        TraceState::Pending => "pending",
        TraceState::Dropped => "dropped",
    }
}

fn write_out(out: Option<&PathBuf>, text: &str) -> Result<(), CliError> {
    match out {
        Some(path) => std::fs::write(path, text)
            .map_err(|e| CliError(format!("cannot write {}: {e}", path.display()))),
        None => {
            let mut so = std::io::stdout().lock();
            let _ = so.write_all(text.as_bytes());
            if !text.ends_with('\n') {
                let _ = so.write_all(b"\n");
            }
            Ok(())
        }
    }
}

/// Says `what` on stderr if the work is still going after half a second — only when stderr is
/// a terminal (scripts and pipes get no progress chatter). The work is done when the returned
/// sender drops.
fn slow_notice(what: String) -> std::sync::mpsc::Sender<()> {
    use std::io::IsTerminal as _;
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    if std::io::stderr().is_terminal() {
        std::thread::spawn(move || {
            // Dropping the sender ends the wait early with Disconnected: nothing is printed.
            if let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
                rx.recv_timeout(std::time::Duration::from_millis(500))
            {
                eprintln!("{what}…");
            }
        });
    }
    tx
}

fn run(cli: Cli) -> Result<(), CliError> {
    match cli.command {
        Command::Trace {
            command:
                TraceCommand::Show {
                    trace,
                    conn,
                    json,
                    html,
                    dot,
                    out,
                    keep_names,
                    consume,
                    pending,
                },
        } => {
            let cs = conn.resolve()?;
            let opts = ReportOptions {
                keep_full_names: keep_names,
            };
            let messaging = cs.starts_with("messaging://");
            if consume && !messaging {
                return Err(CliError(
                    "--consume applies to messaging:// only (other collectors keep what they store)"
                        .into(),
                ));
            }
            if consume {
                // Said before reading: afterwards the notifications are gone.
                eprintln!(
                    "taking trace {trace}'s notifications off the profiler.info queue (--consume)"
                );
            }
            let (report, state) = {
                let _n = slow_notice(format!(
                    "reading trace {trace} from {}",
                    osprofiler_core::config::redact(&cs)
                ));
                osprofiler_cli::load_shown_trace(&trace, &cs, opts, pending, |cs| {
                    if consume {
                        let d = osprofiler_collectors::MessagingDriver::open(cs)
                            .map_err(|e| CliError(e.to_string()))?;
                        Ok(std::sync::Arc::new(d.consuming(true)))
                    } else {
                        osprofiler_cli::open_driver(cs)
                    }
                })?
            };
            // A provisional trace shown with --pending says so first (on standard error for
            // the formats a program reads).
            let notice = osprofiler_cli::provisional_notice(&trace, state);
            if let Some(n) = notice.as_ref().filter(|_| json || html || dot) {
                eprintln!("{n}");
            }
            let text = if json {
                osprofiler_cli::render_json(&report)
            } else if html {
                osprofiler_cli::render_html(&report, &trace)
            } else if dot {
                osprofiler_cli::render_dot(&report)
            } else {
                let tree = osprofiler_cli::render_terminal(&report);
                match notice {
                    Some(n) => format!("{n}\n{tree}"),
                    None => tree,
                }
            };
            // A `Value`'s own drop recurses once per level: a deep trace would overflow.
            osprofiler_core::report::drop_deep(report);
            write_out(out.as_ref(), &text)
        }
        Command::Trace {
            command: TraceCommand::Delete { trace, conn, force },
        } => {
            let cs = conn.resolve()?;
            let store = osprofiler_core::config::redact(&cs);
            refuse_queue(&cs, "delete")?;
            // The reader first: a mistyped SQLite path is an error, not a new database.
            let reader = osprofiler_cli::open_driver(&cs)?;
            let messages = reader
                .trace_messages(&trace)
                .map_err(|e| CliError(format!("cannot read trace {trace} from {store}: {e}")))?;
            if messages.is_empty() {
                return Err(CliError(format!("trace {trace} not found in {store}")));
            }
            if !force {
                osprofiler_cli::check_not_recent(&trace, &messages, std::time::SystemTime::now())?;
            }
            let writer = osprofiler_cli::open_writer(&cs)?;
            let deleted = writer
                .delete_trace(&trace)
                .map_err(|e| CliError(format!("cannot delete trace {trace} from {store}: {e}")))?;
            write_out(
                None,
                &format!(
                    "deleted trace {trace} from {store}: {}",
                    osprofiler_cli::plural(deleted as usize, "message", "messages")
                ),
            )
        }
        Command::Trace {
            command:
                TraceCommand::Analyze {
                    trace,
                    conn,
                    json,
                    n1_min_calls,
                    keep_names,
                },
        } => {
            let cs = conn.resolve()?;
            let opts = ReportOptions {
                keep_full_names: keep_names,
            };
            let report = {
                let _n = slow_notice(format!(
                    "reading trace {trace} from {}",
                    osprofiler_core::config::redact(&cs)
                ));
                osprofiler_cli::load_report(&trace, &cs, opts)?
            };
            let a = osprofiler_core::analysis::Analysis::of(
                &report,
                &osprofiler_core::analysis::AnalysisOptions::default().n1_min_calls(n1_min_calls),
            );
            let text = if json {
                osprofiler_cli::render_analysis_json(&a)
            } else {
                osprofiler_cli::render_analysis(&a)
            };
            write_out(None, &text)
        }
        Command::Trace {
            command:
                TraceCommand::List {
                    conn,
                    errors,
                    since,
                    min_duration,
                    service,
                    sort,
                    limit,
                    all,
                    json,
                    pending,
                },
        } => {
            use osprofiler_core::listing::{ListFilter, SortBy};
            let cs = conn.resolve()?;
            let driver = osprofiler_cli::open_driver(&cs)?;
            let filter = ListFilter {
                since_us: since,
                min_duration_ms: min_duration,
                service,
                errors_only: errors,
                sort: match sort {
                    ListSort::Start => SortBy::Start,
                    ListSort::Duration => SortBy::Duration,
                },
                // One more than shown: says whether there are more.
                limit: (!all).then(|| limit.saturating_add(1)),
                include_pending: pending,
            };
            let mut traces = {
                let _n = slow_notice(format!(
                    "listing traces in {}",
                    osprofiler_core::config::redact(&cs)
                ));
                driver.list(&filter)
            }
            .map_err(|e| {
                CliError(format!(
                    "cannot list traces in {}: {e}",
                    osprofiler_core::config::redact(&cs)
                ))
            })?;
            let more = !all && traces.len() > limit;
            if more {
                match filter.sort {
                    // Oldest first: the extra one is the oldest.
                    SortBy::Start => drop(traces.remove(0)),
                    SortBy::Duration => traces.truncate(limit),
                }
                let which = match filter.sort {
                    SortBy::Start => "newest",
                    SortBy::Duration => "longest",
                };
                // (list_traces leaves pending traces out: no total with --pending.)
                let filtered = filter.since_us.is_some()
                    || filter.min_duration_ms.is_some()
                    || filter.service.is_some()
                    || filter.errors_only
                    || filter.include_pending;
                // Unfiltered, the total is cheap to count.
                match (filtered, driver.list_traces()) {
                    (false, Ok(all)) => eprintln!(
                        "the {which} {} of {} traces; --limit N or --all for more",
                        traces.len(),
                        all.len()
                    ),
                    _ => eprintln!(
                        "the {which} {} matching traces; there are more: --limit N or --all",
                        traces.len()
                    ),
                }
            }
            // With --pending, each listed trace's state (one question per trace).
            let states = if pending {
                let states: Result<Vec<TraceState>, _> = traces
                    .iter()
                    .map(|t| driver.trace_state(&t.base_id))
                    .collect();
                Some(states.map_err(|e| {
                    CliError(format!(
                        "cannot read the state of traces in {}: {e}",
                        osprofiler_core::config::redact(&cs)
                    ))
                })?)
            } else {
                None
            };
            let text = if json {
                let written = match &states {
                    None => serde_json::to_string_pretty(&traces),
                    Some(states) => serde_json::to_string_pretty(
                        &traces
                            .iter()
                            .zip(states)
                            .map(|(listing, s)| WithState {
                                listing,
                                state: state_name(*s),
                            })
                            .collect::<Vec<_>>(),
                    ),
                };
                written.map_err(|e| CliError(format!("cannot write JSON: {e}")))?
            } else {
                render_listing(&traces, states.as_deref())
            };
            write_out(None, &text)
        }
        Command::Stats {
            conn,
            since,
            service,
            max_traces,
            top,
            json,
        } => {
            use osprofiler_core::listing::{ListFilter, SortBy};
            let cs = conn.resolve()?;
            let store = osprofiler_core::config::redact(&cs);
            let driver = osprofiler_cli::open_driver(&cs)?;
            let filter = ListFilter {
                since_us: since,
                service: service.clone(),
                sort: SortBy::Start,
                limit: Some(max_traces.saturating_add(1)),
                ..ListFilter::default()
            };
            let _n = slow_notice(format!("reading traces in {store}"));
            let mut traces = driver
                .list(&filter)
                .map_err(|e| CliError(format!("cannot list traces in {store}: {e}")))?;
            if traces.len() > max_traces {
                // Oldest first: the extra one is the oldest.
                traces.remove(0);
                eprintln!("the newest {max_traces} matching traces; --max-traces N for more");
            }
            let mut builder = osprofiler_core::stats::StatsBuilder::new();
            if let Some(s) = service {
                builder = builder.service(s);
            }
            for t in &traces {
                // A trace that went away meanwhile (pruned) or cannot be read is left out.
                match driver.get_report(&t.base_id) {
                    Ok(r) if !r.is_empty() => builder.add(r.to_value()),
                    Ok(_) => {}
                    Err(e) => eprintln!("trace {} left out: {e}", t.base_id),
                }
            }
            let stats = builder.finish();
            let text = if json {
                serde_json::to_string_pretty(&stats)
                    .map_err(|e| CliError(format!("cannot write JSON: {e}")))?
            } else {
                osprofiler_cli::render_stats(&stats, top)
            };
            write_out(None, &text)
        }
        Command::Prune {
            conn,
            older_than,
            dry_run,
        } => {
            let cs = conn.resolve()?;
            let store = osprofiler_core::config::redact(&cs);
            refuse_queue(&cs, "prune")?;
            let cutoff = std::time::SystemTime::now()
                .checked_sub(older_than)
                .unwrap_or(std::time::UNIX_EPOCH);
            let cutoff_us = osprofiler_core::clock::system_micros(cutoff);
            let before = osprofiler_core::clock::format_timestamp(cutoff_us);
            // The reader first: a mistyped SQLite path is an error, not a new database.
            let reader = osprofiler_cli::open_driver(&cs)?;
            let text = if dry_run {
                let _n = slow_notice(format!("listing traces in {store}"));
                let filter = osprofiler_core::listing::ListFilter {
                    include_pending: true,
                    ..Default::default()
                };
                let traces = reader
                    .list(&filter)
                    .map_err(|e| CliError(format!("cannot list traces in {store}: {e}")))?;
                let old = traces
                    .iter()
                    .filter(|t| osprofiler_cli::newest_micros(t) < cutoff_us)
                    .count();
                format!(
                    "{} in {store} with no point since {before} UTC: prune would delete {} \
                     (--dry-run: nothing deleted)",
                    osprofiler_cli::plural(old, "trace", "traces"),
                    match old {
                        0 => "none",
                        1 => "it",
                        _ => "them",
                    }
                )
            } else {
                drop(reader);
                let writer = osprofiler_cli::open_writer(&cs)?;
                let _n = slow_notice(format!("deleting old traces in {store}"));
                let pruned = writer
                    .prune(cutoff)
                    .map_err(|e| CliError(format!("cannot delete old traces in {store}: {e}")))?;
                format!(
                    "deleted {} from {store}: no point since {before} UTC",
                    osprofiler_cli::plural(pruned as usize, "trace", "traces")
                )
            };
            write_out(None, &text)
        }
        Command::Demo { conn, dir } => {
            let cs = conn.resolve()?;
            let exe = std::env::current_exe()
                .map_err(|e| CliError(format!("demo: cannot find the osprofiler binary: {e}")))?;
            let (dir, temporary) = match dir {
                Some(d) => (d, false),
                None => (demo::default_dir(), true),
            };
            let rt = runtime()?;
            let result = rt.block_on(demo::run(&exe, &cs, &dir));
            if temporary {
                let _ = std::fs::remove_dir_all(&dir);
            }
            let run = result?;
            let mut text = osprofiler_cli::render_terminal(&run.report);
            let flag = if cs == DEFAULT_CONNECTION_STRING {
                String::new()
            } else {
                // Printed without its password: the command to paste needs it put back.
                format!(
                    " --connection-string '{}'",
                    osprofiler_core::config::redact(&cs)
                )
            };
            let store = osprofiler_core::config::redact(&cs);
            text.push_str(&format!(
                "\ntrace {id} stored in {store}\n  osprofiler trace show {id}{flag} --html --out trace.html   # the interactive report\n  osprofiler trace show {id}{flag} --json                      # Python's JSON report\n  osprofiler trace analyze {id}{flag}                          # where the time went: N+1, duplicates, critical path\n",
                id = run.base_id,
            ));
            if cs.starts_with("messaging://") {
                text.push_str(
                    "  (its notifications stay in the profiler.info queue until a listener, or \
                     `trace show --consume`, takes them)\n",
                );
            }
            write_out(None, &text)
        }
        Command::DemoWorker { conn, dir } => {
            let cs = conn.resolve()?;
            runtime()?.block_on(demo::worker_main(&cs, &dir))
        }
    }
}

/// `messaging://` keeps nothing to delete: its notifications wait in a queue.
fn refuse_queue(cs: &str, what: &str) -> Result<(), CliError> {
    if cs.starts_with("messaging://") {
        return Err(CliError(format!(
            "cannot {what} on messaging://: it stores nothing, its notifications wait in the \
             profiler.info queue until a listener takes them"
        )));
    }
    Ok(())
}

fn runtime() -> Result<tokio::runtime::Runtime, CliError> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| CliError(format!("cannot start the async runtime: {e}")))
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("osprofiler: {e}");
            ExitCode::FAILURE
        }
    }
}
