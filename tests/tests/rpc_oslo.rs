//! RPC with real oslo.messaging 18 peers over RabbitMQ (127.0.0.1:5672), traced with Python
//! OSProfiler 4.4.0 on the other side and every point stored in Redis (127.0.0.1:6379):
//! Python calls and casts a Rust server, a Rust client calls a Python server, one trace crosses
//! both hops and Python's CLI shows it, fifty concurrent calls each way parent right, and
//! hostile messages neither stop the server nor come back.
mod common;
use common::*;
use futures_util::StreamExt;
use lapin::options::{BasicConsumeOptions, BasicPublishOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, ConnectionProperties};
use osprofiler_core::notifier::Reader;
use osprofiler_core::{self as osp, ProfilerConfig, Trace};
use osprofiler_oslo::{RemoteError, RpcClient, RpcError, RpcServer, ServerOptions, Target};
use osprofiler_testkit::stop_of;
use serde_json::{Map, Value, json};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::sync::mpsc::{UnboundedSender, unbounded_channel};

const AMQP: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";
const REDIS: &str = "redis://127.0.0.1:6379";

/// Every Rust point of this binary goes to Redis, as Python's do.
fn redis_notifier() -> &'static osp::config::NotifierGuard {
    static G: OnceLock<osp::config::NotifierGuard> = OnceLock::new();
    G.get_or_init(|| {
        let conf = ProfilerConfig::builder()
            .enabled(true)
            .connection_string(REDIS)
            .build();
        osprofiler_collectors::init_from_conf(&conf, "rs", "rsrpc", Some("rshost"))
            .expect("Redis at 127.0.0.1:6379 is needed")
    })
}

/// The stored messages of a trace (Rust's and Python's), after delivering Rust's.
fn stored(base_id: &str) -> Vec<Value> {
    assert!(redis_notifier().flush(Duration::from_secs(10)));
    osprofiler_collectors::RedisDriver::open(REDIS, false)
        .unwrap()
        .trace_messages(base_id)
        .unwrap()
}

/// The one start message named `name` of `service` in `msgs`.
fn start_of<'a>(msgs: &'a [Value], name: &str, service: &str) -> &'a Value {
    let found: Vec<&Value> = msgs
        .iter()
        .filter(|m| m["name"] == format!("{name}-start") && m["service"] == service)
        .collect();
    assert_eq!(found.len(), 1, "one {name}-start of {service} in {msgs:#?}");
    found[0]
}

fn new_topic() -> String {
    format!("osp-oslo-{}", uuid::Uuid::new_v4().simple())
}

/// Deletes the queues oslo.messaging servers of `topic` declared (they are not auto-deleted):
/// the tests leave RabbitMQ as they found it.
async fn delete_queues(topic: &str, servers: &[&str]) {
    let conn = osprofiler_oslo::amqp::connect(AMQP, ConnectionProperties::default())
        .await
        .unwrap();
    let ch = conn.create_channel().await.unwrap();
    let mut names = vec![topic.to_owned()];
    names.extend(servers.iter().map(|s| format!("{topic}.{s}")));
    for q in names {
        let _ = ch
            .queue_delete(
                q.as_str().into(),
                lapin::options::QueueDeleteOptions::default(),
            )
            .await;
    }
    let _ = conn.close(200, "bye".into()).await;
}

/// What RabbitMQ says of `queue` now (a passive declare: ready messages, consumers).
async fn queue_state(ch: &lapin::Channel, queue: &str) -> lapin::Queue {
    ch.queue_declare(
        queue.into(),
        QueueDeclareOptions {
            passive: true,
            ..Default::default()
        },
        FieldTable::default(),
    )
    .await
    .unwrap()
}

fn args(pairs: &[(&str, Value)]) -> Map<String, Value> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect()
}

