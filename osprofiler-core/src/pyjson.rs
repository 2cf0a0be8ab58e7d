//! JSON text exactly as Python's `json.dumps` writes it by default.
//!
//! OSProfiler signs and stores JSON produced by `json.dumps(obj)`: items separated by `", "`,
//! keys by `": "`, and every non-ASCII character escaped as `\uXXXX` (`ensure_ascii=True`).
//! Byte-identical output matters for the signed `X-Trace-Info` header and for the Redis
//! collector, whose messages Python reads back.

use serde::Serialize;
use serde_json::Value;
use serde_json::ser::{CharEscape, Formatter};
use std::io;

/// Serializes `value` the way Python's `json.dumps(value)` does.
///
/// ```
/// use osprofiler_core::pyjson;
/// let v = serde_json::json!({"base_id": "\u{ff}", "n": [1, 2]});
/// assert_eq!(pyjson::to_string(&v), r#"{"base_id": "\u00ff", "n": [1, 2]}"#);
/// ```
pub fn to_string<T: Serialize + ?Sized>(value: &T) -> String {
    let mut out = Vec::with_capacity(128);
    write(&mut out, value);
    // The formatter only ever writes ASCII.
    String::from_utf8(out).unwrap_or_default()
}

/// Appends the Python-style JSON text of `value` to `out`.
pub fn write<T: Serialize + ?Sized>(out: &mut Vec<u8>, value: &T) {
    let mut ser = serde_json::Serializer::with_formatter(out, PythonFormatter);
    // Serializing into a Vec cannot fail for the value types used here (no non-string map
    // keys); if a caller passes one anyway the partial text is left as is.
    let _ = value.serialize(&mut ser);
}

/// A [`Formatter`] with Python's default separators and `ensure_ascii` escaping.
#[derive(Debug, Clone, Copy, Default)]
pub struct PythonFormatter;

impl Formatter for PythonFormatter {
    fn begin_array_value<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> io::Result<()> {
        if first { Ok(()) } else { w.write_all(b", ") }
    }

    fn begin_object_key<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> io::Result<()> {
        if first { Ok(()) } else { w.write_all(b", ") }
    }

    fn begin_object_value<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        w.write_all(b": ")
    }

    fn write_string_fragment<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        fragment: &str,
    ) -> io::Result<()> {
        let mut start = 0;
        for (i, ch) in fragment.char_indices() {
            if ch.is_ascii() {
                continue;
            }
            w.write_all(&fragment.as_bytes()[start..i])?;
            let mut units = [0u16; 2];
            for unit in ch.encode_utf16(&mut units) {
                write!(w, "\\u{unit:04x}")?;
            }
            start = i + ch.len_utf8();
        }
        w.write_all(&fragment.as_bytes()[start..])
    }

    fn write_char_escape<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        escape: CharEscape,
    ) -> io::Result<()> {
        let s: &[u8] = match escape {
            CharEscape::Quote => b"\\\"",
            CharEscape::ReverseSolidus => b"\\\\",
            CharEscape::Solidus => b"\\/",
            CharEscape::Backspace => b"\\b",
            CharEscape::FormFeed => b"\\f",
            CharEscape::LineFeed => b"\\n",
            CharEscape::CarriageReturn => b"\\r",
            CharEscape::Tab => b"\\t",
            CharEscape::AsciiControl(byte) => return write!(w, "\\u{byte:04x}"),
        };
        w.write_all(s)
    }
}

/// Serializes `value` the way Python's `json.dumps(value, indent=2, separators=(",", ": "))`
/// does: the layout of `osprofiler trace show --json`.
///
/// ```
/// use osprofiler_core::pyjson;
/// let v = serde_json::json!({"a": [1, {}], "é": []});
/// assert_eq!(pyjson::to_string_pretty(&v), "{\n  \"a\": [\n    1,\n    {}\n  ],\n  \"\\u00e9\": []\n}");
/// ```
pub fn to_string_pretty<T: Serialize + ?Sized>(value: &T) -> String {
    let mut out = Vec::with_capacity(1024);
    let mut ser = serde_json::Serializer::with_formatter(
        &mut out,
        PythonPrettyFormatter(serde_json::ser::PrettyFormatter::with_indent(b"  ")),
    );
    let _ = value.serialize(&mut ser);
    String::from_utf8(out).unwrap_or_default()
}

