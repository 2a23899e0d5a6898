//! Energy and carbon (issue 12 item 6): declared accelerators and power, grid
//! intensity per region, the exact estimates of quotes, orders and the
//! programme report, and search by energy and by price per TFLOPS.

use chrono::{DateTime, Duration, Utc};
use gpuhour::auth::Role;
use serde_json::{Value, json};

use crate::helpers::{TestApp, expect_problem, json, next_hour, spawn_app, verify_is_clean};
use crate::market::{deposit, order_body, set_clock};
use crate::subsidy::{grant, programme, report, with_grant};

fn listing_body(from: DateTime<Utc>, price: &str, region: &str, declared: Value) -> Value {
    let mut body = json!({
        "gpu_model": "H100-SXM5-80GB", "gpu_memory_gb": 80, "gpus": 8, "region": region,
        "price_per_gpu_hour": price, "currency": "KRW",
        "available_from": from, "available_until": from + Duration::hours(48),
    });
    if let (Some(b), Some(d)) = (body.as_object_mut(), declared.as_object()) {
        b.extend(d.clone());
    }
    body
}

async fn declared_listing(app: &TestApp, provider: &str, from: DateTime<Utc>, price: &str, declared: Value) -> Value {
    let (status, l) =
        json(app.post("/v1/listings", provider, &listing_body(from, price, "kr-seoul-1", declared), None).await).await;
    assert_eq!(status, 201, "{l:#}");
    l
}

async fn put_intensity(app: &TestApp, token: &str, region: &str, g: &str) -> reqwest::Response {
    app.client
        .put(app.url(&format!("/v1/grid-intensities/{region}")))
        .bearer_auth(token)
        .json(&json!({"g_co2e_per_kwh": g}))
        .send()
        .await
        .expect("request")
}

fn h100() -> Value {
    json!({"accelerator": {"kind": "gpu", "vendor": "NVIDIA", "model": "H100 SXM5"},
        "board_power_w": 700, "pue": "1.25", "performance_tflops": "989.5"})
}

