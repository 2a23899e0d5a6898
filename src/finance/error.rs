//! What can go wrong in finance's operations and reports, said in the domain's
//! words. Which status, code and title the caller sees is decided at the edge
//! (`impl From<FinanceError> for ApiError` in `http::problem`).

use uuid::Uuid;

use super::payout_policy::PayoutPosition;
use crate::ledger::LedgerError;
use crate::money::{Currency, format_amount};

#[derive(Debug, thiserror::Error)]
pub enum FinanceError {
    // Bank statement files: a bad row refuses the whole file. Rows count from
    // 1, the header.
    /// A row (or the header) that cannot be read, or a column missing.
    #[error("row {row}: {why}")]
    InvalidFile { row: usize, why: String },
    /// A field of a row that does not hold what its column should.
    #[error("row {row}, column {column}: {why}")]
    InvalidCell { row: usize, column: String, why: String },
    #[error("row {row}: bank_ref {bank_ref:?} appears twice in the file")]
    DuplicateBankRef { row: usize, bank_ref: String },

    // Bank lines and their matches.
    #[error("bank line {0} does not exist")]
    LineNotFound(Uuid),
    /// Confirming a suggestion when there is none.
    #[error("nothing is suggested for this line: name the entries")]
    NothingSuggested,
    #[error("the line is already matched: unmatch it first")]
    AlreadyMatched,
    /// Booking a deposit for a line that is matched or has a suggestion.
    #[error("the line is matched or has a suggestion: unmatch it first")]
    LineNotFree,
    #[error("the line has no match to undo")]
    NothingToUnmatch,
    /// Only money received can be a tenant's deposit.
    #[error("only a receipt can be booked as a deposit")]
    NotAReceipt,
    #[error("entry {0} did not move the bank")]
    EntryNotInBank(Uuid),
    #[error("entry {entry} is in {currency}")]
    EntryInOtherCurrency { entry: Uuid, currency: Currency },
    /// The entries named for a line do not add up to it.
    #[error("the entries moved {} and the line {}", .entries.normalize(), .line.normalize())]
    AmountsDiffer { entries: rust_decimal::Decimal, line: rust_decimal::Decimal },

    // Deposits and payouts.
    #[error("no such tenant organisation")]
    NoSuchTenant,
    #[error("no such provider organisation")]
    NoSuchProvider,
    /// A payout above what `payout_policy` lets the provider be paid now.
    #[error("{}", more_than_payable_now(.position, *.currency))]
    MoreThanPayableNow { position: PayoutPosition, currency: Currency },

    // Reports.
    /// An organisation that does not exist, or that the caller may not see
    /// (which answers the same).
    #[error("organisation {0} does not exist")]
    OrgNotFound(Uuid),
    /// A period `[from, to)` that ends before it begins (`from == to` is a
    /// valid, empty period).
    #[error("must not be after `to`")]
    FromAfterTo,
    /// A figure a report view formatted that does not read back as an amount.
    #[error("{0:?} is not an amount")]
    NotAnAmount(String),
    /// A sheet's totals row that overflows.
    #[error("a total overflows")]
    TotalOverflow,
    /// The funding report's figures could not be added up.
    #[error("the funding figures cannot be added up")]
    FundingFigures(#[source] LedgerError),
    /// A day the database formatted that does not parse back.
    #[error("the database gave an unreadable day")]
    UnreadableDay(#[source] chrono::ParseError),
    #[error("the spreadsheet cannot be written")]
    Xlsx(#[from] rust_xlsxwriter::XlsxError),

    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error("database error")]
    Database(#[from] diesel::result::Error),
}

/// Why a payout is refused: what may be paid now of the payable, and what
/// holds the rest back (the programme's unpaid subsidy, what the provider owes).
fn more_than_payable_now(position: &PayoutPosition, currency: Currency) -> String {
    let waiting = if position.awaiting_programme > rust_decimal::Decimal::ZERO {
        format!(
            "; {} of settled subsidy waits for the programme's payment",
            format_amount(position.awaiting_programme - position.advance_allowed, currency)
        )
    } else {
        String::new()
    };
    let owed = if position.provider_receivable > rust_decimal::Decimal::ZERO {
        format!("; {} the provider owes is recovered first", format_amount(position.provider_receivable, currency))
    } else {
        String::new()
    };
    format!(
        "is more than the provider may be paid now ({} of a posted payable of {}{waiting}{owed})",
        format_amount(position.payable_now, currency),
        format_amount(position.payable.max(rust_decimal::Decimal::ZERO), currency)
    )
}