/// serde_json's indenting layout (the same as Python's with `indent=2`) with Python's
/// `ensure_ascii` escaping.
struct PythonPrettyFormatter<'a>(serde_json::ser::PrettyFormatter<'a>);

macro_rules! delegate {
    ($($name:ident($($arg:ident: $ty:ty),*)),* $(,)?) => {$(
        fn $name<W: ?Sized + io::Write>(&mut self, w: &mut W $(, $arg: $ty)*) -> io::Result<()> {
            self.0.$name(w $(, $arg)*)
        }
    )*};
}

impl Formatter for PythonPrettyFormatter<'_> {
    delegate!(
        begin_array(),
        end_array(),
        begin_array_value(first: bool),
        end_array_value(),
        begin_object(),
        end_object(),
        begin_object_key(first: bool),
        begin_object_value(),
        end_object_value(),
    );

    fn write_string_fragment<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        fragment: &str,
    ) -> io::Result<()> {
        PythonFormatter.write_string_fragment(w, fragment)
    }

    fn write_char_escape<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        escape: CharEscape,
    ) -> io::Result<()> {
        PythonFormatter.write_char_escape(w, escape)
    }
}

/// Nesting levels [`to_string_pretty_sorted`] indents; deeper containers are written on one
/// line. Python's `json.dumps(..., indent=2)` fails with `RecursionError` well before this
/// depth, so wherever Python writes a report the texts are identical; past it, one line keeps
/// the text linear in the trace's size (an indented 100,000-deep trace would take terabytes).
pub const PRETTY_DEPTH_LIMIT: usize = 1000;

/// How [`write_value`] lays out a [`Value`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// `serde_json::to_string`'s text: no spaces, non-ASCII characters as they are.
    Compact,
    /// Python's `json.dumps(v)` (as [`to_string`]).
    Python,
    /// Python's `json.dumps(v, indent=2, separators=(",", ": "), sort_keys=True)`: every
    /// object's keys sorted; nesting deeper than [`PRETTY_DEPTH_LIMIT`] written on one line.
    PythonPrettySorted,
}

