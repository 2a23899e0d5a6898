//! Finance's books: the trial balance as of an instant (`/ledger`), an
//! account's postings with the running balance (`/ledger/accounts/{id}`), a
//! journal entry with all its postings (`/ledger/entries/{id}`), the journal
//! export as a download (`/ledger/export`) and the ledger's verification
//! (`/ledger/verify`) — each the API's own report.

use actix_web::{HttpResponse, get, web};
use maud::{Markup, html};
use serde::Deserialize;
use uuid::Uuid;

use super::error::ConsoleError;
use super::finance::{finance_only, given, invalid};
use super::i18n::Lang;
use super::layout::{page, parse_time_input, time, time_input};
use super::money::format_money_str;
use super::session::Viewer;
use crate::finance::export::{Format, export_response};
use crate::ledger::model::AccountType;
use crate::ledger::routes::{
    AccountView, CurrencyTotals, TrialBalanceRow, account_postings_page, entry_view, trial_balance_report,
    visible_account,
};
use crate::ledger::store;
use crate::state::AppState;

/// Postings per page of an account.
const POSTINGS_PAGE: i64 = 50;

#[derive(Debug, Default, Deserialize)]
pub struct TrialBalanceForm {
    #[serde(default)]
    as_of: String,
    /// Also the currencies nothing was ever posted in (every account is
    /// created in each supported currency).
    #[serde(default)]
    all: Option<String>,
}

/// Whether a currency's totals show any movement, posted or pending.
fn moved(t: &CurrencyTotals) -> bool {
    [&t.debits_posted, &t.credits_posted, &t.debits_pending, &t.credits_pending]
        .iter()
        .any(|v| v.parse::<rust_decimal::Decimal>().map_or(true, |d| !d.is_zero()))
}

/// `GET /ledger?as_of=`: the trial balance, now or as of an instant (Seoul time).
#[get("/ledger")]
pub async fn trial_balance(
    viewer: Viewer,
    state: web::Data<AppState>,
    form: web::Query<TrialBalanceForm>,
) -> Result<HttpResponse, ConsoleError> {
    let lang = viewer.lang;
    finance_only(&viewer)?;
    let as_of = match given(&form.as_of) {
        Some(raw) => {
            Some(parse_time_input(raw).ok_or_else(|| invalid(lang, "as_of", "must be a date and time (Seoul)"))?)
        }
        None => None,
    };
    let fail = |e: crate::http::ApiError| ConsoleError::api(lang, e);
    let mut conn = state.pool.get().await.map_err(|e| fail(e.into()))?;
    let now = state.clock.now(&mut conn).await.map_err(|e| fail(e.into()))?;
    let tb = trial_balance_report(&mut conn, as_of, now).await.map_err(fail)?;
    let export_link = |format: &str| {
        let mut q = form_urlencoded::Serializer::new(String::new());
        q.append_pair("format", format);
        if let Some(at) = as_of {
            q.append_pair("to", &time_input(at));
        }
        format!("/ledger/export?{}", q.finish())
    };
    let body = html! {
        form.filters method="get" action="/ledger" {
            label { (lang.tr("As of (Seoul time; postings before it)", "기준 시각 (서울 시간, 그 이전 분개)"))
                input type="datetime-local" name="as_of" value=(as_of.map(time_input).unwrap_or_default()); }
            button type="submit" { (lang.tr("Show", "보기")) }
        }
        p {
            (lang.tr("As of", "기준")) " " strong { (time(tb.as_of)) } " · "
            a href="/ledger/verify" { (lang.tr("Verify the ledger", "원장 검증")) } " · "
            (lang.tr("Download the journal:", "분개장 내려받기:")) " "
            a href=(export_link("hledger")) download { "hledger" } " · "
            a href=(export_link("csv")) download { "CSV" }
        }
        @let show_all = form.all.is_some();
        @let hidden: Vec<&str> = tb.totals.iter().filter(|t| !moved(t)).map(|t| t.currency.as_str()).collect();
        @if !show_all && !hidden.is_empty() {
            @let mut link = form_urlencoded::Serializer::new(String::new());
            @let link = link.append_pair("as_of", &form.as_of).append_pair("all", "1").finish();
            p.muted {
                (lang.tr("Nothing posted in", "분개가 없는 통화:")) " " (hidden.join(", ")) " · "
                a href={ "/ledger?" (link) } { (lang.tr("show them too", "함께 보기")) }
            }
        }
        @for totals in tb.totals.iter().filter(|t| show_all || moved(t)) {
            h2 { (lang.tr("Trial balance", "시산표")) " · " (totals.currency) }
            (accounts_table(&tb.data, totals, false, lang))
        }
        @for totals in tb.memo_totals.iter().filter(|t| show_all || moved(t)) {
            h2 { (lang.tr("Budget memo accounts", "예산 비망 계정")) " · " (totals.currency) }
            (accounts_table(&tb.data, totals, true, lang))
        }
    };
    Ok(page(&viewer, lang.tr("Ledger", "원장"), body))
}

