//! Events from the outbox (issue 12, item 1): each change writes its event in
//! its own transaction, seen by the organisations it concerns and by finance;
//! `GET /v1/events` walks them in order from a cursor, with long polling.

use std::time::{Duration as StdDuration, Instant};

use chrono::{DateTime, Duration, Utc};
use futures::future::join_all;
use gpuhour::auth::Role;
use gpuhour::events::EventType;
use gpuhour::events::routes::{EventPage, EventView};
use gpuhour::finance::payouts::PayoutView;
use gpuhour::market::listings::ListingStatus;
use gpuhour::market::orders::OrderStatus;
use gpuhour::market::views::{ListingView, OrderView, OutageView};
use gpuhour::subsidy::claims::{ClaimPaymentView, ClaimView};
use gpuhour::subsidy::routes::GrantView;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{Caller, TestApp, expect_problem, json, next_hour, read_as, settings_for, spawn_app, start};
use crate::market::{deposit, listing, order_body, set_clock, settle};
use crate::subsidy::{grant, programme, with_grant};

/// Every event `token` sees that matches `query` (e.g. `&types=order.reserved`),
/// read page by page from the start. Waits (up to 10 s) until at least
/// `expected` are readable: an event becomes readable once every transaction
/// older than its own has ended, anywhere on the database server.
async fn events(app: &TestApp, token: &str, query: &str, expected: usize) -> Vec<EventView> {
    let deadline = Instant::now() + StdDuration::from_secs(10);
    let mut all = Vec::new();
    let mut after = String::new();
    loop {
        let page: EventPage = app.get_as(&format!("/v1/events?limit=500{query}{after}"), token).await;
        after = format!("&after={}", page.next_cursor);
        if page.data.is_empty() {
            if all.len() >= expected || Instant::now() > deadline {
                return all;
            }
            tokio::time::sleep(StdDuration::from_millis(100)).await;
        }
        all.extend(page.data);
    }
}

/// (type, subject) of each event.
fn kinds(events: &[EventView]) -> Vec<(EventType, Uuid)> {
    events.iter().map(|e| (e.event_type, e.subject_id)).collect()
}

/// Every field of an event: id, type, when, subject, data.
fn whole(e: &EventView) -> (Uuid, EventType, DateTime<Utc>, Uuid, &Value) {
    (e.id, e.event_type, e.occurred_at, e.subject_id, &e.data)
}

fn find(events: &[EventView], t: EventType, subject: Uuid) -> &EventView {
    events.iter().find(|e| e.event_type == t && e.subject_id == subject).unwrap_or_else(|| panic!("no {t:?} event"))
}

/// JSON read as the crate's view `T`.
fn view<T: DeserializeOwned>(json: &Value) -> T {
    serde_json::from_value(json.clone())
        .unwrap_or_else(|e| panic!("not a {}: {e}: {json:#}", std::any::type_name::<T>()))
}

/// The answer as the view `T`, and as the JSON it was: an event's data must
/// be that very answer, field for field, which only the JSON can show.
async fn created<T: DeserializeOwned>(response: reqwest::Response, status: u16) -> (T, Value) {
    let answer: Value = read_as(response, status).await;
    (view(&answer), answer)
}

