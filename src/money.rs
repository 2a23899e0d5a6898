//! Currencies and exact amounts (SPEC section 2).
//!
//! Every amount is a `rust_decimal::Decimal`; arithmetic is checked and the
//! only rounding functions live here, named for the rule they implement.

use std::fmt;
use std::str::FromStr;

use rust_decimal::{Decimal, RoundingStrategy};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The currencies gpuhour keeps accounts in. Adding one is a line here: every
/// owner's accounts are created per supported currency. Stored as its code in
/// `text` columns (a code it does not know fails the row's read).
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    ToSchema,
    diesel::AsExpression,
    diesel::FromSqlRow,
)]
#[diesel(sql_type = diesel::sql_types::Text)]
pub enum Currency {
    #[serde(rename = "KRW")]
    Krw,
    #[serde(rename = "USD")]
    Usd,
    #[serde(rename = "EUR")]
    Eur,
    #[serde(rename = "JPY")]
    Jpy,
}

impl Currency {
    pub const ALL: [Currency; 4] = [Currency::Krw, Currency::Usd, Currency::Eur, Currency::Jpy];

    pub fn code(self) -> &'static str {
        match self {
            Currency::Krw => "KRW",
            Currency::Usd => "USD",
            Currency::Eur => "EUR",
            Currency::Jpy => "JPY",
        }
    }

    /// ISO 4217 minor units: how many fraction digits an amount may carry.
    pub fn minor_units(self) -> u32 {
        match self {
            Currency::Krw | Currency::Jpy => 0,
            Currency::Usd | Currency::Eur => 2,
        }
    }

    /// Unit prices may carry four fraction digits beyond the currency's own.
    pub fn unit_price_digits(self) -> u32 {
        self.minor_units() + 4
    }
}

crate::ledger::model::text_enum_sql!(Currency via code);

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unsupported currency {0:?}: expected one of KRW, USD, EUR, JPY")]
pub struct UnknownCurrency(pub String);

impl FromStr for Currency {
    type Err = UnknownCurrency;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Currency::ALL.into_iter().find(|c| c.code() == s.trim()).ok_or_else(|| UnknownCurrency(s.to_string()))
    }
}

/// A currency code read outside a typed row (typed rows hold a [`Currency`],
/// which diesel reads). A code gpuhour does not know is corrupt data — an
/// internal error, logged — never silently another currency. `owner` names
/// the row (`order 0190…`) for the log.
pub fn stored_currency(code: &str, owner: impl fmt::Display) -> Result<Currency, crate::ledger::LedgerError> {
    code.parse().map_err(|_| crate::ledger::LedgerError::Corrupt(format!("{owner} has an invalid currency {code:?}")))
}

/// An amount and its currency, for domain code where the two travel together:
/// adding or subtracting money of another currency is an error, never a sum.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Money {
    pub amount: Decimal,
    pub currency: Currency,
}

/// Why two amounts of money could not be added or subtracted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    #[error("an amount in {0} cannot be combined with one in {1}")]
    MixedCurrencies(Currency, Currency),
    #[error("amount overflow")]
    Overflow,
}

impl Money {
    pub fn new(amount: Decimal, currency: Currency) -> Self {
        Money { amount, currency }
    }

    pub fn zero(currency: Currency) -> Self {
        Money::new(Decimal::ZERO, currency)
    }

    pub fn is_zero(self) -> bool {
        self.amount.is_zero()
    }

    pub fn checked_add(self, other: Money) -> Result<Money, MoneyError> {
        let amount = self.amount.checked_add(self.same_currency(other)?).ok_or(MoneyError::Overflow)?;
        Ok(Money::new(amount, self.currency))
    }

    pub fn checked_sub(self, other: Money) -> Result<Money, MoneyError> {
        let amount = self.amount.checked_sub(self.same_currency(other)?).ok_or(MoneyError::Overflow)?;
        Ok(Money::new(amount, self.currency))
    }

    /// The amount, for code that keeps `currency` apart: money of another
    /// currency is refused rather than passed on as a bare number.
    pub fn amount_in(self, currency: Currency) -> Result<Decimal, MoneyError> {
        Money::zero(currency).same_currency(self)
    }

    /// The amount with exactly its currency's fraction digits, as the API's
    /// views carry amounts (`"12.50"`).
    pub fn formatted_amount(self) -> String {
        format_amount(self.amount, self.currency)
    }

    fn same_currency(self, other: Money) -> Result<Decimal, MoneyError> {
        if other.currency == self.currency {
            Ok(other.amount)
        } else {
            Err(MoneyError::MixedCurrencies(self.currency, other.currency))
        }
    }
}

