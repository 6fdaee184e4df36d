//! Query-string numbers shared by the read endpoints: `minVersion`, `minPosition`, `waitMs`.

use super::ApiError;

/// How long a read waits for `minVersion` / `minPosition` when the client does not say.
pub const DEFAULT_WAIT_MS: u64 = 2_000;
/// The longest wait a client may ask for.
pub const MAX_WAIT_MS: u64 = 30_000;

/// An optional integer from 0 to `max`; anything else is a 400 naming the parameter.
pub fn parse_number(name: &str, raw: Option<&str>, max: u64) -> Result<Option<u64>, ApiError> {
    let max = i64::try_from(max).unwrap_or(i64::MAX);
    let number = service_runtime::params::integer_in(name, raw, 0..=max).map_err(ApiError::BadRequest)?;
    Ok(number.map(|n| n.unsigned_abs()))
}

/// A version or position: 0 to `i64::MAX`.
pub fn parse_min(name: &str, raw: Option<&str>) -> Result<Option<i64>, ApiError> {
    Ok(parse_number(name, raw, i64::MAX as u64)?.map(|n| n as i64))
}

/// `waitMs`, defaulted.
pub fn parse_wait(raw: Option<&str>) -> Result<std::time::Duration, ApiError> {
    let ms = parse_number("waitMs", raw, MAX_WAIT_MS)?.unwrap_or(DEFAULT_WAIT_MS);
    Ok(std::time::Duration::from_millis(ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_in_range_parse_and_everything_else_is_a_bad_request() {
        assert_eq!(parse_number("n", None, 5).expect("absent"), None);
        assert_eq!(parse_number("n", Some("5"), 5).expect("max"), Some(5));
        for bad in ["6", "-1", "1.5", "", " 1", "1e3", "99999999999999999999"] {
            assert!(parse_number("n", Some(bad), 5).is_err(), "{bad:?}");
        }
        assert_eq!(parse_min("minVersion", Some("9223372036854775807")).expect("i64::MAX"), Some(i64::MAX));
        assert!(parse_min("minVersion", Some("9223372036854775808")).is_err());
        assert_eq!(parse_wait(None).expect("default"), std::time::Duration::from_millis(DEFAULT_WAIT_MS));
        assert!(parse_wait(Some("30001")).is_err());
    }
}
