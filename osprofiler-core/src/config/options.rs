//! The `[profiler]` options: [`ProfilerConfig`], read from an oslo.config INI file, from
//! `OSPROFILER_*` environment variables, or set with [`ProfilerConfigBuilder`].

use super::redact::{redact, redact_urls};
use std::fmt;
use std::path::Path;

/// OSProfiler's `[profiler]` options, with the same names, types and defaults.
///
/// ```
/// use osprofiler_core::ProfilerConfig;
/// let conf = ProfilerConfig::from_ini_str("[profiler]\nenabled = true\ntrace_sql = yes\nhmac_keys = new, old\n").unwrap();
/// assert!(conf.enabled && conf.trace_sqlalchemy);
/// assert_eq!(conf.hmac_keys, ["new", "old"]);
/// assert_eq!(conf.connection_string, "sqlite://osprofiler.db");
///
/// let err = ProfilerConfig::from_ini_str("[profiler]\nenabled = maybe\n").unwrap_err();
/// assert_eq!(err.option, "enabled");
/// assert!(err.to_string().contains("maybe"));
/// ```
#[derive(Clone, PartialEq)]
#[non_exhaustive]
pub struct ProfilerConfig {
    /// `enabled` (default false): trace this service at all.
    pub enabled: bool,
    /// `trace_sqlalchemy`, alias `trace_sql` (default false): record SQL statement text.
    pub trace_sqlalchemy: bool,
    /// `trace_sql_params` (default false, ours): record bound parameter values too.
    pub trace_sql_params: bool,
    /// `trace_requests` (default false): accepted for compatibility, with a warning when set —
    /// in Rust the opt-in is adding osprofiler-http's client middleware, and every request made
    /// through it is a point.
    pub trace_requests: bool,
    /// `hmac_keys` (default `SECRET_KEY`): comma-separated keys; the first signs.
    pub hmac_keys: Vec<String>,
    /// `connection_string` (default `sqlite://osprofiler.db`, where the `osprofiler` command
    /// reads by default; Python's default is `messaging://`): where messages go.
    pub connection_string: String,
    /// `filter_error_trace` (default false): index traces that contain errors.
    pub filter_error_trace: bool,
    /// `es_doc_type` (default `notification`): accepted for compatibility; a value set is
    /// reported by [`ProfilerConfig::inert_options`] (Elasticsearch 7+ has no mapping types).
    pub es_doc_type: String,
    /// `es_scroll_time` (default `2m`): how long the `elasticsearch://` collector keeps a
    /// search open between two pages of a read.
    pub es_scroll_time: String,
    /// `es_scroll_size` (default 10000): hits per page of an `elasticsearch://` read.
    pub es_scroll_size: u64,
    /// `socket_timeout` in seconds (default 0.1): bounds the `redis://` and
    /// `redissentinel://` collectors' connect, reads and writes.
    pub socket_timeout: f64,
    /// `sentinel_service_name` (default `mymaster`): the service `redissentinel://` asks its
    /// Sentinel for.
    pub sentinel_service_name: String,
    /// `sample_ratio` (default 0, ours): the share of requests without signed trace headers
    /// that start a trace at this service's edge (see [`crate::sampling`]).
    pub sample_ratio: f64,
    /// `sample_max_per_second` (default none, ours): at most this many head-sampled traces a
    /// second.
    pub sample_max_per_second: Option<f64>,
    /// `keep_slow_ms` (default none, ours): trace requests without signed headers
    /// provisionally, and keep those whose root request took at least this long (see
    /// [`crate::sampling`]); the collector must stage.
    pub keep_slow_ms: Option<u64>,
    /// `keep_errors` (default: on with `keep_slow_ms`, ours): keep provisional traces in which a
    /// service recorded an error point; `true` alone turns provisional tracing on.
    pub keep_errors: Option<bool>,
    /// `tail_ratio` (default 1 with `keep_slow_ms`/`keep_errors`, ours): the share of requests
    /// without signed headers traced provisionally.
    pub tail_ratio: Option<f64>,
    /// `staging_window` (default 60 s, ours; `90s`, `5m`, or seconds): how long a provisional
    /// trace waits for a reason to keep it, and for points of its late work, before it is
    /// removed.
    pub staging_window: std::time::Duration,
    /// `retention` (default none, ours; `7d`, `12h`, `30m`, or seconds): stored traces whose
    /// newest message is older than this are deleted by the collector, where it can.
    pub retention: Option<std::time::Duration>,
}