#[tokio::test]
async fn each_change_writes_one_event_seen_by_whom_it_concerns() {
    let app = spawn_app().await;
    let finance = app.token(Role::Finance).await;
    let admin = app.token(Role::Admin).await;
    let provider = app.caller(Role::Provider).await;
    let tenant = app.tenant("sme").await;
    let other_provider = app.caller(Role::Provider).await;
    let other_tenant = app.tenant("sme").await;
    let start_at = next_hour(&app, &finance).await;

    let p = programme(&app, &finance, "1000000", start_at).await;
    let g = grant(&app, &finance, &p, &tenant, "100000", start_at).await;
    let grant_id = view::<GrantView>(&g).id;
    deposit(&app, &finance, tenant.org_id, "100000").await;
    deposit(&app, &finance, other_tenant.org_id, "100000").await;
    let l = listing(&app, &provider.token, 2, "1000", start_at, 24).await;
    let other_l = listing(&app, &other_provider.token, 1, "1000", start_at, 24).await;
    let listing_id = view::<ListingView>(&l).id;
    // 1 GPU × 10 hours at 1,000, 80 % subsidised; a second order cancelled
    // before it starts; the other tenant's order on the other provider.
    let (o1, o1_json): (OrderView, _) = created(
        app.post("/v1/orders", &tenant.token, &with_grant(order_body(&l, 1, start_at, 10), &g), None).await,
        201,
    )
    .await;
    let (o2, o2_json): (OrderView, _) =
        created(app.post("/v1/orders", &tenant.token, &order_body(&l, 1, start_at, 2), None).await, 201).await;
    let (cancelled, cancelled_json): (OrderView, _) =
        created(app.post(&format!("/v1/orders/{}/cancel", o2.id), &tenant.token, &json!({}), None).await, 200).await;
    let (o3, _): (OrderView, _) =
        created(app.post("/v1/orders", &other_tenant.token, &order_body(&other_l, 1, start_at, 2), None).await, 201)
            .await;

    set_clock(&app, &finance, start_at + Duration::hours(1)).await;
    settle(&app, &finance).await;
    let outage = json!({"start": start_at, "end": start_at + Duration::hours(1), "gpus": 1});
    let _: OutageView =
        app.post_as(&format!("/v1/listings/{listing_id}/outages"), &provider.token, &outage, None, 201).await;
    set_clock(&app, &finance, start_at + Duration::hours(10)).await;
    settle(&app, &finance).await;

    let claim_body =
        json!({"programme_id": p["id"], "period_start": start_at, "period_end": start_at + Duration::days(1)});
    let claim: ClaimView = app.post_as("/v1/claims", &finance, &claim_body, None, 201).await;
    let claim_path = format!("/v1/claims/{}", claim.id);
    let (_, submitted_json): (ClaimView, _) =
        created(app.post(&format!("{claim_path}/submit"), &finance, &json!({}), None).await, 200).await;
    let payment = json!({"amount": "4000", "reference": "MSIT-0001"});
    let (paid, paid_json): (ClaimView, _) =
        created(app.post(&format!("{claim_path}/payments"), &finance, &payment, None).await, 201).await;
    let payout_body =
        json!({"provider_org_id": provider.org_id, "amount": "1000", "currency": "KRW", "reference": "P-1"});
    let (payout, payout_json): (PayoutView, _) =
        created(app.post("/v1/payouts", &finance, &payout_body, None).await, 201).await;
    let grant_path = format!("/v1/grants/{grant_id}/close");
    let (_, closed_grant_json): (GrantView, _) =
        created(app.post(&grant_path, &finance, &json!({}), None).await, 200).await;
    let pause = async || {
        app.client
            .patch(app.url(&format!("/v1/listings/{listing_id}")))
            .bearer_auth(&provider.token)
            .json(&json!({"status": "paused"}))
            .send()
            .await
            .expect("patch")
    };
    let (paused, paused_json): (ListingView, _) = created(pause().await, 200).await;
    assert_eq!(paused.status, ListingStatus::Paused);
    // Setting the status it already has is no event.
    let _: ListingView = read_as(pause().await, 200).await;
    let close = format!("/v1/listings/{listing_id}/close");
    let (closed_listing, closed_listing_json): (ListingView, _) =
        created(app.post(&close, &provider.token, &json!({}), None).await, 200).await;
    assert_eq!(closed_listing.status, ListingStatus::Closed);
    // Closing again is no event either.
    let _: ListingView = app.post_as(&close, &provider.token, &json!({}), None, 200).await;

    use EventType::*;
    let all = vec![
        (GrantCreated, grant_id),
        (OrderReserved, o1.id),
        (OrderReserved, o2.id),
        (OrderCancelled, o2.id),
        (OrderReserved, o3.id),
        (OrderStarted, o1.id),
        (OrderStarted, o3.id),
        (OrderCredited, o1.id),
        (OrderCompleted, o3.id),
        (OrderCompleted, o1.id),
        (ClaimSubmitted, claim.id),
        (ClaimPaid, claim.id),
        (PayoutCreated, payout.id),
        (GrantClosed, grant_id),
        (ListingPaused, listing_id),
        (ListingClosed, listing_id),
    ];
    let seen = events(&app, &finance, "", all.len()).await;
    let mut seen_kinds = kinds(&seen);
    // One settlement run settles its orders in start order, then by id: the
    // two orders that start together may come either way round.
    let settled_first = |k: &(EventType, Uuid)| k.0 == OrderStarted || k.0 == OrderCompleted;
    for pair in seen_kinds.chunk_by_mut(|a, b| settled_first(a) && settled_first(b) && a.0 == b.0) {
        pair.sort_by_key(|k| k.1);
    }
    let mut expected = all.clone();
    for pair in expected.chunk_by_mut(|a, b| settled_first(a) && settled_first(b) && a.0 == b.0) {
        pair.sort_by_key(|k| k.1);
    }
    assert_eq!(seen_kinds, expected, "finance sees every event, once, in order");
    assert_eq!(kinds(&events(&app, &admin, "", all.len()).await), kinds(&seen), "so does an administrator");

    let mine = |k: &(EventType, Uuid), subjects: &[Uuid]| subjects.contains(&k.1);
    let tenant_sees: Vec<_> = kinds(&seen).into_iter().filter(|k| mine(k, &[grant_id, o1.id, o2.id])).collect();
    assert_eq!(tenant_sees.len(), 8);
    assert_eq!(kinds(&events(&app, &tenant.token, "", 8).await), tenant_sees);
    let provider_sees: Vec<_> =
        kinds(&seen).into_iter().filter(|k| mine(k, &[o1.id, o2.id, payout.id, listing_id])).collect();
    assert_eq!(provider_sees.len(), 9);
    assert_eq!(kinds(&events(&app, &provider.token, "", 9).await), provider_sees);
    let others = vec![(OrderReserved, o3.id), (OrderStarted, o3.id), (OrderCompleted, o3.id)];
    assert_eq!(kinds(&events(&app, &other_tenant.token, "", 3).await), others);
    assert_eq!(kinds(&events(&app, &other_provider.token, "", 3).await), others);

    // Each event's data is the subject as the API answered the change.
    assert_eq!(find(&seen, GrantCreated, grant_id).data, g);
    assert_eq!(find(&seen, OrderReserved, o1.id).data, o1_json);
    assert_eq!(find(&seen, OrderReserved, o2.id).data, o2_json);
    assert_eq!(find(&seen, OrderCancelled, o2.id).data, cancelled_json);
    assert_eq!(cancelled.status, OrderStatus::Cancelled);
    let started: OrderView = view(&find(&seen, OrderStarted, o1.id).data);
    assert_eq!((started.status, started.settled_hours), (OrderStatus::Active, 1));
    let credited: OrderView = view(&find(&seen, OrderCredited, o1.id).data);
    assert_eq!((credited.credited_gpu_hours, credited.charged.tenant.refunded.as_str()), (1, "200"));
    let completed: OrderView = view(&find(&seen, OrderCompleted, o1.id).data);
    assert_eq!((completed.status, completed.settled_hours), (OrderStatus::Completed, 10));
    assert_eq!(find(&seen, ClaimSubmitted, claim.id).data, submitted_json);
    let mut claim_paid = find(&seen, ClaimPaid, claim.id).data.clone();
    let recorded = claim_paid.as_object_mut().expect("object").remove("payment").expect("the payment");
    assert_eq!(claim_paid, paid_json);
    assert_eq!((paid.paid.as_str(), paid.outstanding.as_str()), ("4000", "3200"));
    let recorded: ClaimPaymentView = view(&recorded);
    assert_eq!(
        (recorded.amount.as_str(), recorded.reference.as_str(), recorded.journal_entry_id),
        ("4000", "MSIT-0001", paid.payments[0].journal_entry_id)
    );
    assert_eq!(find(&seen, PayoutCreated, payout.id).data, payout_json);
    assert_eq!(find(&seen, GrantClosed, grant_id).data, closed_grant_json);
    assert_eq!(find(&seen, ListingPaused, listing_id).data, paused_json);
    assert_eq!(find(&seen, ListingClosed, listing_id).data, closed_listing_json);
    // The raw JSON: an event has these five fields and no more, which its view cannot show.
    let (_, first) = json(app.get("/v1/events?limit=1", &finance).await).await;
    let first = &first["data"][0];
    assert_eq!(first["id"], json!(seen[0].id));
    assert_eq!(first.as_object().map(|o| o.len()), Some(5), "id, type, occurred_at, subject_id, data: {first:#}");
}

