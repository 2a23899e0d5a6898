//! The chart of accounts (SPEC section 3): every account code gpuhour uses, in
//! one place. Accounts are created when their owner is, never lazily inside a
//! hot transaction.

use uuid::Uuid;

use super::model::{AccountType, Floor, NormalSide};
use super::store::NewAccount;
use crate::money::Currency;

fn account(code: String, currency: Currency, account_type: AccountType, floor: Option<Floor>) -> NewAccount {
    NewAccount {
        code,
        currency,
        account_type,
        normal_side: super::rules::normal_side_of(account_type),
        floor,
        org_id: None,
    }
}

pub const BANK: &str = "assets:bank";
pub const PLATFORM_FEES: &str = "revenue:platform-fees";
pub const ADJUSTMENTS: &str = "equity:adjustments";
/// Claimed subsidy the programme disallowed and the operator wrote off.
pub const SUBSIDY_DISALLOWED: &str = "expenses:subsidy-disallowed";

/// The operator's own accounts, one per supported currency.
pub fn operator_accounts() -> Vec<NewAccount> {
    Currency::ALL
        .into_iter()
        .flat_map(|c| {
            [
                account(BANK.into(), c, AccountType::Asset, None),
                account(PLATFORM_FEES.into(), c, AccountType::Revenue, None),
                account(ADJUSTMENTS.into(), c, AccountType::Equity, None),
                account(SUBSIDY_DISALLOWED.into(), c, AccountType::Expense, None),
            ]
        })
        .collect()
}

pub fn tenant_wallet_code(org: Uuid) -> String {
    format!("liabilities:tenant:{org}:wallet")
}

pub fn provider_payable_code(org: Uuid) -> String {
    format!("liabilities:provider:{org}:payable")
}

/// A tenant's prepaid wallets, one per supported currency; never overdrawn.
pub fn tenant_accounts(org: Uuid) -> Vec<NewAccount> {
    Currency::ALL
        .into_iter()
        .map(|c| NewAccount {
            org_id: Some(org),
            ..account(tenant_wallet_code(org), c, AccountType::Liability, Some(Floor::NoOverdraft))
        })
        .collect()
}

/// What a provider owes the operator: outage credits for hours it had already
/// been paid for, recovered from its next payout.
pub fn provider_receivable_code(org: Uuid) -> String {
    format!("assets:provider:{org}:receivable")
}

/// What the operator owes a provider, and what the provider owes back, one
/// each per supported currency.
pub fn provider_accounts(org: Uuid) -> Vec<NewAccount> {
    Currency::ALL
        .into_iter()
        .flat_map(|c| {
            [
                NewAccount {
                    org_id: Some(org),
                    ..account(provider_payable_code(org), c, AccountType::Liability, None)
                },
                NewAccount { org_id: Some(org), ..account(provider_receivable_code(org), c, AccountType::Asset, None) },
            ]
        })
        .collect()
}

pub fn subsidy_receivable_code(programme: Uuid) -> String {
    format!("assets:subsidy-receivable:{programme}")
}

/// What the programme paid in advance and no claim has used yet.
pub fn programme_advance_code(programme: Uuid) -> String {
    format!("liabilities:programme:{programme}:advance")
}

/// What the programme is owed back after its year-end settlement.
pub fn programme_refund_due_code(programme: Uuid) -> String {
    format!("liabilities:programme:{programme}:refund-due")
}

pub fn appropriation_code(programme: Uuid) -> String {
    format!("budget:programme:{programme}:appropriation")
}

pub fn unallocated_code(programme: Uuid) -> String {
    format!("budget:programme:{programme}:unallocated")
}

pub fn grant_available_code(grant: Uuid) -> String {
    format!("budget:grant:{grant}:available")
}

pub fn grant_spent_code(grant: Uuid) -> String {
    format!("budget:grant:{grant}:spent")
}

/// A programme's accounts in its one currency. The appropriation is the source
/// of the budget, so it is debit-normal: its balance is what was appropriated.
pub fn programme_accounts(programme: Uuid, currency: Currency) -> Vec<NewAccount> {
    vec![
        account(subsidy_receivable_code(programme), currency, AccountType::Asset, None),
        NewAccount {
            normal_side: NormalSide::Debit,
            ..account(appropriation_code(programme), currency, AccountType::Memo, None)
        },
        account(unallocated_code(programme), currency, AccountType::Memo, Some(Floor::NoOverdraft)),
        // Never applied beyond what was received.
        account(programme_advance_code(programme), currency, AccountType::Liability, Some(Floor::NoOverdraft)),
        account(programme_refund_due_code(programme), currency, AccountType::Liability, Some(Floor::NoOverdraft)),
    ]
}

pub fn grant_accounts(grant: Uuid, currency: Currency) -> Vec<NewAccount> {
    vec![
        account(grant_available_code(grant), currency, AccountType::Memo, Some(Floor::NoOverdraft)),
        account(grant_spent_code(grant), currency, AccountType::Memo, None),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_follow_the_spec_chart() {
        let id = Uuid::from_u128(0x1234);
        assert_eq!(tenant_wallet_code(id), "liabilities:tenant:00000000-0000-0000-0000-000000001234:wallet");
        assert_eq!(grant_spent_code(id), "budget:grant:00000000-0000-0000-0000-000000001234:spent");
        let wallets = tenant_accounts(id);
        assert_eq!(wallets.len(), Currency::ALL.len());
        assert!(wallets.iter().all(|w| w.floor == Some(Floor::NoOverdraft) && w.normal_side == NormalSide::Credit));
        let programme = programme_accounts(id, Currency::Krw);
        assert_eq!(programme[0].normal_side, NormalSide::Debit);
        assert_eq!(programme[1].normal_side, NormalSide::Debit);
        assert_eq!(programme[2].floor, Some(Floor::NoOverdraft));
    }
}