impl Default for ProfilerConfig {
    fn default() -> Self {
        ProfilerConfig {
            enabled: false,
            trace_sqlalchemy: false,
            trace_sql_params: false,
            trace_requests: false,
            hmac_keys: vec![DEFAULT_HMAC_KEY.to_owned()],
            connection_string: "sqlite://osprofiler.db".to_owned(),
            filter_error_trace: false,
            es_doc_type: "notification".to_owned(),
            es_scroll_time: "2m".to_owned(),
            es_scroll_size: 10_000,
            socket_timeout: 0.1,
            sentinel_service_name: "mymaster".to_owned(),
            sample_ratio: 0.0,
            sample_max_per_second: None,
            keep_slow_ms: None,
            keep_errors: None,
            tail_ratio: None,
            staging_window: std::time::Duration::from_secs(60),
            retention: None,
        }
    }
}

/// OSProfiler's default `hmac_keys`: known to everyone, so `init_from_conf` warns once when
/// profiling is enabled with it.
pub const DEFAULT_HMAC_KEY: &str = "SECRET_KEY";

/// Keys are shown as their count and a connection string without its password: `Debug` output
/// ends up in logs.
impl fmt::Debug for ProfilerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProfilerConfig")
            .field("enabled", &self.enabled)
            .field("trace_sqlalchemy", &self.trace_sqlalchemy)
            .field("trace_sql_params", &self.trace_sql_params)
            .field("trace_requests", &self.trace_requests)
            .field(
                "hmac_keys",
                &format_args!("[REDACTED; {}]", self.hmac_keys.len()),
            )
            .field("connection_string", &redact(&self.connection_string))
            .field("filter_error_trace", &self.filter_error_trace)
            .field("es_doc_type", &self.es_doc_type)
            .field("es_scroll_time", &self.es_scroll_time)
            .field("es_scroll_size", &self.es_scroll_size)
            .field("socket_timeout", &self.socket_timeout)
            .field("sentinel_service_name", &self.sentinel_service_name)
            .field("sample_ratio", &self.sample_ratio)
            .field("sample_max_per_second", &self.sample_max_per_second)
            .field("keep_slow_ms", &self.keep_slow_ms)
            .field("keep_errors", &self.keep_errors)
            .field("tail_ratio", &self.tail_ratio)
            .field("staging_window", &self.staging_window)
            .field("retention", &self.retention)
            .finish()
    }
}

/// A configuration value that could not be used; names the option and the value. `Debug`
/// prints the `Display` text: it is what a `main` returning the error shows.
#[derive(Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The option's name (`enabled`, `socket_timeout`, ...), or the file for I/O errors.
    pub option: String,
    /// The offending value.
    pub value: String,
    /// What was expected.
    pub reason: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid value {:?} for option [profiler] {}: {}",
            self.value, self.option, self.reason
        )
    }
}

impl fmt::Debug for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl std::error::Error for ConfigError {}

/// An error for `option`; the value as it can be shown: URL passwords and anything before an
/// `@` (a connection string without its scheme) masked.
pub(super) fn err(option: &str, value: &str, reason: &str) -> ConfigError {
    let value = match redact_urls(value) {
        std::borrow::Cow::Borrowed(v) => match v.rfind('@') {
            Some(at) if !v.contains("://") => format!("***{}", &v[at..]),
            _ => v.to_owned(),
        },
        std::borrow::Cow::Owned(v) => v,
    };
    ConfigError {
        option: option.to_owned(),
        value,
        reason: reason.to_owned(),
    }
}