#[tokio::test]
async fn declared_figures_give_an_orders_exact_kwh_and_co2e() {
    let app = spawn_app().await;
    let finance = app.token(Role::Finance).await;
    let provider = app.caller(Role::Provider).await;
    let start = next_hour(&app, &finance).await;

    let (status, set) = json(put_intensity(&app, &finance, "kr-seoul-1", "450").await).await;
    assert_eq!(status, 200, "{set:#}");
    assert_eq!((set["region"].as_str(), set["g_co2e_per_kwh"].as_str()), (Some("kr-seoul-1"), Some("450")));
    expect_problem(put_intensity(&app, &provider.token, "kr-seoul-1", "1").await, 403, "forbidden").await;
    expect_problem(put_intensity(&app, &finance, "kr-seoul-1", "-1").await, 422, "validation_failed").await;
    expect_problem(put_intensity(&app, &finance, "kr%01seoul", "1").await, 422, "validation_failed").await;
    let (_, all) = json(app.get("/v1/grid-intensities", &provider.token).await).await;
    assert_eq!(all["data"].as_array().map(Vec::len), Some(1));
    assert_eq!(all["data"][0]["g_co2e_per_kwh"], "450");

    let l = declared_listing(&app, &provider.token, start, "1000", h100()).await;
    assert_eq!(l["accelerator"], json!({"kind": "gpu", "vendor": "NVIDIA", "model": "H100 SXM5"}));
    assert_eq!((l["board_power_w"].as_i64(), l["pue"].as_str()), (Some(700), Some("1.25")));
    assert_eq!((l["performance_tflops"].as_str(), l["kwh_per_gpu_hour"].as_str()), (Some("989.5"), Some("0.875")));

    // 8 GPUs × 10 h × 700 W × 1.25 = 70 kWh; × 450 g/kWh = 31.5 kg.
    let p = programme(&app, &finance, "100000000", start).await;
    let tenant = app.tenant("sme").await;
    deposit(&app, &finance, tenant.org_id, "1000000").await;
    let g = grant(&app, &finance, &p, &tenant, "1000000", start).await;
    let body = with_grant(order_body(&l, 8, start, 10), &g);
    let (status, quote) = json(app.post("/v1/quotes", &tenant.token, &body, None).await).await;
    assert_eq!(status, 200, "{quote:#}");
    assert_eq!((quote["energy_kwh"].as_str(), quote["co2e_kg"].as_str()), (Some("70"), Some("31.5")));
    let (status, order) = json(app.post("/v1/orders", &tenant.token, &body, None).await).await;
    assert_eq!(status, 201, "{order:#}");
    assert_eq!((order["energy_kwh"].as_str(), order["co2e_kg"].as_str()), (Some("70"), Some("31.5")));
    let (_, again) =
        json(app.get(&format!("/v1/orders/{}", order["id"].as_str().expect("id")), &tenant.token).await).await;
    assert_eq!((again["energy_kwh"].as_str(), again["co2e_kg"].as_str()), (Some("70"), Some("31.5")));

    // The programme report: 80,000 won for 70 kWh is 1,142.857… won per kWh.
    let r = report(&app, &finance, &p).await;
    assert_eq!(
        (r.energy_kwh.as_deref(), r.co2e_kg.as_deref(), r.krw_per_kwh.as_deref()),
        (Some("70"), Some("31.5"), Some("1142.86"))
    );

    // Nothing declared: no estimate. A region without an intensity: kWh, no carbon.
    let plain = declared_listing(&app, &provider.token, start, "1000", json!({})).await;
    assert_eq!((plain["accelerator"].clone(), plain["kwh_per_gpu_hour"].clone()), (Value::Null, Value::Null));
    let (_, q) = json(app.post("/v1/quotes", &tenant.token, &order_body(&plain, 1, start, 1), None).await).await;
    assert_eq!((q["energy_kwh"].clone(), q["co2e_kg"].clone()), (Value::Null, Value::Null));
    let busan = listing_body(start, "1000", "kr-busan-1", json!({"board_power_w": 150, "pue": "1.3"}));
    let (_, busan) = json(app.post("/v1/listings", &provider.token, &busan, None).await).await;
    let (_, q) = json(app.post("/v1/quotes", &tenant.token, &order_body(&busan, 2, start, 3), None).await).await;
    assert_eq!((q["energy_kwh"].as_str(), q["co2e_kg"].clone()), (Some("1.17"), Value::Null));

    // Once the provider reports usage, the metered energy replaces the
    // estimate: 2 h at 5,000.5 Wh = 10.001 kWh, its carbon at the 450 g/kWh
    // the estimate was made with: 4.50045 kg, shown half-even as 4.5004.
    set_clock(&app, &finance, start + Duration::hours(2)).await;
    let order_id = order["id"].as_str().expect("id");
    let metered = json!({"intervals": (0..2).map(|h| json!({
        "start": start + Duration::hours(h), "end": start + Duration::hours(h + 1), "gpus_in_use": 8,
        "utilisation": "0.9", "memory_used_gb": "70", "energy_wh": "5000.5"})).collect::<Vec<_>>()});
    let (status, _) =
        json(app.post(&format!("/v1/orders/{order_id}/usage"), &provider.token, &metered, None).await).await;
    assert_eq!(status, 200);
    let (_, now_metered) = json(app.get(&format!("/v1/orders/{order_id}"), &tenant.token).await).await;
    assert_eq!(
        (now_metered["energy_kwh"].as_str(), now_metered["energy_source"].as_str(), now_metered["co2e_kg"].as_str()),
        (Some("10.001"), Some("metered"), Some("4.5004"))
    );
    assert_eq!(again["energy_source"], "estimated");
    // The report takes the metered figure for that order: 80,000 won ÷ 10.001 kWh.
    let r = report(&app, &finance, &p).await;
    assert_eq!(
        (r.energy_kwh.as_deref(), r.co2e_kg.as_deref(), r.krw_per_kwh.as_deref()),
        (Some("10.001"), Some("4.5004"), Some("7999.2"))
    );

    verify_is_clean(&app, &finance).await;
}

