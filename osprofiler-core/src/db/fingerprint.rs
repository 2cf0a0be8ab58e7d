//! Statement fingerprints: one id for every execution of the same statement shape.
//!
//! [`normalize`] turns a statement into its shape — literals and placeholders become `?`, lists
//! collapse, comments and layout go — and [`fingerprint_id`] names the shape with a stable
//! 64-bit id. [`fingerprint`] does both through a bounded cache keyed by the raw text, so a
//! statement run again costs a lookup. Every `db` point with a statement records the id as
//! `db.fingerprint` (see the [module docs](super)), which reveals neither its text nor its
//! values.
//!
//! ```
//! use osprofiler_core::db::Dialect;
//! use osprofiler_core::db::fingerprint::{fingerprint, format_id, normalize};
//!
//! let a = fingerprint("select * from t where id in (1, 2, 3) -- list", Dialect::Postgres);
//! let b = fingerprint("SELECT *\n  FROM t WHERE id IN ($1)", Dialect::Postgres);
//! assert_eq!(&*a.text, "SELECT * FROM t WHERE id IN (...)");
//! assert_eq!(a, b);
//! assert_eq!(format_id(a.id).len(), 16);
//! ```

use super::sql::{Dialect, Token, scan};
use sha1::{Digest, Sha1};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// A statement's shape: its [`normalize`]d text and the [`fingerprint_id`] of that text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fingerprint {
    /// The 64-bit id of [`Fingerprint::text`] ([`fingerprint_id`]).
    pub id: u64,
    /// The normalized statement ([`normalize`]).
    pub text: Arc<str>,
}

/// The shape of `sql`, read in `dialect` (the scanner of [`super::sanitize`]):
///
/// - every literal (strings of every quoting style, numbers with their sign when it is a
///   unary one, dollar-quoted bodies) and every bound-value placeholder (`$1`, `?`, `?NNN`,
///   `%s`, `%(name)s`, `:name`, SQLite's `@name` and `$name`) becomes `?`;
/// - an `IN` list of values (`?`, or parenthesized tuples of `?`) becomes `IN (...)`, and the
///   rows after `VALUES` (one or many, whatever they hold) become `VALUES (...)`;
/// - comments are removed; every run of whitespace and comments becomes one space, except at
///   the start and end, after `(` and before `,`, `)` and `;` (there: none); a `,` is always
///   followed by one space; trailing `;` are dropped;
/// - keywords (`select`, `from`, `in`, `null`, …: a fixed list of SQL's common keywords) are
///   upper-cased unless they follow or precede a `.`; identifiers keep their case, quoted
///   identifiers are kept byte for byte.
///
/// `TRUE`, `FALSE` and `NULL` are keywords, not values.
///
/// ```
/// use osprofiler_core::db::{Dialect, fingerprint::normalize};
/// let pg = |s| normalize(s, Dialect::Postgres);
/// assert_eq!(pg("select a from t where b = 'x' and c > -1.5e3"), "SELECT a FROM t WHERE b = ? AND c > ?");
/// assert_eq!(pg("SELECT \"Name\" FROM t WHERE id = $1 /* by id */;"), "SELECT \"Name\" FROM t WHERE id = ?");
/// assert_eq!(pg("DELETE FROM t WHERE (a, b) in ((1, 2), (3, 4))"), "DELETE FROM t WHERE (a, b) IN (...)");
/// assert_eq!(pg("insert into t (a, b) values ($1, $2), ($3, $4)"), "INSERT INTO t (a, b) VALUES (...)");
/// assert_eq!(pg("SELECT a - 1, t.user FROM t"), "SELECT a - ?, t.user FROM t");
/// assert_eq!(normalize("SELECT * FROM t WHERE a = %(a)s OR b = %s", Dialect::MySql), "SELECT * FROM t WHERE a = ? OR b = ?");
/// ```
pub fn normalize(sql: &str, dialect: Dialect) -> String {
    Normalized::of(sql, dialect).text
}

