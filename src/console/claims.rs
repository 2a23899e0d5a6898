//! Finance's claims to the programmes: the list and a new claim for a period
//! (`/claims`), one claim with its lines, payments and what is outstanding
//! (`/claims/{id}`), submitting it and recording a payment — each write the
//! API's own (`POST /v1/claims`, `…/submit`, `…/payments`).

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, get, post, web};
use maud::{Markup, html};
use serde::Deserialize;
use uuid::Uuid;

use super::error::ConsoleError;
use super::finance::{answer, finance_only, form_key, form_tokens, given, invalid};
use super::form::{ConsoleForm, KeyForm, problem_box, refused};
use super::i18n::Lang;
use super::layout::{self, page_with_status, parse_time_input, time};
use super::money::{format_money_in, format_money_str};
use super::session::Viewer;
use crate::http::{ApiError, FieldError};
use crate::state::AppState;
use crate::subsidy::claims::{self, ClaimLine, ClaimStatus, ClaimView};
use crate::subsidy::list_routes::{ClaimListQuery, ProgrammeListQuery, claims_page, programmes_page};
use crate::subsidy::routes::{ClaimRequest, PaymentRequest, claim_write, payment_write, submit_claim_write};

fn status_label(status: ClaimStatus, lang: Lang) -> &'static str {
    match status {
        ClaimStatus::Draft => lang.tr("Draft", "작성 중"),
        ClaimStatus::Submitted => lang.tr("Submitted", "제출됨"),
        ClaimStatus::Void => lang.tr("Void", "무효"),
    }
}

fn status_badge(status: ClaimStatus, lang: Lang) -> Markup {
    html! { span class={ "status status-" (status) } data-status=(status) { (status_label(status, lang)) } }
}

#[derive(Debug, Default, Deserialize)]
pub struct ListForm {
    #[serde(default)]
    programme_id: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    cursor: String,
}

/// `GET /claims`: the claims, oldest first, and the form for a new one.
#[get("/claims")]
pub async fn list(
    viewer: Viewer,
    state: web::Data<AppState>,
    form: web::Query<ListForm>,
) -> Result<HttpResponse, ConsoleError> {
    finance_only(&viewer)?;
    claims_list(&viewer, &state, &form, &ClaimForm::default(), &[], StatusCode::OK).await
}