/// Appends the JSON text of `value` in `layout` to `out`, without recursion: a report as deep
/// as it is long cannot overflow the stack (serde's serializer recurses once per level).
///
/// ```
/// use osprofiler_core::pyjson::{self, Layout};
/// let v = serde_json::json!({"b": [1, {"é": null}], "a": {}});
/// let mut out = Vec::new();
/// pyjson::write_value(&mut out, &v, Layout::Python);
/// assert_eq!(String::from_utf8(out).unwrap(), pyjson::to_string(&v));
/// ```
pub fn write_value(out: &mut Vec<u8>, value: &Value, layout: Layout) {
    enum Frame<'a> {
        Array(std::slice::Iter<'a, Value>),
        Object(std::vec::IntoIter<(&'a String, &'a Value)>),
    }
    struct Level<'a> {
        frame: Frame<'a>,
        first: bool,
        one_line: bool,
    }
    fn scalar<T: Serialize + ?Sized>(out: &mut Vec<u8>, v: &T, layout: Layout) {
        // Scalars and keys only: serde does not recurse here.
        let _ = match layout {
            Layout::Compact => v.serialize(&mut serde_json::Serializer::new(&mut *out)),
            _ => v.serialize(&mut serde_json::Serializer::with_formatter(
                &mut *out,
                PythonFormatter,
            )),
        };
    }
    let pretty = layout == Layout::PythonPrettySorted;
    let (item_sep, key_sep): (&[u8], &[u8]) = match layout {
        Layout::Compact => (b",", b":"),
        _ => (b", ", b": "),
    };
    let newline = |out: &mut Vec<u8>, depth: usize| {
        out.push(b'\n');
        out.resize(out.len() + 2 * depth, b' ');
    };
    let mut stack: Vec<Level<'_>> = Vec::new();
    let mut next = Some(value);
    loop {
        if let Some(v) = next.take() {
            let one_line = !pretty || stack.len() + 1 > PRETTY_DEPTH_LIMIT;
            match v {
                Value::Array(a) if !a.is_empty() => {
                    out.push(b'[');
                    stack.push(Level {
                        frame: Frame::Array(a.iter()),
                        first: true,
                        one_line,
                    });
                }
                Value::Object(m) if !m.is_empty() => {
                    out.push(b'{');
                    let mut entries: Vec<(&String, &Value)> = m.iter().collect();
                    if pretty {
                        entries.sort_by(|a, b| a.0.cmp(b.0));
                    }
                    stack.push(Level {
                        frame: Frame::Object(entries.into_iter()),
                        first: true,
                        one_line,
                    });
                }
                Value::Array(_) => out.extend_from_slice(b"[]"),
                Value::Object(_) => out.extend_from_slice(b"{}"),
                scalar_value => scalar(out, scalar_value, layout),
            }
        }
        let depth = stack.len();
        let Some(top) = stack.last_mut() else { break };
        let item = match &mut top.frame {
            Frame::Array(it) => it.next().map(|v| (None, v)),
            Frame::Object(it) => it.next().map(|(k, v)| (Some(k), v)),
        };
        match item {
            Some((key, v)) => {
                if top.one_line {
                    if !top.first {
                        out.extend_from_slice(item_sep);
                    }
                } else {
                    if !top.first {
                        out.push(b',');
                    }
                    newline(out, depth);
                }
                top.first = false;
                if let Some(k) = key {
                    scalar(out, k.as_str(), layout);
                    out.extend_from_slice(key_sep);
                }
                next = Some(v);
            }
            None => {
                let close = match top.frame {
                    Frame::Array(_) => b']',
                    Frame::Object(_) => b'}',
                };
                if !top.one_line {
                    newline(out, depth - 1);
                }
                out.push(close);
                stack.pop();
            }
        }
    }
}

/// [`to_string_pretty`] of a [`Value`] with every object's keys sorted, without recursion
/// ([`Layout::PythonPrettySorted`]): the layout of `osprofiler trace show --json`.
///
/// ```
/// use osprofiler_core::pyjson;
/// let v = serde_json::json!({"b": [1, {}], "a": "é"});
/// assert_eq!(pyjson::to_string_pretty_sorted(&v), pyjson::to_string_pretty(&serde_json::json!({"a": "é", "b": [1, {}]})));
/// ```
pub fn to_string_pretty_sorted(value: &Value) -> String {
    let mut out = Vec::with_capacity(1024);
    write_value(&mut out, value, Layout::PythonPrettySorted);
    // Only ASCII is written in this layout.
    String::from_utf8(out).unwrap_or_default()
}

/// Parses JSON text into a [`Value`] at any nesting depth: `serde_json::from_str` stops at 128
/// levels (about 40 points of a saved report); this falls back to an iterative parser then.
///
/// ```
/// let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
/// let v = osprofiler_core::pyjson::from_str_deep(&deep).unwrap();
/// assert!(v.is_array());
/// osprofiler_core::report::drop_deep(v);
/// assert!(osprofiler_core::pyjson::from_str_deep("[1,").is_err());
/// ```
pub fn from_str_deep(text: &str) -> Result<Value, String> {
    match serde_json::from_str::<Value>(text) {
        Ok(v) => Ok(v),
        Err(e) if e.to_string().starts_with("recursion limit exceeded") => parse_iterative(text),
        Err(e) => Err(e.to_string()),
    }
}

/// An explicit-stack JSON parser; scalars are parsed by serde_json (so numbers and strings
/// come out exactly as `serde_json::from_str` gives them).
fn parse_iterative(text: &str) -> Result<Value, String> {
    let mut stack = Vec::new();
    let parsed = parse_with(text, &mut stack);
    // On an error the containers still open may hold deep values: dropped without recursion.
    for open in stack {
        match open {
            Open::Array(items) => crate::report::drop_deep(Value::Array(items)),
            Open::Object(map, _) => crate::report::drop_deep(Value::Object(map)),
        }
    }
    parsed
}