#[tokio::test]
async fn a_refused_or_rolled_back_change_leaves_no_event() {
    let app = spawn_app().await;
    let finance = app.token(Role::Finance).await;
    let provider = app.caller(Role::Provider).await;
    let tenant = app.caller(Role::Tenant).await;
    deposit(&app, &finance, tenant.org_id, "5000").await;
    let start_at = next_hour(&app, &finance).await;
    let l = listing(&app, &provider.token, 1, "1000", start_at, 24).await;
    let order: OrderView = app.post_as("/v1/orders", &tenant.token, &order_body(&l, 1, start_at, 2), None, 201).await;
    // Refused: a full hour, an empty wallet, a payout beyond the payable.
    expect_problem(
        app.post("/v1/orders", &tenant.token, &order_body(&l, 1, start_at, 2), None).await,
        409,
        "capacity_unavailable",
    )
    .await;
    expect_problem(
        app.post("/v1/orders", &tenant.token, &order_body(&l, 1, start_at + Duration::hours(2), 10), None).await,
        402,
        "insufficient_funds",
    )
    .await;
    let payout = json!({"provider_org_id": provider.org_id, "amount": "1", "currency": "KRW", "reference": "P-1"});
    expect_problem(app.post("/v1/payouts", &finance, &payout, None).await, 422, "validation_failed").await;

    // A cancellation whose transaction fails after the change: neither stays.
    let id = order.id;
    // The service's time is the sandbox clock (it starts when the test
    // databases' template was made, which may be hours ago), not the wall clock.
    let sandbox_now = crate::helpers::now(&app, &finance).await;
    let mut conn = app.conn().await;
    let actor = gpuhour::ledger::model::Actor { user_id: Some(tenant.user_id), org_id: Some(tenant.org_id) };
    let failed: Result<(), gpuhour::market::settlement::SettleError> = gpuhour::db::transaction(&mut conn, async |c| {
        gpuhour::market::settlement::cancel(c, id, gpuhour::auth::OrgId(tenant.org_id), actor, sandbox_now).await?;
        Err(diesel::result::Error::RollbackTransaction.into())
    })
    .await;
    assert!(matches!(failed, Err(gpuhour::market::settlement::SettleError::Database(_))), "{failed:?}");
    drop(conn);

    assert_eq!(kinds(&events(&app, &finance, "", 1).await), vec![(EventType::OrderReserved, order.id)]);
    let now_order: OrderView = app.get_as(&format!("/v1/orders/{id}"), &tenant.token).await;
    assert_eq!(now_order.status, OrderStatus::Reserved);
}