impl std::ops::Neg for Money {
    type Output = Money;

    // Unchecked: a `Decimal`'s range is symmetric, so negating cannot overflow.
    fn neg(self) -> Money {
        Money::new(-self.amount, self.currency)
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.formatted_amount(), self.currency)
    }
}

/// Why a decimal string is not an acceptable amount.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AmountError {
    #[error("is not a decimal number")]
    NotANumber,
    #[error("must be greater than zero")]
    NotPositive,
    #[error("has more than {0} fraction digits")]
    TooPrecise(u32),
    #[error("is too large")]
    TooLarge,
}

/// The largest amount gpuhour accepts in a single request: far above any real
/// purchase, far below the database's NUMERIC(28,4) and rust_decimal's range, so
/// sums of many amounts cannot overflow either.
pub fn max_amount() -> Decimal {
    Decimal::from(1_000_000_000_000_000_i64)
}

/// Parses a positive amount of `currency` from its decimal string, refusing more
/// fraction digits than the currency has (`"12.345"` USD is an error, never rounded).
pub fn parse_amount(raw: &str, currency: Currency) -> Result<Decimal, AmountError> {
    parse_positive(raw, currency.minor_units())
}

/// Parses a positive decimal with at most `max_scale` fraction digits.
pub fn parse_positive(raw: &str, max_scale: u32) -> Result<Decimal, AmountError> {
    let trimmed = raw.trim();
    // Only plain decimal notation: no exponents, signs or thousands separators.
    let plain = !trimmed.is_empty()
        && trimmed.chars().all(|c| c.is_ascii_digit() || c == '.')
        && trimmed.chars().filter(|&c| c == '.').count() <= 1
        && !trimmed.starts_with('.')
        && !trimmed.ends_with('.');
    if !plain {
        return Err(AmountError::NotANumber);
    }
    let value = Decimal::from_str(trimmed).map_err(|_| AmountError::TooLarge)?;
    if value.normalize().scale() > max_scale {
        return Err(AmountError::TooPrecise(max_scale));
    }
    if value <= Decimal::ZERO {
        return Err(AmountError::NotPositive);
    }
    if value > max_amount() {
        return Err(AmountError::TooLarge);
    }
    Ok(value.normalize())
}

/// Formats an amount with exactly the currency's fraction digits (`"125000"`, `"12.50"`).
pub fn format_amount(value: Decimal, currency: Currency) -> String {
    format_scaled(value, currency.minor_units())
}

/// Formats with exactly `scale` fraction digits. Values handled here are already
/// exact at that scale; rescaling only pads (a value with more digits would be a
/// bug upstream, and it is shown rounded half-up rather than truncated silently).
pub fn format_scaled(value: Decimal, scale: u32) -> String {
    let mut v = value.round_dp_with_strategy(scale, RoundingStrategy::MidpointAwayFromZero);
    v.rescale(scale);
    v.to_string()
}

/// `round_half_up(x, currency)` of SPEC section 2: to the currency's minor unit,
/// halves away from zero (amounts here are never negative).
pub fn round_half_up(value: Decimal, currency: Currency) -> Decimal {
    value.round_dp_with_strategy(currency.minor_units(), RoundingStrategy::MidpointAwayFromZero)
}

