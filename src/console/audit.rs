//! `/audit`: who wrote what, newest first, with the API's filters
//! (`GET /v1/audit-log`), a page at a time.

use actix_web::{HttpResponse, get, web};
use maud::html;
use serde::Deserialize;
use uuid::Uuid;

use super::error::ConsoleError;
use super::finance::{finance_only, given, invalid};
use super::layout::{page, parse_time_input, time};
use super::session::Viewer;
use crate::audit::AuditFilter;
use crate::audit::routes::audit_page;
use crate::state::AppState;

/// Records per page.
const AUDIT_PAGE: i64 = 50;

#[derive(Debug, Default, Deserialize)]
pub struct AuditForm {
    #[serde(default)]
    user_id: String,
    #[serde(default)]
    org_id: String,
    #[serde(default)]
    route: String,
    #[serde(default)]
    resource_id: String,
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
    #[serde(default)]
    cursor: String,
}

#[get("/audit")]
pub async fn audit(
    viewer: Viewer,
    state: web::Data<AppState>,
    form: web::Query<AuditForm>,
) -> Result<HttpResponse, ConsoleError> {
    let lang = viewer.lang;
    finance_only(&viewer)?;
    let id = |raw: &str, field: &str| match given(raw) {
        None => Ok(None),
        Some(v) => v.parse::<Uuid>().map(Some).map_err(|_| invalid(lang, field, "must be an id (UUID)")),
    };
    let instant = |raw: &str, field: &str| match given(raw) {
        None => Ok(None),
        Some(v) => parse_time_input(v).map(Some).ok_or_else(|| invalid(lang, field, "must be a date and time (Seoul)")),
    };
    let filter = AuditFilter {
        user_id: id(&form.user_id, "user_id")?,
        org_id: id(&form.org_id, "org_id")?,
        route: given(&form.route).map(String::from),
        resource_id: id(&form.resource_id, "resource_id")?,
        from: instant(&form.from, "from")?,
        to: instant(&form.to, "to")?,
    };
    let mut conn = state.pool.get().await.map_err(|e| ConsoleError::api(lang, e))?;
    let found = audit_page(&mut conn, Some(AUDIT_PAGE), given(&form.cursor), &filter)
        .await
        .map_err(|e| ConsoleError::api(lang, e))?;
    let body = html! {
        form.filters method="get" action="/audit" {
            label { (lang.tr("Route", "경로")) input type="text" name="route" placeholder="/v1/claims" value=(form.route); }
            label { (lang.tr("User id", "사용자 ID")) input type="text" name="user_id" value=(form.user_id); }
            label { (lang.tr("Organisation id", "기관 ID")) input type="text" name="org_id" value=(form.org_id); }
            label { (lang.tr("Resource id", "대상 ID")) input type="text" name="resource_id" value=(form.resource_id); }
            label { (lang.tr("From (Seoul time)", "시작 (서울 시간)")) input type="datetime-local" name="from" value=(form.from); }
            label { (lang.tr("Before (Seoul time)", "종료 (서울 시간)")) input type="datetime-local" name="to" value=(form.to); }
            button type="submit" { (lang.tr("Show", "보기")) }
        }
        @if found.data.is_empty() {
            p.muted { (lang.tr("No records.", "기록이 없습니다.")) }
        } @else {
            div.table-wrap { table {
                thead { tr {
                    th scope="col" { (lang.tr("When (Seoul time)", "일시 (서울 시간)")) }
                    th scope="col" { (lang.tr("Request", "요청")) }
                    th scope="col" class="num" { (lang.tr("Status", "상태")) }
                    th scope="col" { (lang.tr("User", "사용자")) }
                    th scope="col" { (lang.tr("Organisation", "기관")) }
                    th scope="col" { (lang.tr("Resource", "대상")) }
                } }
                tbody { @for e in &found.data { tr data-route=(e.route) data-status=(e.status) {
                    td { (time(e.at)) }
                    td { code { (e.method) " " (e.path) } }
                    td.num { (e.status) }
                    td { (e.user_id.map(|u| u.to_string()).unwrap_or_default()) }
                    td { (e.org_id.map(|u| u.to_string()).unwrap_or_default()) }
                    td { (e.resource_id.map(|u| u.to_string()).unwrap_or_default()) }
                } } }
            } }
            @if let Some(next) = &found.next_cursor {
                @let link = form_urlencoded::Serializer::new(String::new())
                    .append_pair("route", &form.route).append_pair("user_id", &form.user_id).append_pair("org_id", &form.org_id)
                    .append_pair("resource_id", &form.resource_id).append_pair("from", &form.from).append_pair("to", &form.to)
                    .append_pair("cursor", next).finish();
                p.pager { a href={ "/audit?" (link) } rel="next" { (lang.tr("Older records →", "이전 기록 →")) } }
            }
        }
    };
    Ok(page(&viewer, lang.tr("Audit log", "감사 기록"), body))
}
