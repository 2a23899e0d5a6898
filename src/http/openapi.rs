//! The OpenAPI 3.1 document, generated from the handlers' annotations so it
//! cannot drift from the code.

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

#[derive(OpenApi)]
#[openapi(
    info(title = "gpuhour", description = "A marketplace and double-entry ledger for subsidised GPU time."),
    paths(
        crate::http::health::healthz,
        crate::http::health::readyz,
        crate::ledger::routes::list_accounts,
        crate::ledger::routes::get_account,
        crate::ledger::routes::account_postings,
        crate::ledger::routes::trial_balance,
        crate::ledger::routes::verify_ledger,
        crate::ledger::routes::create_adjustment,
        crate::ledger::routes::get_entry,
        crate::ledger::routes::reverse_entry,
        crate::auth::routes::signup,
        crate::auth::routes::token,
        crate::auth::routes::me,
        crate::auth::routes::create_user,
        crate::auth::routes::list_users,
        crate::auth::routes::disable_user,
        crate::auth::routes::enable_user,
        crate::auth::routes::set_category,
        crate::audit::routes::audit_log,
        crate::market::routes::create_listing,
        crate::market::routes::search_listings,
        crate::market::routes::get_listing,
        crate::market::routes::change_listing,
        crate::market::routes::close_listing,
        crate::market::routes::availability,
        crate::market::routes::report_outage,
        crate::market::routes::create_quote,
        crate::market::routes::create_order,
        crate::market::routes::list_orders,
        crate::market::routes::get_order,
        crate::market::routes::cancel_order,
        crate::market::routes::run_settlement,
        crate::market::routes::report_usage,
        crate::market::routes::list_usage,
        crate::market::routes::set_grid_intensity,
        crate::market::routes::list_grid_intensities,
        crate::finance::deposits::create_deposit,
        crate::subsidy::routes::create_programme,
        crate::subsidy::routes::get_programme,
        crate::subsidy::routes::create_grant,
        crate::subsidy::routes::close_grant,
        crate::subsidy::routes::get_grant,
        crate::subsidy::routes::list_grants,
        crate::subsidy::reclaim_routes::reclaim_grant,
        crate::subsidy::routes::create_claim,
        crate::subsidy::routes::get_claim,
        crate::subsidy::routes::submit_claim,
        crate::subsidy::routes::pay_claim,
        crate::ledger::period_routes::close_period,
        crate::ledger::period_routes::list_periods,
        crate::subsidy::advance_routes::record_advance,
        crate::finance::list_routes::list_payouts,
        crate::finance::list_routes::list_deposits,
        crate::finance::list_routes::list_organisations,
        crate::subsidy::list_routes::list_programmes,
        crate::subsidy::list_routes::list_claims,
        crate::finance::bank_routes::import_statement,
        crate::finance::bank_routes::list_lines,
        crate::finance::bank_routes::match_line,
        crate::finance::bank_routes::unmatch_line,
        crate::finance::bank_routes::book_deposit,
        crate::finance::bank_routes::reconciliation,
        crate::subsidy::year_end_routes::settle_programme,
        crate::subsidy::year_end_routes::refund_programme,
        crate::subsidy::year_end_routes::settlement_statement,
        crate::subsidy::correction_routes::void_claim,
        crate::subsidy::correction_routes::write_off,
        crate::subsidy::correction_routes::credit_note,
        crate::subsidy::correction_routes::withdraw,
        crate::finance::payouts::create_payout,
        crate::finance::reports::programme_report,
        crate::finance::reports::statement,
        crate::finance::funding::routes::funding_report,
        crate::finance::funding::routes::funding_reconciliation,
        crate::finance::export::export_journal,
        crate::events::routes::list_events,
        crate::sandbox::set_clock,
        crate::sandbox::get_clock,
        crate::webhooks::routes::create_endpoint,
        crate::webhooks::routes::list_endpoints,
        crate::webhooks::routes::get_endpoint,
        crate::webhooks::routes::disable_endpoint,
        crate::webhooks::routes::rotate_secret,
        crate::webhooks::routes::list_deliveries,
        crate::webhooks::routes::retry_delivery,
    ),
    components(schemas(
        crate::http::problem::Problem,
        crate::http::problem::FieldError,
        crate::ledger::model::AccountType,
        crate::money::Currency,
        crate::auth::Role,
        crate::auth::model::TenantCategory,
        crate::market::listings::ListingStatus,
        crate::market::orders::OrderStatus,
    )),
    modifiers(&BearerAuth),
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format("JWT").build()),
        );
    }
}

#[cfg(test)]
mod tests {
    use utoipa::OpenApi;

    /// The whole document, snapshotted (`snapshots/`): any change to the API —
    /// a route, a field, a status — fails this test until the snapshot is
    /// updated, so it shows in review. Update with
    /// `INSTA_UPDATE=always cargo test --lib openapi` and commit the `.snap`.
    #[test]
    fn the_openapi_document_is_the_reviewed_one() {
        let document = serde_json::to_value(super::ApiDoc::openapi()).expect("the document serialises");
        insta::assert_json_snapshot!("openapi", document);
    }
}
