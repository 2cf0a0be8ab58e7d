//! The RPC server's sampler, on RabbitMQ (127.0.0.1:5672): requests without `trace_info`
//! traced for its share; a provisional trace carried to the next server in the request
//! context (`osprofiler_provisional`, next to `trace_info`), kept by that server's error.

use osprofiler_core::notifier::{Reader, TraceState};
use osprofiler_core::sampling::Sampler;
use osprofiler_oslo::{RemoteError, RpcClient, RpcServer, ServerOptions, Target};
use osprofiler_testkit::collector;
use serde_json::{Value, json};
use std::time::Duration;

const URL: &str = "rabbit://guest:guest@127.0.0.1:5672/";
const HINT: &str = "RabbitMQ at 127.0.0.1:5672 (guest/guest; scripts/test starts it)";

fn new_topic() -> String {
    format!("osp-sampling-{}", uuid::Uuid::new_v4().simple())
}

/// The current trace's base id, or null.
fn base() -> Value {
    osprofiler_core::get().map_or(Value::Null, |p| p.base_id().to_string().into())
}

/// `edge` answers `front` by calling `back.<method>` on the next server; `back` answers
/// `ok` and fails `boom`.
async fn servers(sampler: Sampler) -> (RpcServer, RpcServer, String) {
    let (edge_topic, back_topic) = (new_topic(), new_topic());
    let mut opts = ServerOptions::new(&back_topic, "b");
    opts.trusted_keys = Some(vec!["key".into()]);
    opts.sampler = Sampler::new();
    let back = RpcServer::start(URL, opts, |req| async move {
        match req.method.as_str() {
            "ok" => Ok(base()),
            _ => Err(RemoteError::builtin("ValueError", "boom")),
        }
    })
    .await
    .unwrap_or_else(|e| panic!("{HINT}: {e}"));
    let mut opts = ServerOptions::new(&edge_topic, "e");
    opts.trusted_keys = Some(vec!["key".into()]);
    opts.sampler = sampler;
    let edge = RpcServer::start(URL, opts, move |req| {
        let back_topic = back_topic.clone();
        async move {
            let client = RpcClient::connect(URL).await.unwrap();
            let method = req.args["method"].as_str().unwrap_or("ok").to_owned();
            let out = client
                .call(&Target::topic(&back_topic), &method, (), ())
                .await;
            client.close().await;
            match out {
                Ok(_) => Ok(base()),
                Err(e) => Err(RemoteError::builtin("RuntimeError", e.to_string())),
            }
        }
    })
    .await
    .unwrap_or_else(|e| panic!("{HINT}: {e}"));
    (edge, back, edge_topic)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rpc_requests_without_a_trace_are_sampled_and_provisional_traces_cross_servers() {
    collector();
    // Head sampling: every request traced and stored, the next server's point included.
    let (edge, back, topic) = servers(Sampler::new().ratio(1.0)).await;
    let client = RpcClient::connect(URL).await.unwrap();
    let got = client
        .call(&Target::topic(&topic), "front", json!({"method": "ok"}), ())
        .await
        .unwrap();
    let sampled = got.as_str().expect("traced").to_owned();
    osprofiler_testkit::wait_until("both rpc points", Duration::from_secs(10), || {
        collector()
            .messages_of(&sampled)
            .iter()
            .filter(|m| m["name"] == "rpc-stop")
            .count()
            == 3
    });
    assert_eq!(
        collector().memory.trace_state(&sampled).unwrap(),
        TraceState::Stored
    );
    // A caller whose key the server does not trust: its trace is not continued, and the
    // sampler starts one, as for a request without any.
    let (callers, got) = osprofiler_core::trace_scope(async {
        let p = osprofiler_core::init("untrusted", None, None).unwrap();
        let got = client
            .call(&Target::topic(&topic), "front", json!({"method": "ok"}), ())
            .await
            .unwrap();
        (p.base_id().to_string(), got)
    })
    .await;
    let started = got.as_str().expect("traced by the sampler");
    assert_ne!(started, callers);
    edge.stop().await;
    back.stop().await;

    // Tail keep: the next server's error keeps the trace; a quiet request stays hidden.
    let (edge, back, topic) = servers(Sampler::new().keep_slow(Duration::from_secs(30))).await;
    let failed = client
        .call(
            &Target::topic(&topic),
            "front",
            json!({"method": "boom"}),
            (),
        )
        .await
        .unwrap_err();
    assert!(failed.to_string().contains("boom"), "{failed}");
    let quiet = client
        .call(&Target::topic(&topic), "front", json!({"method": "ok"}), ())
        .await
        .unwrap();
    let quiet = quiet.as_str().expect("traced provisionally").to_owned();
    osprofiler_testkit::wait_until("the quiet trace's points", Duration::from_secs(10), || {
        collector()
            .messages_of(&quiet)
            .iter()
            .filter(|m| m["name"] == "rpc-stop")
            .count()
            == 3
    });
    assert_eq!(
        collector().memory.trace_state(&quiet).unwrap(),
        TraceState::Pending,
        "hidden until kept"
    );
    // The failed trace: find it among the kept ones, with the next server's error in it.
    let kept: Vec<String> = collector()
        .memory
        .list_traces()
        .unwrap()
        .into_iter()
        .map(|t| t.base_id)
        .filter(|b| {
            collector()
                .messages_of(b)
                .iter()
                .any(|m| m["info"]["etype"] == "ValueError")
        })
        .collect();
    assert_eq!(kept.len(), 1, "{kept:?}");
    assert_eq!(
        collector().memory.trace_state(&kept[0]).unwrap(),
        TraceState::Stored
    );
    client.close().await;
    edge.stop().await;
    back.stop().await;
}
