//! The funding-mix report: public versus private money on the hours bought,
//! every figure hand-computed, grouped several ways, with names; its
//! reconciliation with the ledger; names in every report; the trial
//! balance's money and memo totals apart.

use chrono::{DateTime, Duration, Utc};
use gpuhour::auth::Role;
use gpuhour::finance::funding::{REPORTING_TIME_ZONE, month_of, next_month_start};
use gpuhour::finance::names::OrgRef;
use gpuhour::ledger::routes::TrialBalance;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::now;
use crate::helpers::{
    Caller, TestApp, expect_problem, json, spawn_app, spawn_app_with, totals_in, trial_balance_row, verify_is_clean,
};
use crate::market::{deposit, order_body, set_clock};
use crate::subsidy::grant;

/// A user in an organisation of its own, with the organisation's name.
async fn named(app: &TestApp, role: Role, name: &str, category: Option<&str>) -> Caller {
    use gpuhour::auth::model::{OrgKind, TenantCategory};
    use gpuhour::auth::store;
    let mut conn = app.conn().await;
    let at = Utc::now();
    let kind = if role == Role::Provider { OrgKind::Provider } else { OrgKind::Tenant };
    let category: Option<TenantCategory> = category.map(|c| c.parse().expect("category"));
    let org =
        store::create_org(&mut conn, name, kind, category, store::CategorySource::Operator, at).await.expect("org");
    let email = format!("{}@test.example", Uuid::now_v7().simple());
    let user = store::create_user(&mut conn, org.id, &email, "no-login", role, at).await.expect("user");
    let token = app.keys.issue(user.id, gpuhour::auth::OrgId(org.id), role).expect("token");
    Caller { token, user_id: user.id, org_id: org.id }
}

async fn programme(app: &TestApp, finance: &str, name: &str, budget: &str, rates: Value, at: DateTime<Utc>) -> Value {
    let body = json!({
        "name": name, "sponsor": "Ministry of Science and ICT", "fiscal_year": 2026,
        "currency": "KRW", "budget": budget, "starts_at": at - Duration::days(1), "ends_at": at + Duration::days(365),
        "default_rate": rates["default"], "rates_by_category": rates["by_category"],
    });
    let (status, p) = json(app.post("/v1/programmes", finance, &body, None).await).await;
    assert_eq!(status, 201, "{p:#}");
    p
}

async fn listing(app: &TestApp, provider: &str, model: &str, region: &str, price: &str, from: DateTime<Utc>) -> Value {
    let body = json!({
        "gpu_model": model, "gpu_memory_gb": 80, "gpus": 8, "region": region, "price_per_gpu_hour": price,
        "currency": "KRW", "available_from": from, "available_until": from + Duration::hours(48),
    });
    let (status, l) = json(app.post("/v1/listings", provider, &body, None).await).await;
    assert_eq!(status, 201, "{l:#}");
    l
}

async fn order(app: &TestApp, tenant: &Caller, mut body: Value, grant: Option<&Value>) -> Value {
    if let Some(g) = grant {
        body["grant_id"] = g["id"].clone();
    }
    let (status, o) = json(app.post("/v1/orders", &tenant.token, &body, None).await).await;
    assert_eq!(status, 201, "{o:#}");
    o
}

fn split(o: &Value) -> (&str, &str, &str, &str) {
    let s = |k: &str| o[k].as_str().expect("amount");
    (s("subtotal"), s("subsidy"), s("tenant_amount"), s("platform_fee"))
}

async fn settle(app: &TestApp, finance: &str) {
    let (status, run) = json(app.post("/v1/settlements/run", finance, &json!({}), None).await).await;
    assert_eq!(status, 200, "{run:#}");
}