/// The id of a normalized statement: the first 8 bytes of the SHA-1 digest of its UTF-8 text,
/// read big-endian. It depends on nothing else (no version, platform, process or key), so an
/// id means the same shape everywhere; a shape's id changes only if [`normalize`] changes.
///
/// ```
/// use osprofiler_core::db::fingerprint::{fingerprint_id, format_id};
/// // SHA-1("SELECT ?") = d41673f8 0456e405 …
/// assert_eq!(format_id(fingerprint_id("SELECT ?")), "d41673f80456e405");
/// ```
pub fn fingerprint_id(normalized: &str) -> u64 {
    let digest = Sha1::digest(normalized.as_bytes());
    let mut id = [0; 8];
    id.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(id)
}

/// An id as recorded (`db.fingerprint`): 16 lowercase hex digits.
///
/// ```
/// assert_eq!(osprofiler_core::db::fingerprint::format_id(0xab), "00000000000000ab");
/// ```
pub fn format_id(id: u64) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(16);
    for i in (0..16).rev() {
        s.push(char::from(HEX[((id >> (i * 4)) & 0xf) as usize]));
    }
    s
}

/// The [`Fingerprint`] of `sql`, cached: a statement seen before (the same text and dialect)
/// costs a hash lookup and two reference counts, and allocates nothing. The cache holds a few
/// thousand statements per dialect and forgets the least recently seen ones first.
pub fn fingerprint(sql: &str, dialect: Dialect) -> Fingerprint {
    lookup(sql, dialect).fingerprint
}

/// What the cache keeps per statement: its fingerprint, and where its literals are (what the
/// values digest reads; see [`values_digest`]).
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub(crate) fingerprint: Fingerprint,
    /// `(start, end)` byte ranges of the raw text's literals, a unary sign included.
    pub(crate) literals: Arc<[(u32, u32)]>,
}

const SHARDS: usize = 16;
/// Entries per shard and generation: 16 shards × 2 generations × 128 = 4096 per dialect.
const GENERATION: usize = 128;

/// Two generations: lookups find an entry in either, and one found in the old generation
/// moves to the new; when the new one is full, the old one (everything not seen since) is
/// dropped and the new one becomes the old.
#[derive(Default)]
struct Shard {
    new: HashMap<Box<str>, Entry, BuildFx>,
    old: HashMap<Box<str>, Entry, BuildFx>,
}

/// The cache's hasher: FxHash's multiply-rotate over 8 bytes at a time, several times faster
/// than the default SipHash on long statements. Not collision-resistant: a crafted set of
/// statements can share a bucket, which the bounded shard (128 entries) keeps cheap.
#[derive(Default, Clone, Copy)]
struct BuildFx;

impl std::hash::BuildHasher for BuildFx {
    type Hasher = Fx;
    fn build_hasher(&self) -> Fx {
        Fx(0)
    }
}

struct Fx(u64);

impl Fx {
    const K: u64 = 0x51_7c_c1_b7_27_22_0a_95;
    #[inline]
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(Self::K);
    }
}

impl std::hash::Hasher for Fx {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            self.add(u64::from_le_bytes(c.try_into().expect("8 bytes")));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut last = [0u8; 8];
            last[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(last));
        }
    }
    #[inline]
    fn write_u8(&mut self, b: u8) {
        self.add(u64::from(b));
    }
    #[inline]
    fn finish(&self) -> u64 {
        self.0
    }
}

type Cache = [Mutex<Shard>; SHARDS];

fn cache(dialect: Dialect) -> &'static Cache {
    static CACHES: [std::sync::OnceLock<Cache>; 3] = [const { std::sync::OnceLock::new() }; 3];
    let i = match dialect {
        Dialect::Postgres => 0,
        Dialect::MySql => 1,
        Dialect::Sqlite => 2,
    };
    CACHES[i].get_or_init(|| std::array::from_fn(|_| Mutex::default()))
}

/// The shard of a text: from its length and three of its bytes, no full pass over it.
#[inline]
fn shard_of(sql: &str) -> usize {
    let b = sql.as_bytes();
    let n = b.len();
    if n == 0 {
        return 0;
    }
    let mix =
        n ^ usize::from(b[n / 2]) ^ (usize::from(b[n - 1]) << 1) ^ (usize::from(b[n / 3]) << 2);
    mix % SHARDS
}