#[tokio::test]
async fn the_cursor_walks_forward_without_repeats_or_gaps() {
    let app = spawn_app().await;
    let finance = app.token(Role::Finance).await;
    let provider = app.caller(Role::Provider).await;
    let tenant = app.caller(Role::Tenant).await;
    deposit(&app, &finance, tenant.org_id, "100000").await;
    let start_at = next_hour(&app, &finance).await;
    let l = listing(&app, &provider.token, 8, "1000", start_at, 24).await;
    // Seven orders at once: they may share a batch, and their events a transaction.
    let placed = join_all(
        (0..7).map(|_| async { app.post("/v1/orders", &tenant.token, &order_body(&l, 1, start_at, 1), None).await }),
    )
    .await;
    let mut ids = Vec::new();
    for r in placed {
        ids.push(read_as::<OrderView>(r, 201).await.id);
    }
    for id in &ids[..2] {
        let _: OrderView = app.post_as(&format!("/v1/orders/{id}/cancel"), &tenant.token, &json!({}), None, 200).await;
    }
    let everything = events(&app, &tenant.token, "", 9).await;
    assert_eq!(everything.len(), 9);

    // Pages of two: the same events, in the same order, each once.
    let mut walked = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let after = cursor.as_ref().map(|c| format!("&after={c}")).unwrap_or_default();
        let page: EventPage = app.get_as(&format!("/v1/events?limit=2{after}"), &tenant.token).await;
        assert!(page.data.len() <= 2);
        if page.data.is_empty() {
            // Nothing new: the caller's own cursor comes back.
            assert_eq!(Some(&page.next_cursor), cursor.as_ref());
            break;
        }
        walked.extend(page.data);
        cursor = Some(page.next_cursor);
    }
    assert_eq!(walked.iter().map(whole).collect::<Vec<_>>(), everything.iter().map(whole).collect::<Vec<_>>());
    let mut reserved: Vec<Uuid> =
        everything.iter().filter(|e| e.event_type == EventType::OrderReserved).map(|e| e.subject_id).collect();
    let mut sorted_ids = ids.clone();
    sorted_ids.sort();
    reserved.sort();
    assert_eq!(reserved, sorted_ids, "each order once");

    // Only the types asked for.
    let cancelled = events(&app, &tenant.token, "&types=order.cancelled", 2).await;
    assert_eq!(kinds(&cancelled), vec![(EventType::OrderCancelled, ids[0]), (EventType::OrderCancelled, ids[1])]);
    let both = events(&app, &tenant.token, "&types=order.cancelled,listing.closed", 2).await;
    assert_eq!(kinds(&both), kinds(&cancelled));
    assert!(events(&app, &tenant.token, "&types=payout.created", 0).await.is_empty());
}

