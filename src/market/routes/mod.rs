//! HTTP handlers of the marketplace, one file per group of actions; the
//! views they answer with are in `market::views`.

mod grid;
mod listings;
mod orders;
mod outages;
mod usage;

pub use grid::*;
pub use listings::*;
pub use orders::*;
pub use outages::*;
pub use usage::*;
// The views, where the route files always offered them.
pub use crate::market::views::*;

use rust_decimal::Decimal;

/// A unit price, without trailing zeros (`"1000.5"`).
pub(crate) fn unit_price(value: Decimal) -> String {
    value.normalize().to_string()
}

pub fn configure(cfg: &mut utoipa_actix_web::service_config::ServiceConfig) {
    cfg.service(create_listing)
        .service(search_listings)
        .service(get_listing)
        .service(change_listing)
        .service(close_listing)
        .service(availability)
        .service(report_outage)
        .service(create_quote)
        .service(create_order)
        .service(list_orders)
        .service(get_order)
        .service(cancel_order)
        .service(run_settlement)
        .service(report_usage)
        .service(list_usage)
        .service(set_grid_intensity)
        .service(list_grid_intensities);
}
