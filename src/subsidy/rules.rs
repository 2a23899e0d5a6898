//! The subsidy's rules as plain functions: rates, eligibility, validity.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use uuid::Uuid;

/// Parses a rate: a decimal fraction in (0, 1] with at most six digits.
pub fn parse_rate(raw: &str) -> Result<Decimal, String> {
    let rate: Decimal = raw.trim().parse().map_err(|_| format!("{raw:?} is not a decimal"))?;
    if rate <= Decimal::ZERO || rate > Decimal::ONE {
        return Err("must be more than 0 and at most 1".into());
    }
    if rate.normalize().scale() > 6 {
        return Err("has more than 6 fraction digits".into());
    }
    Ok(rate.normalize())
}

/// The rate an order gets: the grant's own, else the programme's for the
/// tenant's category, else the programme's default.
pub fn rate_for(
    grant_rate: Option<Decimal>,
    rates_by_category: &BTreeMap<String, Decimal>,
    default_rate: Decimal,
    category: Option<&str>,
) -> Decimal {
    grant_rate.or_else(|| category.and_then(|c| rates_by_category.get(c).copied())).unwrap_or(default_rate)
}

/// The category a tenant's rate may follow: one that finance has confirmed or
/// set. A category the tenant only declared at sign-up counts for nothing, so
/// it gets the programme's default rate (a grant's own rate, set by finance,
/// still applies).
pub fn rate_category(category: Option<&str>, confirmed: bool) -> Option<&str> {
    category.filter(|_| confirmed)
}

/// What a programme funds; `None` means anything.
#[derive(Debug, Clone, Default)]
pub struct Eligibility {
    pub gpu_models: Option<Vec<String>>,
    pub regions: Option<Vec<String>>,
    pub provider_ids: Option<Vec<Uuid>>,
}

impl Eligibility {
    pub fn check(&self, gpu_model: &str, region: &str, provider: Uuid) -> Result<(), &'static str> {
        if self.gpu_models.as_ref().is_some_and(|m| !m.iter().any(|x| x == gpu_model)) {
            return Err("the programme does not fund this GPU model");
        }
        if self.regions.as_ref().is_some_and(|r| !r.iter().any(|x| x == region)) {
            return Err("the programme does not fund this region");
        }
        if self.provider_ids.as_ref().is_some_and(|p| !p.contains(&provider)) {
            return Err("the programme does not fund this provider");
        }
        Ok(())
    }
}

/// Whether an order's hours [`start`, `end`) fall inside a validity window.
pub fn within(start: DateTime<Utc>, end: DateTime<Utc>, from: DateTime<Utc>, until: DateTime<Utc>) -> bool {
    start >= from && end <= until
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    #[test]
    fn rates_are_fractions() {
        assert_eq!(parse_rate("0.8"), Ok(dec!(0.8)));
        assert_eq!(parse_rate("1"), Ok(dec!(1)));
        assert!(parse_rate("0").is_err());
        assert!(parse_rate("1.01").is_err());
        assert!(parse_rate("0.1234567").is_err());
        assert!(parse_rate("eighty").is_err());
    }

    #[test]
    fn the_rate_comes_from_the_grant_then_the_category_then_the_default() {
        let by_category = BTreeMap::from([("sme".to_string(), dec!(0.8)), ("university".to_string(), dec!(0.9))]);
        assert_eq!(rate_for(Some(dec!(0.5)), &by_category, dec!(0.7), Some("sme")), dec!(0.5));
        assert_eq!(rate_for(None, &by_category, dec!(0.7), Some("university")), dec!(0.9));
        assert_eq!(rate_for(None, &by_category, dec!(0.7), Some("enterprise")), dec!(0.7));
        assert_eq!(rate_for(None, &by_category, dec!(0.7), None), dec!(0.7));
    }

    #[test]
    fn a_declared_category_is_worth_the_default_rate_until_confirmed() {
        let by_category = BTreeMap::from([("university".to_string(), dec!(0.9))]);
        let declared = rate_category(Some("university"), false);
        assert_eq!(rate_for(None, &by_category, dec!(0.7), declared), dec!(0.7));
        let confirmed = rate_category(Some("university"), true);
        assert_eq!(rate_for(None, &by_category, dec!(0.7), confirmed), dec!(0.9));
        // A grant's own rate is finance's decision: it applies either way.
        assert_eq!(rate_for(Some(dec!(0.5)), &by_category, dec!(0.7), declared), dec!(0.5));
    }

    #[test]
    fn eligibility_filters_by_model_region_and_provider() {
        let provider = Uuid::from_u128(7);
        let e = Eligibility {
            gpu_models: Some(vec!["H100-SXM5-80GB".into()]),
            regions: None,
            provider_ids: Some(vec![provider]),
        };
        assert_eq!(e.check("H100-SXM5-80GB", "anywhere", provider), Ok(()));
        assert!(e.check("A100-80GB", "anywhere", provider).is_err());
        assert!(e.check("H100-SXM5-80GB", "anywhere", Uuid::from_u128(8)).is_err());
        assert_eq!(Eligibility::default().check("x", "y", provider), Ok(()));
    }
}
