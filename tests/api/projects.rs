//! Projects and GPU-hour allocations on grants, and the per-organisation cap
//! of a programme (issue 12 item 5), under concurrency too.

use chrono::{DateTime, Duration, Utc};
use futures::future::join_all;
use gpuhour::auth::Role;
use gpuhour::events::routes::EventPage;
use gpuhour::ledger::verify::VerifyReport;
use gpuhour::market::views::{ListingView, OrderView, OutageView};
use gpuhour::subsidy::projects::AllocationView;
use gpuhour::subsidy::routes::{GrantView, ProgrammeView};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{Caller, TestApp, expect_problem, next_hour, read_as, spawn_app, verify_is_clean};
use crate::market::{deposit, listing, order_body};
use crate::subsidy::programme;

const H100: &str = "H100-SXM5-80GB";

fn project(agreement: &str) -> Value {
    json!({"title": "Korean legal LLM", "principal_investigator": "Kim Ji-woo",
        "agreement_number": agreement, "purpose": "pre-training a 7B model on public legal texts"})
}

async fn grant_with(
    app: &TestApp,
    finance: &str,
    programme: &Value,
    tenant: &Caller,
    amount: &str,
    at: DateTime<Utc>,
    extra: Value,
) -> reqwest::Response {
    let mut body = json!({"tenant_org_id": tenant.org_id, "amount": amount,
        "valid_from": at - Duration::days(1), "valid_until": at + Duration::days(90)});
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        b.extend(e.clone());
    }
    app.post(&format!("/v1/programmes/{}/grants", programme["id"].as_str().expect("id")), finance, &body, None).await
}

/// A grant made with `grant_with`, expecting it made.
async fn granted(response: reqwest::Response) -> GrantView {
    read_as(response, 201).await
}

/// An order's body, funded by `grant`.
fn funded_by(mut body: Value, grant: &GrantView) -> Value {
    body["grant_id"] = json!(grant.id);
    body
}

/// The grant's allocation now: model, GPU-hours allocated, used and left.
async fn allocation_of(app: &TestApp, token: &str, grant: Uuid) -> (String, i64, i64, i64) {
    let g: GrantView = app.get_as(&format!("/v1/grants/{grant}"), token).await;
    hours(g.allocation.as_ref().expect("an allocation"))
}

fn hours(a: &AllocationView) -> (String, i64, i64, i64) {
    (a.gpu_model.clone(), a.gpu_hours, a.used_gpu_hours, a.left_gpu_hours)
}

fn h100(gpu_hours: i64, used: i64, left: i64) -> (String, i64, i64, i64) {
    (H100.to_string(), gpu_hours, used, left)
}

async fn capped_programme(app: &TestApp, finance: &str, budget: &str, share: &str, at: DateTime<Utc>) -> Value {
    let body = json!({
        "name": "2026 GPU support", "sponsor": "MSIT", "fiscal_year": 2026, "currency": "KRW", "budget": budget,
        "starts_at": at - Duration::days(1), "ends_at": at + Duration::days(365), "default_rate": "0.7",
        "max_share_per_org": share,
    });
    let p: ProgrammeView = app.post_as("/v1/programmes", finance, &body, None, 201).await;
    assert_eq!(p.max_share_per_org.as_deref(), Some(share));
    // As JSON, like `subsidy::programme`'s: what `grant_with` takes.
    json!(p)
}

