//! SQL text without its literals: a dialect-aware scanner that replaces every literal with `?`.

/// The SQL dialect of a connection: which quotes start literals, which start identifiers,
/// which comments exist. See [`sanitize`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Dialect {
    /// PostgreSQL (and the default for a system the scanner does not know).
    Postgres,
    /// MySQL and MariaDB in their default SQL mode.
    MySql,
    /// SQLite.
    Sqlite,
}

impl Dialect {
    /// The dialect of a `db.system` name: `postgresql`/`postgres`, `mysql`/`mariadb`,
    /// `sqlite`; anything else reads as PostgreSQL (standard SQL quoting).
    ///
    /// ```
    /// use osprofiler_core::db::Dialect;
    /// assert_eq!(Dialect::of_system("mariadb"), Dialect::MySql);
    /// ```
    pub fn of_system(system: &str) -> Dialect {
        super::DbSystem::parse(system).map_or(Dialect::Postgres, super::DbSystem::dialect)
    }
}

/// What the byte at a token's start begins.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Class {
    /// Nothing special: copied.
    Plain,
    /// A letter, `_` or a non-ASCII byte: an identifier or keyword (or a literal's prefix).
    Word,
    Digit,
    Quote,
    DoubleQuote,
    Backtick,
    Bracket,
    Dash,
    Slash,
    Hash,
    Dollar,
    Dot,
    Question,
    Percent,
    Colon,
    At,
}

const CLASSES: [Class; 256] = {
    let mut t = [Class::Plain; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        t[i] = if b.is_ascii_alphabetic() || b == b'_' || b >= 0x80 {
            Class::Word
        } else if b.is_ascii_digit() {
            Class::Digit
        } else {
            match b {
                b'\'' => Class::Quote,
                b'"' => Class::DoubleQuote,
                b'`' => Class::Backtick,
                b'[' => Class::Bracket,
                b'-' => Class::Dash,
                b'/' => Class::Slash,
                b'#' => Class::Hash,
                b'$' => Class::Dollar,
                b'.' => Class::Dot,
                b'?' => Class::Question,
                b'%' => Class::Percent,
                b':' => Class::Colon,
                b'@' => Class::At,
                _ => Class::Plain,
            }
        };
        i += 1;
    }
    t
};

/// Whether each byte continues an identifier or keyword (`$` does in PostgreSQL and MySQL).
const WORD: [bool; 256] = {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        t[i] = b.is_ascii_alphanumeric() || b == b'_' || b == b'$' || b >= 0x80;
        i += 1;
    }
    t
};

#[inline]
fn word_byte(b: u8) -> bool {
    WORD[usize::from(b)]
}