/// oslo.config's boolean words (`strutils.bool_from_string(strict=True)`).
fn parse_bool(option: &str, value: &str) -> Result<bool, ConfigError> {
    match value.trim().to_ascii_lowercase().as_str() {
        "1" | "t" | "true" | "on" | "y" | "yes" => Ok(true),
        "0" | "f" | "false" | "off" | "n" | "no" => Ok(false),
        _ => Err(err(
            option,
            value,
            "expected a boolean (true/false, yes/no, on/off, 1/0)",
        )),
    }
}

/// A share: a number from 0 to 1.
fn parse_share(option: &str, value: &str) -> Result<f64, ConfigError> {
    value
        .parse::<f64>()
        .ok()
        .filter(|r| (0.0..=1.0).contains(r))
        .ok_or_else(|| err(option, value, "expected a number from 0 to 1"))
}

/// A duration: whole seconds, milliseconds (`1500ms`), or an age with a unit (`90s`, `5m`,
/// `12h`, `7d`, `2w`: [`crate::listing::parse_age`]); empty: none.
///
/// ```
/// # use osprofiler_core::ProfilerConfig;
/// let mut c = ProfilerConfig::default();
/// c.set("retention", "7d").unwrap();
/// assert_eq!(c.retention, Some(std::time::Duration::from_secs(7 * 86_400)));
/// c.set("staging_window", "1500ms").unwrap();
/// assert_eq!(c.staging_window, std::time::Duration::from_millis(1500));
/// c.set("staging_window", "30").unwrap();
/// assert_eq!(c.staging_window.as_secs(), 30);
/// let e = c.set("retention", "a week").unwrap_err();
/// assert_eq!(e.option, "retention");
/// assert!(c.set("retention", "30s").is_err(), "less than a minute: maybe still written");
/// ```
fn parse_duration(option: &str, value: &str) -> Result<Option<std::time::Duration>, ConfigError> {
    let v = value.trim();
    if v.is_empty() {
        return Ok(None);
    }
    if let Ok(secs) = v.parse::<u64>() {
        return Ok(Some(std::time::Duration::from_secs(secs)));
    }
    if let Some(ms) = v.strip_suffix("ms")
        && let Ok(ms) = ms.trim().parse::<u64>()
    {
        return Ok(Some(std::time::Duration::from_millis(ms)));
    }
    crate::listing::parse_age(v).map(Some).map_err(|_| {
        err(
            option,
            value,
            "expected a duration: whole seconds, or a whole number with ms, s, m, h, d or w \
             (1500ms, 90s, 5m, 7d)",
        )
    })
}

/// oslo.config's comma-list splitting, as OSProfiler's `utils.split`.
fn split_keys(value: &str) -> Vec<String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .map(str::to_owned)
        .collect()
}

impl ProfilerConfig {
    /// A builder starting from the defaults.
    pub fn builder() -> ProfilerConfigBuilder {
        ProfilerConfigBuilder {
            conf: ProfilerConfig::default(),
        }
    }