/// The Rust server of the tests: `add` (a db point inside), `fail`, `note` (a cast, whose text
/// and point id go to `notes`).
async fn rust_server(topic: &str, notes: UnboundedSender<(String, String)>) -> RpcServer {
    RpcServer::start(AMQP, ServerOptions::new(topic, "rs1"), move |req| {
        let notes = notes.clone();
        async move {
            match req.method.as_str() {
                "add" => {
                    let _db =
                        Trace::new("db", || osp::info!({"db": {"statement": "SELECT ? + ?"}}));
                    tokio::task::yield_now().await;
                    let n = |k: &str| req.args[k].as_i64().unwrap_or(0);
                    Ok(json!(n("a") + n("b")))
                }
                "fail" => Err(RemoteError::new(
                    "ValueError",
                    req.args["reason"].as_str().unwrap_or_default(),
                )),
                "fail_builtin" => Err(RemoteError::builtin(
                    "ValueError",
                    req.args["reason"].as_str().unwrap_or_default(),
                )),
                "note" => {
                    let point = osp::get().map(|p| p.id().to_string()).unwrap_or_default();
                    let text = req.args["text"].as_str().unwrap_or_default().to_owned();
                    let _ = notes.send((text, point));
                    Ok(Value::Null)
                }
                other => Err(RemoteError::new("NoSuchMethod", other)),
            }
        }
    })
    .await
    .unwrap_or_else(|e| panic!("RabbitMQ at 127.0.0.1:5672 (guest/guest) is needed: {e}"))
}

