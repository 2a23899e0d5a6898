//! Typed failures of the posting code. Callers map them to API problems; a
//! floor broken on a wallet is `insufficient_funds`, on a budget `budget_exhausted`.

use rust_decimal::Decimal;
use uuid::Uuid;

use crate::money::{Currency, MoneyError, format_amount};

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum LedgerError {
    #[error("a journal entry needs at least one posting")]
    EmptyEntry,
    #[error("every posting amount must be greater than zero")]
    NonPositiveAmount,
    #[error("a posting must move money between two different accounts (both sides were {0})")]
    SameAccount(Uuid),
    #[error("account {0} does not exist")]
    UnknownAccount(Uuid),
    #[error("account {account_id} is in another currency than the rest of the posting")]
    CurrencyMismatch { account_id: Uuid },
    #[error("amount has more fraction digits than {currency} allows")]
    TooPrecise { currency: Currency },
    #[error("budget (memo) accounts move only against budget accounts ({debit} → {credit})")]
    MixesMemoAndMoney { debit: Uuid, credit: Uuid },
    #[error("pending posting {0} does not exist")]
    PendingNotFound(Uuid),
    // Amounts in messages carry their currency's precision (`-242000`, never
    // the stored `-242000.0000`).
    #[error(
        "pending posting {posting_id} has {} {currency} left; {} was asked for",
        format_amount(*.remaining, *.currency),
        format_amount(*.requested, *.currency)
    )]
    PendingExceeded { posting_id: Uuid, currency: Currency, remaining: Decimal, requested: Decimal },
    #[error(
        "account {code} ({currency}) would go below its floor: available would be {}",
        format_amount(*.available, *.currency)
    )]
    FloorBroken { account_id: Uuid, code: String, currency: Currency, available: Decimal },
    #[error("amount overflow")]
    Overflow,
    #[error("journal entry {0} does not exist")]
    EntryNotFound(Uuid),
    #[error("journal entry cannot be reversed: {0}")]
    NotReversible(String),
    #[error("ledger data is inconsistent: {0}")]
    Corrupt(String),
    /// The entry's effective_at falls in a closed period (the database's own
    /// trigger refuses it): post a correction in the open period instead.
    #[error("the entry falls in a closed period: post it in the open period, referring to what it corrects")]
    PeriodClosed,
    #[error("database error")]
    Database(#[source] DbError),
}

impl From<MoneyError> for LedgerError {
    fn from(e: MoneyError) -> Self {
        match e {
            MoneyError::Overflow => LedgerError::Overflow,
            // Amounts are summed per currency: money of two meeting is a bug.
            MoneyError::MixedCurrencies(..) => LedgerError::Corrupt(e.to_string()),
        }
    }
}

/// diesel's error is not `PartialEq`; this wrapper lets `LedgerError` be compared in tests.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct DbError(#[from] pub diesel::result::Error);

impl PartialEq for DbError {
    fn eq(&self, other: &Self) -> bool {
        self.0.to_string() == other.0.to_string()
    }
}

impl From<diesel::result::Error> for LedgerError {
    fn from(e: diesel::result::Error) -> Self {
        if let diesel::result::Error::DatabaseError(_, info) = &e
            && info.constraint_name() == Some("period_closed")
        {
            return LedgerError::PeriodClosed;
        }
        LedgerError::Database(DbError(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    #[test]
    fn amounts_in_messages_carry_the_currency_precision() {
        // Balances come back from NUMERIC(28, 4) with four fraction digits.
        let floor = LedgerError::FloorBroken {
            account_id: Uuid::nil(),
            code: "liabilities:tenant:x:wallet".into(),
            currency: Currency::Krw,
            available: dec!(-242000.0000),
        };
        assert_eq!(
            floor.to_string(),
            "account liabilities:tenant:x:wallet (KRW) would go below its floor: available would be -242000"
        );
        let pending = LedgerError::PendingExceeded {
            posting_id: Uuid::nil(),
            currency: Currency::Usd,
            remaining: dec!(1.5000),
            requested: dec!(2),
        };
        assert_eq!(
            pending.to_string(),
            format!("pending posting {} has 1.50 USD left; 2.00 was asked for", Uuid::nil())
        );
    }
}
