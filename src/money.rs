//! Money: the API carries decimal prices (`29.99`); everything stored or
//! summed is integer minor units (`2999`), so no total is ever off by a
//! floating-point cent.

/// Minor units in one major unit (cents in a dollar).
pub const MINOR_PER_MAJOR: i64 = 100;

/// The largest amount accepted, in major units: far beyond any price, and
/// small enough that `f64` still represents every cent exactly.
pub const MAX_MAJOR: f64 = 1e12;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    #[error("must be a finite number")]
    NotFinite,
    #[error("must not be negative")]
    Negative,
    #[error("must be at most {MAX_MAJOR}")]
    TooLarge,
    #[error("must have at most two decimals")]
    TooPrecise,
}

/// Converts a decimal amount from the API into minor units, refusing what
/// cannot be a price: NaN, infinities, negatives, more than two decimals.
pub fn to_minor(amount: f64) -> Result<i64, MoneyError> {
    if !amount.is_finite() {
        return Err(MoneyError::NotFinite);
    }
    if amount < 0.0 {
        return Err(MoneyError::Negative);
    }
    if amount > MAX_MAJOR {
        return Err(MoneyError::TooLarge);
    }
    // The shortest decimal that round-trips to `amount` is what the client
    // wrote (JSON `29.99` parses to the f64 whose shortest form is "29.99"),
    // so decimals are counted on it, exactly, rather than on 29.99 * 100.
    let decimal = amount.to_string();
    let (whole, fraction) = decimal.split_once('.').unwrap_or((&decimal, ""));
    if fraction.len() > 2 {
        return Err(MoneyError::TooPrecise);
    }
    let whole: i64 = whole.parse().map_err(|_| MoneyError::TooLarge)?;
    let cents: i64 = format!("{fraction:0<2}").parse().expect("two ASCII digits");
    Ok(whole * MINOR_PER_MAJOR + cents)
}

/// Converts minor units back into the API's decimal form.
pub fn to_major(minor: i64) -> f64 {
    minor as f64 / MINOR_PER_MAJOR as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_price_converts_exactly() {
        assert_eq!(to_minor(29.99), Ok(2999));
        assert_eq!(to_major(2999), 29.99);
    }

    #[test]
    fn whole_and_zero_amounts_convert() {
        assert_eq!(to_minor(0.0), Ok(0));
        assert_eq!(to_minor(100.0), Ok(10_000));
        assert_eq!(to_minor(0.1), Ok(10));
        assert_eq!(to_minor(0.07), Ok(7));
    }

    #[test]
    fn more_than_two_decimals_is_refused() {
        assert_eq!(to_minor(1.005), Err(MoneyError::TooPrecise));
        assert_eq!(to_minor(0.001), Err(MoneyError::TooPrecise));
        assert_eq!(to_minor(29.999), Err(MoneyError::TooPrecise));
        assert_eq!(to_minor(1e-7), Err(MoneyError::TooPrecise));
    }

    #[test]
    fn impossible_amounts_are_refused() {
        assert_eq!(to_minor(f64::NAN), Err(MoneyError::NotFinite));
        assert_eq!(to_minor(f64::INFINITY), Err(MoneyError::NotFinite));
        assert_eq!(to_minor(-0.01), Err(MoneyError::Negative));
        assert_eq!(to_minor(2e12), Err(MoneyError::TooLarge));
    }

    #[test]
    fn every_cent_round_trips() {
        for minor in (0..100_000).chain([99_999_999_999, 12_345_678_901, 100_000_000_000_000]) {
            assert_eq!(to_minor(to_major(minor)), Ok(minor), "{minor}");
        }
    }
}
