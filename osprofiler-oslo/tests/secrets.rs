//! No key, token or password reaches `Debug` or an error of the public items of
//! osprofiler-oslo that hold or read one, over generated secrets.

use osprofiler_oslo::amqp::transport_uris;
use osprofiler_oslo::context::TraceContext;
use osprofiler_oslo::{Request, ServerOptions};
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn keys_and_tokens_stay_out_of_debug(
        key in "[A-Za-z0-9+/_-]{12,40}",
        old in "[A-Za-z0-9+/_-]{12,40}",
        token in "[A-Za-z0-9]{16,40}",
    ) {
        let ctx = TraceContext { hmac_key: key.clone(), base_id: "b".into(), parent_id: "p".into(), provisional: None };
        let mut opts = ServerOptions::new("compute", "host-1");
        opts.trusted_keys = Some(vec![key.clone(), old.clone()]);
        let mut req = Request::new("boot", Default::default());
        req.context.insert("auth_token".into(), token.clone().into());
        req.trace = Some(ctx.clone());
        let texts = vec![format!("{ctx:?}"), format!("{opts:?}"), format!("{req:?}")];
        prop_assert!(texts[2].contains("auth_token"));
        let leak = osprofiler_testkit::first_leak(&texts, &[&key, &old, &token]);
        prop_assert!(leak.is_none(), "shown: {:?}", leak);
    }

    #[test]
    fn transport_url_errors_leave_the_password_out(password in "[A-Za-z0-9]{12,40}") {
        let errors: Vec<String> = [
            format!("rabbit://nova:{password}@mq:notaport/"),
            format!("rabbit://nova:{password}%zz@mq/"),
            format!("rabbit://nova:{password}%ff@mq/"),
            format!("rabbit://nova:{password}@/"),
            format!("kafka://nova:{password}@mq/"),
            format!("amqp://nova:{password}@mq:notaport/%2f"),
        ]
        .iter()
        .map(|url| transport_uris(url).expect_err(url))
        .collect();
        let leak = osprofiler_testkit::first_leak(&errors, &[&password]);
        prop_assert!(leak.is_none(), "shown: {:?}", leak);
    }
}
