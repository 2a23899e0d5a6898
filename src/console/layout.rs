//! The page shell every console page shares: head, navigation by role,
//! language switch, sign-out; and the small helpers pages are built from
//! (times in the viewer's zone, redirects, the security headers).

use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use maud::{DOCTYPE, Markup, html};

use super::i18n::Lang;
use super::session::Viewer;
use crate::auth::Role;

/// The zone times are shown in (the API answers in UTC).
pub const VIEWER_ZONE: Tz = chrono_tz::Asia::Seoul;

/// What a console page may load: only this server's own stylesheet; no
/// scripts, frames or forms to other origins.
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'";

/// Where each role starts.
pub fn home_of(role: Role) -> &'static str {
    match role {
        Role::Tenant => "/market",
        Role::Provider => "/listings",
        Role::Finance => "/programmes",
        Role::Admin => "/users",
    }
}

/// The pages of the navigation for `role`: each role sees only its own.
fn nav_links(role: Role, lang: Lang) -> Vec<(&'static str, &'static str)> {
    match role {
        Role::Tenant => vec![
            ("/market", lang.tr("Market", "마켓")),
            ("/orders", lang.tr("Orders", "주문")),
            ("/wallet", lang.tr("Wallet", "지갑")),
        ],
        Role::Provider => vec![("/listings", lang.tr("Listings", "상품")), ("/earnings", lang.tr("Earnings", "수익"))],
        Role::Finance => vec![
            ("/programmes", lang.tr("Programmes", "지원 사업")),
            ("/claims", lang.tr("Claims", "청구")),
            ("/ledger", lang.tr("Ledger", "원장")),
            ("/audit", lang.tr("Audit", "감사")),
        ],
        // Administrators may do what finance does (as in the API), and more.
        Role::Admin => vec![
            ("/users", lang.tr("Users", "사용자")),
            ("/programmes", lang.tr("Programmes", "지원 사업")),
            ("/claims", lang.tr("Claims", "청구")),
            ("/ledger", lang.tr("Ledger", "원장")),
            ("/audit", lang.tr("Audit", "감사")),
        ],
    }
}

/// Whether the request reached us over TLS (directly or, per
/// `X-Forwarded-Proto`, through a proxy): cookies are then marked Secure.
pub fn is_secure(req: &HttpRequest) -> bool {
    req.connection_info().scheme() == "https"
}

/// A console response: HTML with the security headers every page carries.
pub fn html_response(status: StatusCode, markup: Markup) -> HttpResponse {
    HttpResponse::build(status)
        .insert_header((header::CONTENT_TYPE, "text/html; charset=utf-8"))
        .insert_header((header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::REFERRER_POLICY, "same-origin"))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(markup.into_string())
}

/// 303 See Other to a local path: after a form, the browser GETs the result,
/// so a refresh does not post again.
pub fn redirect(location: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, location))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .finish()
}

/// `at` in the viewer's zone, to the minute.
pub fn time(at: DateTime<Utc>) -> String {
    at.with_timezone(&VIEWER_ZONE).format("%Y-%m-%d %H:%M").to_string()
}

/// `at` in the viewer's zone as an `<input type="datetime-local">` value.
pub fn time_input(at: DateTime<Utc>) -> String {
    at.with_timezone(&VIEWER_ZONE).format("%Y-%m-%dT%H:%M").to_string()
}

/// An `<input type="datetime-local">` value, read in the viewer's zone.
pub fn parse_time_input(raw: &str) -> Option<DateTime<Utc>> {
    let naive = chrono::NaiveDateTime::parse_from_str(raw.trim(), "%Y-%m-%dT%H:%M")
        .or_else(|_| chrono::NaiveDateTime::parse_from_str(raw.trim(), "%Y-%m-%dT%H:%M:%S"))
        .ok()?;
    naive.and_local_timezone(VIEWER_ZONE).single().map(|t| t.with_timezone(&Utc))
}

/// A whole page for a signed-in viewer.
pub fn page(viewer: &Viewer, title: &str, body: Markup) -> HttpResponse {
    page_with_status(viewer, StatusCode::OK, title, body)
}

pub fn page_with_status(viewer: &Viewer, status: StatusCode, title: &str, body: Markup) -> HttpResponse {
    let lang = viewer.lang;
    let nav = html! {
        nav aria-label=(lang.tr("Main", "주 메뉴")) {
            a.brand href="/" { "gpuhour" }
            ul {
                @for (href, label) in nav_links(viewer.principal.role, lang) {
                    li { a href=(href) aria-current=[(viewer.path.starts_with(href)).then_some("page")] { (label) } }
                }
            }
            form.inline method="post" action="/logout" {
                input type="hidden" name="csrf" value=(viewer.csrf);
                button type="submit" { (lang.tr("Sign out", "로그아웃")) }
            }
            (language_switch(lang, &viewer.path))
        }
    };
    html_response(status, shell(lang, title, Some(nav), body))
}

/// A page for a visitor who is not signed in (the login form, problems).
pub fn public_page(lang: Lang, status: StatusCode, title: &str, current: &str, body: Markup) -> HttpResponse {
    let nav = html! {
        nav aria-label=(lang.tr("Main", "주 메뉴")) {
            a.brand href="/" { "gpuhour" }
            (language_switch(lang, current))
        }
    };
    html_response(status, shell(lang, title, Some(nav), body))
}

fn language_switch(lang: Lang, current: &str) -> Markup {
    let next: String = form_urlencoded::byte_serialize(current.as_bytes()).collect();
    html! {
        p.lang {
            @if lang == Lang::Ko { a href={ "/lang/en?next=" (next) } lang="en" { "English" } }
            @else { a href={ "/lang/ko?next=" (next) } lang="ko" { "한국어" } }
        }
    }
}

fn shell(lang: Lang, title: &str, nav: Option<Markup>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang=(lang.code()) {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · gpuhour" }
                link rel="stylesheet" href="/assets/console.css";
            }
            body {
                @if let Some(nav) = nav { header { (nav) } }
                main { h1 { (title) } (body) }
            }
        }
    }
}

/// The page a problem is shown on.
pub fn problem_page(lang: Lang, status: StatusCode, detail: &str) -> HttpResponse {
    let title = match status {
        StatusCode::NOT_FOUND => lang.tr("Not found", "찾을 수 없음"),
        StatusCode::FORBIDDEN => lang.tr("Refused", "거부됨"),
        StatusCode::CONFLICT => lang.tr("Not possible now", "지금은 할 수 없음"),
        StatusCode::PAYMENT_REQUIRED => lang.tr("Not enough money", "잔액 부족"),
        StatusCode::TOO_MANY_REQUESTS => lang.tr("Too many attempts", "시도 횟수 초과"),
        s if s.is_server_error() => lang.tr("Something went wrong", "오류"),
        _ => lang.tr("That did not work", "처리할 수 없음"),
    };
    let body = html! {
        div.problem role="alert" {
            @for line in detail.lines() { p { (line) } }
        }
        p { a href="/" { (lang.tr("Back to the start", "처음으로")) } }
    };
    public_page(lang, status, title, "/", body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_shown_and_read_in_seoul() {
        let at: DateTime<Utc> = "2026-11-29T15:00:00Z".parse().expect("instant");
        assert_eq!(time(at), "2026-11-30 00:00");
        assert_eq!(time_input(at), "2026-11-30T00:00");
        assert_eq!(parse_time_input("2026-11-30T00:00"), Some(at));
        assert_eq!(parse_time_input("tomorrow"), None);
    }
}