/// `sql` with every literal replaced by `?`.
///
/// A statement run without bound values (raw SQL, `batch_execute`, `simple_query`,
/// `sql_query`, a query with no binds) may carry data inline: passwords, e-mail addresses,
/// tokens. [`sanitize`] replaces each literal with `?` and leaves every other byte as it was.
///
/// | dialect | literals replaced | kept byte for byte |
/// |---|---|---|
/// | [`Dialect::Postgres`] | `'…'` (`''` inside; `\` is a plain character, as with `standard_conforming_strings = on`, the default since 9.1), `E'…'` (backslash escapes), `N'…'`, `U&'…'`, `X'…'`, `B'…'`, `$$…$$`, `$tag$…$tag$`, numbers (`42`, `1.5e-3`, `0x1F`, `1_000`) | `"identifiers"`, `U&"…"`, keywords, `$1` placeholders, `--` comments, nested `/* /* */ */` comments |
/// | [`Dialect::MySql`] | `'…'` and `"…"` (default mode: both are strings; `\` escapes and doubled quotes), `N'…'`, `X'…'`, `B'…'`, `_charset'…'`, numbers, `0x…`, `0b…` | `` `identifiers` ``, keywords, `?` placeholders, `#` and `-- ` comments, `/* */` comments |
/// | [`Dialect::Sqlite`] | `'…'` (`''` inside, no escapes), `X'…'`, numbers, `0x…` | `"identifiers"`, `` `identifiers` ``, `[identifiers]`, keywords, `?`, `?NNN`, `:name`, `@name`, `$name`, `--` and `/* */` comments |
///
/// Quotes inside comments and comment markers inside literals are what they are in the
/// database: text. A literal that never ends is replaced up to the end of the statement, and so
/// is a quoted identifier that never ends (the text after it cannot be told apart from data).
///
/// What the scanner cannot know: a connection that changed the server's defaults —
/// PostgreSQL's `standard_conforming_strings = off`, MySQL's `ANSI_QUOTES` (then `"…"` is an
/// identifier and is replaced needlessly) or `NO_BACKSLASH_ESCAPES` — and SQLite's fallback of
/// reading a `"…"` that names no column as a string (it is kept, as an identifier). MySQL's
/// executable comments (`/*! … */`) are kept as comments.
///
/// ```
/// use osprofiler_core::db::{Dialect, sanitize};
/// assert_eq!(
///     sanitize("SELECT 1 AS one -- don't log\n, 'hunter2' AS pw", Dialect::Postgres),
///     "SELECT ? AS one -- don't log\n, ? AS pw"
/// );
/// assert_eq!(
///     sanitize(r"SELECT 'C:\' AS path, 'hunter3' AS pw", Dialect::Postgres),
///     "SELECT ? AS path, ? AS pw"
/// );
/// assert_eq!(
///     sanitize(r#"SELECT "it\"s", `col` FROM t # it's"#, Dialect::MySql),
///     "SELECT ?, `col` FROM t # it's"
/// );
/// ```
pub fn sanitize(sql: &str, dialect: Dialect) -> String {
    let mut out = String::with_capacity(sql.len());
    sanitize_into(sql, dialect, &mut out);
    out
}

/// [`sanitize`] appending to `out`.
pub fn sanitize_into(sql: &str, dialect: Dialect, out: &mut String) {
    // `sql[copied..]` is kept text not yet appended; every token boundary is at an ASCII byte,
    // so the slices are on character boundaries.
    let mut copied = 0;
    scan(sql, dialect, |token, start, end| {
        if token == Token::Literal {
            out.push_str(&sql[copied..start]);
            out.push('?');
            copied = end;
        }
    });
    out.push_str(&sql[copied..]);
}

/// What a token of [`scan`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Token {
    /// Punctuation, operators and whitespace (ASCII only): a run of them, or one byte.
    Plain,
    /// An identifier or keyword (unquoted).
    Word,
    /// A literal: a string (any quoting or prefix), a number, a dollar-quoted body; also a
    /// quoted identifier that never closes (its text cannot be told apart from data).
    Literal,
    /// A quoted identifier (`"…"`, `` `…` ``, `[…]`).
    Ident,
    /// A comment (`--`, `#`, `/* */`), without the newline ending a line comment.
    Comment,
    /// A bound-value placeholder: `$1`, `?`, `?NNN`, `%s`, `%(name)s`, `:name`, and SQLite's
    /// `@name` and `$name`.
    Placeholder,
}

