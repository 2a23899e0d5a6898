//! The provider's listings: its own listings and a form to create one
//! (`/listings`), one listing with its utilisation by hour, revenue, orders
//! and outages (`/listings/{id}`), and the forms that change, pause, resume
//! and close a listing and report an outage — each through the same domain
//! function, audit record and idempotency as the API's
//! (`POST /v1/listings`, `PATCH /v1/listings/{id}`, `POST /v1/listings/{id}/close`,
//! `POST /v1/listings/{id}/outages`).

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, get, post, web};
use chrono::{DateTime, TimeDelta, Timelike, Utc};
use maud::{Markup, html};
use serde::Deserialize;
use uuid::Uuid;

use super::chart;
use super::error::ConsoleError;
use super::form::{ConsoleForm, KeyForm, problem_box, refused};
use super::i18n::Lang;
use super::layout::{self, page_with_status, time, time_input};
use super::money::{format_money, format_money_str, format_unit_price};
use super::session::Viewer;
use crate::auth::Role;
use crate::http::{ApiError, FieldError};
use crate::market::energy::Accelerator;
use crate::market::listings::{self, ListingRow, ListingStatus};
use crate::market::revenue::{self, OutageCredits};
use crate::market::routes::{
    ListingChange, ListingView, NewListing, NewOutage, OrderListQuery, change_own_listing, close_own_listing,
    insert_listing, listing_view, new_listing_row, orders_page, record_outage,
};
use crate::money::Currency;
use crate::state::AppState;

/// Listings per page of the list.
const PAGE: i64 = 25;
/// Hours the utilisation chart shows at a time (31 days, as the API's availability).
const CHART_HOURS: i64 = 744;
/// Outage reports shown on a listing's page.
const OUTAGES_SHOWN: i64 = 50;

fn provider_only(viewer: &Viewer) -> Result<(), ConsoleError> {
    viewer.principal.require(&[Role::Provider]).map_err(|e| ConsoleError::api(viewer.lang, e))
}

fn given(raw: &str) -> Option<&str> {
    let raw = raw.trim();
    (!raw.is_empty()).then_some(raw)
}

fn status_label(status: ListingStatus, lang: Lang) -> &'static str {
    match status {
        ListingStatus::Active => lang.tr("On sale", "판매 중"),
        ListingStatus::Paused => lang.tr("Paused", "일시 중지"),
        ListingStatus::Closed => lang.tr("Closed", "종료됨"),
    }
}

fn status_badge(status: ListingStatus, lang: Lang) -> Markup {
    html! { span class={ "status status-" (status) } { (status_label(status, lang)) } }
}

fn form_key(raw: &str) -> Option<String> {
    Some(raw.to_string()).filter(|k| !k.is_empty() && k.len() <= 255)
}

/// The create form's fields, as typed: every one text, so a wrong value comes
/// back to the form with its problem instead of failing the request.
#[derive(Debug, Default, Deserialize)]
pub struct ListingForm {
    #[serde(default)]
    idempotency_key: String,
    #[serde(default)]
    gpu_model: String,
    #[serde(default)]
    gpu_memory_gb: String,
    #[serde(default)]
    gpus: String,
    #[serde(default)]
    region: String,
    #[serde(default)]
    interconnect: String,
    #[serde(default)]
    price_per_gpu_hour: String,
    #[serde(default)]
    currency: String,
    #[serde(default)]
    available_from: String,
    #[serde(default)]
    available_until: String,
    #[serde(default)]
    min_hours: String,
    #[serde(default)]
    status: String,
    /// `gpu` or `npu`; empty: no accelerator declared.
    #[serde(default)]
    accelerator_kind: String,
    #[serde(default)]
    accelerator_vendor: String,
    #[serde(default)]
    accelerator_model: String,
    #[serde(default)]
    board_power_w: String,
    #[serde(default)]
    pue: String,
    #[serde(default)]
    performance_tflops: String,
}

/// Collects a form field's problem in `errors`.
struct Fields<'a> {
    lang: Lang,
    errors: &'a mut Vec<FieldError>,
}

impl Fields<'_> {
    fn number(&mut self, field: &str, raw: &str) -> Option<i32> {
        match given(raw).map(str::parse::<i32>) {
            Some(Ok(n)) => Some(n),
            Some(Err(_)) => {
                self.errors.push(FieldError::new(field, self.lang.tr("must be a whole number", "정수여야 합니다")));
                None
            }
            None => None,
        }
    }

    fn required_number(&mut self, field: &str, raw: &str) -> i32 {
        if given(raw).is_none() {
            self.errors.push(FieldError::new(field, self.lang.tr("is required", "필수 항목입니다")));
        }
        self.number(field, raw).unwrap_or(0)
    }

    fn instant(&mut self, field: &str, raw: &str) -> Option<DateTime<Utc>> {
        let raw = given(raw)?;
        let parsed = layout::parse_time_input(raw);
        if parsed.is_none() {
            self.errors.push(FieldError::new(field, self.lang.tr("is not a date and time", "날짜와 시간이 아닙니다")));
        }
        parsed
    }

    fn required_instant(&mut self, field: &str, raw: &str) -> DateTime<Utc> {
        if given(raw).is_none() {
            self.errors.push(FieldError::new(field, self.lang.tr("is required", "필수 항목입니다")));
        }
        self.instant(field, raw).unwrap_or_default()
    }

    fn status(&mut self, raw: &str) -> Option<ListingStatus> {
        let status = given(raw)?.parse::<ListingStatus>().ok();
        if status.is_none() {
            self.errors.push(FieldError::new("status", self.lang.tr("is not a status", "상태가 아닙니다")));
        }
        status
    }
}