fn q(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// The market of issue 13's tests, built through the API:
///
/// - "2026 AI Compute Voucher" (P1: 70 %, SMEs 80 %, universities 90 %) and
///   "Regional GPU Fund" (P2: 50 %);
/// - listing A: Han River DC, H100 in kr-seoul-1 at ₩1,000.5; listing B: Busan
///   Compute, A100 in kr-busan-1 at ₩600; fee rate 5 %;
/// - O1: SNU Vision Lab (university, P1 at 90 %), 2 GPUs × 6 h on A from S,
///   one GPU lost in hours 1 and 2 (hour 1 refunded, hour 2 voided), hours 4–5
///   not yet settled;
/// - O2: Pangyo Diffusion (sme, P1 at 80 %, grant of ₩3,000), 1 GPU × 4 h on A:
///   the subsidy crosses the cap (₩3,201 → ₩3,000);
/// - O2b: Pangyo Diffusion again on its spent grant, 1 GPU × 2 h on B from M:
///   unsubsidised, not yet settled;
/// - O3: Suwon Chip Design (midsize, P2 at 50 %), 3 GPUs × 5 h on B, cancelled
///   at S + 2½ h: three hours charged;
/// - O4: Ulsan Shipyards (enterprise, no grant), 2 GPUs × 3 h on B from S + 1 h.
///
/// S is four hours before M, the start of a calendar month in Seoul: hours
/// 0–3 of O1, O2, O3 and O4 are in the first month, O1's hours 4–5 and O2b in
/// the second. The clock ends at M.
struct Market {
    finance: String,
    han_river: Caller,
    busan: Caller,
    snu: Caller,
    pangyo: Caller,
    suwon: Caller,
    ulsan: Caller,
    p1: Value,
    p2: Value,
    s: DateTime<Utc>,
    m: DateTime<Utc>,
}

async fn market(app: &TestApp) -> Market {
    let finance = app.token(Role::Finance).await;
    let m = next_month_start(now(app, &finance).await + Duration::days(1), REPORTING_TIME_ZONE).expect("month");
    let s = m - Duration::hours(4);
    set_clock(app, &finance, s - Duration::hours(1)).await;

    let han_river = named(app, Role::Provider, "Han River DC", None).await;
    let busan = named(app, Role::Provider, "Busan Compute", None).await;
    let snu = named(app, Role::Tenant, "SNU Vision Lab", Some("university")).await;
    let pangyo = named(app, Role::Tenant, "Pangyo Diffusion", Some("sme")).await;
    let suwon = named(app, Role::Tenant, "Suwon Chip Design", Some("midsize")).await;
    let ulsan = named(app, Role::Tenant, "Ulsan Shipyards", Some("enterprise")).await;
    for t in [&snu, &pangyo, &suwon, &ulsan] {
        deposit(app, &finance, t.org_id, "100000").await;
    }
    let voucher = json!({"default": "0.7", "by_category": {"sme": "0.8", "university": "0.9"}});
    let p1 = programme(app, &finance, "2026 AI Compute Voucher", "1000000", voucher, s).await;
    let p2 =
        programme(app, &finance, "Regional GPU Fund", "500000", json!({"default": "0.5", "by_category": {}}), s).await;
    let g1 = grant(app, &finance, &p1, &snu, "100000", s).await;
    let g2 = grant(app, &finance, &p1, &pangyo, "3000", s).await;
    let g3 = grant(app, &finance, &p2, &suwon, "50000", s).await;

    let a = listing(app, &han_river.token, "H100-SXM5-80GB", "kr-seoul-1", "1000.5", s).await;
    let b = listing(app, &busan.token, "A100-SXM4-80GB", "kr-busan-1", "600", s).await;
    let o1 = order(app, &snu, order_body(&a, 2, s, 6), Some(&g1)).await;
    assert_eq!(split(&o1), ("12006", "10805", "1201", "600"));
    let o2 = order(app, &pangyo, order_body(&a, 1, s, 4), Some(&g2)).await;
    assert_eq!(split(&o2), ("4002", "3000", "1002", "200"), "the grant's cap, not 80 %");
    let o2b = order(app, &pangyo, order_body(&b, 1, m, 2), Some(&g2)).await;
    assert_eq!(split(&o2b), ("1200", "0", "1200", "60"), "the grant is spent");
    let o3 = order(app, &suwon, order_body(&b, 3, s, 5), Some(&g3)).await;
    assert_eq!(split(&o3), ("9000", "4500", "4500", "450"));
    let o4 = order(app, &ulsan, order_body(&b, 2, s + Duration::hours(1), 3), None).await;
    assert_eq!(split(&o4), ("3600", "0", "3600", "180"));

    set_clock(app, &finance, s + Duration::hours(2)).await;
    settle(app, &finance).await;
    let outage = json!({"start": s + Duration::hours(1), "end": s + Duration::hours(3), "gpus": 1});
    let path = format!("/v1/listings/{}/outages", a["id"].as_str().expect("id"));
    let (status, credited) = json(app.post(&path, &han_river.token, &outage, None).await).await;
    assert_eq!(status, 201, "{credited:#}");
    set_clock(app, &finance, s + Duration::minutes(150)).await;
    let cancel = format!("/v1/orders/{}/cancel", o3["id"].as_str().expect("id"));
    let (status, cancelled) = json(app.post(&cancel, &suwon.token, &json!({}), None).await).await;
    assert_eq!((status.as_u16(), cancelled["charged_hours"].as_i64()), (200, Some(3)), "{cancelled:#}");
    set_clock(app, &finance, m).await;
    settle(app, &finance).await;
    Market { finance, han_river, busan, snu, pangyo, suwon, ulsan, p1, p2, s, m }
}

/// A settled or committed part: (GPU-hours, subtotal, public, private, fees).
type Part = (i64, &'static str, &'static str, &'static str, &'static str);

/// The figures of a group or total, as the report gives them.
fn figures(all: Part, share: Option<&str>, per: Option<&str>, settled: Part, committed: Part) -> Value {
    let part = |p: Part| json!({"gpu_hours": p.0, "subtotal": p.1, "public": p.2, "private": p.3, "fees": p.4});
    json!({
        "gpu_hours": all.0, "subtotal": all.1, "public": all.2, "private": all.3, "fees": all.4,
        "public_share": share, "private_per_public": per, "settled": part(settled), "committed": part(committed),
    })
}

const NOTHING: Part = (0, "0", "0", "0", "0");

/// A group's figures without its labels and subgroups.
fn figures_of(group: &Value) -> Value {
    let mut g = group.clone();
    if let Some(o) = g.as_object_mut() {
        for k in ["by", "key", "name", "org", "groups", "currency", "total"] {
            o.remove(k);
        }
    }
    g
}

async fn funding(app: &TestApp, finance: &str, query: &str) -> Value {
    let (status, r) = json(app.get(&format!("/v1/reports/funding{query}"), finance).await).await;
    assert_eq!(status, 200, "{r:#}");
    r
}

fn org(caller: &Caller, name: &str, category: Option<&str>) -> Value {
    json!({"id": caller.org_id, "name": name, "category": category})
}

#[tokio::test]
async fn the_funding_report_splits_public_and_private_money_to_the_won() {
    let app = spawn_app_with(|s| s.fee_rate = "0.05".parse().expect("rate")).await;
    let mk = market(&app).await;

    // Over all time. Public: O1 9,005 + O2 3,000 + O3 2,700; private: O1 1,001 +
    // O2 1,002 + O2b 1,200 + O3 2,700 + O4 3,600.
    let all = funding(&app, &mk.finance, "").await;
    assert_eq!(
        (all["time_zone"].as_str(), all["ratio_places"].as_i64(), all["group_by"].clone()),
        (Some("Asia/Seoul"), Some(4), json!([]))
    );
    assert_eq!(all["currencies"].as_array().map(Vec::len), Some(1));
    assert_eq!(all["currencies"][0]["currency"], "KRW");
    let total = figures(
        (31, "24208", "14705", "9503", "1210"),
        Some("0.6074"),
        Some("0.6462"),
        (25, "19002", "11100", "7902", "950"),
        (6, "5206", "3605", "1601", "260"),
    );
    assert_eq!(all["currencies"][0]["total"], total);
    assert!(all["currencies"][0].get("groups").is_none());

    // By programme: each programme's public money is its programme report's spent (+ committed).
    let by_programme = funding(&app, &mk.finance, "?group_by=programme").await;
    let groups = by_programme["currencies"][0]["groups"].as_array().expect("groups");
    let labels: Vec<(&str, &str)> =
        groups.iter().map(|g| (g["key"].as_str().expect("key"), g["name"].as_str().expect("name"))).collect();
    let (p1, p2) = (mk.p1["id"].as_str().expect("id"), mk.p2["id"].as_str().expect("id"));
    assert_eq!(labels, vec![(p1, "2026 AI Compute Voucher"), (p2, "Regional GPU Fund"), ("none", "unsubsidised")]);
    assert_eq!(
        groups.iter().map(figures_of).collect::<Vec<_>>(),
        vec![
            figures(
                (14, "14008", "12005", "2003", "700"),
                Some("0.8570"),
                Some("0.1668"),
                (10, "10002", "8400", "1602", "500"),
                (4, "4006", "3605", "401", "200"),
            ),
            figures(
                (9, "5400", "2700", "2700", "270"),
                Some("0.5000"),
                Some("1.0000"),
                (9, "5400", "2700", "2700", "270"),
                NOTHING
            ),
            figures(
                (8, "4800", "0", "4800", "240"),
                Some("0.0000"),
                None,
                (6, "3600", "0", "3600", "180"),
                (2, "1200", "0", "1200", "60"),
            ),
        ]
    );
    for (programme, spent, committed) in [(&mk.p1, "8400", "3605"), (&mk.p2, "2700", "0")] {
        let path = format!("/v1/reports/programmes/{}", programme["id"].as_str().expect("id"));
        let (_, report) = json(app.get(&path, &mk.finance).await).await;
        assert_eq!((report["spent"].as_str(), report["committed"].as_str()), (Some(spent), Some(committed)));
    }
    // Filtered to one programme: its orders, the tenants' co-payments included.
    let only_p1 = funding(&app, &mk.finance, &format!("?programme_id={p1}")).await;
    assert_eq!((only_p1["programme_id"].as_str(), only_p1["currency"].as_str()), (Some(p1), Some("KRW")));
    assert_eq!(only_p1["currencies"][0]["total"], figures_of(&groups[0]));

    // By tenant, by name.
    let by_tenant = funding(&app, &mk.finance, "?group_by=tenant").await;
    let groups = by_tenant["currencies"][0]["groups"].as_array().expect("groups");
    assert_eq!(
        groups
            .iter()
            .map(|g| (g["by"].clone(), g["key"].clone(), g["name"].clone(), g["org"].clone()))
            .collect::<Vec<_>>(),
        vec![
            (
                json!("tenant"),
                json!(mk.pangyo.org_id),
                json!("Pangyo Diffusion"),
                org(&mk.pangyo, "Pangyo Diffusion", Some("sme"))
            ),
            (
                json!("tenant"),
                json!(mk.snu.org_id),
                json!("SNU Vision Lab"),
                org(&mk.snu, "SNU Vision Lab", Some("university"))
            ),
            (
                json!("tenant"),
                json!(mk.suwon.org_id),
                json!("Suwon Chip Design"),
                org(&mk.suwon, "Suwon Chip Design", Some("midsize"))
            ),
            (
                json!("tenant"),
                json!(mk.ulsan.org_id),
                json!("Ulsan Shipyards"),
                org(&mk.ulsan, "Ulsan Shipyards", Some("enterprise"))
            ),
        ]
    );
    assert_eq!(
        groups.iter().map(figures_of).collect::<Vec<_>>(),
        vec![
            figures(
                (6, "5202", "3000", "2202", "260"),
                Some("0.5767"),
                Some("0.7340"),
                (4, "4002", "3000", "1002", "200"),
                (2, "1200", "0", "1200", "60"),
            ),
            figures(
                (10, "10006", "9005", "1001", "500"),
                Some("0.9000"),
                Some("0.1112"),
                (6, "6000", "5400", "600", "300"),
                (4, "4006", "3605", "401", "200"),
            ),
            figures(
                (9, "5400", "2700", "2700", "270"),
                Some("0.5000"),
                Some("1.0000"),
                (9, "5400", "2700", "2700", "270"),
                NOTHING
            ),
            figures((6, "3600", "0", "3600", "180"), Some("0.0000"), None, (6, "3600", "0", "3600", "180"), NOTHING),
        ]
    );

    // By provider: subtotal − fees is what each provider earned, settled and committed alike.
    let by_provider = funding(&app, &mk.finance, "?group_by=provider").await;
    let groups = by_provider["currencies"][0]["groups"].as_array().expect("groups");
    assert_eq!(
        groups.iter().map(|g| g["org"].clone()).collect::<Vec<_>>(),
        vec![org(&mk.busan, "Busan Compute", None), org(&mk.han_river, "Han River DC", None)]
    );
    assert_eq!(
        groups.iter().map(figures_of).collect::<Vec<_>>(),
        vec![
            figures(
                (17, "10200", "2700", "7500", "510"),
                Some("0.2647"),
                Some("2.7778"),
                (15, "9000", "2700", "6300", "450"),
                (2, "1200", "0", "1200", "60"),
            ),
            figures(
                (14, "14008", "12005", "2003", "700"),
                Some("0.8570"),
                Some("0.1668"),
                (10, "10002", "8400", "1602", "500"),
                (4, "4006", "3605", "401", "200"),
            ),
        ]
    );
    for (provider, posted, pending) in [(&mk.busan, "8550", "1140"), (&mk.han_river, "9502", "3806")] {
        let (_, accounts) = json(
            app.get(&format!("/v1/accounts?org_id={}&currency=KRW&code=liabilities:", provider.org_id), &mk.finance)
                .await,
        )
        .await;
        let payable = &accounts["data"][0];
        let pending_credit: rust_decimal::Decimal = payable["credits_pending"].as_str().expect("c").parse().expect("d");
        let pending_debit: rust_decimal::Decimal = payable["debits_pending"].as_str().expect("d").parse().expect("d");
        assert_eq!(
            (payable["balance"].as_str(), (pending_credit - pending_debit).to_string()),
            (Some(posted), pending.to_string()),
            "earned = settled subtotal − fees; pending likewise"
        );
    }

    // The ledger agrees, order by order and in total.
    let (status, check) = json(app.get("/v1/reports/funding/reconciliation", &mk.finance).await).await;
    assert_eq!(status, 200);
    assert_eq!(check, json!({"ok": true, "orders": 5, "differences": []}));
    verify_is_clean(&app, &mk.finance).await;
}

#[tokio::test]
async fn the_funding_report_groups_by_seoul_month_then_category_on_the_hours_bought() {
    let app = spawn_app_with(|s| s.fee_rate = "0.05".parse().expect("rate")).await;
    let mk = market(&app).await;
    let (first, second) = (month_of(mk.s, REPORTING_TIME_ZONE), month_of(mk.m, REPORTING_TIME_ZONE));
    assert_ne!(first, second);

    let r = funding(&app, &mk.finance, "?group_by=month,tenant_category").await;
    assert_eq!(r["group_by"], json!(["month", "tenant_category"]));
    let months = r["currencies"][0]["groups"].as_array().expect("months");
    assert_eq!(months.iter().map(|g| g["key"].clone()).collect::<Vec<_>>(), vec![json!(first), json!(second)]);
    // The first month is every hour before M: all settled.
    assert_eq!(
        figures_of(&months[0]),
        figures(
            (25, "19002", "11100", "7902", "950"),
            Some("0.5841"),
            Some("0.7119"),
            (25, "19002", "11100", "7902", "950"),
            NOTHING
        )
    );
    let categories = |month: &Value| -> Vec<(String, Value)> {
        month["groups"]
            .as_array()
            .expect("categories")
            .iter()
            .map(|g| (g["key"].as_str().expect("key").to_string(), figures_of(g)))
            .collect()
    };
    let settled = |p: Part| figures(p, None, None, p, NOTHING);
    let with_ratios = |mut f: Value, share: &str, per: Option<&str>| {
        f["public_share"] = json!(share);
        f["private_per_public"] = json!(per);
        f
    };
    assert_eq!(
        categories(&months[0]),
        vec![
            ("enterprise".into(), with_ratios(settled((6, "3600", "0", "3600", "180")), "0.0000", None)),
            ("midsize".into(), with_ratios(settled((9, "5400", "2700", "2700", "270")), "0.5000", Some("1.0000"))),
            ("sme".into(), with_ratios(settled((4, "4002", "3000", "1002", "200")), "0.7496", Some("0.3340"))),
            ("university".into(), with_ratios(settled((6, "6000", "5400", "600", "300")), "0.9000", Some("0.1111"))),
        ]
    );
    // The second month: O1's last two hours and O2b, committed.
    assert_eq!(
        figures_of(&months[1]),
        figures(
            (6, "5206", "3605", "1601", "260"),
            Some("0.6925"),
            Some("0.4441"),
            NOTHING,
            (6, "5206", "3605", "1601", "260")
        )
    );
    let committed = |p: Part, share: &str, per: Option<&str>| figures(p, Some(share), per, NOTHING, p);
    assert_eq!(
        categories(&months[1]),
        vec![
            ("sme".into(), committed((2, "1200", "0", "1200", "60"), "0.0000", None)),
            ("university".into(), committed((4, "4006", "3605", "401", "200"), "0.8999", Some("0.1112"))),
        ]
    );

    // A period selects the hours whose start falls in it, not the orders placed in it:
    // S+1 and S+2 are O1's credited hours 1–2, O2's 1–2, O3's 1–2 and O4's 0–1.
    let window = funding(
        &app,
        &mk.finance,
        &format!("?from={}&to={}", q(mk.s + Duration::hours(1)), q(mk.s + Duration::hours(3))),
    )
    .await;
    assert_eq!(
        window["currencies"][0]["total"],
        figures(
            (14, "10000", "5100", "4900", "500"),
            Some("0.5100"),
            Some("0.9608"),
            (14, "10000", "5100", "4900", "500"),
            NOTHING
        )
    );
    // From M on: the second month alone.
    let later = funding(&app, &mk.finance, &format!("?from={}", q(mk.m))).await;
    assert_eq!(later["currencies"][0]["total"], figures_of(&months[1]));
    // A period with nothing bought in it, in a currency asked for: zeros, ratios null.
    let empty = funding(&app, &mk.finance, &format!("?from={}&currency=USD", q(mk.m + Duration::days(30)))).await;
    assert_eq!(
        empty["currencies"],
        json!([{"currency": "USD", "total": {
        "gpu_hours": 0, "subtotal": "0.00", "public": "0.00", "private": "0.00", "fees": "0.00",
        "public_share": null, "private_per_public": null,
        "settled": {"gpu_hours": 0, "subtotal": "0.00", "public": "0.00", "private": "0.00", "fees": "0.00"},
        "committed": {"gpu_hours": 0, "subtotal": "0.00", "public": "0.00", "private": "0.00", "fees": "0.00"}}}])
    );
}

#[tokio::test]
async fn the_funding_report_as_csv_and_what_it_refuses() {
    let app = spawn_app_with(|s| s.fee_rate = "0.05".parse().expect("rate")).await;
    let mk = market(&app).await;
    let response = app.get("/v1/reports/funding?group_by=provider&format=csv", &mk.finance).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers().get("content-type").and_then(|v| v.to_str().ok()), Some("text/csv; charset=utf-8"));
    let text = response.text().await.expect("csv");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines,
        vec![
            "currency,level,provider,provider_name,gpu_hours,subtotal,public,private,fees,public_share,private_per_public,\
             settled_gpu_hours,settled_subtotal,settled_public,settled_private,settled_fees,\
             committed_gpu_hours,committed_subtotal,committed_public,committed_private,committed_fees",
            &format!(
                "KRW,1,{},Busan Compute,17,10200,2700,7500,510,0.2647,2.7778,15,9000,2700,6300,450,2,1200,0,1200,60",
                mk.busan.org_id
            ),
            &format!(
                "KRW,1,{},Han River DC,14,14008,12005,2003,700,0.8570,0.1668,10,10002,8400,1602,500,4,4006,3605,401,200",
                mk.han_river.org_id
            ),
            "KRW,0,,,31,24208,14705,9503,1210,0.6074,0.6462,25,19002,11100,7902,950,6,5206,3605,1601,260",
        ]
    );

    // Finance and admin only.
    for caller in [&mk.snu, &mk.han_river] {
        expect_problem(app.get("/v1/reports/funding", &caller.token).await, 403, "forbidden").await;
        expect_problem(app.get("/v1/reports/funding/reconciliation", &caller.token).await, 403, "forbidden").await;
    }
    let admin = app.token(Role::Admin).await;
    assert_eq!(app.get("/v1/reports/funding", &admin).await.status(), 200);
    // Bad queries are 422 naming the parameter; an unknown programme is 404.
    let from = q(mk.s);
    for (query, field) in [
        ("group_by=week".to_string(), "group_by"),
        ("group_by=month,tenant,provider".into(), "group_by"),
        ("group_by=month,month".into(), "group_by"),
        (format!("from={from}&to={from}"), "to"),
        ("currency=XYZ".into(), "currency"),
        ("programme_id=42".into(), "programme_id"),
        ("format=pdf".into(), "format"),
        ("colour=blue".into(), "colour"),
        (format!("programme_id={}&currency=USD", mk.p1["id"].as_str().expect("id")), "currency"),
    ] {
        let problem = expect_problem(
            app.get(&format!("/v1/reports/funding?{query}"), &mk.finance).await,
            422,
            "validation_failed",
        )
        .await;
        assert_eq!(problem["errors"][0]["field"], field, "{query}: {problem:#}");
    }
    expect_problem(
        app.get(&format!("/v1/reports/funding?programme_id={}", Uuid::now_v7()), &mk.finance).await,
        404,
        "not_found",
    )
    .await;
}