/// The cached entry of `sql`, computed on a miss.
pub(crate) fn lookup(sql: &str, dialect: Dialect) -> Entry {
    let shard = &cache(dialect)[shard_of(sql)];
    {
        let mut s = shard.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(e) = s.new.get(sql) {
            return e.clone();
        }
        if let Some((k, e)) = s.old.remove_entry(sql) {
            let out = e.clone();
            insert(&mut s, k, e);
            return out;
        }
    }
    // Computed outside the lock: two threads may compute the same entry, to the same value.
    let n = Normalized::of(sql, dialect);
    let entry = Entry {
        fingerprint: Fingerprint {
            id: fingerprint_id(&n.text),
            text: n.text.into(),
        },
        literals: n.literals.into(),
    };
    let mut s = shard.lock().unwrap_or_else(|e| e.into_inner());
    insert(&mut s, sql.into(), entry.clone());
    entry
}

fn insert(s: &mut Shard, key: Box<str>, entry: Entry) {
    if s.new.len() >= GENERATION {
        s.old = std::mem::take(&mut s.new);
    }
    s.new.insert(key, entry);
}

/// A keyed digest of a statement's values: the literals of `sql` at `literals` (see
/// [`Entry::literals`]) and the bound values' text `params`, each length-prefixed, through
/// SipHash-1-3 under `key`.
pub(crate) fn values_digest(
    key: (u64, u64),
    sql: &str,
    literals: &[(u32, u32)],
    bound: Option<&super::BoundValues>,
) -> u64 {
    use std::hash::Hasher;
    let mut h = siphasher::sip::SipHasher13::new_with_keys(key.0, key.1);
    let b = sql.as_bytes();
    for &(s, e) in literals {
        let bytes = &b[s as usize..e as usize];
        h.write_u8(b'L');
        h.write_u64(bytes.len() as u64);
        h.write(bytes);
    }
    match bound.map(|b| &b.0) {
        Some(super::Bound::Owned(v)) => {
            // Streamed: tag, the Debug text, its length (a suffix frames it as well as a
            // prefix).
            h.write_u8(b'B');
            let mut w = HashWriter { h: &mut h, n: 0 };
            let _ = std::fmt::write(&mut w, format_args!("{v:?}"));
            let n = w.n;
            h.write_u64(n);
        }
        Some(super::Bound::Hashed(x)) => {
            h.write_u8(b'H');
            h.write(&x.to_le_bytes());
        }
        None => {}
    }
    h.finish()
}

/// Feeds formatted text into a hasher, counting its bytes.
struct HashWriter<'a, H> {
    h: &'a mut H,
    n: u64,
}

impl<H: std::hash::Hasher> std::fmt::Write for HashWriter<'_, H> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.h.write(s.as_bytes());
        self.n += s.len() as u64;
        Ok(())
    }
}

/// SipHash-1-3-128 (fixed key) of a value's `Debug` text, streamed: no `String` is made.
/// Only ever stored keyed ([`values_digest`]).
pub(crate) fn debug_hash128(v: &dyn std::fmt::Debug) -> u128 {
    use siphasher::sip128::Hasher128 as _;
    use std::hash::Hasher as _;
    let mut h = siphasher::sip128::SipHasher13::new();
    let mut w = HashWriter { h: &mut h, n: 0 };
    let _ = std::fmt::write(&mut w, format_args!("{v:?}"));
    let n = w.n;
    h.write_u64(n);
    h.finish128().as_u128()
}

/// The SipHash key of the values digests of traces signed with `hmac_key`: the first 16 bytes
/// of HMAC-SHA1(`hmac_key`, `"osprofiler-rs db values"`), as two little-endian words.
pub(crate) fn values_key(hmac_key: &str) -> (u64, u64) {
    use hmac::Mac;
    let mut mac = <hmac::Hmac<Sha1> as Mac>::new_from_slice(hmac_key.as_bytes())
        .expect("HMAC takes keys of any length");
    mac.update(b"osprofiler-rs db values");
    let d = mac.finalize().into_bytes();
    let word = |i: usize| u64::from_le_bytes(d[i..i + 8].try_into().expect("8 bytes"));
    (word(0), word(8))
}

/// A normalized statement and where its literals were.
struct Normalized {
    text: String,
    literals: Vec<(u32, u32)>,
}

/// A token of the normalized statement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// A keyword (written upper-case).
    Keyword,
    /// A keyword that is a value (`NULL`, `TRUE`, `FALSE`) or ends an expression (`END`).
    Operand,
    /// An identifier (unquoted, kept as written), or a quoted one.
    Ident,
    /// `?`.
    Value,
    /// One byte of punctuation.
    Punct(u8),
    /// `...` of a collapsed list.
    Ellipsis,
}

