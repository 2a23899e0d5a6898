//! Finance's programmes: the list (`/programmes`) and each programme's
//! dashboard (`/programmes/{id}`) — the programme report's figures, each
//! linked to the postings behind it, a burn-down chart, the breakdowns, and
//! its grants (use per grant, create, close) through the API's own writes.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, get, post, web};
use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use chrono_tz::Tz;
use maud::{Markup, html};
use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;
use serde::Deserialize;
use uuid::Uuid;

use super::error::ConsoleError;
use super::finance::{answer, by_category, finance_only, form_key, form_tokens, given, invalid};
use super::form::{ConsoleForm, KeyForm, problem_box, refused};
use super::i18n::Lang;
use super::layout::{self, VIEWER_ZONE, page, page_with_status, parse_time_input, time, time_input};
use super::money::format_money_str;
use super::session::Viewer;
use crate::finance::burn_down::{BurnPoint, burn_down, daily_movements};
use crate::finance::list_routes::{OrganisationListQuery, organisations_page};
use crate::finance::reports::{GroupBy, ProgrammeReport, ReportGroup, report};
use crate::http::{ApiError, FieldError};
use crate::ledger::chart;
use crate::ledger::store as ledger_store;
use crate::money::{Currency, format_amount};
use crate::state::AppState;
use crate::subsidy::list_routes::{ProgrammeListQuery, programmes_page};
use crate::subsidy::programmes::{GrantStatus, find_programme};
use crate::subsidy::reclaim_routes::{ReclaimRequest, ReclaimView, reclaim_write};
use crate::subsidy::routes::{GrantListQuery, GrantRequest, GrantView, close_grant_write, grant_write, grants_page};

/// The most days a burn-down draws (a programme of a few years at most).
const MAX_DAYS: i64 = 1100;

#[derive(Debug, Default, Deserialize)]
pub struct ListForm {
    #[serde(default)]
    fiscal_year: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    cursor: String,
}

/// `GET /programmes`: every programme, oldest first, a page at a time.
#[get("/programmes")]
pub async fn list(
    viewer: Viewer,
    state: web::Data<AppState>,
    form: web::Query<ListForm>,
) -> Result<HttpResponse, ConsoleError> {
    let lang = viewer.lang;
    finance_only(&viewer)?;
    let fiscal_year = match given(&form.fiscal_year) {
        Some(y) => Some(y.parse::<i32>().map_err(|_| invalid(lang, "fiscal_year", "must be a year"))?),
        None => None,
    };
    let query = ProgrammeListQuery {
        fiscal_year,
        currency: None,
        status: given(&form.status).map(String::from),
        limit: Some(25),
        cursor: given(&form.cursor).map(String::from),
    };
    let mut conn = state.pool.get().await.map_err(|e| ConsoleError::api(lang, e))?;
    let found = programmes_page(&mut conn, query).await.map_err(|e| ConsoleError::api(lang, e))?;
    let body = html! {
        form.filters method="get" action="/programmes" {
            label { (lang.tr("Fiscal year", "회계연도")) input type="number" name="fiscal_year" min="2000" max="2200" value=(form.fiscal_year); }
            label { (lang.tr("Status", "상태"))
                select name="status" {
                    option value="" { (lang.tr("All", "전체")) }
                    option value="open" selected[form.status == "open"] { (lang.tr("Open", "진행 중")) }
                    option value="settled" selected[form.status == "settled"] { (lang.tr("Settled", "정산 완료")) }
                }
            }
            button type="submit" { (lang.tr("Show", "보기")) }
        }
        @if found.data.is_empty() {
            p.muted { (lang.tr("No programmes.", "지원 사업이 없습니다.")) }
        } @else {
            div.table-wrap { table {
                thead { tr {
                    th scope="col" { (lang.tr("Programme", "지원 사업")) }
                    th scope="col" { (lang.tr("Sponsor", "주관 기관")) }
                    th scope="col" { (lang.tr("Fiscal year", "회계연도")) }
                    th scope="col" { (lang.tr("Runs (Seoul time)", "기간 (서울 시간)")) }
                    th scope="col" class="num" { (lang.tr("Budget", "예산")) }
                } }
                tbody { @for p in &found.data { tr {
                    td { a href={ "/programmes/" (p.id) } { (p.name) } }
                    td { (p.sponsor) }
                    td { (p.fiscal_year) }
                    td { (time(p.starts_at)) " – " (time(p.ends_at)) }
                    td.num { (format_money_str(&p.budget, &p.currency, lang)) }
                } } }
            } }
            @if let Some(next) = &found.next_cursor {
                @let link = form_urlencoded::Serializer::new(String::new())
                    .append_pair("fiscal_year", &form.fiscal_year).append_pair("status", &form.status).append_pair("cursor", next).finish();
                p.pager { a href={ "/programmes?" (link) } rel="next" { (lang.tr("More programmes →", "다음 지원 사업 →")) } }
            }
        }
    };
    Ok(page(&viewer, lang.tr("Programmes", "지원 사업"), body))
}