#[tokio::test]
async fn orders_draw_an_allocation_down_exactly_and_cancellation_gives_hours_back() {
    let app = spawn_app().await;
    let finance = app.token(Role::Finance).await;
    let provider = app.caller(Role::Provider).await;
    let start = next_hour(&app, &finance).await;
    let p = programme(&app, &finance, "100000000", start).await;
    let tenant = app.tenant("university").await;
    deposit(&app, &finance, tenant.org_id, "10000000").await;
    let extra = json!({"project": project("RS-2026-00123"), "allocation": {"gpu_model": H100, "gpu_hours": 100}});
    // Kept as JSON too: the event below must carry this very answer.
    let answered: Value = read_as(grant_with(&app, &finance, &p, &tenant, "1000000", start, extra).await, 201).await;
    let g: GrantView = serde_json::from_value(answered.clone()).expect("a GrantView");
    let project = g.project.as_ref().expect("a project");
    assert_eq!(
        (project.agreement_number.as_str(), project.title.as_str(), project.principal_investigator.as_str()),
        ("RS-2026-00123", "Korean legal LLM", "Kim Ji-woo")
    );
    assert_eq!(hours(g.allocation.as_ref().expect("an allocation")), h100(100, 0, 100));
    // Its `grant.created` event carries the whole grant, project and allocation included.
    let events: EventPage = app.get_as("/v1/events?types=grant.created&wait=30", &tenant.token).await;
    assert_eq!(events.data.len(), 1, "{events:#?}");
    assert_eq!(events.data[0].data, answered);

    let l = listing(&app, &provider.token, 8, "1000", start, 48).await;
    // 4 GPUs × 10 h = 40 GPU-hours.
    let first: OrderView =
        app.post_as("/v1/orders", &tenant.token, &funded_by(order_body(&l, 4, start, 10), &g), None, 201).await;
    assert_eq!(allocation_of(&app, &tenant.token, g.id).await.3, 60);

    // 8 × 8 = 64 > 60: refused, naming the allocation; a quote says the same.
    let too_many = funded_by(order_body(&l, 8, start + Duration::hours(10), 8), &g);
    let problem =
        expect_problem(app.post("/v1/quotes", &tenant.token, &too_many, None).await, 422, "budget_exhausted").await;
    let detail = "the grant's allocation of H100-SXM5-80GB has 60 GPU-hours left; this order needs 64";
    assert_eq!(problem["detail"], detail);
    let problem =
        expect_problem(app.post("/v1/orders", &tenant.token, &too_many, None).await, 422, "budget_exhausted").await;
    assert_eq!(problem["detail"], detail);
    // 6 × 10 = 60 fits exactly.
    let second = funded_by(order_body(&l, 6, start + Duration::hours(10), 10), &g);
    let second: OrderView = app.post_as("/v1/orders", &tenant.token, &second, None, 201).await;
    assert_eq!(second.gpu_hours, 60);
    assert_eq!(allocation_of(&app, &tenant.token, g.id).await, h100(100, 100, 0));

    // Another model: the grant does not apply to it.
    let mut a100 = json!({
        "gpu_model": "A100-SXM4-80GB", "gpu_memory_gb": 80, "gpus": 8, "region": "kr-seoul-1",
        "price_per_gpu_hour": "500", "currency": "KRW",
        "available_from": start, "available_until": start + Duration::hours(48),
    });
    let other: ListingView = app.post_as("/v1/listings", &provider.token, &a100, None, 201).await;
    a100 = funded_by(order_body(&json!({"id": other.id}), 1, start, 1), &g);
    let problem =
        expect_problem(app.post("/v1/orders", &tenant.token, &a100, None).await, 422, "validation_failed").await;
    assert_eq!(problem["errors"][0]["field"], "grant_id");
    assert_eq!(
        problem["errors"][0]["message"],
        "the grant's allocation is of H100-SXM5-80GB; this listing sells A100-SXM4-80GB"
    );

    // Cancelling the first order before it starts gives its 40 GPU-hours back.
    let _: OrderView =
        app.post_as(&format!("/v1/orders/{}/cancel", first.id), &tenant.token, &json!({}), None, 200).await;
    assert_eq!(allocation_of(&app, &tenant.token, g.id).await, h100(100, 60, 40));
    assert_eq!(
        app.count("SELECT returned_gpu_hours AS n FROM allocation_draws WHERE returned_gpu_hours > 0").await,
        40
    );
    verify_is_clean(&app, &finance).await;
}

#[tokio::test]
async fn grants_of_one_agreement_share_a_project_and_no_one_else_may_use_it() {
    let app = spawn_app().await;
    let finance = app.token(Role::Finance).await;
    let start = next_hour(&app, &finance).await;
    let p = programme(&app, &finance, "100000000", start).await;
    let tenant = app.tenant("sme").await;
    let extra = json!({"project": project("RS-2026-7")});
    let first = granted(grant_with(&app, &finance, &p, &tenant, "1000", start, extra.clone()).await).await;
    let second = granted(grant_with(&app, &finance, &p, &tenant, "2000", start, extra.clone()).await).await;
    let project_of = |g: &GrantView| g.project.as_ref().expect("a project").id;
    assert_eq!(project_of(&first), project_of(&second));
    assert!(second.allocation.is_none());

    // Another tenant naming the same agreement is refused; so is a different description.
    let other = app.tenant("sme").await;
    let problem =
        expect_problem(grant_with(&app, &finance, &p, &other, "1000", start, extra).await, 422, "validation_failed")
            .await;
    assert_eq!(problem["errors"][0]["field"], "project.agreement_number");
    let mut renamed = project("RS-2026-7");
    renamed["title"] = json!("Something else");
    let problem = expect_problem(
        grant_with(&app, &finance, &p, &tenant, "1000", start, json!({"project": renamed})).await,
        422,
        "validation_failed",
    )
    .await;
    assert_eq!(problem["errors"][0]["field"], "project");
    // Invalid fields, every one named; nothing written by any refusal.
    let bad = json!({"project": {"title": "", "principal_investigator": "P", "agreement_number": "A", "purpose": "x"},
        "allocation": {"gpu_model": H100, "gpu_hours": 0}});
    let problem =
        expect_problem(grant_with(&app, &finance, &p, &tenant, "1000", start, bad).await, 422, "validation_failed")
            .await;
    let fields: Vec<&str> =
        problem["errors"].as_array().expect("errors").iter().filter_map(|e| e["field"].as_str()).collect();
    assert_eq!(fields, vec!["project.title", "allocation.gpu_hours"]);
    assert_eq!(app.count("SELECT count(*) AS n FROM grants").await, 2);
    assert_eq!(app.count("SELECT count(*) AS n FROM projects").await, 1);
    assert_eq!(app.count("SELECT count(*) AS n FROM project_grants").await, 2);
}

