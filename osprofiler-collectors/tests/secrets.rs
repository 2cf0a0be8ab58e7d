//! No password or auth header reaches a driver's `Debug` or its errors, over generated
//! passwords: every driver that holds credentials, opened without a server (they connect
//! lazily).

use osprofiler_collectors::{
    ElasticsearchDriver, MessagingDriver, MongoDriver, OtlpDriver, RedisDriver,
};
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    #[test]
    fn passwords_stay_out_of_debug_and_errors(
        pass in "[A-Za-z0-9_.~-]{10,32}",
        token in "[A-Za-z0-9]{16,40}",
    ) {
        let mut texts = vec![
            format!("{:?}", OtlpDriver::open(&format!("otlp://u:{pass}@127.0.0.1:4318?headers=authorization%3DBearer%20{token}")).unwrap()),
            format!("{:?}", ElasticsearchDriver::open(&format!("elasticsearch://u:{pass}@127.0.0.1:9200")).unwrap()),
            format!("{:?}", RedisDriver::open(&format!("redis://:{pass}@127.0.0.1:6379"), false).unwrap()),
            format!("{:?}", MongoDriver::open(&format!("mongodb://u:{pass}@127.0.0.1:27017"), false).unwrap()),
            format!("{:?}", MessagingDriver::open(&format!("messaging://u:{pass}@127.0.0.1:5672/")).unwrap()),
        ];
        // Errors of bad connection strings that carry a password.
        for bad in [
            format!("otlp+ftp://u:{pass}@h"),
            format!("elasticsearch://u:{pass}@h?index=BAD"),
            format!("otlp://h?headers=Bearer%20{token}"),
        ] {
            let conf = osprofiler_core::ProfilerConfig::default();
            let e = osprofiler_collectors::open(&bad, &conf).map(drop).unwrap_err();
            texts.push(format!("{e}"));
            texts.push(format!("{e:?}"));
        }
        let leak = osprofiler_testkit::first_leak(&texts, &[&pass, &token]);
        prop_assert!(leak.is_none(), "shown: {:?}", leak);
    }
}
