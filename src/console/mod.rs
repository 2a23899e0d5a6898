//! The web console: server-rendered pages for the people who use gpuhour in a
//! browser, served by the same binary at `/` while the API stays under `/v1`.
//!
//! Pages are `maud` templates compiled into the binary; the one stylesheet is
//! vendored here and served from the binary, so a page asks for nothing
//! outside the server (`Content-Security-Policy: default-src 'self'`). A
//! session is the API's own token in an HttpOnly, SameSite=Strict cookie; every
//! page reaches the database through the same domain functions as the API, and
//! every form write through the same [`crate::http::WriteOp`] (audit record and
//! idempotency key included).

mod audit;
mod chart;
mod claims;
mod earnings;
mod error;
mod finance;
mod form;
mod i18n;
mod layout;
mod ledger;
mod listings;
mod market;
pub mod money;
mod orders;
mod programmes;
mod session;
mod users;
mod wallet;

use actix_web::http::header;
use actix_web::{HttpResponse, get, web};

pub use error::ConsoleError;
pub use i18n::Lang;
pub use session::Viewer;

const STYLESHEET: &str = include_str!("assets/console.css");

/// The console's stylesheet, from the binary.
#[get("/assets/console.css")]
async fn stylesheet() -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, "text/css; charset=utf-8"))
        .insert_header((header::CACHE_CONTROL, "public, max-age=3600"))
        .body(STYLESHEET)
}

/// `/`: the signed-in user's home, by role; the login page for anyone else.
#[get("/")]
async fn home(viewer: Viewer) -> HttpResponse {
    layout::redirect(layout::home_of(viewer.principal.role))
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(stylesheet)
        .service(home)
        .service(session::login_form)
        .service(session::login)
        .service(session::logout)
        .service(i18n::switch_language)
        .service(market::search)
        .service(market::listing)
        .service(market::buy)
        .service(orders::list)
        .service(orders::show)
        .service(orders::cancel)
        .service(wallet::wallet)
        .service(programmes::list)
        .service(programmes::show)
        .service(programmes::create_grant)
        .service(programmes::close_grant)
        .service(programmes::reclaim_grant)
        .service(claims::list)
        .service(claims::create)
        .service(claims::show)
        .service(claims::submit)
        .service(claims::pay)
        .service(ledger::trial_balance)
        .service(ledger::export)
        .service(ledger::verify)
        .service(ledger::account)
        .service(ledger::entry)
        .service(audit::audit)
        .service(listings::list)
        .service(listings::create)
        .service(listings::show)
        .service(listings::change)
        .service(listings::close)
        .service(listings::report_outage)
        .service(earnings::earnings)
        .service(users::list)
        .service(users::create)
        .service(users::confirm_disable)
        .service(users::disable_user)
        .service(users::enable_user);
}