fn accounts_table(rows: &[TrialBalanceRow], totals: &CurrencyTotals, memo: bool, lang: Lang) -> Markup {
    let money = |a: &str| format_money_str(a, &totals.currency, lang);
    html! {
        div.table-wrap { table data-currency=(totals.currency) data-memo=(memo) {
            thead { tr {
                th scope="col" { (lang.tr("Account", "계정")) }
                th scope="col" { (lang.tr("Organisation", "기관")) }
                th scope="col" class="num" { (lang.tr("Debits", "차변")) }
                th scope="col" class="num" { (lang.tr("Credits", "대변")) }
                th scope="col" class="num" { (lang.tr("Pending debits", "대기 차변")) }
                th scope="col" class="num" { (lang.tr("Pending credits", "대기 대변")) }
                th scope="col" class="num" { (lang.tr("Balance", "잔액")) }
            } }
            tbody {
                @for r in rows.iter().filter(|r| r.account.currency == totals.currency && (r.account.account_type == AccountType::Memo.as_str()) == memo) {
                    @let a = &r.account;
                    tr data-account=(a.id) data-balance=(a.balance) {
                        td { a href={ "/ledger/accounts/" (a.id) } { (a.code) } }
                        td { (r.org.as_ref().map(|o| o.name.as_str()).unwrap_or("")) }
                        td.num { (money(&a.debits_posted)) }
                        td.num { (money(&a.credits_posted)) }
                        td.num { (money(&a.debits_pending)) }
                        td.num { (money(&a.credits_pending)) }
                        td.num { (money(&a.balance)) }
                    }
                }
            }
            tfoot { tr data-totals=(totals.currency) data-debits=(totals.debits_posted) data-credits=(totals.credits_posted) {
                th scope="row" colspan="2" { (lang.tr("Total", "합계")) }
                td.num { (money(&totals.debits_posted)) }
                td.num { (money(&totals.credits_posted)) }
                td.num { (money(&totals.debits_pending)) }
                td.num { (money(&totals.credits_pending)) }
                td {}
            } }
        } }
    }
}

#[derive(Debug, Default, Deserialize)]
pub struct AccountForm {
    #[serde(default)]
    cursor: String,
}

fn posting_kind(kind: &str, lang: Lang) -> &'static str {
    match kind {
        "posted" => lang.tr("posted", "확정"),
        "pending" => lang.tr("pending", "대기"),
        "post_pending" => lang.tr("pending, posted", "대기 확정"),
        "void_pending" => lang.tr("pending, voided", "대기 취소"),
        _ => lang.tr("other", "기타"),
    }
}

