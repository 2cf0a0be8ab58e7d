//! The fingerprint normalizer against generated statements. A statement's shape (its kind,
//! table, columns and operators) is rendered twice with everything a shape does not fix chosen
//! independently: literal values of every quoting style (quotes, escapes, unicode, numbers
//! negative, decimal, with exponents, hex) or placeholders of every style, `IN` lists and
//! multi-row `VALUES` of any length, whitespace and comments, keyword case. Both renderings
//! must normalize to the same text and id, and no literal may survive; different shapes give
//! different ids.

use osprofiler_core::db::Dialect;
use osprofiler_core::db::fingerprint::{fingerprint, fingerprint_id, normalize};
use proptest::prelude::*;

/// What a statement is, apart from its values and layout.
#[derive(Debug, Clone)]
struct Shape {
    kind: u8,
    table: String,
    cols: [String; 3],
    op: &'static str,
    width: usize,
}

/// How a shape is written: pools the renderer draws from, in turn.
#[derive(Debug, Clone)]
struct Writing {
    values: Vec<String>,
    seps: Vec<&'static str>,
    upper: Vec<u8>,
    in_len: usize,
    rows: usize,
}

/// `K9` and ten characters that no kept token contains (identifiers are lowercase letters,
/// keywords uppercase letters without digits).
fn secret() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop::sample::select(b"ABCDEFGHJKLMNPQRSTUVWXYZ0123456789".to_vec()),
        10,
    )
    .prop_map(|b| format!("K9{}", String::from_utf8(b).unwrap()))
}

fn ident() -> impl Strategy<Value = String> {
    "[a-z]{1,6}".prop_map(|s| format!("c_{s}"))
}

/// A string literal of `dialect` with a secret and awkward fragments inside.
fn string(dialect: Dialect) -> BoxedStrategy<String> {
    let frags: &'static [&'static str] = match dialect {
        Dialect::Postgres => &["''", "é", "日本", " -- ", "/*", "\\", "\"", "$"],
        Dialect::MySql => &["''", "\\'", "\\\\", "é", "日本", " # ", "/*", "\""],
        _ => &["''", "é", "日本", " -- ", "/*", "\\", "\""],
    };
    let styles: &'static [(&'static str, &'static str)] = match dialect {
        Dialect::Postgres => &[
            ("'", "'"),
            ("E'\\'", "'"),
            ("$$", "$$"),
            ("$q$", "$q$"),
            ("N'", "'"),
            ("U&'", "'"),
        ],
        Dialect::MySql => &[("'", "'"), ("\"", "\""), ("_utf8mb4'", "'"), ("N'", "'")],
        _ => &[("'", "'")],
    };
    (
        secret(),
        prop::collection::vec(prop::sample::select(frags), 0..4),
        prop::sample::select(styles),
    )
        .prop_map(|(secret, frags, (open, close))| {
            // Fragments that would end a dollar quote or an E'' escape never go there.
            let frags: String = frags
                .into_iter()
                .filter(|f| !(open.starts_with('$') && f.contains('$')))
                .filter(|f| !(open.starts_with("E'") && f.contains('\\')))
                .filter(|f| !(close == "\"" && f.contains('"')))
                .collect();
            format!("{open}{frags}{secret}{frags}{close}")
        })
        .boxed()
}

/// A number in one of the forms SQL writes them.
fn number() -> impl Strategy<Value = String> {
    (
        1u32..1_000_000,
        0u32..1000,
        -20i32..20,
        0usize..6,
        any::<bool>(),
    )
        .prop_map(|(i, f, e, form, neg)| {
            let s = match form {
                0 => format!("{i}"),
                1 => format!("{i}.{f}"),
                2 => format!("{i}e{e}"),
                3 => format!("{i}.{f}E{e}"),
                4 => format!(".{f}"),
                _ => format!("0x{i:X}"),
            };
            if neg { format!("-{s}") } else { s }
        })
}

