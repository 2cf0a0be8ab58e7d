//! The messaging collector against a real RabbitMQ (127.0.0.1:5672, guest/guest) and the
//! Python reference: the same exchange, routing key, properties and body layout as Python
//! OSProfiler's `messaging://` driver (through oslo.messaging); a Python oslo.messaging
//! notification listener receives our notifications intact; reading one trace back leaves the
//! others in the queue.

use futures_util::StreamExt;
use lapin::options::{QueueBindOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::{Connection, ConnectionProperties};
use osprofiler_collectors::MessagingDriver;
use osprofiler_core::notifier::{Reader, Writer};
use osprofiler_core::{self as osp, Trace, message::Message};
use osprofiler_testkit::{captured_trace, python};
use serde_json::Value;
use std::io::{BufRead as _, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

const AMQP: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

fn a_trace() -> (String, Vec<Message>) {
    captured_trace(|| {
        let _wsgi = Trace::new(
            "wsgi",
            || osp::info!({"request": {"path": "/ünï", "method": "GET", "query": "", "scheme": "http"}}),
        );
        let mut failing = Trace::new("db", || osp::info!({"db": {"statement": "SELEC 1"}}));
        failing.error_with("OperationalError", "syntax error");
    })
}

/// A private queue bound like oslo.messaging's `profiler.info`, to see what is published, and
/// a consumer on it: deliveries are pushed as they arrive (no-ack: what is still in flight
/// when the connection closes only empties this private queue).
async fn tap() -> (Connection, lapin::Consumer) {
    let conn = osprofiler_oslo::amqp::connect(AMQP, ConnectionProperties::default())
        .await
        .expect("RabbitMQ at 127.0.0.1:5672 (guest/guest) is needed");
    let ch = conn.create_channel().await.unwrap();
    let name = format!("osp-tap-{}", uuid::Uuid::new_v4());
    let opts = QueueDeclareOptions {
        exclusive: true,
        auto_delete: true,
        ..Default::default()
    };
    ch.exchange_declare(
        "openstack".into(),
        lapin::ExchangeKind::Topic,
        Default::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    ch.queue_declare(name.as_str().into(), opts, FieldTable::default())
        .await
        .unwrap();
    ch.queue_bind(
        name.as_str().into(),
        "openstack".into(),
        "profiler.info".into(),
        QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    let consumer = ch
        .basic_consume(
            name.as_str().into(),
            "osp-tap".into(),
            lapin::options::BasicConsumeOptions {
                no_ack: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
    (conn, consumer)
}

/// The next notification of trace `base_id` on the tap (other tests publish to the exchange
/// too), as it arrives; panics after 10 s.
async fn next(tap: &mut lapin::Consumer, base_id: &str) -> lapin::message::Delivery {
    let wait = async {
        while let Some(d) = tap.next().await {
            let d = d.unwrap();
            let body: Value = serde_json::from_slice(&d.data).unwrap();
            if body["payload"]["base_id"] == base_id {
                return d;
            }
        }
        panic!("the tap's consumer ended");
    };
    tokio::time::timeout(Duration::from_secs(10), wait)
        .await
        .expect("a notification within 10 s")
}

/// The body with the per-notification values (ids, send time) blanked, keys in order.
fn shape(body: &[u8]) -> String {
    let mut out = String::from_utf8(body.to_vec()).unwrap();
    // message_id and _unique_id occur once; the notification's timestamp is the last one
    // (the payload's comes first).
    for (key, last) in [
        ("message_id", false),
        ("_unique_id", false),
        ("timestamp", true),
    ] {
        let pat = format!("\"{key}\": \"");
        let start = if last {
            out.rfind(&pat)
        } else {
            out.find(&pat)
        }
        .unwrap_or_else(|| panic!("no {key} in {out}"));
        let v0 = start + pat.len();
        let v1 = v0 + out[v0..].find('"').unwrap();
        out.replace_range(v0..v1, "*");
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishes_what_python_publishes() {
    let (conn, mut tap) = tap().await;
    let (base_id, msgs) = a_trace();
    let stop = msgs.iter().find(|m| m.error_type().is_some()).unwrap();
    let d = MessagingDriver::open("messaging://").unwrap();
    d.notify(std::slice::from_ref(stop)).unwrap();
    let ours = next(&mut tap, &base_id).await;

    // The same message through Python OSProfiler's messaging driver (oslo.messaging).
    // Python's driver sets project and service on the dict it is given: passing them already
    // set keeps our key order.
    let payload = stop.to_json();
    let script = r#"
import json, sys, warnings
warnings.simplefilter("ignore")
from oslo_config import cfg
from osprofiler.drivers import base
d = base.get_driver("messaging://", project=sys.argv[2], service=sys.argv[3], host=sys.argv[4],
                    conf=cfg.CONF, transport_url="rabbit://guest:guest@127.0.0.1:5672/")
d.notify(json.loads(sys.argv[1]))
"#;
    let id = stop.identity();
    let out = Command::new(python())
        .args(["-c", script, &payload])
        .args([id.project().unwrap(), id.service().unwrap(), id.host()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "Python messaging driver failed (oslo.messaging in the oracle virtualenv, RabbitMQ): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let theirs = next(&mut tap, &base_id).await;

    assert_eq!(ours.exchange.as_str(), "openstack");
    assert_eq!(ours.exchange, theirs.exchange);
    assert_eq!(ours.routing_key.as_str(), "profiler.info");
    assert_eq!(ours.routing_key, theirs.routing_key);
    let p = |d: &lapin::message::Delivery| {
        (
            d.properties.content_type().clone(),
            d.properties.content_encoding().clone(),
            *d.properties.delivery_mode(),
            *d.properties.priority(),
        )
    };
    assert_eq!(p(&ours), p(&theirs));
    assert_eq!(shape(&ours.data), shape(&theirs.data));
    let body: Value = serde_json::from_slice(&ours.data).unwrap();
    assert_eq!(body["event_type"], "profiler.svc");
    assert_eq!(body["publisher_id"], "test-host");
    assert_eq!(body["payload"], stop.to_value());
    conn.close(200, "done".into()).await.unwrap();
    // Both notifications also wait in profiler.info: take them (and leave the queue as found).
    assert_eq!(d.trace_messages(&base_id).unwrap().len(), 2);
}

/// Reading `profiler.info` holds its notifications for a moment (they are read and put
/// back): the tests that read it take turns.
static READERS: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[test]
fn an_oslo_messaging_listener_receives_our_notifications() {
    let _turn = READERS.lock().unwrap_or_else(|e| e.into_inner());
    let pool = format!("osp-listener-{}", uuid::Uuid::new_v4());
    let script = r#"
import json, sys, threading, warnings
warnings.simplefilter("ignore")
from oslo_config import cfg
import oslo_messaging

class Endpoint:
    # The threading executor calls info() from several threads: one line at a time.
    lock = threading.Lock()
    def __init__(self, want, done):
        self.want, self.done, self.got = want, done, 0
    def info(self, ctxt, publisher_id, event_type, payload, metadata):
        with self.lock:
            print(json.dumps({"publisher_id": publisher_id, "event_type": event_type,
                              "payload": payload}), flush=True)
            if payload.get("base_id") == self.want:
                self.got += 1
                if self.got == 4:
                    self.done.set()

transport = oslo_messaging.get_notification_transport(
    cfg.CONF, url="rabbit://guest:guest@127.0.0.1:5672/")
done = threading.Event()
listener = oslo_messaging.get_notification_listener(
    transport, [oslo_messaging.Target(topic="profiler")], [Endpoint(sys.argv[1], done)],
    executor="threading", pool=sys.argv[2])
listener.start()
print("READY", flush=True)
done.wait(30)
listener.stop()
listener.wait()
# The pool's queue outlives the listener (not auto-delete): remove it, or it would collect
# every later profiler notification.
import kombu
with kombu.Connection("amqp://guest:guest@127.0.0.1:5672//") as conn:
    conn.channel().queue_delete(sys.argv[2])
"#;
    let (base_id, msgs) = a_trace();
    let mut child = Command::new(python())
        .args(["-c", script, &base_id, &pool])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let ready = lines.next().and_then(Result::ok).unwrap_or_default();
    assert_eq!(ready, "READY", "the oslo.messaging listener did not start");

    MessagingDriver::open("messaging://")
        .unwrap()
        .notify(&msgs)
        .unwrap();
    let mut got: Vec<Value> = Vec::new();
    for line in lines.map_while(Result::ok) {
        let v: Value = serde_json::from_str(&line).unwrap();
        if v["payload"]["base_id"] == base_id.as_str() {
            got.push(v);
        }
    }
    assert!(child.wait().unwrap().success());
    assert_eq!(got.len(), 4, "{got:#?}");
    // They also wait in profiler.info: take them (and leave the queue as found).
    let driver = MessagingDriver::open("messaging://")
        .unwrap()
        .consuming(true);
    assert_eq!(driver.trace_messages(&base_id).unwrap().len(), 4);
    for (v, m) in got.iter().zip(&msgs) {
        assert_eq!(v["payload"], m.to_value());
        assert_eq!(v["event_type"], "profiler.svc");
        assert_eq!(v["publisher_id"], "test-host");
    }
}

#[test]
fn reading_leaves_the_queue_as_it_was_unless_consuming() {
    let _turn = READERS.lock().unwrap_or_else(|e| e.into_inner());
    let d = MessagingDriver::open("messaging://").unwrap();
    let (a, a_msgs) = a_trace();
    let (b, b_msgs) = a_trace();
    d.notify(&a_msgs).unwrap();
    d.notify(&b_msgs).unwrap();

    let listed = d.list_traces().unwrap();
    assert!(listed.iter().any(|t| t.base_id == a) && listed.iter().any(|t| t.base_id == b));
    assert!(
        d.list_error_traces()
            .unwrap()
            .iter()
            .any(|t| t.base_id == a)
    );

    let want_a = a_msgs.iter().map(Message::to_value).collect::<Vec<_>>();
    for _ in 0..2 {
        assert_eq!(
            d.trace_messages(&a).unwrap(),
            want_a,
            "read, in order, and left in the queue"
        );
    }
    let consuming = MessagingDriver::open("messaging://")
        .unwrap()
        .consuming(true);
    assert_eq!(consuming.trace_messages(&a).unwrap(), want_a);
    assert!(
        consuming.trace_messages(&a).unwrap().is_empty(),
        "taken once"
    );
    let got_b = d.trace_messages(&b).unwrap();
    assert_eq!(got_b.len(), b_msgs.len(), "B survived taking A");
    assert!(consuming.trace_messages(&b).unwrap().len() == b_msgs.len());
    let report = osprofiler_core::report::Report::build(&got_b).into_value();
    assert_eq!(report["children"][0]["info"]["name"], "wsgi");
    assert_eq!(
        report["children"][0]["children"][0]["info"]["exception"],
        "OperationalError"
    );
}