/// Splits `sql` into tokens, calling `emit(token, start, end)` for each in order; the tokens
/// cover every byte, and every boundary is at an ASCII byte.
#[inline]
pub(crate) fn scan(sql: &str, dialect: Dialect, mut emit: impl FnMut(Token, usize, usize)) {
    let b = sql.as_bytes();
    let n = b.len();
    let mut i = 0;
    while i < n {
        let c = b[i];
        let start = i;
        let token = match CLASSES[usize::from(c)] {
            Class::Plain => {
                i += 1;
                while i < n && CLASSES[usize::from(b[i])] == Class::Plain {
                    i += 1;
                }
                Token::Plain
            }
            Class::Word => {
                i += 1;
                while i < n && word_byte(b[i]) {
                    i += 1;
                }
                match prefixed_literal(b, start, i, dialect) {
                    Some(end) => {
                        i = end;
                        Token::Literal
                    }
                    None => Token::Word,
                }
            }
            Class::Digit => {
                i = number_end(b, i);
                Token::Literal
            }
            Class::Dot => {
                if b.get(i + 1).is_some_and(u8::is_ascii_digit) {
                    i = number_end(b, i);
                    Token::Literal
                } else {
                    i += 1;
                    Token::Plain
                }
            }
            Class::Quote => {
                i = string_end(b, i + 1, b'\'', dialect == Dialect::MySql);
                Token::Literal
            }
            Class::DoubleQuote => {
                if dialect == Dialect::MySql {
                    i = string_end(b, i + 1, b'"', true);
                    Token::Literal
                } else {
                    identifier(b, &mut i, b'"')
                }
            }
            Class::Backtick => identifier(b, &mut i, b'`'),
            Class::Bracket => {
                if dialect == Dialect::Sqlite {
                    identifier(b, &mut i, b']')
                } else {
                    i += 1;
                    Token::Plain
                }
            }
            Class::Dash => {
                if b.get(i + 1) == Some(&b'-')
                    && (dialect != Dialect::MySql
                        || b.get(i + 2)
                            .is_none_or(|&x| x.is_ascii_whitespace() || x < 0x20))
                {
                    i = line_end(b, i + 2);
                    Token::Comment
                } else {
                    i += 1;
                    Token::Plain
                }
            }
            Class::Hash => {
                i += 1;
                if dialect == Dialect::MySql {
                    i = line_end(b, i);
                    Token::Comment
                } else {
                    Token::Plain
                }
            }
            Class::Slash => {
                if b.get(i + 1) == Some(&b'*') {
                    i = block_comment_end(b, i + 2, dialect == Dialect::Postgres);
                    Token::Comment
                } else {
                    i += 1;
                    Token::Plain
                }
            }
            Class::Dollar => {
                if dialect == Dialect::Postgres {
                    match dollar(b, i) {
                        Dollar::Placeholder(end) => {
                            i = end;
                            Token::Placeholder
                        }
                        Dollar::Literal(end) => {
                            i = end;
                            Token::Literal
                        }
                        Dollar::Plain => {
                            i += 1;
                            Token::Plain
                        }
                    }
                } else {
                    // SQLite's `$name` parameter, MySQL's `$` in identifiers.
                    i += 1;
                    while i < n && word_byte(b[i]) {
                        i += 1;
                    }
                    if dialect == Dialect::Sqlite && i > start + 1 {
                        Token::Placeholder
                    } else {
                        Token::Word
                    }
                }
            }
            Class::Question => {
                // `?`, and SQLite's numbered `?NNN`: a placeholder, digits included.
                i += 1;
                if dialect == Dialect::Sqlite {
                    while i < n && b[i].is_ascii_digit() {
                        i += 1;
                    }
                }
                Token::Placeholder
            }
            Class::Percent => match percent_placeholder(b, i) {
                Some(end) => {
                    i = end;
                    Token::Placeholder
                }
                None => {
                    i += 1;
                    Token::Plain
                }
            },
            Class::Colon => {
                i += 1;
                if b.get(i) == Some(&b':') {
                    // A PostgreSQL cast `::`.
                    i += 1;
                    Token::Plain
                } else if b
                    .get(i)
                    .is_some_and(|&x| x.is_ascii_alphabetic() || x == b'_')
                {
                    // `:name`.
                    while i < n && word_byte(b[i]) {
                        i += 1;
                    }
                    Token::Placeholder
                } else {
                    Token::Plain
                }
            }
            Class::At => {
                i += 1;
                if dialect == Dialect::Sqlite
                    && b.get(i)
                        .is_some_and(|&x| x.is_ascii_alphabetic() || x == b'_')
                {
                    while i < n && word_byte(b[i]) {
                        i += 1;
                    }
                    Token::Placeholder
                } else {
                    Token::Plain
                }
            }
        };
        emit(token, start, i);
    }
}