#[tokio::test]
async fn every_report_names_its_organisations() {
    let app = spawn_app_with(|s| s.fee_rate = "0.05".parse().expect("rate")).await;
    let mk = market(&app).await;
    let p1 = mk.p1["id"].as_str().expect("id");

    // The programme report's groups.
    let (_, by_tenant) =
        json(app.get(&format!("/v1/reports/programmes/{p1}?group_by=tenant"), &mk.finance).await).await;
    let mut groups = by_tenant["groups"].as_array().expect("groups").clone();
    groups.sort_by_key(|g| g["name"].as_str().map(String::from));
    assert_eq!(
        groups,
        vec![
            json!({"key": mk.pangyo.org_id.to_string(), "name": "Pangyo Diffusion",
                   "org": org(&mk.pangyo, "Pangyo Diffusion", Some("sme")), "committed": "0", "spent": "3000"}),
            json!({"key": mk.snu.org_id.to_string(), "name": "SNU Vision Lab",
                   "org": org(&mk.snu, "SNU Vision Lab", Some("university")), "committed": "3605", "spent": "5400"}),
        ]
    );
    let (_, by_provider) =
        json(app.get(&format!("/v1/reports/programmes/{p1}?group_by=provider"), &mk.finance).await).await;
    assert_eq!(
        by_provider["groups"],
        json!([{"key": mk.han_river.org_id.to_string(), "name": "Han River DC",
                "org": org(&mk.han_river, "Han River DC", None), "committed": "3605", "spent": "8400"}])
    );
    let (_, by_model) =
        json(app.get(&format!("/v1/reports/programmes/{p1}?group_by=gpu_model"), &mk.finance).await).await;
    assert_eq!(
        by_model["groups"],
        json!([{"key": "H100-SXM5-80GB", "name": "H100-SXM5-80GB", "committed": "3605", "spent": "8400"}])
    );

    // A claim's lines: O1's 3,600 + 2,700 less the 900 refunded, and O2's 3,000.
    let body =
        json!({"programme_id": p1, "period_start": mk.s - Duration::hours(1), "period_end": mk.m + Duration::hours(1)});
    let (status, claim) = json(app.post("/v1/claims", &mk.finance, &body, None).await).await;
    assert_eq!(status, 201, "{claim:#}");
    assert_eq!(
        claim["lines_by_provider"],
        json!([{"org_id": mk.han_river.org_id, "org": org(&mk.han_river, "Han River DC", None), "amount": "8400"}])
    );
    let mut by_tenant = claim["lines_by_tenant"].as_array().expect("lines").clone();
    by_tenant.sort_by_key(|l| l["org"]["name"].as_str().map(String::from));
    assert_eq!(
        by_tenant,
        vec![
            json!({"org_id": mk.pangyo.org_id, "org": org(&mk.pangyo, "Pangyo Diffusion", Some("sme")), "amount": "3000"}),
            json!({"org_id": mk.snu.org_id, "org": org(&mk.snu, "SNU Vision Lab", Some("university")), "amount": "5400"}),
        ]
    );

    // Statements.
    let (_, statement) = json(app.get(&format!("/v1/reports/statements/{}", mk.snu.org_id), &mk.snu.token).await).await;
    assert_eq!(statement["org"], org(&mk.snu, "SNU Vision Lab", Some("university")));
    let (_, statement) = json(app.get(&format!("/v1/reports/statements/{}", mk.busan.org_id), &mk.finance).await).await;
    assert_eq!(statement["org"], org(&mk.busan, "Busan Compute", None));

    // Trial balance rows of per-organisation accounts; null for the others.
    let tb: TrialBalance = app.get_as("/v1/reports/trial-balance", &mk.finance).await;
    let row = |code: String| trial_balance_row(&tb, &code, "KRW").unwrap_or_else(|| panic!("no row {code}"));
    let org_ref = |caller: &Caller, name: &str, category: Option<&str>| OrgRef {
        id: caller.org_id,
        name: name.into(),
        category: category.map(String::from),
    };
    let wallet = row(format!("liabilities:tenant:{}:wallet", mk.ulsan.org_id));
    assert_eq!(
        (wallet.org.as_ref(), wallet.account.org_id, wallet.account.balance.as_str()),
        (Some(&org_ref(&mk.ulsan, "Ulsan Shipyards", Some("enterprise"))), Some(mk.ulsan.org_id), "96400")
    );
    assert_eq!(
        row(format!("liabilities:provider:{}:payable", mk.han_river.org_id)).org,
        Some(org_ref(&mk.han_river, "Han River DC", None))
    );
    assert_eq!(row("assets:bank".into()).org, None);
    assert_eq!(row(format!("assets:subsidy-receivable:{p1}")).org, None);
}

