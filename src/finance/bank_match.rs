//! Matching bank statement lines to ledger entries that moved `assets:bank`
//! (issue 11, item 4), as plain functions. In order:
//!
//! 1. **by reference**: the entries carrying the line's reference (or its bank
//!    reference) whose bank amounts add up to the line's — one entry, or
//!    several (one treasury payment for several claims) — are `matched`;
//! 2. **several lines to one entry**: unmatched lines sharing a reference whose
//!    amounts add up to one entry's (a payment split by the bank) are `matched`;
//! 3. **by amount and date**: a line with exactly one entry of the same amount
//!    within the tolerance in days is `suggested`, awaiting a person;
//! 4. anything else stays `unmatched`.
//!
//! Amounts are signed the bank's way: + received, − paid.

use std::collections::BTreeSet;

use chrono::NaiveDate;
use rust_decimal::Decimal;
use uuid::Uuid;

use crate::money::Currency;

#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    pub id: Uuid,
    pub date: NaiveDate,
    pub amount: Decimal,
    pub currency: Currency,
    pub reference: String,
    pub bank_ref: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    pub entry_id: Uuid,
    /// The entry's day in the programme office's zone.
    pub date: NaiveDate,
    /// What it did to the bank: + received, − paid.
    pub amount: Decimal,
    pub currency: Currency,
    pub reference: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Matched { entries: Vec<Uuid>, method: &'static str },
    Suggested { entry: Uuid },
    Unmatched,
}

fn same_reference(line: &Line, reference: Option<&str>) -> bool {
    reference.is_some_and(|r| !r.is_empty() && (r == line.reference || r == line.bank_ref))
}

/// Matches `lines` against `candidates` (entries no confirmed match holds yet).
/// Each candidate is used at most once; the outcome is per line, in order.
pub fn match_lines(lines: &[Line], candidates: &[Candidate], tolerance_days: i64) -> Vec<(Uuid, Outcome)> {
    let mut used: BTreeSet<Uuid> = BTreeSet::new();
    let mut outcomes: Vec<(Uuid, Outcome)> = lines.iter().map(|l| (l.id, Outcome::Unmatched)).collect();

    // 1. By reference: all the entries with the line's reference, if they add up.
    for (i, line) in lines.iter().enumerate() {
        let by_ref: Vec<&Candidate> = candidates
            .iter()
            .filter(|c| !used.contains(&c.entry_id) && c.currency == line.currency)
            .filter(|c| same_reference(line, c.reference.as_deref()))
            .collect();
        let exact = by_ref.iter().find(|c| c.amount == line.amount);
        let chosen: Vec<Uuid> = match exact {
            Some(c) => vec![c.entry_id],
            None if by_ref.len() > 1 && by_ref.iter().map(|c| c.amount).sum::<Decimal>() == line.amount => {
                by_ref.iter().map(|c| c.entry_id).collect()
            }
            None => continue,
        };
        used.extend(chosen.iter().copied());
        outcomes[i].1 = Outcome::Matched { entries: chosen, method: "reference" };
    }

    // 2. Several lines to one entry, by their shared reference.
    let open: Vec<usize> = (0..lines.len()).filter(|&i| outcomes[i].1 == Outcome::Unmatched).collect();
    let references: BTreeSet<&str> =
        open.iter().map(|&i| lines[i].reference.as_str()).filter(|r| !r.is_empty()).collect();
    for reference in references {
        let group: Vec<usize> = open.iter().copied().filter(|&i| lines[i].reference == reference).collect();
        if group.len() < 2 {
            continue;
        }
        let currency = lines[group[0]].currency;
        if group.iter().any(|&i| lines[i].currency != currency) {
            continue;
        }
        let total: Decimal = group.iter().map(|&i| lines[i].amount).sum();
        let entry = candidates.iter().find(|c| {
            !used.contains(&c.entry_id)
                && c.currency == currency
                && c.amount == total
                && c.reference.as_deref() == Some(reference)
        });
        if let Some(entry) = entry {
            used.insert(entry.entry_id);
            for &i in &group {
                outcomes[i].1 = Outcome::Matched { entries: vec![entry.entry_id], method: "reference" };
            }
        }
    }

    // 3. By amount and date: one candidate only, and a person confirms.
    for (i, line) in lines.iter().enumerate() {
        if outcomes[i].1 != Outcome::Unmatched {
            continue;
        }
        let near: Vec<&Candidate> = candidates
            .iter()
            .filter(|c| !used.contains(&c.entry_id) && c.currency == line.currency && c.amount == line.amount)
            .filter(|c| (c.date - line.date).num_days().abs() <= tolerance_days)
            .collect();
        if let [only] = near.as_slice() {
            used.insert(only.entry_id);
            outcomes[i].1 = Outcome::Suggested { entry: only.entry_id };
        }
    }
    outcomes
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    fn day(d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 11, d).expect("date")
    }

    fn line(n: u128, d: u32, amount: Decimal, reference: &str) -> Line {
        Line {
            id: Uuid::from_u128(n),
            date: day(d),
            amount,
            currency: Currency::Krw,
            reference: reference.into(),
            bank_ref: format!("B{n}"),
        }
    }

    fn entry(n: u128, d: u32, amount: Decimal, reference: Option<&str>) -> Candidate {
        Candidate {
            entry_id: Uuid::from_u128(n),
            date: day(d),
            amount,
            currency: Currency::Krw,
            reference: reference.map(Into::into),
        }
    }

    #[test]
    fn references_first_then_amount_and_date() {
        let lines = [
            line(1, 3, dec!(500000), "wire-acme"), // one to one by reference
            line(2, 4, dec!(300000), "MSIT-0042"), // one line, two claim payments
            line(3, 5, dec!(-70000), ""),          // payout, no reference: suggested by amount and date
            line(4, 6, dec!(120001), ""),          // near miss: stays unmatched
            line(5, 7, dec!(60000), "NIPA-SPLIT"), // two lines, one entry
            line(6, 7, dec!(40000), "NIPA-SPLIT"),
        ];
        let entries = [
            entry(11, 3, dec!(500000), Some("wire-acme")),
            entry(12, 4, dec!(200000), Some("MSIT-0042")),
            entry(13, 4, dec!(100000), Some("MSIT-0042")),
            entry(14, 4, dec!(-70000), Some("P-9")),
            entry(15, 6, dec!(120000), Some("wire-beta")),
            entry(16, 7, dec!(100000), Some("NIPA-SPLIT")),
        ];
        let id = |n| Uuid::from_u128(n);
        assert_eq!(
            match_lines(&lines, &entries, 3),
            vec![
                (id(1), Outcome::Matched { entries: vec![id(11)], method: "reference" }),
                (id(2), Outcome::Matched { entries: vec![id(12), id(13)], method: "reference" }),
                (id(3), Outcome::Suggested { entry: id(14) }),
                (id(4), Outcome::Unmatched),
                (id(5), Outcome::Matched { entries: vec![id(16)], method: "reference" }),
                (id(6), Outcome::Matched { entries: vec![id(16)], method: "reference" }),
            ]
        );
    }

    #[test]
    fn no_suggestion_when_the_date_is_too_far_or_ambiguous() {
        let lines = [line(1, 10, dec!(1000), "")];
        assert_eq!(match_lines(&lines, &[entry(2, 1, dec!(1000), None)], 3)[0].1, Outcome::Unmatched);
        let two = [entry(2, 10, dec!(1000), None), entry(3, 9, dec!(1000), None)];
        assert_eq!(match_lines(&lines, &two, 3)[0].1, Outcome::Unmatched);
    }
}