fn placeholder(dialect: Dialect) -> BoxedStrategy<String> {
    let mut forms = vec![
        Just("%s".to_owned()).boxed(),
        Just("%(p_x)s".to_owned()).boxed(),
        Just(":p_x".to_owned()).boxed(),
    ];
    match dialect {
        Dialect::Postgres => forms.push((1u32..40).prop_map(|n| format!("${n}")).boxed()),
        Dialect::MySql => forms.push(Just("?".to_owned()).boxed()),
        _ => {
            forms.push(Just("?".to_owned()).boxed());
            forms.push((1u32..40).prop_map(|n| format!("?{n}")).boxed());
            forms.push(Just("@p_x".to_owned()).boxed());
            forms.push(Just("$p_x".to_owned()).boxed());
        }
    }
    prop::strategy::Union::new(forms).boxed()
}

fn value(dialect: Dialect) -> BoxedStrategy<String> {
    prop_oneof![string(dialect), number(), placeholder(dialect)].boxed()
}

fn separators(dialect: Dialect) -> BoxedStrategy<Vec<&'static str>> {
    let seps: &'static [&'static str] = match dialect {
        Dialect::MySql => &[" ", "  ", "\n\t", " /* 'c' */ ", " -- it's\n", " # \"x\n"],
        Dialect::Postgres => &[
            " ",
            "  ",
            "\n\t",
            " /* 'c' */ ",
            " -- it's\n",
            "/* a /* b */ */ ",
        ],
        _ => &[" ", "  ", "\n\t", "/* 'c' */ ", " -- it's\n"],
    };
    prop::collection::vec(prop::sample::select(seps), 64).boxed()
}

fn shape() -> impl Strategy<Value = Shape> {
    (
        0u8..3,
        ident(),
        [ident(), ident(), ident()],
        prop::sample::select(vec!["=", "<", ">=", "<>"]),
        1usize..4,
    )
        .prop_map(|(kind, table, cols, op, width)| Shape {
            kind,
            table,
            cols,
            op,
            width,
        })
}

fn writing(dialect: Dialect) -> impl Strategy<Value = Writing> {
    (
        prop::collection::vec(value(dialect), 40),
        separators(dialect),
        prop::collection::vec(0u8..3, 32),
        1usize..8,
        1usize..5,
    )
        .prop_map(|(values, seps, upper, in_len, rows)| Writing {
            values,
            seps,
            upper,
            in_len,
            rows,
        })
}

/// Renders `shape` as `w` says.
fn render(shape: &Shape, w: &Writing) -> String {
    let (mut v, mut s, mut u) = (0, 0, 0);
    let mut out = String::new();
    let mut val = |out: &mut String| {
        out.push_str(&w.values[v % w.values.len()]);
        v += 1;
    };
    let mut sep = |out: &mut String| {
        out.push_str(w.seps[s % w.seps.len()]);
        s += 1;
    };
    let mut kw = |out: &mut String, k: &str| {
        out.push_str(&match w.upper[u % w.upper.len()] {
            0 => k.to_ascii_uppercase(),
            1 => k.to_ascii_lowercase(),
            _ => k[..1].to_ascii_uppercase() + &k[1..].to_ascii_lowercase(),
        });
        u += 1;
    };
    let [a, b, c] = &shape.cols;
    let t = &shape.table;
    match shape.kind {
        0 => {
            kw(&mut out, "select");
            sep(&mut out);
            out.push_str(&format!("{a}, {b}"));
            sep(&mut out);
            kw(&mut out, "from");
            sep(&mut out);
            out.push_str(t);
            sep(&mut out);
            kw(&mut out, "where");
            sep(&mut out);
            out.push_str(a);
            sep(&mut out);
            out.push_str(shape.op);
            sep(&mut out);
            val(&mut out);
            sep(&mut out);
            kw(&mut out, "and");
            sep(&mut out);
            out.push_str(b);
            sep(&mut out);
            kw(&mut out, "in");
            sep(&mut out);
            out.push('(');
            for i in 0..w.in_len {
                if i > 0 {
                    out.push(',');
                    sep(&mut out);
                }
                val(&mut out);
            }
            out.push(')');
            sep(&mut out);
            kw(&mut out, "limit");
            sep(&mut out);
            val(&mut out);
        }
        1 => {
            kw(&mut out, "insert");
            sep(&mut out);
            kw(&mut out, "into");
            sep(&mut out);
            out.push_str(&format!("{t} ({a}, {b}, {c})"));
            sep(&mut out);
            kw(&mut out, "values");
            sep(&mut out);
            for r in 0..w.rows {
                if r > 0 {
                    out.push(',');
                    sep(&mut out);
                }
                out.push('(');
                for i in 0..shape.width {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    val(&mut out);
                }
                out.push(')');
            }
        }
        _ => {
            kw(&mut out, "update");
            sep(&mut out);
            out.push_str(t);
            sep(&mut out);
            kw(&mut out, "set");
            sep(&mut out);
            out.push_str(&format!("{a} = "));
            val(&mut out);
            sep(&mut out);
            kw(&mut out, "where");
            sep(&mut out);
            out.push_str(c);
            sep(&mut out);
            out.push_str(shape.op);
            sep(&mut out);
            val(&mut out);
        }
    }
    sep(&mut out);
    out
}

