//! W3C trace context: the `traceparent` a command carries into its event, taken from the request or started here.

use axum::http::HeaderMap;
use uuid::Uuid;

/// The request's `traceparent` when it is well formed, otherwise a new one with a fresh trace id.
pub fn traceparent(headers: &HeaderMap) -> String {
    headers.get("traceparent").and_then(|v| v.to_str().ok()).filter(|v| is_valid(v)).map(str::to_owned).unwrap_or_else(
        || {
            let trace_id = Uuid::new_v4().simple().to_string();
            let span_id = &Uuid::new_v4().simple().to_string()[..16];
            format!("00-{trace_id}-{span_id}-01")
        },
    )
}

/// `version-traceid-spanid-flags`, lower-case hex, ids not all zero (W3C Trace Context, level 1).
fn is_valid(value: &str) -> bool {
    let parts: Vec<&str> = value.split('-').collect();
    let hex =
        |s: &str, len: usize| s.len() == len && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    parts.len() == 4
        && hex(parts[0], 2)
        && parts[0] != "ff"
        && hex(parts[1], 32)
        && parts[1].bytes().any(|b| b != b'0')
        && hex(parts[2], 16)
        && parts[2].bytes().any(|b| b != b'0')
        && hex(parts[3], 2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_a_valid_traceparent_and_replaces_an_invalid_one() {
        let valid = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let mut headers = HeaderMap::new();
        headers.insert("traceparent", valid.parse().expect("header value"));
        assert_eq!(traceparent(&headers), valid);

        headers.insert("traceparent", "00-00000000000000000000000000000000-00f067aa0ba902b7-01".parse().expect("hv"));
        let fresh = traceparent(&headers);
        assert!(is_valid(&fresh), "{fresh}");
        assert!(is_valid(&traceparent(&HeaderMap::new())));
    }
}