#[tokio::test]
async fn a_long_poll_answers_as_soon_as_an_event_arrives() {
    let app = spawn_app().await;
    let finance = app.token(Role::Finance).await;
    let provider = app.caller(Role::Provider).await;
    let tenant = app.caller(Role::Tenant).await;
    deposit(&app, &finance, tenant.org_id, "100000").await;
    let start_at = next_hour(&app, &finance).await;
    let l = listing(&app, &provider.token, 1, "1000", start_at, 24).await;

    // Nothing yet: a wait of one second answers after it, with the same cursor.
    let first: EventPage = app.get_as("/v1/events", &provider.token).await;
    assert!(first.data.is_empty(), "{first:#?}");
    let cursor = first.next_cursor;
    let began = Instant::now();
    let empty: EventPage = app.get_as(&format!("/v1/events?after={cursor}&wait=1"), &provider.token).await;
    assert!(began.elapsed() >= StdDuration::from_secs(1), "{:?}", began.elapsed());
    assert!(empty.data.is_empty(), "{empty:#?}");
    assert_eq!(empty.next_cursor, cursor);

    let waiting = {
        let (client, url, token) =
            (app.client.clone(), app.url(&format!("/v1/events?after={cursor}&wait=5")), provider.token.clone());
        tokio::spawn(async move {
            let began = Instant::now();
            let response = client.get(url).bearer_auth(token).send().await.expect("request");
            (began.elapsed(), read_as::<EventPage>(response, 200).await)
        })
    };
    tokio::time::sleep(StdDuration::from_millis(500)).await;
    let order: OrderView = app.post_as("/v1/orders", &tenant.token, &order_body(&l, 1, start_at, 1), None, 201).await;
    let (took, page) = waiting.await.expect("the poll");
    assert!(took < StdDuration::from_secs(4), "answered after {took:?}");
    assert_eq!(kinds(&page.data), vec![(EventType::OrderReserved, order.id)]);
    assert_ne!(page.next_cursor, cursor);
}

