//! The tenant's orders: the list with their status (`/orders`), one order with
//! what cancelling it now would return (`/orders/{id}`), and cancelling
//! (`POST /orders/{id}/cancel`) through the same code as the API.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, get, post, web};
use maud::{Markup, html};
use rust_decimal::Decimal;
use serde::Deserialize;
use uuid::Uuid;

use super::error::ConsoleError;
use super::form::ConsoleForm;
use super::i18n::Lang;
use super::layout::{self, page, time};
use super::money::{format_money_str, format_price};
use super::session::Viewer;
use crate::auth::Role;
use crate::http::ApiError;
use crate::market::orders::OrderStatus;
use crate::market::routes::{OrderListQuery, OrderView, one_order_view, orders_page};
use crate::market::{orders, settlement};
use crate::state::AppState;

#[derive(Debug, Default, Deserialize)]
pub struct ListForm {
    #[serde(default)]
    status: String,
    #[serde(default)]
    cursor: String,
}

pub(super) fn status_label(status: OrderStatus, lang: Lang) -> &'static str {
    match status {
        OrderStatus::Reserved => lang.tr("Reserved", "예약됨"),
        OrderStatus::Active => lang.tr("Running", "사용 중"),
        OrderStatus::Completed => lang.tr("Completed", "완료"),
        OrderStatus::Cancelled => lang.tr("Cancelled", "취소됨"),
    }
}

fn status_badge(status: OrderStatus, lang: Lang) -> Markup {
    html! { span class={ "status status-" (status) } { (status_label(status, lang)) } }
}

/// `GET /orders`: the viewer's orders, newest first, a page at a time.
#[get("/orders")]
pub async fn list(
    viewer: Viewer,
    state: web::Data<AppState>,
    form: web::Query<ListForm>,
) -> Result<HttpResponse, ConsoleError> {
    let lang = viewer.lang;
    viewer.principal.require(&[Role::Tenant]).map_err(|e| ConsoleError::api(lang, e))?;
    let query = OrderListQuery {
        status: Some(form.status.clone()).filter(|s| !s.is_empty()),
        from: None,
        to: None,
        listing_id: None,
        limit: Some(25),
        cursor: Some(form.cursor.clone()).filter(|c| !c.is_empty()),
    };
    let mut conn = state.pool.get().await.map_err(|e| ConsoleError::api(lang, e))?;
    let now = state.clock.now(&mut conn).await.map_err(|e| ConsoleError::api(lang, e))?;
    let found = orders_page(&mut conn, &viewer.principal, query, now).await.map_err(|e| ConsoleError::api(lang, e))?;
    let body = html! {
        form.filters method="get" action="/orders" {
            label { (lang.tr("Status", "상태"))
                select name="status" {
                    option value="" { (lang.tr("All", "전체")) }
                    @for s in OrderStatus::ALL {
                        option value=(s) selected[form.status == s.as_str()] { (status_label(*s, lang)) }
                    }
                }
            }
            button type="submit" { (lang.tr("Show", "보기")) }
        }
        @if found.data.is_empty() && !form.status.is_empty() {
            p.muted { (lang.tr("No orders with this status.", "이 상태의 주문이 없습니다.")) }
        } @else if found.data.is_empty() {
            p.muted { (lang.tr("No orders yet. Find GPUs in the market.", "아직 주문이 없습니다. 마켓에서 GPU를 찾아 보세요.")) " " a href="/market" { (lang.tr("Market", "마켓")) } }
        } @else {
            div.table-wrap { table {
                thead { tr {
                    th scope="col" { (lang.tr("Placed", "주문 시각")) }
                    th scope="col" { (lang.tr("GPU", "GPU")) }
                    th scope="col" { (lang.tr("Hours (Seoul time)", "사용 시간 (서울 시간)")) }
                    th scope="col" { (lang.tr("Status", "상태")) }
                    th scope="col" class="num" { (lang.tr("Programme pays", "지원 사업 부담")) }
                    th scope="col" class="num" { (lang.tr("You pay", "내 부담")) }
                } }
                tbody { @for o in &found.data { tr {
                    td { a href={ "/orders/" (o.id) } { (time(o.created_at)) } }
                    td { (o.gpus) " × " (o.gpu_model) " · " (o.region) }
                    td { (time(o.start)) " – " (time(o.end)) }
                    td { (status_badge(o.status, lang)) }
                    td.num { (format_money_str(&o.charged.subsidy.total, &o.currency, lang)) }
                    td.num { (format_money_str(&o.charged.tenant.total, &o.currency, lang)) }
                } } }
            } }
            @if let Some(next) = &found.next_cursor {
                @let link = form_urlencoded::Serializer::new(String::new()).append_pair("status", &form.status).append_pair("cursor", next).finish();
                p.pager { a href={ "/orders?" (link) } rel="next" { (lang.tr("Older orders →", "이전 주문 →")) } }
            }
        }
    };
    Ok(page(&viewer, lang.tr("Orders", "주문"), body))
}

