//! An RPC call over RabbitMQ between two services, all one trace: the caller's `rpc` point,
//! the callee's `rpc` handler (trace continued from signed AMQP headers) and its `db` work.
//!
//! Needs RabbitMQ at 127.0.0.1:5672 (guest/guest), or `AMQP_URL`:
//! `cargo run -p osprofiler-oslo --features amqp --example rpc_rabbitmq`
use futures_util::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, ConnectionProperties};
use osprofiler_core::{self as osp, Trace, headers::HmacKeys, memory::MemoryCollector};
use osprofiler_oslo::amqp;
use osprofiler_oslo::context::serve;
use std::time::Duration;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::var("AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into());
    let memory = MemoryCollector::new();
    let notifier = osp::notifier::QueueNotifier::start(memory.clone(), Default::default())?;
    osp::notifier::set(notifier.clone());

    let conn = amqp::connect(&url, ConnectionProperties::default())
        .await
        .map_err(|e| format!("RabbitMQ at {url} is required: {e}"))?;
    let requests = format!("osprofiler-example-{}", std::process::id());

    // The callee: continues the caller's trace from the message headers.
    let callee = conn.create_channel().await?;
    let opts = QueueDeclareOptions {
        auto_delete: true,
        ..Default::default()
    };
    callee
        .queue_declare(requests.as_str().into(), opts, FieldTable::default())
        .await?;
    let mut incoming = callee
        .basic_consume(
            requests.as_str().into(),
            "callee".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    let keys = HmacKeys::new(["SECRET_KEY"]);
    tokio::spawn(async move {
        while let Some(Ok(delivery)) = incoming.next().await {
            let caller = amqp::extract(delivery.properties.headers().as_ref(), &keys)
                .and_then(|v| v.profiler());
            let answer = serve(caller, "users.get", async {
                let _db = Trace::new(
                    "db",
                    || osp::info!({"db": {"statement": "SELECT name FROM users WHERE id = ?"}}),
                );
                tokio::time::sleep(Duration::from_millis(2)).await;
                b"alice".to_vec()
            })
            .await;
            if let Some(reply_to) = delivery.properties.reply_to() {
                let _ = callee
                    .basic_publish(
                        "".into(),
                        reply_to.clone(),
                        BasicPublishOptions::default(),
                        &answer,
                        BasicProperties::default(),
                    )
                    .await;
            }
            let _ = delivery.ack(BasicAckOptions::default()).await;
        }
    });

    // The caller: an rpc point around the call, its trace in the message headers.
    let caller = conn.create_channel().await?;
    let replies = caller
        .queue_declare(
            "".into(),
            QueueDeclareOptions {
                exclusive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await?;
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
        .await?;
    let base_id = osp::trace_scope(async {
        let p = osp::init("SECRET_KEY", None, None).expect("profiling is on");
        let _rpc = Trace::new(
            "rpc",
            || osp::info!({"function": {"name": "users_api.get"}}),
        );
        let mut headers = FieldTable::default();
        amqp::inject(&mut headers);
        let props = BasicProperties::default()
            .with_headers(headers)
            .with_reply_to(replies.name().clone());
        caller
            .basic_publish(
                "".into(),
                requests.as_str().into(),
                BasicPublishOptions::default(),
                b"get user 7",
                props,
            )
            .await?
            .await?;
        let reply = tokio::time::timeout(Duration::from_secs(10), replies_in.next())
            .await?
            .ok_or("no reply")??;
        println!("reply: {}", String::from_utf8_lossy(&reply.data));
        Ok::<_, Box<dyn std::error::Error>>(p.base_id().to_string())
    })
    .await?;

    notifier.flush_for(Duration::from_secs(5));
    println!(
        "{}",
        osp::report::Report::build(&memory.trace(&base_id)).render_tree()
    );
    Ok(())
}