    /// Sets one option by its oslo.config name (or alias); the value is parsed as in a file.
    pub fn set(&mut self, option: &str, value: &str) -> Result<(), ConfigError> {
        let v = value.trim();
        match option {
            "enabled" | "profiler_enabled" => self.enabled = parse_bool("enabled", v)?,
            "trace_sqlalchemy" | "trace_sql" => self.trace_sqlalchemy = parse_bool(option, v)?,
            "trace_sql_params" => self.trace_sql_params = parse_bool(option, v)?,
            "trace_requests" => self.trace_requests = parse_bool(option, v)?,
            "filter_error_trace" => self.filter_error_trace = parse_bool(option, v)?,
            "hmac_keys" => self.hmac_keys = split_keys(v),
            "connection_string" => {
                if !v.contains("://") {
                    return Err(err(
                        option,
                        v,
                        "expected a URL such as redis://127.0.0.1:6379 or sqlite:///path",
                    ));
                }
                self.connection_string = v.to_owned()
            }
            "es_doc_type" => self.es_doc_type = v.to_owned(),
            "es_scroll_time" => self.es_scroll_time = v.to_owned(),
            "es_scroll_size" => {
                self.es_scroll_size = v
                    .parse()
                    .map_err(|_| err(option, v, "expected a non-negative integer"))?
            }
            "socket_timeout" => {
                self.socket_timeout = v
                    .parse::<f64>()
                    .ok()
                    .filter(|t| t.is_finite() && *t >= 0.0)
                    .ok_or_else(|| err(option, v, "expected a non-negative number of seconds"))?
            }
            "sentinel_service_name" => self.sentinel_service_name = v.to_owned(),
            "sample_ratio" => self.sample_ratio = parse_share(option, v)?,
            "sample_max_per_second" => {
                self.sample_max_per_second = if v.is_empty() {
                    None
                } else {
                    Some(
                        v.parse::<f64>()
                            .ok()
                            .filter(|n| n.is_finite() && *n > 0.0)
                            .ok_or_else(|| {
                                err(option, v, "expected a positive number of traces a second")
                            })?,
                    )
                }
            }
            "keep_slow_ms" => {
                self.keep_slow_ms = if v.is_empty() {
                    None
                } else {
                    Some(v.parse().map_err(|_| {
                        err(option, v, "expected a non-negative number of milliseconds")
                    })?)
                }
            }
            "keep_errors" => {
                self.keep_errors = if v.is_empty() {
                    None
                } else {
                    Some(parse_bool(option, v)?)
                }
            }
            "tail_ratio" => {
                self.tail_ratio = if v.is_empty() {
                    None
                } else {
                    Some(parse_share(option, v)?)
                }
            }
            "staging_window" => {
                self.staging_window = parse_duration(option, v)?
                    .filter(|d| !d.is_zero())
                    .ok_or_else(|| err(option, v, "expected a positive duration"))?
            }
            "retention" => {
                self.retention = match parse_duration(option, v)? {
                    Some(d) if d < crate::notifier::MIN_RETENTION => {
                        return Err(err(
                            option,
                            v,
                            "expected at least 1m: a trace that got a point more recently may \
                             still be being written",
                        ));
                    }
                    d => d,
                }
            }
            // The value of a misspelled option may be a key: not repeated.
            _ => return Err(err(option, "(not shown)", "unknown option")),
        }
        Ok(())
    }

    /// Reads the `[profiler]` section of an oslo.config INI text; other sections are ignored,
    /// and so (with a warning) are unknown options. Options not given keep their defaults.
    pub fn from_ini_str(text: &str) -> Result<Self, ConfigError> {
        let mut conf = ProfilerConfig::default();
        conf.apply_ini_str(text)?;
        Ok(conf)
    }

    /// Reads an oslo.config INI file.
    pub fn from_ini_file(path: impl AsRef<Path>) -> Result<Self, ConfigError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            option: "config file".into(),
            value: path.display().to_string(),
            reason: e.to_string(),
        })?;
        Self::from_ini_str(&text)
    }

    /// Overlays the `[profiler]` section of an INI text on this configuration.
    pub fn apply_ini_str(&mut self, text: &str) -> Result<(), ConfigError> {
        for (option, value) in parse_ini_section(text, "profiler") {
            match self.set(&option, &value) {
                Err(e) if e.reason == "unknown option" => {
                    log::warn!("osprofiler: ignoring unknown option [profiler] {option}");
                }
                other => other?,
            }
        }
        Ok(())
    }

    /// The defaults overlaid with `OSPROFILER_<OPTION>` environment variables
    /// (`OSPROFILER_ENABLED`, `OSPROFILER_TRACE_SQL`, `OSPROFILER_HMAC_KEYS`,
    /// `OSPROFILER_CONNECTION_STRING`, ...).
    pub fn from_env() -> Result<Self, ConfigError> {
        let mut conf = ProfilerConfig::default();
        conf.apply_env()?;
        Ok(conf)
    }

    /// Overlays `OSPROFILER_*` environment variables on this configuration.
    pub fn apply_env(&mut self) -> Result<(), ConfigError> {
        self.apply_vars(std::env::vars())
    }

    fn apply_vars(
        &mut self,
        vars: impl Iterator<Item = (String, String)>,
    ) -> Result<(), ConfigError> {
        for (k, v) in vars {
            let Some(name) = k.strip_prefix("OSPROFILER_") else {
                continue;
            };
            let option = name.to_ascii_lowercase();
            if OPTIONS.contains(&option.as_str()) {
                self.set(&option, &v)?;
            }
        }
        Ok(())
    }
}

