//! Generated input: whatever the values, secrets in span fields never reach the collector —
//! fields with secret names, URL passwords (also when a long value is cut inside the URL) and
//! SQL literals.

use osprofiler_testkit::captured_trace;
use proptest::prelude::*;
use tracing_subscriber::prelude::*;

#[derive(Debug)]
#[allow(dead_code)] // read through Debug
struct Conn {
    label: String,
    url: String,
    tail: String,
}

/// The messages of a trace in which `f` ran under a layer cutting values at `max`, as JSON.
fn traced_json(max: usize, f: impl FnOnce()) -> String {
    let subscriber =
        tracing_subscriber::registry().with(osprofiler_tracing::layer().max_field_len(max));
    let (_, msgs) = tracing::subscriber::with_default(subscriber, || captured_trace(f));
    assert!(!msgs.is_empty(), "the span became a point");
    msgs.iter()
        .map(|m| m.to_json())
        .collect::<Vec<_>>()
        .join("\n")
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn secret_named_fields_are_masked(value in any::<String>(), n in any::<i64>()) {
        let json = traced_json(1024, || {
            let span = tracing::info_span!(
                "login",
                password = %value,
                auth.token = n,
                session_id = ?value,
                x_api_key = value.as_str(),
            );
            drop(span.entered());
        });
        let msgs: Vec<serde_json::Value> =
            json.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        let fields = &msgs[0]["info"]["fields"];
        for name in ["password", "auth.token", "session_id", "x_api_key"] {
            prop_assert_eq!(&fields[name], "***");
        }
    }

    #[test]
    fn url_passwords_never_leak(
        label in "[a-z ]{0,40}",
        user in "[a-z]{0,8}",
        password in "Q[A-Z]{7,20}",
        host in "[a-z]{1,10}",
        path in "(/[a-z]{0,10})?",
        tail in "[a-z ]{0,30}",
        max in 1usize..160,
        as_string in any::<bool>(),
    ) {
        let url = format!("postgresql://{user}:{password}@{host}{path}");
        let json = traced_json(max, || {
            let conn = Conn { label: label.clone(), url: url.clone(), tail: tail.clone() };
            let span = if as_string {
                tracing::info_span!("connect", dsn = %format!("{label} {url} {tail}"))
            } else {
                tracing::info_span!("connect", conn = ?conn)
            };
            drop(span.entered());
        });
        prop_assert!(!json.contains(&password), "password {} in {}", password, json);
        // and not even a prefix of it (a value cut inside the URL)
        prop_assert!(!json.contains(&password[..4]), "prefix of {} in {}", password, json);
    }

    #[test]
    fn sql_literals_never_leak(literal in "Q[A-Za-z0-9 ]{3,30}", number in 100_000u64..) {
        let json = traced_json(1024, || {
            let sql = format!("SELECT * FROM users WHERE name = '{literal}' AND id = {number}");
            drop(tracing::info_span!("query", db.statement = %sql).entered());
        });
        prop_assert!(!json.contains(&literal), "{} in {}", literal, json);
        prop_assert!(!json.contains(&number.to_string()), "{} in {}", number, json);
    }
}