/// The claims page, its new-claim form filled with `draft` and showing
/// `problems` (a refused claim comes back to it, values kept).
async fn claims_list(
    viewer: &Viewer,
    state: &AppState,
    form: &ListForm,
    draft: &ClaimForm,
    problems: &[String],
    status: StatusCode,
) -> Result<HttpResponse, ConsoleError> {
    let lang = viewer.lang;
    let programme_id = match given(&form.programme_id) {
        Some(raw) => Some(raw.parse::<Uuid>().map_err(|_| invalid(lang, "programme_id", "is not a programme"))?),
        None => None,
    };
    let fail = |e: crate::http::ApiError| ConsoleError::api(lang, e);
    let mut conn = state.pool.get().await.map_err(|e| fail(e.into()))?;
    let found = claims_page(
        &mut conn,
        ClaimListQuery {
            programme_id,
            status: given(&form.status).map(String::from),
            limit: Some(25),
            cursor: given(&form.cursor).map(String::from),
        },
    )
    .await
    .map_err(fail)?;
    let programmes = programmes_page(
        &mut conn,
        ProgrammeListQuery { fiscal_year: None, currency: None, status: None, limit: Some(500), cursor: None },
    )
    .await
    .map_err(fail)?;
    let name_of =
        |id: Uuid| programmes.data.iter().find(|p| p.id == id).map_or_else(|| id.to_string(), |p| p.name.clone());
    let currency_of =
        |id: Uuid| programmes.data.iter().find(|p| p.id == id).map_or_else(String::new, |p| p.currency.clone());
    let body = html! {
        form.filters method="get" action="/claims" {
            label { (lang.tr("Programme", "지원 사업"))
                select name="programme_id" {
                    option value="" { (lang.tr("All", "전체")) }
                    @for p in &programmes.data { option value=(p.id) selected[form.programme_id == p.id.to_string()] { (p.name) } }
                }
            }
            label { (lang.tr("Status", "상태"))
                select name="status" {
                    option value="" { (lang.tr("All", "전체")) }
                    @for s in ClaimStatus::ALL { option value=(s) selected[form.status == s.as_str()] { (status_label(*s, lang)) } }
                }
            }
            button type="submit" { (lang.tr("Show", "보기")) }
        }
        @if found.data.is_empty() {
            p.muted { (lang.tr("No claims.", "청구가 없습니다.")) }
        } @else {
            div.table-wrap { table {
                thead { tr {
                    th scope="col" { (lang.tr("Period (Seoul time)", "기간 (서울 시간)")) }
                    th scope="col" { (lang.tr("Programme", "지원 사업")) }
                    th scope="col" { (lang.tr("Status", "상태")) }
                    th scope="col" class="num" { (lang.tr("Amount", "금액")) }
                } }
                tbody { @for c in &found.data { tr {
                    td { a href={ "/claims/" (c.id) } { (time(c.period_start)) " – " (time(c.period_end)) } }
                    td { (name_of(c.programme_id)) }
                    td { (status_badge(c.status, lang)) }
                    td.num { (format_money_str(&c.amount, &currency_of(c.programme_id), lang)) }
                } } }
            } }
            @if let Some(next) = &found.next_cursor {
                @let link = form_urlencoded::Serializer::new(String::new())
                    .append_pair("programme_id", &form.programme_id).append_pair("status", &form.status).append_pair("cursor", next).finish();
                p.pager { a href={ "/claims?" (link) } rel="next" { (lang.tr("More claims →", "다음 청구 →")) } }
            }
        }
        h2 { (lang.tr("Claim a period", "기간 청구")) }
        p.muted { (lang.tr(
            "Gathers every settled subsidy of the period not yet claimed into a draft. Give a month, or a start and an end.",
            "기간 중 아직 청구하지 않은 집행 지원금을 모두 모아 초안을 만듭니다. 월을 입력하거나 시작과 종료를 입력하세요.")) }
        (problem_box(problems))
        form.quote method="post" action="/claims" {
            (form_tokens(viewer))
            label { (lang.tr("Programme", "지원 사업"))
                select name="programme_id" required {
                    @for p in &programmes.data { option value=(p.id) selected[draft.programme_id == p.id.to_string()] { (p.name) } }
                }
            }
            label { (lang.tr("Month", "월")) input type="month" name="month" value=(draft.month) placeholder="YYYY-MM"; }
            label { (lang.tr("or from (Seoul time)", "또는 시작 (서울 시간)")) input type="datetime-local" name="period_start" value=(draft.period_start); }
            label { (lang.tr("until (Seoul time)", "종료 (서울 시간)")) input type="datetime-local" name="period_end" value=(draft.period_end); }
            button type="submit" { (lang.tr("Create the claim", "청구 만들기")) }
        }
    };
    Ok(page_with_status(viewer, status, lang.tr("Claims", "청구"), body))
}

#[derive(Debug, Default, Deserialize)]
pub struct ClaimForm {
    #[serde(default)]
    idempotency_key: String,
    #[serde(default)]
    programme_id: String,
    #[serde(default)]
    month: String,
    #[serde(default)]
    period_start: String,
    #[serde(default)]
    period_end: String,
}

impl ClaimForm {
    /// The API's request, or the fields that are not what it takes.
    fn request(&self, lang: Lang) -> Result<ClaimRequest, ApiError> {
        let mut errors = Vec::new();
        let programme_id = self.programme_id.trim().parse::<Uuid>().ok();
        if programme_id.is_none() {
            errors.push(FieldError::new("programme_id", lang.tr("choose a programme", "지원 사업을 고르세요")));
        }
        let mut instant = |raw: &str, field: &str| match given(raw) {
            None => None,
            Some(v) => {
                let parsed = parse_time_input(v);
                if parsed.is_none() {
                    errors.push(FieldError::new(
                        field,
                        lang.tr("must be a date and time (Seoul)", "날짜와 시간(서울)이어야 합니다"),
                    ));
                }
                parsed
            }
        };
        let period_start = instant(&self.period_start, "period_start");
        let period_end = instant(&self.period_end, "period_end");
        match programme_id {
            Some(programme_id) if errors.is_empty() => {
                Ok(ClaimRequest { programme_id, period_start, period_end, month: given(&self.month).map(String::from) })
            }
            _ => Err(ApiError::validation(errors)),
        }
    }
}

/// `POST /claims`: as `POST /v1/claims`, for a month or a period; a refused
/// claim comes back to the form with its problems.
#[post("/claims")]
pub async fn create(state: web::Data<AppState>, form: ConsoleForm<ClaimForm>) -> Result<HttpResponse, ConsoleError> {
    let viewer = &form.viewer;
    let lang = viewer.lang;
    finance_only(viewer)?;
    let again = async |e: ApiError| {
        let status = e.status;
        let problems = refused(lang, e)?;
        let filters = ListForm::default();
        claims_list(viewer, &state, &filters, &form.value, &problems, status).await
    };
    let request = match form.value.request(lang) {
        Ok(request) => request,
        Err(e) => return again(e).await,
    };
    let op = form.write_op(form_key(&form.value.idempotency_key))?;
    match claim_write(op, viewer.principal, request).await {
        Ok(response) => {
            let claim: ClaimView = answer(lang, Ok(response)).await?;
            Ok(layout::redirect(&format!("/claims/{}?created=1", claim.id)))
        }
        Err(e) => again(e).await,
    }
}