/// `floor(x, currency)` of SPEC section 2: towards zero at the minor unit, so a
/// subsidy never pays a fraction of a won more than its rate allows.
pub fn floor_to_minor(value: Decimal, currency: Currency) -> Decimal {
    value.round_dp_with_strategy(currency.minor_units(), RoundingStrategy::ToZero)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    #[test]
    fn a_stored_currency_reads_back_or_is_corrupt_never_won() {
        assert_eq!(stored_currency("USD", "order 1"), Ok(Currency::Usd));
        assert_eq!(
            stored_currency("usd", "order 1"),
            Err(crate::ledger::LedgerError::Corrupt("order 1 has an invalid currency \"usd\"".into()))
        );
    }

    #[test]
    fn money_adds_and_subtracts_within_one_currency() {
        let krw = |amount| Money::new(amount, Currency::Krw);
        assert_eq!(krw(dec!(1000)).checked_add(krw(dec!(234))), Ok(krw(dec!(1234))));
        assert_eq!(krw(dec!(1000)).checked_sub(krw(dec!(1234))), Ok(krw(dec!(-234))));
        assert_eq!(-krw(dec!(5)), krw(dec!(-5)));
        assert!(Money::zero(Currency::Usd).is_zero());
        assert!(!krw(dec!(0.0001)).is_zero());
        assert_eq!(krw(dec!(7)).amount_in(Currency::Krw), Ok(dec!(7)));
    }

    #[test]
    fn money_of_two_currencies_never_adds_up() {
        let krw = Money::new(dec!(1000), Currency::Krw);
        let usd = Money::new(dec!(1), Currency::Usd);
        assert_eq!(krw.checked_add(usd), Err(MoneyError::MixedCurrencies(Currency::Krw, Currency::Usd)));
        assert_eq!(usd.checked_sub(krw), Err(MoneyError::MixedCurrencies(Currency::Usd, Currency::Krw)));
        assert_eq!(usd.amount_in(Currency::Krw), Err(MoneyError::MixedCurrencies(Currency::Krw, Currency::Usd)));
        assert_eq!(
            krw.checked_add(usd).map_err(|e| e.to_string()),
            Err("an amount in KRW cannot be combined with one in USD".to_string())
        );
    }

    #[test]
    fn money_overflow_is_an_error_not_a_panic() {
        let max = Money::new(Decimal::MAX, Currency::Eur);
        let min = Money::new(Decimal::MIN, Currency::Eur);
        assert_eq!(max.checked_add(Money::new(Decimal::ONE, Currency::Eur)), Err(MoneyError::Overflow));
        assert_eq!(min.checked_sub(Money::new(Decimal::ONE, Currency::Eur)), Err(MoneyError::Overflow));
        assert_eq!(-max, min);
    }

    #[test]
    fn money_shows_its_amount_at_the_currency_precision_and_its_code() {
        assert_eq!(Money::new(dec!(1234), Currency::Krw).to_string(), "1234 KRW");
        assert_eq!(Money::new(dec!(12.5000), Currency::Usd).to_string(), "12.50 USD");
        assert_eq!(Money::new(dec!(-3), Currency::Eur).formatted_amount(), "-3.00");
    }

    #[test]
    fn parses_amounts_within_the_currency_precision() {
        assert_eq!(parse_amount("125000", Currency::Krw), Ok(dec!(125000)));
        assert_eq!(parse_amount("12.50", Currency::Usd), Ok(dec!(12.5)));
        assert_eq!(parse_amount("12.5", Currency::Krw), Err(AmountError::TooPrecise(0)));
        assert_eq!(parse_amount("12.345", Currency::Usd), Err(AmountError::TooPrecise(2)));
        // trailing zeros are not extra precision
        assert_eq!(parse_amount("100.00", Currency::Krw), Ok(dec!(100)));
    }

    #[test]
    fn refuses_what_is_not_a_plain_positive_decimal() {
        for raw in ["", "abc", "-5", "+5", "1e5", "1,000", ".5", "5.", "1.2.3", "NaN", " "] {
            assert_eq!(parse_amount(raw, Currency::Usd), Err(AmountError::NotANumber), "{raw:?}");
        }
        assert_eq!(parse_amount("0", Currency::Krw), Err(AmountError::NotPositive));
        assert_eq!(parse_amount("0.00", Currency::Usd), Err(AmountError::NotPositive));
        assert_eq!(parse_amount("1000000000000000.01", Currency::Usd), Err(AmountError::TooLarge));
        assert_eq!(parse_amount("99999999999999999999999999999999999", Currency::Krw), Err(AmountError::TooLarge));
    }

    #[test]
    fn formats_with_the_currency_digits() {
        assert_eq!(format_amount(dec!(125000), Currency::Krw), "125000");
        assert_eq!(format_amount(dec!(12.5), Currency::Usd), "12.50");
        assert_eq!(format_amount(dec!(12.5000), Currency::Usd), "12.50");
        assert_eq!(format_amount(Decimal::ZERO, Currency::Usd), "0.00");
    }

    #[test]
    fn rounding_rules_are_the_named_ones() {
        assert_eq!(round_half_up(dec!(7003.5), Currency::Krw), dec!(7004));
        assert_eq!(round_half_up(dec!(7003.49), Currency::Krw), dec!(7003));
        assert_eq!(round_half_up(dec!(1.005), Currency::Usd), dec!(1.01));
        assert_eq!(floor_to_minor(dec!(5602.8), Currency::Krw), dec!(5602));
        assert_eq!(floor_to_minor(dec!(1.009), Currency::Usd), dec!(1.00));
    }

    #[test]
    fn currency_codes_round_trip() {
        for c in Currency::ALL {
            assert_eq!(c.code().parse::<Currency>(), Ok(c));
        }
        assert!("krw".parse::<Currency>().is_err());
        assert!("XXX".parse::<Currency>().is_err());
    }
}