/// Every option name [`ProfilerConfig::set`] knows, aliases included.
pub const OPTIONS: &[&str] = &[
    "enabled",
    "profiler_enabled",
    "trace_sqlalchemy",
    "trace_sql",
    "trace_sql_params",
    "trace_requests",
    "hmac_keys",
    "connection_string",
    "filter_error_trace",
    "es_doc_type",
    "es_scroll_time",
    "es_scroll_size",
    "socket_timeout",
    "sentinel_service_name",
    "sample_ratio",
    "sample_max_per_second",
    "keep_slow_ms",
    "keep_errors",
    "tail_ratio",
    "staging_window",
    "retention",
];

/// oslo.config's INI dialect: `[section]`, `key = value` or `key: value`, `#`/`;` comments,
/// indented continuation lines, matching quotes stripped, the last value of a key wins.
fn parse_ini_section(text: &str, wanted: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    let mut in_section = false;
    let mut last_in_section = false;
    for line in text.lines() {
        if line.trim().is_empty() || line.trim_start().starts_with(['#', ';']) {
            last_in_section = false;
            continue;
        }
        if line.starts_with([' ', '\t']) && last_in_section {
            if let Some((_, v)) = out.last_mut() {
                v.push('\n');
                v.push_str(line.trim());
            }
            continue;
        }
        let t = line.trim();
        if let Some(name) = t.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
            in_section = name.trim() == wanted;
            last_in_section = false;
            continue;
        }
        last_in_section = false;
        if !in_section {
            continue;
        }
        let split = t.find(['=', ':']);
        let Some(i) = split else { continue };
        let key = t[..i].trim().to_owned();
        let mut value = t[i + 1..].trim();
        if value.len() >= 2
            && (value.starts_with('"') && value.ends_with('"')
                || value.starts_with('\'') && value.ends_with('\''))
        {
            value = &value[1..value.len() - 1];
        }
        out.retain(|(k, _)| *k != key);
        out.push((key, value.to_owned()));
        last_in_section = true;
    }
    out
}

/// Builds a [`ProfilerConfig`] in code.
///
/// ```
/// let conf = osprofiler_core::ProfilerConfig::builder()
///     .enabled(true)
///     .hmac_keys(["new", "old"])
///     .connection_string("memory://")
///     .build();
/// assert_eq!(conf.hmac_keys[0], "new");
/// ```
#[derive(Debug, Clone)]
pub struct ProfilerConfigBuilder {
    conf: ProfilerConfig,
}