#[tokio::test]
async fn invalid_declarations_are_refused_and_nothing_is_written() {
    let app = spawn_app().await;
    let finance = app.token(Role::Finance).await;
    let provider = app.caller(Role::Provider).await;
    let start = next_hour(&app, &finance).await;
    let bad = json!({"accelerator": {"kind": "tpu", "vendor": "Google", "model": "v5e"},
        "board_power_w": -5, "pue": "0.9", "performance_tflops": "0"});
    let problem = expect_problem(
        app.post("/v1/listings", &provider.token, &listing_body(start, "1000", "kr-seoul-1", bad), None).await,
        422,
        "validation_failed",
    )
    .await;
    let fields: Vec<&str> =
        problem["errors"].as_array().expect("errors").iter().filter_map(|e| e["field"].as_str()).collect();
    assert_eq!(fields, vec!["accelerator.kind", "board_power_w", "pue", "performance_tflops"]);
    assert_eq!(app.count("SELECT count(*) AS n FROM listings").await, 0);
    // A rebellions NPU is a valid kind.
    let npu = json!({"accelerator": {"kind": "npu", "vendor": "Rebellions", "model": "ATOM"}, "board_power_w": 130});
    let l = declared_listing(&app, &provider.token, start, "500", npu).await;
    assert_eq!(l["accelerator"]["kind"], "npu");
    assert_eq!((l["pue"].clone(), l["kwh_per_gpu_hour"].as_str()), (Value::Null, Some("0.13")));
}

/// Every id a search gives, page by page, and the number of pages.
async fn walk(app: &TestApp, token: &str, sort: &str, limit: usize) -> (Vec<String>, usize) {
    let mut seen = Vec::new();
    let mut pages = 0;
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            None => format!("/v1/listings?sort={sort}&limit={limit}"),
            Some(c) => format!("/v1/listings?sort={sort}&limit={limit}&cursor={c}"),
        };
        let (status, page) = json(app.get(&path, token).await).await;
        assert_eq!(status, 200, "{page:#}");
        pages += 1;
        seen.extend(page["data"].as_array().expect("data").iter().map(|l| l["id"].as_str().expect("id").to_string()));
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    (seen, pages)
}

#[tokio::test]
async fn search_sorts_by_energy_and_price_per_tflops_page_by_page() {
    let app = spawn_app().await;
    let finance = app.token(Role::Finance).await;
    let provider = app.caller(Role::Provider).await;
    let start = next_hour(&app, &finance).await;
    let declared = |w: i32, pue: &str, tflops: Option<&str>| {
        let mut d = json!({"board_power_w": w, "pue": pue});
        if let Some(t) = tflops {
            d["performance_tflops"] = json!(t);
        }
        d
    };
    // kWh per GPU-hour and price per TFLOPS of each:
    let a = declared_listing(&app, &provider.token, start, "3000", declared(700, "1.25", Some("989.5"))).await; // 0.875, 3.03…
    let b = declared_listing(&app, &provider.token, start, "1000", declared(350, "1.2", Some("250"))).await; // 0.42, 4
    let c = declared_listing(&app, &provider.token, start, "800", declared(150, "1.3", Some("400"))).await; // 0.195, 2
    let d = declared_listing(&app, &provider.token, start, "500", json!({})).await; // —, —
    let e = declared_listing(&app, &provider.token, start, "2000", declared(700, "1.25", None)).await; // 0.875, —
    let f = declared_listing(&app, &provider.token, start, "400", json!({})).await; // —, —
    let id = |l: &Value| l["id"].as_str().expect("id").to_string();
    let token = &provider.token;

    let by_energy = vec![id(&c), id(&b), id(&a), id(&e), id(&d), id(&f)];
    assert_eq!(walk(&app, token, "energy", 2).await, (by_energy.clone(), 3));
    assert_eq!(walk(&app, token, "energy", 5).await, (by_energy.clone(), 2), "a cursor at an undeclared listing");
    assert_eq!(walk(&app, token, "energy", 3).await, (by_energy, 2), "a cursor inside a tie");
    let by_value = vec![id(&c), id(&a), id(&b), id(&d), id(&e), id(&f)];
    assert_eq!(walk(&app, token, "price_per_tflops", 2).await, (by_value.clone(), 3));
    assert_eq!(walk(&app, token, "price_per_tflops", 4).await, (by_value, 2));
    expect_problem(app.get("/v1/listings?sort=watts", token).await, 422, "validation_failed").await;
    // A forged cursor never reaches SQL.
    use base64::Engine;
    let forged = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(format!("[\"1); DROP\", \"{}\"]", uuid::Uuid::now_v7()));
    let problem = expect_problem(
        app.get(&format!("/v1/listings?sort=energy&cursor={forged}"), token).await,
        422,
        "validation_failed",
    )
    .await;
    assert_eq!(problem["errors"][0]["field"], "cursor");
}