/// The zone the programme office keeps its days in (as the report's months).
fn office_zone(state: &AppState) -> Tz {
    state.settings.time_zone.parse::<Tz>().unwrap_or(VIEWER_ZONE)
}

/// The programme's days in the office's zone: from its start to the day its
/// last instant falls on, at most [`MAX_DAYS`].
pub fn programme_days(starts_at: DateTime<Utc>, ends_at: DateTime<Utc>, zone: Tz) -> (NaiveDate, NaiveDate) {
    let first = starts_at.with_timezone(&zone).date_naive();
    let last_instant = ends_at.checked_sub_signed(TimeDelta::seconds(1)).unwrap_or(ends_at).max(starts_at);
    let last = last_instant.with_timezone(&zone).date_naive();
    let capped = first.checked_add_signed(TimeDelta::days(MAX_DAYS - 1)).unwrap_or(last);
    (first, last.min(capped))
}

#[derive(Debug, Default, Deserialize)]
pub struct ShowForm {
    #[serde(default)]
    grants_cursor: String,
    #[serde(default)]
    granted: Option<String>,
    #[serde(default)]
    closed: Option<String>,
    #[serde(default)]
    reclaimed: Option<String>,
}

/// Where a figure's postings are: one account's page, or (when the figure
/// sums an account per grant) the grants, each linking its own.
struct Links {
    appropriation: Option<Uuid>,
    unallocated: Option<Uuid>,
    receivable: Option<Uuid>,
    advance: Option<Uuid>,
    /// The grants' `available` and `spent` accounts, in the grants' order.
    grant_accounts: Vec<(Uuid, Option<Uuid>, Option<Uuid>)>,
    /// Whether `grant_accounts` holds every grant of the programme (one page of them).
    all_grants: bool,
}

impl Links {
    fn account(id: Option<Uuid>) -> String {
        id.map_or_else(|| "#grants".to_string(), |id| format!("/ledger/accounts/{id}"))
    }

    /// A grant-level figure: its one grant's account, or the grants table.
    fn per_grant(&self, pick: impl Fn(&(Uuid, Option<Uuid>, Option<Uuid>)) -> Option<Uuid>) -> String {
        match self.grant_accounts.as_slice() {
            [only] if self.all_grants => Links::account(pick(only)),
            _ => "#grants".to_string(),
        }
    }
}

/// `GET /programmes/{id}`: the dashboard.
#[get("/programmes/{id}")]
pub async fn show(
    viewer: Viewer,
    state: web::Data<AppState>,
    id: web::Path<String>,
    flags: web::Query<ShowForm>,
) -> Result<HttpResponse, ConsoleError> {
    let lang = viewer.lang;
    finance_only(&viewer)?;
    let id = id.parse::<Uuid>().map_err(|_| ConsoleError::not_found(lang))?;
    dashboard(&viewer, &state, id, &flags, &GrantForm::default(), Refused::Nothing, StatusCode::OK).await
}

