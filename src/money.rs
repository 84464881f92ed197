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
/// cannot be a price: NaN, infinities, negatives, a fraction of a cent.
///
/// A client that computed the amount in floating point gets the cent it
/// meant: Python's and JavaScript's `0.1 + 0.2` is 0.30000000000000004, and
/// that is 30 cents. What counts is the distance to the nearest whole cent
/// against the error `f64` arithmetic can make at that size (a few units in
/// the last place); `1.005` and `29.999` are a real half and nine tenths of
/// a cent away, and refused.
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
    let minor = (amount * MINOR_PER_MAJOR as f64).round();
    if (minor / MINOR_PER_MAJOR as f64 - amount).abs() > amount * ROUNDING_ERROR {
        return Err(MoneyError::TooPrecise);
    }
    // At most MAX_MAJOR * 100: exact in both f64 and i64.
    Ok(minor as i64)
}

/// How far, relative to the amount, client arithmetic may drift from the
/// cent it meant: eight units in the last place, room for a short sum of
/// prices and a multiplication by a quantity.
const ROUNDING_ERROR: f64 = 8.0 * f64::EPSILON;

/// The currency of an amount: an ISO 4217 code whose minor unit is a
/// hundredth (USD, EUR, GBP, ...), since every amount here is kept in
/// hundredths.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Currency(String);

/// The currency of a price given without one.
pub const DEFAULT_CURRENCY: &str = "USD";

/// ISO 4217 currencies whose minor unit is not a hundredth, with their
/// number of decimals.
const NOT_IN_CENTS: &[(&str, u8)] = &[
    ("BIF", 0),
    ("CLP", 0),
    ("DJF", 0),
    ("GNF", 0),
    ("ISK", 0),
    ("JPY", 0),
    ("KMF", 0),
    ("KRW", 0),
    ("PYG", 0),
    ("RWF", 0),
    ("UGX", 0),
    ("UYI", 0),
    ("VND", 0),
    ("VUV", 0),
    ("XAF", 0),
    ("XOF", 0),
    ("XPF", 0),
    ("BHD", 3),
    ("IQD", 3),
    ("JOD", 3),
    ("KWD", 3),
    ("LYD", 3),
    ("OMR", 3),
    ("TND", 3),
    ("CLF", 4),
    ("UYW", 4),
];

impl Currency {
    /// An ISO 4217 code (`USD`); empty means [`DEFAULT_CURRENCY`].
    pub fn parse(code: &str) -> Result<Self, String> {
        if code.is_empty() {
            return Ok(Self::default());
        }
        if code.len() != 3 || !code.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err("must be an ISO 4217 code: three capital letters, such as USD".to_owned());
        }
        if let Some((_, decimals)) = NOT_IN_CENTS.iter().find(|(known, _)| *known == code) {
            return Err(format!("{code} has {decimals} decimals; prices here are in currencies with cents (two)"));
        }
        Ok(Self(code.to_owned()))
    }

    /// A code read back from storage, checked when it was written.
    pub fn from_stored(code: String) -> Self {
        Self(code)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for Currency {
    fn default() -> Self {
        Self(DEFAULT_CURRENCY.to_owned())
    }
}

impl std::fmt::Display for Currency {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
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
    fn floating_point_arithmetic_lands_on_the_cent_it_meant() {
        assert_eq!(to_minor(0.1 + 0.2), Ok(30));
        assert_eq!(0.1 + 0.2, 0.30000000000000004);
        assert_eq!(to_minor(0.1 + 0.7), Ok(80));
        assert_eq!(to_minor(19.99 * 3.0), Ok(5997));
        assert_eq!(to_minor(1.1 * 1.1 - 0.21), Ok(100));
        assert_eq!(to_minor(99_999_999.99 + 0.01), Ok(10_000_000_000));
    }

    #[test]
    fn impossible_amounts_are_refused() {
        assert_eq!(to_minor(f64::NAN), Err(MoneyError::NotFinite));
        assert_eq!(to_minor(f64::INFINITY), Err(MoneyError::NotFinite));
        assert_eq!(to_minor(-0.01), Err(MoneyError::Negative));
        assert_eq!(to_minor(2e12), Err(MoneyError::TooLarge));
    }

    #[test]
    fn currencies_are_iso_codes_in_cents() {
        assert_eq!(Currency::parse("").unwrap().as_str(), "USD");
        assert_eq!(Currency::parse("EUR").unwrap().as_str(), "EUR");
        assert!(Currency::parse("usd").unwrap_err().contains("three capital letters"));
        assert!(Currency::parse("EURO").unwrap_err().contains("ISO 4217"));
        assert_eq!(
            Currency::parse("JPY").unwrap_err(),
            "JPY has 0 decimals; prices here are in currencies with cents (two)"
        );
        assert!(Currency::parse("KWD").unwrap_err().contains("3 decimals"));
    }

    #[test]
    fn every_cent_round_trips() {
        for minor in (0..100_000).chain([99_999_999_999, 12_345_678_901, 100_000_000_000_000]) {
            assert_eq!(to_minor(to_major(minor)), Ok(minor), "{minor}");
        }
    }
}
