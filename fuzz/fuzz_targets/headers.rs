//! Fuzzes the trace-header parser: arbitrary X-Trace-Info / X-Trace-HMAC bytes must never
//! panic, and must only verify when the MAC is right for one of the keys.
#![no_main]

use libfuzzer_sys::fuzz_target;
use osprofiler_core::headers::{HmacKeys, generate_hmac, signed_unpack_bytes};

fuzz_target!(|data: &[u8]| {
    // First byte: where to split info from mac; second: sign the info with a known key or not.
    let (Some(&split), Some(&sign)) = (data.first(), data.get(1)) else { return };
    let rest = &data[2..];
    let cut = (split as usize).min(rest.len());
    let (info, mac) = rest.split_at(cut);
    let keys = HmacKeys::new(["k1", "k2"]);
    let signed;
    let mac: &[u8] = if sign % 2 == 0 {
        signed = generate_hmac(&String::from_utf8_lossy(info), "k2");
        signed.as_bytes()
    } else {
        mac
    };
    let a = signed_unpack_bytes(info, mac, &["k1", "k2"]);
    let b = keys.verify_bytes(info, mac);
    assert_eq!(a, b, "prepared and one-off verification agree");
    if let Some(v) = a {
        assert_eq!(&*v.hmac_key, "k2");
        assert!(std::str::from_utf8(info).is_ok());
    }
    // The same bytes as real request headers through the server-side check.
    if let (Ok(i), Ok(m)) = (http::HeaderValue::from_bytes(info), http::HeaderValue::from_bytes(mac)) {
        let req = http::Request::builder().header("X-Trace-Info", i).header("X-Trace-HMAC", m).body(()).unwrap();
        let _ = osprofiler_http::verify_request(&req, &keys);
    }
});