/// What a dashboard shows after a refused form, by the form.
#[derive(Clone, Copy)]
enum Refused<'a> {
    Nothing,
    /// The new grant's form, above it.
    Grant(&'a [String]),
    /// A grant's reclaim, above the grants table.
    Reclaim(&'a [String]),
}

/// The dashboard of programme `id`, its grant form filled with `draft` and
/// showing `problems` (a refused grant comes back to it, values kept).
async fn dashboard(
    viewer: &Viewer,
    state: &AppState,
    id: Uuid,
    flags: &ShowForm,
    draft: &GrantForm,
    refused: Refused<'_>,
    status: StatusCode,
) -> Result<HttpResponse, ConsoleError> {
    let lang = viewer.lang;
    let (grant_problems, table_problems) = match refused {
        Refused::Nothing => (&[][..], &[][..]),
        Refused::Grant(p) => (p, &[][..]),
        Refused::Reclaim(p) => (&[][..], p),
    };
    let fail = |e: crate::http::ApiError| ConsoleError::api(lang, e);
    let mut conn = state.pool.get().await.map_err(|e| fail(e.into()))?;
    let programme = find_programme(&mut conn, id)
        .await
        .map_err(|e| fail(e.into()))?
        .ok_or_else(|| ConsoleError::not_found(lang))?;
    let c = programme.currency;
    let zone = &state.settings.time_zone;
    // The programme report, as `GET /v1/reports/programmes/{id}?group_by=…` answers it.
    let by_tenant = report(&mut conn, id, c, Some(GroupBy::Tenant), zone).await.map_err(|e| fail(e.into()))?;
    let mut breakdowns = Vec::new();
    for by in [GroupBy::Provider, GroupBy::GpuModel, GroupBy::Month] {
        let r = report(&mut conn, id, c, Some(by), zone).await.map_err(|e| fail(e.into()))?;
        breakdowns.push((by, r.groups.unwrap_or_default()));
    }
    let movements = daily_movements(&mut conn, id, c, zone).await.map_err(|e| fail(e.into()))?;
    let (first, last) = programme_days(programme.starts_at, programme.ends_at, office_zone(state));
    let points = burn_down(&movements, first, last).unwrap_or_default();
    let grants = grants_page(
        &mut conn,
        &viewer.principal,
        GrantListQuery {
            programme_id: Some(id),
            tenant_org_id: None,
            flagged: None,
            limit: Some(100),
            cursor: given(&flags.grants_cursor).map(String::from),
        },
    )
    .await
    .map_err(fail)?;
    let tenant_ids: Vec<Uuid> = grants.data.iter().map(|g| g.tenant_org_id).collect();
    let tenant_names = crate::finance::names::orgs(&mut conn, &tenant_ids).await.map_err(|e| fail(e.into()))?;
    let account = async |conn: &mut diesel_async::AsyncPgConnection, code: String| {
        ledger_store::account_by_code(conn, &code, c).await.map(|a| a.map(|a| a.id))
    };
    let mut links = Links {
        appropriation: account(&mut conn, chart::appropriation_code(id)).await.map_err(|e| fail(e.into()))?,
        unallocated: account(&mut conn, chart::unallocated_code(id)).await.map_err(|e| fail(e.into()))?,
        receivable: account(&mut conn, chart::subsidy_receivable_code(id)).await.map_err(|e| fail(e.into()))?,
        advance: account(&mut conn, chart::programme_advance_code(id)).await.map_err(|e| fail(e.into()))?,
        grant_accounts: Vec::new(),
        all_grants: given(&flags.grants_cursor).is_none() && grants.next_cursor.is_none(),
    };
    for g in &grants.data {
        let available = account(&mut conn, chart::grant_available_code(g.id)).await.map_err(|e| fail(e.into()))?;
        let spent = account(&mut conn, chart::grant_spent_code(g.id)).await.map_err(|e| fail(e.into()))?;
        links.grant_accounts.push((g.id, available, spent));
    }
    let tenants = organisations_page(
        &mut conn,
        OrganisationListQuery { kind: Some("tenant".into()), category: None, q: None, limit: Some(500), cursor: None },
    )
    .await
    .map_err(fail)?;
    let now = state.clock.now(&mut conn).await.map_err(|e| fail(e.into()))?;

    let r = &by_tenant;
    let money = |amount: &str| format_money_str(amount, &r.currency, lang);
    let body = html! {
        @if flags.granted.is_some() { p.notice role="status" { (lang.tr("The grant is made.", "지원금을 배정했습니다.")) } }
        @if flags.reclaimed.is_some() { p.notice role="status" { (lang.tr("The grant is reclaimed: its orders' future hours are cancelled and refunded, and what it had left is back in the programme.", "지원금을 회수했습니다. 주문의 남은 시간은 취소·환불되었고 남은 금액은 사업 예산으로 돌아갔습니다.")) } }
        @if flags.closed.is_some() { p.notice role="status" { (lang.tr("The grant is closed; what it had left is back in the programme.", "지원금을 종료했고 남은 금액은 사업 예산으로 돌아갔습니다.")) } }
        p.muted {
            (programme.sponsor) " · " (lang.tr("fiscal year", "회계연도")) " " (programme.fiscal_year) " · "
            (time(programme.starts_at)) " – " (time(programme.ends_at))
        }
        h2 { (lang.tr("Figures", "현황")) }
        (figures(r, &links, lang))
        h2 { (lang.tr("Burn-down", "예산 소진")) }
        (burn_chart(&points, r.budget.parse().unwrap_or_default(), c, lang, &money))
        h2 { (lang.tr("Breakdowns", "세부 내역")) }
        (category_table(r.groups.as_deref().unwrap_or_default(), lang, &money))
        (group_table(lang.tr("By tenant", "수요 기업·기관별"), r.groups.as_deref().unwrap_or_default(), lang, &money))
        @for (by, groups) in &breakdowns {
            @let title = match by {
                GroupBy::Provider => lang.tr("By provider", "공급자별"),
                GroupBy::GpuModel => lang.tr("By GPU model", "GPU 모델별"),
                GroupBy::Month => lang.tr("By month (of the hours used)", "월별 (사용 시간 기준)"),
                GroupBy::Tenant => lang.tr("By tenant", "수요 기업·기관별"),
            };
            (group_table(title, groups, lang, &money))
        }
        h2 #grants { (lang.tr("Grants", "지원금")) }
        (problem_box(table_problems))
        (grant_table(viewer, &grants.data, &links, &tenant_names, lang))
        @if let Some(next) = &grants.next_cursor {
            @let link = form_urlencoded::Serializer::new(String::new()).append_pair("grants_cursor", next).finish();
            p.pager { a href={ "/programmes/" (id) "?" (link) "#grants" } rel="next" { (lang.tr("More grants →", "다음 지원금 →")) } }
        }
        h3 #grant-form { (lang.tr("Make a grant", "지원금 배정")) }
        (problem_box(grant_problems))
        form.quote method="post" action={ "/programmes/" (id) "/grants" } {
            (form_tokens(viewer))
            label { (lang.tr("Tenant", "수요 기업·기관"))
                select name="tenant_org_id" required {
                    @for t in &tenants.data {
                        option value=(t.id) selected[draft.tenant_org_id == t.id.to_string()] { (t.name) @if let Some(cat) = &t.category { " (" (cat) ")" } }
                    }
                }
            }
            label { (lang.tr("Amount (the most it pays)", "금액 (지원 한도)")) input type="text" inputmode="decimal" name="amount" value=(draft.amount) required; }
            label { (lang.tr("Rate (optional, e.g. 0.8)", "지원율 (선택, 예: 0.8)")) input type="text" inputmode="decimal" name="rate" value=(draft.rate); }
            label { (lang.tr("Valid from (Seoul time)", "시작 (서울 시간)")) input type="datetime-local" name="valid_from" value=(or_default(&draft.valid_from, || time_input(now))) required; }
            label { (lang.tr("Valid until (Seoul time)", "종료 (서울 시간)")) input type="datetime-local" name="valid_until" value=(or_default(&draft.valid_until, || time_input(programme.ends_at))) required; }
            button type="submit" { (lang.tr("Grant", "배정")) }
        }
    };
    Ok(page_with_status(viewer, status, &programme.name, body))
}

/// The report's figures, each with its exact amount (`data-amount`, as the
/// API's report has it) and a link to the postings behind it.
fn figures(r: &ProgrammeReport, links: &Links, lang: Lang) -> Markup {
    let available = |g: &(Uuid, Option<Uuid>, Option<Uuid>)| g.1;
    let spent = |g: &(Uuid, Option<Uuid>, Option<Uuid>)| g.2;
    let rows: [(&str, &str, &str, String); 12] = [
        ("budget", lang.tr("Budget", "예산"), &r.budget, Links::account(links.appropriation)),
        ("granted", lang.tr("Granted", "배정"), &r.granted, links.per_grant(available)),
        ("committed", lang.tr("Committed", "약정"), &r.committed, links.per_grant(spent)),
        ("spent", lang.tr("Spent", "집행"), &r.spent, links.per_grant(spent)),
        ("released", lang.tr("Released", "반환"), &r.released, links.per_grant(available)),
        ("unallocated", lang.tr("Unallocated", "미배정"), &r.unallocated, Links::account(links.unallocated)),
        ("claimed", lang.tr("Claimed", "청구"), &r.claimed, Links::account(links.receivable)),
        ("paid", lang.tr("Paid", "입금"), &r.paid, Links::account(links.receivable)),
        ("outstanding", lang.tr("Outstanding", "미수"), &r.outstanding, Links::account(links.receivable)),
        ("written_off", lang.tr("Written off", "대손 처리"), &r.written_off, Links::account(links.receivable)),
        ("advanced", lang.tr("Paid in advance", "선급"), &r.advanced, Links::account(links.advance)),
        ("unclaimed", lang.tr("Spent, not yet claimed", "미청구 집행액"), &r.unclaimed, links.per_grant(spent)),
    ];
    html! {
        dl.figures {
            @for (key, label, amount, href) in rows {
                div {
                    dt { (label) }
                    dd data-figure=(key) data-amount=(amount) {
                        a href=(href) { (format_money_str(amount, &r.currency, lang)) }
                    }
                }
            }
        }
    }
}

/// Spent (and spent + committed) per day, against the budget: lines over the
/// programme's days. Pixels only are floats; every amount shown is exact.
fn burn_chart(
    points: &[BurnPoint],
    budget: Decimal,
    c: Currency,
    lang: Lang,
    money: &dyn Fn(&str) -> String,
) -> Markup {
    const WIDTH: f64 = 720.0;
    const HEIGHT: f64 = 220.0;
    const LEFT: f64 = 8.0;
    const TOP: f64 = 18.0;
    const BOTTOM: f64 = 22.0;
    let title =
        lang.tr("Cumulative spent and committed per day, against the budget", "일별 누적 집행액과 약정액, 예산 대비");
    let top_value = points
        .iter()
        .filter_map(|p| p.spent.checked_add(p.committed))
        .chain([budget])
        .max()
        .unwrap_or(Decimal::ZERO)
        .max(Decimal::ONE);
    let y = |v: Decimal| -> f64 {
        let share = v.max(Decimal::ZERO).checked_div(top_value).and_then(|s| s.to_f64()).unwrap_or(0.0).min(1.0);
        HEIGHT - BOTTOM - share * (HEIGHT - TOP - BOTTOM)
    };
    let step = if points.len() > 1 { (WIDTH - 2.0 * LEFT) / (points.len() - 1) as f64 } else { 0.0 };
    let line = |value: &dyn Fn(&BurnPoint) -> Decimal| -> String {
        points
            .iter()
            .enumerate()
            .map(|(i, p)| format!("{:.1},{:.1}", LEFT + step * i as f64, y(value(p))))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let spent_line = line(&|p| p.spent);
    let held_line = line(&|p| p.spent.checked_add(p.committed).unwrap_or(p.spent));
    let last = points.last();
    html! {
        figure data-last-spent=[last.map(|p| format_amount(p.spent, c))] data-last-committed=[last.map(|p| format_amount(p.committed, c))] {
            svg.chart viewBox={ "0 0 " (WIDTH) " " (HEIGHT) } role="img" aria-label=(title) preserveAspectRatio="xMinYMin meet" {
                title { (title) }
                line x1=(LEFT) x2=(WIDTH - LEFT) y1=(y(budget)) y2=(y(budget)) stroke="#1d232b" stroke-dasharray="6 4" stroke-width="1.5" {}
                text x=(LEFT) y=(y(budget) - 4.0) { (lang.tr("Budget", "예산")) " " (money(&budget.to_string())) }
                @if let Some(end) = points.len().checked_sub(1) {
                    // Even pace: the budget spent evenly over the programme's days.
                    line x1=(LEFT) y1=(y(Decimal::ZERO)) x2=(LEFT + step * end as f64) y2=(y(budget)) stroke="#9aa3ad" stroke-dasharray="2 4" stroke-width="1" {}
                }
                polyline points=(held_line) fill="none" stroke="#e6a23c" stroke-width="2" {}
                polyline points=(spent_line) fill="none" stroke="#a3360f" stroke-width="2" {}
                @if let (Some(first), Some(last)) = (points.first(), last) {
                    text x=(LEFT) y=(HEIGHT - 6.0) { (first.day) }
                    text x=(WIDTH - LEFT) y=(HEIGHT - 6.0) text-anchor="end" { (last.day) }
                }
            }
            figcaption.legend {
                span.used { (lang.tr("Spent", "집행")) @if let Some(p) = last { " " (money(&p.spent.to_string())) } } " · "
                span.committed { (lang.tr("Spent + committed", "집행 + 약정")) @if let Some(p) = last { " " (money(&p.spent.checked_add(p.committed).unwrap_or(p.spent).to_string())) } } " · "
                span.pace { (lang.tr("Even pace (dotted)", "균등 소진 (점선)")) }
            }
        }
    }
}

fn category_label(category: Option<&str>, lang: Lang) -> String {
    match category {
        Some("sme") => lang.tr("SME", "중소기업").into(),
        Some("university") => lang.tr("University", "대학").into(),
        Some("midsize") => lang.tr("Mid-size company", "중견기업").into(),
        Some("enterprise") => lang.tr("Enterprise", "대기업").into(),
        Some("research") => lang.tr("Research institute", "연구기관").into(),
        Some("public") => lang.tr("Public body", "공공기관").into(),
        Some(other) => other.into(),
        None => lang.tr("Not declared", "미지정").into(),
    }
}

fn category_table(tenant_groups: &[ReportGroup], lang: Lang, money: &dyn Fn(&str) -> String) -> Markup {
    let sums = by_category(tenant_groups).unwrap_or_default();
    html! {
        h3 { (lang.tr("By tenant category", "수요자 유형별")) }
        @if sums.is_empty() { p.muted { (lang.tr("Nothing yet.", "아직 없습니다.")) } }
        @else {
            div.table-wrap { table {
                thead { tr {
                    th scope="col" { (lang.tr("Category", "유형")) }
                    th scope="col" class="num" { (lang.tr("Committed", "약정")) }
                    th scope="col" class="num" { (lang.tr("Spent", "집행")) }
                } }
                tbody { @for (category, (committed, spent)) in &sums { tr {
                    td { (category_label(category.as_deref(), lang)) }
                    td.num { (money(&committed.to_string())) }
                    td.num { (money(&spent.to_string())) }
                } } }
            } }
        }
    }
}

fn group_table(title: &str, groups: &[ReportGroup], lang: Lang, money: &dyn Fn(&str) -> String) -> Markup {
    html! {
        h3 { (title) }
        @if groups.is_empty() { p.muted { (lang.tr("Nothing yet.", "아직 없습니다.")) } }
        @else {
            div.table-wrap { table {
                thead { tr {
                    th scope="col" { (lang.tr("Who / what", "구분")) }
                    th scope="col" class="num" { (lang.tr("Committed", "약정")) }
                    th scope="col" class="num" { (lang.tr("Spent", "집행")) }
                } }
                tbody { @for g in groups { tr {
                    td { (g.name) }
                    td.num { (money(&g.committed)) }
                    td.num { (money(&g.spent)) }
                } } }
            } }
        }
    }
}

fn grant_table(
    viewer: &Viewer,
    grants: &[GrantView],
    links: &Links,
    names: &std::collections::HashMap<Uuid, crate::finance::names::OrgRef>,
    lang: Lang,
) -> Markup {
    html! {
        @if grants.is_empty() { p.muted { (lang.tr("No grants yet.", "아직 배정한 지원금이 없습니다.")) } }
        @else {
            div.table-wrap { table {
                thead { tr {
                    th scope="col" { (lang.tr("Tenant", "수요 기업·기관")) }
                    th scope="col" { (lang.tr("Valid (Seoul time)", "유효 기간 (서울 시간)")) }
                    th scope="col" class="num" { (lang.tr("Amount", "금액")) }
                    th scope="col" class="num" { (lang.tr("Used", "사용")) }
                    th scope="col" class="num" { (lang.tr("Committed", "약정")) }
                    th scope="col" class="num" { (lang.tr("Left", "잔여")) }
                    th scope="col" { (lang.tr("Status", "상태")) }
                } }
                tbody { @for g in grants {
                    @let accounts = links.grant_accounts.iter().find(|a| a.0 == g.id);
                    @let money = |a: &str| format_money_str(a, &g.currency, lang);
                    tr data-grant=(g.id) {
                        td { (names.get(&g.tenant_org_id).map_or_else(|| g.tenant_org_id.to_string(), |o| o.name.clone())) }
                        td { (time(g.valid_from)) " – " (time(g.valid_until)) }
                        td.num { (money(&g.amount)) }
                        td.num { @if let Some(id) = accounts.and_then(|a| a.2) { a href={ "/ledger/accounts/" (id) } { (money(&g.spent)) } } @else { (money(&g.spent)) } }
                        td.num { (money(&g.committed)) }
                        td.num { @if let Some(id) = accounts.and_then(|a| a.1) { a href={ "/ledger/accounts/" (id) } { (money(&g.available)) } } @else { (money(&g.available)) } }
                        td {
                            @if g.status == GrantStatus::Active {
                                span.status.status-active { (lang.tr("Active", "유효")) } " "
                                form.inline method="post" action={ "/grants/" (g.id) "/close" } {
                                    (form_tokens(viewer))
                                    button.danger type="submit" { (lang.tr("Close", "종료")) }
                                }
                                @if let Some(at) = g.flagged_at {
                                    p data-flagged=(g.id) {
                                        span.status.status-flagged { (lang.tr("Under-used", "저활용")) } " " (time(at))
                                        @if let Some(reason) = &g.flag_reason { " · " (reason) }
                                    }
                                    form.inline method="post" action={ "/grants/" (g.id) "/reclaim" } {
                                        (form_tokens(viewer))
                                        label { (lang.tr("Reason", "사유")) input type="text" name="reason" maxlength="500" required; }
                                        button.danger type="submit" { (lang.tr("Reclaim", "회수")) }
                                    }
                                }
                            } @else {
                                span.status.status-cancelled { (lang.tr("Closed", "종료됨")) } " " (lang.tr("released", "반환")) " " (money(&g.released))
                                @if let Some(at) = g.reclaimed_at {
                                    " · " span.status.status-cancelled data-reclaimed=(g.id) { (lang.tr("Reclaimed", "회수됨")) } " " (time(at))
                                }
                            }
                        }
                    }
                } }
            } }
        }
    }
}

#[derive(Debug, Default, Deserialize)]
pub struct GrantForm {
    #[serde(default)]
    idempotency_key: String,
    #[serde(default)]
    tenant_org_id: String,
    #[serde(default)]
    amount: String,
    #[serde(default)]
    rate: String,
    #[serde(default)]
    valid_from: String,
    #[serde(default)]
    valid_until: String,
}

/// What a form field shows: what was typed, or the default when nothing was.
fn or_default(typed: &str, default: impl Fn() -> String) -> String {
    if typed.trim().is_empty() { default() } else { typed.to_string() }
}

impl GrantForm {
    /// The API's request, or the fields that are not what it takes.
    fn request(&self, lang: Lang) -> Result<GrantRequest, ApiError> {
        let mut errors = Vec::new();
        let mut problem =
            |field: &str, en: &'static str, ko: &'static str| errors.push(FieldError::new(field, lang.tr(en, ko)));
        let tenant_org_id = self.tenant_org_id.trim().parse::<Uuid>().ok();
        if tenant_org_id.is_none() {
            problem("tenant_org_id", "choose a tenant", "수요 기업·기관을 고르세요");
        }
        let valid_from = parse_time_input(&self.valid_from);
        if valid_from.is_none() {
            problem("valid_from", "must be a date and time (Seoul)", "날짜와 시간(서울)이어야 합니다");
        }
        let valid_until = parse_time_input(&self.valid_until);
        if valid_until.is_none() {
            problem("valid_until", "must be a date and time (Seoul)", "날짜와 시간(서울)이어야 합니다");
        }
        match (tenant_org_id, valid_from, valid_until) {
            (Some(tenant_org_id), Some(valid_from), Some(valid_until)) if errors.is_empty() => Ok(GrantRequest {
                tenant_org_id,
                amount: self.amount.trim().to_string(),
                rate: given(&self.rate).map(String::from),
                valid_from,
                valid_until,
                project: None,
                allocation: None,
            }),
            _ => Err(ApiError::validation(errors)),
        }
    }
}

/// `POST /programmes/{id}/grants`: as `POST /v1/programmes/{id}/grants`; a
/// refused grant comes back to the dashboard's form with its problems.
#[post("/programmes/{id}/grants")]
pub async fn create_grant(
    state: web::Data<AppState>,
    form: ConsoleForm<GrantForm>,
    id: web::Path<String>,
) -> Result<HttpResponse, ConsoleError> {
    let viewer = &form.viewer;
    let lang = viewer.lang;
    finance_only(viewer)?;
    let programme_id = id.parse::<Uuid>().map_err(|_| ConsoleError::not_found(lang))?;
    let again = async |e: ApiError| {
        let status = e.status;
        let problems = refused(lang, e)?;
        let flags = ShowForm::default();
        dashboard(viewer, &state, programme_id, &flags, &form.value, Refused::Grant(&problems), status).await
    };
    let request = match form.value.request(lang) {
        Ok(request) => request,
        Err(e) => return again(e).await,
    };
    let op = form.write_op(form_key(&form.value.idempotency_key))?;
    match grant_write(op, viewer.principal, programme_id, &request).await {
        Ok(response) => {
            let grant: GrantView = answer(lang, Ok(response)).await?;
            Ok(layout::redirect(&format!("/programmes/{}?granted={}#grants", grant.programme_id, grant.id)))
        }
        Err(e) => again(e).await,
    }
}

/// `POST /grants/{id}/close`: as `POST /v1/grants/{id}/close`.
#[post("/grants/{id}/close")]
pub async fn close_grant(form: ConsoleForm<KeyForm>, id: web::Path<String>) -> Result<HttpResponse, ConsoleError> {
    let lang = form.viewer.lang;
    finance_only(&form.viewer)?;
    let id = id.parse::<Uuid>().map_err(|_| ConsoleError::not_found(lang))?;
    let op = form.write_op(form_key(&form.value.idempotency_key))?;
    let grant: GrantView = answer(lang, close_grant_write(op, form.viewer.principal, id).await).await?;
    Ok(layout::redirect(&format!("/programmes/{}?closed={}#grants", grant.programme_id, grant.id)))
}

#[derive(Debug, Deserialize)]
pub struct ReclaimForm {
    #[serde(default)]
    idempotency_key: String,
    #[serde(default)]
    reason: String,
}

/// `POST /grants/{id}/reclaim`: as `POST /v1/grants/{id}/reclaim`; a refused
/// reclaim (no reason, already closed) comes back to the programme's
/// dashboard with its problems.
#[post("/grants/{id}/reclaim")]
pub async fn reclaim_grant(
    state: web::Data<AppState>,
    form: ConsoleForm<ReclaimForm>,
    id: web::Path<String>,
) -> Result<HttpResponse, ConsoleError> {
    let viewer = &form.viewer;
    let lang = viewer.lang;
    finance_only(viewer)?;
    let id = id.parse::<Uuid>().map_err(|_| ConsoleError::not_found(lang))?;
    let request = ReclaimRequest { reason: form.value.reason.clone() };
    let op = form.write_op(form_key(&form.value.idempotency_key))?;
    match reclaim_write(op, viewer.principal, id, &request, state.clock).await {
        Ok(response) => {
            let done: ReclaimView = answer(lang, Ok(response)).await?;
            Ok(layout::redirect(&format!("/programmes/{}?reclaimed={}#grants", done.grant.programme_id, done.grant.id)))
        }
        Err(e) => {
            let status = e.status;
            let problems = refused(lang, e)?;
            let mut conn = state.pool.get().await.map_err(|e| ConsoleError::api(lang, e))?;
            let grant = crate::subsidy::programmes::find_grant(&mut conn, id)
                .await
                .map_err(|e| ConsoleError::api(lang, e))?
                .ok_or_else(|| ConsoleError::not_found(lang))?;
            let flags = ShowForm::default();
            let shown = Refused::Reclaim(&problems);
            dashboard(viewer, &state, grant.programme_id, &flags, &GrantForm::default(), shown, status).await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_programme_runs_over_its_days_in_the_office_zone() {
        let at = |s: &str| s.parse::<DateTime<Utc>>().expect("instant");
        let d = |y, m, day| NaiveDate::from_ymd_opt(y, m, day).expect("date");
        // 2025-12-31T15:00Z is midnight of 1 January in Seoul; the end is exclusive.
        let (first, last) = programme_days(at("2025-12-31T15:00:00Z"), at("2026-12-31T15:00:00Z"), VIEWER_ZONE);
        assert_eq!((first, last), (d(2026, 1, 1), d(2026, 12, 31)));
        let (first, last) = programme_days(at("2026-01-01T00:00:00Z"), at("2126-01-01T00:00:00Z"), VIEWER_ZONE);
        assert_eq!((last - first).num_days() + 1, MAX_DAYS);
    }
}