/// The end of a Python DB-API placeholder at `i` (`%s`, `%(name)s`), if one starts there.
#[inline]
fn percent_placeholder(b: &[u8], i: usize) -> Option<usize> {
    match b.get(i + 1)? {
        b's' => Some(i + 2),
        b'(' => {
            let close = i + 2 + memchr::memchr(b')', &b[i + 2..])?;
            let name = &b[i + 2..close];
            (!name.is_empty()
                && name.iter().all(|&x| word_byte(x))
                && b.get(close + 1) == Some(&b's'))
            .then_some(close + 2)
        }
        _ => None,
    }
}

/// The end of a literal whose prefix word is `b[start..word_end]` (`E'…'`, `X'…'`, `U&'…'`,
/// MySQL's `_utf8mb4'…'`), or `None` when the word is not a literal's prefix.
#[inline]
fn prefixed_literal(b: &[u8], start: usize, word_end: usize, dialect: Dialect) -> Option<usize> {
    let word = &b[start..word_end];
    let next = b.get(word_end).copied();
    if next == Some(b'&') && dialect == Dialect::Postgres && word.eq_ignore_ascii_case(b"u") {
        // U&'…': standard quoting (its backslash escapes cannot escape a quote).
        return (b.get(word_end + 1) == Some(&b'\''))
            .then(|| string_end(b, word_end + 2, b'\'', false));
    }
    let quote = next?;
    if quote != b'\'' && !(quote == b'"' && dialect == Dialect::MySql) {
        return None;
    }
    let backslash = match (dialect, word) {
        (Dialect::Postgres, [b'e' | b'E']) => true,
        (Dialect::Postgres, [b'n' | b'N' | b'x' | b'X' | b'b' | b'B']) => false,
        (Dialect::MySql, [b'n' | b'N']) => true,
        (Dialect::MySql, [b'x' | b'X' | b'b' | b'B']) => false,
        // A character set introducer: `_utf8mb4'…'`, `_binary"…"`.
        (Dialect::MySql, [b'_', ..]) => true,
        (Dialect::Sqlite, [b'x' | b'X']) => false,
        _ => return None,
    };
    Some(string_end(b, word_end + 1, quote, backslash))
}

/// Just past the quote closing a literal whose text starts at `i`: a doubled quote is part of
/// the text, and so is any character after a backslash when `backslash`. The end of the input
/// when it never closes.
#[inline]
fn string_end(b: &[u8], mut i: usize, quote: u8, backslash: bool) -> usize {
    while i < b.len() {
        let next = if backslash {
            memchr::memchr2(quote, b'\\', &b[i..])
        } else {
            memchr::memchr(quote, &b[i..])
        };
        let Some(p) = next else {
            return b.len();
        };
        i += p;
        // A backslash escapes the next byte; a doubled quote is one quote of the text.
        if b[i] == b'\\' || b.get(i + 1) == Some(&quote) {
            i += 2;
        } else {
            return i + 1;
        }
    }
    b.len()
}

/// Skips a quoted identifier opened at `*i` (doubled closing quotes inside), leaving `*i`
/// past it: [`Token::Ident`], or [`Token::Literal`] up to the end when it never closes.
#[inline]
fn identifier(b: &[u8], i: &mut usize, close: u8) -> Token {
    let mut j = *i + 1;
    while j < b.len() {
        if b[j] == close {
            if close != b']' && b.get(j + 1) == Some(&close) {
                j += 2;
                continue;
            }
            *i = j + 1;
            return Token::Ident;
        }
        j += 1;
    }
    *i = b.len();
    Token::Literal
}

