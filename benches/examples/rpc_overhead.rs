//! The oslo.messaging RPC overhead of tracing, measured by interleaving (see
//! `benches/README.md`): untraced and traced calls alternate through the same
//! `osprofiler_oslo::RpcClient` → loopback RabbitMQ → `osprofiler_oslo::RpcServer` round trip
//! and are timed one by one, so the broker's and this VM's drifts hit both sides of each pair
//! alike. Compare with
//! `benches/python_rpc.py`, oslo.messaging's own round trip measured the same way.
//!
//! Usage: `rpc_overhead <mode> <pairs>` (RabbitMQ at 127.0.0.1:5672, guest/guest)
//! - `call`: an untraced call against one made in a trace: the caller's `rpc` point and its
//!   `trace_info` in the request context, the server's `rpc` point continuing the trace (the
//!   trace is started per call, as a request would)
//! - `envelope`: no broker — a request built, written, parsed and answered, untraced against
//!   traced (the envelope and trace work alone)
//!
//! Points go to the default-sized queue in front of a driver that discards them; a run in which
//! the queue dropped messages fails instead of reporting flattering numbers.
#![allow(missing_docs)]

use osprofiler_benches::interleaved_with;
use osprofiler_core::notifier::QueueOptions;
use osprofiler_core::{self as osp, Trace};
use osprofiler_oslo::context::TraceContext;
use osprofiler_oslo::{
    DEFAULT_MAX_MESSAGE, Reply, Request, RpcClient, RpcServer, ServerOptions, Target,
};
use serde_json::{Map, Value, json};
use std::time::Duration;

const AMQP: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";
const KEY: &str = "SECRET_KEY";

fn args(i: usize) -> Map<String, Value> {
    let mut a = Map::new();
    a.insert("a".into(), json!(i));
    a.insert("b".into(), json!(1));
    a
}

/// An `rpc` point's info as the client and server record it (`{"function": {"name", "args",
/// "kwargs"}}`, the kwargs in Python's repr).
fn rpc_info(name: &str, i: usize) -> osp::Info {
    let mut info = osp::Info::new();
    info.insert(
        "function".into(),
        json!({"name": name, "args": "()", "kwargs": format!("{{'a': {i}, 'b': 1}}")}),
    );
    info
}

/// What both sides do per request in `envelope` mode: the caller's `rpc` point and request
/// (with `trace_info` when traced), the callee's parse, its `rpc` point continued from
/// `trace_info`, the reply written and parsed.
fn envelope_round(i: usize) {
    let point = Trace::new("rpc", || rpc_info("add", i));
    let mut req = Request::new("add", args(i));
    req.trace = TraceContext::current();
    let body = req.to_body();
    let got = Request::parse(&body, DEFAULT_MAX_MESSAGE).expect("a request parses");
    let callee = got.trace.as_ref().and_then(|t| t.profiler());
    let sum = got.args["a"].as_i64().unwrap_or(0) + 1;
    let reply = osp::scope::with_trace(callee, || {
        let _point = Trace::new("rpc", || rpc_info("bench.add", i));
        Reply {
            msg_id: "m".into(),
            outcome: Ok(json!(sum)),
        }
    });
    let back = Reply::parse(&reply.to_body(), DEFAULT_MAX_MESSAGE).expect("a reply parses");
    assert!(back.outcome.is_ok());
    drop(point);
}

fn main() {
    let args_v: Vec<String> = std::env::args().skip(1).collect();
    let [mode, n] = &args_v[..] else {
        eprintln!("usage: rpc_overhead <call|envelope> <pairs>");
        std::process::exit(2);
    };
    let n: usize = n.parse().expect("pairs: a number");
    let queue = osprofiler_benches::install_discard_with(QueueOptions::default().capacity);
    let mut i = 0usize;
    match mode.as_str() {
        "envelope" => interleaved_with(
            mode,
            n,
            &mut || {
                i += 1;
                i
            },
            &mut envelope_round,
            &mut |i| {
                osp::init(KEY, None, None);
                envelope_round(i);
                osp::clean();
            },
        ),
        "call" => {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            let topic = format!("bench-{}", std::process::id());
            let (server, client) = rt.block_on(async {
                let mut opts = ServerOptions::new(&topic, "b1");
                opts.trusted_keys = Some(vec![KEY.into()]);
                let server = RpcServer::start(AMQP, opts, |req| async move {
                    let _point = Trace::new("db", osp::Info::new);
                    Ok(json!(req.args["a"].as_i64().unwrap_or(0) + 1))
                })
                .await
                .unwrap_or_else(|e| panic!("RabbitMQ at 127.0.0.1:5672 is required: {e}"));
                let client = RpcClient::connect(AMQP)
                    .await
                    .unwrap()
                    .timeout(Duration::from_secs(10));
                (server, client)
            });
            let target = Target::topic(&topic).server("b1");
            let call = |i: usize| {
                let sum = rt
                    .block_on(client.call(&target, "add", args(i), Map::new()))
                    .expect("the call is answered");
                assert_eq!(sum, json!(i as i64 + 1));
            };
            interleaved_with(
                mode,
                n,
                &mut || {
                    i += 1;
                    i
                },
                &mut |i| call(i),
                &mut |i| {
                    osp::init(KEY, None, None);
                    call(i);
                    osp::clean();
                },
            );
            rt.block_on(async {
                client.close().await;
                server.stop().await;
            });
        }
        _ => {
            eprintln!("unknown mode {mode}");
            std::process::exit(2);
        }
    }
    osprofiler_benches::assert_delivered_all(&queue);
}
