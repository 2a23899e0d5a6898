//! Events from the outbox (issue 12, item 1): each change writes its event in
//! its own transaction, seen by the organisations it concerns and by finance;
//! `GET /v1/events` walks them in order from a cursor, with long polling.

use std::time::{Duration as StdDuration, Instant};

use chrono::Duration;
use futures::future::join_all;
use gpuhour::auth::Role;
use serde_json::{Value, json};

use crate::helpers::{Caller, TestApp, expect_problem, json, next_hour, settings_for, spawn_app, start};
use crate::market::{deposit, listing, order_body, set_clock, settle};
use crate::subsidy::{grant, programme, with_grant};

/// Every event `token` sees that matches `query` (e.g. `&types=order.reserved`),
/// read page by page from the start. Waits (up to 10 s) until at least
/// `expected` are readable: an event becomes readable once every transaction
/// older than its own has ended, anywhere on the database server.
async fn events(app: &TestApp, token: &str, query: &str, expected: usize) -> Vec<Value> {
    let deadline = Instant::now() + StdDuration::from_secs(10);
    let mut all = Vec::new();
    let mut after = String::new();
    loop {
        let (status, page) = json(app.get(&format!("/v1/events?limit=500{query}{after}"), token).await).await;
        assert_eq!(status, 200, "{page:#}");
        let data = page["data"].as_array().expect("data").clone();
        after = format!("&after={}", page["next_cursor"].as_str().expect("next_cursor is always present"));
        if data.is_empty() {
            if all.len() >= expected || Instant::now() > deadline {
                return all;
            }
            tokio::time::sleep(StdDuration::from_millis(100)).await;
        }
        all.extend(data);
    }
}

/// (type, subject) of each event.
fn kinds(events: &[Value]) -> Vec<(String, String)> {
    events
        .iter()
        .map(|e| {
            (e["type"].as_str().expect("type").to_string(), e["subject_id"].as_str().expect("subject").to_string())
        })
        .collect()
}

fn kind(t: &str, subject: &Value) -> (String, String) {
    (t.to_string(), subject.as_str().expect("id").to_string())
}

fn find<'a>(events: &'a [Value], t: &str, subject: &Value) -> &'a Value {
    events.iter().find(|e| e["type"] == t && e["subject_id"] == *subject).unwrap_or_else(|| panic!("no {t} event"))
}

