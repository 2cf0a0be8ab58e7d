//! The SQL sanitizer against generated statements: random identifiers, keywords, placeholders,
//! comments full of quotes, and literals of every quoting style each dialect knows with a
//! random secret inside. No secret may survive, and every token that is not a literal must come
//! out byte for byte; plus a corpus of tricky statements per dialect.

use osprofiler_core::db::{Dialect, sanitize};
use proptest::prelude::*;

/// A token of a generated statement and, for a literal, the secret it carries.
#[derive(Debug, Clone)]
struct Tok {
    text: String,
    secret: Option<String>,
}

fn kept(text: impl Into<String>) -> Tok {
    Tok {
        text: text.into(),
        secret: None,
    }
}

/// `K9` and ten characters of `alphabet`: nothing kept (lowercase identifiers, uppercase
/// keywords without digits, placeholders) can contain it.
fn secret_of(alphabet: &'static [u8]) -> impl Strategy<Value = String> {
    prop::collection::vec(0..alphabet.len(), 10).prop_map(move |ix| {
        let mut s = String::from("K9");
        s.extend(ix.into_iter().map(|i| char::from(alphabet[i])));
        s
    })
}

const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";

/// Literal text around a secret: `open`, then the secret and `fragments` interleaved, `close`.
fn literal(
    open: &'static str,
    fragments: &'static [&'static str],
    close: &'static str,
) -> BoxedStrategy<Tok> {
    (
        secret_of(ALNUM),
        prop::collection::vec(prop::sample::select(fragments), 0..6),
        0usize..6,
    )
        .prop_map(move |(secret, frags, at)| {
            let mut text = String::from(open);
            let at = at.min(frags.len());
            for f in &frags[..at] {
                text.push_str(f);
            }
            text.push_str(&secret);
            for f in &frags[at..] {
                text.push_str(f);
            }
            text.push_str(close);
            Tok {
                text,
                secret: Some(secret),
            }
        })
        .boxed()
}

/// A number whose digits are the secret (`K9` dropped: digits only).
fn number() -> BoxedStrategy<Tok> {
    (
        prop::collection::vec(0u8..10, 10..14),
        prop::sample::select(&["", ".5", ".25e-3", "e+7", "E10"][..]),
    )
        .prop_map(|(digits, tail)| {
            let mut d: String = digits.iter().map(|d| char::from(b'1' + d % 9)).collect();
            let secret = d.clone();
            d.push_str(tail);
            Tok {
                text: d,
                secret: Some(secret),
            }
        })
        .boxed()
}

/// A hex literal whose hex digits are the secret.
fn hex(open: &'static str, close: &'static str) -> BoxedStrategy<Tok> {
    prop::collection::vec(0usize..16, 12..16)
        .prop_map(move |ix| {
            let secret: String = ix
                .iter()
                .map(|&i| char::from(b"0123456789ABCDEF"[i]))
                .collect();
            Tok {
                text: format!("{open}{secret}{close}"),
                secret: Some(secret),
            }
        })
        .boxed()
}

fn identifier() -> BoxedStrategy<Tok> {
    "[a-z][a-z_]{0,8}".prop_map(kept).boxed()
}

fn keyword() -> BoxedStrategy<Tok> {
    prop::sample::select(
        &[
            "SELECT", "FROM", "WHERE", "AND", "OR", "INSERT", "INTO", "VALUES", "UPDATE", "SET",
            "AS", "NULL", "TRUE", "IN", "LIKE", "ORDER", "BY", "LIMIT", "JOIN", "ON", "NOT",
        ][..],
    )
    .prop_map(kept)
    .boxed()
}

fn punct(extra: &'static [&'static str]) -> BoxedStrategy<Tok> {
    let mut all = vec![
        ",", "(", ")", "=", "<>", "*", "+", "-", ";", "||", ".", "<", ">=",
    ];
    all.extend_from_slice(extra);
    prop::sample::select(all).prop_map(kept).boxed()
}

/// Quoted identifier text: lowercase, spaces and the characters that start literals and
/// comments elsewhere (never digits or uppercase, so never a secret).
fn quoted_identifier(
    open: &'static str,
    close: &'static str,
    inner: &'static [&'static str],
) -> BoxedStrategy<Tok> {
    prop::collection::vec(prop::sample::select(inner), 1..6)
        .prop_map(move |parts| kept(format!("{open}{}{close}", parts.concat())))
        .boxed()
}

/// Comment text: lowercase words with quotes, dollars, dashes and hashes (no `*/`, no
/// newline).
fn comment_body() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop::sample::select(
            &[
                "it's", "don't", "\"dq", "`bt", "$$", "$q$", "--", "#", "x", "é", " ", "'", "\\",
                "[b",
            ][..],
        ),
        0..8,
    )
    .prop_map(|v| v.concat())
}

