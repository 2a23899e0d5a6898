//! What a provider may be paid now (issue 14, item 4). The operator pays
//! providers out of cash it has received: tenants prepay their share, but the
//! subsidy share of a provider's earnings is only cash once the programme has
//! paid the claim that holds it. So by default a provider may be paid its
//! payable less the subsidy still awaited from the programme; an operator may
//! advance part of that (`GPUHOUR_PAYOUT_ADVANCE_RATE`, a fraction, default 0).
//! A receivable from the provider (outage credits for hours it had already
//! been paid) is recovered first, out of the same payable.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::money::{Currency, floor_to_minor, format_amount};

/// What a provider has received of one claim that holds `line` of its
/// subsidy: all of it once the claim is paid in full, otherwise the paid part
/// of the claim in proportion, floored (the operator never counts cash it has
/// not received). A line that only gives back (outage credits) is wholly settled.
pub fn received_on_claim(line: Decimal, claim_amount: Decimal, paid: Decimal, currency: Currency) -> Decimal {
    if line <= Decimal::ZERO || claim_amount <= Decimal::ZERO || paid >= claim_amount {
        return line;
    }
    if paid <= Decimal::ZERO {
        return Decimal::ZERO;
    }
    floor_to_minor(line * paid / claim_amount, currency)
}

/// What an outage credit makes the provider owe: the part of the refunds that
/// takes its payable (posted balance `before`, changed by `change`) below zero —
/// it was already paid out. That part becomes an explicit receivable from the
/// provider (`provider receivable → payable`) instead of a negative payable.
pub fn shortfall(before: Decimal, change: Decimal) -> Decimal {
    let owed_after = (-(before + change)).max(Decimal::ZERO);
    let owed_before = (-before).max(Decimal::ZERO);
    (owed_after - owed_before).max(Decimal::ZERO)
}

/// A provider's position for payouts in one currency.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PayoutPosition {
    /// The posted payable (what the operator owes it in all).
    pub payable: Decimal,
    /// Subsidy earned (settled) that the programme has not paid yet.
    pub awaiting_programme: Decimal,
    /// Of that, what the operator's advance rate lets it pay before the programme does.
    pub advance_allowed: Decimal,
    /// What the provider owes back (recovered from the payable before any payout).
    pub provider_receivable: Decimal,
    /// What may be paid out now, after recovering the receivable.
    pub payable_now: Decimal,
}

impl PayoutPosition {
    pub fn compute(
        payable: Decimal,
        subsidy_earned: Decimal,
        subsidy_received: Decimal,
        provider_receivable: Decimal,
        advance_rate: Decimal,
        currency: Currency,
    ) -> Self {
        let awaiting_programme = (subsidy_earned - subsidy_received).max(Decimal::ZERO);
        let advance_allowed = floor_to_minor(awaiting_programme * advance_rate, currency);
        let withheld = awaiting_programme - advance_allowed;
        let recovered = provider_receivable.max(Decimal::ZERO).min(payable.max(Decimal::ZERO));
        let payable_now = (payable - recovered - withheld).max(Decimal::ZERO);
        PayoutPosition {
            payable,
            awaiting_programme,
            advance_allowed,
            provider_receivable: provider_receivable.max(Decimal::ZERO),
            payable_now,
        }
    }

    /// What the next payout recovers of the receivable, out of the payable.
    pub fn to_recover(&self) -> Decimal {
        self.provider_receivable.min(self.payable.max(Decimal::ZERO))
    }

    pub fn view(&self, currency: Currency) -> PayoutPositionView {
        PayoutPositionView {
            currency: currency.code().to_string(),
            payable: format_amount(self.payable, currency),
            awaiting_programme: format_amount(self.awaiting_programme, currency),
            advance_allowed: format_amount(self.advance_allowed, currency),
            provider_receivable: format_amount(self.provider_receivable, currency),
            payable_now: format_amount(self.payable_now, currency),
        }
    }
}

/// A provider's payout position, as the API shows it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PayoutPositionView {
    pub currency: String,
    /// The posted payable.
    pub payable: String,
    /// Settled subsidy the programme has not paid yet: it waits for the programme.
    pub awaiting_programme: String,
    /// Of that, what the operator's advance rate allows paying now.
    pub advance_allowed: String,
    /// What the provider owes back (outage credits after a payout); the next payout recovers it.
    pub provider_receivable: String,
    /// What a payout may take now.
    pub payable_now: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    #[test]
    fn a_partly_paid_claim_releases_its_share_floored() {
        assert_eq!(received_on_claim(dec!(5603), dec!(5603), dec!(4000), Currency::Krw), dec!(4000));
        // Two providers in a claim of 1,000 paid 500: each gets half its line, floored.
        assert_eq!(received_on_claim(dec!(333), dec!(1000), dec!(500), Currency::Krw), dec!(166));
        assert_eq!(received_on_claim(dec!(667), dec!(1000), dec!(500), Currency::Krw), dec!(333));
        assert_eq!(received_on_claim(dec!(667), dec!(1000), dec!(1200), Currency::Krw), dec!(667), "overpaid: all");
        assert_eq!(received_on_claim(dec!(667), dec!(1000), dec!(0), Currency::Krw), dec!(0));
        assert_eq!(received_on_claim(dec!(-50), dec!(1000), dec!(0), Currency::Krw), dec!(-50));
    }

    #[test]
    fn refunds_beyond_the_payable_become_a_receivable() {
        assert_eq!(shortfall(dec!(1000), dec!(-400)), dec!(0));
        assert_eq!(shortfall(dec!(0), dec!(-400)), dec!(400), "already paid out");
        assert_eq!(shortfall(dec!(100), dec!(-400)), dec!(300));
        assert_eq!(shortfall(dec!(100), dec!(50)), dec!(0));
    }

    #[test]
    fn the_provider_is_paid_from_cash_received() {
        // Earned 1,401 from the tenant and 5,603 of subsidy; the programme paid 4,000.
        let p = PayoutPosition::compute(dec!(7004), dec!(5603), dec!(4000), dec!(0), dec!(0), Currency::Krw);
        assert_eq!((p.awaiting_programme, p.payable_now), (dec!(1603), dec!(5401)));
        // An advance rate of half lets half of what waits be paid.
        let p = PayoutPosition::compute(dec!(7004), dec!(5603), dec!(4000), dec!(0), dec!(0.5), Currency::Krw);
        assert_eq!((p.advance_allowed, p.payable_now), (dec!(801), dec!(6202)));
        // A receivable of 300 is recovered first.
        let p = PayoutPosition::compute(dec!(7004), dec!(0), dec!(0), dec!(300), dec!(0), Currency::Krw);
        assert_eq!((p.to_recover(), p.payable_now), (dec!(300), dec!(6704)));
        // Nothing is payable while more waits than is owed.
        let p = PayoutPosition::compute(dec!(100), dec!(500), dec!(0), dec!(0), dec!(0), Currency::Krw);
        assert_eq!(p.payable_now, dec!(0));
    }
}