#[derive(Debug, Clone, Copy)]
struct Tok {
    kind: Kind,
    start: usize,
    end: usize,
    space: bool,
}

impl Normalized {
    fn of(sql: &str, dialect: Dialect) -> Normalized {
        let b = sql.as_bytes();
        let mut toks: Vec<Tok> = Vec::with_capacity(sql.len() / 3 + 1);
        let mut literals = Vec::new();
        let mut space = false;
        let push = |toks: &mut Vec<Tok>, kind, start, end, space: &mut bool| {
            toks.push(Tok {
                kind,
                start,
                end,
                space: std::mem::take(space),
            });
        };
        scan(sql, dialect, |token, start, end| match token {
            Token::Plain => {
                for (i, &c) in b.iter().enumerate().take(end).skip(start) {
                    if c.is_ascii_whitespace() {
                        space = true;
                    } else {
                        push(&mut toks, Kind::Punct(c), i, i + 1, &mut space);
                    }
                }
            }
            Token::Comment => space = true,
            Token::Ident => push(&mut toks, Kind::Ident, start, end, &mut space),
            Token::Placeholder => push(&mut toks, Kind::Value, start, end, &mut space),
            Token::Word => {
                let after_dot = toks.last().is_some_and(|t| t.kind == Kind::Punct(b'.')) && !space;
                let before_dot = b.get(end) == Some(&b'.');
                let kind = match keyword(&b[start..end]) {
                    Some(k) if !after_dot && !before_dot => k,
                    _ => Kind::Ident,
                };
                push(&mut toks, kind, start, end, &mut space);
            }
            Token::Literal => {
                let mut start = start;
                if matches!(b[start], b'0'..=b'9' | b'.') {
                    // A unary sign belongs to the number: `-5` is a value, `a - 5` is not.
                    let n = toks.len();
                    if n > 0
                        && matches!(toks[n - 1].kind, Kind::Punct(b'-' | b'+'))
                        && (n == 1 || !ends_operand(toks[n - 2].kind))
                    {
                        let sign = toks.pop().expect("checked");
                        space = sign.space;
                        start = sign.start;
                    }
                }
                literals.push((start as u32, end as u32));
                push(&mut toks, Kind::Value, start, end, &mut space);
            }
        });
        while toks.last().is_some_and(|t| t.kind == Kind::Punct(b';')) {
            toks.pop();
        }
        let toks = collapse(sql, toks);
        let mut text = String::with_capacity(sql.len());
        let (mut after_open, mut after_comma) = (true, false);
        for t in &toks {
            let tight = matches!(t.kind, Kind::Punct(b',' | b')' | b';'));
            if (t.space || after_comma) && !after_open && !tight {
                text.push(' ');
            }
            after_open = t.kind == Kind::Punct(b'(');
            after_comma = t.kind == Kind::Punct(b',');
            match t.kind {
                Kind::Keyword | Kind::Operand => text.extend(
                    b[t.start..t.end]
                        .iter()
                        .map(|c| char::from(c.to_ascii_uppercase())),
                ),
                Kind::Value => text.push('?'),
                Kind::Ellipsis => text.push_str("..."),
                Kind::Punct(c) => text.push(char::from(c)),
                Kind::Ident => text.push_str(&sql[t.start..t.end]),
            }
        }
        Normalized { text, literals }
    }
}

/// Whether a token ends an operand, so that a `-` after it is binary.
fn ends_operand(kind: Kind) -> bool {
    matches!(
        kind,
        Kind::Ident | Kind::Value | Kind::Operand | Kind::Ellipsis | Kind::Punct(b')' | b']')
    )
}

/// `IN (values)` → `IN (...)`, `VALUES (row), (row)…` → `VALUES (...)`.
fn collapse(sql: &str, toks: Vec<Tok>) -> Vec<Tok> {
    let b = sql.as_bytes();
    let is_kw =
        |t: &Tok, kw: &[u8]| t.kind == Kind::Keyword && b[t.start..t.end].eq_ignore_ascii_case(kw);
    let mut out: Vec<Tok> = Vec::with_capacity(toks.len());
    let mut i = 0;
    while i < toks.len() {
        let t = toks[i];
        out.push(t);
        i += 1;
        let end = if is_kw(&t, b"IN") {
            value_list(&toks, i)
        } else if is_kw(&t, b"VALUES") {
            rows(&toks, i)
        } else {
            None
        };
        if let Some(end) = end {
            let at = toks[i].start;
            for (kind, space) in [
                (Kind::Punct(b'('), true),
                (Kind::Ellipsis, false),
                (Kind::Punct(b')'), false),
            ] {
                out.push(Tok {
                    kind,
                    start: at,
                    end: at + 1,
                    space,
                });
            }
            i = end;
        }
    }
    out
}

