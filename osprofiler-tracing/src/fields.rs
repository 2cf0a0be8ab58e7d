//! Span and event fields as point info: bounded, with secrets left out.

use osprofiler_core::Info;
use osprofiler_core::config::redact_urls;
use osprofiler_core::db::{Dialect, sanitize};
use serde_json::Value;
use smallvec::SmallVec;
use std::fmt::{self, Write as _};
use tracing_core::field::{Field, Visit};

/// How fields are recorded (shared by a layer's clones).
#[derive(Clone, Debug)]
pub(crate) struct FieldOptions {
    pub(crate) max_len: usize,
    pub(crate) record: bool,
    /// Secret names, each as its lower-case words. A one-word secret matches a word of the
    /// name that ends with it (digits after it aside: `dbPassword2`); `key` only as the name's
    /// last word, not after `primary`, `foreign`, … ([`NOT_SECRET_KEYS`]); a secret of several
    /// words matches a run of the name's words.
    secret: Vec<Vec<String>>,
    /// For each byte (both cases), the one-word secrets (bit `i`: `secret[i]`, the first 32)
    /// that end with it: a word of a name is checked only against those.
    ends: [u32; 256],
    /// The same for the first byte of the secrets of several words.
    starts: [u32; 256],
    check_all: bool,
    /// Unique to this list of secrets (a new one on every [`FieldOptions::set_secret`]): keys
    /// the per-thread cache of answers ([`FieldOptions::is_secret_name`]).
    generation: u64,
}

/// The default secret names: words, or runs of words, of a field name.
pub(crate) const DEFAULT_SECRETS: &[&str] = &[
    "password",
    "passwd",
    "pwd",
    "passphrase",
    "secret",
    "token",
    "auth",
    "authorization",
    "cookie",
    "credential",
    "credentials",
    "session",
    "key",
    "apikey",
    "accesskey",
    "secretkey",
    "privatekey",
    "signingkey",
    "hmackey",
];

/// Words before a last word `key` that make it a name, not a secret: `primary_key`,
/// `cache_key`, `sort_key`, …
pub(crate) const NOT_SECRET_KEYS: &[&str] = &[
    "primary",
    "foreign",
    "unique",
    "composite",
    "sort",
    "partition",
    "hash",
    "range",
    "row",
    "cache",
    "idempotency",
    "dedup",
    "routing",
    "lookup",
    "map",
    "index",
    "group",
    "object",
    "message",
];

impl Default for FieldOptions {
    fn default() -> Self {
        let mut opts = FieldOptions {
            max_len: 1024,
            record: true,
            secret: Vec::new(),
            ends: [0; 256],
            starts: [0; 256],
            check_all: false,
            generation: 0,
        };
        opts.set_secret(DEFAULT_SECRETS.iter().map(|s| (*s).to_owned()));
        opts
    }
}

/// The words of a name: split at every character that is not a letter or a digit, and where
/// camelCase starts a word (`userPassword` → user, password; `APIKey` → API, Key).
fn words(name: &str) -> impl Iterator<Item = &str> {
    let b = name.as_bytes();
    let mut i = 0;
    std::iter::from_fn(move || {
        while i < b.len() && !b[i].is_ascii_alphanumeric() {
            i += 1;
        }
        if i >= b.len() {
            return None;
        }
        let start = i;
        i += 1;
        while i < b.len() && b[i].is_ascii_alphanumeric() {
            let (prev, cur) = (b[i - 1], b[i]);
            let next_lower = b.get(i + 1).is_some_and(u8::is_ascii_lowercase);
            let camel = (prev.is_ascii_lowercase() || prev.is_ascii_digit())
                && cur.is_ascii_uppercase()
                || prev.is_ascii_uppercase() && cur.is_ascii_uppercase() && next_lower;
            if camel {
                break;
            }
            i += 1;
        }
        Some(&name[start..i])
    })
}

impl FieldOptions {
    pub(crate) fn set_secret(&mut self, names: impl IntoIterator<Item = String>) {
        static GENERATIONS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        self.generation = GENERATIONS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.secret = names
            .into_iter()
            .map(|s| words(&s).map(str::to_ascii_lowercase).collect())
            .collect();
        self.ends = [0; 256];
        self.starts = [0; 256];
        self.check_all = self.secret.len() > 32;
        for (i, s) in self.secret.iter().enumerate().take(32) {
            let (table, byte) = match s.as_slice() {
                [] => {
                    self.check_all = true;
                    continue;
                }
                [one] => (&mut self.ends, one.as_bytes()[one.len() - 1]),
                [first, ..] => (&mut self.starts, first.as_bytes()[0]),
            };
            table[usize::from(byte)] |= 1 << i;
            table[usize::from(byte.to_ascii_uppercase())] |= 1 << i;
            if s.len() == 1 && s[0] == "key" {
                // `keys` too.
                self.ends[usize::from(b's')] |= 1 << i;
                self.ends[usize::from(b'S')] |= 1 << i;
            }
        }
    }

