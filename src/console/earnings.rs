//! The provider's earnings (`/earnings`): what the operator owes it (payable),
//! what is still reserved for hours to come (pending), what it has been paid
//! out, what may be paid out now; its payouts; and its statement with the
//! balance after every line — from the ledger's own accounts, the payouts list
//! of `GET /v1/payouts` and the statement of `/v1/reports/statements/{org_id}`.

use actix_web::{HttpResponse, get, web};
use maud::html;
use rust_decimal::Decimal;
use serde::Deserialize;

use super::error::ConsoleError;
use super::layout::{page, time};
use super::money::{format_money, format_money_in, format_money_str};
use super::session::Viewer;
use crate::auth::Role;
use crate::finance::list_routes::{PayoutListQuery, payouts_page};
use crate::finance::reports::org_statement;
use crate::http::ApiError;
use crate::ledger::chart;
use crate::ledger::model::NormalSide;
use crate::ledger::store as ledger_store;
use crate::money::Currency;
use crate::state::AppState;

/// Statement lines per page.
const STATEMENT_PAGE: usize = 50;
/// Payouts per page.
const PAYOUTS_PAGE: i64 = 25;

#[derive(Debug, Default, Deserialize)]
pub struct EarningsQuery {
    #[serde(default)]
    currency: String,
    /// Statement lines to skip (a page's offset); text, so a mangled link
    /// shows the first page rather than failing.
    #[serde(default)]
    line: String,
    #[serde(default)]
    payouts: String,
}

/// One currency's figures of a provider.
struct Figures {
    currency: Currency,
    payable: Decimal,
    pending: Decimal,
    paid_out: Decimal,
}

/// Everything paid out to `provider` in `currency`: the sum of its payouts.
async fn paid_out(
    conn: &mut diesel_async::AsyncPgConnection,
    provider: uuid::Uuid,
    currency: Currency,
) -> Result<Decimal, ApiError> {
    let mut total = Decimal::ZERO;
    let mut cursor = None;
    loop {
        let page = payouts_page(
            conn,
            PayoutListQuery { provider_org_id: Some(provider), currency: Some(currency), limit: Some(100), cursor },
        )
        .await?;
        for p in &page.data {
            let amount: Decimal = p.amount.parse().map_err(ApiError::internal)?;
            total = total.checked_add(amount).ok_or(crate::ledger::LedgerError::Overflow)?;
        }
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => return Ok(total),
        }
    }
}