/// The end of a parenthesized list of values at `i`: `(?, ?)`, `((?, ?), (?, ?))`.
fn value_list(toks: &[Tok], i: usize) -> Option<usize> {
    if toks.get(i)?.kind != Kind::Punct(b'(') {
        return None;
    }
    let mut depth = 0usize;
    let mut j = i;
    loop {
        match toks.get(j)?.kind {
            Kind::Punct(b'(') => depth += 1,
            Kind::Punct(b')') => {
                depth -= 1;
                if depth == 0 {
                    return Some(j + 1);
                }
            }
            Kind::Punct(b',') | Kind::Value | Kind::Operand => {}
            _ => return None,
        }
        j += 1;
    }
}

/// The end of the rows at `i` after `VALUES`: balanced `( … )` groups separated by `,`.
fn rows(toks: &[Tok], i: usize) -> Option<usize> {
    let mut j = i;
    let mut end = None;
    while toks.get(j).is_some_and(|t| t.kind == Kind::Punct(b'(')) {
        let mut depth = 0usize;
        loop {
            match toks.get(j)?.kind {
                Kind::Punct(b'(') => depth += 1,
                Kind::Punct(b')') => {
                    depth -= 1;
                    if depth == 0 {
                        break;
                    }
                }
                _ => {}
            }
            j += 1;
        }
        j += 1;
        end = Some(j);
        if toks.get(j).is_some_and(|t| t.kind == Kind::Punct(b','))
            && toks.get(j + 1).is_some_and(|t| t.kind == Kind::Punct(b'('))
        {
            j += 1;
        } else {
            break;
        }
    }
    end
}

/// The keywords upper-cased, sorted.
const KEYWORDS: &[&str] = &[
    "ADD",
    "ALL",
    "ALTER",
    "ANALYZE",
    "AND",
    "ANY",
    "AS",
    "ASC",
    "BEGIN",
    "BETWEEN",
    "BY",
    "CASCADE",
    "CASE",
    "CAST",
    "CHECK",
    "COLLATE",
    "COLUMN",
    "COMMIT",
    "CONFLICT",
    "CONSTRAINT",
    "CREATE",
    "CROSS",
    "CURRENT_DATE",
    "CURRENT_TIME",
    "CURRENT_TIMESTAMP",
    "DEFAULT",
    "DELETE",
    "DESC",
    "DISTINCT",
    "DO",
    "DROP",
    "DUPLICATE",
    "ELSE",
    "END",
    "ESCAPE",
    "EXCEPT",
    "EXISTS",
    "EXPLAIN",
    "FALSE",
    "FETCH",
    "FILTER",
    "FIRST",
    "FOR",
    "FOREIGN",
    "FROM",
    "FULL",
    "GROUP",
    "HAVING",
    "IF",
    "IGNORE",
    "ILIKE",
    "IN",
    "INDEX",
    "INNER",
    "INSERT",
    "INTERSECT",
    "INTERVAL",
    "INTO",
    "IS",
    "ISNULL",
    "JOIN",
    "KEY",
    "LAST",
    "LATERAL",
    "LEFT",
    "LIKE",
    "LIMIT",
    "LOCK",
    "LOCKED",
    "NATURAL",
    "NEXT",
    "NOT",
    "NOTHING",
    "NOTNULL",
    "NOWAIT",
    "NULL",
    "NULLS",
    "OF",
    "OFFSET",
    "ON",
    "ONLY",
    "OR",
    "ORDER",
    "OUTER",
    "OVER",
    "PARTITION",
    "PRAGMA",
    "PRIMARY",
    "RECURSIVE",
    "REFERENCES",
    "RELEASE",
    "REPLACE",
    "RETURNING",
    "RIGHT",
    "ROLLBACK",
    "ROW",
    "ROWS",
    "SAVEPOINT",
    "SELECT",
    "SET",
    "SHARE",
    "SHOW",
    "SIMILAR",
    "SKIP",
    "SOME",
    "TABLE",
    "THEN",
    "TO",
    "TRANSACTION",
    "TRUE",
    "TRUNCATE",
    "UNION",
    "UNIQUE",
    "UPDATE",
    "USING",
    "VALUES",
    "VIEW",
    "WHEN",
    "WHERE",
    "WINDOW",
    "WITH",
];