    /// [`FieldOptions::is_secret`] of a callsite's field name, through a small per-thread
    /// cache: a span's fields are the same few `'static` names every time, and splitting a name
    /// into words and matching them costs ~300 instructions a field. An entry is keyed by the
    /// name's address and length and this list's generation, so it never answers for another
    /// text or another list.
    #[inline]
    pub(crate) fn is_secret_name(&self, name: &'static str) -> bool {
        #[derive(Clone, Copy)]
        struct Entry {
            generation: u64,
            ptr: usize,
            len: usize,
            secret: bool,
        }
        const EMPTY: Entry = Entry {
            generation: 0,
            ptr: 0,
            len: 0,
            secret: false,
        };
        const SLOTS: usize = 64;
        thread_local! {
            static CACHE: std::cell::RefCell<[Entry; SLOTS]> =
                const { std::cell::RefCell::new([EMPTY; SLOTS]) };
        }
        let (ptr, len) = (name.as_ptr() as usize, name.len());
        let slot = (ptr >> 3 ^ len) % SLOTS;
        let hit = CACHE
            .try_with(|c| {
                let e = c.borrow()[slot];
                (e.generation == self.generation && e.ptr == ptr && e.len == len)
                    .then_some(e.secret)
            })
            .ok()
            .flatten();
        if let Some(secret) = hit {
            return secret;
        }
        let secret = self.is_secret(name);
        let _ = CACHE.try_with(|c| {
            c.borrow_mut()[slot] = Entry {
                generation: self.generation,
                ptr,
                len,
                secret,
            }
        });
        secret
    }

    /// Whether `name` is a secret's name: one of the secrets is a run of its words.
    pub(crate) fn is_secret(&self, name: &str) -> bool {
        // Names have a few words; a longer one is looked at in full on the heap.
        let mut buf: [&str; 16] = [""; 16];
        let mut n = 0;
        let mut all: Vec<&str> = Vec::new();
        for w in words(name) {
            if n < buf.len() {
                buf[n] = w;
            } else {
                if all.is_empty() {
                    all.extend_from_slice(&buf);
                }
                all.push(w);
            }
            n += 1;
        }
        let name_words = if all.is_empty() { &buf[..n] } else { &all[..] };
        let matches = |s: &[String], at: usize| match s {
            [] => true,
            [one] => word_matches(one, name_words, at),
            run => {
                name_words.len() - at >= run.len()
                    && run
                        .iter()
                        .zip(&name_words[at..])
                        .all(|(a, b)| a.eq_ignore_ascii_case(b))
            }
        };
        if self.check_all {
            return self
                .secret
                .iter()
                .any(|s| s.is_empty() || (0..name_words.len()).any(|at| matches(s, at)));
        }
        for (at, w) in name_words.iter().enumerate() {
            let end = trim_digits(w).as_bytes().last().copied().unwrap_or(b'0');
            let mut candidates =
                self.ends[usize::from(end)] | self.starts[usize::from(w.as_bytes()[0])];
            while candidates != 0 {
                let s = &self.secret[candidates.trailing_zeros() as usize];
                candidates &= candidates - 1;
                if matches(s, at) {
                    return true;
                }
            }
        }
        false
    }
}

/// A word without the digits that end it (`password2` → `password`).
fn trim_digits(w: &str) -> &str {
    w.trim_end_matches(|c: char| c.is_ascii_digit())
}

/// Whether the one-word secret `s` matches the name's word at `at` (see
/// [`FieldOptions::secret`]).
fn word_matches(s: &str, name: &[&str], at: usize) -> bool {
    let w = trim_digits(name[at]);
    if s == "key" {
        let last = at + 1 == name.len();
        let keyish = w.eq_ignore_ascii_case("key") || w.eq_ignore_ascii_case("keys");
        let named = at > 0
            && NOT_SECRET_KEYS
                .iter()
                .any(|n| n.eq_ignore_ascii_case(name[at - 1]));
        return last && keyish && !named;
    }
    w.len() >= s.len() && w.as_bytes()[w.len() - s.len()..].eq_ignore_ascii_case(s.as_bytes())
}

/// The field that names the point.
pub(crate) const POINT_FIELD: &str = "osprofiler.point";
const SECRET: &str = "***";

