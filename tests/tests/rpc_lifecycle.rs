//! An RPC server's life as an operator meets it, on RabbitMQ (127.0.0.1:5672): oslo's own
//! `transport_url` form (several hosts, the first one down), arguments of any `Serialize`
//! type, and a graceful stop under load — no call lost, the ones in flight answered by the
//! stopping server, the rest by the next one.

use osprofiler_oslo::{RemoteError, RpcClient, RpcError, RpcServer, ServerOptions, Target};
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;

/// oslo.messaging's form: a dead host first (port 1), then the real one; `/` is the default
/// virtual host.
const TRANSPORT_URL: &str = "rabbit://guest:guest@127.0.0.1:1,guest:guest@127.0.0.1:5672/";
const HINT: &str = "RabbitMQ at 127.0.0.1:5672 (guest/guest; scripts/test starts it)";

/// Permits for the calls a server has started (none yet).
fn started() -> Arc<Semaphore> {
    Arc::new(Semaphore::new(0))
}

fn new_topic() -> String {
    format!("osp-life-{}", uuid::Uuid::new_v4().simple())
}

/// A server whose `slow` method takes `ms` milliseconds (the work in flight when the server
/// stops: the time is what is tested); counts the calls it answered, and adds a permit to
/// `started` as each one starts.
async fn server(
    topic: &str,
    name: &str,
    answered: Arc<AtomicUsize>,
    started: Arc<Semaphore>,
    ms: u64,
) -> RpcServer {
    let mut opts = ServerOptions::new(topic, name);
    opts.prefetch = 4;
    RpcServer::start(TRANSPORT_URL, opts, move |req| {
        let (answered, started) = (answered.clone(), started.clone());
        async move {
            match req.method.as_str() {
                "slow" => {
                    started.add_permits(1);
                    tokio::time::sleep(Duration::from_millis(ms)).await;
                    answered.fetch_add(1, Ordering::SeqCst);
                    Ok(req.args["i"].clone())
                }
                "echo" => Ok(Value::Object(req.args)),
                other => Err(RemoteError::builtin("AttributeError", other)),
            }
        }
    })
    .await
    .unwrap_or_else(|e| panic!("{HINT}: {e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oslo_transport_urls_and_serializable_arguments() {
    let topic = new_topic();
    let srv = server(&topic, "a", Arc::default(), started(), 0).await;
    let client = RpcClient::connect(TRANSPORT_URL)
        .await
        .unwrap_or_else(|e| panic!("{HINT}: {e}"));
    #[derive(serde::Serialize)]
    struct Boot<'a> {
        flavor: &'a str,
        count: u32,
    }
    let got = client
        .call(
            &Target::topic(&topic),
            "echo",
            Boot {
                flavor: "m1.small",
                count: 2,
            },
            (),
        )
        .await
        .unwrap();
    assert_eq!(got, json!({"flavor": "m1.small", "count": 2}));
    let got = client
        .call(
            &Target::topic(&topic),
            "echo",
            json!({"a": 1}),
            json!({"user": "alice"}),
        )
        .await
        .unwrap();
    assert_eq!(got, json!({"a": 1}));
    // Arguments that are not keyword arguments: an error before anything is sent.
    let e = client
        .call(&Target::topic(&topic), "echo", vec![1, 2], ())
        .await
        .unwrap_err();
    assert!(matches!(e, RpcError::Arguments(_)), "{e}");
    // A builtin exception comes back with its module.
    match client.call(&Target::topic(&topic), "nope", (), ()).await {
        Err(RpcError::Remote(e)) => assert_eq!(
            (e.module.as_str(), e.class.as_str()),
            ("builtins", "AttributeError")
        ),
        other => panic!("{other:?}"),
    }
    // A bad transport URL says why, without its password.
    let e = RpcClient::connect("rabbit://u:hunter2@host:notaport/")
        .await
        .unwrap_err();
    assert!(
        !e.to_string().contains("hunter2") && e.to_string().contains("port"),
        "{e}"
    );
    client.close().await;
    srv.stop().await;
}

/// Twelve slow calls against a server that takes four at a time; it stops while they run:
/// the four in flight are answered by it, the eight it had not started go back to RabbitMQ and
/// are answered by the next server. Every caller gets its answer, exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graceful_stop_loses_no_call() {
    let topic = new_topic();
    let (first, second) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let running = started();
    let srv = server(&topic, "a", first.clone(), running.clone(), 300).await;
    let client = Arc::new(RpcClient::connect(TRANSPORT_URL).await.unwrap());
    let calls: Vec<_> = (0..12)
        .map(|i| {
            let (client, topic) = (client.clone(), topic.clone());
            tokio::spawn(async move {
                client
                    .call(&Target::topic(&topic), "slow", json!({"i": i}), ())
                    .await
            })
        })
        .collect();
    // The first four are running.
    running.acquire_many(4).await.unwrap().forget();
    let t0 = Instant::now();
    srv.stop_within(Duration::from_secs(10)).await;
    let stop_took = t0.elapsed();
    assert_eq!(
        first.load(Ordering::SeqCst),
        4,
        "the requests in flight finished before the stop returned"
    );
    assert!(
        stop_took < Duration::from_secs(5),
        "the stop waited for those only: {stop_took:?}"
    );

    let next = server(&topic, "b", second.clone(), started(), 0).await;
    for (i, c) in calls.into_iter().enumerate() {
        let got = c.await.unwrap().unwrap_or_else(|e| panic!("call {i}: {e}"));
        assert_eq!(got, json!(i));
    }
    assert_eq!(
        first.load(Ordering::SeqCst) + second.load(Ordering::SeqCst),
        12,
        "each call answered once"
    );
    assert_eq!(second.load(Ordering::SeqCst), 8);
    next.stop().await;
}

/// A handler still running at the deadline is cut off; its request goes back to RabbitMQ and
/// the next server answers it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_still_running_at_the_deadline_goes_to_the_next_server() {
    let topic = new_topic();
    let (first, second) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let running = started();
    let srv = server(&topic, "a", first.clone(), running.clone(), 5_000).await;
    let client = Arc::new(RpcClient::connect(TRANSPORT_URL).await.unwrap());
    let call = {
        let (client, topic) = (client.clone(), topic.clone());
        tokio::spawn(async move {
            client
                .call(&Target::topic(&topic), "slow", json!({"i": 7}), ())
                .await
        })
    };
    running.acquire().await.unwrap().forget(); // the call is running
    let t0 = Instant::now();
    srv.stop_within(Duration::from_millis(300)).await;
    assert!(
        t0.elapsed() < Duration::from_secs(3),
        "the deadline holds: {:?}",
        t0.elapsed()
    );
    assert_eq!(first.load(Ordering::SeqCst), 0);
    let next = server(&topic, "b", second.clone(), started(), 0).await;
    assert_eq!(call.await.unwrap().unwrap(), json!(7));
    assert_eq!(second.load(Ordering::SeqCst), 1);
    next.stop().await;
}
