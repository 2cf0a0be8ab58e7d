//! A call's reply and the remote exception a `failure` reply carries.

use crate::envelope::{EnvelopeError, envelope, open_envelope, opt_string, unique_id};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::fmt;

/// An exception raised by the remote side of a call, as oslo.messaging serializes it.
///
/// What a Python caller (oslo.messaging's `RPCClient.call`) raises for it depends on
/// [`RemoteError::module`], as oslo.messaging decides: for `builtins` (made by
/// [`RemoteError::builtin`]) the builtin exception of that class, so
/// `except ValueError:` catches `RemoteError::builtin("ValueError", …)`; for any other module
/// (the default of [`RemoteError::new`] is `osprofiler_rs`, which no caller lists in
/// `allowed_remote_exmods`) `oslo_messaging.RemoteError`, whose `exc_type` is the class name
/// and `value` the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteError {
    /// The exception's class name (`ValueError`).
    pub class: String,
    /// Its module (`builtins`).
    pub module: String,
    /// Its text.
    pub message: String,
    /// The remote traceback's lines, if sent.
    pub traceback: Vec<String>,
}

impl RemoteError {
    /// An error of `class` with `message`, from module `osprofiler_rs`.
    pub fn new(class: impl Into<String>, message: impl Into<String>) -> Self {
        RemoteError {
            class: class.into(),
            module: "osprofiler_rs".into(),
            message: message.into(),
            traceback: Vec::new(),
        }
    }

    /// A builtin Python exception (`ValueError`, `KeyError`, `TimeoutError`, …): a Python
    /// caller raises that very type (a subclass of it whose text is `message`).
    ///
    /// ```
    /// let e = osprofiler_oslo::RemoteError::builtin("ValueError", "no such flavor");
    /// assert_eq!((e.module.as_str(), e.class.as_str()), ("builtins", "ValueError"));
    /// ```
    pub fn builtin(class: impl Into<String>, message: impl Into<String>) -> Self {
        RemoteError {
            module: "builtins".into(),
            ..RemoteError::new(class, message)
        }
    }

    /// The `failure` field's text: `{"class", "module", "message", "tb", "args", "kwargs"}`.
    fn to_failure(&self) -> String {
        json!({
            "class": self.class,
            "module": self.module,
            "message": self.message,
            "tb": self.traceback,
            "args": [self.message],
            "kwargs": {},
        })
        .to_string()
    }

    fn from_failure(text: &str) -> RemoteError {
        let v: Value = serde_json::from_str(text).unwrap_or(Value::Null);
        let s = |k: &str| v[k].as_str().unwrap_or_default().to_owned();
        RemoteError {
            class: if v["class"].is_string() {
                s("class")
            } else {
                "RemoteError".into()
            },
            module: s("module"),
            message: if v["message"].is_string() {
                s("message")
            } else {
                text.to_owned()
            },
            traceback: v["tb"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|l| l.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default(),
        }
    }
}

impl fmt::Display for RemoteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.class, self.message)
    }
}

impl std::error::Error for RemoteError {}

/// A call's reply.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    /// The call it answers (`_msg_id`).
    pub msg_id: String,
    /// The result, or the remote exception.
    pub outcome: Result<Value, RemoteError>,
}

impl Reply {
    /// The reply message (envelope bytes): `{"result", "failure", "ending": true, "_msg_id",
    /// "_unique_id"}`.
    pub fn to_body(&self) -> Vec<u8> {
        #[derive(Serialize)]
        struct Body<'a> {
            result: Option<&'a Value>,
            failure: Option<String>,
            ending: bool,
            _msg_id: &'a str,
            _unique_id: String,
        }
        let (result, failure) = match &self.outcome {
            Ok(v) => (Some(v), None),
            Err(e) => (None, Some(e.to_failure())),
        };
        envelope(&Body {
            result,
            failure,
            ending: true,
            _msg_id: &self.msg_id,
            _unique_id: unique_id(),
        })
    }

    /// Reads a reply message.
    pub fn parse(body: &[u8], limit: usize) -> Result<Reply, EnvelopeError> {
        #[derive(Deserialize)]
        struct Raw {
            _msg_id: Option<Value>,
            result: Option<Value>,
            failure: Option<Value>,
        }
        let text = open_envelope(body, limit)?;
        let raw: Raw =
            serde_json::from_str(&text).map_err(|e| EnvelopeError::NotJson(e.to_string()))?;
        let msg_id =
            opt_string(raw._msg_id, "_msg_id")?.ok_or(EnvelopeError::BadField("_msg_id"))?;
        let outcome = match raw.failure {
            None | Some(Value::Null) => Ok(raw.result.unwrap_or(Value::Null)),
            Some(Value::String(f)) => Err(RemoteError::from_failure(&f)),
            Some(other) => Err(RemoteError::from_failure(&other.to_string())),
        };
        Ok(Reply { msg_id, outcome })
    }
}
