//! The ledger's business rules as plain functions over plain values: what a set
//! of movements does to the locked accounts and pending remainders, and whether
//! the result is allowed. The database code (`posting.rs`) loads, calls, writes.

use std::collections::BTreeMap;

use rust_decimal::Decimal;
use uuid::Uuid;

use super::error::LedgerError;
use super::model::{AccountState, AccountType, Balances, NormalSide, PendingState, PostingKind};
use crate::money::Currency;

/// What one posting of a new entry asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Movement {
    /// `debit → credit`, posted at once or reserved as pending.
    Transfer { debit: Uuid, credit: Uuid, amount: Decimal, pending: bool },
    /// Post (part of) an earlier pending posting.
    PostPending { pending_posting_id: Uuid, amount: Decimal },
    /// Void (part of) an earlier pending posting.
    VoidPending { pending_posting_id: Uuid, amount: Decimal },
}

impl Movement {
    pub fn posted(debit: Uuid, credit: Uuid, amount: Decimal) -> Self {
        Movement::Transfer { debit, credit, amount, pending: false }
    }

    pub fn pending(debit: Uuid, credit: Uuid, amount: Decimal) -> Self {
        Movement::Transfer { debit, credit, amount, pending: true }
    }

    pub fn pending_posting_id(&self) -> Option<Uuid> {
        match self {
            Movement::Transfer { .. } => None,
            Movement::PostPending { pending_posting_id, .. } | Movement::VoidPending { pending_posting_id, .. } => {
                Some(*pending_posting_id)
            }
        }
    }
}

/// A posting ready to be written, with the balances it leaves behind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppliedPosting {
    pub kind: PostingKind,
    pub pending_posting_id: Option<Uuid>,
    pub debit_account_id: Uuid,
    pub credit_account_id: Uuid,
    pub currency: Currency,
    pub amount: Decimal,
    /// Posted balance (normal direction) of each account right after this posting.
    pub debit_account_balance: Decimal,
    pub credit_account_balance: Decimal,
}

fn add(a: Decimal, b: Decimal) -> Result<Decimal, LedgerError> {
    a.checked_add(b).ok_or(LedgerError::Overflow)
}

fn sub(a: Decimal, b: Decimal) -> Result<Decimal, LedgerError> {
    a.checked_sub(b).ok_or(LedgerError::Overflow)
}

/// Applies `movements` in order to the locked `accounts` and `pendings`, and checks
/// every rule: positive amounts, distinct accounts of one currency, memo accounts
/// only against memo accounts, no pending posted or voided beyond its remainder,
/// and, once the whole entry is applied, every touched account's floor.
///
/// On error nothing is to be written; `accounts` and `pendings` are then garbage.
pub fn apply_movements(
    accounts: &mut BTreeMap<Uuid, AccountState>,
    pendings: &mut BTreeMap<Uuid, PendingState>,
    movements: &[Movement],
) -> Result<Vec<AppliedPosting>, LedgerError> {
    if movements.is_empty() {
        return Err(LedgerError::EmptyEntry);
    }
    let mut applied = Vec::with_capacity(movements.len());
    for movement in movements {
        let (kind, pending_posting_id, debit, credit, amount) = match *movement {
            Movement::Transfer { debit, credit, amount, pending } => {
                let kind = if pending { PostingKind::Pending } else { PostingKind::Posted };
                (kind, None, debit, credit, amount)
            }
            Movement::PostPending { pending_posting_id, amount } => {
                let p = resolve_pending(pendings, pending_posting_id, amount)?;
                (PostingKind::PostPending, Some(pending_posting_id), p.0, p.1, amount)
            }
            Movement::VoidPending { pending_posting_id, amount } => {
                let p = resolve_pending(pendings, pending_posting_id, amount)?;
                (PostingKind::VoidPending, Some(pending_posting_id), p.0, p.1, amount)
            }
        };
        if amount <= Decimal::ZERO {
            return Err(LedgerError::NonPositiveAmount);
        }
        if debit == credit {
            return Err(LedgerError::SameAccount(debit));
        }
        let currency = pair_currency(accounts, debit, credit)?;
        if let Some(id) = pending_posting_id {
            let pending_currency = pendings.get(&id).map(|p| p.currency);
            if pending_currency != Some(currency) {
                return Err(LedgerError::CurrencyMismatch { account_id: debit });
            }
        }
        if amount.normalize().scale() > currency.minor_units() {
            return Err(LedgerError::TooPrecise { currency });
        }

        let debit_balance = update_side(accounts, debit, kind, amount, Side::Debit)?;
        let credit_balance = update_side(accounts, credit, kind, amount, Side::Credit)?;
        applied.push(AppliedPosting {
            kind,
            pending_posting_id,
            debit_account_id: debit,
            credit_account_id: credit,
            currency,
            amount,
            debit_account_balance: debit_balance,
            credit_account_balance: credit_balance,
        });
    }
    // Floors are judged on the entry as a whole: it is one atomic event.
    let touched: Vec<Uuid> = applied.iter().flat_map(|p| [p.debit_account_id, p.credit_account_id]).collect();
    for id in touched {
        let account = &accounts[&id];
        if !account.balances.respects(account.floor, account.normal_side) {
            return Err(LedgerError::FloorBroken {
                account_id: account.id,
                code: account.code.clone(),
                currency: account.currency,
                available: account.balances.available(account.normal_side),
            });
        }
    }
    Ok(applied)
}

