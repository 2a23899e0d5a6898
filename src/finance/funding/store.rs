//! Reading what the funding report needs: the orders with hours in the period,
//! their `order` entries' pending postings, and their outage credits per hour.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Array, Int4, Nullable, Numeric, Text, Timestamptz, Uuid as SqlUuid};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use rust_decimal::Decimal;
use uuid::Uuid;

use super::{OrderFacts, OrderPosting, Period, ProgrammeRef, Source, classify};
use crate::db::schema::{order_hour_credits, programmes};
use crate::finance::FinanceError;
use crate::finance::names::OrgRef;
use crate::ledger::LedgerError;
use crate::money::Currency;

/// Which orders the report reads.
#[derive(Debug, Clone, Copy, Default)]
pub struct Scope {
    pub period: Period,
    pub currency: Option<Currency>,
    /// Only orders this programme subsidised.
    pub programme: Option<Uuid>,
}

#[derive(QueryableByName)]
struct OrderLine {
    #[diesel(sql_type = SqlUuid)]
    id: Uuid,
    #[diesel(sql_type = Text)]
    currency: Currency,
    #[diesel(sql_type = SqlUuid)]
    tenant_id: Uuid,
    #[diesel(sql_type = Text)]
    tenant_name: String,
    #[diesel(sql_type = Nullable<Text>)]
    tenant_category: Option<String>,
    #[diesel(sql_type = SqlUuid)]
    provider_id: Uuid,
    #[diesel(sql_type = Text)]
    provider_name: String,
    #[diesel(sql_type = Nullable<Text>)]
    provider_category: Option<String>,
    #[diesel(sql_type = Text)]
    gpu_model: String,
    #[diesel(sql_type = Text)]
    region: String,
    #[diesel(sql_type = Timestamptz)]
    start_at: DateTime<Utc>,
    #[diesel(sql_type = Int4)]
    hours: i32,
    #[diesel(sql_type = Int4)]
    gpus: i32,
    #[diesel(sql_type = Int4)]
    settled_hours: i32,
    #[diesel(sql_type = Int4)]
    charged_hours: i32,
}

#[derive(QueryableByName)]
struct PendingLine {
    #[diesel(sql_type = SqlUuid)]
    order_id: Uuid,
    #[diesel(sql_type = SqlUuid)]
    posting_id: Uuid,
    #[diesel(sql_type = Numeric)]
    amount: Decimal,
    #[diesel(sql_type = Text)]
    debit_code: String,
    #[diesel(sql_type = Text)]
    credit_code: String,
}

/// The orders with a charged hour starting in the period, with their postings
/// and credits, oldest first.
pub async fn load(conn: &mut AsyncPgConnection, scope: &Scope) -> Result<Vec<OrderFacts>, FinanceError> {
    let lines: Vec<OrderLine> = diesel::sql_query(
        "SELECT o.id, o.currency, t.id AS tenant_id, t.name AS tenant_name, t.category AS tenant_category, \
                pv.id AS provider_id, pv.name AS provider_name, pv.category AS provider_category, \
                o.gpu_model, o.region, o.start_at, o.hours, o.gpus, o.settled_hours, o.charged_hours \
         FROM orders o \
         JOIN organisations t ON t.id = o.tenant_org_id \
         JOIN organisations pv ON pv.id = o.provider_org_id \
         WHERE o.charged_hours > 0 \
           AND ($1::text IS NULL OR o.currency = $1) \
           AND ($2::timestamptz IS NULL OR o.start_at + (o.charged_hours - 1) * interval '1 hour' >= $2) \
           AND ($3::timestamptz IS NULL OR o.start_at < $3) \
           AND ($4::uuid IS NULL OR EXISTS ( \
                 SELECT 1 FROM postings p JOIN accounts a ON a.id = p.debit_account_id \
                 WHERE p.entry_id = o.journal_entry_id AND p.kind = 'pending' \
                   AND a.code = 'assets:subsidy-receivable:' || $4::text)) \
         ORDER BY o.start_at, o.id",
    )
    .bind::<Nullable<Text>, _>(scope.currency.map(|c| c.code()))
    .bind::<Nullable<Timestamptz>, _>(scope.period.from)
    .bind::<Nullable<Timestamptz>, _>(scope.period.to)
    .bind::<Nullable<SqlUuid>, _>(scope.programme)
    .load(conn)
    .await?;
    let ids: Vec<Uuid> = lines.iter().map(|o| o.id).collect();
    let mut postings = postings_of(conn, &ids).await?;
    let mut credits = credits_of(conn, &ids).await?;
    let programme_ids: Vec<Uuid> = postings
        .values()
        .flatten()
        .filter_map(|p| match p.source {
            Source::Public { programme } => Some(programme),
            _ => None,
        })
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let names: HashMap<Uuid, String> = programmes::table
        .filter(programmes::id.eq_any(&programme_ids))
        .select((programmes::id, programmes::name))
        .load::<(Uuid, String)>(conn)
        .await?
        .into_iter()
        .collect();
    Ok(lines
        .into_iter()
        .map(|o| {
            let currency = o.currency;
            let postings = postings.remove(&o.id).unwrap_or_default();
            let programme = postings.iter().find_map(|p| match p.source {
                Source::Public { programme } => Some(ProgrammeRef {
                    id: programme,
                    name: names.get(&programme).cloned().unwrap_or_else(|| programme.to_string()),
                }),
                _ => None,
            });
            let hour_credits = credits
                .remove(&o.id)
                .unwrap_or_default()
                .into_iter()
                .map(|(hour, gpus)| (hour_index(o.start_at, hour), gpus))
                .collect();
            OrderFacts {
                id: o.id,
                currency,
                tenant: OrgRef { id: o.tenant_id, name: o.tenant_name, category: o.tenant_category },
                provider: OrgRef { id: o.provider_id, name: o.provider_name, category: o.provider_category },
                gpu_model: o.gpu_model,
                region: o.region,
                programme,
                start_at: o.start_at,
                hours: o.hours,
                gpus: o.gpus,
                settled_hours: o.settled_hours,
                charged_hours: o.charged_hours,
                credits: hour_credits,
                postings,
            }
        })
        .collect())
}