/// The end of a numeric literal starting at `i`: digits, `.`, `_`, letters (`0x1F`, `1e5`),
/// and a sign right after a decimal exponent's `e`.
#[inline]
fn number_end(b: &[u8], start: usize) -> usize {
    let radix_prefix = b[start] == b'0'
        && matches!(
            b.get(start + 1),
            Some(b'x' | b'X' | b'b' | b'B' | b'o' | b'O')
        );
    let mut i = start;
    while i < b.len() {
        let c = b[i];
        if c.is_ascii_alphanumeric() || c == b'_' || c == b'.' {
            i += 1;
        } else if (c == b'+' || c == b'-')
            && !radix_prefix
            && matches!(b[i - 1], b'e' | b'E')
            && b.get(i + 1).is_some_and(u8::is_ascii_digit)
        {
            i += 2;
        } else {
            break;
        }
    }
    i
}

/// Index of the newline ending a line comment (kept with the text after it), or the end.
#[inline]
fn line_end(b: &[u8], i: usize) -> usize {
    let i = i.min(b.len());
    memchr::memchr(b'\n', &b[i..]).map_or(b.len(), |p| i + p)
}

/// Just past the `*/` closing a block comment whose text starts at `i` (PostgreSQL's nest).
#[inline]
fn block_comment_end(b: &[u8], mut i: usize, nested: bool) -> usize {
    let mut depth = 1usize;
    while i + 1 < b.len() {
        match (b[i], b[i + 1]) {
            (b'*', b'/') => {
                depth -= 1;
                i += 2;
                if depth == 0 {
                    return i;
                }
            }
            (b'/', b'*') if nested => {
                depth += 1;
                i += 2;
            }
            _ => i += 1,
        }
    }
    b.len()
}

enum Dollar {
    /// `$1`: a placeholder ending here.
    Placeholder(usize),
    /// `$$…$$` or `$tag$…$tag$`, ending here.
    Literal(usize),
    /// A `$` of something else (an operator, a malformed tag).
    Plain,
}