/// What cancelling would do, found by cancelling in a transaction that is
/// then rolled back: the same code as the real cancellation, so the preview
/// cannot disagree with it.
enum DryRun {
    Cancelled(Box<OrderView>),
    Refused(ApiError),
}

impl From<diesel::result::Error> for DryRun {
    fn from(e: diesel::result::Error) -> Self {
        DryRun::Refused(e.into())
    }
}

async fn cancel_preview(
    conn: &mut diesel_async::AsyncPgConnection,
    viewer: &Viewer,
    id: Uuid,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<OrderView, ApiError> {
    let principal = viewer.principal;
    let outcome =
        crate::db::transaction(conn, async move |conn: &mut diesel_async::AsyncPgConnection| -> Result<(), DryRun> {
            let order = settlement::cancel(conn, id, principal.org(), principal.actor(), now)
                .await
                .map_err(|e| DryRun::Refused(e.into()))?;
            let view = one_order_view(conn, order, now).await.map_err(DryRun::Refused)?;
            // An error rolls the transaction back: nothing of this is kept.
            Err(DryRun::Cancelled(Box::new(view)))
        })
        .await;
    match outcome {
        Err(DryRun::Cancelled(view)) => Ok(*view),
        Err(DryRun::Refused(e)) => Err(e),
        Ok(()) => Err(ApiError::internal(std::io::Error::other("a dry run committed"))),
    }
}

/// `after − before` of two amount strings of one currency, exact.
fn difference(after: &str, before: &str) -> Option<Decimal> {
    after.parse::<Decimal>().ok()?.checked_sub(before.parse::<Decimal>().ok()?)
}

#[derive(Debug, Default, Deserialize)]
pub struct ShowForm {
    #[serde(default)]
    placed: Option<String>,
    #[serde(default)]
    cancelled: Option<String>,
}

/// `GET /orders/{id}`: one order; another organisation's order is not found.
#[get("/orders/{id}")]
pub async fn show(
    viewer: Viewer,
    state: web::Data<AppState>,
    id: web::Path<String>,
    flags: web::Query<ShowForm>,
) -> Result<HttpResponse, ConsoleError> {
    let lang = viewer.lang;
    viewer.principal.require(&[Role::Tenant]).map_err(|e| ConsoleError::api(lang, e))?;
    let id = id.parse::<Uuid>().map_err(|_| ConsoleError::not_found(lang))?;
    let mut conn = state.pool.get().await.map_err(|e| ConsoleError::api(lang, e))?;
    let now = state.clock.now(&mut conn).await.map_err(|e| ConsoleError::api(lang, e))?;
    let order = orders::find(&mut conn, id)
        .await
        .map_err(|e| ConsoleError::api(lang, e))?
        .filter(|o| orders::visible_to(o, &viewer.principal))
        .ok_or_else(|| ConsoleError::not_found(lang))?;
    let view = one_order_view(&mut conn, order, now).await.map_err(|e| ConsoleError::api(lang, e))?;
    let cancellable = matches!(view.status, OrderStatus::Reserved | OrderStatus::Active);
    let preview = if cancellable { Some(cancel_preview(&mut conn, &viewer, id, now).await) } else { None };
    let money = |amount: &str| format_money_str(amount, &view.currency, lang);
    let money_dec = |amount: Decimal| format_money_str(&amount.to_string(), &view.currency, lang);
    let body = html! {
        @if flags.placed.is_some() { div.notice role="status" { p { (lang.tr("Your order is placed.", "주문이 완료되었습니다.")) } } }
        @if flags.cancelled.is_some() { div.notice role="status" { p { (lang.tr("Your order is cancelled.", "주문이 취소되었습니다.")) } } }
        dl.figures {
            div { dt { (lang.tr("Status", "상태")) } dd { (status_badge(view.status, lang)) } }
            div { dt { (lang.tr("GPUs", "GPU")) } dd { (view.gpus) " × " (view.gpu_model) } }
            div { dt { (lang.tr("Region", "지역")) } dd { (view.region) } }
            div { dt { (lang.tr("Hours (Seoul time)", "사용 시간 (서울 시간)")) } dd { (time(view.start)) " – " (time(view.end)) } }
            div { dt { (lang.tr("Per GPU-hour", "GPU·시간당")) } dd { (format_price(&view.unit_price, &view.currency, lang)) } }
            div { dt { (lang.tr("GPU-hours", "GPU·시간")) } dd { (view.gpu_hours) } }
        }
        h2 { (lang.tr("What it costs", "비용")) }
        div.table-wrap { table {
            thead { tr {
                th scope="col" {}
                th scope="col" class="num" { (lang.tr("Programme", "지원 사업")) }
                th scope="col" class="num" { (lang.tr("You", "나")) }
            } }
            tbody {
                tr { th scope="row" { (lang.tr("At purchase", "구매 시")) } td.num { (money(&view.subsidy)) } td.num { (money(&view.tenant_amount)) } }
                tr { th scope="row" { (lang.tr("Charged so far", "현재까지 결제")) } td.num { (money(&view.charged.subsidy.posted)) } td.num { (money(&view.charged.tenant.posted)) } }
                tr { th scope="row" { (lang.tr("Still reserved", "예약 중")) } td.num { (money(&view.charged.subsidy.pending)) } td.num { (money(&view.charged.tenant.pending)) } }
                tr { th scope="row" { (lang.tr("Credited for outages", "장애 보상")) } td.num { (money(&view.charged.subsidy.credited)) } td.num { (money(&view.charged.tenant.credited)) } }
                tr { th scope="row" { (lang.tr("Released", "해제됨")) } td.num { (money(&view.charged.subsidy.released)) } td.num { (money(&view.charged.tenant.released)) } }
                tr { th scope="row" { (lang.tr("Total", "합계")) } td.num { strong { (money(&view.charged.subsidy.total)) } } td.num { strong { (money(&view.charged.tenant.total)) } } }
            }
        } }
        @match &preview {
            None => {}
            Some(Err(e)) => { p.muted { (lang.tr("It cannot be cancelled now:", "지금은 취소할 수 없습니다:")) " " (e.detail) } }
            Some(Ok(after)) => {
                h2 { (lang.tr("Cancel", "취소")) }
                @let yours = difference(&after.charged.tenant.released, &view.charged.tenant.released).unwrap_or_default();
                @let programme = difference(&after.charged.subsidy.released, &view.charged.subsidy.released).unwrap_or_default();
                p {
                    (lang.tr("Cancelling now returns", "지금 취소하면")) " "
                    strong { (money_dec(yours)) } " "
                    (lang.tr("to your wallet and", "이 지갑으로,")) " "
                    strong { (money_dec(programme)) } " "
                    (lang.tr("to the programme; you would pay", "이 지원 사업으로 돌아가며, 내 부담은")) " "
                    strong { (money(&after.charged.tenant.total)) } (lang.tr(" in all.", "입니다."))
                }
                form method="post" action={ "/orders/" (view.id) "/cancel" } {
                    input type="hidden" name="csrf" value=(viewer.csrf);
                    input type="hidden" name="idempotency_key" value=(Uuid::new_v4());
                    button.danger type="submit" { (lang.tr("Cancel this order", "이 주문 취소")) }
                }
            }
        }
    };
    Ok(page(&viewer, lang.tr("Order", "주문"), body))
}

#[derive(Debug, Deserialize)]
pub struct CancelForm {
    #[serde(default)]
    idempotency_key: String,
}

/// `POST /orders/{id}/cancel`: the API's cancellation, audited and at most once per key.
#[post("/orders/{id}/cancel")]
pub async fn cancel(form: ConsoleForm<CancelForm>, id: web::Path<String>) -> Result<HttpResponse, ConsoleError> {
    let lang = form.viewer.lang;
    form.viewer.principal.require(&[Role::Tenant]).map_err(|e| ConsoleError::api(lang, e))?;
    let id = id.parse::<Uuid>().map_err(|_| ConsoleError::not_found(lang))?;
    let key = Some(form.value.idempotency_key.clone()).filter(|k| !k.is_empty() && k.len() <= 255);
    let principal = form.viewer.principal;
    let op = form.write_op(key)?;
    let clock = op.state().clock;
    op.run_answer(StatusCode::OK, async move |conn| {
        let now = clock.now(conn).await?;
        let order = settlement::cancel(conn, id, principal.org(), principal.actor(), now).await?;
        one_order_view(conn, order, now).await
    })
    .await
    .map_err(|e| ConsoleError::api(lang, e))?;
    Ok(layout::redirect(&format!("/orders/{id}?cancelled=1")))
}