fn dialect() -> impl Strategy<Value = Dialect> {
    prop::sample::select(vec![Dialect::Postgres, Dialect::MySql, Dialect::Sqlite])
}

fn case() -> impl Strategy<Value = (Dialect, Shape, Writing, Writing)> {
    (dialect(), shape()).prop_flat_map(|(d, s)| (Just(d), Just(s), writing(d), writing(d)))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn equal_shapes_equal_ids((dialect, shape, w1, w2) in case()) {
        let (s1, s2) = (render(&shape, &w1), render(&shape, &w2));
        let (n1, n2) = (normalize(&s1, dialect), normalize(&s2, dialect));
        prop_assert_eq!(&n1, &n2, "{:?}\n{}\n{}", dialect, s1, s2);
        let (f1, f2) = (fingerprint(&s1, dialect), fingerprint(&s2, dialect));
        prop_assert_eq!(f1.id, f2.id);
        prop_assert_eq!(f1.id, fingerprint_id(&n1));
        prop_assert_eq!(&*f1.text, n1.as_str());
        // Idempotent: the shape of a shape is itself.
        prop_assert_eq!(normalize(&n1, dialect), n1.clone());
    }

    #[test]
    fn no_literal_survives((dialect, shape, w, _w) in case()) {
        let sql = render(&shape, &w);
        let n = normalize(&sql, dialect);
        prop_assert!(!n.contains("K9"), "a string survived: {}\n{}", sql, n);
        prop_assert!(!n.bytes().any(|b| b.is_ascii_digit()), "a number survived: {}\n{}", sql, n);
        prop_assert!(!n.contains('\''), "{}", n);
        prop_assert!(!n.contains("é") && !n.contains("日本"), "{}", n);
    }

    #[test]
    fn different_tables_differ((dialect, shape, w) in (dialect(), shape()).prop_flat_map(|(d, s)| (Just(d), Just(s), writing(d)))) {
        let mut other = shape.clone();
        other.table.push('z');
        prop_assert_ne!(
            fingerprint(&render(&shape, &w), dialect).id,
            fingerprint(&render(&other, &w), dialect).id
        );
    }
}

#[test]
fn different_shapes_differ() {
    let shapes = [
        "SELECT a FROM t WHERE id = 1",
        "SELECT a FROM t WHERE id < 1",
        "SELECT a FROM t WHERE id = 1 OR id = 2",
        "SELECT a FROM t WHERE id IN (SELECT id FROM u)",
        "SELECT a FROM t WHERE id IN (1)",
        "SELECT a, b FROM t WHERE id = 1",
        "SELECT a FROM t WHERE id = 1 FOR UPDATE",
        "SELECT a FROM t WHERE id IS NULL",
        "SELECT a FROM t WHERE id IS NOT NULL",
        "INSERT INTO t (a) VALUES (1)",
        "INSERT INTO t (a, b) VALUES (1, 2)",
        "INSERT INTO u (a) VALUES (1)",
    ];
    let mut ids: Vec<u64> = shapes
        .iter()
        .map(|s| fingerprint(s, Dialect::Postgres).id)
        .collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), shapes.len());
}
