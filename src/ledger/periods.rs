//! Period close (issue 11, item 3). Months are the programme office's
//! (`GPUHOUR_TIME_ZONE`) and close in order. Closing a month stores its trial
//! balance and a hash over its postings chained to the previous closed month's
//! hash; from then on the database refuses any entry dated in it (trigger
//! `journal_entries_open_period`: 409 `period_closed`), so corrections go in
//! the open period, and `verify` recomputes the chain, so that any change to a
//! closed month's postings — even by a superuser with triggers disabled — shows.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Nullable, Numeric, Text, Timestamptz, Uuid as SqlUuid};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;
use uuid::Uuid;

use super::LedgerError;
use super::verify::Difference;
use crate::db::schema::closed_periods;

/// One posting as the hash sees it: every fact that makes its money.
#[derive(Debug, Clone, QueryableByName, PartialEq)]
pub struct HashedPosting {
    #[diesel(sql_type = SqlUuid)]
    pub id: Uuid,
    #[diesel(sql_type = SqlUuid)]
    pub entry_id: Uuid,
    #[diesel(sql_type = Text)]
    pub entry_kind: String,
    #[diesel(sql_type = Text)]
    pub kind: String,
    #[diesel(sql_type = Nullable<SqlUuid>)]
    pub pending_posting_id: Option<Uuid>,
    #[diesel(sql_type = SqlUuid)]
    pub debit_account_id: Uuid,
    #[diesel(sql_type = SqlUuid)]
    pub credit_account_id: Uuid,
    #[diesel(sql_type = Text)]
    pub currency: String,
    #[diesel(sql_type = Numeric)]
    pub amount: Decimal,
    #[diesel(sql_type = Timestamptz)]
    pub effective_at: DateTime<Utc>,
}

/// The hash of a period: SHA-256 over the previous period's hash and one
/// canonical line per posting, in recording order.
pub fn period_hash(previous: Option<&str>, postings: &[HashedPosting]) -> String {
    let mut hasher = Sha256::new();
    hasher.update(previous.unwrap_or("genesis").as_bytes());
    for p in postings {
        let line = format!(
            "\n{}|{}|{}|{}|{}|{}|{}|{}|{}|{}",
            p.id,
            p.entry_id,
            p.entry_kind,
            p.kind,
            p.pending_posting_id.map(|id| id.to_string()).unwrap_or_default(),
            p.debit_account_id,
            p.credit_account_id,
            p.currency,
            p.amount.normalize(),
            p.effective_at.timestamp_micros()
        );
        hasher.update(line.as_bytes());
    }
    hex::encode(hasher.finalize())
}

/// A closed period, as the API shows it.
#[derive(Debug, Clone, Queryable, Selectable, Serialize, Deserialize, ToSchema)]
#[diesel(table_name = closed_periods, check_for_backend(diesel::pg::Pg))]
pub struct ClosedPeriod {
    /// `YYYY-MM`.
    pub period: String,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    pub time_zone: String,
    /// Postings the hash covers.
    pub postings: i64,
    pub previous_hash: Option<String>,
    pub hash: String,
    /// Every account's four figures as of `ends_at`.
    #[schema(value_type = Object)]
    pub trial_balance: serde_json::Value,
    pub closed_by: Option<Uuid>,
    pub closed_at: DateTime<Utc>,
}

