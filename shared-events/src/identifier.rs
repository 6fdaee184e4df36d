//! The grammar of identifiers in the contract (`customerId`, `sku`): 1–64 characters of `[A-Za-z0-9._-]`, checked
//! the same way by the commands that take them and the reads that filter by them.

/// Most characters in an identifier.
pub const MAX_LEN: usize = 64;

/// `Ok` if `raw` is an identifier; otherwise what is wrong with it, as a client reads it after the field's name.
pub fn check(raw: &str) -> Result<(), String> {
    if raw.is_empty() || raw.len() > MAX_LEN {
        return Err(format!("must be 1 to {MAX_LEN} characters long"));
    }
    if !raw.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-')) {
        return Err("may contain only letters, digits, '.', '_' and '-'".to_owned());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_1_to_64_of_letters_digits_dot_underscore_and_dash() {
        for good in ["a", "cust-42", "A.b_C-9", &"x".repeat(64)] {
            assert_eq!(check(good), Ok(()), "{good}");
        }
        for bad in ["", &"x".repeat(65), "a b", "é", "a/b", "a\u{0}"] {
            assert!(check(bad).is_err(), "{bad:?}");
        }
    }
}