async fn created(response: reqwest::Response, status: u16) -> Value {
    let (got, body) = json(response).await;
    assert_eq!(got, status, "{body:#}");
    body
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
    deposit(&app, &finance, tenant.org_id, "100000").await;
    deposit(&app, &finance, other_tenant.org_id, "100000").await;
    let l = listing(&app, &provider.token, 2, "1000", start_at, 24).await;
    let other_l = listing(&app, &other_provider.token, 1, "1000", start_at, 24).await;
    // 1 GPU × 10 hours at 1,000, 80 % subsidised; a second order cancelled
    // before it starts; the other tenant's order on the other provider.
    let o1 = created(
        app.post("/v1/orders", &tenant.token, &with_grant(order_body(&l, 1, start_at, 10), &g), None).await,
        201,
    )
    .await;
    let o2 = created(app.post("/v1/orders", &tenant.token, &order_body(&l, 1, start_at, 2), None).await, 201).await;
    let cancelled = created(
        app.post(&format!("/v1/orders/{}/cancel", o2["id"].as_str().expect("id")), &tenant.token, &json!({}), None)
            .await,
        200,
    )
    .await;
    let o3 =
        created(app.post("/v1/orders", &other_tenant.token, &order_body(&other_l, 1, start_at, 2), None).await, 201)
            .await;

    set_clock(&app, &finance, start_at + Duration::hours(1)).await;
    settle(&app, &finance).await;
    let lid = l["id"].as_str().expect("id");
    let outage = json!({"start": start_at, "end": start_at + Duration::hours(1), "gpus": 1});
    created(app.post(&format!("/v1/listings/{lid}/outages"), &provider.token, &outage, None).await, 201).await;
    set_clock(&app, &finance, start_at + Duration::hours(10)).await;
    settle(&app, &finance).await;

    let claim_body =
        json!({"programme_id": p["id"], "period_start": start_at, "period_end": start_at + Duration::days(1)});
    let claim = created(app.post("/v1/claims", &finance, &claim_body, None).await, 201).await;
    let claim_path = format!("/v1/claims/{}", claim["id"].as_str().expect("id"));
    let submitted = created(app.post(&format!("{claim_path}/submit"), &finance, &json!({}), None).await, 200).await;
    let payment = json!({"amount": "4000", "reference": "MSIT-0001"});
    let paid = created(app.post(&format!("{claim_path}/payments"), &finance, &payment, None).await, 201).await;
    let payout_body =
        json!({"provider_org_id": provider.org_id, "amount": "1000", "currency": "KRW", "reference": "P-1"});
    let payout = created(app.post("/v1/payouts", &finance, &payout_body, None).await, 201).await;
    let grant_path = format!("/v1/grants/{}/close", g["id"].as_str().expect("id"));
    let closed_grant = created(app.post(&grant_path, &finance, &json!({}), None).await, 200).await;
    let paused = app
        .client
        .patch(app.url(&format!("/v1/listings/{lid}")))
        .bearer_auth(&provider.token)
        .json(&json!({"status": "paused"}))
        .send()
        .await
        .expect("patch");
    let paused = created(paused, 200).await;
    // Setting the status it already has is no event.
    let again = app
        .client
        .patch(app.url(&format!("/v1/listings/{lid}")))
        .bearer_auth(&provider.token)
        .json(&json!({"status": "paused"}))
        .send()
        .await
        .expect("patch");
    created(again, 200).await;
    let closed_listing =
        created(app.post(&format!("/v1/listings/{lid}/close"), &provider.token, &json!({}), None).await, 200).await;
    // Closing again is no event either.
    created(app.post(&format!("/v1/listings/{lid}/close"), &provider.token, &json!({}), None).await, 200).await;

    let all = vec![
        kind("grant.created", &g["id"]),
        kind("order.reserved", &o1["id"]),
        kind("order.reserved", &o2["id"]),
        kind("order.cancelled", &o2["id"]),
        kind("order.reserved", &o3["id"]),
        kind("order.started", &o1["id"]),
        kind("order.started", &o3["id"]),
        kind("order.credited", &o1["id"]),
        kind("order.completed", &o3["id"]),
        kind("order.completed", &o1["id"]),
        kind("claim.submitted", &claim["id"]),
        kind("claim.paid", &claim["id"]),
        kind("payout.created", &payout["id"]),
        kind("grant.closed", &g["id"]),
        kind("listing.paused", &l["id"]),
        kind("listing.closed", &l["id"]),
    ];
    let seen = events(&app, &finance, "", all.len()).await;
    let mut seen_kinds = kinds(&seen);
    // One settlement run settles its orders in start order, then by id: the
    // two orders that start together may come either way round.
    let settled_first = |k: &(String, String)| k.0 == "order.started" || k.0 == "order.completed";
    for pair in seen_kinds.chunk_by_mut(|a, b| settled_first(a) && settled_first(b) && a.0 == b.0) {
        pair.sort_by(|a, b| a.1.cmp(&b.1));
    }
    let mut expected = all.clone();
    for pair in expected.chunk_by_mut(|a, b| settled_first(a) && settled_first(b) && a.0 == b.0) {
        pair.sort_by(|a, b| a.1.cmp(&b.1));
    }
    assert_eq!(seen_kinds, expected, "finance sees every event, once, in order");
    assert_eq!(kinds(&events(&app, &admin, "", all.len()).await), kinds(&seen), "so does an administrator");

    let mine = |k: &(String, String), subjects: &[&Value]| subjects.iter().any(|s| s.as_str() == Some(&k.1));
    let tenant_sees: Vec<_> = kinds(&seen).into_iter().filter(|k| mine(k, &[&g["id"], &o1["id"], &o2["id"]])).collect();
    assert_eq!(tenant_sees.len(), 8);
    assert_eq!(kinds(&events(&app, &tenant.token, "", 8).await), tenant_sees);
    let provider_sees: Vec<_> =
        kinds(&seen).into_iter().filter(|k| mine(k, &[&o1["id"], &o2["id"], &payout["id"], &l["id"]])).collect();
    assert_eq!(provider_sees.len(), 9);
    assert_eq!(kinds(&events(&app, &provider.token, "", 9).await), provider_sees);
    let others =
        vec![kind("order.reserved", &o3["id"]), kind("order.started", &o3["id"]), kind("order.completed", &o3["id"])];
    assert_eq!(kinds(&events(&app, &other_tenant.token, "", 3).await), others);
    assert_eq!(kinds(&events(&app, &other_provider.token, "", 3).await), others);

    // Each event's data is the subject as the API answered the change.
    assert_eq!(find(&seen, "grant.created", &g["id"])["data"], g);
    assert_eq!(find(&seen, "order.reserved", &o1["id"])["data"], o1);
    assert_eq!(find(&seen, "order.reserved", &o2["id"])["data"], o2);
    assert_eq!(find(&seen, "order.cancelled", &o2["id"])["data"], cancelled);
    assert_eq!(cancelled["status"], "cancelled");
    let started = &find(&seen, "order.started", &o1["id"])["data"];
    assert_eq!((started["status"].as_str(), started["settled_hours"].as_i64()), (Some("active"), Some(1)));
    let credited = &find(&seen, "order.credited", &o1["id"])["data"];
    assert_eq!(
        (credited["credited_gpu_hours"].as_i64(), credited["charged"]["tenant"]["refunded"].as_str()),
        (Some(1), Some("200"))
    );
    let completed = &find(&seen, "order.completed", &o1["id"])["data"];
    assert_eq!((completed["status"].as_str(), completed["settled_hours"].as_i64()), (Some("completed"), Some(10)));
    assert_eq!(find(&seen, "claim.submitted", &claim["id"])["data"], submitted);
    let mut claim_paid = find(&seen, "claim.paid", &claim["id"])["data"].clone();
    let recorded = claim_paid.as_object_mut().expect("object").remove("payment").expect("the payment");
    assert_eq!(claim_paid, paid);
    assert_eq!((paid["paid"].as_str(), paid["outstanding"].as_str()), (Some("4000"), Some("3200")));
    assert_eq!(
        (&recorded["amount"], &recorded["reference"], &recorded["journal_entry_id"]),
        (&json!("4000"), &json!("MSIT-0001"), &paid["payments"][0]["journal_entry_id"])
    );
    assert_eq!(find(&seen, "payout.created", &payout["id"])["data"], payout);
    assert_eq!(find(&seen, "grant.closed", &g["id"])["data"], closed_grant);
    assert_eq!(find(&seen, "listing.paused", &l["id"])["data"], paused);
    assert_eq!(find(&seen, "listing.closed", &l["id"])["data"], closed_listing);
    assert_eq!(seen[0]["occurred_at"].as_str().map(|t| t.parse::<chrono::DateTime<chrono::Utc>>().is_ok()), Some(true));
    assert_eq!(seen[0].as_object().map(|o| o.len()), Some(5), "id, type, occurred_at, subject_id, data: {:#}", seen[0]);
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
    let order = created(app.post("/v1/orders", &tenant.token, &order_body(&l, 1, start_at, 2), None).await, 201).await;
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
    let id: uuid::Uuid = order["id"].as_str().expect("id").parse().expect("uuid");
    let mut conn = app.conn().await;
    let actor = gpuhour::ledger::model::Actor { user_id: Some(tenant.user_id), org_id: Some(tenant.org_id) };
    let failed: Result<(), gpuhour::market::settlement::SettleError> = gpuhour::db::transaction(&mut conn, async |c| {
        gpuhour::market::settlement::cancel(c, id, tenant.org_id, actor, chrono::Utc::now()).await?;
        Err(diesel::result::Error::RollbackTransaction.into())
    })
    .await;
    assert!(matches!(failed, Err(gpuhour::market::settlement::SettleError::Database(_))), "{failed:?}");
    drop(conn);

    assert_eq!(kinds(&events(&app, &finance, "", 1).await), vec![kind("order.reserved", &order["id"])]);
    let (_, now_order) = json(app.get(&format!("/v1/orders/{id}"), &tenant.token).await).await;
    assert_eq!(now_order["status"], "reserved");
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
        ids.push(created(r, 201).await["id"].clone());
    }
    for id in &ids[..2] {
        let path = format!("/v1/orders/{}/cancel", id.as_str().expect("id"));
        created(app.post(&path, &tenant.token, &json!({}), None).await, 200).await;
    }
    let everything = events(&app, &tenant.token, "", 9).await;
    assert_eq!(everything.len(), 9);

    // Pages of two: the same events, in the same order, each once.
    let mut walked = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let after = cursor.as_ref().map(|c| format!("&after={c}")).unwrap_or_default();
        let (status, page) = json(app.get(&format!("/v1/events?limit=2{after}"), &tenant.token).await).await;
        assert_eq!(status, 200, "{page:#}");
        let data = page["data"].as_array().expect("data").clone();
        assert!(data.len() <= 2);
        let next = page["next_cursor"].as_str().expect("cursor").to_string();
        if data.is_empty() {
            // Nothing new: the caller's own cursor comes back.
            assert_eq!(Some(&next), cursor.as_ref());
            break;
        }
        walked.extend(data);
        cursor = Some(next);
    }
    assert_eq!(walked, everything);
    let reserved: Vec<&Value> =
        everything.iter().filter(|e| e["type"] == "order.reserved").map(|e| &e["subject_id"]).collect();
    let mut sorted_ids: Vec<&Value> = ids.iter().collect();
    let mut reserved_sorted = reserved.clone();
    sorted_ids.sort_by_key(|v| v.as_str());
    reserved_sorted.sort_by_key(|v| v.as_str());
    assert_eq!(reserved_sorted, sorted_ids, "each order once");

    // Only the types asked for.
    let cancelled = events(&app, &tenant.token, "&types=order.cancelled", 2).await;
    assert_eq!(kinds(&cancelled), vec![kind("order.cancelled", &ids[0]), kind("order.cancelled", &ids[1])]);
    let both = events(&app, &tenant.token, "&types=order.cancelled,listing.closed", 2).await;
    assert_eq!(kinds(&both), kinds(&cancelled));
    assert_eq!(events(&app, &tenant.token, "&types=payout.created", 0).await, Vec::<Value>::new());
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
    let (status, first) = json(app.get("/v1/events", &provider.token).await).await;
    assert_eq!((status.as_u16(), first["data"].clone()), (200, json!([])));
    let cursor = first["next_cursor"].as_str().expect("cursor").to_string();
    let began = Instant::now();
    let (_, empty) = json(app.get(&format!("/v1/events?after={cursor}&wait=1"), &provider.token).await).await;
    assert!(began.elapsed() >= StdDuration::from_secs(1), "{:?}", began.elapsed());
    assert_eq!(empty, json!({"data": [], "next_cursor": cursor}));

    let waiting = {
        let (client, url, token) =
            (app.client.clone(), app.url(&format!("/v1/events?after={cursor}&wait=5")), provider.token.clone());
        tokio::spawn(async move {
            let began = Instant::now();
            let response = client.get(url).bearer_auth(token).send().await.expect("request");
            (began.elapsed(), response.json::<Value>().await.expect("json"))
        })
    };
    tokio::time::sleep(StdDuration::from_millis(500)).await;
    let order = created(app.post("/v1/orders", &tenant.token, &order_body(&l, 1, start_at, 1), None).await, 201).await;
    let (took, page) = waiting.await.expect("the poll");
    assert!(took < StdDuration::from_secs(4), "answered after {took:?}");
    assert_eq!(kinds(page["data"].as_array().expect("data")), vec![kind("order.reserved", &order["id"])]);
    assert_ne!(page["next_cursor"].as_str(), Some(cursor.as_str()));
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
        ids.push(
            created(app.post("/v1/orders", &t.token, &order_body(&l, 1, start_at, 2), None).await, 201).await["id"]
                .clone(),
        );
    }
    for hour in [1, 2] {
        set_clock(&app, &finance, start_at + Duration::hours(hour)).await;
        join_all([settle(&app, &finance), settle(&second, &finance), settle(&app, &finance)]).await;
    }
    for t in ["order.started", "order.completed"] {
        let seen = events(&app, &finance, &format!("&types={t}"), 4).await;
        let mut subjects: Vec<String> = kinds(&seen).into_iter().map(|k| k.1).collect();
        subjects.sort();
        let mut expected: Vec<String> = ids.iter().map(|i| i.as_str().expect("id").to_string()).collect();
        expected.sort();
        assert_eq!(subjects, expected, "{t} once per order");
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
    let order = created(app.post("/v1/orders", &tenant.token, &order_body(&l, 1, start_at, 4), None).await, 201).await;
    // The first hour has begun, and no settler has seen it yet.
    set_clock(&app, &finance, start_at + Duration::minutes(30)).await;
    let path = format!("/v1/orders/{}/cancel", order["id"].as_str().expect("id"));
    let cancelled = created(app.post(&path, &tenant.token, &json!({}), None).await, 200).await;
    assert_eq!((cancelled["status"].as_str(), cancelled["charged_hours"].as_i64()), (Some("cancelled"), Some(1)));
    settle(&app, &finance).await;
    let seen = events(&app, &provider.token, "", 3).await;
    assert_eq!(
        kinds(&seen),
        vec![
            kind("order.reserved", &order["id"]),
            kind("order.started", &order["id"]),
            kind("order.cancelled", &order["id"])
        ]
    );
    assert_eq!(seen[2]["data"], cancelled);
}