#[tokio::test]
async fn the_trial_balance_totals_money_and_memo_accounts_apart() {
    let app = spawn_app().await;
    let finance = app.token(Role::Finance).await;
    let tenant = app.tenant("sme").await;
    let at = now(&app, &finance).await;
    deposit(&app, &finance, tenant.org_id, "50000").await;
    let voucher = json!({"default": "0.7", "by_category": {}});
    let p = programme(&app, &finance, "Budget", "5000000000", voucher, at).await;
    grant(&app, &finance, &p, &tenant, "100000", at).await;
    let tb: TrialBalance = app.get_as("/v1/reports/trial-balance", &finance).await;
    // The 5-billion appropriation is public money promised, not money held.
    assert_eq!(totals_in(&tb.totals, "KRW"), ["50000", "50000", "0", "0"]);
    assert_eq!(totals_in(&tb.memo_totals, "KRW"), ["5000100000", "5000100000", "0", "0"]);
    // Currencies with no memo account in use still total their money.
    assert!(tb.totals.iter().any(|t| t.currency == "USD"));
}

#[tokio::test]
async fn the_demo_market_reconciles_and_sums_up_in_one_line() {
    let app = spawn_app().await;
    let settings = crate::helpers::settings_for(&app.database_url);
    let logins = gpuhour::demo::seed(&settings, &app.pool).await.expect("the demo seeds");
    assert!(logins.seeded);
    let finance = app.token(Role::Finance).await;
    let (_, check) = json(app.get("/v1/reports/funding/reconciliation", &finance).await).await;
    assert_eq!((check["ok"].clone(), check["differences"].clone()), (json!(true), json!([])), "{check:#}");
    assert!(check["orders"].as_u64().is_some_and(|n| n > 100), "{check:#}");

    let (_, report) = json(app.get("/v1/reports/funding?currency=KRW", &finance).await).await;
    let total = &report["currencies"][0]["total"];
    let amount = |k: &str| -> rust_decimal::Decimal { total[k].as_str().expect(k).parse().expect("decimal") };
    let millions = |d: rust_decimal::Decimal| {
        (d / rust_decimal::Decimal::from(1_000_000))
            .round_dp_with_strategy(1, rust_decimal::RoundingStrategy::MidpointAwayFromZero)
    };
    let per = (amount("private") / amount("public"))
        .round_dp_with_strategy(2, rust_decimal::RoundingStrategy::MidpointAwayFromZero);
    let line = gpuhour::demo::funding_summary(&app.pool).await.expect("summary");
    assert_eq!(
        line,
        format!(
            "public {:.1}M KRW, private {:.1}M KRW, {per:.2} private won per public won",
            millions(amount("public")),
            millions(amount("private"))
        )
    );
    println!("demo funding: {line}");
}