/// The kind of `word` if it is a keyword.
fn keyword(word: &[u8]) -> Option<Kind> {
    if word.len() > 17 || !word.is_ascii() {
        return None;
    }
    let mut up = [0u8; 17];
    let up = &mut up[..word.len()];
    up.copy_from_slice(word);
    up.make_ascii_uppercase();
    KEYWORDS.binary_search_by(|k| k.as_bytes().cmp(up)).ok()?;
    Some(match &*up {
        b"NULL" | b"TRUE" | b"FALSE" | b"END" | b"CURRENT_DATE" | b"CURRENT_TIME"
        | b"CURRENT_TIMESTAMP" => Kind::Operand,
        _ => Kind::Keyword,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use Dialect::{MySql, Postgres, Sqlite};

    #[test]
    fn keywords_sorted() {
        assert!(KEYWORDS.windows(2).all(|w| w[0] < w[1]));
    }

    #[track_caller]
    fn check(dialect: Dialect, cases: &[(&str, &str)]) {
        for (sql, want) in cases {
            assert_eq!(normalize(sql, dialect), *want, "{dialect:?}: {sql}");
        }
    }

    #[test]
    fn shapes() {
        check(
            Postgres,
            &[
                ("SELECT 1", "SELECT ?"),
                ("  select 1 ;; ", "SELECT ?"),
                ("SELECT f( a ,b ) ; SELECT 2", "SELECT f(a, b); SELECT ?"),
                ("SELECT $1::int4, 'x'::text", "SELECT ?::int4, ?::text"),
                (
                    "SELECT a-1, b - -2, (-3), x=-4, y*+5",
                    "SELECT a-?, b - ?, (?), x=?, y*?",
                ),
                (
                    "SELECT E'a\\'b', $$x$$, $q$y$q$, U&'z', X'FF'",
                    "SELECT ?, ?, ?, ?, ?",
                ),
                (
                    "SELECT * FROM t WHERE id NOT IN (1,2, 3)",
                    "SELECT * FROM t WHERE id NOT IN (...)",
                ),
                (
                    "SELECT * FROM t WHERE id IN (SELECT id FROM u)",
                    "SELECT * FROM t WHERE id IN (SELECT id FROM u)",
                ),
                (
                    "SELECT * FROM t WHERE id IN (a, b)",
                    "SELECT * FROM t WHERE id IN (a, b)",
                ),
                (
                    "SELECT * FROM t WHERE id IN(NULL)",
                    "SELECT * FROM t WHERE id IN (...)",
                ),
                (
                    "INSERT INTO t VALUES (1, now()), (2, now()) ON CONFLICT DO NOTHING",
                    "INSERT INTO t VALUES (...) ON CONFLICT DO NOTHING",
                ),
                (
                    "SELECT * FROM (VALUES (1), (2)) AS v(x)",
                    "SELECT * FROM (VALUES (...)) AS v(x)",
                ),
                (
                    "SELECT \"Select\", Users.Name, \"t\".\"from\" FROM Users -- x\n/* y */",
                    "SELECT \"Select\", Users.Name, \"t\".\"from\" FROM Users",
                ),
                ("SELECT a/*c*/FROM t", "SELECT a FROM t"),
                ("select count(*) from t", "SELECT count(*) FROM t"),
                ("SELECT 'never closed", "SELECT ?"),
                (
                    "SELECT case when a then 1 end - 1",
                    "SELECT CASE WHEN a THEN ? END - ?",
                ),
            ],
        );
        check(
            MySql,
            &[
                (
                    "SELECT \"x\", 'y', `Col` FROM t # c",
                    "SELECT ?, ?, `Col` FROM t",
                ),
                (
                    "SELECT * FROM t WHERE a = %s AND b IN (%s, %s)",
                    "SELECT * FROM t WHERE a = ? AND b IN (...)",
                ),
                ("SELECT _utf8mb4'x', 0x1F, b'1'", "SELECT ?, ?, ?"),
            ],
        );
        check(
            Sqlite,
            &[(
                "SELECT [a b] FROM t WHERE x = ?1 AND y = :y AND z = @z AND w = $w",
                "SELECT [a b] FROM t WHERE x = ? AND y = ? AND z = ? AND w = ?",
            )],
        );
    }

    #[test]
    fn different_shapes_differ() {
        let shapes = [
            "SELECT a FROM t WHERE id = ?",
            "SELECT b FROM t WHERE id = ?",
            "SELECT a FROM u WHERE id = ?",
            "SELECT a FROM t WHERE id > ?",
            "SELECT a FROM t WHERE id = ? LIMIT ?",
            "SELECT a FROM \"T\" WHERE id = ?",
            "SELECT a FROM T WHERE id = ?",
            "UPDATE t SET a = ? WHERE id = ?",
            "DELETE FROM t WHERE id = ?",
        ];
        let ids: std::collections::HashSet<u64> =
            shapes.iter().map(|s| fingerprint(s, Postgres).id).collect();
        assert_eq!(ids.len(), shapes.len());
    }

    #[test]
    fn literals_and_sign_recorded() {
        let n = Normalized::of("SELECT a - 1, -2, 'x' FROM t WHERE b = $1", Postgres);
        let sql = "SELECT a - 1, -2, 'x' FROM t WHERE b = $1";
        let lits: Vec<&str> = n
            .literals
            .iter()
            .map(|&(s, e)| &sql[s as usize..e as usize])
            .collect();
        assert_eq!(lits, ["1", "-2", "'x'"]);
    }

    #[test]
    fn cache_hits_and_evicts() {
        let sql = "SELECT cache_probe FROM t WHERE a = 'zz'";
        let a = lookup(sql, Sqlite);
        let b = lookup(sql, Sqlite);
        assert!(Arc::ptr_eq(&a.fingerprint.text, &b.fingerprint.text));
        assert!(Arc::ptr_eq(&a.literals, &b.literals));
        // Fill every shard twice over: the first statement is dropped, and recomputed equal.
        for i in 0..(SHARDS * GENERATION * 4) {
            lookup(&format!("SELECT x{i}"), Sqlite);
        }
        let c = lookup(sql, Sqlite);
        assert!(!Arc::ptr_eq(&a.fingerprint.text, &c.fingerprint.text));
        assert_eq!(a.fingerprint, c.fingerprint);
        for s in cache(Sqlite) {
            let s = s.lock().unwrap();
            assert!(s.new.len() <= GENERATION && s.old.len() <= GENERATION);
        }
    }

    #[test]
    fn values_digest_is_keyed() {
        let k = values_key("SECRET_KEY");
        let other = values_key("OTHER_KEY");
        let sql1 = "SELECT * FROM t WHERE a = 'alice' AND b = 1";
        let sql2 = "SELECT * FROM t WHERE a = 'bob' AND b = 1";
        use super::super::BoundValues;
        let d = |key, sql: &str, params: Option<&str>| {
            let e = lookup(sql, Postgres);
            let bound = params.map(|p| BoundValues::owned(p.to_owned()));
            values_digest(key, sql, &e.literals, bound.as_ref())
        };
        assert_eq!(d(k, sql1, None), d(k, sql1, None));
        assert_ne!(d(k, sql1, None), d(k, sql2, None));
        assert_ne!(d(k, sql1, None), d(other, sql1, None));
        let bound = "SELECT * FROM t WHERE a = $1";
        assert_eq!(d(k, bound, Some("[7]")), d(k, bound, Some("[7]")));
        assert_ne!(d(k, bound, Some("[7]")), d(k, bound, Some("[8]")));
        assert_ne!(d(k, bound, Some("[7]")), d(other, bound, Some("[7]")));
        // Hashed now or in the worker: each form tells equal values from different ones.
        let now = |v: i64| {
            let b = BoundValues::hash_now(&[v]);
            values_digest(k, bound, &[], Some(&b))
        };
        assert_eq!(now(7), now(7));
        assert_ne!(now(7), now(8));
        // A literal cannot pass for a bound value.
        assert_ne!(d(k, "SELECT 7", None), d(k, "SELECT $1", Some("7")));
    }
}