/// The postings effective in `[from, to)`, in recording order.
async fn postings_between(
    conn: &mut AsyncPgConnection,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<HashedPosting>, LedgerError> {
    Ok(diesel::sql_query(
        "SELECT p.id, p.entry_id, e.kind AS entry_kind, p.kind, p.pending_posting_id, p.debit_account_id, \
                p.credit_account_id, p.currency, p.amount, p.effective_at \
         FROM postings p JOIN journal_entries e ON e.id = p.entry_id \
         WHERE p.effective_at >= $1 AND p.effective_at < $2 ORDER BY p.seq",
    )
    .bind::<Timestamptz, _>(from)
    .bind::<Timestamptz, _>(to)
    .load(conn)
    .await?)
}

/// Where the open period begins: the end of the last closed one.
pub async fn closed_until(conn: &mut AsyncPgConnection) -> QueryResult<Option<DateTime<Utc>>> {
    closed_periods::table.select(diesel::dsl::max(closed_periods::ends_at)).first(conn).await
}

/// Why a month cannot be closed yet.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum CloseError {
    #[error("{0} is already closed")]
    AlreadyClosed(String),
    #[error("{period} has not ended yet (it ends at {ends_at})")]
    NotEnded { period: String, ends_at: DateTime<Utc> },
    #[error("months close in order: close {0} first")]
    EarlierOpen(String),
    #[error("{0} orders still have hours before the period's end to settle: run settlement first")]
    Unsettled(i64),
    #[error(transparent)]
    Ledger(#[from] LedgerError),
}

impl From<diesel::result::Error> for CloseError {
    fn from(e: diesel::result::Error) -> Self {
        CloseError::Ledger(e.into())
    }
}

/// Closes the month `[starts_at, ends_at)` named `period`: in order, only once
/// it has ended and every hour in it has settled. Serialised with other closes.
pub async fn close(
    conn: &mut AsyncPgConnection,
    period: &str,
    (starts_at, ends_at): (DateTime<Utc>, DateTime<Utc>),
    time_zone: &str,
    closed_by: Option<Uuid>,
    now: DateTime<Utc>,
) -> Result<ClosedPeriod, CloseError> {
    diesel::sql_query("LOCK TABLE closed_periods IN EXCLUSIVE MODE").execute(conn).await?;
    if closed_periods::table.find(period).count().get_result::<i64>(conn).await? > 0 {
        return Err(CloseError::AlreadyClosed(period.into()));
    }
    if ends_at > now {
        return Err(CloseError::NotEnded { period: period.into(), ends_at });
    }
    let previous: Option<ClosedPeriod> = closed_periods::table
        .order(closed_periods::ends_at.desc())
        .select(ClosedPeriod::as_select())
        .first(conn)
        .await
        .optional()?;
    #[derive(QueryableByName)]
    struct Earliest {
        #[diesel(sql_type = Nullable<Timestamptz>)]
        at: Option<DateTime<Utc>>,
    }
    match &previous {
        Some(p) if p.ends_at != starts_at => {
            return Err(CloseError::EarlierOpen(format!("the month after {}", p.period)));
        }
        Some(_) => {}
        None => {
            let earliest: Earliest =
                diesel::sql_query("SELECT min(effective_at) AS at FROM postings").get_result(conn).await?;
            if earliest.at.is_some_and(|at| at < starts_at) {
                return Err(CloseError::EarlierOpen("the month of the first entry".into()));
            }
        }
    }
    #[derive(QueryableByName)]
    struct Count {
        #[diesel(sql_type = BigInt)]
        n: i64,
    }
    let unsettled: Count = diesel::sql_query(
        "SELECT count(*) AS n FROM orders WHERE status IN ('reserved', 'active') \
           AND start_at + settled_hours * interval '1 hour' < $1",
    )
    .bind::<Timestamptz, _>(ends_at)
    .get_result(conn)
    .await?;
    if unsettled.n > 0 {
        return Err(CloseError::Unsettled(unsettled.n));
    }
    let postings = postings_between(conn, starts_at, ends_at).await?;
    let previous_hash = previous.map(|p| p.hash);
    let hash = period_hash(previous_hash.as_deref(), &postings);
    let accounts = super::queries::trial_balance(conn, Some(ends_at)).await?;
    let trial_balance: Vec<serde_json::Value> = accounts
        .iter()
        .map(|a| {
            serde_json::json!({
                "account_id": a.id, "code": a.code, "currency": a.currency,
                "debits_posted": a.debits_posted.normalize().to_string(),
                "credits_posted": a.credits_posted.normalize().to_string(),
                "debits_pending": a.debits_pending.normalize().to_string(),
                "credits_pending": a.credits_pending.normalize().to_string(),
            })
        })
        .collect();
    let row = ClosedPeriod {
        period: period.into(),
        starts_at,
        ends_at,
        time_zone: time_zone.into(),
        postings: postings.len() as i64,
        previous_hash,
        hash,
        trial_balance: serde_json::Value::Array(trial_balance),
        closed_by,
        closed_at: now,
    };
    diesel::insert_into(closed_periods::table)
        .values((
            closed_periods::period.eq(&row.period),
            closed_periods::starts_at.eq(row.starts_at),
            closed_periods::ends_at.eq(row.ends_at),
            closed_periods::time_zone.eq(&row.time_zone),
            closed_periods::postings.eq(row.postings),
            closed_periods::previous_hash.eq(&row.previous_hash),
            closed_periods::hash.eq(&row.hash),
            closed_periods::trial_balance.eq(&row.trial_balance),
            closed_periods::closed_by.eq(row.closed_by),
            closed_periods::closed_at.eq(row.closed_at),
        ))
        .execute(conn)
        .await?;
    Ok(row)
}

pub async fn list(conn: &mut AsyncPgConnection) -> QueryResult<Vec<ClosedPeriod>> {
    closed_periods::table.order(closed_periods::ends_at).select(ClosedPeriod::as_select()).load(conn).await
}

/// `verify`'s invariant 7: every closed period's hash still matches its
/// postings and the previous period's hash, and the chain is unbroken.
pub async fn chain_agrees(conn: &mut AsyncPgConnection) -> Result<Vec<Difference>, LedgerError> {
    let mut differences = Vec::new();
    let mut previous: Option<String> = None;
    for period in list(conn).await? {
        let postings = postings_between(conn, period.starts_at, period.ends_at).await?;
        let hash = period_hash(previous.as_deref(), &postings);
        let difference = |field: &str, expected: String, actual: String, detail: String| Difference {
            invariant: 7,
            currency: None,
            account_id: None,
            code: None,
            field: Some(field.into()),
            expected: Some(expected),
            actual: Some(actual),
            detail,
        };
        if period.previous_hash != previous {
            differences.push(difference(
                "previous_hash",
                previous.clone().unwrap_or_default(),
                period.previous_hash.clone().unwrap_or_default(),
                format!("closed period {}: the chain to the previous period is broken", period.period),
            ));
        }
        if hash != period.hash {
            differences.push(difference(
                "hash",
                period.hash.clone(),
                hash,
                format!(
                    "closed period {}: its postings changed after it was closed ({} postings then, {} now)",
                    period.period,
                    period.postings,
                    postings.len()
                ),
            ));
        }
        previous = Some(period.hash);
    }
    Ok(differences)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    fn posting(amount: Decimal) -> HashedPosting {
        HashedPosting {
            id: Uuid::from_u128(1),
            entry_id: Uuid::from_u128(2),
            entry_kind: "deposit".into(),
            kind: "posted".into(),
            pending_posting_id: None,
            debit_account_id: Uuid::from_u128(3),
            credit_account_id: Uuid::from_u128(4),
            currency: "KRW".into(),
            amount,
            effective_at: DateTime::from_timestamp(1_790_000_000, 0).expect("instant"),
        }
    }

    #[test]
    fn the_hash_covers_every_posting_and_the_previous_hash() {
        let a = period_hash(None, &[posting(dec!(100))]);
        assert_eq!(a, period_hash(None, &[posting(dec!(100.0000))]), "the amount's scale does not matter");
        assert_ne!(a, period_hash(None, &[posting(dec!(101))]));
        assert_ne!(a, period_hash(Some("x"), &[posting(dec!(100))]));
        assert_ne!(a, period_hash(None, &[]));
        assert_eq!(a.len(), 64);
    }
}