/// The pending postings of each order's `order` entry, in their order.
async fn postings_of(
    conn: &mut AsyncPgConnection,
    orders: &[Uuid],
) -> Result<HashMap<Uuid, Vec<OrderPosting>>, FinanceError> {
    let lines: Vec<PendingLine> = diesel::sql_query(
        "SELECT o.id AS order_id, p.id AS posting_id, p.amount, d.code AS debit_code, c.code AS credit_code \
         FROM orders o JOIN postings p ON p.entry_id = o.journal_entry_id AND p.kind = 'pending' \
         JOIN accounts d ON d.id = p.debit_account_id JOIN accounts c ON c.id = p.credit_account_id \
         WHERE o.id = ANY($1) ORDER BY p.seq",
    )
    .bind::<Array<SqlUuid>, _>(orders)
    .load(conn)
    .await?;
    let mut by_order: HashMap<Uuid, Vec<OrderPosting>> = HashMap::new();
    for l in lines {
        let source = classify(&l.debit_code, &l.credit_code).ok_or_else(|| {
            LedgerError::Corrupt(format!(
                "order {}: pending posting {} ({} → {}) is none an order writes",
                l.order_id, l.posting_id, l.debit_code, l.credit_code
            ))
        })?;
        by_order.entry(l.order_id).or_default().push(OrderPosting {
            posting_id: l.posting_id,
            source,
            amount: l.amount,
        });
    }
    Ok(by_order)
}

/// The index of the order's hour that starts at `hour` (credits are only ever
/// recorded for an order's own hours, so it fits an `i32`).
fn hour_index(start: DateTime<Utc>, hour: DateTime<Utc>) -> i32 {
    i32::try_from((hour - start).num_hours()).unwrap_or(i32::MAX)
}

/// GPUs credited per order and hour.
async fn credits_of(
    conn: &mut AsyncPgConnection,
    orders: &[Uuid],
) -> QueryResult<HashMap<Uuid, BTreeMap<DateTime<Utc>, i32>>> {
    let rows: Vec<(Uuid, DateTime<Utc>, i32)> = order_hour_credits::table
        .filter(order_hour_credits::order_id.eq_any(orders))
        .select((order_hour_credits::order_id, order_hour_credits::hour, order_hour_credits::gpus))
        .load(conn)
        .await?;
    let mut by_order: HashMap<Uuid, BTreeMap<DateTime<Utc>, i32>> = HashMap::new();
    for (order, hour, gpus) in rows {
        by_order.entry(order).or_default().insert(hour, gpus);
    }
    Ok(by_order)
}
