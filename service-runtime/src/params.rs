//! Query-string integers, read the same way by every endpoint: digits only, within a documented range, and a
//! message naming the parameter otherwise.

use std::ops::RangeInclusive;

/// The integer `raw` (absent: `None`) if it lies in `range`; otherwise the message a client sees.
pub fn integer_in(name: &str, raw: Option<&str>, range: RangeInclusive<i64>) -> Result<Option<i64>, String> {
    let Some(raw) = raw else { return Ok(None) };
    raw.bytes()
        .all(|b| b.is_ascii_digit())
        .then(|| raw.parse::<i64>().ok())
        .flatten()
        .filter(|n| range.contains(n))
        .map(Some)
        .ok_or_else(|| format!("{name} must be an integer from {} to {}", range.start(), range.end()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_in_range_parse_and_everything_else_names_the_parameter() {
        assert_eq!(integer_in("limit", None, 1..=100), Ok(None));
        assert_eq!(integer_in("limit", Some("100"), 1..=100), Ok(Some(100)));
        for bad in ["0", "101", "-1", "+5", "1.5", "", " 1", "1e3", "99999999999999999999"] {
            let refused = integer_in("limit", Some(bad), 1..=100).expect_err(bad);
            assert_eq!(refused, "limit must be an integer from 1 to 100");
        }
        assert_eq!(integer_in("after", Some("9223372036854775807"), 0..=i64::MAX), Ok(Some(i64::MAX)));
    }
}
