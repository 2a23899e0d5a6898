//! The tenant's market: search listings (`/market`), a listing with its
//! availability and a quote (`/market/{id}`), and buying (`POST
//! /market/{id}/buy`) through the same code as `POST /v1/orders`.

use actix_web::{HttpResponse, get, post, web};
use chrono::{DateTime, TimeDelta, Timelike, Utc};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use maud::{Markup, html};
use serde::Deserialize;
use uuid::Uuid;

use super::chart;
use super::error::ConsoleError;
use super::form::ConsoleForm;
use super::i18n::Lang;
use super::layout::{self, page, time, time_input};
use super::money::{format_money_str, format_price, format_unit_price};
use super::session::Viewer;
use crate::auth::Role;
use crate::http::ApiError;
use crate::market::batch::OrderAsk;
use crate::market::batcher::OrderBatcher;
use crate::market::listings::{self, ListingRow};
use crate::market::orders::Request;
use crate::market::routes::{OrderView, QuoteView, SearchQuery, SortParam, quote, search_page};
use crate::money::Currency;
use crate::state::AppState;
use crate::subsidy::programmes::GrantRow;

/// Hours the availability chart shows (a week).
const CHART_HOURS: i64 = 168;

fn tenant_only(viewer: &Viewer) -> Result<(), ConsoleError> {
    viewer.principal.require(&[Role::Tenant]).map_err(|e| ConsoleError::api(viewer.lang, e))
}

/// The market's filters as the form sends them: every field text, empty when unset.
#[derive(Debug, Default, Deserialize)]
pub struct SearchForm {
    #[serde(default)]
    gpu_model: String,
    #[serde(default)]
    min_memory_gb: String,
    #[serde(default)]
    region: String,
    #[serde(default)]
    min_gpus: String,
    #[serde(default)]
    start: String,
    #[serde(default)]
    end: String,
    #[serde(default)]
    max_price: String,
    #[serde(default)]
    currency: String,
    #[serde(default)]
    sort: String,
    #[serde(default)]
    cursor: String,
}

fn given(raw: &str) -> Option<String> {
    let raw = raw.trim();
    (!raw.is_empty()).then(|| raw.to_string())
}

impl SearchForm {
    /// The API's search query, or what is wrong with the form.
    fn query(&self, lang: Lang) -> Result<SearchQuery, Vec<String>> {
        let mut errors = Vec::new();
        let mut number = |field: &str, raw: &str| -> Option<i32> {
            let raw = given(raw)?;
            raw.parse::<i32>()
                .map_err(|_| errors.push(format!("{field}: {}", lang.tr("must be a whole number", "정수여야 합니다"))))
                .ok()
        };
        let min_memory_gb = number("min_memory_gb", &self.min_memory_gb);
        let min_gpus = number("min_gpus", &self.min_gpus);
        let mut instant = |field: &str, raw: &str| -> Option<DateTime<Utc>> {
            let raw = given(raw)?;
            layout::parse_time_input(&raw)
                .ok_or_else(|| {
                    errors.push(format!("{field}: {}", lang.tr("is not a date and time", "날짜와 시간이 아닙니다")))
                })
                .ok()
        };
        let start = instant("start", &self.start);
        let end = instant("end", &self.end);
        let currency = given(&self.currency)
            .and_then(|c| c.parse::<Currency>().map_err(|e| errors.push(format!("currency: {e}"))).ok());
        let sort = match self.sort.as_str() {
            "" | "price" => Some(SortParam::Price),
            "-price" => Some(SortParam::PriceDesc),
            "available_from" => Some(SortParam::AvailableFrom),
            _ => {
                errors.push(format!("sort: {}", lang.tr("is not a sort order", "정렬 방식이 아닙니다")));
                None
            }
        };
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(SearchQuery {
            gpu_model: given(&self.gpu_model),
            region: given(&self.region),
            min_gpus,
            min_memory_gb,
            max_price: given(&self.max_price),
            currency,
            start,
            end,
            sort,
            limit: Some(25),
            cursor: given(&self.cursor),
        })
    }

