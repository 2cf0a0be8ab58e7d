//! No key and no token reaches `Debug` for the public types of osprofiler-http that hold one,
//! over generated keys.

use osprofiler_http::OsProfilerLayer;
use proptest::prelude::*;
use tower::Layer as _;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn keys_and_tokens_stay_out_of_debug(
        key in "[A-Za-z0-9+/_-]{12,40}",
        old in "[A-Za-z0-9+/_-]{12,40}",
    ) {
        let layer = OsProfilerLayer::new([key.clone(), old.clone()]);
        let service = layer.clone().layer(tower::service_fn(|_: http::Request<()>| async {
            Ok::<_, std::convert::Infallible>(http::Response::new(()))
        }));
        let texts = vec![format!("{layer:?}"), format!("{service:?}")];
        let leak = osprofiler_testkit::first_leak(&texts, &[&key, &old]);
        prop_assert!(leak.is_none(), "shown: {:?}", leak);
    }
}