impl ListingForm {
    /// The API's new listing, or what is wrong with the form's fields (their
    /// values are checked by the API's own rules after this).
    fn new_listing(&self, lang: Lang) -> Result<NewListing, ApiError> {
        let mut errors = Vec::new();
        let mut f = Fields { lang, errors: &mut errors };
        let gpu_memory_gb = f.required_number("gpu_memory_gb", &self.gpu_memory_gb);
        let gpus = f.required_number("gpus", &self.gpus);
        let min_hours = f.number("min_hours", &self.min_hours);
        let available_from = f.required_instant("available_from", &self.available_from);
        let available_until = f.required_instant("available_until", &self.available_until);
        let status = f.status(&self.status);
        let board_power_w = f.number("board_power_w", &self.board_power_w);
        let accelerator = given(&self.accelerator_kind).map(|kind| Accelerator {
            kind: kind.to_string(),
            vendor: self.accelerator_vendor.trim().to_string(),
            model: self.accelerator_model.trim().to_string(),
        });
        let currency = match self.currency.parse::<Currency>() {
            Ok(c) => Some(c),
            Err(e) => {
                errors.push(FieldError::new("currency", e.to_string()));
                None
            }
        };
        let Some(currency) = currency.filter(|_| errors.is_empty()) else {
            return Err(ApiError::validation(errors));
        };
        Ok(NewListing {
            gpu_model: self.gpu_model.clone(),
            gpu_memory_gb,
            gpus,
            region: self.region.clone(),
            interconnect: given(&self.interconnect).map(str::to_string),
            price_per_gpu_hour: self.price_per_gpu_hour.trim().to_string(),
            currency,
            available_from,
            available_until,
            min_hours,
            status,
            accelerator,
            board_power_w,
            pue: given(&self.pue).map(str::to_string),
            performance_tflops: given(&self.performance_tflops).map(str::to_string),
        })
    }

    /// An empty form: a week from the next hour, in won.
    fn blank(now: DateTime<Utc>) -> ListingForm {
        let next_hour = this_hour(now) + TimeDelta::hours(1);
        ListingForm {
            idempotency_key: Uuid::new_v4().to_string(),
            currency: Currency::Krw.code().into(),
            available_from: time_input(next_hour),
            available_until: time_input(next_hour + TimeDelta::days(7)),
            min_hours: "1".into(),
            status: "active".into(),
            ..ListingForm::default()
        }
    }
}

fn this_hour(now: DateTime<Utc>) -> DateTime<Utc> {
    now.with_minute(0).and_then(|t| t.with_second(0)).and_then(|t| t.with_nanosecond(0)).unwrap_or(now)
}

#[derive(Debug, Default, Deserialize)]
pub struct ListQuery {
    #[serde(default)]
    cursor: String,
}

