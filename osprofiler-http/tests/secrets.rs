//! No key and no token reaches `Debug` for the public types of osprofiler-http that hold one,
//! over generated keys.

use osprofiler_http::OsProfilerLayer;
use osprofiler_http::rpc::TraceContext;
use proptest::prelude::*;
use tower::Layer as _;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn keys_and_tokens_stay_out_of_debug(
        key in "[A-Za-z0-9+/_-]{12,40}",
        old in "[A-Za-z0-9+/_-]{12,40}",
        token in "[A-Za-z0-9]{16,40}",
    ) {
        let layer = OsProfilerLayer::new([key.clone(), old.clone()]);
        let service = layer.clone().layer(tower::service_fn(|_: http::Request<()>| async {
            Ok::<_, std::convert::Infallible>(http::Response::new(()))
        }));
        let ctx = TraceContext { hmac_key: key.clone(), base_id: "b".into(), parent_id: "p".into() };
        let mut texts = vec![format!("{layer:?}"), format!("{service:?}"), format!("{ctx:?}")];
        #[cfg(feature = "oslo")]
        {
            use osprofiler_http::oslo::{Request, ServerOptions};
            let mut opts = ServerOptions::new("compute", "host-1");
            opts.trusted_keys = Some(vec![key.clone(), old.clone()]);
            let mut req = Request::new("boot", Default::default());
            req.context.insert("auth_token".into(), token.clone().into());
            req.trace = Some(ctx.clone());
            texts.push(format!("{opts:?}"));
            texts.push(format!("{req:?}"));
            prop_assert!(texts.last().unwrap().contains("auth_token"));
        }
        let leak = osprofiler_testkit::first_leak(&texts, &[&key, &old, &token]);
        prop_assert!(leak.is_none(), "shown: {:?}", leak);
    }
}
