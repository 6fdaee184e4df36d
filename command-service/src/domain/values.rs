//! Single-field domain values, each with a `parse` that returns the message a client sees when it fails.

use rust_decimal::Decimal;

fn parse_identifier(raw: &str) -> Result<String, String> {
    shared_events::identifier::check(raw).map(|()| raw.to_owned())
}

/// Who placed the order: 1–64 characters of `[A-Za-z0-9._-]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomerId(String);

impl CustomerId {
    pub fn parse(raw: &str) -> Result<Self, String> {
        parse_identifier(raw).map(Self)
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The customer's segment: 1–32 characters of `[a-z0-9_-]`; `standard` when the command does not say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment(String);

impl Segment {
    pub const MAX_LEN: usize = 32;

    pub fn parse(raw: &str) -> Result<Self, String> {
        let allowed = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'-');
        if raw.is_empty() || raw.len() > Self::MAX_LEN || !raw.bytes().all(allowed) {
            return Err(format!(
                "must be 1 to {} characters of lower-case letters, digits, '_' and '-'",
                Self::MAX_LEN
            ));
        }
        Ok(Self(raw.to_owned()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for Segment {
    fn default() -> Self {
        Self(shared_events::DEFAULT_SEGMENT.to_owned())
    }
}

/// What the customer saw an item called: 1–200 characters, no control characters, not blank.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemName(String);

impl ItemName {
    pub const MAX_CHARS: usize = 200;

    pub fn parse(raw: &str) -> Result<Self, String> {
        let chars = raw.chars().count();
        if chars == 0 || chars > Self::MAX_CHARS || raw.trim().is_empty() || raw.chars().any(char::is_control) {
            return Err(format!("must be 1 to {} characters, not blank, without control characters", Self::MAX_CHARS));
        }
        Ok(Self(raw.to_owned()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A stock-keeping unit: 1–64 characters of `[A-Za-z0-9._-]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sku(String);

impl Sku {
    pub fn parse(raw: &str) -> Result<Self, String> {
        parse_identifier(raw).map(Self)
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An ISO-4217-shaped currency code: three upper-case ASCII letters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Currency(String);

impl Currency {
    pub fn parse(raw: &str) -> Result<Self, String> {
        if raw.len() == 3 && raw.bytes().all(|b| b.is_ascii_uppercase()) {
            Ok(Self(raw.to_owned()))
        } else {
            Err("must be three upper-case letters, e.g. \"EUR\"".to_owned())
        }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for Currency {
    fn default() -> Self {
        Self("USD".to_owned())
    }
}

/// How many units of a line: 1–1000.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quantity(u32);

impl Quantity {
    pub const MAX: i64 = 1000;

    pub fn parse(raw: i64) -> Result<Self, String> {
        match u32::try_from(raw) {
            Ok(q) if (1..=Self::MAX).contains(&raw) => Ok(Self(q)),
            _ => Err(format!("must be an integer from 1 to {}", Self::MAX)),
        }
    }
    pub fn get(self) -> u32 {
        self.0
    }
}

/// A unit price: an exact decimal greater than 0 and at most 1,000,000, with at most two decimal places.
/// Kept with exactly two decimal places (`5` becomes `5.00`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnitPrice(Decimal);

impl UnitPrice {
    pub const MAX: Decimal = Decimal::from_parts(1_000_000, 0, 0, false, 0);

    /// Parses the literal text of a JSON number or the content of a JSON string, exactly: digits, optionally a
    /// point followed by one or two digits (`19`, `19.9`, `19.99`), no leading zero (`0.5`, not `05`). Signs, white space, exponents, separators, a
    /// leading or trailing point and more decimals are refused; nothing goes through a float.
    pub fn parse(literal: &str) -> Result<Self, String> {
        let invalid = || "must be digits, optionally a point and one or two digits, such as 19.99".to_owned();
        let (whole, fraction) = literal.split_once('.').unwrap_or((literal, ""));
        let digits = |part: &str| part.bytes().all(|b| b.is_ascii_digit());
        let fraction_ok = if literal.contains('.') { (1..=2).contains(&fraction.len()) } else { true };
        let leading_zero = whole.len() > 1 && whole.starts_with('0');
        if whole.is_empty() || whole.len() > 20 || leading_zero || !digits(whole) || !digits(fraction) || !fraction_ok {
            return Err(invalid());
        }
        let mut value = literal.parse::<Decimal>().map_err(|_| invalid())?;
        if value <= Decimal::ZERO || value > Self::MAX {
            return Err("must be greater than 0 and at most 1000000".to_owned());
        }
        value.rescale(2);
        Ok(Self(value))
    }
    pub fn get(self) -> Decimal {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_accept_the_documented_alphabet_only() {
        assert!(CustomerId::parse("cust-42").is_ok());
        assert!(CustomerId::parse("A.b_c-9").is_ok());
        assert!(CustomerId::parse(&"x".repeat(64)).is_ok());
        for bad in ["", "with space", "ünï", "semi;colon", "quote'", "slash/"] {
            assert!(CustomerId::parse(bad).is_err(), "{bad:?} must be rejected");
        }
        assert!(Sku::parse(&"x".repeat(65)).is_err());
    }

    #[test]
    fn currency_is_three_upper_case_letters() {
        assert_eq!(Currency::parse("EUR").map(|c| c.as_str().to_owned()), Ok("EUR".to_owned()));
        for bad in ["eur", "EURO", "EU", "E1R", ""] {
            assert!(Currency::parse(bad).is_err(), "{bad:?} must be rejected");
        }
        assert_eq!(Currency::default().as_str(), "USD");
    }

    #[test]
    fn quantity_is_bounded() {
        assert_eq!(Quantity::parse(1).map(Quantity::get), Ok(1));
        assert_eq!(Quantity::parse(1000).map(Quantity::get), Ok(1000));
        for bad in [0, -1, 1001, i64::MAX, i64::MIN] {
            assert!(Quantity::parse(bad).is_err(), "{bad} must be rejected");
        }
    }

    #[test]
    fn unit_price_is_exact_and_bounded() {
        let price = |s: &str| UnitPrice::parse(s).map(|p| p.get().to_string());
        assert_eq!(price("19.99"), Ok("19.99".to_owned()));
        assert_eq!(price("19.9"), Ok("19.90".to_owned()));
        assert_eq!(price("19"), Ok("19.00".to_owned()));
        assert_eq!(price("5"), Ok("5.00".to_owned()));
        assert_eq!(price("1000000"), Ok("1000000.00".to_owned()));
        assert_eq!(price("1000000.00"), Ok("1000000.00".to_owned()));
        assert_eq!(price("0.01"), Ok("0.01".to_owned()));
        for bad in ["0", "0.00", "-1", "0.001", "19.999", "1000000.01", "abc", "", "NaN", "1e400", "Infinity"] {
            assert!(price(bad).is_err(), "{bad:?} must be rejected");
        }
    }

    #[test]
    fn unit_price_accepts_digits_and_a_point_with_one_or_two_digits_only() {
        let thirty_decimals = format!("1.{}", "0".repeat(30));
        for bad in [
            "1_9.99",
            "+5.00",
            " 5.00",
            "5.00 ",
            "1e2",
            "1E2",
            "5.",
            ".5",
            "19.990",
            "1,000",
            "1 000",
            "0x10",
            "١٢",
            "5.0\n",
            "05",
            "007.50",
            thirty_decimals.as_str(),
        ] {
            assert!(UnitPrice::parse(bad).is_err(), "{bad:?} must be rejected");
        }
    }
}