    /// This search's link with another cursor.
    fn with_cursor(&self, cursor: &str) -> String {
        let mut out = form_urlencoded::Serializer::new(String::new());
        for (k, v) in [
            ("gpu_model", &self.gpu_model),
            ("min_memory_gb", &self.min_memory_gb),
            ("region", &self.region),
            ("min_gpus", &self.min_gpus),
            ("start", &self.start),
            ("end", &self.end),
            ("max_price", &self.max_price),
            ("currency", &self.currency),
            ("sort", &self.sort),
        ] {
            if !v.is_empty() {
                out.append_pair(k, v);
            }
        }
        out.append_pair("cursor", cursor);
        format!("/market?{}", out.finish())
    }
}

fn problem_box(lines: &[String]) -> Markup {
    html! { div.problem role="alert" { @for line in lines { p { (line) } } } }
}

fn api_problem_lines(e: &ApiError) -> Vec<String> {
    let mut lines = vec![e.detail.clone()];
    lines.extend(e.errors.iter().map(|f| format!("{}: {}", f.field, f.message)));
    lines
}

/// `GET /market`: listings that have the GPUs free, with the API's filters.
#[get("/market")]
pub async fn search(
    viewer: Viewer,
    state: web::Data<AppState>,
    form: web::Query<SearchForm>,
) -> Result<HttpResponse, ConsoleError> {
    let lang = viewer.lang;
    tenant_only(&viewer)?;
    let form = form.into_inner();
    let (results, problems) = match form.query(lang) {
        Err(problems) => (None, problems),
        Ok(query) => {
            let mut conn = state.pool.get().await.map_err(|e| ConsoleError::api(lang, e))?;
            let now = state.clock.now(&mut conn).await.map_err(|e| ConsoleError::api(lang, e))?;
            match search_page(&mut conn, query, now).await {
                Ok(found) => (Some(found), Vec::new()),
                Err(e) if e.status.is_client_error() => (None, api_problem_lines(&e)),
                Err(e) => return Err(ConsoleError::api(lang, e)),
            }
        }
    };
    let selected = |value: &str| (form.sort == value).then_some("selected");
    let body = html! {
        form.filters method="get" action="/market" role="search" {
            label { (lang.tr("GPU model", "GPU 모델")) input type="text" name="gpu_model" value=(form.gpu_model) placeholder="H100"; }
            label { (lang.tr("Memory per GPU, at least (GB)", "GPU당 메모리 최소 (GB)")) input type="number" min="0" name="min_memory_gb" value=(form.min_memory_gb); }
            label { (lang.tr("Region", "지역")) input type="text" name="region" value=(form.region) placeholder="kr-seoul"; }
            label { (lang.tr("GPUs free, at least", "남은 GPU 최소")) input type="number" min="0" name="min_gpus" value=(form.min_gpus); }
            label { (lang.tr("From (Seoul time)", "시작 (서울 시간)")) input type="datetime-local" step="3600" name="start" value=(form.start); }
            label { (lang.tr("Until (Seoul time)", "종료 (서울 시간)")) input type="datetime-local" step="3600" name="end" value=(form.end); }
            label { (lang.tr("Price per GPU-hour, at most", "GPU·시간당 최고 가격")) input type="text" inputmode="decimal" name="max_price" value=(form.max_price); }
            label { (lang.tr("Currency", "통화"))
                select name="currency" {
                    option value="" { (lang.tr("Any", "전체")) }
                    @for c in Currency::ALL { option value=(c.code()) selected[form.currency == c.code()] { (c.code()) } }
                }
            }
            label { (lang.tr("Sort by", "정렬"))
                select name="sort" {
                    option value="price" selected=[selected("price")] { (lang.tr("Price, lowest first", "가격 낮은 순")) }
                    option value="-price" selected=[selected("-price")] { (lang.tr("Price, highest first", "가격 높은 순")) }
                    option value="available_from" selected=[selected("available_from")] { (lang.tr("Available soonest", "빨리 사용 가능한 순")) }
                }
            }
            button type="submit" { (lang.tr("Search", "검색")) }
        }
        @if !problems.is_empty() { (problem_box(&problems)) }
        @if let Some(found) = &results {
            @if found.data.is_empty() {
                p.muted { (lang.tr("No listing has those GPUs free.", "조건에 맞는 GPU가 없습니다.")) }
            } @else {
                div.table-wrap { table {
                    caption.muted { (lang.tr("Listings with GPUs free in every hour of the window", "기간 내 모든 시간에 GPU가 남아 있는 상품")) }
                    thead { tr {
                        th scope="col" { (lang.tr("GPU", "GPU")) }
                        th scope="col" class="num" { (lang.tr("Memory", "메모리")) }
                        th scope="col" class="num" { (lang.tr("Free / total", "남음 / 전체")) }
                        th scope="col" { (lang.tr("Region", "지역")) }
                        th scope="col" class="num" { (lang.tr("Per GPU-hour", "GPU·시간당")) }
                        th scope="col" { (lang.tr("Available", "사용 가능 기간")) }
                    } }
                    tbody { @for l in &found.data { tr {
                        td { a href={ "/market/" (l.id) } { (l.gpu_model) } @if let Some(i) = &l.interconnect { " · " (i) } }
                        td.num { (l.gpu_memory_gb) " GB" }
                        td.num { (l.free_gpus.unwrap_or(l.gpus)) " / " (l.gpus) }
                        td { (l.region) }
                        td.num { (format_price(&l.price_per_gpu_hour, &l.currency, lang)) }
                        td { (time(l.available_from)) " – " (time(l.available_until)) }
                    } } }
                } }
                @if let Some(next) = &found.next_cursor {
                    p.pager { a href=(form.with_cursor(next)) rel="next" { (lang.tr("More listings →", "더 보기 →")) } }
                }
            }
        }
    };
    Ok(page(&viewer, lang.tr("Market", "마켓"), body))
}