fn line_comment(marker: &'static str) -> BoxedStrategy<Tok> {
    comment_body()
        .prop_map(move |b| kept(format!("{marker}{b}\n")))
        .boxed()
}

fn block_comment(nested: bool) -> BoxedStrategy<Tok> {
    (comment_body(), comment_body(), comment_body())
        .prop_map(move |(a, b, c)| {
            if nested {
                kept(format!("/* {a} /* {b} */ {c} */"))
            } else {
                kept(format!("/* {a} /* {b} */"))
            }
        })
        .boxed()
}

fn statement(tokens: BoxedStrategy<Tok>) -> impl Strategy<Value = (Vec<Tok>, Vec<&'static str>)> {
    prop::collection::vec(tokens, 1..40).prop_flat_map(|toks| {
        let n = toks.len();
        (
            Just(toks),
            prop::collection::vec(prop::sample::select(&[" ", "\n", "  ", "\t"][..]), n),
        )
    })
}

fn postgres_tokens() -> BoxedStrategy<Tok> {
    const STD: &[&str] = &[
        "''", "\\", "\"", "-- ", "/*", "*/", "#", "$$", "$1", "\n", "é", "`",
    ];
    const ESC: &[&str] = &["\\'", "\\\\", "''", "\"", "-- ", "/*", "\\n", "$$"];
    // Inside `$$…$$` no `$` at all; inside `$tag$…$tag$` any dollar but the tag.
    const DOLLAR: &[&str] = &["'", "''", "\\", "--", "/*", "\"", "E'"];
    const TAGGED: &[&str] = &["'", "''", "\\", "$", "$$ ", "$x$", "--", "/*", "\""];
    prop_oneof![
        3 => identifier(),
        3 => keyword(),
        2 => punct(&["::", "#", "@>"]),
        1 => prop::sample::select(&["$1", "$2", "$10"][..]).prop_map(kept).boxed(),
        1 => quoted_identifier("\"", "\"", &["a", " ", "''", "\"\"", "--", "/*", "$$", "é"]),
        1 => quoted_identifier("U&\"", "\"", &["a", "b", " "]),
        1 => line_comment("--"),
        1 => block_comment(true),
        3 => literal("'", STD, "'"),
        2 => literal("E'", ESC, "'"),
        1 => literal("e'", ESC, "'"),
        1 => literal("N'", STD, "'"),
        1 => literal("U&'", &["''", "a", " ", "\""], "'"),
        1 => hex("X'", "'"),
        1 => hex("x'", "'"),
        1 => literal("$$", DOLLAR, "$$"),
        1 => literal("$tag$", TAGGED, "$tag$"),
        1 => literal("$_T1$", TAGGED, "$_T1$"),
        2 => number(),
        1 => hex("0x", ""),
    ]
    .boxed()
}

fn mysql_tokens() -> BoxedStrategy<Tok> {
    const SQ: &[&str] = &[
        "\\'", "''", "\\\\", "\"", "\\\"", "-- ", "#", "/*", "`", "é", "\n",
    ];
    const DQ: &[&str] = &["\\\"", "\"\"", "\\\\", "'", "\\'", "-- ", "#", "/*", "`"];
    prop_oneof![
        3 => identifier(),
        3 => keyword(),
        2 => punct(&["!=", "@"]),
        1 => Just(kept("?")).boxed(),
        1 => quoted_identifier("`", "`", &["a", " ", "``", "'", "\"", "#", "--", "é"]),
        1 => line_comment("-- "),
        1 => line_comment("#"),
        1 => block_comment(false),
        3 => literal("'", SQ, "'"),
        3 => literal("\"", DQ, "\""),
        1 => literal("N'", SQ, "'"),
        1 => literal("_utf8mb4'", SQ, "'"),
        1 => literal("_binary\"", DQ, "\""),
        1 => hex("X'", "'"),
        1 => hex("0x", ""),
        2 => number(),
    ]
    .boxed()
}

fn sqlite_tokens() -> BoxedStrategy<Tok> {
    const SQ: &[&str] = &["''", "\\", "\"", "-- ", "/*", "`", "[", "é", "\n", "$"];
    prop_oneof![
        3 => identifier(),
        3 => keyword(),
        2 => punct(&[]),
        1 => prop::sample::select(&["?", "?1", "?23", ":name", "@v", "$w"][..]).prop_map(kept).boxed(),
        1 => quoted_identifier("\"", "\"", &["a", " ", "\"\"", "'", "--", "é"]),
        1 => quoted_identifier("`", "`", &["a", " ", "``", "'", "\""]),
        1 => quoted_identifier("[", "]", &["a", " ", "'", "\"", "`"]),
        1 => line_comment("--"),
        1 => block_comment(false),
        4 => literal("'", SQ, "'"),
        1 => hex("X'", "'"),
        1 => hex("0x", ""),
        2 => number(),
    ]
    .boxed()
}