/// `GET /listings`: the provider's own listings, newest first, and the form for a new one.
#[get("/listings")]
pub async fn list(
    viewer: Viewer,
    state: web::Data<AppState>,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, ConsoleError> {
    provider_only(&viewer)?;
    let lang = viewer.lang;
    let mut conn = state.pool.get().await.map_err(|e| ConsoleError::api(lang, e))?;
    let now = state.clock.now(&mut conn).await.map_err(|e| ConsoleError::api(lang, e))?;
    let form = ListingForm::blank(now);
    listings_page(&viewer, &state, &query.cursor, &form, &[], StatusCode::OK).await
}

async fn listings_page(
    viewer: &Viewer,
    state: &AppState,
    cursor: &str,
    form: &ListingForm,
    problems: &[String],
    status: StatusCode,
) -> Result<HttpResponse, ConsoleError> {
    let lang = viewer.lang;
    let before = match given(cursor) {
        None => None,
        Some(raw) => Some(raw.parse::<Uuid>().map_err(|_| ConsoleError::not_found(lang))?),
    };
    let mut conn = state.pool.get().await.map_err(|e| ConsoleError::api(lang, e))?;
    let mut rows = listings::of_provider(&mut conn, viewer.principal.org_id, before, PAGE + 1)
        .await
        .map_err(|e| ConsoleError::api(lang, e))?;
    let next = (rows.len() as i64 > PAGE)
        .then(|| rows.truncate(PAGE as usize))
        .and_then(|()| rows.last().map(|r| r.listing.id));
    let body = html! {
        @if rows.is_empty() && before.is_none() {
            p.muted { (lang.tr("No listings yet: create the first one below.", "아직 등록한 상품이 없습니다. 아래에서 첫 상품을 등록하세요.")) }
        } @else {
            div.table-wrap { table {
                thead { tr {
                    th scope="col" { (lang.tr("GPU model", "GPU 모델")) }
                    th scope="col" class="num" { (lang.tr("GPUs", "GPU 수")) }
                    th scope="col" { (lang.tr("Region", "지역")) }
                    th scope="col" class="num" { (lang.tr("Per GPU-hour", "GPU·시간당")) }
                    th scope="col" { (lang.tr("Window (Seoul time)", "판매 기간 (서울 시간)")) }
                    th scope="col" { (lang.tr("Status", "상태")) }
                    th scope="col" class="num" { (lang.tr("Reserved", "예약률")) }
                } }
                tbody { @for own in &rows { @let l = &own.listing; tr {
                    td { a href={ "/listings/" (l.id) } { (l.gpu_model) } }
                    td.num { (l.gpus) }
                    td { (l.region) }
                    td.num { (format_unit_price(l.price_per_gpu_hour, l.currency, lang)) }
                    td { (time(l.available_from)) " – " (time(l.available_until)) }
                    td { (status_badge(l.status, lang)) }
                    td.num { @match listings::reserved_per_mille(l, own.reserved_gpu_hours) {
                        Some(p) => { (p / 10) "." (p % 10) "%" }
                        None => { "–" }
                    } }
                } } }
            } }
            @if let Some(last) = next {
                p.pager { a href={ "/listings?cursor=" (last) } rel="next" { (lang.tr("Older listings →", "이전 상품 →")) } }
            }
        }
        h2 #new { (lang.tr("New listing", "새 상품 등록")) }
        (problem_box(problems))
        (create_form(viewer, form))
    };
    Ok(page_with_status(viewer, status, lang.tr("Listings", "상품"), body))
}

fn create_form(viewer: &Viewer, f: &ListingForm) -> Markup {
    let lang = viewer.lang;
    html! {
        form.quote method="post" action="/listings" {
            input type="hidden" name="csrf" value=(viewer.csrf);
            input type="hidden" name="idempotency_key" value=(f.idempotency_key);
            label { (lang.tr("GPU model", "GPU 모델")) input #gpu_model type="text" name="gpu_model" required maxlength="100" value=(f.gpu_model) placeholder="H100-SXM5-80GB"; }
            label { (lang.tr("Memory per GPU (GB)", "GPU당 메모리 (GB)")) input type="number" min="1" name="gpu_memory_gb" required value=(f.gpu_memory_gb); }
            label { (lang.tr("GPUs", "GPU 수")) input type="number" min="1" name="gpus" required value=(f.gpus); }
            label { (lang.tr("Region", "지역")) input type="text" name="region" required maxlength="100" value=(f.region) placeholder="kr-seoul-1"; }
            label { (lang.tr("Interconnect (optional)", "인터커넥트 (선택)")) input type="text" name="interconnect" maxlength="100" value=(f.interconnect) placeholder="NVLink"; }
            label { (lang.tr("Price per GPU-hour", "GPU·시간당 가격")) input type="text" inputmode="decimal" name="price_per_gpu_hour" required value=(f.price_per_gpu_hour); }
            label { (lang.tr("Currency", "통화"))
                select name="currency" {
                    @for c in Currency::ALL { option value=(c.code()) selected[f.currency == c.code()] { (c.code()) } }
                }
            }
            label { (lang.tr("From (Seoul time, whole hour)", "시작 (서울 시간, 정시)")) input type="datetime-local" step="3600" name="available_from" required value=(f.available_from); }
            label { (lang.tr("Until (Seoul time, whole hour)", "종료 (서울 시간, 정시)")) input type="datetime-local" step="3600" name="available_until" required value=(f.available_until); }
            label { (lang.tr("Fewest hours per order", "주문당 최소 시간")) input type="number" min="1" name="min_hours" value=(f.min_hours); }
            label { (lang.tr("Status", "상태"))
                select name="status" {
                    @for s in [ListingStatus::Active, ListingStatus::Paused] {
                        option value=(s) selected[f.status == s.as_str()] { (status_label(s, lang)) }
                    }
                }
            }
            fieldset {
                legend { (lang.tr("Energy (optional: orders then carry kWh and CO2e)", "에너지 (선택: 주문에 kWh와 CO2e가 표시됩니다)")) }
                label { (lang.tr("Accelerator", "가속기"))
                    select name="accelerator_kind" {
                        option value="" selected[f.accelerator_kind.is_empty()] { (lang.tr("Not declared", "미신고")) }
                        option value="gpu" selected[f.accelerator_kind == "gpu"] { "GPU" }
                        option value="npu" selected[f.accelerator_kind == "npu"] { "NPU" }
                    }
                }
                label { (lang.tr("Vendor", "제조사")) input type="text" name="accelerator_vendor" value=(f.accelerator_vendor) maxlength="100" placeholder="NVIDIA, Rebellions, FuriosaAI"; }
                label { (lang.tr("Model", "모델")) input type="text" name="accelerator_model" value=(f.accelerator_model) maxlength="100" placeholder="H100 SXM5"; }
                label { (lang.tr("Board power per accelerator (W)", "가속기당 보드 전력 (W)")) input type="number" min="1" name="board_power_w" value=(f.board_power_w); }
                label { (lang.tr("Data centre PUE", "데이터센터 PUE")) input type="text" inputmode="decimal" name="pue" value=(f.pue) placeholder="1.3"; }
                label { (lang.tr("TFLOPS (FP16/BF16) per accelerator", "가속기당 TFLOPS (FP16/BF16)")) input type="text" inputmode="decimal" name="performance_tflops" value=(f.performance_tflops); }
            }
            button type="submit" { (lang.tr("Create listing", "상품 등록")) }
        }
    }
}

/// The API's answer to a write, read back as the view it serialised.
fn answer_view<T: serde::de::DeserializeOwned>(lang: Lang, body: &str) -> Result<T, ConsoleError> {
    serde_json::from_str(body).map_err(|e| ConsoleError::internal(lang, e))
}

/// `POST /listings`: creates a listing by the rules of `POST /v1/listings`;
/// a refused one comes back to the form with its problems and values.
#[post("/listings")]
pub async fn create(state: web::Data<AppState>, form: ConsoleForm<ListingForm>) -> Result<HttpResponse, ConsoleError> {
    let viewer = form.viewer.clone();
    let lang = viewer.lang;
    provider_only(&viewer)?;
    let checked = form.value.new_listing(lang).and_then(|new| new_listing_row(&viewer.principal, &new));
    let row = match checked {
        Ok(row) => row,
        Err(e) => {
            let problems = refused(lang, e)?;
            return listings_page(&viewer, &state, "", &form.value, &problems, StatusCode::UNPROCESSABLE_ENTITY).await;
        }
    };
    let op = form.write_op(form_key(&form.value.idempotency_key))?;
    let clock = op.state().clock;
    let written = op
        .run_answer(StatusCode::CREATED, async move |conn| {
            let now = clock.now(conn).await?;
            Ok(listing_view(insert_listing(conn, row, now).await?, None))
        })
        .await;
    match written {
        Ok(answer) => {
            let view: ListingView = answer_view(lang, &answer.body)?;
            Ok(layout::redirect(&format!("/listings/{}?created=1", view.id)))
        }
        Err(e) => {
            let problems = refused(lang, e)?;
            listings_page(&viewer, &state, "", &form.value, &problems, StatusCode::UNPROCESSABLE_ENTITY).await
        }
    }
}

/// The provider's own listing `raw_id`; another's (or none) is not found.
async fn own_listing(state: &AppState, viewer: &Viewer, raw_id: &str) -> Result<ListingRow, ConsoleError> {
    let lang = viewer.lang;
    let id = raw_id.parse::<Uuid>().map_err(|_| ConsoleError::not_found(lang))?;
    let mut conn = state.pool.get().await.map_err(|e| ConsoleError::api(lang, e))?;
    listings::find(&mut conn, id)
        .await
        .map_err(|e| ConsoleError::api(lang, e))?
        .filter(|l| l.provider_org_id == viewer.principal.org_id)
        .ok_or_else(|| ConsoleError::not_found(lang))
}

#[derive(Debug, Default, Deserialize)]
pub struct ShowQuery {
    /// First hour of the chart (RFC 3339); a week back (or the window's start)
    /// when absent or not an instant. Text, so a mangled link still shows the page.
    #[serde(default)]
    from: String,
    #[serde(default)]
    cursor: String,
    #[serde(default)]
    created: Option<String>,
    #[serde(default)]
    changed: Option<String>,
    #[serde(default)]
    closed: Option<String>,
    #[serde(default)]
    outage: Option<String>,
}

/// Where a listing page's problems go: the form they belong to.
#[derive(Default)]
struct Problems {
    change: Vec<String>,
    outage: Vec<String>,
}

/// `GET /listings/{id}`: one of the provider's listings.
#[get("/listings/{id}")]
pub async fn show(
    viewer: Viewer,
    state: web::Data<AppState>,
    id: web::Path<String>,
    query: web::Query<ShowQuery>,
) -> Result<HttpResponse, ConsoleError> {
    provider_only(&viewer)?;
    let listing = own_listing(&state, &viewer, &id).await?;
    listing_page(&viewer, &state, listing, &query, Problems::default(), StatusCode::OK).await
}

async fn listing_page(
    viewer: &Viewer,
    state: &AppState,
    listing: ListingRow,
    query: &ShowQuery,
    problems: Problems,
    status: StatusCode,
) -> Result<HttpResponse, ConsoleError> {
    let lang = viewer.lang;
    let fail = |e: ApiError| ConsoleError::api(lang, e);
    let mut conn = state.pool.get().await.map_err(|e| fail(e.into()))?;
    let now = state.clock.now(&mut conn).await.map_err(|e| fail(e.into()))?;
    let currency: Currency = listing.currency;

    // Utilisation: a month of hours at a time; by default from a week ago (or
    // the window's start), so what has just been used shows with what is to come.
    let default_from = listing.available_from.max(this_hour(now) - TimeDelta::days(7));
    let asked = query.from.parse::<DateTime<Utc>>().ok();
    let from = this_hour(asked.unwrap_or(default_from)).max(listing.available_from).min(listing.available_until);
    let to = listing.available_until.min(from + TimeDelta::hours(CHART_HOURS));
    let reserved: std::collections::HashMap<DateTime<Utc>, i32> =
        listings::reserved_by_hour(&mut conn, listing.id, from, to)
            .await
            .map_err(|e| fail(e.into()))?
            .into_iter()
            .collect();
    let mut hours = Vec::new();
    let mut hour = from;
    while hour < to {
        let r = reserved.get(&hour).copied().unwrap_or(0);
        hours.push(chart::Hour { at: hour, reserved: r, free: listing.gpus - r });
        hour += TimeDelta::hours(1);
    }
    let earlier =
        (from > listing.available_from).then(|| (from - TimeDelta::hours(CHART_HOURS)).max(listing.available_from));
    let later = (to < listing.available_until).then_some(to);

    let (revenue, order_ids) =
        revenue::listing_revenue(&mut conn, crate::auth::OrgId(listing.provider_org_id), listing.id, now)
            .await
            .map_err(|e| fail(e.into()))?;
    let orders = orders_page(
        &mut conn,
        &viewer.principal,
        OrderListQuery {
            status: None,
            from: None,
            to: None,
            listing_id: Some(listing.id),
            limit: Some(PAGE),
            cursor: given(&query.cursor).map(str::to_string),
        },
        now,
    )
    .await
    .map_err(fail)?;
    let outages = revenue::outages_of(&mut conn, listing.id, OUTAGES_SHOWN).await.map_err(|e| fail(e.into()))?;
    let credits = revenue::outage_credits(&mut conn, &order_ids).await.map_err(|e| fail(e.into()))?;
    let money = |amount: rust_decimal::Decimal| format_money(amount, currency, lang);
    let id = listing.id;
    let open = listing.status != ListingStatus::Closed;
    let title = format!("{} · {}", listing.gpu_model, listing.region);
    let chart_link = |at: DateTime<Utc>| -> String {
        let at: String = form_urlencoded::byte_serialize(at.to_rfc3339().as_bytes()).collect();
        format!("/listings/{id}?from={at}#utilisation")
    };
    let body = html! {
        @if query.created.is_some() { div.notice role="status" { p { (lang.tr("The listing is created.", "상품이 등록되었습니다.")) } } }
        @if query.changed.is_some() { div.notice role="status" { p { (lang.tr("The listing is changed.", "상품이 변경되었습니다.")) } } }
        @if query.closed.is_some() { div.notice role="status" { p { (lang.tr("The listing is closed.", "상품 판매를 종료했습니다.")) } } }
        @if query.outage.is_some() { div.notice role="status" { p { (lang.tr("The outage is recorded and the orders it hit are credited.", "장애가 기록되었고 영향을 받은 주문에 보상했습니다.")) } } }
        dl.figures {
            div { dt { (lang.tr("Status", "상태")) } dd { (status_badge(listing.status, lang)) } }
            div { dt { (lang.tr("GPUs", "GPU")) } dd { (listing.gpus) " × " (listing.gpu_model) } }
            div { dt { (lang.tr("Memory per GPU", "GPU당 메모리")) } dd { (listing.gpu_memory_gb) " GB" } }
            div { dt { (lang.tr("Per GPU-hour", "GPU·시간당")) } dd { (format_unit_price(listing.price_per_gpu_hour, listing.currency, lang)) } }
            div { dt { (lang.tr("Window (Seoul time)", "판매 기간 (서울 시간)")) } dd { (time(listing.available_from)) " – " (time(listing.available_until)) } }
            div { dt { (lang.tr("Fewest hours per order", "주문당 최소 시간")) } dd { (listing.min_hours) } }
        }

        h2 #utilisation { (lang.tr("Utilisation", "사용률")) " · " (time(from)) " – " (time(to)) }
        @if hours.is_empty() { p.muted { (lang.tr("No hours in this window.", "이 기간에는 시간이 없습니다.")) } }
        @else { (chart::availability(&hours, listing.gpus, lang)) }
        p.pager {
            @if let Some(at) = earlier { a href=(chart_link(at)) rel="prev" { (lang.tr("← Earlier", "← 이전")) } }
            @if let Some(at) = later { a href=(chart_link(at)) rel="next" { (lang.tr("Later →", "다음 →")) } }
        }

        h2 { (lang.tr("Revenue", "매출")) }
        dl.figures {
            div { dt { (lang.tr("Gross (tenants and programmes)", "총액 (이용자와 지원 사업)")) } dd.gross { (money(revenue.gross)) } }
            div { dt { (lang.tr("Platform fees", "플랫폼 수수료")) } dd.fees { (money(revenue.fees)) } }
            div { dt { (lang.tr("Net to you", "순액 (정산 대상)")) } dd.net { (money(revenue.net)) } }
        }
        p.muted { (lang.tr("As charged: settled hours, less outage credits, plus hours still reserved.", "청구 기준: 정산된 시간에서 장애 보상을 빼고, 아직 예약 중인 시간을 더한 금액입니다.")) }

        h2 { (lang.tr("Orders", "주문")) }
        @if orders.data.is_empty() { p.muted { (lang.tr("No orders yet.", "아직 주문이 없습니다.")) } }
        @else {
            div.table-wrap { table {
                thead { tr {
                    th scope="col" { (lang.tr("Placed", "주문 시각")) }
                    th scope="col" class="num" { (lang.tr("GPUs", "GPU")) }
                    th scope="col" { (lang.tr("Hours (Seoul time)", "사용 시간 (서울 시간)")) }
                    th scope="col" { (lang.tr("Status", "상태")) }
                    th scope="col" class="num" { (lang.tr("Charged", "청구액")) }
                    th scope="col" class="num" { (lang.tr("GPU-hours credited", "보상 GPU·시간")) }
                } }
                tbody { @for o in &orders.data { tr {
                    td { (time(o.created_at)) }
                    td.num { (o.gpus) }
                    td { (time(o.start)) " – " (time(o.end)) }
                    td { span class={ "status status-" (o.status) } { (super::orders::status_label(o.status, lang)) } }
                    td.num { (format_money_str(&o.charged.subtotal, &o.currency, lang)) }
                    td.num { (o.credited_gpu_hours) }
                } } }
            } }
            @if let Some(next) = &orders.next_cursor {
                @let link: String = form_urlencoded::byte_serialize(next.as_bytes()).collect();
                p.pager { a href={ "/listings/" (id) "?cursor=" (link) } rel="next" { (lang.tr("Older orders →", "이전 주문 →")) } }
            }
        }

        h2 #outages { (lang.tr("Outages", "장애")) }
        @if outages.is_empty() { p.muted { (lang.tr("No outages reported.", "보고된 장애가 없습니다.")) } }
        @else {
            div.table-wrap { table {
                thead { tr {
                    th scope="col" { (lang.tr("Hours out (Seoul time)", "장애 시간 (서울 시간)")) }
                    th scope="col" class="num" { (lang.tr("GPUs", "GPU")) }
                    th scope="col" class="num" { (lang.tr("Orders credited", "보상 주문")) }
                    th scope="col" class="num" { (lang.tr("To tenants", "이용자 보상")) }
                    th scope="col" class="num" { (lang.tr("To programmes", "지원 사업 환원")) }
                    th scope="col" class="num" { (lang.tr("Fee returned", "수수료 환급")) }
                    th scope="col" class="num" { (lang.tr("Off your earnings", "매출 감소")) }
                } }
                tbody { @for o in &outages {
                    @let c = credits.get(&o.id).cloned().unwrap_or_else(OutageCredits::default);
                    tr.outage {
                        td { (time(o.start_at)) " – " (time(o.end_at)) }
                        td.num { (o.gpus) }
                        td.num { (c.entries.len()) }
                        td.num.to-tenants { (money(c.to_tenants)) }
                        td.num.to-programmes { (money(c.to_programmes)) }
                        td.num.fee-returned { (money(c.fee_returned)) }
                        td.num.loss { @match c.provider_loss() { Ok(loss) => { (money(loss)) } Err(_) => { "–" } } }
                    }
                } }
            } }
        }
        @if !open {
            (problem_box(&problems.change))
            (problem_box(&problems.outage))
        }
        @if open {
            h3 { (lang.tr("Report an outage", "장애 보고")) }
            p.muted { (lang.tr("The GPU-hours lost are credited back to the orders running then, oldest order first, and taken off your payable.", "잃은 GPU·시간은 그 시간에 사용 중이던 주문(먼저 주문한 순)에 보상되고, 정산 예정액에서 차감됩니다.")) }
            (problem_box(&problems.outage))
            form.quote method="post" action={ "/listings/" (id) "/outages" } {
                input type="hidden" name="csrf" value=(viewer.csrf);
                input type="hidden" name="idempotency_key" value=(Uuid::new_v4());
                label { (lang.tr("From (Seoul time, whole hour)", "시작 (서울 시간, 정시)")) input #outage_start type="datetime-local" step="3600" name="start" required value=(time_input(this_hour(now).max(listing.available_from))); }
                label { (lang.tr("Until (Seoul time, whole hour)", "종료 (서울 시간, 정시)")) input #outage_end type="datetime-local" step="3600" name="end" required value=(time_input(this_hour(now).max(listing.available_from) + TimeDelta::hours(1))); }
                label { (lang.tr("GPUs out of service", "사용 불가 GPU 수")) input #outage_gpus type="number" min="1" max=(listing.gpus) name="gpus" required value="1"; }
                button type="submit" { (lang.tr("Report outage", "장애 보고")) }
            }

            h2 #change { (lang.tr("Change", "변경")) }
            (problem_box(&problems.change))
            form.quote method="post" action={ "/listings/" (id) "/change" } {
                input type="hidden" name="csrf" value=(viewer.csrf);
                input type="hidden" name="idempotency_key" value=(Uuid::new_v4());
                label { (lang.tr("Price per GPU-hour (new orders)", "GPU·시간당 가격 (신규 주문부터)")) input type="text" inputmode="decimal" name="price_per_gpu_hour" value=(listing.price_per_gpu_hour.normalize()); }
                label { (lang.tr("GPUs", "GPU 수")) input type="number" min="1" name="gpus" value=(listing.gpus); }
                label { (lang.tr("From (Seoul time, whole hour)", "시작 (서울 시간, 정시)")) input type="datetime-local" step="3600" name="available_from" value=(time_input(listing.available_from)); }
                label { (lang.tr("Until (Seoul time, whole hour)", "종료 (서울 시간, 정시)")) input type="datetime-local" step="3600" name="available_until" value=(time_input(listing.available_until)); }
                label { (lang.tr("Fewest hours per order", "주문당 최소 시간")) input type="number" min="1" name="min_hours" value=(listing.min_hours); }
                button type="submit" { (lang.tr("Save changes", "변경 저장")) }
            }
            p {
                form.inline method="post" action={ "/listings/" (id) "/change" } {
                    input type="hidden" name="csrf" value=(viewer.csrf);
                    input type="hidden" name="idempotency_key" value=(Uuid::new_v4());
                    @if listing.status == ListingStatus::Active {
                        input type="hidden" name="status" value="paused";
                        button.pause type="submit" { (lang.tr("Pause sales", "판매 일시 중지")) }
                    } @else {
                        input type="hidden" name="status" value="active";
                        button.resume type="submit" { (lang.tr("Resume sales", "판매 재개")) }
                    }
                }
            }
            h2 { (lang.tr("Close", "판매 종료")) }
            p { (lang.tr("Closing ends sales for good: the listing takes no new orders and cannot be reopened or changed. Orders already placed stand and are settled, and you can still report outages on them.", "판매를 종료하면 되돌릴 수 없습니다. 새 주문을 받지 않고 다시 열거나 변경할 수 없습니다. 이미 받은 주문은 그대로 유지되어 정산됩니다.")) }
            form method="post" action={ "/listings/" (id) "/close" } {
                input type="hidden" name="csrf" value=(viewer.csrf);
                input type="hidden" name="idempotency_key" value=(Uuid::new_v4());
                button.danger type="submit" { (lang.tr("Close this listing for good", "이 상품 판매 종료")) }
            }
        }
    };
    Ok(page_with_status(viewer, status, &title, body))
}

/// The change form's fields: empty ones stay as they are.
#[derive(Debug, Default, Deserialize)]
pub struct ChangeForm {
    #[serde(default)]
    idempotency_key: String,
    #[serde(default)]
    price_per_gpu_hour: String,
    #[serde(default)]
    gpus: String,
    #[serde(default)]
    available_from: String,
    #[serde(default)]
    available_until: String,
    #[serde(default)]
    min_hours: String,
    #[serde(default)]
    status: String,
}

impl ChangeForm {
    fn change(&self, lang: Lang) -> Result<ListingChange, ApiError> {
        let mut errors = Vec::new();
        let mut f = Fields { lang, errors: &mut errors };
        let gpus = f.number("gpus", &self.gpus);
        let min_hours = f.number("min_hours", &self.min_hours);
        let available_from = f.instant("available_from", &self.available_from);
        let available_until = f.instant("available_until", &self.available_until);
        let status = f.status(&self.status);
        if !errors.is_empty() {
            return Err(ApiError::validation(errors));
        }
        Ok(ListingChange {
            price_per_gpu_hour: given(&self.price_per_gpu_hour).map(str::to_string),
            status,
            available_from,
            available_until,
            gpus,
            min_hours,
        })
    }
}

/// `POST /listings/{id}/change`: price, GPUs, window, minimum hours, or
/// status (pause and resume), by the rules of `PATCH /v1/listings/{id}`.
#[post("/listings/{id}/change")]
pub async fn change(
    state: web::Data<AppState>,
    form: ConsoleForm<ChangeForm>,
    id: web::Path<String>,
) -> Result<HttpResponse, ConsoleError> {
    let viewer = form.viewer.clone();
    let lang = viewer.lang;
    provider_only(&viewer)?;
    let listing = own_listing(&state, &viewer, &id).await?;
    let wanted = match form.value.change(lang) {
        Ok(wanted) => wanted,
        Err(e) => return change_refused(&viewer, &state, listing, e).await,
    };
    let principal = viewer.principal;
    let listing_id = listing.id;
    let op = form.write_op(form_key(&form.value.idempotency_key))?;
    let clock = op.state().clock;
    let written = op
        .run_answer(StatusCode::OK, async move |conn| {
            let now = clock.now(conn).await?;
            Ok(listing_view(change_own_listing(conn, &principal, listing_id, &wanted, now).await?, None))
        })
        .await;
    match written {
        Ok(_) => Ok(layout::redirect(&format!("/listings/{listing_id}?changed=1"))),
        Err(e) => change_refused(&viewer, &state, listing, e).await,
    }
}

async fn change_refused(
    viewer: &Viewer,
    state: &AppState,
    listing: ListingRow,
    e: ApiError,
) -> Result<HttpResponse, ConsoleError> {
    let status = e.status;
    let lines = refused(viewer.lang, e)?;
    listing_page(
        viewer,
        state,
        listing,
        &ShowQuery::default(),
        Problems { change: lines, ..Problems::default() },
        status,
    )
    .await
}

/// `POST /listings/{id}/close`: closes the listing for good, as `POST /v1/listings/{id}/close`.
#[post("/listings/{id}/close")]
pub async fn close(form: ConsoleForm<KeyForm>, id: web::Path<String>) -> Result<HttpResponse, ConsoleError> {
    let viewer = form.viewer.clone();
    let lang = viewer.lang;
    provider_only(&viewer)?;
    let listing_id = id.parse::<Uuid>().map_err(|_| ConsoleError::not_found(lang))?;
    let principal = viewer.principal;
    let op = form.write_op(form_key(&form.value.idempotency_key))?;
    let clock = op.state().clock;
    op.run_answer(StatusCode::OK, async move |conn| {
        let now = clock.now(conn).await?;
        Ok(listing_view(close_own_listing(conn, &principal, listing_id, now).await?, None))
    })
    .await
    .map_err(|e| ConsoleError::api(lang, e))?;
    Ok(layout::redirect(&format!("/listings/{listing_id}?closed=1")))
}

#[derive(Debug, Default, Deserialize)]
pub struct OutageForm {
    #[serde(default)]
    idempotency_key: String,
    #[serde(default)]
    start: String,
    #[serde(default)]
    end: String,
    #[serde(default)]
    gpus: String,
}

/// `POST /listings/{id}/outages`: records an outage and credits the orders it
/// hit, by the rules of `POST /v1/listings/{id}/outages`.
#[post("/listings/{id}/outages")]
pub async fn report_outage(
    state: web::Data<AppState>,
    form: ConsoleForm<OutageForm>,
    id: web::Path<String>,
) -> Result<HttpResponse, ConsoleError> {
    let viewer = form.viewer.clone();
    let lang = viewer.lang;
    provider_only(&viewer)?;
    let listing = own_listing(&state, &viewer, &id).await?;
    let mut errors = Vec::new();
    let mut f = Fields { lang, errors: &mut errors };
    let start = f.required_instant("start", &form.value.start);
    let end = f.required_instant("end", &form.value.end);
    let gpus = f.required_number("gpus", &form.value.gpus);
    let outage = if errors.is_empty() {
        crate::market::routes::check_outage(start, end, gpus).map(|()| NewOutage { start, end, gpus })
    } else {
        Err(ApiError::validation(errors))
    };
    let outage = match outage {
        Ok(outage) => outage,
        Err(e) => return outage_refused(&viewer, &state, listing, e).await,
    };
    let principal = viewer.principal;
    let listing_id = listing.id;
    let op = form.write_op(form_key(&form.value.idempotency_key))?;
    let clock = op.state().clock;
    let written = op
        .run_answer(StatusCode::CREATED, async move |conn| {
            let now = clock.now(conn).await?;
            record_outage(conn, &principal, listing_id, outage, now).await
        })
        .await;
    match written {
        Ok(_) => Ok(layout::redirect(&format!("/listings/{listing_id}?outage=1#outages"))),
        Err(e) => outage_refused(&viewer, &state, listing, e).await,
    }
}

async fn outage_refused(
    viewer: &Viewer,
    state: &AppState,
    listing: ListingRow,
    e: ApiError,
) -> Result<HttpResponse, ConsoleError> {
    let status = e.status;
    let outage = refused(viewer.lang, e)?;
    listing_page(viewer, state, listing, &ShowQuery::default(), Problems { outage, ..Problems::default() }, status)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form() -> ListingForm {
        ListingForm {
            idempotency_key: "k".into(),
            gpu_model: "H100".into(),
            gpu_memory_gb: "80".into(),
            gpus: "8".into(),
            region: "kr-seoul-1".into(),
            interconnect: " ".into(),
            price_per_gpu_hour: " 2500.5 ".into(),
            currency: "KRW".into(),
            available_from: "2026-12-01T09:00".into(),
            available_until: "2026-12-04T09:00".into(),
            min_hours: "".into(),
            status: "paused".into(),
            ..ListingForm::default()
        }
    }

    #[test]
    fn the_form_reads_seoul_times_and_leaves_empty_optional_fields_out() {
        let new = form().new_listing(Lang::En).expect("a listing");
        let from: DateTime<Utc> = "2026-12-01T00:00:00Z".parse().expect("instant");
        assert_eq!((new.available_from, new.available_until), (from, from + TimeDelta::days(3)));
        assert_eq!((new.gpus, new.gpu_memory_gb, new.min_hours), (8, 80, None));
        assert_eq!((new.interconnect, new.price_per_gpu_hour.as_str()), (None, "2500.5"));
        assert_eq!(new.status, Some(ListingStatus::Paused));
        assert_eq!((new.accelerator, new.board_power_w, new.pue), (None, None, None), "nothing declared");
    }

    #[test]
    fn every_unreadable_field_is_named() {
        let wrong = ListingForm {
            gpus: "eight".into(),
            gpu_memory_gb: "".into(),
            available_until: "soon".into(),
            currency: "XXX".into(),
            status: "open".into(),
            ..form()
        };
        let e = wrong.new_listing(Lang::En).expect_err("refused");
        let fields: Vec<&str> = e.errors.iter().map(|f| f.field.as_str()).collect();
        assert_eq!(fields, ["gpu_memory_gb", "gpus", "available_until", "status", "currency"]);
        assert_eq!(e.status, StatusCode::UNPROCESSABLE_ENTITY);
    }

    #[test]
    fn an_empty_change_field_changes_nothing() {
        let wanted = ChangeForm { price_per_gpu_hour: "3000".into(), ..ChangeForm::default() }
            .change(Lang::Ko)
            .expect("a change");
        assert_eq!(wanted.price_per_gpu_hour.as_deref(), Some("3000"));
        assert!(wanted.gpus.is_none() && wanted.status.is_none() && wanted.available_from.is_none());
        let refused = ChangeForm { gpus: "6.5".into(), ..ChangeForm::default() }.change(Lang::Ko);
        assert_eq!(refused.err().map(|e| e.errors[0].field.clone()).as_deref(), Some("gpus"));
    }
}
