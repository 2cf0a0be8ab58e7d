//! The info of an `rpc` point, as Python OSProfiler's `trace_cls` records an RPC method:
//! `{"function": {"name", "args", "kwargs"}}`, the keyword arguments in Python's `repr`.

use osprofiler_core::Info;
use serde_json::{Map, Value};

/// Python's `repr` of a JSON value, as `trace_cls` writes `args`/`kwargs` (`str(kwargs)`).
fn py_repr(v: &Value, out: &mut String) {
    use std::fmt::Write as _;
    match v {
        Value::Null => out.push_str("None"),
        Value::Bool(true) => out.push_str("True"),
        Value::Bool(false) => out.push_str("False"),
        Value::Number(n) => {
            let _ = write!(out, "{n}");
        }
        Value::String(s) => py_repr_str(s, out),
        Value::Array(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                py_repr(x, out);
            }
            out.push(']');
        }
        Value::Object(m) => py_repr_map(m, out),
    }
}

/// Python's `repr` of a dict with string keys.
fn py_repr_map(m: &Map<String, Value>, out: &mut String) {
    out.push('{');
    for (i, (k, x)) in m.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        py_repr_str(k, out);
        out.push_str(": ");
        py_repr(x, out);
    }
    out.push('}');
}

/// Python's `repr` of a str.
fn py_repr_str(s: &str, out: &mut String) {
    use std::fmt::Write as _;
    // Python prefers single quotes unless the text has one and no double quote.
    let q = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    out.push(q);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == q => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push(q);
}

/// The info of an `rpc` point: `{"function": {"name", "args", "kwargs"}}` (no arguments when
/// `hide_args`), as Python OSProfiler's `trace_cls` records a traced RPC method.
pub(crate) fn rpc_info(name: &str, args: &Map<String, Value>, hide_args: bool) -> Info {
    let mut f = Map::new();
    f.insert("name".into(), name.into());
    if !hide_args {
        let mut kwargs = String::with_capacity(64);
        py_repr_map(args, &mut kwargs);
        f.insert("args".into(), "()".into());
        f.insert("kwargs".into(), kwargs.into());
    }
    let mut info = Info::new();
    info.insert("function".into(), Value::Object(f));
    info
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn python_repr_of_kwargs() {
        let mut s = String::new();
        py_repr(
            &json!({"a": 1, "b": "it's", "c": [true, null, "x\ny"], "d": {"e": 1.5}}),
            &mut s,
        );
        assert_eq!(
            s,
            r#"{'a': 1, 'b': "it's", 'c': [True, None, 'x\ny'], 'd': {'e': 1.5}}"#
        );
    }
}
