//! How the ledger's rows are shown: the views the ledger's routes answer and
//! other areas (an organisation's `GET /v1/me`, the console) show too.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::store::AccountRow;
use crate::money::format_amount;

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
        let (b, c) = (row.balances(), row.currency);
        let (balance, available) = (row.balance(), row.available());
        AccountView {
            id: row.id,
            code: row.code,
            account_type: row.account_type.to_string(),
            currency: c.to_string(),
            normal_side: row.normal_side.to_string(),
            floor: row.floor.map(|f| f.to_string()),
            org_id: row.org_id,
            debits_posted: format_amount(b.debits_posted, c),
            credits_posted: format_amount(b.credits_posted, c),
            debits_pending: format_amount(b.debits_pending, c),
            credits_pending: format_amount(b.credits_pending, c),
            balance: balance.formatted_amount(),
            available: available.formatted_amount(),
            created_at: row.created_at,
        }
    }
}