fn python_client(topic: &str, server: &str, n: usize) -> Value {
    let out = Command::new(python())
        .arg(script("oslo_peer.py"))
        .args(["client", topic, server, &n.to_string()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "the oslo.messaging client failed (RabbitMQ, Redis and the Python oracle are needed):\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// A Python oslo.messaging server on `topic`/`server`, READY; stops when dropped.
struct PythonServer(Child);

impl PythonServer {
    fn start(topic: &str, server: &str) -> PythonServer {
        let mut child = Command::new(python())
            .arg(script("oslo_peer.py"))
            .args(["server", topic, server])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(
            line.trim(),
            "READY",
            "the oslo.messaging server did not start"
        );
        PythonServer(child)
    }
}

impl Drop for PythonServer {
    fn drop(&mut self) {
        drop(self.0.stdin.take()); // EOF: it stops
        if self.0.wait().is_err() {
            let _ = self.0.kill();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_calls_and_casts_a_rust_server() {
    redis_notifier();
    let topic = new_topic();
    let (notes, mut noted) = unbounded_channel();
    let server = rust_server(&topic, notes).await;
    let t = topic.clone();
    let out = tokio::task::spawn_blocking(move || python_client(&t, "", 50))
        .await
        .unwrap();

    // Fifty concurrent calls: each result right, each Rust rpc point under its Python caller.
    let calls = out["calls"].as_array().unwrap();
    assert_eq!(calls.len(), 50);
    for (i, call) in calls.iter().enumerate() {
        assert_eq!(call["result"], json!(i + 1), "{call}");
        let msgs = stored(call["base_id"].as_str().unwrap());
        let rpc = start_of(&msgs, "rpc", "rsrpc");
        assert_eq!(rpc["parent_id"], call["parent_id"], "mis-parented: {call}");
        assert_eq!(
            rpc["info"]["function"],
            json!({"name": format!("{topic}.add"), "args": "()", "kwargs": format!("{{'a': {i}, 'b': 1}}")})
        );
        let db = start_of(&msgs, "db", "rsrpc");
        assert_eq!(db["parent_id"], rpc["trace_id"]);
    }

    // A handler's error: the caller gets it with its type; the point is a failed point.
    assert_eq!(
        out["failure"],
        json!({"exc_type": "ValueError", "value": "bad input",
               // RemoteError::builtin: Python's caller catches it with `except ValueError`.
               "builtin": {"isinstance": "ValueError", "message": "no such flavor"}})
    );

    // The cast ran inside the caller's trace.
    let cast = &out["cast"];
    let (text, point) = tokio::time::timeout(Duration::from_secs(10), noted.recv())
        .await
        .expect("the server handled the cast")
        .unwrap();
    assert_eq!(text, "hello from python");
    let msgs = stored(cast["base_id"].as_str().unwrap());
    let rpc = start_of(&msgs, "rpc", "rsrpc");
    assert_eq!(rpc["parent_id"], cast["parent_id"]);
    assert_eq!(rpc["trace_id"].as_str(), Some(point.as_str()));
    server.stop().await;
    delete_queues(&topic, &["rs1"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rust_client_calls_a_python_server() {
    redis_notifier();
    let topic = new_topic();
    let _py = tokio::task::spawn_blocking({
        let t = topic.clone();
        move || PythonServer::start(&t, "py1")
    })
    .await
    .unwrap();
    let client = Arc::new(
        RpcClient::connect(AMQP)
            .await
            .unwrap()
            .timeout(Duration::from_secs(20)),
    );
    let target = Target::topic(&topic).server("py1");

    // Fifty concurrent traced calls.
    let mut tasks = Vec::new();
    for i in 0..50i64 {
        let (client, target) = (client.clone(), target.clone());
        tasks.push(tokio::spawn(osp::trace_scope(async move {
            let p = osp::init("SECRET_KEY", None, None).unwrap();
            let wsgi = Trace::new("wsgi", osp::Info::new);
            let sum = client
                .call(
                    &target,
                    "add",
                    args(&[("a", json!(i)), ("b", json!(1))]),
                    Map::new(),
                )
                .await
                .unwrap();
            assert_eq!(sum, json!(i + 1));
            (p.base_id().to_string(), wsgi.id().unwrap().to_string())
        })));
    }
    let mut done = Vec::new();
    for t in tasks {
        done.push(t.await.unwrap());
    }
    for (base, wsgi) in done {
        let msgs = stored(&base);
        let ours = start_of(&msgs, "rpc", "rsrpc");
        assert_eq!(ours["parent_id"], wsgi.as_str());
        let theirs = start_of(&msgs, "rpc", "pyserver");
        assert_eq!(
            theirs["parent_id"], ours["trace_id"],
            "mis-parented in {base}"
        );
        let db = start_of(&msgs, "db", "pyserver");
        assert_eq!(db["parent_id"], theirs["trace_id"]);
    }

    // A Python exception comes back as an error carrying its type; the point failed.
    let base = osp::trace_scope(async {
        let p = osp::init("SECRET_KEY", None, None).unwrap();
        let e = client
            .call(
                &target,
                "fail",
                args(&[("reason", json!("bad input"))]),
                Map::new(),
            )
            .await
            .unwrap_err();
        match e {
            RpcError::Remote(r) => {
                assert_eq!(
                    (r.class.as_str(), r.message.as_str()),
                    ("ValueError", "bad input")
                )
            }
            other => panic!("expected a remote ValueError, got {other}"),
        }
        p.base_id().to_string()
    })
    .await;
    let msgs = stored(&base);
    let ours = start_of(&msgs, "rpc", "rsrpc");
    assert_eq!(stop_of(&msgs, ours)["info"]["etype"], "ValueError");

    // Nobody serves the topic: a timeout, said as such.
    let quick = RpcClient::connect(AMQP)
        .await
        .unwrap()
        .timeout(Duration::from_millis(500));
    let e = quick
        .call(&Target::topic(new_topic()), "add", Map::new(), Map::new())
        .await
        .unwrap_err();
    assert!(matches!(e, RpcError::Timeout { .. }), "{e}");
    assert!(e.to_string().contains("no reply to add"), "{e}");
    drop(_py);
    delete_queues(&topic, &["py1"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_trace_across_both_hops_as_pythons_cli_shows_it() {
    redis_notifier();
    let (front, back) = (new_topic(), new_topic());
    let _py = tokio::task::spawn_blocking({
        let t = back.clone();
        move || PythonServer::start(&t, "py1")
    })
    .await
    .unwrap();
    let client = Arc::new(RpcClient::connect(AMQP).await.unwrap());
    let target = Target::topic(&back).server("py1");
    // Python caller -> Rust server -> (Rust client) -> Python server.
    let relay = RpcServer::start(AMQP, ServerOptions::new(&front, "rs1"), move |req| {
        let (client, target) = (client.clone(), target.clone());
        async move {
            match req.method.as_str() {
                "add" => client
                    .call(&target, "add", req.args.clone(), Map::new())
                    .await
                    .map_err(|e| RemoteError::new("RelayError", e.to_string())),
                "fail" => Err(RemoteError::new("ValueError", "bad input")),
                _ => Ok(Value::Null),
            }
        }
    })
    .await
    .unwrap();
    let t = front.clone();
    let out = tokio::task::spawn_blocking(move || python_client(&t, "rs1", 1))
        .await
        .unwrap();
    let call = &out["calls"][0];
    assert_eq!(call["result"], 1);
    let base = call["base_id"].as_str().unwrap().to_owned();
    assert!(redis_notifier().flush(Duration::from_secs(10)));
    let report = osprofiler_testkit::python_trace_show(&base, REDIS);
    // The chain of first children, with who made each point.
    let mut chain = Vec::new();
    let mut node = &report;
    while let Some(child) = node["children"].as_array().and_then(|c| c.first()) {
        chain.push(format!(
            "{}@{}",
            child["info"]["name"].as_str().unwrap(),
            child["info"]["service"].as_str().unwrap()
        ));
        node = child;
    }
    assert_eq!(
        chain,
        [
            "wsgi@pycaller",
            "rpc@rsrpc",
            "rpc@rsrpc",
            "rpc@pyserver",
            "db@pyserver"
        ]
    );
    relay.stop().await;
    drop(_py);
    delete_queues(&front, &["rs1"]).await;
    delete_queues(&back, &["py1"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_messages_are_rejected_and_the_server_goes_on() {
    redis_notifier();
    let topic = new_topic();
    let server = rust_server(&topic, unbounded_channel().0).await;
    let conn = osprofiler_oslo::amqp::connect(AMQP, ConnectionProperties::default())
        .await
        .unwrap();
    let ch = conn.create_channel().await.unwrap();
    // A reply queue of the test's own, to see what the server answers.
    let replies = ch
        .queue_declare(
            "".into(),
            QueueDeclareOptions {
                exclusive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
    let reply_q = replies.name().to_string();
    let mut answers = ch
        .basic_consume(
            replies.name().clone(),
            "test".into(),
            BasicConsumeOptions {
                no_ack: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
    let envelope = |inner: &Value| {
        serde_json::to_vec(&json!({"oslo.version": "2.0", "oslo.message": inner.to_string()}))
            .unwrap()
    };
    let hostile: Vec<Vec<u8>> = vec![
        b"not json at all".to_vec(),
        br#"{"hello": "world"}"#.to_vec(),
        serde_json::to_vec(&json!({"oslo.version": "3.0", "oslo.message": "{}"})).unwrap(),
        serde_json::to_vec(&json!({"oslo.version": "2.0", "oslo.message": "{not json"})).unwrap(),
        vec![b' '; 2 << 20],
        envelope(&json!({"args": {}, "_msg_id": "m-no-method", "_reply_q": reply_q})),
        envelope(
            &json!({"method": "add", "args": {"a": 1, "b": 2}, "_msg_id": "m-garbage-trace",
                          "_reply_q": reply_q, "_context_trace_info": "garbage"}),
        ),
    ];
    for body in &hostile {
        ch.basic_publish(
            "openstack".into(),
            topic.as_str().into(),
            BasicPublishOptions::default(),
            body,
            BasicProperties::default(),
        )
        .await
        .unwrap();
    }
    // The two with a reply queue are answered: a failure, and a result served untraced.
    let mut got = std::collections::HashMap::new();
    while got.len() < 2 {
        let d = tokio::time::timeout(Duration::from_secs(10), answers.next())
            .await
            .expect("the server answered")
            .unwrap()
            .unwrap();
        let reply = osprofiler_oslo::Reply::parse(&d.data, 1 << 20).unwrap();
        got.insert(reply.msg_id.clone(), reply.outcome);
    }
    assert_eq!(
        got["m-no-method"].as_ref().unwrap_err().class,
        "MessageRejected"
    );
    assert_eq!(got["m-garbage-trace"], Ok(json!(3)));

    // The server goes on, and nothing came back to the queue.
    let client = RpcClient::connect(AMQP).await.unwrap();
    let sum = client
        .call(
            &Target::topic(&topic),
            "add",
            args(&[("a", json!(2)), ("b", json!(2))]),
            Map::new(),
        )
        .await
        .unwrap();
    assert_eq!(sum, 4);
    assert_eq!(
        queue_state(&ch, &topic).await.consumer_count(),
        1,
        "the server still consumes"
    );
    // Stopped, the server has settled every message it was given (the stop lets the ones in
    // flight finish) and closed its connection, on which RabbitMQ puts back whatever it had
    // not settled: a message requeued, redelivered or left unsettled would be in the queue.
    server.stop().await;
    assert_eq!(
        queue_state(&ch, &topic).await.message_count(),
        0,
        "no message requeued"
    );
    delete_queues(&topic, &["rs1"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_handles_no_more_requests_at_once_than_its_prefetch() {
    let topic = new_topic();
    let (now, most) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let (started_tx, mut started) = unbounded_channel();
    let (done_tx, mut done) = unbounded_channel();
    // Every handler holds its request until the test opens the gate.
    let (open, gate) = tokio::sync::watch::channel(false);
    let mut opts = ServerOptions::new(&topic, "rs1");
    opts.prefetch = 3;
    let server = RpcServer::start(AMQP, opts, {
        let (now, most) = (now.clone(), most.clone());
        move |_req| {
            let (now, most) = (now.clone(), most.clone());
            let (started, done, mut gate) = (started_tx.clone(), done_tx.clone(), gate.clone());
            async move {
                let n = now.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(n, Ordering::SeqCst);
                let _ = started.send(());
                let _ = gate.wait_for(|open| *open).await;
                now.fetch_sub(1, Ordering::SeqCst);
                let _ = done.send(());
                Ok(Value::Null)
            }
        }
    })
    .await
    .unwrap();
    let client = RpcClient::connect(AMQP).await.unwrap();
    for _ in 0..15 {
        client
            .cast(&Target::topic(&topic), "work", Map::new(), Map::new())
            .await
            .unwrap();
    }
    for _ in 0..3 {
        tokio::time::timeout(Duration::from_secs(20), started.recv())
            .await
            .expect("three casts handed to the server")
            .unwrap();
    }
    // Three held by their handlers, none acknowledged: RabbitMQ keeps the other twelve ready in
    // the queue (a larger prefetch would have handed more over, and the count never reaches
    // twelve). Asked again at each answer, until the last cast has reached the queue.
    let conn = osprofiler_oslo::amqp::connect(AMQP, ConnectionProperties::default())
        .await
        .unwrap();
    let ch = conn.create_channel().await.unwrap();
    let twelve_ready = async { while queue_state(&ch, &topic).await.message_count() != 12 {} };
    tokio::time::timeout(Duration::from_secs(20), twelve_ready)
        .await
        .expect("RabbitMQ holds the 12 casts beyond the prefetch of 3");
    assert_eq!(most.load(Ordering::SeqCst), 3, "3 handled at once");
    open.send(true).unwrap();
    for _ in 0..15 {
        tokio::time::timeout(Duration::from_secs(20), done.recv())
            .await
            .expect("every cast handled")
            .unwrap();
    }
    assert_eq!(
        most.load(Ordering::SeqCst),
        3,
        "15 casts queued, at most prefetch = 3 handled at once (and 3 reached)"
    );
    let _ = conn.close(200, "bye".into()).await;
    server.stop().await;
    client.close().await;
    delete_queues(&topic, &["rs1"]).await;
}