#[tokio::test]
async fn concurrent_orders_never_overdraw_an_allocation() {
    let app = spawn_app().await;
    let finance = app.token(Role::Finance).await;
    let provider = app.caller(Role::Provider).await;
    let start = next_hour(&app, &finance).await;
    let p = programme(&app, &finance, "100000000", start).await;
    let tenant = app.tenant("sme").await;
    deposit(&app, &finance, tenant.org_id, "100000000").await;
    let extra = json!({"allocation": {"gpu_model": H100, "gpu_hours": 200}});
    let g = granted(grant_with(&app, &finance, &p, &tenant, "50000000", start, extra).await).await;
    let l = listing(&app, &provider.token, 64, "1000", start, 48).await;
    // Half of it drawn: 100 left.
    let _: OrderView =
        app.post_as("/v1/orders", &tenant.token, &funded_by(order_body(&l, 10, start, 10), &g), None, 201).await;
    // Ten orders at once, each 11 GPU-hours (10 % over a tenth of what is left):
    // nine fit (99), the tenth would overdraw.
    let bodies: Vec<Value> =
        (0..10).map(|i| funded_by(order_body(&l, 1, start + Duration::hours(i), 11), &g)).collect();
    let responses = join_all(bodies.iter().map(|b| app.post("/v1/orders", &tenant.token, b, None))).await;
    let mut statuses = Vec::new();
    for r in responses {
        let status = r.status().as_u16();
        let body: Value = r.json().await.expect("json");
        if status == 422 {
            assert_eq!(body["code"], "budget_exhausted");
            assert_eq!(
                body["detail"],
                "the grant's allocation of H100-SXM5-80GB has 1 GPU-hours left; this order needs 11"
            );
        }
        statuses.push(status);
    }
    statuses.sort_unstable();
    assert_eq!(statuses, [vec![201; 9], vec![422]].concat());
    assert_eq!(allocation_of(&app, &finance, g.id).await, h100(200, 199, 1));
    assert_eq!(app.count("SELECT sum(gpu_hours)::int8 AS n FROM allocation_draws").await, 199);
    assert_eq!(app.count("SELECT sum(gpu_hours)::int8 AS n FROM orders").await, 199);
    verify_is_clean(&app, &finance).await;
}

#[tokio::test]
async fn the_per_organisation_cap_refuses_the_grant_that_crosses_it() {
    let app = spawn_app().await;
    let finance = app.token(Role::Finance).await;
    let start = next_hour(&app, &finance).await;
    let p = capped_programme(&app, &finance, "1000000", "0.1", start).await;
    let shown: ProgrammeView = app.get_as(&format!("/v1/programmes/{}", p["id"].as_str().expect("id")), &finance).await;
    assert_eq!(shown.max_share_per_org.as_deref(), Some("0.1"));

    let tenant = app.tenant("sme").await;
    granted(grant_with(&app, &finance, &p, &tenant, "60000", start, json!({})).await).await;
    let problem = expect_problem(
        grant_with(&app, &finance, &p, &tenant, "50000", start, json!({})).await,
        422,
        "budget_exhausted",
    )
    .await;
    assert_eq!(
        problem["detail"],
        "max_share_per_org 0.1 caps one organisation at 100000 of this programme; it holds 60000 and this grant asks 50000"
    );
    // Up to the cap exactly is fine, and another organisation has its own.
    granted(grant_with(&app, &finance, &p, &tenant, "40000", start, json!({})).await).await;
    let other = app.tenant("sme").await;
    granted(grant_with(&app, &finance, &p, &other, "100000", start, json!({})).await).await;
    assert_eq!(app.count("SELECT count(*) AS n FROM grants").await, 3);

    // A share outside (0, 1] is refused; no cap means none.
    for bad in ["0", "1.5", "ten"] {
        let body = json!({"name": "x", "sponsor": "y", "fiscal_year": 2026, "currency": "KRW", "budget": "1000",
            "starts_at": start, "ends_at": start + Duration::days(1), "default_rate": "0.7", "max_share_per_org": bad});
        let problem =
            expect_problem(app.post("/v1/programmes", &finance, &body, None).await, 422, "validation_failed").await;
        assert_eq!(problem["errors"][0]["field"], "max_share_per_org");
    }
    let uncapped: ProgrammeView =
        serde_json::from_value(programme(&app, &finance, "1000000", start).await).expect("a ProgrammeView");
    assert_eq!(uncapped.max_share_per_org, None);
}