/// The listing page's quote form: what the tenant would buy.
#[derive(Debug, Default, Deserialize)]
pub struct QuoteForm {
    #[serde(default)]
    gpus: String,
    #[serde(default)]
    start: String,
    #[serde(default)]
    end: String,
    #[serde(default)]
    grant_id: String,
}

impl QuoteForm {
    /// The order it describes, once every field is filled in.
    fn request(&self, listing_id: Uuid, lang: Lang) -> Option<Result<Request, String>> {
        if self.gpus.trim().is_empty() || self.start.trim().is_empty() || self.end.trim().is_empty() {
            return None;
        }
        let Ok(gpus) = self.gpus.trim().parse::<i32>() else {
            return Some(Err(format!("gpus: {}", lang.tr("must be a whole number", "정수여야 합니다"))));
        };
        let (Some(start), Some(end)) = (layout::parse_time_input(&self.start), layout::parse_time_input(&self.end))
        else {
            return Some(Err(lang
                .tr("Start and end must be dates and times.", "시작과 종료는 날짜와 시간이어야 합니다.")
                .into()));
        };
        let grant_id = match given(&self.grant_id) {
            None => None,
            Some(raw) => match raw.parse::<Uuid>() {
                Ok(id) => Some(id),
                Err(_) => return Some(Err(format!("grant_id: {}", lang.tr("is not a grant", "지원금이 아닙니다")))),
            },
        };
        Some(Ok(Request { listing_id, gpus, start, end, grant_id }))
    }
}

async fn visible_listing(state: &AppState, viewer: &Viewer, raw_id: &str) -> Result<ListingRow, ConsoleError> {
    let lang = viewer.lang;
    let id = raw_id.parse::<Uuid>().map_err(|_| ConsoleError::not_found(lang))?;
    let mut conn = state.pool.get().await.map_err(|e| ConsoleError::api(lang, e))?;
    listings::find(&mut conn, id)
        .await
        .map_err(|e| ConsoleError::api(lang, e))?
        .filter(|l| listings::visible_to(l, &viewer.principal))
        .ok_or_else(|| ConsoleError::not_found(lang))
}

/// The tenant's active grants: what a purchase may be subsidised by.
async fn active_grants(state: &AppState, viewer: &Viewer) -> Result<Vec<GrantRow>, ApiError> {
    use crate::db::schema::grants;
    let mut conn = state.pool.get().await?;
    Ok(grants::table
        .filter(grants::tenant_org_id.eq(viewer.principal.org_id))
        .filter(grants::status.eq(crate::subsidy::programmes::GrantStatus::Active))
        .select(GrantRow::as_select())
        .order(grants::id)
        .load(&mut conn)
        .await?)
}

