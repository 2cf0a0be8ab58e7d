//! The messages a trace point emits: `<name>-start` and `<name>-stop`.

use crate::clock::{Stamp, format_timestamp};
use crate::id::Id;
use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::{Map, Value};
use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

/// Free-form information attached to a point (`info` in the message).
///
/// `host` is added when the message is serialized; everything else is yours. Build it with
/// [`info!`](crate::info) or any `serde_json` map.
pub type Info = Map<String, Value>;

/// Whether a message opens or closes its point.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Phase {
    /// `<name>-start`
    Start,
    /// `<name>-stop`
    Stop,
}

impl Phase {
    /// `"start"` or `"stop"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Start => "start",
            Phase::Stop => "stop",
        }
    }
}

/// Who emits: project, service and host, stamped on every message of this process.
///
/// Set once at start-up by `init_from_conf` or [`crate::identity::set_identity`]; messages refer to it
/// without reference counting, so emitting a point touches no shared counter.
#[derive(Debug)]
pub struct Identity {
    pub(crate) project: Option<Box<str>>,
    pub(crate) service: Option<Box<str>>,
    pub(crate) host: Box<str>,
}

impl Identity {
    /// The project set by `init_from_conf` (or [`crate::identity::set_identity`]).
    pub fn project(&self) -> Option<&str> {
        self.project.as_deref()
    }
    /// The service set by `init_from_conf` (or [`crate::identity::set_identity`]).
    pub fn service(&self) -> Option<&str> {
        self.service.as_deref()
    }
    /// The emitting machine's hostname (`info.host`).
    pub fn host(&self) -> &str {
        &self.host
    }
}

/// One `<name>-start` or `<name>-stop` notification.
///
/// Cheap to create: ids stay binary and the timestamp stays a number until the message is
/// serialized (by [`Message::to_value`], [`Message::to_json`] or serde).
#[derive(Clone)]
pub struct Message {
    pub(crate) base_id: Id,
    pub(crate) identity: &'static Identity,
    pub(crate) name: Cow<'static, str>,
    pub(crate) phase: Phase,
    pub(crate) trace_id: Id,
    pub(crate) parent_id: Id,
    pub(crate) stamp: Stamp,
    pub(crate) info: Info,
    /// `info.function` of a `#[trace]`d call, kept unformatted until serialization.
    pub(crate) function: Option<FnCall>,
    /// Info written into `info` only when the message is serialized (off the hot path).
    pub(crate) lazy: Option<Arc<dyn LazyInfo>>,
    /// The trace's staging flags ([`crate::sampling`]): 0 for a trace stored for good.
    pub(crate) staging: u8,
    /// The heap bytes a queue notifier counted for this message while it waits (0 otherwise).
    /// (`u32`: it fits beside the flags, the message stays 256 bytes.)
    pub(crate) queued_bytes: u32,
}

/// Info that is turned into JSON only when the message is serialized — by the notifier's
/// worker, not on the traced code's path. Adapters use it for their conventional info
/// (`request`, `requests`, `db`): a small struct of owned values costs a few allocations where
/// the equivalent JSON map costs a dozen.
///
/// ```
/// use osprofiler_core::{Info, message::LazyInfo, Trace};
/// #[derive(Debug)]
/// struct Sql(String);
/// impl LazyInfo for Sql {
///     fn write(&self, info: &mut Info) {
///         info.insert("db".into(), serde_json::json!({"statement": self.0}));
///     }
/// }
/// osprofiler_core::init("k", None, None);
/// let _point = Trace::new("db", || osprofiler_core::message::lazy(Sql("SELECT 1".into())));
/// osprofiler_core::clean();
/// ```
pub trait LazyInfo: Send + Sync + 'static {
    /// Adds this info's entries to the message's `info` object.
    fn write(&self, info: &mut Info);

    /// Adds the entries for a message of `phase`. By default [`LazyInfo::write`], whatever the
    /// phase; info shared by a point's start and stop messages ([`lazy_shared`] and
    /// [`crate::Trace::finish_shared`]: one allocation for both) tells them apart here.
    fn write_for(&self, phase: Phase, info: &mut Info) {
        let _ = phase;
        self.write(info);
    }

    /// The `etype` this info writes into a message of `phase`, if it records an error: what
    /// [`Message::error_type`] answers for a message whose error is lazy, so that collectors
    /// index it without serializing the info. Default `None`.
    fn error_type(&self, phase: Phase) -> Option<&str> {
        let _ = phase;
        None
    }

    /// Heap bytes this info holds (its texts, mostly), for the notifier queue's byte bound
    /// ([`crate::notifier::QueueOptions::max_bytes`]). An estimate; default 0, which leaves
    /// the info out of the bound (the queue's message count still bounds it).
    fn heap_size(&self) -> usize {
        0
    }

    /// The `db.api` this info writes (`query`, `begin`, …), if any: what
    /// [`Message::db_api`] answers for a lazy `db` point, so that trace summaries tell
    /// statements from transaction control without serializing the info. Default `None`.
    fn db_api(&self) -> Option<&str> {
        None
    }
}

