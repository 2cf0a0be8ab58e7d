//! No key and no password reaches `Debug` or an error's text, for every public type of the
//! core that holds one, over generated keys and passwords.

use osprofiler_core::ProfilerConfig;
use osprofiler_core::config::create_driver;
use osprofiler_core::headers::{HmacKeys, TraceData, signed_pack, signed_unpack};
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn keys_and_passwords_stay_out_of_debug_and_errors(
        key in "[A-Za-z0-9+/_-]{12,40}",
        old in "[A-Za-z0-9+/_-]{12,40}",
        pass in "[A-Za-z0-9_.~-]{8,32}",
    ) {
        let conf = ProfilerConfig::builder()
            .hmac_keys([key.clone(), old.clone()])
            .connection_string(format!("redis://admin:{pass}@127.0.0.1:6379/0"))
            .build();
        let builder = ProfilerConfig::builder()
            .hmac_keys([key.clone()])
            .connection_string(format!("postgresql://osp:{pass}@db:5432/osp"));

        let mut c = ProfilerConfig::default();
        // A misspelled option given a key, a connection string without a scheme.
        let misspelled = c.set("hmac_key", &key).unwrap_err();
        let no_scheme = c.set("connection_string", &format!("osp:{pass}@db/osp")).unwrap_err();
        // A driver error for a connection string of an unknown scheme.
        let driver = create_driver(&format!("nosuch://osp:{pass}@db"), &conf).map(drop).unwrap_err();

        let headers = signed_pack(&TraceData { base_id: "b".into(), parent_id: None }, &key);
        let verified = signed_unpack(&headers.x_trace_info, &headers.x_trace_hmac, &[&old, &key])
            .expect("signed with one of the keys");
        let keys = HmacKeys::new([key.clone(), old.clone()]);

        let texts = [
                format!("{conf:?}"),
                format!("{builder:?}"),
                format!("{misspelled}"),
                format!("{misspelled:?}"),
                format!("{no_scheme}"),
                format!("{no_scheme:?}"),
                format!("{driver}"),
                format!("{driver:?}"),
                format!("{verified:?}"),
                format!("{keys:?}"),
            ];
        let leak = osprofiler_testkit::first_leak(&texts, &[&key, &old, &pass]);
        prop_assert!(leak.is_none(), "shown: {:?}", leak);
        // What is shown still says what is wrong.
        prop_assert!(misspelled.to_string().contains("hmac_key"));
        prop_assert!(no_scheme.to_string().contains("@db/osp"));
        let shown = format!("{conf:?}");
        prop_assert!(shown.contains("redis://admin:***@127.0.0.1:6379/0"), "{}", shown);
        prop_assert!(shown.contains("[REDACTED; 2]"), "{}", shown);
    }
}
