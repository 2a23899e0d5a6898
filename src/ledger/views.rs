//! How the ledger's rows are shown: the views the ledger's routes answer and
//! other areas (an organisation's `GET /v1/me`, the console) show too.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::model::NormalSide;
use super::store::AccountRow;
use crate::money::{Currency, format_amount, format_scaled};

/// Formats an amount of an account's stored currency.
pub(crate) fn amount_in(value: Decimal, currency: &str) -> String {
    match currency.parse::<Currency>() {
        Ok(c) => format_amount(value, c),
        Err(_) => format_scaled(value, 4),
    }
}

/// An account with its four figures (SPEC section 6).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AccountView {
    pub id: Uuid,
    pub code: String,
    #[serde(rename = "type")]
    pub account_type: String,
    pub currency: String,
    pub normal_side: String,
    pub floor: Option<String>,
    pub org_id: Option<Uuid>,
    pub debits_posted: String,
    pub credits_posted: String,
    pub debits_pending: String,
    pub credits_pending: String,
    /// Posted balance in the account's normal direction.
    pub balance: String,
    /// Posted balance less pending withdrawals.
    pub available: String,
    pub created_at: DateTime<Utc>,
}

impl From<AccountRow> for AccountView {
    fn from(row: AccountRow) -> Self {
        let side: NormalSide = row.normal_side.parse().unwrap_or(NormalSide::Credit);
        let b = row.balances();
        let c = row.currency.as_str();
        AccountView {
            id: row.id,
            code: row.code.clone(),
            account_type: row.account_type.clone(),
            currency: row.currency.clone(),
            normal_side: row.normal_side.clone(),
            floor: row.floor.clone(),
            org_id: row.org_id,
            debits_posted: amount_in(b.debits_posted, c),
            credits_posted: amount_in(b.credits_posted, c),
            debits_pending: amount_in(b.debits_pending, c),
            credits_pending: amount_in(b.credits_pending, c),
            balance: amount_in(b.posted_balance(side), c),
            available: amount_in(b.available(side), c),
            created_at: row.created_at,
        }
    }
}
