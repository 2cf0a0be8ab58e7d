//! RPC over a real RabbitMQ (127.0.0.1:5672, guest/guest): concurrent calls carry their trace
//! either oslo-style in the request context (`trace_info`) or as signed AMQP headers; every
//! call gives one tree: caller rpc -> callee rpc -> callee db.
mod common;
use common::*;
use futures_util::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};
use osprofiler_core::{self as osp, Trace, headers::HmacKeys};
use osprofiler_oslo::amqp;
use osprofiler_oslo::context::{TraceContext, serve};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Mutex, oneshot};

const URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

async fn connect() -> Connection {
    amqp::connect(URL, ConnectionProperties::default())
        .await
        .unwrap_or_else(|e| {
            panic!("RabbitMQ at 127.0.0.1:5672 (guest/guest) is required for this test: {e}")
        })
}

/// The callee: a message body is `{"context": {...}, "method": ...}`; the trace comes from the
/// context's trace_info or, failing that, from the AMQP headers.
async fn start_callee(ch: Channel, queue: String) {
    let mut incoming = ch
        .basic_consume(
            queue.as_str().into(),
            "callee".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    let keys = HmacKeys::new(["rpc-key"]);
    tokio::spawn(async move {
        while let Some(Ok(delivery)) = incoming.next().await {
            let body: Value = serde_json::from_slice(&delivery.data).unwrap();
            let caller = TraceContext::extract(&body["context"])
                .and_then(|c| c.profiler())
                .or_else(|| {
                    amqp::extract(delivery.properties.headers().as_ref(), &keys)
                        .and_then(|v| v.profiler())
                });
            let method = body["method"].as_str().unwrap_or("?").to_owned();
            let answer = serve(caller, &method, async {
                let _db = Trace::new("db", || osp::info!({"db": {"statement": "SELECT 1"}}));
                tokio::task::yield_now().await;
                osp::get()
                    .map(|p| p.base_id().to_string())
                    .unwrap_or_default()
            })
            .await;
            let reply_to = delivery.properties.reply_to().clone().unwrap();
            let props = BasicProperties::default()
                .with_correlation_id(delivery.properties.correlation_id().clone().unwrap());
            ch.basic_publish(
                "".into(),
                reply_to,
                BasicPublishOptions::default(),
                answer.as_bytes(),
                props,
            )
            .await
            .unwrap();
            delivery.ack(BasicAckOptions::default()).await.unwrap();
        }
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rpc_calls_over_rabbitmq_make_one_tree_each() {
    collector();
    let conn = connect().await;
    let queue = format!("osprofiler-test-{}", uuid::Uuid::new_v4());
    let callee = conn.create_channel().await.unwrap();
    callee
        .queue_declare(
            queue.as_str().into(),
            QueueDeclareOptions {
                auto_delete: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
    start_callee(callee, queue.clone()).await;

    // The caller's replies, matched by correlation id.
    let caller = conn.create_channel().await.unwrap();
    let replies = caller
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
    let waiting: Arc<Mutex<HashMap<String, oneshot::Sender<String>>>> = Arc::default();
    let mut replies_in = caller
        .basic_consume(
            replies.name().clone(),
            "caller".into(),
            BasicConsumeOptions {
                no_ack: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
    let w = waiting.clone();
    tokio::spawn(async move {
        while let Some(Ok(d)) = replies_in.next().await {
            let id = d.properties.correlation_id().clone().unwrap().to_string();
            if let Some(tx) = w.lock().await.remove(&id) {
                let _ = tx.send(String::from_utf8_lossy(&d.data).into_owned());
            }
        }
    });

    let mut calls = Vec::new();
    for i in 0..20 {
        let (caller, queue, waiting, reply_to) = (
            caller.clone(),
            queue.clone(),
            waiting.clone(),
            replies.name().clone(),
        );
        calls.push(tokio::spawn(osp::trace_scope(async move {
            let p = osp::init("rpc-key", None, None).unwrap();
            let rpc = Trace::new("rpc", || osp::info!({"function": {"name": "api.call"}}));
            let (in_context, mut headers) = (i % 2 == 0, FieldTable::default());
            let mut context = serde_json::Map::new();
            if in_context {
                TraceContext::inject(&mut context); // oslo-style
            } else {
                amqp::inject(&mut headers); // signed headers
            }
            let id = uuid::Uuid::new_v4().to_string();
            let (tx, rx) = oneshot::channel();
            waiting.lock().await.insert(id.clone(), tx);
            let body = json!({"context": context, "method": format!("svc.method{i}")}).to_string();
            let props = BasicProperties::default()
                .with_headers(headers)
                .with_reply_to(reply_to)
                .with_correlation_id(id.as_str().into());
            caller
                .basic_publish(
                    "".into(),
                    queue.as_str().into(),
                    BasicPublishOptions::default(),
                    body.as_bytes(),
                    props,
                )
                .await
                .unwrap()
                .await
                .unwrap();
            let seen = tokio::time::timeout(Duration::from_secs(20), rx)
                .await
                .expect("RPC reply from RabbitMQ")
                .unwrap();
            (
                p.base_id().to_string(),
                rpc.id().unwrap().to_string(),
                seen,
                i,
            )
        })));
    }
    for c in calls {
        let (base, caller_rpc, seen, i) = c.await.unwrap();
        assert_eq!(seen, base, "call {i}: the callee ran in the caller's trace");
        let msgs = messages_of(&base);
        let callee_rpc = msgs
            .iter()
            .find(|m| m["name"] == "rpc-start" && m["trace_id"] != caller_rpc.as_str())
            .unwrap();
        assert_eq!(callee_rpc["parent_id"], caller_rpc.as_str(), "call {i}");
        assert_eq!(
            callee_rpc["info"]["function"]["name"],
            format!("svc.method{i}")
        );
        assert_eq!(one(&msgs, "db-start")["parent_id"], callee_rpc["trace_id"]);
        assert_eq!(msgs.len(), 6, "call {i}: rpc, rpc, db started and stopped");
    }
}