enum Open {
    Array(Vec<Value>),
    Object(serde_json::Map<String, Value>, Option<String>),
}

fn parse_with(text: &str, stack: &mut Vec<Open>) -> Result<Value, String> {
    let b = text.as_bytes();
    let mut i = 0usize;
    let skip_ws = |i: &mut usize| {
        while *i < b.len() && matches!(b[*i], b' ' | b'\t' | b'\n' | b'\r') {
            *i += 1;
        }
    };
    let at = |i: usize| format!("invalid JSON at byte {i}");
    // The end of the string token starting at b[i] == '"'.
    let string_end = |mut i: usize| -> Option<usize> {
        i += 1;
        while i < b.len() {
            match b[i] {
                b'\\' => i += 2,
                b'"' => return Some(i + 1),
                _ => i += 1,
            }
        }
        None
    };
    let mut done: Option<Value> = None;
    loop {
        skip_ws(&mut i);
        // Expecting a value (or the close of an empty/continued container).
        let value: Value;
        match b.get(i) {
            Some(b'[') => {
                i += 1;
                skip_ws(&mut i);
                if b.get(i) == Some(&b']') {
                    i += 1;
                    value = Value::Array(Vec::new());
                } else {
                    stack.push(Open::Array(Vec::new()));
                    continue;
                }
            }
            Some(b'{') => {
                i += 1;
                skip_ws(&mut i);
                if b.get(i) == Some(&b'}') {
                    i += 1;
                    value = Value::Object(serde_json::Map::new());
                } else {
                    let end = (b.get(i) == Some(&b'"'))
                        .then(|| string_end(i))
                        .flatten()
                        .ok_or_else(|| at(i))?;
                    let key: String =
                        serde_json::from_str(&text[i..end]).map_err(|e| e.to_string())?;
                    i = end;
                    skip_ws(&mut i);
                    if b.get(i) != Some(&b':') {
                        return Err(at(i));
                    }
                    i += 1;
                    stack.push(Open::Object(serde_json::Map::new(), Some(key)));
                    continue;
                }
            }
            Some(b'"') => {
                let end = string_end(i).ok_or_else(|| at(i))?;
                value = serde_json::from_str(&text[i..end]).map_err(|e| e.to_string())?;
                i = end;
            }
            Some(_) => {
                let start = i;
                while i < b.len()
                    && !matches!(b[i], b',' | b']' | b'}' | b' ' | b'\t' | b'\n' | b'\r')
                {
                    i += 1;
                }
                value = serde_json::from_str(&text[start..i]).map_err(|_| at(start))?;
            }
            None => return Err(at(i)),
        }
        // Place the value, closing every container it completes.
        let mut v = Some(value);
        while let Some(val) = v.take() {
            match stack.last_mut() {
                None => {
                    done = Some(val);
                    break;
                }
                Some(Open::Array(items)) => {
                    items.push(val);
                    skip_ws(&mut i);
                    match b.get(i) {
                        Some(b',') => i += 1,
                        Some(b']') => {
                            i += 1;
                            let Some(Open::Array(items)) = stack.pop() else {
                                unreachable!()
                            };
                            v = Some(Value::Array(items));
                        }
                        _ => return Err(at(i)),
                    }
                }
                Some(Open::Object(map, key)) => {
                    map.insert(key.take().unwrap_or_default(), val);
                    skip_ws(&mut i);
                    match b.get(i) {
                        Some(b',') => {
                            i += 1;
                            skip_ws(&mut i);
                            let end = (b.get(i) == Some(&b'"'))
                                .then(|| string_end(i))
                                .flatten()
                                .ok_or_else(|| at(i))?;
                            *key = Some(
                                serde_json::from_str(&text[i..end]).map_err(|e| e.to_string())?,
                            );
                            i = end;
                            skip_ws(&mut i);
                            if b.get(i) != Some(&b':') {
                                return Err(at(i));
                            }
                            i += 1;
                        }
                        Some(b'}') => {
                            i += 1;
                            let Some(Open::Object(map, _)) = stack.pop() else {
                                unreachable!()
                            };
                            v = Some(Value::Object(map));
                        }
                        _ => return Err(at(i)),
                    }
                }
            }
        }
        if let Some(v) = done.take() {
            skip_ws(&mut i);
            if i != b.len() {
                crate::report::drop_deep(v);
                return Err(at(i));
            }
            return Ok(v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn separators_and_nesting_match_python() {
        let v = json!({"a": {"b": [1, "x", null, true]}, "c": 1.5});
        assert_eq!(
            to_string(&v),
            r#"{"a": {"b": [1, "x", null, true]}, "c": 1.5}"#
        );
    }

    #[test]
    fn non_ascii_and_controls_are_escaped_like_python() {
        // json.dumps("é😀\x01\"\\\n") == '"\\u00e9\\ud83d\\ude00\\u0001\\"\\\\\\n"'
        let s = "é😀\u{1}\"\\\n";
        assert_eq!(to_string(s), r#""\u00e9\ud83d\ude00\u0001\"\\\n""#);
    }

    #[test]
    fn the_iterative_writer_writes_what_serde_writes() {
        let v = json!({"z": [1, 2.5, -3, null, true, "é\n</script>", [], {}, [[{"a": {}}]]],
                       "a": {"y": {"b": [false]}, "x": "😀"}, "m": 18446744073709551615u64});
        let text = |layout| {
            let mut out = Vec::new();
            write_value(&mut out, &v, layout);
            String::from_utf8(out).unwrap()
        };
        assert_eq!(text(Layout::Compact), serde_json::to_string(&v).unwrap());
        assert_eq!(text(Layout::Python), to_string(&v));
        // The same value with every object's keys inserted in sorted order: what the sorted
        // layout writes, whether or not a dependency turns on serde_json's preserve_order.
        fn sorted(v: &Value) -> Value {
            match v {
                Value::Object(m) => {
                    let mut keys: Vec<&String> = m.keys().collect();
                    keys.sort();
                    Value::Object(
                        keys.into_iter()
                            .map(|k| (k.clone(), sorted(&m[k])))
                            .collect(),
                    )
                }
                Value::Array(a) => Value::Array(a.iter().map(sorted).collect()),
                other => other.clone(),
            }
        }
        assert_eq!(
            text(Layout::PythonPrettySorted),
            to_string_pretty(&sorted(&v))
        );
    }

    #[test]
    fn nesting_past_the_limit_is_written_on_one_line_and_reads_back() {
        let mut v = json!({"leaf": [1, 2]});
        for _ in 0..PRETTY_DEPTH_LIMIT + 5 {
            v = json!([v]);
        }
        let text = to_string_pretty_sorted(&v);
        assert!(
            text.contains(&format!(
                "\n{}[[[[[{{\"leaf\": [1, 2]}}]]]]]\n",
                " ".repeat(2 * PRETTY_DEPTH_LIMIT)
            )),
            "{}",
            &text[text.len() - 3000..]
        );
        let back = from_str_deep(&text).unwrap();
        assert_eq!(to_string(&back), to_string(&v));
        crate::report::drop_deep(back);
        crate::report::drop_deep(v);
    }

    #[test]
    fn the_deep_parser_reads_what_serde_reads_and_refuses_what_it_refuses() {
        for ok in [
            r#" {"a" : [1, -2.5e3, "x\"y\u00e9", {}, []], "b": null, "a": true} "#,
            "[]",
            "3",
            r#""s""#,
        ] {
            let mine = parse_iterative(ok).unwrap();
            assert_eq!(mine, serde_json::from_str::<Value>(ok).unwrap(), "{ok}");
        }
        for bad in [
            "",
            "[",
            "[1,]",
            "{\"a\" 1}",
            "{\"a\": 1,}",
            "[1] 2",
            "tru",
            "{1: 2}",
            "\"abc",
            "[1 2]",
        ] {
            assert!(parse_iterative(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn empty_containers() {
        assert_eq!(
            to_string(&json!({"a": {}, "b": []})),
            r#"{"a": {}, "b": []}"#
        );
    }
}