/// What a PostgreSQL `$` at `i` starts.
fn dollar(b: &[u8], i: usize) -> Dollar {
    let mut j = i + 1;
    if b.get(j).is_some_and(u8::is_ascii_digit) {
        while j < b.len() && b[j].is_ascii_digit() {
            j += 1;
        }
        return Dollar::Placeholder(j);
    }
    // A tag: an identifier without `$` (not starting with a digit), or nothing.
    while j < b.len() && (b[j].is_ascii_alphanumeric() || b[j] == b'_' || b[j] >= 0x80) {
        j += 1;
    }
    if b.get(j) != Some(&b'$') {
        return Dollar::Plain;
    }
    let tag = &b[i..=j];
    let body = j + 1;
    match b[body..].windows(tag.len()).position(|w| w == tag) {
        Some(p) => Dollar::Literal(body + p + tag.len()),
        None => Dollar::Literal(b.len()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Dialect::{MySql, Postgres, Sqlite};

    #[track_caller]
    fn check(dialect: Dialect, cases: &[(&str, &str)]) {
        for (sql, want) in cases {
            assert_eq!(sanitize(sql, dialect), *want, "{dialect:?}: {sql}");
        }
    }

    #[test]
    fn postgres() {
        check(
            Postgres,
            &[
                ("SELECT 1", "SELECT ?"),
                (
                    "SELECT * FROM t1 WHERE id = 10 AND name = 'bob'",
                    "SELECT * FROM t1 WHERE id = ? AND name = ?",
                ),
                ("SELECT a-1, b - 2, -5, (-2)", "SELECT a-?, b - ?, -?, (-?)"),
                (
                    "SELECT 1 AS one -- don't log\n, 'hunter2' AS pw",
                    "SELECT ? AS one -- don't log\n, ? AS pw",
                ),
                (
                    r"SELECT 'C:\' AS path, 'hunter3' AS pw",
                    "SELECT ? AS path, ? AS pw",
                ),
                (
                    "/* it's */ SELECT 'hunter4' AS pw",
                    "/* it's */ SELECT ? AS pw",
                ),
                (
                    "/* a /* nested 'x' */ still comment 'y' */ SELECT 'z'",
                    "/* a /* nested 'x' */ still comment 'y' */ SELECT ?",
                ),
                (
                    r"UPDATE t SET s = E'a\'b', d = $$x'y$$, e = $q$ $$ 'x' $q$ WHERE c = $1",
                    "UPDATE t SET s = ?, d = ?, e = ? WHERE c = $1",
                ),
                (
                    r#"SELECT "col 1", "a""b" FROM "T" WHERE x IN (1, 2.5, 3e-4, .5, 0x1F, 1_000)"#,
                    r#"SELECT "col 1", "a""b" FROM "T" WHERE x IN (?, ?, ?, ?, ?, ?)"#,
                ),
                (
                    "INSERT INTO t VALUES ('a''b', 'é ü', X'DEAD', B'101', N'n', U&'d\\0061t')",
                    "INSERT INTO t VALUES (?, ?, ?, ?, ?, ?)",
                ),
                (
                    "SELECT 'x'::text, a$b, $1::int4",
                    "SELECT ?::text, a$b, $1::int4",
                ),
                ("SELECT 'unterminated", "SELECT ?"),
                ("SELECT $a$ never closed", "SELECT ?"),
                ("SELECT \"never closed", "SELECT ?"),
                ("SELECT 'é' || ?", "SELECT ? || ?"),
                ("SELECT \"--\" FROM t -- 'x", "SELECT \"--\" FROM t -- 'x"),
                ("SELECT arr[1] FROM t", "SELECT arr[?] FROM t"),
                ("SELECT # 'x'", "SELECT # ?"),
            ],
        );
    }

    #[test]
    fn mysql() {
        check(
            MySql,
            &[
                (
                    r#"SELECT 'it\'s', "dq\"s", 'a''b', "c""d" FROM `t``x`"#,
                    "SELECT ?, ?, ?, ? FROM `t``x`",
                ),
                (
                    r"SELECT 'C:\\' AS path, 'pw' AS pw",
                    "SELECT ? AS path, ? AS pw",
                ),
                ("SELECT 1 # it's\n, 'x'", "SELECT ? # it's\n, ?"),
                ("SELECT 1 -- it's\n, 'x'", "SELECT ? -- it's\n, ?"),
                ("SELECT 5--3", "SELECT ?--?"),
                (
                    "/* it's */ SELECT _utf8mb4'x', N'y', X'0F', 0x0F, b'1'",
                    "/* it's */ SELECT ?, ?, ?, ?, ?",
                ),
                ("SELECT ? FROM t WHERE a = ?", "SELECT ? FROM t WHERE a = ?"),
                ("SELECT /* /* */ 'x'", "SELECT /* /* */ ?"),
            ],
        );
    }

    #[test]
    fn sqlite() {
        check(
            Sqlite,
            &[
                (r"SELECT 'C:\' AS p, 'pw'", "SELECT ? AS p, ?"),
                (
                    r#"SELECT "a""b", `c`, [d e] FROM t WHERE x = ?1 AND y = :y AND z = @z AND w = $w"#,
                    r#"SELECT "a""b", `c`, [d e] FROM t WHERE x = ?1 AND y = :y AND z = @z AND w = $w"#,
                ),
                (
                    "INSERT INTO t VALUES (X'FF', 0x10, 1e10)",
                    "INSERT INTO t VALUES (?, ?, ?)",
                ),
                ("SELECT 1 -- it's\n", "SELECT ? -- it's\n"),
                ("SELECT 1 # x", "SELECT ? # x"),
            ],
        );
    }
}