/// What a point's info closure may return: an [`Info`] map, or [`lazy`] info.
pub trait IntoInfo {
    #[doc(hidden)]
    fn into_parts(self) -> (Info, Option<Arc<dyn LazyInfo>>);
}

impl IntoInfo for Info {
    #[inline]
    fn into_parts(self) -> (Info, Option<Arc<dyn LazyInfo>>) {
        (self, None)
    }
}

/// Info built when the message is serialized; see [`LazyInfo`].
pub struct Lazy(Arc<dyn LazyInfo>);

/// Wraps [`LazyInfo`] for a point's info closure.
#[inline]
pub fn lazy<L: LazyInfo>(info: L) -> Lazy {
    Lazy(Arc::new(info))
}

/// [`lazy`] for info the caller keeps a handle on: to update it before the point stops and
/// give it to [`crate::Trace::finish_shared`], so that one allocation serves both messages
/// ([`LazyInfo::write_for`] is told which one it writes).
///
/// ```
/// use osprofiler_core::{self as osp, Info, message::LazyInfo, message::Phase, Trace};
/// use std::sync::{Arc, atomic::{AtomicU64, Ordering}};
/// struct Query { sql: &'static str, rows: AtomicU64 }
/// impl LazyInfo for Query {
///     fn write(&self, info: &mut Info) { self.write_for(Phase::Start, info) }
///     fn write_for(&self, phase: Phase, info: &mut Info) {
///         match phase {
///             Phase::Start => info.insert("db".into(), serde_json::json!({"statement": self.sql})),
///             Phase::Stop => info.insert("rows".into(), self.rows.load(Ordering::Relaxed).into()),
///         };
///     }
/// }
/// osp::init("key", None, None);
/// let q = Arc::new(Query { sql: "SELECT 1", rows: AtomicU64::new(0) });
/// let point = Trace::new("db", || osp::message::lazy_shared(q.clone()));
/// q.rows.store(1, Ordering::Relaxed);
/// point.finish_shared(q);
/// osp::clean();
/// ```
pub fn lazy_shared<L: LazyInfo>(info: Arc<L>) -> Lazy {
    Lazy(info)
}

impl IntoInfo for Lazy {
    #[inline]
    fn into_parts(self) -> (Info, Option<Arc<dyn LazyInfo>>) {
        (Info::new(), Some(self.0))
    }
}

/// What `#[trace]` records about a call: its name and its arguments' `Debug` text.
#[derive(Debug, Clone)]
pub(crate) struct FnCall {
    pub(crate) name: &'static str,
    pub(crate) args: Option<String>,
}

impl Serialize for FnCall {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(None)?;
        map.serialize_entry("name", self.name)?;
        if let Some(args) = &self.args {
            map.serialize_entry("args", args)?;
            map.serialize_entry("kwargs", "{}")?;
        }
        map.end()
    }
}

impl fmt::Debug for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Message")
            .field("value", &self.to_value())
            .finish()
    }
}

/// The heap memory a delivered message still owns (its info, `#[trace]` arguments and lazy
/// info), taken out so that the notifier can hand it back to a traced thread to free.
pub(crate) struct Leftover {
    _info: Info,
    _args: Option<String>,
    _lazy: Option<Arc<dyn LazyInfo>>,
}

/// Heap bytes of a JSON value (an estimate: lengths of texts, a word per scalar and entry).
fn value_heap_size(v: &Value) -> usize {
    match v {
        Value::String(t) => t.len(),
        Value::Array(a) => a.iter().map(|v| 32 + value_heap_size(v)).sum(),
        Value::Object(m) => info_heap_size(m),
        _ => 0,
    }
}

fn info_heap_size(info: &Info) -> usize {
    info.iter()
        .map(|(k, v)| 64 + k.len() + value_heap_size(v))
        .sum()
}