#[tokio::test]
async fn the_funding_routes_are_in_the_openapi_document() {
    let app = spawn_app().await;
    let (status, doc) = json(app.client.get(app.url("/openapi.json")).send().await.expect("openapi")).await;
    assert_eq!(status, 200);
    let params: Vec<&str> = doc["paths"]["/v1/reports/funding"]["get"]["parameters"]
        .as_array()
        .expect("parameters")
        .iter()
        .filter_map(|p| p["name"].as_str())
        .collect();
    assert_eq!(params, vec!["from", "to", "programme_id", "currency", "group_by", "format"]);
    assert!(doc["paths"]["/v1/reports/funding/reconciliation"]["get"].is_object());
    for schema in ["FundingReport", "FundingGroup", "FundingFigures", "Reconciliation", "OrgRef", "TrialBalanceRow"] {
        assert!(doc["components"]["schemas"][schema].is_object(), "missing schema {schema}");
    }
    let memo = &doc["components"]["schemas"]["TrialBalance"]["properties"]["memo_totals"];
    assert!(memo.is_object(), "{:#}", doc["components"]["schemas"]["TrialBalance"]);
}

#[tokio::test]
async fn the_funding_report_as_a_spreadsheet_agrees_with_the_json() {
    use calamine::{Data, Reader};
    let app = spawn_app_with(|s| s.fee_rate = "0.05".parse().expect("rate")).await;
    let mk = market(&app).await;
    let json_report = funding(&app, &mk.finance, "?group_by=provider").await;
    let response = app.get("/v1/reports/funding?group_by=provider&format=xlsx", &mk.finance).await;
    assert_eq!(response.status(), 200);
    let bytes = response.bytes().await.expect("bytes").to_vec();
    let mut book: calamine::Xlsx<_> = calamine::open_workbook_from_rs(std::io::Cursor::new(bytes)).expect("xlsx");
    assert_eq!(book.sheet_names(), ["Funding KRW"]);
    let sheet = book.worksheet_range("Funding KRW").expect("sheet");
    let header = sheet.rows().position(|r| r[0] == Data::String("level".into())).expect("column row");
    let columns: Vec<String> = sheet.rows().nth(header).expect("columns").iter().map(|c| c.to_string()).collect();
    let at = |name: &str| columns.iter().position(|c| c == name).expect(name);
    let total = sheet.rows().find(|r| r[0] == Data::String("total".into())).expect("total row");
    let krw = &json_report["currencies"][0]["total"];
    for figure in ["subtotal", "public", "private", "fees"] {
        let expected: f64 = krw[figure].as_str().expect(figure).parse().expect("number");
        assert_eq!(total[at(figure)], Data::Float(expected), "{figure}");
    }
    let providers = sheet.rows().skip(header + 1).filter(|r| r[0] == Data::Float(1.0)).count();
    assert_eq!(providers, json_report["currencies"][0]["groups"].as_array().expect("groups").len());
}
