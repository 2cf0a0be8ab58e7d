//! Bound parameters as values, for `db.params`.
//!
//! sqlx encodes PostgreSQL and MySQL arguments to the wire format as they are bound, and its
//! argument types expose nothing but `Debug` (the types and the encoded bytes). This turns that
//! text back into values — `[7, "alice", null, true, 1.5, …]` — for the common types: integers,
//! floats, booleans, text, UUIDs, byte strings (as `\x…` hex, like PostgreSQL's `bytea`
//! output). A type it does not know is shown as `<type: \x…>`; text it cannot parse (a future
//! sqlx) is kept as sqlx wrote it. SQLite's arguments keep their values and are left as they
//! are. Only ever called with `trace_sql_params` on.

use serde_json::Value;

/// `db.params` text for sqlx's `Debug` of bound arguments.
pub(crate) fn readable(debug: String) -> String {
    let parsed = if debug.starts_with("PgArguments {") {
        postgres(&debug)
    } else if debug.starts_with("MySqlArguments {") {
        mysql(&debug)
    } else {
        None
    };
    match parsed {
        Some(values) => osprofiler_core::pyjson::to_string(&values),
        None => debug,
    }
}

/// The numbers of a `[1, 2, 3]` list that follows `key` in `text`.
fn byte_list(text: &str, key: &str) -> Option<Vec<u8>> {
    let start = text.find(key)? + key.len();
    let rest = text[start..].strip_prefix('[')?;
    let body = &rest[..rest.find(']')?];
    if body.trim().is_empty() {
        return Some(Vec::new());
    }
    body.split(',').map(|n| n.trim().parse().ok()).collect()
}

fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(2 + bytes.len() * 2);
    s.push_str("\\x");
    for b in bytes {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

fn unknown(ty: &str, bytes: &[u8]) -> Value {
    Value::String(format!("<{ty}: {}>", hex(bytes)))
}

/// `PgArguments { types: [PgTypeInfo(Int4), …], buffer: PgArgumentBuffer { buffer: [...], … } }`:
/// each argument is a big-endian i32 length (-1 for NULL) and that many bytes (binary format).
fn postgres(debug: &str) -> Option<Vec<Value>> {
    let types_start = debug.find("types: [")? + "types: [".len();
    let types_end = types_start + debug[types_start..].find("], buffer:")?;
    let types: Vec<&str> = debug[types_start..types_end]
        .split("PgTypeInfo(")
        .filter_map(|t| t.split(')').next())
        .filter(|t| !t.trim().is_empty() && !t.trim().starts_with(','))
        .collect();
    let buf = byte_list(debug, "PgArgumentBuffer { buffer: ")?;
    let mut out = Vec::with_capacity(types.len());
    let mut at = 0usize;
    for ty in types {
        let len = i32::from_be_bytes(buf.get(at..at + 4)?.try_into().ok()?);
        at += 4;
        if len < 0 {
            out.push(Value::Null);
            continue;
        }
        let b = buf.get(at..at + len as usize)?;
        at += len as usize;
        let be = |n: usize| -> Option<[u8; 8]> {
            let mut a = [0u8; 8];
            a[8 - n..].copy_from_slice(b.get(..n)?);
            Some(a)
        };
        out.push(match (ty, b.len()) {
            ("Bool", 1) => Value::Bool(b[0] != 0),
            ("Int2", 2) => (i16::from_be_bytes([b[0], b[1]])).into(),
            ("Int4", 4) => (i32::from_be_bytes(b.try_into().ok()?)).into(),
            ("Int8", 8) => (i64::from_be_bytes(b.try_into().ok()?)).into(),
            ("Oid", 4) => (u32::from_be_bytes(b.try_into().ok()?)).into(),
            ("Float4", 4) => f64::from(f32::from_be_bytes(b.try_into().ok()?)).into(),
            ("Float8", 8) => f64::from_be_bytes(be(8)?).into(),
            ("Text" | "Varchar" | "Bpchar" | "Name" | "Json" | "Unknown", _) => {
                Value::String(String::from_utf8_lossy(b).into_owned())
            }
            ("Jsonb", _) if b.first() == Some(&1) => {
                Value::String(String::from_utf8_lossy(&b[1..]).into_owned())
            }
            ("Uuid", 16) => Value::String(uuid::Uuid::from_slice(b).ok()?.to_string()),
            ("Bytea", _) => Value::String(hex(b)),
            (other, _) => unknown(other, b),
        });
    }
    Some(out)
}

/// `MySqlArguments { values: [...], types: [MySqlTypeInfo { type: Long, flags: … }, …],
/// null_bitmap: NullBitMap { bytes: [...], length: n } }`: the binary protocol's values, NULLs
/// only in the bitmap.
fn mysql(debug: &str) -> Option<Vec<Value>> {
    let values = byte_list(debug, "values: ")?;
    let nulls = byte_list(debug, "NullBitMap { bytes: ")?;
    let mut types: Vec<(&str, bool)> = Vec::new();
    let mut rest = debug;
    while let Some(i) = rest.find("MySqlTypeInfo { type: ") {
        rest = &rest[i + "MySqlTypeInfo { type: ".len()..];
        let ty = &rest[..rest.find(',')?];
        let flags_end = rest.find("collation").unwrap_or(rest.len());
        types.push((ty, rest[..flags_end].contains("UNSIGNED")));
    }
    let mut out = Vec::with_capacity(types.len());
    let mut at = 0usize;
    for (i, (ty, unsigned)) in types.into_iter().enumerate() {
        if nulls.get(i / 8).is_some_and(|b| b & (1 << (i % 8)) != 0) {
            out.push(Value::Null);
            continue;
        }
        let take = |n: usize, at: &mut usize| -> Option<[u8; 8]> {
            let mut a = [0u8; 8];
            a[..n].copy_from_slice(values.get(*at..*at + n)?);
            *at += n;
            Some(a)
        };
        let int = |a: [u8; 8], n: usize| -> Value {
            if unsigned {
                u64::from_le_bytes(a).into()
            } else {
                // Sign-extend from n bytes.
                let shift = 64 - 8 * n as u32;
                ((i64::from_le_bytes(a) << shift) >> shift).into()
            }
        };
        out.push(match ty {
            "Tiny" => int(take(1, &mut at)?, 1),
            "Short" | "Year" => int(take(2, &mut at)?, 2),
            "Long" | "Int24" => int(take(4, &mut at)?, 4),
            "LongLong" => int(take(8, &mut at)?, 8),
            "Float" => {
                let a = take(4, &mut at)?;
                f64::from(f32::from_le_bytes([a[0], a[1], a[2], a[3]])).into()
            }
            "Double" => f64::from_le_bytes(take(8, &mut at)?).into(),
            _ => {
                // Everything else is a length-encoded byte string.
                let first = *values.get(at)?;
                at += 1;
                let len = match first {
                    0xfc => u64::from_le_bytes(take(2, &mut at)?),
                    0xfd => u64::from_le_bytes(take(3, &mut at)?),
                    0xfe => u64::from_le_bytes(take(8, &mut at)?),
                    n => u64::from(n),
                } as usize;
                let b = values.get(at..at + len)?;
                at += len;
                match ty {
                    "VarString" | "String" | "VarChar" | "Enum" | "Set" | "Json" | "NewDecimal"
                    | "Decimal" => Value::String(String::from_utf8_lossy(b).into_owned()),
                    "Blob" | "TinyBlob" | "MediumBlob" | "LongBlob" => match std::str::from_utf8(b)
                    {
                        Ok(s) => Value::String(s.to_owned()),
                        Err(_) => Value::String(hex(b)),
                    },
                    other => unknown(other, b),
                }
            }
        });
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    // What sqlx 0.9 prints for [7i32, "secret-value", None::<i64>, true, 1.5f64,
    // Uuid::nil(), vec![1u8, 2], 42i64] (PostgreSQL) and the same without the last three but
    // 42i64 (MySQL).
    const PG: &str = "PgArguments { types: [PgTypeInfo(Int4), PgTypeInfo(Text), PgTypeInfo(Int8), PgTypeInfo(Bool), PgTypeInfo(Float8), PgTypeInfo(Uuid), PgTypeInfo(Bytea), PgTypeInfo(Int8)], buffer: PgArgumentBuffer { buffer: [0, 0, 0, 4, 0, 0, 0, 7, 0, 0, 0, 12, 115, 101, 99, 114, 101, 116, 45, 118, 97, 108, 117, 101, 255, 255, 255, 255, 0, 0, 0, 1, 1, 0, 0, 0, 8, 63, 248, 0, 0, 0, 0, 0, 0, 0, 0, 0, 16, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 1, 2, 0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 42], count: 8, patches: [], hole_offsets: [], hole_types: [] } }";
    const MY: &str = "MySqlArguments { values: [7, 0, 0, 0, 12, 115, 101, 99, 114, 101, 116, 45, 118, 97, 108, 117, 101, 1, 0, 0, 0, 0, 0, 0, 248, 63, 42, 0, 0, 0, 0, 0, 0, 0], types: [MySqlTypeInfo { type: Long, flags: ColumnFlags(BINARY), collation: Collation(63), max_size: None }, MySqlTypeInfo { type: VarString, flags: ColumnFlags(0x0), collation: Collation(45), max_size: None }, MySqlTypeInfo { type: LongLong, flags: ColumnFlags(BINARY), collation: Collation(63), max_size: None }, MySqlTypeInfo { type: Tiny, flags: ColumnFlags(UNSIGNED | BINARY), collation: Collation(63), max_size: Some(1) }, MySqlTypeInfo { type: Double, flags: ColumnFlags(BINARY), collation: Collation(63), max_size: None }, MySqlTypeInfo { type: LongLong, flags: ColumnFlags(BINARY), collation: Collation(63), max_size: None }], null_bitmap: NullBitMap { bytes: [4], length: 6 } }";

    #[test]
    fn postgres_binary_arguments_become_values() {
        assert_eq!(
            readable(PG.into()),
            r#"[7, "secret-value", null, true, 1.5, "00000000-0000-0000-0000-000000000000", "\\x0102", 42]"#
        );
    }

    #[test]
    fn mysql_binary_arguments_become_values() {
        assert_eq!(
            readable(MY.into()),
            r#"[7, "secret-value", null, 1, 1.5, 42]"#
        );
    }

    #[test]
    fn anything_else_is_kept_as_sqlx_wrote_it() {
        for text in [
            "SqliteArguments { values: [Int(7)] }",
            "PgArguments { types: [PgTypeInfo(Int4)], buffer: PgArgumentBuffer { buffer: [0, 0] } }",
            "MySqlArguments { surprise }",
        ] {
            assert_eq!(readable(text.into()), text);
        }
    }
}
