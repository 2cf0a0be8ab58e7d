//! The golden vectors of Python OSProfiler 4.4.0 (`tests/data/header-vectors.json`, made by
//! `scripts/regen-header-vectors` from the oracle): byte-identical packing, and verification.
use osprofiler_core::headers::{TraceData, signed_pack, signed_unpack};
use std::path::PathBuf;

#[test]
fn golden_vectors_pack_and_verify() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/header-vectors.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "the golden vectors are required at {} (scripts/regen-header-vectors makes them): {e}",
            path.display()
        )
    });
    let vectors: Vec<serde_json::Value> = serde_json::from_str(&text).unwrap();
    assert!(vectors.len() >= 3);
    for v in vectors {
        let key = v["key"].as_str().unwrap();
        let data = TraceData {
            base_id: v["data"]["base_id"].as_str().unwrap().to_owned(),
            parent_id: v["data"]["parent_id"].as_str().map(str::to_owned),
        };
        let h = signed_pack(&data, key);
        assert_eq!(
            h.x_trace_info,
            v["x_trace_info"].as_str().unwrap(),
            "info for key {key:?}"
        );
        assert_eq!(
            h.x_trace_hmac,
            v["x_trace_hmac"].as_str().unwrap(),
            "hmac for key {key:?}"
        );
        let got = signed_unpack(
            v["x_trace_info"].as_str().unwrap(),
            v["x_trace_hmac"].as_str().unwrap(),
            &["wrong", key],
        )
        .unwrap();
        assert_eq!(
            (
                got.base_id.to_string(),
                got.parent_id.map(|p| p.to_string()),
                &*got.hmac_key
            ),
            (data.base_id, data.parent_id, key)
        );
        assert!(signed_unpack(&h.x_trace_info, &h.x_trace_hmac, &["wrong"]).is_none());
    }
}
