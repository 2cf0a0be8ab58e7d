//! Span and event fields as point info: bounded, with secrets left out.

use osprofiler_core::Info;
use osprofiler_core::config::redact_urls;
use osprofiler_core::db::{Dialect, sanitize};
use serde_json::Value;
use std::fmt::{self, Write as _};
use tracing_core::field::{Field, Visit};

/// How fields are recorded (shared by a layer's clones).
#[derive(Clone, Debug)]
pub(crate) struct FieldOptions {
    pub(crate) max_len: usize,
    pub(crate) record: bool,
    /// Lower-case substrings of field names whose values are not recorded.
    pub(crate) secret: Vec<String>,
}

impl Default for FieldOptions {
    fn default() -> Self {
        FieldOptions {
            max_len: 1024,
            record: true,
            secret: [
                "password",
                "passwd",
                "pwd",
                "secret",
                "token",
                "key",
                "auth",
                "cookie",
                "credential",
                "session",
            ]
            .map(String::from)
            .to_vec(),
        }
    }
}

impl FieldOptions {
    fn is_secret(&self, name: &str) -> bool {
        // Names are short and ASCII in practice; compare without allocating.
        self.secret.iter().any(|s| contains_ignore_case(name, s))
    }
}

fn contains_ignore_case(haystack: &str, needle: &str) -> bool {
    let (h, n) = (haystack.as_bytes(), needle.as_bytes());
    n.is_empty() || h.windows(n.len()).any(|w| w.eq_ignore_ascii_case(n))
}

/// The field that names the point.
pub(crate) const POINT_FIELD: &str = "osprofiler.point";
const SECRET: &str = "***";

/// Collects a span's (or an event's) fields.
pub(crate) struct Visitor<'a> {
    opts: &'a FieldOptions,
    /// Recorded fields (not for events).
    pub(crate) fields: Info,
    pub(crate) point: Option<String>,
    pub(crate) error: Option<String>,
    pub(crate) etype: Option<String>,
    /// An event's `message`.
    pub(crate) message: Option<String>,
    event: bool,
    dialect: Dialect,
}

impl<'a> Visitor<'a> {
    pub(crate) fn new(opts: &'a FieldOptions) -> Self {
        Visitor {
            opts,
            fields: Info::new(),
            point: None,
            error: None,
            etype: None,
            message: None,
            event: false,
            dialect: Dialect::Postgres,
        }
    }

    /// For an `ERROR` event: only its error, error type and message are kept.
    pub(crate) fn for_event(opts: &'a FieldOptions) -> Self {
        Visitor {
            event: true,
            ..Visitor::new(opts)
        }
    }

    fn text(&mut self, field: &Field, text: String) {
        let name = field.name();
        match name {
            POINT_FIELD => self.point = Some(text),
            "error" => {
                let text = self.clean(name, text);
                if !self.event {
                    self.put(name, Value::String(text.clone()));
                }
                self.error = Some(text);
            }
            "error.type" => {
                let text = self.clean(name, text);
                if !self.event {
                    self.put(name, Value::String(text.clone()));
                }
                self.etype = Some(text);
            }
            "message" if self.event => self.message = Some(self.clean(name, text)),
            _ if self.event => {}
            "db.system" | "db.system.name" => {
                self.dialect = Dialect::of_system(&text);
                let text = self.clean(name, text);
                self.put(name, Value::String(text));
            }
            _ => {
                let text = self.clean(name, text);
                self.put(name, Value::String(text));
            }
        }
    }

    /// A value as the collector may see it: secrets masked, SQL literals and URL passwords
    /// removed, bounded.
    fn clean(&self, name: &str, text: String) -> String {
        if self.opts.is_secret(name) {
            return SECRET.to_owned();
        }
        let text = if matches!(name, "db.statement" | "db.query.text") {
            sanitize(&text, self.dialect)
        } else {
            text
        };
        let text = match redact_urls(&text) {
            std::borrow::Cow::Borrowed(_) => text,
            std::borrow::Cow::Owned(redacted) => redacted,
        };
        bound(text, self.opts.max_len)
    }