impl Message {
    /// Heap bytes this message holds beyond its own `size_of` (its name when not static, its
    /// info, a `#[trace]`d call's arguments, and for a start message [`LazyInfo::heap_size`],
    /// which its stop message usually shares): what the notifier queue's byte bound counts. An
    /// estimate, 0 for a point without info.
    ///
    /// ```
    /// use osprofiler_core::{self as osp, Info};
    /// use osprofiler_core::notifier::{self, Notifier};
    /// # use std::sync::{Arc, Mutex};
    /// # #[derive(Default)] struct Keep(Mutex<Vec<osp::message::Message>>);
    /// # impl Notifier for Keep { fn notify(&self, m: osp::message::Message) { self.0.lock().unwrap().push(m) } }
    /// let keep = Arc::new(Keep::default());
    /// notifier::set(keep.clone());
    /// osp::init("key", None, None);
    /// osp::Trace::new("db", || osp::info!({"statement": "SELECT 1"})).finish();
    /// osp::Trace::new("plain", Info::new).finish();
    /// let sizes: Vec<usize> = keep.0.lock().unwrap().iter().map(|m| m.heap_size()).collect();
    /// assert!(sizes[0] >= "statement".len() + "SELECT 1".len() && sizes[2] == 0);
    /// osp::clean();
    /// ```
    #[inline]
    pub fn heap_size(&self) -> usize {
        // Every message of a point without info takes this branch, on the traced thread (the
        // queue asks before it pushes): one test of the four fields instead of the sums below.
        if self.info.is_empty()
            && self.lazy.is_none()
            && self.function.is_none()
            && matches!(self.name, Cow::Borrowed(_))
        {
            return 0;
        }
        let name = match &self.name {
            Cow::Owned(n) => n.len(),
            Cow::Borrowed(_) => 0,
        };
        let info = if self.info.is_empty() {
            0
        } else {
            info_heap_size(&self.info)
        };
        let args = self
            .function
            .as_ref()
            .and_then(|f| f.args.as_ref())
            .map_or(0, String::len);
        // Counted with the start message only: a point's stop message usually shares its
        // start's lazy info (`lazy_shared`, the adapters' `db` and `http` points).
        let lazy = match (self.phase, self.lazy.as_deref()) {
            (Phase::Start, Some(l)) => l.heap_size(),
            _ => 0,
        };
        name + info + args + lazy
    }
}

impl Message {
    /// Takes what this message owns on the heap; `None` when it owns nothing.
    pub(crate) fn take_leftover(&mut self) -> Option<Leftover> {
        let args = self.function.as_mut().and_then(|f| f.args.take());
        if self.info.is_empty() && args.is_none() && self.lazy.is_none() {
            return None;
        }
        Some(Leftover {
            _info: std::mem::take(&mut self.info),
            _args: args,
            _lazy: self.lazy.take(),
        })
    }
}

impl Message {
    /// The full message name, `<name>-start` or `<name>-stop`.
    pub fn name(&self) -> String {
        format!("{}-{}", self.name, self.phase.as_str())
    }
    /// The point's name without the phase (`db`, `wsgi`, ...).
    pub fn point_name(&self) -> &str {
        &self.name
    }
    /// Start or stop.
    pub fn phase(&self) -> Phase {
        self.phase
    }
    /// The trace's id.
    pub fn base_id(&self) -> &Id {
        &self.base_id
    }
    /// This point's id.
    pub fn trace_id(&self) -> &Id {
        &self.trace_id
    }
    /// The enclosing point's id (or the `parent_id` given to init for a top-level point).
    pub fn parent_id(&self) -> &Id {
        &self.parent_id
    }
    /// Microseconds since the Unix epoch when the message was created.
    pub fn timestamp_micros(&self) -> i64 {
        self.stamp.micros()
    }
    /// The timestamp in OSProfiler's text form.
    pub fn timestamp(&self) -> String {
        format_timestamp(self.stamp.micros())
    }
    /// The info given as a map, without `host`, the `#[trace]` call's `function` and
    /// [`LazyInfo`] (which serialization adds: see [`Message::to_value`]). To ask whether the
    /// message records an error, use [`Message::error_type`], which knows both.
    pub fn info(&self) -> &Info {
        &self.info
    }
    /// Project, service and host of the emitting process.
    pub fn identity(&self) -> &Identity {
        self.identity
    }
    /// `info.etype` when the point recorded an error, whether the error was given as a map or
    /// as [`LazyInfo`] (a DB error): what collectors index error traces by.
    pub fn error_type(&self) -> Option<&str> {
        if let Some(etype) = self.info.get("etype").and_then(Value::as_str) {
            return Some(etype);
        }
        self.lazy.as_deref()?.error_type(self.phase)
    }