/// `GET /market/{id}`: the listing, its next week by hour, and — once the
/// quote form is filled in — the price split between the programme and the
/// tenant, with the form that buys it.
#[get("/market/{id}")]
pub async fn listing(
    viewer: Viewer,
    state: web::Data<AppState>,
    id: web::Path<String>,
    form: web::Query<QuoteForm>,
) -> Result<HttpResponse, ConsoleError> {
    let lang = viewer.lang;
    tenant_only(&viewer)?;
    let listing = visible_listing(&state, &viewer, &id).await?;
    let mut conn = state.pool.get().await.map_err(|e| ConsoleError::api(lang, e))?;
    let now = state.clock.now(&mut conn).await.map_err(|e| ConsoleError::api(lang, e))?;
    let this_hour = now.with_minute(0).and_then(|t| t.with_second(0)).and_then(|t| t.with_nanosecond(0)).unwrap_or(now);
    let from = listing.available_from.max(this_hour);
    let to = listing.available_until.min(from + TimeDelta::hours(CHART_HOURS));
    let reserved: std::collections::HashMap<DateTime<Utc>, i32> =
        listings::reserved_by_hour(&mut conn, listing.id, from, to)
            .await
            .map_err(|e| ConsoleError::api(lang, e))?
            .into_iter()
            .collect();
    let mut hours = Vec::new();
    let mut hour = from;
    while hour < to {
        let r = reserved.get(&hour).copied().unwrap_or(0);
        hours.push(chart::Hour { at: hour, reserved: r, free: listing.gpus - r });
        hour += TimeDelta::hours(1);
    }
    let grants = active_grants(&state, &viewer).await.map_err(|e| ConsoleError::api(lang, e))?;
    let form = form.into_inner();
    let quoted: Option<Result<(Request, QuoteView), Vec<String>>> = match form.request(listing.id, lang) {
        None => None,
        Some(Err(problem)) => Some(Err(vec![problem])),
        Some(Ok(request)) => match quote(&mut conn, &viewer.principal, &request, state.settings.fee_rate, now).await {
            Ok(q) => Some(Ok((request, q))),
            Err(e) if e.status.is_client_error() => Some(Err(api_problem_lines(&e))),
            Err(e) => return Err(ConsoleError::api(lang, e)),
        },
    };
    let default_start = (this_hour + TimeDelta::hours(1)).max(listing.available_from);
    let start_value = given(&form.start).unwrap_or_else(|| time_input(default_start));
    let end_value = given(&form.end)
        .unwrap_or_else(|| time_input(default_start + TimeDelta::hours(i64::from(listing.min_hours.max(1)))));
    let gpus_value = given(&form.gpus).unwrap_or_else(|| "1".into());
    let title = format!("{} · {}", listing.gpu_model, listing.region);
    let body = html! {
        dl.figures {
            div { dt { (lang.tr("Per GPU-hour", "GPU·시간당")) } dd { (format_unit_price(listing.price_per_gpu_hour, listing.currency, lang)) } }
            div { dt { (lang.tr("GPUs", "GPU 수")) } dd { (listing.gpus) " × " (listing.gpu_memory_gb) " GB" } }
            div { dt { (lang.tr("Available", "사용 가능 기간")) } dd { (time(listing.available_from)) " – " (time(listing.available_until)) } }
            div { dt { (lang.tr("Shortest order", "최소 주문")) } dd { (listing.min_hours) " " (lang.tr("hours", "시간")) } }
        }
        h2 { (lang.tr("Availability (Seoul time)", "예약 현황 (서울 시간)")) }
        (chart::availability(&hours, listing.gpus, lang))
        h2 { (lang.tr("Quote", "견적")) }
        form.quote method="get" action={ "/market/" (listing.id) } {
            label { (lang.tr("GPUs", "GPU 수")) input type="number" name="gpus" min="1" max=(listing.gpus) value=(gpus_value) required; }
            label { (lang.tr("From (Seoul time)", "시작 (서울 시간)")) input type="datetime-local" step="3600" name="start" value=(start_value) required; }
            label { (lang.tr("Until (Seoul time)", "종료 (서울 시간)")) input type="datetime-local" step="3600" name="end" value=(end_value) required; }
            label { (lang.tr("Grant", "지원금"))
                select name="grant_id" {
                    option value="" { (lang.tr("No grant", "지원금 없음")) }
                    @for g in &grants {
                        option value=(g.id) selected[form.grant_id == g.id.to_string()] {
                            (lang.tr("Grant", "지원금")) " " (g.id.simple().to_string().get(..8).unwrap_or("")) " · " (lang.tr("until", "까지")) " " (time(g.valid_until))
                        }
                    }
                }
            }
            button type="submit" { (lang.tr("Get a quote", "견적 보기")) }
        }
        @match &quoted {
            None => {}
            Some(Err(problems)) => { (problem_box(problems)) }
            Some(Ok((request, q))) => { (quote_and_buy(&viewer, request, q)) }
        }
    };
    Ok(page(&viewer, &title, body))
}