/// A recorded value, kept as recorded until the message is serialized.
#[derive(Debug)]
pub(crate) enum FieldValue {
    I64(i64),
    U64(u64),
    F64(f64),
    Bool(bool),
    /// Text as formatted, bounded (secrets are cleaned when written).
    Text(String),
    /// A field with a secret name: its value was never formatted.
    Secret,
}

/// Fields in recording order. Names are the callsite's `&'static str` and the first three
/// fields live inline: recording numbers allocates nothing.
#[derive(Debug, Default)]
pub(crate) struct Fields(SmallVec<[(&'static str, FieldValue); 3]>);

impl Fields {
    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub(crate) fn append(&mut self, other: &mut Fields) {
        self.0.append(&mut other.0);
    }

    /// The fields as a JSON object: SQL literals and URL passwords removed, text bounded.
    pub(crate) fn to_value(&self, max_len: usize) -> Value {
        let mut dialect = Dialect::Postgres;
        let mut out = Info::new();
        for (name, value) in &self.0 {
            let value = match value {
                FieldValue::I64(v) => Value::from(*v),
                FieldValue::U64(v) => Value::from(*v),
                FieldValue::F64(v) => Value::from(*v),
                FieldValue::Bool(v) => Value::from(*v),
                FieldValue::Secret => Value::from(SECRET),
                FieldValue::Text(text) => {
                    if matches!(*name, "db.system" | "db.system.name") {
                        dialect = Dialect::of_system(text);
                    }
                    let sql = matches!(*name, "db.statement" | "db.query.text");
                    Value::String(clean(text, sql.then_some(dialect), max_len))
                }
            };
            out.insert((*name).to_owned(), value);
        }
        Value::Object(out)
    }
}

/// Text as the collector may see it: SQL literals (when it is SQL of `dialect`) and URL
/// passwords removed, bounded.
pub(crate) fn clean(text: &str, sql: Option<Dialect>, max_len: usize) -> String {
    let sanitized;
    let text = match sql {
        Some(dialect) => {
            sanitized = sanitize(text, dialect);
            sanitized.as_str()
        }
        None => text,
    };
    bound(redact_urls(text).into_owned(), max_len)
}

/// Collects a span's (or an event's) fields.
pub(crate) struct Visitor<'a> {
    opts: &'a FieldOptions,
    /// Recorded fields (not for events).
    pub(crate) fields: Fields,
    pub(crate) point: Option<String>,
    pub(crate) error: Option<String>,
    pub(crate) etype: Option<String>,
    /// An event's `message`.
    pub(crate) message: Option<String>,
    event: bool,
}

impl<'a> Visitor<'a> {
    pub(crate) fn new(opts: &'a FieldOptions) -> Self {
        Visitor {
            opts,
            fields: Fields::default(),
            point: None,
            error: None,
            etype: None,
            message: None,
            event: false,
        }
    }

    /// For an `ERROR` event: only its error, error type and message are kept.
    pub(crate) fn for_event(opts: &'a FieldOptions) -> Self {
        Visitor {
            event: true,
            ..Visitor::new(opts)
        }
    }

    /// Whether the visitor keeps this field; `Some(false)`: keep, but as a secret.
    fn wants(&self, field: &Field) -> Option<bool> {
        let name = field.name();
        match name {
            POINT_FIELD | "error" | "error.type" => Some(true),
            "message" if self.event => Some(true),
            _ if self.event || !self.opts.record => None,
            _ => Some(!self.opts.is_secret_name(name)),
        }
    }

    fn text(&mut self, field: &Field, text: String) {
        let name = field.name();
        match name {
            POINT_FIELD => self.point = Some(text),
            "error" => self.error = Some(text),
            "error.type" => self.etype = Some(text),
            "message" if self.event => self.message = Some(text),
            _ => self.fields.0.push((name, FieldValue::Text(text))),
        }
    }

    fn value(&mut self, field: &Field, value: FieldValue, as_text: impl FnOnce() -> String) {
        match self.wants(field) {
            None => {}
            Some(false) => self.fields.0.push((field.name(), FieldValue::Secret)),
            Some(true) => match field.name() {
                POINT_FIELD | "error" | "error.type" | "message" => self.text(field, as_text()),
                name => self.fields.0.push((name, value)),
            },
        }
    }

    fn formatted(&mut self, field: &Field, write: impl FnOnce(&mut Bounded) -> fmt::Result) {
        match self.wants(field) {
            None => {}
            Some(false) => self.fields.0.push((field.name(), FieldValue::Secret)),
            Some(true) => {
                let mut out = Bounded::new(self.opts.max_len);
                let _ = write(&mut out);
                self.text(field, out.finish());
            }
        }
    }
}

impl Visit for Visitor<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.formatted(field, |out| write!(out, "{value:?}"));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.formatted(field, |out| out.write_str(value));
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.formatted(field, |out| write!(out, "{value}"));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.value(field, FieldValue::I64(value), || value.to_string());
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.value(field, FieldValue::U64(value), || value.to_string());
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.value(field, FieldValue::F64(value), || value.to_string());
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.value(field, FieldValue::Bool(value), || value.to_string());
    }

    fn record_i128(&mut self, field: &Field, value: i128) {
        let v = match i64::try_from(value) {
            Ok(v) => FieldValue::I64(v),
            Err(_) => FieldValue::Text(value.to_string()),
        };
        self.value(field, v, || value.to_string());
    }

    fn record_u128(&mut self, field: &Field, value: u128) {
        let v = match u64::try_from(value) {
            Ok(v) => FieldValue::U64(v),
            Err(_) => FieldValue::Text(value.to_string()),
        };
        self.value(field, v, || value.to_string());
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
    fn secret_names_are_whole_words() {
        let o = FieldOptions::default();
        for name in [
            "X-Auth-Token",
            "db_PASSWORD",
            "password",
            "userPassword",
            "dbpassword",
            "password2",
            "authtoken",
            "accessToken",
            "apiKey",
            "APIKey",
            "x_api_key",
            "apikey",
            "aws.secret_access_key",
            "encryption_key",
            "ssh_keys",
            "key",
            "session_id",
            "Authorization",
            "hmac_keys",
        ] {
            assert!(o.is_secret(name), "{name} is a secret's name");
        }
        for name in [
            "user_id",
            "author",
            "keyword",
            "primary_key",
            "cache_key",
            "sortKey",
            "monkey",
            "tokens_used",
            "passwordless",
            "key_count",
        ] {
            assert!(!o.is_secret(name), "{name} is not a secret's name");
        }
        let mut custom = FieldOptions::default();
        custom.set_secret(["SSN".to_owned(), "card-number".to_owned()]);
        // The cached answers are per list of secrets and per name: alternating between two
        // lists (and a list changed in place) over the same names never answers for another.
        let mut changed = FieldOptions::default();
        for round in 0..3 {
            for name in ["password", "user_ssn", "cardNumber", "user_id", "api_key"] {
                let (default, own) = (o.is_secret(name), custom.is_secret(name));
                assert_eq!(o.is_secret_name(name), default, "{name}, round {round}");
                assert_eq!(custom.is_secret_name(name), own, "{name}, round {round}");
                assert_eq!(
                    changed.is_secret_name(name),
                    changed.is_secret(name),
                    "{name}"
                );
            }
            changed.set_secret(["user".to_owned()]);
        }
        assert!(custom.is_secret_name("user_ssn") && !custom.is_secret_name("password"));
        assert!(o.is_secret_name("password") && changed.is_secret_name("user_id"));
        assert!(custom.is_secret("user_ssn") && !custom.is_secret("password"));
        assert!(custom.is_secret("cardNumber") && !custom.is_secret("card"));
        let long = (0..40)
            .map(|i| format!("w{i}"))
            .collect::<Vec<_>>()
            .join("_")
            + "_token";
        assert!(o.is_secret(&long), "the words past the 16th count too");
    }

    /// A plain word search, to compare the fast check with.
    fn plain(name: &str, list: &[String]) -> bool {
        let lower = |s: &str| words(s).map(str::to_ascii_lowercase).collect::<Vec<_>>();
        let w = lower(name);
        let word = |s: &str, at: usize| {
            let t = w[at].trim_end_matches(|c: char| c.is_ascii_digit());
            if s == "key" {
                at + 1 == w.len()
                    && (t == "key" || t == "keys")
                    && !(at > 0 && NOT_SECRET_KEYS.contains(&w[at - 1].as_str()))
            } else {
                t.ends_with(s)
            }
        };
        list.iter().map(|s| lower(s)).any(|s| match s.len() {
            0 => true,
            1 => (0..w.len()).any(|at| word(&s[0], at)),
            n => w.len() >= n && w.windows(n).any(|win| win == s.as_slice()),
        })
    }

    proptest::proptest! {
        /// The fast check agrees with a plain word search, whatever the names and the list.
        #[test]
        fn secret_check_is_a_case_insensitive_word_search(
            name in "[a-zA-Z0-9_.]{0,24}|[a-z]{1,5}_[kK]eys?[0-9]?",
            list in proptest::collection::vec("[a-zA-Z_]{0,8}|key|[a-z]{1,4}_key", 0..40),
        ) {
            let mut o = FieldOptions::default();
            o.set_secret(list.clone());
            let expected = plain(&name, &list);
            proptest::prop_assert_eq!(o.is_secret(&name), expected);
        }
    }
}