impl ProfilerConfigBuilder {
    /// `enabled`.
    pub fn enabled(mut self, v: bool) -> Self {
        self.conf.enabled = v;
        self
    }
    /// `trace_sqlalchemy` / `trace_sql`.
    pub fn trace_sql(mut self, v: bool) -> Self {
        self.conf.trace_sqlalchemy = v;
        self
    }
    /// `trace_sql_params`.
    pub fn trace_sql_params(mut self, v: bool) -> Self {
        self.conf.trace_sql_params = v;
        self
    }
    /// `trace_requests`.
    pub fn trace_requests(mut self, v: bool) -> Self {
        self.conf.trace_requests = v;
        self
    }
    /// `hmac_keys`, in order of preference.
    pub fn hmac_keys<I: IntoIterator<Item = S>, S: Into<String>>(mut self, keys: I) -> Self {
        self.conf.hmac_keys = keys.into_iter().map(Into::into).collect();
        self
    }
    /// `connection_string`.
    pub fn connection_string(mut self, v: impl Into<String>) -> Self {
        self.conf.connection_string = v.into();
        self
    }
    /// `filter_error_trace`.
    pub fn filter_error_trace(mut self, v: bool) -> Self {
        self.conf.filter_error_trace = v;
        self
    }
    /// `socket_timeout`, in seconds.
    pub fn socket_timeout(mut self, v: f64) -> Self {
        self.conf.socket_timeout = v;
        self
    }
    /// `sample_ratio`: the share of requests without signed headers traced (see
    /// [`crate::sampling`]).
    pub fn sample_ratio(mut self, v: f64) -> Self {
        self.conf.sample_ratio = v;
        self
    }
    /// `sample_max_per_second`.
    pub fn sample_max_per_second(mut self, v: f64) -> Self {
        self.conf.sample_max_per_second = Some(v);
        self
    }
    /// `keep_slow_ms`.
    pub fn keep_slow_ms(mut self, v: u64) -> Self {
        self.conf.keep_slow_ms = Some(v);
        self
    }
    /// `keep_errors`.
    pub fn keep_errors(mut self, v: bool) -> Self {
        self.conf.keep_errors = Some(v);
        self
    }
    /// `tail_ratio`.
    pub fn tail_ratio(mut self, v: f64) -> Self {
        self.conf.tail_ratio = Some(v);
        self
    }
    /// `staging_window`.
    pub fn staging_window(mut self, v: std::time::Duration) -> Self {
        self.conf.staging_window = v;
        self
    }
    /// `retention`.
    pub fn retention(mut self, v: std::time::Duration) -> Self {
        self.conf.retention = Some(v);
        self
    }
    /// Sets any option by name, parsing the value as in a file.
    pub fn option(mut self, option: &str, value: &str) -> Result<Self, ConfigError> {
        self.conf.set(option, value)?;
        Ok(self)
    }
    /// The configuration.
    pub fn build(self) -> ProfilerConfig {
        self.conf
    }
}