    /// Whether the message belongs to a *provisional* trace (see [`crate::sampling`]): one
    /// recorded in case it turns out slow or failed. A collector that stages
    /// ([`crate::notifier::Writer::stage`]) stores it hidden from readers until the trace is
    /// kept ([`crate::notifier::Writer::keep`]), and removes it with its trace when the
    /// staging window passes without a keep ([`crate::notifier::Writer::sweep`]).
    #[inline]
    pub fn is_provisional(&self) -> bool {
        self.staging & crate::sampling::flags::PROVISIONAL != 0
    }

    /// `info.db.api` (`query`, `begin`, …), whether given as a map or as [`LazyInfo`].
    pub fn db_api(&self) -> Option<&str> {
        if let Some(api) = self
            .info
            .get("db")
            .and_then(|d| d.get("api"))
            .and_then(Value::as_str)
        {
            return Some(api);
        }
        self.lazy.as_deref()?.db_api()
    }

    /// The message as stored by OSProfiler's drivers: `name`, `base_id`, `trace_id`,
    /// `parent_id`, `timestamp`, `info` (with `host`), `project`, `service`.
    pub fn to_value(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }

    /// The message's `info` object (with `host`) as Python-style JSON text: what SQL
    /// collectors store, without building the whole message as a `Value`.
    pub fn info_json(&self) -> String {
        crate::pyjson::to_string(&InfoWithHost(
            &self.info,
            &self.identity.host,
            self.function.as_ref(),
            self.lazy.as_deref(),
            self.phase,
        ))
    }

    /// The message as Python-style JSON text (what the Redis driver pushes).
    pub fn to_json(&self) -> String {
        crate::pyjson::to_string(self)
    }
}

struct InfoWithHost<'a>(
    &'a Info,
    &'a str,
    Option<&'a FnCall>,
    Option<&'a dyn LazyInfo>,
    Phase,
);

impl Serialize for InfoWithHost<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if let Some(lazy) = self.3 {
            let mut merged = self.0.clone();
            lazy.write_for(self.4, &mut merged);
            return InfoWithHost(&merged, self.1, self.2, None, self.4).serialize(s);
        }
        let has_host = self.0.contains_key("host");
        let mut map = s.serialize_map(None)?;
        if let Some(f) = self.2 {
            map.serialize_entry("function", f)?;
        }
        for (k, v) in self.0 {
            if self.2.is_some() && k == "function" {
                continue;
            }
            map.serialize_entry(k, v)?;
        }
        if !has_host {
            map.serialize_entry("host", self.1)?;
        }
        map.end()
    }
}

struct Name<'a>(&'a str, Phase);

impl Serialize for Name<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&format_args!("{}-{}", self.0, self.1.as_str()))
    }
}

impl Serialize for Message {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(8))?;
        map.serialize_entry("name", &Name(&self.name, self.phase))?;
        map.serialize_entry("base_id", &self.base_id)?;
        map.serialize_entry("trace_id", &self.trace_id)?;
        map.serialize_entry("parent_id", &self.parent_id)?;
        map.serialize_entry("timestamp", &format_timestamp(self.stamp.micros()))?;
        map.serialize_entry(
            "info",
            &InfoWithHost(
                &self.info,
                &self.identity.host,
                self.function.as_ref(),
                self.lazy.as_deref(),
                self.phase,
            ),
        )?;
        map.serialize_entry("project", &self.identity.project.as_deref())?;
        map.serialize_entry("service", &self.identity.service.as_deref())?;
        map.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::Stamp;
    use uuid::Uuid;

    #[test]
    fn message_serializes_with_host_project_service() {
        let identity = Box::leak(Box::new(Identity {
            project: Some("p".into()),
            service: None,
            host: "h".into(),
        }));
        let mut info = Info::new();
        info.insert("k".into(), Value::from(1));
        let m = Message {
            base_id: Id::from("b"),
            identity,
            name: Cow::Borrowed("db"),
            phase: Phase::Stop,
            trace_id: Id::Uuid(Uuid::nil()),
            parent_id: Id::from("b"),
            stamp: Stamp::Micros(0),
            info,
            function: None,
            lazy: None,
            staging: 0,
            queued_bytes: 0,
        };
        assert_eq!(
            m.to_json(),
            r#"{"name": "db-stop", "base_id": "b", "trace_id": "00000000-0000-0000-0000-000000000000", "parent_id": "b", "timestamp": "1970-01-01T00:00:00.000000", "info": {"k": 1, "host": "h"}, "project": "p", "service": null}"#
        );
        assert_eq!(m.to_value()["info"]["host"], "h");
    }
}
