//! The paths that moved to osprofiler-oslo still name the same items in 0.2 (deprecated).
#![allow(deprecated)]

use osprofiler_http::{oslo, rpc};

#[tokio::test(flavor = "current_thread")]
async fn the_old_rpc_paths_name_the_context_items() {
    let ctx: osprofiler_oslo::context::TraceContext = rpc::TraceContext {
        hmac_key: "k".into(),
        base_id: "b".into(),
        parent_id: "p".into(),
        provisional: None,
    };
    assert_eq!(rpc::CONTEXT_KEY, osprofiler_oslo::context::CONTEXT_KEY);
    let mut context = serde_json::Map::new();
    context.insert(rpc::CONTEXT_KEY.into(), serde_json::to_value(&ctx).unwrap());
    let back = rpc::TraceContext::extract(&serde_json::Value::Object(context));
    assert_eq!(back.as_ref(), Some(&ctx));
    let seen = rpc::serve(ctx.profiler(), "m", async {
        osprofiler_core::get().map(|p| p.base_id().to_string())
    })
    .await;
    assert_eq!(seen.as_deref(), Some("b"));
}

#[test]
fn the_old_amqp_and_oslo_paths_name_the_rpc_items() {
    assert_eq!(
        rpc::amqp::CONNECT_TIMEOUT,
        osprofiler_oslo::amqp::CONNECT_TIMEOUT
    );
    let uris = rpc::amqp::transport_uris("rabbit://nova:s%40cret@mq/").unwrap();
    assert_eq!(uris[0].authority.userinfo.password, "s@cret");
    let mut headers = lapin::types::FieldTable::default();
    rpc::amqp::inject(&mut headers);
    let keys = osprofiler_core::headers::HmacKeys::new(["k"]);
    assert!(rpc::amqp::extract(Some(&headers), &keys).is_none());

    assert_eq!(oslo::CONTROL_EXCHANGE, "openstack");
    assert_eq!(
        (oslo::ENVELOPE_VERSION, oslo::DEFAULT_MAX_MESSAGE),
        (osprofiler_oslo::ENVELOPE_VERSION, 1 << 20)
    );
    assert_eq!(oslo::DEFAULT_PREFETCH, osprofiler_oslo::DEFAULT_PREFETCH);
    assert_eq!(
        oslo::DEFAULT_STOP_TIMEOUT,
        osprofiler_oslo::DEFAULT_STOP_TIMEOUT
    );
    let opts: osprofiler_oslo::ServerOptions = oslo::ServerOptions::new("compute", "host-1");
    assert_eq!(opts.exchange, oslo::CONTROL_EXCHANGE);
    let req: osprofiler_oslo::Request = oslo::Request::new("add", Default::default());
    let back: Result<oslo::Request, oslo::EnvelopeError> =
        oslo::Request::parse(&req.to_body(), 1 << 20);
    assert_eq!(back.unwrap().method, "add");
    let reply = oslo::Reply {
        msg_id: "m".into(),
        outcome: Err(oslo::RemoteError::builtin("ValueError", "no")),
    };
    assert!(matches!(
        osprofiler_oslo::Reply::parse(&reply.to_body(), 1 << 20),
        Ok(osprofiler_oslo::Reply {
            outcome: Err(_),
            ..
        })
    ));
    let target: oslo::Target = osprofiler_oslo::Target::topic("compute").server("h");
    assert_eq!(target.server.as_deref(), Some("h"));
    let e: oslo::RpcError = osprofiler_oslo::RpcError::Arguments("x".into());
    assert!(matches!(e, oslo::RpcError::Arguments(_)));
    // The server and client types, by name.
    let _: Option<oslo::RpcServer> = None::<osprofiler_oslo::RpcServer>;
    let _: Option<oslo::RpcClient> = None::<osprofiler_oslo::RpcClient>;
}