#[derive(Debug, Default, Deserialize)]
pub struct ShowForm {
    #[serde(default)]
    created: Option<String>,
    #[serde(default)]
    submitted: Option<String>,
    #[serde(default)]
    paid: Option<String>,
}

/// `GET /claims/{id}`: as `GET /v1/claims/{id}`.
#[get("/claims/{id}")]
pub async fn show(
    viewer: Viewer,
    state: web::Data<AppState>,
    id: web::Path<String>,
    flags: web::Query<ShowForm>,
) -> Result<HttpResponse, ConsoleError> {
    let lang = viewer.lang;
    finance_only(&viewer)?;
    let id = id.parse::<Uuid>().map_err(|_| ConsoleError::not_found(lang))?;
    claim_page(&viewer, &state, id, &flags, &PaymentForm::default(), &[], StatusCode::OK).await
}

/// Claim `id`'s page, its payment form filled with `draft` and showing
/// `problems` (a refused payment comes back to it, values kept).
async fn claim_page(
    viewer: &Viewer,
    state: &AppState,
    id: Uuid,
    flags: &ShowForm,
    draft: &PaymentForm,
    problems: &[String],
    status: StatusCode,
) -> Result<HttpResponse, ConsoleError> {
    let lang = viewer.lang;
    let fail = |e: crate::http::ApiError| ConsoleError::api(lang, e);
    let mut conn = state.pool.get().await.map_err(|e| fail(e.into()))?;
    let claim =
        claims::find(&mut conn, id).await.map_err(|e| fail(e.into()))?.ok_or_else(|| ConsoleError::not_found(lang))?;
    let v = claims::view(&mut conn, claim).await.map_err(|e| fail(e.into()))?;
    let programme = crate::subsidy::programmes::find_programme(&mut conn, v.programme_id)
        .await
        .map_err(|e| fail(e.into()))?
        .ok_or_else(|| ConsoleError::not_found(lang))?;
    let money = |a: &str| format_money_in(a, v.currency, lang);
    let body = html! {
        @if flags.created.is_some() { p.notice role="status" { (lang.tr("The claim is drafted.", "청구 초안을 만들었습니다.")) } }
        @if flags.submitted.is_some() { p.notice role="status" { (lang.tr("The claim is submitted.", "청구를 제출했습니다.")) } }
        @if flags.paid.is_some() { p.notice role="status" { (lang.tr("The payment is recorded.", "입금을 기록했습니다.")) } }
        p {
            a href={ "/programmes/" (programme.id) } { (programme.name) } " · "
            (time(v.period_start)) " – " (time(v.period_end)) " · " (status_badge(v.status, lang))
            " · " (v.items) " " (lang.tr("items", "건"))
        }
        dl.figures {
            @for (key, label, amount) in [
                ("amount", lang.tr("Claimed", "청구액"), &v.amount),
                ("paid", lang.tr("Paid", "입금액"), &v.paid),
                ("written_off", lang.tr("Written off", "대손 처리"), &v.written_off),
                ("advance_applied", lang.tr("Advance applied", "선급금 충당"), &v.advance_applied),
                ("outstanding", lang.tr("Outstanding", "미수액"), &v.outstanding),
            ] {
                div { dt { (label) } dd data-figure=(key) data-amount=(amount) { (money(amount)) } }
            }
        }
        @if v.status == ClaimStatus::Draft {
            form method="post" action={ "/claims/" (v.id) "/submit" } {
                (form_tokens(viewer))
                button type="submit" { (lang.tr("Submit to the programme", "사업 기관에 제출")) }
            }
        }
        @if v.status == ClaimStatus::Submitted {
            h2 #payment-form { (lang.tr("Record a payment", "입금 기록")) }
            (problem_box(problems))
            form.quote method="post" action={ "/claims/" (v.id) "/payments" } {
                (form_tokens(viewer))
                label { (lang.tr("Amount received", "입금액")) input type="text" inputmode="decimal" name="amount" value=(if draft.amount.trim().is_empty() { v.outstanding.clone() } else { draft.amount.clone() }) required; }
                label { (lang.tr("Bank reference", "은행 거래 참조")) input type="text" name="reference" value=(draft.reference) maxlength="200" required; }
                label { (lang.tr("Another transfer with a reference already recorded", "이미 기록된 참조의 다른 입금"))
                    input type="checkbox" name="allow_duplicate_reference" value="true" checked[draft.allow_duplicate_reference.as_deref() == Some("true")]; }
                button type="submit" { (lang.tr("Record", "기록")) }
            }
        }
        (lines(lang.tr("By provider", "공급자별"), &v.lines_by_provider, lang, &money))
        (lines(lang.tr("By tenant", "수요 기업·기관별"), &v.lines_by_tenant, lang, &money))
        h2 { (lang.tr("Payments", "입금")) }
        @if v.payments.is_empty() { p.muted { (lang.tr("None yet.", "아직 없습니다.")) } }
        @else {
            div.table-wrap { table {
                thead { tr {
                    th scope="col" { (lang.tr("Paid (Seoul time)", "입금 일시 (서울 시간)")) }
                    th scope="col" { (lang.tr("Reference", "참조")) }
                    th scope="col" class="num" { (lang.tr("Amount", "금액")) }
                } }
                tbody { @for p in &v.payments { tr {
                    td { a href={ "/ledger/entries/" (p.journal_entry_id) } { (time(p.paid_at)) } }
                    td { (p.reference) }
                    td.num { (money(&p.amount)) }
                } } }
            } }
        }
    };
    Ok(page_with_status(viewer, status, lang.tr("Claim", "청구"), body))
}

