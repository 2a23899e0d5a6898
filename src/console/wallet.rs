//! The tenant's wallet (`/wallet`): its own money per currency, the subsidy
//! its grants hold (each as a gauge: used, committed, left), and a statement
//! with the balance after every line.

use actix_web::{HttpResponse, get, web};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use maud::html;
use rust_decimal::Decimal;
use serde::Deserialize;

use super::chart;
use super::error::ConsoleError;
use super::layout::{page, time};
use super::money::{format_money, format_money_str};
use super::session::Viewer;
use crate::auth::Role;
use crate::ledger::model::NormalSide;
use crate::ledger::queries::{AccountFilter, list_accounts, statement};
use crate::money::Currency;
use crate::state::AppState;
use crate::subsidy::programmes::{GrantRow, GrantStatus};

/// Statement lines per page.
const STATEMENT_PAGE: i64 = 50;

#[derive(Debug, Default, Deserialize)]
pub struct WalletForm {
    #[serde(default)]
    currency: String,
    #[serde(default)]
    after: Option<i64>,
}

#[get("/wallet")]
pub async fn wallet(
    viewer: Viewer,
    state: web::Data<AppState>,
    form: web::Query<WalletForm>,
) -> Result<HttpResponse, ConsoleError> {
    use crate::db::schema::grants;
    let lang = viewer.lang;
    viewer.principal.require(&[Role::Tenant]).map_err(|e| ConsoleError::api(lang, e))?;
    let fail = |e: crate::http::ApiError| ConsoleError::api(lang, e);
    let mut conn = state.pool.get().await.map_err(|e| fail(e.into()))?;
    let filter = AccountFilter {
        org_id: Some(viewer.principal.org_id),
        code_prefix: Some(crate::ledger::chart::tenant_wallet_code(viewer.principal.org_id)),
        ..Default::default()
    };
    let mut wallets = list_accounts(&mut conn, &filter, None, 20).await.map_err(|e| fail(e.into()))?;
    // A wallet per supported currency exists from sign-up; show those in use
    // (and KRW, the market's currency, always).
    wallets.retain(|w| {
        w.currency == Currency::Krw
            || [w.debits_posted, w.credits_posted, w.debits_pending, w.credits_pending].iter().any(|v| !v.is_zero())
    });
    let grant_rows: Vec<GrantRow> = grants::table
        .filter(grants::tenant_org_id.eq(viewer.principal.org_id))
        .select(GrantRow::as_select())
        .order(grants::valid_until.desc())
        .limit(50)
        .load(&mut conn)
        .await
        .map_err(|e| fail(e.into()))?;
    let grant_views = crate::subsidy::routes::grant_views(&mut conn, grant_rows).await.map_err(|e| fail(e.into()))?;
    let chosen = wallets
        .iter()
        .find(|w| w.currency.code() == form.currency)
        .or_else(|| wallets.iter().find(|w| w.debits_posted + w.credits_posted > Decimal::ZERO))
        .or_else(|| <[_]>::first(&wallets));
    let after = form.after.unwrap_or(0).max(0);
    let lines = match chosen {
        Some(w) => statement(&mut conn, w.id, after, STATEMENT_PAGE + 1).await.map_err(|e| fail(e.into()))?,
        None => Vec::new(),
    };
    let more = lines.len() as i64 > STATEMENT_PAGE;
    let lines = &lines[..lines.len().min(STATEMENT_PAGE as usize)];
    let body = html! {
        h2 { (lang.tr("Your own money", "내 돈")) }
        dl.figures {
            @for w in &wallets {
                @let (balance, available) = (w.balance(), w.available());
                div {
                    dt { (w.currency.code()) " · " (lang.tr("balance", "잔액")) }
                    dd { (format_money(balance.amount, w.currency, lang)) }
                    dd.muted { (lang.tr("of which reserved for orders", "주문 예약분")) " " (balance.checked_sub(available).map_or_else(|_| String::new(), |r| format_money(r.amount, r.currency, lang))) }
                    dd.muted { (lang.tr("available", "사용 가능")) " " (format_money(available.amount, w.currency, lang)) }
                }
            }
        }
        h2 { (lang.tr("Subsidy: your grants", "지원금")) }
        @if grant_views.is_empty() {
            p.muted { (lang.tr("You have no grants.", "받은 지원금이 없습니다.")) }
        }
        @for g in &grant_views {
            @let dec = |s: &str| s.parse::<Decimal>().unwrap_or_default();
            section.grant {
                h3 { (lang.tr("Grant", "지원금")) " " (format_money_str(&g.amount, &g.currency, lang)) " · "
                    (lang.tr("valid until", "유효 기한")) " " (time(g.valid_until))
                    @if g.status != GrantStatus::Active { " · " (lang.tr("closed", "종료됨")) } }
                (chart::gauge(dec(&g.spent), dec(&g.committed), dec(&g.amount), lang.tr("Grant use", "지원금 사용")))
                p.legend {
                    span.used { (lang.tr("Used", "사용")) " " (format_money_str(&g.spent, &g.currency, lang)) } " · "
                    span.committed { (lang.tr("Committed", "약정")) " " (format_money_str(&g.committed, &g.currency, lang)) } " · "
                    span.left { (lang.tr("Left", "잔여")) " " (format_money_str(&g.available, &g.currency, lang)) }
                }
            }
        }
        @if let Some(w) = chosen {
            @let side = w.normal_side;
            h2 { (lang.tr("Statement", "거래 내역")) " · " (w.currency) }
            @if wallets.len() > 1 {
                p { @for other in &wallets { a href={ "/wallet?currency=" (other.currency) } { (other.currency) } " " } }
            }
            @if lines.is_empty() {
                p.muted { (lang.tr("Nothing yet.", "아직 내역이 없습니다.")) }
            } @else {
                div.table-wrap { table {
                    thead { tr {
                        th scope="col" { (lang.tr("When (Seoul time)", "일시 (서울 시간)")) }
                        th scope="col" { (lang.tr("What", "내용")) }
                        th scope="col" class="num" { (lang.tr("In", "입금")) }
                        th scope="col" class="num" { (lang.tr("Out", "출금")) }
                        th scope="col" class="num" { (lang.tr("Reserved (+) / released (−)", "예약 (+) / 해제 (−)")) }
                        th scope="col" class="num" { (lang.tr("Balance", "잔액")) }
                    } }
                    tbody { @for line in lines {
                        @let incoming = (line.side == "credit") == (side == NormalSide::Credit);
                        @let amount = format_money(line.amount, w.currency, lang);
                        // A pending posting reserves money and its void
                        // releases it: neither moves the balance, so they
                        // have a column of their own.
                        @let moves_balance = matches!(line.kind.as_str(), "posted" | "post_pending");
                        tr {
                            td { (time(line.effective_at)) }
                            td { (line.memo) }
                            td.num { @if moves_balance && incoming { (amount) } }
                            td.num { @if moves_balance && !incoming { (amount) } }
                            td.num {
                                @if line.kind == "pending" { "+" (amount) }
                                @if line.kind == "void_pending" { "−" (amount) }
                            }
                            td.num { (format_money(line.balance, w.currency, lang)) }
                        }
                    } }
                } }
                @if more { @if let Some(last) = lines.last() {
                    p.pager { a href={ "/wallet?currency=" (w.currency) "&after=" (last.seq) } rel="next" { (lang.tr("Later lines →", "다음 내역 →")) } }
                } }
            }
        }
    };
    Ok(page(&viewer, lang.tr("Wallet", "지갑"), body))
}
