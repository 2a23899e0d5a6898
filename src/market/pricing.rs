//! The price of an order (SPEC section 2): the one function that splits a
//! subtotal between tenant, programme and platform, with the rounding rules
//! named where they apply. The parts always add up to the whole.

use rust_decimal::Decimal;

use crate::money::{Currency, floor_to_minor, round_half_up};

/// What a grant can contribute to one order (SPEC section 5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubsidyTerms {
    /// Fraction of the subtotal the programme pays (e.g. 0.8).
    pub rate: Decimal,
    /// What the grant has left: the subsidy never exceeds it.
    pub available: Decimal,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Breakdown {
    pub currency: Currency,
    pub unit_price: Decimal,
    pub gpu_hours: i64,
    pub subtotal: Decimal,
    pub subsidy: Decimal,
    pub subsidy_rate: Decimal,
    pub tenant_amount: Decimal,
    pub platform_fee: Decimal,
    pub fee_rate: Decimal,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PricingError {
    #[error("the amount is too large")]
    Overflow,
}

/// Prices `gpus` GPUs for `hours` hours at `unit_price` per GPU-hour:
///
/// - `subtotal = round_half_up(unit_price × gpu_hours)`
/// - `subsidy = min(floor(subtotal × rate), grant available)`
/// - `tenant_amount = subtotal − subsidy`
/// - `platform_fee = round_half_up(subtotal × fee_rate)`, borne by the provider.
pub fn price(
    unit_price: Decimal,
    gpus: i64,
    hours: i64,
    currency: Currency,
    fee_rate: Decimal,
    subsidy: Option<SubsidyTerms>,
) -> Result<Breakdown, PricingError> {
    let gpu_hours = gpus.checked_mul(hours).ok_or(PricingError::Overflow)?;
    let raw = unit_price.checked_mul(Decimal::from(gpu_hours)).ok_or(PricingError::Overflow)?;
    let subtotal = round_half_up(raw, currency);
    let (subsidy, subsidy_rate) = match subsidy {
        None => (Decimal::ZERO, Decimal::ZERO),
        Some(terms) => {
            let by_rate = floor_to_minor(subtotal.checked_mul(terms.rate).ok_or(PricingError::Overflow)?, currency);
            (by_rate.min(terms.available.max(Decimal::ZERO)), terms.rate)
        }
    };
    let tenant_amount = subtotal.checked_sub(subsidy).ok_or(PricingError::Overflow)?;
    let platform_fee = round_half_up(subtotal.checked_mul(fee_rate).ok_or(PricingError::Overflow)?, currency);
    Ok(Breakdown {
        currency,
        unit_price,
        gpu_hours,
        subtotal,
        subsidy,
        subsidy_rate,
        tenant_amount,
        platform_fee,
        fee_rate,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    #[test]
    fn the_subtotal_rounds_half_up_once() {
        let b = price(dec!(1000.5), 1, 7, Currency::Krw, dec!(0), None).expect("price");
        assert_eq!(
            (b.gpu_hours, b.subtotal, b.subsidy, b.tenant_amount, b.platform_fee),
            (7, dec!(7004), dec!(0), dec!(7004), dec!(0))
        );
        let b = price(dec!(2.345), 3, 1, Currency::Usd, dec!(0), None).expect("price");
        assert_eq!(b.subtotal, dec!(7.04)); // 7.035 → 7.04
    }

    #[test]
    fn the_subsidy_floors_and_the_tenant_pays_the_rest() {
        let grant = SubsidyTerms { rate: dec!(0.8), available: dec!(1000000) };
        let b = price(dec!(1000.5), 1, 7, Currency::Krw, dec!(0), Some(grant)).expect("price");
        assert_eq!((b.subsidy, b.tenant_amount), (dec!(5603), dec!(1401))); // 5603.2 floors
        assert_eq!(b.subsidy + b.tenant_amount, b.subtotal);
    }

    #[test]
    fn the_grant_caps_the_subsidy() {
        let grant = SubsidyTerms { rate: dec!(0.9), available: dec!(1000) };
        let b = price(dec!(2500), 2, 1, Currency::Krw, dec!(0), Some(grant)).expect("price");
        assert_eq!((b.subtotal, b.subsidy, b.tenant_amount), (dec!(5000), dec!(1000), dec!(4000)));
        let empty = SubsidyTerms { rate: dec!(0.9), available: dec!(0) };
        let b = price(dec!(2500), 2, 1, Currency::Krw, dec!(0), Some(empty)).expect("price");
        assert_eq!((b.subsidy, b.tenant_amount), (dec!(0), dec!(5000)));
    }

    #[test]
    fn the_fee_rounds_half_up_on_the_subtotal() {
        let b = price(dec!(1000.5), 1, 7, Currency::Krw, dec!(0.025), None).expect("price");
        assert_eq!(b.platform_fee, dec!(175)); // 175.1
        let b = price(dec!(10), 1, 1, Currency::Usd, dec!(0.0125), None).expect("price");
        assert_eq!(b.platform_fee, dec!(0.13)); // 0.125 → 0.13
    }

    #[test]
    fn overflow_is_an_error() {
        assert_eq!(price(Decimal::MAX, 2, 1, Currency::Krw, dec!(0), None), Err(PricingError::Overflow));
        assert_eq!(price(dec!(1), i64::MAX, 2, Currency::Krw, dec!(0), None), Err(PricingError::Overflow));
    }
}