fn lines(title: &str, lines: &[ClaimLine], lang: Lang, money: &dyn Fn(&str) -> String) -> Markup {
    html! {
        h2 { (title) }
        @if lines.is_empty() { p.muted { (lang.tr("No lines.", "내역이 없습니다.")) } }
        @else {
            div.table-wrap { table {
                thead { tr {
                    th scope="col" { (lang.tr("Organisation", "기관")) }
                    th scope="col" class="num" { (lang.tr("Amount", "금액")) }
                } }
                tbody { @for l in lines { tr {
                    td { (l.org.as_ref().map_or_else(|| l.org_id.to_string(), |o| o.name.clone())) }
                    td.num { (money(&l.amount)) }
                } } }
            } }
        }
    }
}

/// `POST /claims/{id}/submit`: as `POST /v1/claims/{id}/submit`.
#[post("/claims/{id}/submit")]
pub async fn submit(form: ConsoleForm<KeyForm>, id: web::Path<String>) -> Result<HttpResponse, ConsoleError> {
    let lang = form.viewer.lang;
    finance_only(&form.viewer)?;
    let id = id.parse::<Uuid>().map_err(|_| ConsoleError::not_found(lang))?;
    let op = form.write_op(form_key(&form.value.idempotency_key))?;
    let claim: ClaimView = answer(lang, submit_claim_write(op, form.viewer.principal, id).await).await?;
    Ok(layout::redirect(&format!("/claims/{}?submitted=1", claim.id)))
}

#[derive(Debug, Default, Deserialize)]
pub struct PaymentForm {
    #[serde(default)]
    idempotency_key: String,
    #[serde(default)]
    amount: String,
    #[serde(default)]
    reference: String,
    #[serde(default)]
    allow_duplicate_reference: Option<String>,
}

/// `POST /claims/{id}/payments`: as `POST /v1/claims/{id}/payments`; a
/// refused payment comes back to the claim's form with its problems.
#[post("/claims/{id}/payments")]
pub async fn pay(
    state: web::Data<AppState>,
    form: ConsoleForm<PaymentForm>,
    id: web::Path<String>,
) -> Result<HttpResponse, ConsoleError> {
    let viewer = &form.viewer;
    let lang = viewer.lang;
    finance_only(viewer)?;
    let id = id.parse::<Uuid>().map_err(|_| ConsoleError::not_found(lang))?;
    let f = &form.value;
    let request = PaymentRequest {
        amount: f.amount.trim().to_string(),
        reference: f.reference.clone(),
        allow_duplicate_reference: f.allow_duplicate_reference.as_deref() == Some("true"),
    };
    let op = form.write_op(form_key(&f.idempotency_key))?;
    match payment_write(op, viewer.principal, id, &request).await {
        Ok(response) => {
            let claim: ClaimView = answer(lang, Ok(response)).await?;
            Ok(layout::redirect(&format!("/claims/{}?paid=1", claim.id)))
        }
        Err(e) => {
            let status = e.status;
            let problems = refused(lang, e)?;
            let flags = ShowForm::default();
            claim_page(viewer, &state, id, &flags, f, &problems, status).await
        }
    }
}
