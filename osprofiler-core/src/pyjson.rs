//! JSON text exactly as Python's `json.dumps` writes it by default.
//!
//! OSProfiler signs and stores JSON produced by `json.dumps(obj)`: items separated by `", "`,
//! keys by `": "`, and every non-ASCII character escaped as `\uXXXX` (`ensure_ascii=True`).
//! Byte-identical output matters for the signed `X-Trace-Info` header and for the Redis
//! collector, whose messages Python reads back.

use serde::Serialize;
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
    fn empty_containers() {
        assert_eq!(
            to_string(&json!({"a": {}, "b": []})),
            r#"{"a": {}, "b": []}"#
        );
    }
}