#[tokio::test]
async fn concurrent_grants_never_cross_the_cap() {
    let app = spawn_app().await;
    let finance = app.token(Role::Finance).await;
    let start = next_hour(&app, &finance).await;
    let p = capped_programme(&app, &finance, "1000000", "0.1", start).await;
    let tenant = app.tenant("sme").await;
    let responses = join_all((0..10).map(|_| grant_with(&app, &finance, &p, &tenant, "30000", start, json!({})))).await;
    let mut statuses: Vec<u16> = responses.iter().map(|r| r.status().as_u16()).collect();
    statuses.sort_unstable();
    assert_eq!(statuses, [vec![201; 3], vec![422; 7]].concat());
    assert_eq!(app.count("SELECT sum(amount)::int8 AS n FROM grants").await, 90000);
    verify_is_clean(&app, &finance).await;
}

#[tokio::test]
async fn an_outage_gives_its_gpu_hours_back_and_a_cancellation_the_rest() {
    let app = spawn_app().await;
    let finance = app.token(Role::Finance).await;
    let provider = app.caller(Role::Provider).await;
    let start = next_hour(&app, &finance).await;
    let p = programme(&app, &finance, "100000000", start).await;
    let tenant = app.tenant("sme").await;
    deposit(&app, &finance, tenant.org_id, "10000000").await;
    let extra = json!({"allocation": {"gpu_model": H100, "gpu_hours": 100}});
    let g = granted(grant_with(&app, &finance, &p, &tenant, "1000000", start, extra).await).await;
    let l = listing(&app, &provider.token, 8, "1000", start, 48).await;
    let order: OrderView =
        app.post_as("/v1/orders", &tenant.token, &funded_by(order_body(&l, 4, start, 10), &g), None, 201).await;
    // 2 GPUs lost in hours 5 and 6: 4 GPU-hours back.
    let outage = json!({"start": start + Duration::hours(5), "end": start + Duration::hours(7), "gpus": 2});
    let lid = l["id"].as_str().expect("id");
    let _: OutageView = app.post_as(&format!("/v1/listings/{lid}/outages"), &provider.token, &outage, None, 201).await;
    assert_eq!(allocation_of(&app, &tenant.token, g.id).await.2, 36);
    // Cancelled before it starts: the other 36 come back, not the outage's 4 again.
    let _: OrderView =
        app.post_as(&format!("/v1/orders/{}/cancel", order.id), &tenant.token, &json!({}), None, 200).await;
    assert_eq!(allocation_of(&app, &tenant.token, g.id).await, h100(100, 0, 100));
    verify_is_clean(&app, &finance).await;
}

#[tokio::test]
async fn verify_finds_an_allocation_that_disagrees_with_its_draws() {
    let app = spawn_app().await;
    let finance = app.token(Role::Finance).await;
    let start = next_hour(&app, &finance).await;
    let p = programme(&app, &finance, "1000000", start).await;
    let tenant = app.tenant("sme").await;
    let extra = json!({"allocation": {"gpu_model": H100, "gpu_hours": 50}});
    let g = granted(grant_with(&app, &finance, &p, &tenant, "1000", start, extra).await).await;
    verify_is_clean(&app, &finance).await;
    let mut conn = app.conn().await;
    diesel_async::RunQueryDsl::execute(diesel::sql_query("UPDATE grant_allocations SET used_gpu_hours = 7"), &mut conn)
        .await
        .expect("tamper");
    let report: VerifyReport = app.get_as("/v1/ledger/verify", &finance).await;
    assert!(!report.ok);
    assert_eq!(report.differences.len(), 1, "{report:#?}");
    let d = &report.differences[0];
    assert_eq!((d.invariant, d.field.as_deref()), (8, Some("used_gpu_hours")));
    assert_eq!((d.expected.as_deref(), d.actual.as_deref()), (Some("0"), Some("7")));
    assert_eq!(d.detail, format!("grant {}: GPU-hours used differ from its orders' draws", g.id));
}
