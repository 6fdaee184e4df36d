//! The `PlaceOrder` command as it arrives, and the valid order it parses into.

use rust_decimal::Decimal;
use serde::{de, Deserialize, Deserializer};

use super::values::{Currency, CustomerId, ItemName, Quantity, Segment, Sku, UnitPrice};

/// Most lines one order may have.
pub const MAX_LINES: usize = 100;

/// The body of `POST /commands/orders`. Field types are checked while parsing JSON (a wrong type is reported with
/// its path); the rules are checked by [`NewOrder::parse`], which reports every broken rule at once.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PlaceOrder {
    /// Required, except from a customer token (`AUTH_MODE=jwt`), which places for its own customer (the document a
    /// `jwt` service serves says so).
    #[serde(default, deserialize_with = "present")]
    #[schema(pattern = r"^[A-Za-z0-9._-]{1,64}$", required = true, nullable = false)]
    pub customer_id: Option<String>,
    /// Default `standard`.
    #[serde(default)]
    #[schema(pattern = r"^[a-z0-9_-]{1,32}$")]
    pub customer_segment: Option<String>,
    /// ISO 4217 code, default `USD`.
    #[serde(default)]
    #[schema(pattern = r"^[A-Z]{3}$")]
    pub currency: Option<String>,
    #[schema(min_items = 1, max_items = 100)]
    pub items: Vec<PlaceOrderLine>,
}

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PlaceOrderLine {
    #[schema(pattern = r"^[A-Za-z0-9._-]{1,64}$")]
    pub sku: String,
    /// What the customer saw the item called: 1 to 200 characters, not blank, no control characters.
    #[serde(default)]
    #[schema(pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$", max_length = 200)]
    pub name: Option<String>,
    #[schema(value_type = i64, minimum = 1, maximum = 1000)]
    pub quantity: JsonInteger,
    /// More than 0, at most 1000000, at most two decimal places: a string (kept verbatim) or a number.
    #[schema(value_type = String, pattern = r"^(?:[1-9][0-9]{0,5}(?:\.[0-9]{1,2})?|0\.(?:0[1-9]|[1-9][0-9]?)|1000000(?:\.00?)?)$")]
    pub unit_price: PriceInput,
}

/// A field that may be left out but, when given, is a string: `null` is no customer id.
fn present<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<String>, D::Error> {
    String::deserialize(deserializer).map(Some)
}

/// A price as the client wrote it: the content of a JSON string, or the literal text of a JSON number, taken from
/// the JSON text itself (never through a float, which would turn `19.999999999999999` into `20`). The rules of
/// [`UnitPrice::parse`] then read it exactly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PriceInput(pub String);

impl<'de> Deserialize<'de> for PriceInput {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = Box::<serde_json::value::RawValue>::deserialize(deserializer)?;
        let text = raw.get();
        match text.as_bytes().first() {
            Some(b'"') => serde_json::from_str::<String>(text).map(PriceInput).map_err(de::Error::custom),
            Some(b'-' | b'0'..=b'9') => Ok(PriceInput(text.to_owned())),
            _ => Err(de::Error::invalid_type(de::Unexpected::Other(text), &"a decimal number or a string holding one")),
        }
    }
}

/// A JSON integer: as in JSON Schema, a number without a fractional part, so `3` and `3.0` are the same integer
/// (`2.5` and numbers beyond the 64-bit range are not integers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JsonInteger(pub i64);