#[get("/earnings")]
pub async fn earnings(
    viewer: Viewer,
    state: web::Data<AppState>,
    query: web::Query<EarningsQuery>,
) -> Result<HttpResponse, ConsoleError> {
    let lang = viewer.lang;
    viewer.principal.require(&[Role::Provider]).map_err(|e| ConsoleError::api(lang, e))?;
    let fail = |e: ApiError| ConsoleError::api(lang, e);
    let org = viewer.principal.org_id;
    let mut conn = state.pool.get().await.map_err(|e| fail(e.into()))?;
    // The payable per currency: shown for the currencies in use, and KRW (the market's) always.
    let mut figures = Vec::new();
    for c in Currency::ALL {
        let Some(payable) = ledger_store::account_by_code(&mut conn, &chart::provider_payable_code(org), c)
            .await
            .map_err(|e| fail(e.into()))?
        else {
            continue;
        };
        let b = payable.balances();
        let pending = b.credits_pending.checked_sub(b.debits_pending).ok_or(crate::ledger::LedgerError::Overflow);
        let pending = pending.map_err(|e| fail(e.into()))?;
        let paid = paid_out(&mut conn, org, c).await.map_err(fail)?;
        let in_use =
            [b.debits_posted, b.credits_posted, b.debits_pending, b.credits_pending].iter().any(|v| !v.is_zero());
        if in_use || c == Currency::Krw {
            figures.push(Figures {
                currency: c,
                payable: b.posted_balance(NormalSide::Credit),
                pending,
                paid_out: paid,
            });
        }
    }
    let chosen = figures
        .iter()
        .map(|f| f.currency)
        .find(|c| c.code() == query.currency)
        .or_else(|| figures.first().map(|f| f.currency))
        .unwrap_or(Currency::Krw);
    let statement = org_statement(&mut conn, &state, &viewer.principal, org, None, None, Some(chosen))
        .await
        .map_err(|e| fail(e.into()))?;
    let payouts = payouts_page(
        &mut conn,
        PayoutListQuery {
            provider_org_id: Some(org),
            currency: None,
            limit: Some(PAYOUTS_PAGE),
            cursor: Some(query.payouts.clone()).filter(|c| !c.is_empty()),
        },
    )
    .await
    .map_err(fail)?;
    let section_name = |name: &str| match name {
        "payable" => lang.tr("What we owe you (payable)", "지급 예정액 (미지급금)"),
        "owed_by_provider" => {
            lang.tr("What you owe back (outage credits after a payout)", "반환할 금액 (지급 후 장애 보상)")
        }
        _ => lang.tr("Other", "기타"),
    };
    let category = |name: &str| match name {
        "earned" => lang.tr("Earned", "수익"),
        "fee" => lang.tr("Platform fee", "플랫폼 수수료"),
        "outage_credit" => lang.tr("Outage credit", "장애 보상"),
        "payout" => lang.tr("Payout", "지급"),
        _ => lang.tr("Adjustment", "조정"),
    };
    let body = html! {
        @for f in &figures {
            h2 { (f.currency.code()) }
            dl.figures {
                div { dt { (lang.tr("Payable (settled, not yet paid out)", "지급 예정 (정산 완료, 미지급)")) } dd.payable { (format_money(f.payable, f.currency, lang)) } }
                div { dt { (lang.tr("Pending (hours not yet settled)", "대기 (아직 정산되지 않은 시간)")) } dd.pending { (format_money(f.pending, f.currency, lang)) } }
                div { dt { (lang.tr("Paid out", "지급 완료")) } dd.paid-out { (format_money(f.paid_out, f.currency, lang)) } }
                @for p in statement.payout_positions.iter().filter(|p| p.currency == f.currency.code()) {
                    div {
                        dt { (lang.tr("May be paid out now", "지금 지급 가능")) }
                        dd.payable-now { (format_money_str(&p.payable_now, &p.currency, lang)) }
                        dd.muted { (lang.tr("waiting for the programme's payment", "지원 사업 입금 대기")) " " (format_money_str(&p.awaiting_programme, &p.currency, lang)) }
                    }
                }
            }
        }

        h2 { (lang.tr("Payouts", "지급 내역")) }
        @if payouts.data.is_empty() { p.muted { (lang.tr("No payouts yet.", "아직 지급 내역이 없습니다.")) } }
        @else {
            div.table-wrap { table {
                thead { tr {
                    th scope="col" { (lang.tr("When (Seoul time)", "일시 (서울 시간)")) }
                    th scope="col" { (lang.tr("Bank reference", "은행 참조")) }
                    th scope="col" class="num" { (lang.tr("Amount", "금액")) }
                } }
                tbody { @for p in &payouts.data { tr.payout {
                    td { (time(p.created_at)) }
                    td { (p.reference) }
                    td.num { (format_money_str(&p.amount, &p.currency, lang)) }
                } } }
            } }
            @if let Some(next) = &payouts.next_cursor {
                @let link: String = form_urlencoded::byte_serialize(next.as_bytes()).collect();
                p.pager { a href={ "/earnings?currency=" (chosen.code()) "&payouts=" (link) } rel="next" { (lang.tr("More payouts →", "더 보기 →")) } }
            }
        }

        h2 { (lang.tr("Statement", "거래 내역")) " · " (chosen.code()) }
        @if figures.len() > 1 {
            p { @for f in &figures { a href={ "/earnings?currency=" (f.currency.code()) } { (f.currency.code()) } " " } }
        }
        @if statement.sections.is_empty() { p.muted { (lang.tr("Nothing yet.", "아직 내역이 없습니다.")) } }
        @for section in &statement.sections {
            @let start = query.line.parse::<usize>().unwrap_or(0).min(section.lines.len());
            @let end = (start + STATEMENT_PAGE).min(section.lines.len());
            h3 { (section_name(&section.section)) }
            div.table-wrap { table.statement {
                thead { tr {
                    th scope="col" { (lang.tr("When (Seoul time)", "일시 (서울 시간)")) }
                    th scope="col" { (lang.tr("Kind", "구분")) }
                    th scope="col" { (lang.tr("What", "내용")) }
                    th scope="col" class="num" { (lang.tr("Amount", "금액")) }
                    th scope="col" class="num" { (lang.tr("Balance", "잔액")) }
                } }
                tbody {
                    @if start == 0 {
                        tr { td {} td {} td { (lang.tr("Opening balance", "기초 잔액")) } td.num {} td.num { (format_money_in(&section.opening_balance, section.currency, lang)) } }
                    }
                    @for line in &section.lines[start..end] { tr {
                        td { (time(line.effective_at)) }
                        td { (category(&line.category)) }
                        td { (line.memo) }
                        td.num { (format_money_in(&line.amount, section.currency, lang)) }
                        td.num { (format_money_in(&line.balance, section.currency, lang)) }
                    } }
                    @if end == section.lines.len() {
                        tr.closing { td {} td {} th scope="row" { (lang.tr("Closing balance", "기말 잔액")) } td.num {} td.num { strong { (format_money_in(&section.closing_balance, section.currency, lang)) } } }
                    }
                }
            } }
            p.pager {
                @if start > 0 { a href={ "/earnings?currency=" (chosen.code()) "&line=" (start.saturating_sub(STATEMENT_PAGE)) } rel="prev" { (lang.tr("← Earlier lines", "← 이전 내역")) } }
                @if end < section.lines.len() { a href={ "/earnings?currency=" (chosen.code()) "&line=" (end) } rel="next" { (lang.tr("Later lines →", "다음 내역 →")) } }
            }
        }
    };
    Ok(page(&viewer, lang.tr("Earnings", "수익"), body))
}
