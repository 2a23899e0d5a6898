//! Settling many orders in one transaction (`settlement::settle_orders`)
//! writes exactly what settling them one by one writes.

use chrono::{DateTime, Duration, Utc};
use diesel::QueryableByName;
use diesel::sql_types::{Text, Timestamptz};
use diesel_async::RunQueryDsl;
use gpuhour::auth::Role;
use gpuhour::market::orders::OrderStatus;
use gpuhour::market::settlement::{self, Settled};
use gpuhour::market::views::{OrderView, OutageView};
use serde_json::json;
use uuid::Uuid;

use crate::helpers::{TestApp, hour_after, now, spawn_app, verify_is_clean};
use crate::market::{deposit, listing, order_body, set_clock, wallet};

/// One world of the scenario: its orders in the order they were placed, and
/// the ids that differ from one database to the other, with a stable label.
struct World {
    finance: String,
    tenant: String,
    orders: Vec<Uuid>,
    labels: Vec<(String, String)>,
    settle_at: DateTime<Utc>,
}

/// Places, on a listing of 4 GPUs at 1,000 per GPU-hour starting at `start`:
/// (0) 2 GPUs × 4 h, one GPU of which is lost to an outage in hour 1;
/// (1) 1 GPU × 3 h; (2) 1 GPU × 2 h, whose last hour elapses at the
/// settlement; (3) 1 GPU × 2 h from `start` + 2 h, whose first hour has just
/// begun at the settlement. The clock is left at `start` + 2 h.
async fn world(app: &TestApp, at: DateTime<Utc>) -> World {
    let finance = app.token(Role::Finance).await;
    set_clock(app, &finance, at).await;
    let provider = app.caller(Role::Provider).await;
    let tenant = app.caller(Role::Tenant).await;
    deposit(app, &finance, tenant.org_id, "100000").await;
    let start = hour_after(at);
    let l = listing(app, &provider.token, 4, "1000", start, 24).await;
    let mut orders = Vec::new();
    for (gpus, from, hours) in [(2, 0, 4), (1, 0, 3), (1, 0, 2), (1, 2, 2)] {
        let body = order_body(&l, gpus, start + Duration::hours(from), hours);
        let order: OrderView = app.post_as("/v1/orders", &tenant.token, &body, None, 201).await;
        orders.push(order.id);
    }
    let settle_at = start + Duration::hours(2);
    set_clock(app, &finance, settle_at).await;
    let outage = json!({"start": start + Duration::hours(1), "end": start + Duration::hours(2), "gpus": 1});
    let lid = l["id"].as_str().expect("id");
    let report: OutageView =
        app.post_as(&format!("/v1/listings/{lid}/outages"), &provider.token, &outage, None, 201).await;
    assert_eq!(report.credits.iter().map(|c| (c.order_id, c.gpu_hours)).collect::<Vec<_>>(), vec![(orders[0], 1)]);
    let mut labels: Vec<(String, String)> =
        orders.iter().enumerate().map(|(i, id)| (id.to_string(), format!("order-{i}"))).collect();
    labels.push((tenant.org_id.to_string(), "tenant".into()));
    labels.push((provider.org_id.to_string(), "provider".into()));
    World { finance, tenant: tenant.token, orders, labels, settle_at }
}

impl World {
    fn label(&self, text: &str) -> String {
        self.labels.iter().fold(text.to_string(), |t, (id, label)| t.replace(id, label))
    }

    /// What settling answered, without the entries' ids (new in each database).
    fn settled(&self, settled: &[Settled]) -> Vec<String> {
        settled
            .iter()
            .map(|s| {
                let mut view = serde_json::to_value(s).expect("json");
                view["journal_entry_ids"] = json!(s.journal_entry_ids.len());
                self.label(&view.to_string())
            })
            .collect()
    }
}

#[derive(QueryableByName)]
struct Line {
    #[diesel(sql_type = Timestamptz)]
    effective_at: DateTime<Utc>,
    #[diesel(sql_type = Text)]
    line: String,
}

/// Every settlement posting in the order it was written, with its entry's
/// date, memo and metadata and the accounts' running balances.
async fn settlement_lines(app: &TestApp, w: &World) -> Vec<(DateTime<Utc>, String)> {
    let mut conn = app.conn().await;
    let rows: Vec<Line> = diesel::sql_query(
        "SELECT e.effective_at, concat_ws(' | ', e.memo, e.metadata::text, p.kind, p.amount::text, da.code, \
                p.debit_account_balance::text, ca.code, p.credit_account_balance::text) AS line \
         FROM journal_entries e JOIN postings p ON p.entry_id = e.id \
         JOIN accounts da ON da.id = p.debit_account_id JOIN accounts ca ON ca.id = p.credit_account_id \
         WHERE e.kind = 'settlement' ORDER BY p.seq",
    )
    .load(&mut conn)
    .await
    .expect("settlement lines");
    rows.into_iter().map(|r| (r.effective_at, w.label(&r.line))).collect()
}