/// `GET /ledger/accounts/{id}`: the account's figures and its postings, oldest
/// first, a page at a time, with the posted balance after each.
#[get("/ledger/accounts/{id}")]
pub async fn account(
    viewer: Viewer,
    state: web::Data<AppState>,
    id: web::Path<String>,
    form: web::Query<AccountForm>,
) -> Result<HttpResponse, ConsoleError> {
    let lang = viewer.lang;
    finance_only(&viewer)?;
    let id = id.parse::<Uuid>().map_err(|_| ConsoleError::not_found(lang))?;
    let fail = |e: crate::http::ApiError| ConsoleError::api(lang, e);
    let mut conn = state.pool.get().await.map_err(|e| fail(e.into()))?;
    let row = visible_account(&mut conn, &viewer.principal, id).await.map_err(fail)?;
    let lines = account_postings_page(&mut conn, &row, Some(POSTINGS_PAGE), given(&form.cursor)).await.map_err(fail)?;
    let a = AccountView::from(row);
    let money = |v: &str| format_money_str(v, &a.currency, lang);
    let body = html! {
        p.muted { (a.account_type) " · " (a.currency) " · " (lang.tr("normal side", "정상 잔액")) " " (a.normal_side) }
        dl.figures {
            div { dt { (lang.tr("Balance", "잔액")) } dd data-figure="balance" data-amount=(a.balance) { (money(&a.balance)) } }
            div { dt { (lang.tr("Debits", "차변")) } dd { (money(&a.debits_posted)) } }
            div { dt { (lang.tr("Credits", "대변")) } dd { (money(&a.credits_posted)) } }
            div { dt { (lang.tr("Pending debits", "대기 차변")) } dd { (money(&a.debits_pending)) } }
            div { dt { (lang.tr("Pending credits", "대기 대변")) } dd { (money(&a.credits_pending)) } }
        }
        h2 { (lang.tr("Postings", "분개")) }
        @if lines.data.is_empty() { p.muted { (lang.tr("No postings.", "분개가 없습니다.")) } }
        @else {
            div.table-wrap { table {
                thead { tr {
                    th scope="col" { (lang.tr("Effective (Seoul time)", "발생 일시 (서울 시간)")) }
                    th scope="col" { (lang.tr("Entry", "전표")) }
                    th scope="col" { (lang.tr("Posting", "분개 구분")) }
                    th scope="col" { (lang.tr("Against", "상대 계정")) }
                    th scope="col" class="num" { (lang.tr("Debit", "차변")) }
                    th scope="col" class="num" { (lang.tr("Credit", "대변")) }
                    th scope="col" class="num" { (lang.tr("Balance", "잔액")) }
                } }
                tbody { @for l in &lines.data { tr data-posting=(l.posting_id) data-amount=(l.amount) data-balance=(l.balance) {
                    td { (time(l.effective_at)) }
                    td { a href={ "/ledger/entries/" (l.entry_id) } { (l.entry_kind) } " " span.muted { (l.memo) } }
                    td { (posting_kind(&l.kind, lang)) }
                    td { a href={ "/ledger/accounts/" (l.counter_account_id) } { (l.counter_account_code) } }
                    td.num { @if l.side == "debit" { (money(&l.amount)) } }
                    td.num { @if l.side == "credit" { (money(&l.amount)) } }
                    td.num { (money(&l.balance)) }
                } } }
            } }
            @if let Some(next) = &lines.next_cursor {
                @let link = form_urlencoded::Serializer::new(String::new()).append_pair("cursor", next).finish();
                p.pager { a href={ "/ledger/accounts/" (a.id) "?" (link) } rel="next" { (lang.tr("Later postings →", "다음 분개 →")) } }
            }
        }
    };
    Ok(page(&viewer, &a.code, body))
}