impl ProfilerConfig {
    /// The options set (to other than their default) that have no effect in this
    /// configuration, each with the reason: [`init_from_conf`](super::init_from_conf) logs one warning for each.
    ///
    /// ```
    /// use osprofiler_core::ProfilerConfig;
    /// let conf = ProfilerConfig::from_ini_str("[profiler]\ntrace_requests = true\nes_scroll_size = 5\n").unwrap();
    /// let inert: Vec<&str> = conf.inert_options().into_iter().map(|(o, _)| o).collect();
    /// assert_eq!(inert, ["trace_requests", "es_scroll_size"]);
    /// ```
    pub fn inert_options(&self) -> Vec<(&'static str, &'static str)> {
        let d = ProfilerConfig::default();
        let redis = matches!(
            self.connection_string.split_once("://").map(|(s, _)| s.to_ascii_lowercase()),
            Some(ref s) if s == "redis" || s == "rediss" || s == "redissentinel"
        );
        let sentinel = self
            .connection_string
            .to_ascii_lowercase()
            .starts_with("redissentinel://");
        let elasticsearch = matches!(
            self.connection_string.split_once("://").map(|(s, _)| s.to_ascii_lowercase()),
            Some(ref s) if s.starts_with("elasticsearch")
        );
        const ES: &str = "only the elasticsearch:// collector uses it";
        let mut out = Vec::new();
        if self.trace_requests != d.trace_requests {
            out.push((
                "trace_requests",
                "in Rust the opt-in is adding osprofiler-http's client middleware \
                 (TraceMiddleware, TraceClientLayer): every request made through it is a point",
            ));
        }
        if self.es_doc_type != d.es_doc_type {
            out.push((
                "es_doc_type",
                "mapping types are gone from Elasticsearch 7+ and OpenSearch 2+: the \
                 elasticsearch:// collector writes every document as _doc",
            ));
        }
        if self.es_scroll_time != d.es_scroll_time && !elasticsearch {
            out.push(("es_scroll_time", ES));
        }
        if self.es_scroll_size != d.es_scroll_size && !elasticsearch {
            out.push(("es_scroll_size", ES));
        }
        if self.socket_timeout != d.socket_timeout && !redis {
            out.push((
                "socket_timeout",
                "only the redis:// and redissentinel:// collectors use it",
            ));
        }
        if self.sentinel_service_name != d.sentinel_service_name && !sentinel {
            out.push((
                "sentinel_service_name",
                "only the redissentinel:// collector uses it",
            ));
        }
        let tail = self.keep_slow_ms.is_some() || self.keep_errors == Some(true);
        if self.tail_ratio.is_some() && !tail {
            out.push((
                "tail_ratio",
                "it is the share traced provisionally, which only keep_slow_ms or \
                 keep_errors = true turn on",
            ));
        }
        if self.sample_max_per_second.is_some() && self.sample_ratio == 0.0 {
            out.push((
                "sample_max_per_second",
                "it caps head sampling, which sample_ratio turns on",
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_reference() {
        let c = ProfilerConfig::default();
        assert!(!c.enabled && !c.trace_sqlalchemy && !c.trace_requests && !c.filter_error_trace);
        assert_eq!(c.hmac_keys, ["SECRET_KEY"]);
        assert_eq!(c.connection_string, "sqlite://osprofiler.db");
        assert_eq!(
            (
                c.es_doc_type.as_str(),
                c.es_scroll_time.as_str(),
                c.es_scroll_size
            ),
            ("notification", "2m", 10000)
        );
        assert_eq!(
            (c.socket_timeout, c.sentinel_service_name.as_str()),
            (0.1, "mymaster")
        );
    }

    #[test]
    fn ini_dialect() {
        let text = "[DEFAULT]\nenabled = true\n\n[profiler]\n# comment\nenabled = False\ntrace_sqlalchemy: on\nhmac_keys = \"a, b ,,c\"\nconnection_string = redis://127.0.0.1:6379\nsocket_timeout = 2.5\nes_scroll_size = 5\nmystery = 1\n[other]\nenabled = true\n";
        let c = ProfilerConfig::from_ini_str(text).unwrap();
        assert!(!c.enabled, "enabled = False must mean false");
        assert!(c.trace_sqlalchemy);
        assert_eq!(c.hmac_keys, ["a", "b", "c"]);
        assert_eq!(c.connection_string, "redis://127.0.0.1:6379");
        assert_eq!((c.socket_timeout, c.es_scroll_size), (2.5, 5));
    }

    #[test]
    fn bad_values_name_option_and_value() {
        for (opt, val) in [
            ("enabled", "maybe"),
            ("socket_timeout", "-1"),
            ("es_scroll_size", "ten"),
            ("connection_string", "redis"),
        ] {
            let e =
                ProfilerConfig::from_ini_str(&format!("[profiler]\n{opt} = {val}\n")).unwrap_err();
            assert_eq!((e.option.as_str(), e.value.as_str()), (opt, val));
            assert!(e.to_string().contains(opt) && e.to_string().contains(val));
        }
    }

    #[test]
    fn env_overlay() {
        let mut c = ProfilerConfig::default();
        c.apply_vars(
            [
                ("OSPROFILER_TRACE_SQL", "1"),
                ("OSPROFILER_HMAC_KEYS", "k1,k2"),
                ("OTHER", "x"),
                ("OSPROFILER_NOPE", "x"),
            ]
            .into_iter()
            .map(|(a, b)| (a.to_owned(), b.to_owned())),
        )
        .unwrap();
        assert!(c.trace_sqlalchemy);
        assert_eq!(c.hmac_keys, ["k1", "k2"]);
        let e = c
            .apply_vars([("OSPROFILER_ENABLED".to_owned(), "nah".to_owned())].into_iter())
            .unwrap_err();
        assert_eq!(e.option, "enabled");
    }
}