fn resolve_pending(
    pendings: &mut BTreeMap<Uuid, PendingState>,
    id: Uuid,
    amount: Decimal,
) -> Result<(Uuid, Uuid), LedgerError> {
    let pending = pendings.get_mut(&id).ok_or(LedgerError::PendingNotFound(id))?;
    if amount > pending.remaining {
        return Err(LedgerError::PendingExceeded {
            posting_id: id,
            currency: pending.currency,
            remaining: pending.remaining,
            requested: amount,
        });
    }
    pending.remaining = sub(pending.remaining, amount)?;
    Ok((pending.debit_account_id, pending.credit_account_id))
}

fn pair_currency(accounts: &BTreeMap<Uuid, AccountState>, debit: Uuid, credit: Uuid) -> Result<Currency, LedgerError> {
    let d = accounts.get(&debit).ok_or(LedgerError::UnknownAccount(debit))?;
    let c = accounts.get(&credit).ok_or(LedgerError::UnknownAccount(credit))?;
    if d.currency != c.currency {
        return Err(LedgerError::CurrencyMismatch { account_id: credit });
    }
    // Budget memo accounts count public money promised, not money held: they may
    // only move against each other, or the balance sheet would mix the two.
    if (d.account_type == AccountType::Memo) != (c.account_type == AccountType::Memo) {
        return Err(LedgerError::MixesMemoAndMoney { debit, credit });
    }
    Ok(d.currency)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Side {
    Debit,
    Credit,
}

/// Moves `amount` on one side of one account; returns its posted balance after.
fn update_side(
    accounts: &mut BTreeMap<Uuid, AccountState>,
    id: Uuid,
    kind: PostingKind,
    amount: Decimal,
    side: Side,
) -> Result<Decimal, LedgerError> {
    let account = accounts.get_mut(&id).ok_or(LedgerError::UnknownAccount(id))?;
    let b: &mut Balances = &mut account.balances;
    let (posted, pending) = match side {
        Side::Debit => (&mut b.debits_posted, &mut b.debits_pending),
        Side::Credit => (&mut b.credits_posted, &mut b.credits_pending),
    };
    match kind {
        PostingKind::Posted => *posted = add(*posted, amount)?,
        PostingKind::Pending => *pending = add(*pending, amount)?,
        PostingKind::PostPending => {
            *pending = sub(*pending, amount)?;
            *posted = add(*posted, amount)?;
        }
        PostingKind::VoidPending => *pending = sub(*pending, amount)?,
    }
    if *pending < Decimal::ZERO {
        // Only reachable if stored figures disagree with the remainders: refuse
        // rather than write a negative pending figure.
        return Err(LedgerError::Corrupt(format!("pending figure of account {id} would go negative")));
    }
    Ok(account.balances.posted_balance(account.normal_side))
}

/// The normal side of an account of `account_type`: assets and expenses grow by
/// debits; liabilities, equity and revenue by credits. Memo accounts are chosen
/// by the chart (budget accounts are credit-normal).
pub fn normal_side_of(account_type: AccountType) -> NormalSide {
    match account_type {
        AccountType::Asset | AccountType::Expense => NormalSide::Debit,
        AccountType::Liability | AccountType::Equity | AccountType::Revenue | AccountType::Memo => NormalSide::Credit,
    }
}

/// Whether a manual adjustment may post to an account. Budget (memo) accounts
/// and the accounts the subsidy workflows own — a programme's receivable, its
/// advance and refund due — change only through those workflows (credit notes,
/// write-offs, claims, advances, settlement), so claims, reports and `verify`
/// stay in agreement.
pub fn adjustable(code: &str, account_type: AccountType) -> Result<(), String> {
    let owned_by_workflow = [
        ("assets:subsidy-receivable:", "claims, credit notes and write-offs"),
        ("liabilities:programme:", "advances and the programme's settlement"),
    ];
    if account_type == AccountType::Memo {
        return Err(format!("{code} is a budget account: grants, withdrawals and closes move it"));
    }
    for (prefix, workflow) in owned_by_workflow {
        if code.starts_with(prefix) {
            return Err(format!("{code} changes only through {workflow}"));
        }
    }
    Ok(())
}

/// Whether an entry of `kind` may be reversed by `POST /v1/journal-entries/{id}/reverse`:
/// only manual adjustments. Every other entry belongs to a workflow and is
/// corrected through it (a cancellation, an outage credit, a credit note, a
/// write-off, a grant's close or withdrawal, a voided draft claim, a correcting
/// adjustment), so that the workflow's own records stay true.
pub fn reversible(kind: &str) -> Result<(), String> {
    match kind {
        "adjustment" => Ok(()),
        "reversal" => Err("it is itself a reversal".into()),
        other => Err(format!(
            "{other} entries belong to a workflow and are corrected through it, not reversed \
             (docs/accounting.md, \"Corrections to subsidy\"; a manual adjustment for money accounts)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workflows_own_their_accounts_and_entries() {
        assert!(adjustable("assets:bank", AccountType::Asset).is_ok());
        assert!(adjustable("liabilities:tenant:x:wallet", AccountType::Liability).is_ok());
        assert!(adjustable("budget:grant:x:spent", AccountType::Memo).is_err());
        assert!(adjustable("assets:subsidy-receivable:x", AccountType::Asset).is_err());
        assert!(adjustable("liabilities:programme:x:advance", AccountType::Liability).is_err());
        assert!(reversible("adjustment").is_ok());
        for kind in ["claim_payment", "grant", "deposit", "payout", "reversal", "credit_note"] {
            assert!(reversible(kind).is_err(), "{kind}");
        }
    }
    use crate::ledger::model::Floor;
    use rust_decimal_macros::dec;

    fn account(n: u128, t: AccountType, floor: Option<Floor>, currency: Currency) -> AccountState {
        AccountState {
            id: Uuid::from_u128(n),
            code: format!("test:{n}"),
            currency,
            account_type: t,
            normal_side: normal_side_of(t),
            floor,
            balances: Balances::default(),
        }
    }

    fn book(list: Vec<AccountState>) -> BTreeMap<Uuid, AccountState> {
        list.into_iter().map(|a| (a.id, a)).collect()
    }

    const BANK: u128 = 1;
    const WALLET: u128 = 2;
    const PAYABLE: u128 = 3;
    const USD_BANK: u128 = 4;
    const BUDGET: u128 = 5;

    fn id(n: u128) -> Uuid {
        Uuid::from_u128(n)
    }

    fn sample() -> BTreeMap<Uuid, AccountState> {
        book(vec![
            account(BANK, AccountType::Asset, None, Currency::Krw),
            account(WALLET, AccountType::Liability, Some(Floor::NoOverdraft), Currency::Krw),
            account(PAYABLE, AccountType::Liability, None, Currency::Krw),
            account(USD_BANK, AccountType::Asset, None, Currency::Usd),
            account(BUDGET, AccountType::Memo, Some(Floor::NoOverdraft), Currency::Krw),
        ])
    }

    #[test]
    fn a_deposit_moves_posted_figures_and_reports_balances_after() {
        let mut accounts = sample();
        let applied =
            apply_movements(&mut accounts, &mut BTreeMap::new(), &[Movement::posted(id(BANK), id(WALLET), dec!(1000))])
                .expect("deposit applies");
        assert_eq!(accounts[&id(BANK)].balances.debits_posted, dec!(1000));
        assert_eq!(accounts[&id(WALLET)].balances.credits_posted, dec!(1000));
        assert_eq!(applied[0].debit_account_balance, dec!(1000));
        assert_eq!(applied[0].credit_account_balance, dec!(1000));
        assert_eq!(applied[0].kind, PostingKind::Posted);
    }

    #[test]
    fn pending_debits_count_against_the_floor() {
        let mut accounts = sample();
        apply_movements(&mut accounts, &mut BTreeMap::new(), &[Movement::posted(id(BANK), id(WALLET), dec!(100))])
            .expect("deposit");
        apply_movements(&mut accounts, &mut BTreeMap::new(), &[Movement::pending(id(WALLET), id(PAYABLE), dec!(60))])
            .expect("first reservation fits");
        let err = apply_movements(
            &mut accounts,
            &mut BTreeMap::new(),
            &[Movement::pending(id(WALLET), id(PAYABLE), dec!(41))],
        )
        .expect_err("second reservation exceeds what is available");
        assert_eq!(
            err,
            LedgerError::FloorBroken {
                account_id: id(WALLET),
                code: format!("test:{WALLET}"),
                currency: Currency::Krw,
                available: dec!(-1),
            }
        );
    }

    #[test]
    fn the_floor_is_judged_on_the_whole_entry() {
        let mut accounts = sample();
        // Funding and spending in one entry is allowed: the entry is atomic.
        apply_movements(
            &mut accounts,
            &mut BTreeMap::new(),
            &[Movement::posted(id(WALLET), id(PAYABLE), dec!(50)), Movement::posted(id(BANK), id(WALLET), dec!(50))],
        )
        .expect("net effect respects the floor");
        assert_eq!(accounts[&id(WALLET)].balances.available(NormalSide::Credit), dec!(0));
    }

    fn pending_of(posting: &AppliedPosting, posting_id: Uuid) -> PendingState {
        PendingState {
            posting_id,
            debit_account_id: posting.debit_account_id,
            credit_account_id: posting.credit_account_id,
            currency: posting.currency,
            remaining: posting.amount,
        }
    }

    #[test]
    fn a_pending_is_posted_in_parts_and_the_rest_voided() {
        let mut accounts = sample();
        apply_movements(&mut accounts, &mut BTreeMap::new(), &[Movement::posted(id(BANK), id(WALLET), dec!(100))])
            .expect("deposit");
        let reserved = apply_movements(
            &mut accounts,
            &mut BTreeMap::new(),
            &[Movement::pending(id(WALLET), id(PAYABLE), dec!(70))],
        )
        .expect("reservation");
        let pid = Uuid::from_u128(99);
        let mut pendings = BTreeMap::from([(pid, pending_of(&reserved[0], pid))]);

        let posted = apply_movements(
            &mut accounts,
            &mut pendings,
            &[Movement::PostPending { pending_posting_id: pid, amount: dec!(30) }],
        )
        .expect("partial post");
        assert_eq!(posted[0].credit_account_balance, dec!(30));
        assert_eq!(pendings[&pid].remaining, dec!(40));

        apply_movements(
            &mut accounts,
            &mut pendings,
            &[Movement::VoidPending { pending_posting_id: pid, amount: dec!(40) }],
        )
        .expect("void the rest");
        let wallet = &accounts[&id(WALLET)].balances;
        assert_eq!(
            *wallet,
            Balances {
                debits_posted: dec!(30),
                credits_posted: dec!(100),
                debits_pending: dec!(0),
                credits_pending: dec!(0),
            }
        );
        assert_eq!(pendings[&pid].remaining, dec!(0));

        let err = apply_movements(
            &mut accounts,
            &mut pendings,
            &[Movement::PostPending { pending_posting_id: pid, amount: dec!(1) }],
        )
        .expect_err("nothing is left to post");
        assert_eq!(
            err,
            LedgerError::PendingExceeded {
                posting_id: pid,
                currency: Currency::Krw,
                remaining: dec!(0),
                requested: dec!(1)
            }
        );
    }

    #[test]
    fn refuses_malformed_movements() {
        let mut accounts = sample();
        let mut pendings = BTreeMap::new();
        let mut try_one = |m: Movement| apply_movements(&mut accounts, &mut pendings, &[m]);
        assert_eq!(try_one(Movement::posted(id(BANK), id(WALLET), dec!(0))), Err(LedgerError::NonPositiveAmount));
        assert_eq!(try_one(Movement::posted(id(BANK), id(WALLET), dec!(-5))), Err(LedgerError::NonPositiveAmount));
        assert_eq!(try_one(Movement::posted(id(BANK), id(BANK), dec!(5))), Err(LedgerError::SameAccount(id(BANK))));
        assert_eq!(
            try_one(Movement::posted(id(USD_BANK), id(WALLET), dec!(5))),
            Err(LedgerError::CurrencyMismatch { account_id: id(WALLET) })
        );
        assert_eq!(
            try_one(Movement::posted(id(BANK), id(BUDGET), dec!(5))),
            Err(LedgerError::MixesMemoAndMoney { debit: id(BANK), credit: id(BUDGET) })
        );
        assert_eq!(
            try_one(Movement::posted(id(BANK), Uuid::from_u128(77), dec!(5))),
            Err(LedgerError::UnknownAccount(Uuid::from_u128(77)))
        );
        assert_eq!(
            try_one(Movement::posted(id(BANK), id(WALLET), dec!(0.5))),
            Err(LedgerError::TooPrecise { currency: Currency::Krw })
        );
        assert_eq!(
            try_one(Movement::PostPending { pending_posting_id: Uuid::from_u128(5), amount: dec!(1) }),
            Err(LedgerError::PendingNotFound(Uuid::from_u128(5)))
        );
        assert_eq!(apply_movements(&mut sample(), &mut BTreeMap::new(), &[]), Err(LedgerError::EmptyEntry));
    }

    #[test]
    fn overflow_is_an_error_not_a_wrap() {
        let mut accounts = sample();
        accounts.get_mut(&id(BANK)).expect("bank").balances.debits_posted = Decimal::MAX;
        assert_eq!(
            apply_movements(&mut accounts, &mut BTreeMap::new(), &[Movement::posted(id(BANK), id(WALLET), dec!(1))]),
            Err(LedgerError::Overflow)
        );
    }
}