    fn put(&mut self, name: &str, value: Value) {
        if self.opts.record {
            self.fields.insert(name.to_owned(), value);
        }
    }

    fn number(&mut self, field: &Field, value: Value) {
        let name = field.name();
        if name == POINT_FIELD || name == "error" || name == "error.type" || name == "message" {
            self.text(field, value.to_string());
        } else if !self.event {
            let value = if self.opts.is_secret(name) {
                Value::String(SECRET.to_owned())
            } else {
                value
            };
            self.put(name, value);
        }
    }

    fn wanted(&self, field: &Field) -> bool {
        !self.event || matches!(field.name(), "error" | "error.type" | "message")
    }
}

impl Visit for Visitor<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if !self.wanted(field) {
            return;
        }
        let mut out = Bounded::new(self.opts.max_len);
        let _ = write!(out, "{value:?}");
        let text = out.finish();
        self.text(field, text);
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if !self.wanted(field) {
            return;
        }
        let mut out = Bounded::new(self.opts.max_len);
        let _ = out.write_str(value);
        let text = out.finish();
        self.text(field, text);
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        if !self.wanted(field) {
            return;
        }
        let mut out = Bounded::new(self.opts.max_len);
        let _ = write!(out, "{value}");
        let text = out.finish();
        self.text(field, text);
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.number(field, value.into());
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.number(field, value.into());
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.number(field, value.into());
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.number(field, value.into());
    }

    fn record_i128(&mut self, field: &Field, value: i128) {
        match i64::try_from(value) {
            Ok(v) => self.number(field, v.into()),
            Err(_) => self.number(field, Value::String(value.to_string())),
        }
    }

    fn record_u128(&mut self, field: &Field, value: u128) {
        match u64::try_from(value) {
            Ok(v) => self.number(field, v.into()),
            Err(_) => self.number(field, Value::String(value.to_string())),
        }
    }
}

/// A `fmt::Write` that keeps the first `max` bytes and then makes the formatter stop.
struct Bounded {
    buf: String,
    max: usize,
    cut: bool,
}

impl Bounded {
    fn new(max: usize) -> Self {
        Bounded {
            buf: String::new(),
            max,
            cut: false,
        }
    }

    /// The text, marked with `…` when it was cut; an URL cut inside its authority (where a
    /// password could be) is dropped from the `://` on.
    fn finish(mut self) -> String {
        if self.cut {
            if let Some(at) = self.buf.rfind("://") {
                let authority = &self.buf[at + 3..];
                let open = !authority.contains(|c: char| {
                    matches!(c, '/' | '?' | '#' | '"' | '\'' | '`') || c.is_whitespace()
                });
                if open {
                    self.buf.truncate(at + 3);
                }
            }
            self.buf.push('…');
        }
        self.buf
    }
}

impl fmt::Write for Bounded {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let room = self.max - self.buf.len();
        if s.len() <= room {
            self.buf.push_str(s);
            return Ok(());
        }
        let mut end = room;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        self.buf.push_str(&s[..end]);
        self.cut = true;
        Err(fmt::Error)
    }
}

/// `text` cut to `max` bytes (for values that grew after cleaning, e.g. `***` in a URL).
fn bound(text: String, max: usize) -> String {
    if text.len() <= max {
        return text;
    }
    let mut out = Bounded::new(max);
    let _ = out.write_str(&text);
    out.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cuts_at_a_char_boundary_and_marks_it() {
        let mut b = Bounded::new(5);
        let _ = write!(b, "{:?}", "héllo world");
        assert_eq!(b.finish(), "\"hél…");
    }

    #[test]
    fn a_url_cut_in_its_authority_is_dropped() {
        assert_eq!(
            bound("x postgres://u:hunter2@h/db".into(), 18),
            "x postgres://…"
        );
        assert_eq!(
            bound("x http://h/aaaaaaaaaaaaaa".into(), 12),
            "x http://h/a…"
        );
    }

    #[test]
    fn secret_names_ignore_case() {
        let o = FieldOptions::default();
        assert!(o.is_secret("X-Auth-Token"));
        assert!(o.is_secret("db_PASSWORD"));
        assert!(!o.is_secret("user_id"));
    }
}