#[tokio::test]
async fn two_settlers_start_and_complete_an_order_once() {
    let app = spawn_app().await;
    let second = start(settings_for(&app.database_url)).await;
    let finance = app.token(Role::Finance).await;
    let provider = app.caller(Role::Provider).await;
    let tenants: Vec<Caller> = join_all((0..4).map(|_| app.caller(Role::Tenant))).await;
    let start_at = next_hour(&app, &finance).await;
    let l = listing(&app, &provider.token, 4, "1000", start_at, 24).await;
    let mut ids = Vec::new();
    for t in &tenants {
        deposit(&app, &finance, t.org_id, "10000").await;
        let order: OrderView = app.post_as("/v1/orders", &t.token, &order_body(&l, 1, start_at, 2), None, 201).await;
        ids.push(order.id);
    }
    for hour in [1, 2] {
        set_clock(&app, &finance, start_at + Duration::hours(hour)).await;
        join_all([settle(&app, &finance), settle(&second, &finance), settle(&app, &finance)]).await;
    }
    ids.sort();
    for t in ["order.started", "order.completed"] {
        let seen = events(&app, &finance, &format!("&types={t}"), 4).await;
        let mut subjects: Vec<Uuid> = kinds(&seen).into_iter().map(|k| k.1).collect();
        subjects.sort();
        assert_eq!(subjects, ids, "{t} once per order");
    }
}

#[tokio::test]
async fn bad_queries_are_refused_by_name() {
    let app = spawn_app().await;
    let tenant = app.token(Role::Tenant).await;
    let refused = |query: &'static str, field: &'static str| {
        let app = &app;
        let tenant = &tenant;
        async move {
            let body =
                expect_problem(app.get(&format!("/v1/events?{query}"), tenant).await, 422, "validation_failed").await;
            assert_eq!(body["errors"][0]["field"], field, "{query}: {body:#}");
            body
        }
    };
    let body = refused("types=order.reserved,order.shipped", "types").await;
    assert_eq!(body["errors"][0]["message"], "unknown event type \"order.shipped\"");
    refused("types=", "types").await;
    refused("after=not-a-cursor", "after").await;
    refused("wait=31", "wait").await;
    refused("wait=-1", "wait").await;
    refused("limit=0", "limit").await;
    refused("limit=501", "limit").await;
    refused("since=0", "since").await;
    let (status, _) = json(app.client.get(app.url("/v1/events")).send().await.expect("request")).await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn an_order_cancelled_after_it_began_has_started_once() {
    let app = spawn_app().await;
    let finance = app.token(Role::Finance).await;
    let provider = app.caller(Role::Provider).await;
    let tenant = app.caller(Role::Tenant).await;
    deposit(&app, &finance, tenant.org_id, "10000").await;
    let start_at = next_hour(&app, &finance).await;
    let l = listing(&app, &provider.token, 1, "1000", start_at, 24).await;
    let order: OrderView = app.post_as("/v1/orders", &tenant.token, &order_body(&l, 1, start_at, 4), None, 201).await;
    // The first hour has begun, and no settler has seen it yet.
    set_clock(&app, &finance, start_at + Duration::minutes(30)).await;
    let path = format!("/v1/orders/{}/cancel", order.id);
    let (cancelled, cancelled_json): (OrderView, _) =
        created(app.post(&path, &tenant.token, &json!({}), None).await, 200).await;
    assert_eq!((cancelled.status, cancelled.charged_hours), (OrderStatus::Cancelled, 1));
    settle(&app, &finance).await;
    let seen = events(&app, &provider.token, "", 3).await;
    assert_eq!(
        kinds(&seen),
        vec![
            (EventType::OrderReserved, order.id),
            (EventType::OrderStarted, order.id),
            (EventType::OrderCancelled, order.id)
        ]
    );
    assert_eq!(seen[2].data, cancelled_json);
}