impl<'de> Deserialize<'de> for JsonInteger {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl de::Visitor<'_> for Visitor {
            type Value = JsonInteger;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an integer")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<JsonInteger, E> {
                Ok(JsonInteger(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<JsonInteger, E> {
                i64::try_from(v).map(JsonInteger).map_err(|_| E::invalid_value(de::Unexpected::Unsigned(v), &self))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<JsonInteger, E> {
                // Exactly integral and inside i64 (2^63 itself is not).
                if v.fract() == 0.0 && (-9_223_372_036_854_775_808.0..9_223_372_036_854_775_808.0).contains(&v) {
                    Ok(JsonInteger(v as i64))
                } else {
                    Err(E::invalid_value(de::Unexpected::Float(v), &self))
                }
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

/// One broken rule, named by the JSON path of the field that broke it: the problem document's own member, so a
/// refusal is answered as it was decided.
pub use service_runtime::problem::FieldError;

/// A line of a valid order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewOrderLine {
    pub sku: Sku,
    pub name: Option<ItemName>,
    pub quantity: Quantity,
    pub unit_price: UnitPrice,
}

impl NewOrderLine {
    pub fn line_total(&self) -> Decimal {
        self.unit_price.get() * Decimal::from(self.quantity.get())
    }
}

/// An order that satisfies every rule of the contract.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewOrder {
    pub customer_id: CustomerId,
    pub segment: Segment,
    pub currency: Currency,
    pub lines: Vec<NewOrderLine>,
}

impl NewOrder {
    /// Checks every rule and returns all violations, not just the first.
    pub fn parse(command: PlaceOrder) -> Result<Self, Vec<FieldError>> {
        let mut errors = Vec::new();
        let customer_id = match &command.customer_id {
            Some(raw) => CustomerId::parse(raw).map_err(|m| errors.push(FieldError::new("customerId", m))).ok(),
            None => {
                errors.push(FieldError::new("customerId", "is required"));
                None
            }
        };
        let segment = match command.customer_segment.as_deref() {
            None => Some(Segment::default()),
            Some(raw) => Segment::parse(raw).map_err(|m| errors.push(FieldError::new("customerSegment", m))).ok(),
        };
        let currency = match command.currency.as_deref() {
            None => Some(Currency::default()),
            Some(raw) => Currency::parse(raw).map_err(|m| errors.push(FieldError::new("currency", m))).ok(),
        };
        if command.items.is_empty() || command.items.len() > MAX_LINES {
            errors.push(FieldError::new("items", format!("must hold 1 to {MAX_LINES} lines")));
        }
        let mut lines = Vec::with_capacity(command.items.len());
        for (i, item) in command.items.iter().enumerate() {
            let mut field =
                |name: &str, message: String| errors.push(FieldError::new(format!("items[{i}].{name}"), message));
            let sku = Sku::parse(&item.sku).map_err(|m| field("sku", m)).ok();
            let name = match item.name.as_deref() {
                None => Some(None),
                Some(raw) => ItemName::parse(raw).map(Some).map_err(|m| field("name", m)).ok(),
            };
            let quantity = Quantity::parse(item.quantity.0).map_err(|m| field("quantity", m)).ok();
            let unit_price = UnitPrice::parse(&item.unit_price.0).map_err(|m| field("unitPrice", m)).ok();
            if let (Some(sku), Some(name), Some(quantity), Some(unit_price)) = (sku, name, quantity, unit_price) {
                lines.push(NewOrderLine { sku, name, quantity, unit_price });
            }
        }
        match (customer_id, segment, currency) {
            (Some(customer_id), Some(segment), Some(currency)) if errors.is_empty() => {
                Ok(Self { customer_id, segment, currency, lines })
            }
            _ => Err(errors),
        }
    }

    /// The order total: the sum of the line totals, computed here and never taken from the client.
    /// The order as one canonical JSON text: equal for every request that asks for this same order, however it
    /// was spelled (key order, `2` or `2.0`, `"3.50"` or `3.5`, the default currency written out or not). What an
    /// idempotency key's fingerprint is taken of.
    pub fn canonical(&self) -> String {
        let lines: Vec<serde_json::Value> = self
            .lines
            .iter()
            .map(|line| {
                serde_json::json!([
                    line.sku.as_str(),
                    line.name.as_ref().map(|name| name.as_str()),
                    line.quantity.get(),
                    line.unit_price.get().to_string(),
                ])
            })
            .collect();
        serde_json::json!([self.customer_id.as_str(), self.segment.as_str(), self.currency.as_str(), lines]).to_string()
    }

    pub fn total(&self) -> Decimal {
        self.lines.iter().map(NewOrderLine::line_total).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn integers_may_be_written_with_a_zero_fraction_as_json_schema_counts_them() {
        let parse = |v: serde_json::Value| serde_json::from_value::<JsonInteger>(v).map(|n| n.0).ok();
        assert_eq!(parse(json!(3)), Some(3));
        assert_eq!(parse(json!(124.0)), Some(124));
        assert_eq!(parse(json!(-2.0)), Some(-2));
        assert_eq!(parse(json!(2.5)), None);
        assert_eq!(parse(json!(1e19)), None);
        assert_eq!(parse(json!(u64::MAX)), None);
        assert_eq!(parse(json!("3")), None);
    }

    fn command(value: serde_json::Value) -> PlaceOrder {
        serde_json::from_value(value).expect("test command has the right shape")
    }

    #[test]
    fn a_customer_left_out_is_required_by_the_rules_and_a_null_one_is_no_command() {
        let line = json!({"sku": "s", "quantity": 1, "unitPrice": "1"});
        let left_out = NewOrder::parse(command(json!({"items": [line]}))).expect_err("no customer");
        assert_eq!(left_out, [FieldError::new("customerId", "is required")]);
        assert!(serde_json::from_value::<PlaceOrder>(json!({"customerId": null, "items": [line]})).is_err());
    }

    #[test]
    fn a_valid_order_gets_its_total_computed_exactly() {
        let order = NewOrder::parse(command(json!({
            "customerId": "cust-42", "currency": "EUR",
            "items": [
                {"sku": "SKU-1", "quantity": 2, "unitPrice": "19.99"},
                {"sku": "SKU-2", "quantity": 3, "unitPrice": 0.1},
            ]
        })))
        .expect("valid");
        assert_eq!(order.total().to_string(), "40.28");
        assert_eq!(order.lines[1].line_total().to_string(), "0.30");
        assert_eq!(order.currency.as_str(), "EUR");
    }

    #[test]
    fn one_order_spelled_two_ways_has_one_canonical_form() {
        let a = NewOrder::parse(command(json!({
            "customerId": "c", "items": [{"sku": "s", "quantity": 2, "unitPrice": "3.50"}]
        })))
        .expect("valid");
        let b = NewOrder::parse(command(json!({
            "items": [{"unitPrice": 3.5, "quantity": 2.0, "sku": "s"}], "currency": "USD", "customerId": "c"
        })))
        .expect("valid");
        assert_eq!(a.canonical(), b.canonical());
        let other = NewOrder::parse(command(json!({
            "customerId": "c", "items": [{"sku": "s", "quantity": 3, "unitPrice": "3.50"}]
        })))
        .expect("valid");
        assert_ne!(a.canonical(), other.canonical());
    }

    #[test]
    fn currency_defaults_to_usd() {
        let order = NewOrder::parse(command(json!({
            "customerId": "c", "items": [{"sku": "s", "quantity": 1, "unitPrice": 1}]
        })))
        .expect("valid");
        assert_eq!(order.currency.as_str(), "USD");
        assert_eq!(order.total().to_string(), "1.00");
    }

    #[test]
    fn every_broken_rule_is_reported_with_its_path() {
        let errors = NewOrder::parse(command(json!({
            "customerId": "", "currency": "eur",
            "items": [
                {"sku": "ok", "quantity": 1, "unitPrice": "1"},
                {"sku": "bad sku", "quantity": 0, "unitPrice": "1.001"},
            ]
        })))
        .expect_err("invalid");
        let fields: Vec<_> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["customerId", "currency", "items[1].sku", "items[1].quantity", "items[1].unitPrice"]);
    }

    #[test]
    fn line_count_is_bounded() {
        let line = json!({"sku": "s", "quantity": 1, "unitPrice": "1"});
        let none = NewOrder::parse(command(json!({"customerId": "c", "items": []}))).expect_err("no lines");
        assert_eq!(none[0].field, "items");
        let many = vec![line.clone(); MAX_LINES + 1];
        let too_many = NewOrder::parse(command(json!({"customerId": "c", "items": many}))).expect_err("101 lines");
        assert_eq!(too_many[0].field, "items");
        let max = vec![line; MAX_LINES];
        assert!(NewOrder::parse(command(json!({"customerId": "c", "items": max}))).is_ok());
    }

    #[test]
    fn prices_arrive_as_strings_or_numbers_read_from_the_json_text() {
        let parse = |text: &str| serde_json::from_str::<PriceInput>(text).map(|p| p.0);
        assert_eq!(parse(r#""19.99""#).ok(), Some("19.99".to_owned()));
        assert_eq!(parse("19.99").ok(), Some("19.99".to_owned()));
        assert_eq!(parse("7").ok(), Some("7".to_owned()));
        // The literal, never a float's shortest form: these must reach the rules as written.
        assert_eq!(parse("19.999999999999999").ok(), Some("19.999999999999999".to_owned()));
        assert_eq!(parse("1e2").ok(), Some("1e2".to_owned()));
        assert_eq!(parse("5.10").ok(), Some("5.10".to_owned()));
        assert!(parse("true").is_err());
        assert!(parse("null").is_err());
        assert!(parse("[1]").is_err());
    }

    #[test]
    fn a_price_that_a_float_would_round_is_refused_with_its_field() {
        let body = r#"{"customerId": "c", "items": [{"sku": "s", "quantity": 1, "unitPrice": 19.999999999999999}]}"#;
        let order: PlaceOrder = serde_json::from_str(body).expect("the shape is right");
        let errors = NewOrder::parse(order).expect_err("more than two decimals");
        assert_eq!(errors[0].field, "items[0].unitPrice");
    }
}