/// `GET /ledger/entries/{id}`: a journal entry and all its postings.
#[get("/ledger/entries/{id}")]
pub async fn entry(
    viewer: Viewer,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ConsoleError> {
    let lang = viewer.lang;
    finance_only(&viewer)?;
    let id = id.parse::<Uuid>().map_err(|_| ConsoleError::not_found(lang))?;
    let fail = |e: crate::http::ApiError| ConsoleError::api(lang, e);
    let mut conn = state.pool.get().await.map_err(|e| fail(e.into()))?;
    let (entry, postings) = store::entry_with_postings(&mut conn, id)
        .await
        .map_err(|e| fail(e.into()))?
        .ok_or_else(|| ConsoleError::not_found(lang))?;
    let e = entry_view(&mut conn, entry, postings).await.map_err(fail)?;
    let body = html! {
        dl.figures {
            div { dt { (lang.tr("Kind", "종류")) } dd { (e.kind) } }
            div { dt { (lang.tr("Effective (Seoul time)", "발생 일시 (서울 시간)")) } dd { (time(e.effective_at)) } }
            div { dt { (lang.tr("Recorded (Seoul time)", "기록 일시 (서울 시간)")) } dd { (time(e.recorded_at)) } }
            @if let Some(r) = &e.reference { div { dt { (lang.tr("Reference", "참조")) } dd { (r) } } }
        }
        p { (e.memo) }
        @if let Some(reversed) = e.reverses_entry_id {
            p { (lang.tr("Reverses", "역분개 대상")) " " a href={ "/ledger/entries/" (reversed) } { (reversed) } }
        }
        div.table-wrap { table {
            thead { tr {
                th scope="col" { (lang.tr("Debit", "차변")) }
                th scope="col" { (lang.tr("Credit", "대변")) }
                th scope="col" { (lang.tr("Posting", "분개 구분")) }
                th scope="col" class="num" { (lang.tr("Amount", "금액")) }
            } }
            tbody { @for p in &e.postings { tr data-posting=(p.id) data-amount=(p.amount) {
                td { a href={ "/ledger/accounts/" (p.debit_account_id) } { (p.debit_account_code) } }
                td { a href={ "/ledger/accounts/" (p.credit_account_id) } { (p.credit_account_code) } }
                td { (posting_kind(&p.kind, lang)) }
                td.num { (format_money_str(&p.amount, &p.currency, lang)) }
            } } }
        } }
    };
    Ok(page(&viewer, &format!("{} · {}", lang.tr("Journal entry", "전표"), e.kind), body))
}

#[derive(Debug, Default, Deserialize)]
pub struct ExportForm {
    #[serde(default)]
    format: String,
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
}

/// `GET /ledger/export?format=hledger|csv&from=&to=`: the journal export of
/// `GET /v1/exports/journal`, downloaded with the console's session.
#[get("/ledger/export")]
pub async fn export(
    viewer: Viewer,
    state: web::Data<AppState>,
    form: web::Query<ExportForm>,
) -> Result<HttpResponse, ConsoleError> {
    let lang = viewer.lang;
    finance_only(&viewer)?;
    let format = match form.format.as_str() {
        "" | "hledger" => Format::Hledger,
        "csv" => Format::Csv,
        _ => return Err(invalid(lang, "format", "must be hledger or csv")),
    };
    let instant = |raw: &str, field: &str| match given(raw) {
        None => Ok(None),
        Some(v) => parse_time_input(v).map(Some).ok_or_else(|| invalid(lang, field, "must be a date and time (Seoul)")),
    };
    let (from, to) = (instant(&form.from, "from")?, instant(&form.to, "to")?);
    crate::http::extract::check_period(from, to).map_err(|e| ConsoleError::api(lang, e))?;
    let mut conn = state.pool.get().await.map_err(|e| ConsoleError::api(lang, e))?;
    export_response(&mut conn, from, to, &state.settings.time_zone, format)
        .await
        .map_err(|e| ConsoleError::api(lang, e))
}

/// `GET /ledger/verify`: every invariant recomputed, as `GET /v1/ledger/verify`.
#[get("/ledger/verify")]
pub async fn verify(viewer: Viewer, state: web::Data<AppState>) -> Result<HttpResponse, ConsoleError> {
    let lang = viewer.lang;
    finance_only(&viewer)?;
    let mut conn = state.pool.get().await.map_err(|e| ConsoleError::api(lang, e))?;
    let report = crate::verify::verify(&mut conn).await.map_err(|e| ConsoleError::api(lang, e))?;
    let body = html! {
        @if report.ok {
            p.notice role="status" data-verify="ok" { (lang.tr("The books agree: every invariant holds.", "장부가 일치합니다. 모든 불변식이 성립합니다.")) }
        } @else {
            div.problem role="alert" data-verify="differences" {
                p { (lang.tr("The books disagree in these places:", "다음 항목에서 장부가 일치하지 않습니다:")) }
            }
            div.table-wrap { table {
                thead { tr {
                    th scope="col" { (lang.tr("Invariant", "불변식")) }
                    th scope="col" { (lang.tr("Currency", "통화")) }
                    th scope="col" { (lang.tr("Account", "계정")) }
                    th scope="col" { (lang.tr("Figure", "항목")) }
                    th scope="col" class="num" { (lang.tr("Expected", "기대값")) }
                    th scope="col" class="num" { (lang.tr("Stored", "저장값")) }
                    th scope="col" { (lang.tr("What differs", "차이")) }
                } }
                tbody { @for d in &report.differences { tr {
                    td { (d.invariant) }
                    td { (d.currency.as_deref().unwrap_or("")) }
                    td { @if let Some(id) = d.account_id { a href={ "/ledger/accounts/" (id) } { (d.code.as_deref().unwrap_or("")) } } @else { (d.code.as_deref().unwrap_or("")) } }
                    td { (d.field.as_deref().unwrap_or("")) }
                    td.num { (d.expected.as_deref().unwrap_or("")) }
                    td.num { (d.actual.as_deref().unwrap_or("")) }
                    td { (d.detail) }
                } } }
            } }
        }
        p { a href="/ledger" { (lang.tr("Back to the trial balance", "시산표로")) } }
    };
    Ok(page(&viewer, lang.tr("Ledger verification", "원장 검증"), body))
}