fn check(dialect: Dialect, toks: &[Tok], seps: &[&str]) -> Result<(), TestCaseError> {
    let mut sql = String::new();
    let mut want = String::new();
    for (t, sep) in toks.iter().zip(seps) {
        sql.push_str(&t.text);
        want.push_str(if t.secret.is_some() { "?" } else { &t.text });
        sql.push_str(sep);
        want.push_str(sep);
    }
    let got = sanitize(&sql, dialect);
    for secret in toks.iter().filter_map(|t| t.secret.as_deref()) {
        prop_assert!(
            !got.contains(secret),
            "{dialect:?}: secret {secret} survived in {got:?} (from {sql:?})"
        );
    }
    prop_assert_eq!(got, want, "{:?}: {:?}", dialect, sql);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn postgres_statements((toks, seps) in statement(postgres_tokens())) {
        check(Dialect::Postgres, &toks, &seps)?;
    }

    #[test]
    fn mysql_statements((toks, seps) in statement(mysql_tokens())) {
        check(Dialect::MySql, &toks, &seps)?;
    }

    #[test]
    fn sqlite_statements((toks, seps) in statement(sqlite_tokens())) {
        check(Dialect::Sqlite, &toks, &seps)?;
    }

    /// Whatever the input, sanitizing never panics and never grows text that has no literal.
    #[test]
    fn arbitrary_text_never_panics(sql in "\\PC{0,200}") {
        for d in [Dialect::Postgres, Dialect::MySql, Dialect::Sqlite] {
            let out = sanitize(&sql, d);
            prop_assert!(out.len() <= sql.len());
        }
    }
}

/// Statements as applications and tools write them.
#[test]
fn corpus() {
    let cases: &[(Dialect, &str, &str)] = &[
        (
            Dialect::Postgres,
            "INSERT INTO users (name, email, password_hash) VALUES ('Ann O''Neil', 'ann@example.com', E'\\\\x9f\\'') RETURNING id",
            "INSERT INTO users (name, email, password_hash) VALUES (?, ?, ?) RETURNING id",
        ),
        (
            Dialect::Postgres,
            "CREATE FUNCTION f() RETURNS int AS $body$ BEGIN RETURN 42; END $body$ LANGUAGE plpgsql",
            "CREATE FUNCTION f() RETURNS int AS ? LANGUAGE plpgsql",
        ),
        (
            Dialect::Postgres,
            "SELECT * FROM \"Order\" o WHERE o.created_at > now() - interval '7 days' AND o.total >= 10.50 LIMIT 20 OFFSET 40",
            "SELECT * FROM \"Order\" o WHERE o.created_at > now() - interval ? AND o.total >= ? LIMIT ? OFFSET ?",
        ),
        (
            Dialect::Postgres,
            "SELECT data->>'token' FROM s WHERE data @> '{\"k\": \"v\"}'::jsonb AND tags ?| array['a','b']",
            "SELECT data->>? FROM s WHERE data @> ?::jsonb AND tags ?| array[?,?]",
        ),
        (
            Dialect::Postgres,
            "SET LOCAL statement_timeout = '5s'; ALTER ROLE app PASSWORD 'hunter2'",
            "SET LOCAL statement_timeout = ?; ALTER ROLE app PASSWORD ?",
        ),
        (
            Dialect::MySql,
            "INSERT INTO `users` (`name`, `pw`) VALUES ('O\\'Neil', \"s3cr\\\"et\") ON DUPLICATE KEY UPDATE `pw` = VALUES(`pw`)",
            "INSERT INTO `users` (`name`, `pw`) VALUES (?, ?) ON DUPLICATE KEY UPDATE `pw` = VALUES(`pw`)",
        ),
        (
            Dialect::MySql,
            "SELECT /*+ MAX_EXECUTION_TIME(1000) */ id FROM t WHERE a = _utf8mb4'x' COLLATE utf8mb4_bin -- it's\nAND b = 0x1F # done",
            "SELECT /*+ MAX_EXECUTION_TIME(1000) */ id FROM t WHERE a = ? COLLATE utf8mb4_bin -- it's\nAND b = ? # done",
        ),
        (
            Dialect::Sqlite,
            "INSERT INTO \"kv\" (\"key\", value) VALUES ('api_key', 'sk_live_123'), ('n', 1.5e3)",
            "INSERT INTO \"kv\" (\"key\", value) VALUES (?, ?), (?, ?)",
        ),
        (
            Dialect::Sqlite,
            "PRAGMA user_version = 7; SELECT [order id] FROM t WHERE x = ?2 -- it's",
            "PRAGMA user_version = ?; SELECT [order id] FROM t WHERE x = ?2 -- it's",
        ),
    ];
    for (dialect, sql, want) in cases {
        assert_eq!(sanitize(sql, *dialect), *want, "{dialect:?}: {sql}");
    }
}