fn quote_and_buy(viewer: &Viewer, request: &Request, q: &QuoteView) -> Markup {
    let lang = viewer.lang;
    let money = |amount: &str| format_money_str(amount, &q.currency, lang);
    // Generated when the page is rendered: a second submit of this same form
    // (a double click, a refresh) carries the same key and places no second order.
    let key = Uuid::new_v4().to_string();
    html! {
        section aria-labelledby="split" {
            h3 #split { (q.gpus) " GPU × " (q.hours) " " (lang.tr("hours", "시간")) " = " (q.gpu_hours) " " (lang.tr("GPU-hours", "GPU·시간")) }
            dl.figures {
                div { dt { (lang.tr("Price", "금액")) } dd { (money(&q.subtotal)) } }
                div { dt { (lang.tr("Programme pays", "지원 사업 부담")) } dd { (money(&q.subsidy)) } }
                div { dt { (lang.tr("You pay", "내 부담")) } dd { strong { (money(&q.tenant_amount)) } } }
                div { dt { (lang.tr("Platform fee (borne by the provider)", "플랫폼 수수료 (공급자 부담)")) } dd { (money(&q.platform_fee)) } }
            }
            form method="post" action={ "/market/" (request.listing_id) "/buy" } {
                input type="hidden" name="csrf" value=(viewer.csrf);
                input type="hidden" name="idempotency_key" value=(key);
                input type="hidden" name="gpus" value=(request.gpus);
                input type="hidden" name="start" value=(request.start.to_rfc3339());
                input type="hidden" name="end" value=(request.end.to_rfc3339());
                @if let Some(grant) = request.grant_id { input type="hidden" name="grant_id" value=(grant); }
                button type="submit" { (lang.tr("Buy", "구매")) " · " (money(&q.tenant_amount)) }
            }
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct BuyForm {
    idempotency_key: String,
    gpus: i32,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    grant_id: Option<Uuid>,
}

/// `POST /market/{id}/buy`: places the order the quote showed, through the
/// same order batcher, audit record and idempotency as `POST /v1/orders`.
#[post("/market/{id}/buy")]
pub async fn buy(
    batcher: web::Data<OrderBatcher>,
    form: ConsoleForm<BuyForm>,
    id: web::Path<String>,
) -> Result<HttpResponse, ConsoleError> {
    let lang = form.viewer.lang;
    tenant_only(&form.viewer)?;
    let listing_id = id.parse::<Uuid>().map_err(|_| ConsoleError::not_found(lang))?;
    let BuyForm { idempotency_key, gpus, start, end, grant_id } = &form.value;
    let key = Some(idempotency_key.clone()).filter(|k| !k.is_empty() && k.len() <= 255);
    let request = Request { listing_id, gpus: *gpus, start: *start, end: *end, grant_id: *grant_id };
    let ask = OrderAsk { principal: form.viewer.principal, request };
    let op = form.write_op(key)?;
    // The API's own way in: the order group commit, with the form's key.
    let answer = batcher.place(ask, op.into_batched()).await.map_err(|e| ConsoleError::api(lang, e))?;
    let body = actix_web::body::to_bytes(answer.into_body()).await.map_err(|e| ConsoleError::internal(lang, e))?;
    let order: OrderView = serde_json::from_slice(&body).map_err(|e| ConsoleError::internal(lang, e))?;
    Ok(layout::redirect(&format!("/orders/{}?placed=1", order.id)))
}