/// The order events, in the order they were recorded.
async fn order_events(app: &TestApp, w: &World) -> Vec<String> {
    let mut conn = app.conn().await;
    let rows: Vec<Line> = diesel::sql_query(
        "SELECT occurred_at AS effective_at, type || ' ' || subject_id::text AS line FROM events \
         WHERE type IN ('order.started', 'order.completed') ORDER BY seq",
    )
    .load(&mut conn)
    .await
    .expect("events");
    rows.into_iter().map(|r| w.label(&r.line)).collect()
}

#[tokio::test]
async fn a_batch_settles_orders_exactly_as_one_by_one() {
    let (one_by_one, batched) = (spawn_app().await, spawn_app().await);
    // Both databases' sandbox clocks at the same instant, so that every
    // order's hours, and every entry's date, are the same in both.
    let finance = one_by_one.token(Role::Finance).await;
    let other_finance = batched.token(Role::Finance).await;
    let at =
        hour_after(now(&one_by_one, &finance).await.max(now(&batched, &other_finance).await)) + Duration::minutes(5);
    let a = world(&one_by_one, at).await;
    let b = world(&batched, at).await;

    let mut settled_a = Vec::new();
    let mut conn = one_by_one.conn().await;
    for &id in &a.orders {
        let now = a.settle_at;
        let one = gpuhour::db::transaction(&mut conn, async |c| settlement::settle_order(c, id, now).await)
            .await
            .expect("settles");
        settled_a.extend(one);
    }
    drop(conn);
    let mut conn = batched.conn().await;
    let (ids, now) = (b.orders.clone(), b.settle_at);
    let settled_b = gpuhour::db::transaction(&mut conn, async |c| settlement::settle_orders(c, &ids, now).await)
        .await
        .expect("settles");
    drop(conn);

    assert_eq!(a.settled(&settled_a), b.settled(&settled_b));
    let figures: Vec<(Uuid, i32, i32, OrderStatus, usize)> =
        settled_b.iter().map(|s| (s.order_id, s.hours, s.settled_hours, s.status, s.journal_entry_ids.len())).collect();
    assert_eq!(
        figures,
        vec![
            (b.orders[0], 2, 2, OrderStatus::Active, 2),
            (b.orders[1], 2, 2, OrderStatus::Active, 2),
            (b.orders[2], 2, 2, OrderStatus::Completed, 2),
        ],
        "the order that has only begun settles nothing"
    );

    let lines = settlement_lines(&batched, &b).await;
    assert_eq!(settlement_lines(&one_by_one, &a).await, lines);
    // Each hour dated at its start; order 0's hour 1 pays for the one GPU of two left.
    let start = hour_after(at);
    let tenant_lines: Vec<(DateTime<Utc>, &str, &str)> = lines
        .iter()
        .filter(|(_, l)| l.contains("liabilities:tenant:tenant:wallet"))
        .map(|(d, l)| {
            let memo = l.split(" | ").next().unwrap_or_default();
            let amount = l.split(" | ").nth(3).unwrap_or_default();
            (*d, memo, amount)
        })
        .collect();
    assert_eq!(
        tenant_lines,
        vec![
            (start, "order order-0: hour 1 of 4", "2000.0000"),
            (start + Duration::hours(1), "order order-0: hour 2 of 4", "1000.0000"),
            (start, "order order-1: hour 1 of 3", "1000.0000"),
            (start + Duration::hours(1), "order order-1: hour 2 of 3", "1000.0000"),
            (start, "order order-2: hour 1 of 2", "1000.0000"),
            (start + Duration::hours(1), "order order-2: hour 2 of 2", "1000.0000"),
        ],
        "{lines:#?}"
    );
    let events = order_events(&batched, &b).await;
    assert_eq!(order_events(&one_by_one, &a).await, events);
    assert_eq!(
        events,
        vec![
            "order.started order-0",
            "order.started order-1",
            "order.started order-2",
            "order.completed order-2",
            "order.started order-3",
        ]
    );

    // 15 GPU-hours bought, 1 credited: 7 paid, 7 still reserved.
    for (app, w) in [(&one_by_one, &a), (&batched, &b)] {
        let figures = wallet(app, &w.tenant).await;
        assert_eq!((figures.balance.as_str(), figures.debits_pending.as_str()), ("93000", "7000"));
        let started: OrderView = app.get_as(&format!("/v1/orders/{}", w.orders[3]), &w.tenant).await;
        assert_eq!((started.status, started.settled_hours), (OrderStatus::Active, 0));
        verify_is_clean(app, &w.finance).await;
    }
}
