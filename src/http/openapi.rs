//! The API's routes and its OpenAPI 3.1 document, from one list.
//!
//! Every API handler is mounted by [`configure_api`] through
//! `utoipa-actix-web`, which records the handler's `#[utoipa::path]`
//! operation as it mounts it: a route cannot be served without being
//! documented, nor documented without being served. [`document`] builds the
//! document from that same list.

use actix_web::App;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_actix_web::AppExt;
use utoipa_actix_web::service_config::ServiceConfig;

/// Whether the sandbox routes (SPEC section 4) are mounted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sandbox {
    Mounted,
    Absent,
}

/// Mounts every route of the API document, in the order they have always
/// been matched in. Routes outside the document (the console's HTML pages,
/// `/metrics`, `/docs` and `/openapi.json` themselves) are mounted the plain
/// actix way in `startup`.
pub fn configure_api(cfg: &mut ServiceConfig, sandbox: Sandbox) {
    cfg.service(crate::http::health::healthz)
        .service(crate::http::health::readyz)
        .configure(crate::auth::routes::configure)
        .service(crate::audit::routes::audit_log)
        .configure(crate::ledger::routes::configure)
        .configure(crate::ledger::period_routes::configure)
        .configure(crate::market::routes::configure)
        .service(crate::finance::deposits::create_deposit)
        .configure(crate::subsidy::routes::configure)
        .configure(crate::subsidy::reclaim_routes::configure)
        .configure(crate::subsidy::correction_routes::configure)
        .configure(crate::subsidy::advance_routes::configure)
        .configure(crate::subsidy::year_end_routes::configure)
        .configure(crate::finance::bank_routes::configure)
        .configure(crate::finance::list_routes::configure)
        .configure(crate::subsidy::list_routes::configure)
        .configure(crate::webhooks::routes::configure)
        .service(crate::finance::payouts::create_payout)
        .service(crate::finance::reports::programme_report)
        .service(crate::finance::reports::statement)
        .service(crate::finance::funding::routes::funding_reconciliation)
        .service(crate::finance::funding::routes::funding_report)
        .service(crate::finance::export::export_journal)
        .configure(crate::events::routes::configure);
    if sandbox == Sandbox::Mounted {
        cfg.configure(crate::sandbox::configure);
    }
}

/// The API document: [`ApiDoc`]'s frame plus every operation [`configure_api`]
/// mounts. The sandbox routes are always in it (tagged `sandbox`), whether or
/// not this instance mounts them, so every instance serves the same document.
pub fn document() -> utoipa::openapi::OpenApi {
    let (_, document) = App::new()
        .into_utoipa_app()
        .openapi(ApiDoc::openapi())
        .configure(|cfg| configure_api(cfg, Sandbox::Mounted))
        .split_for_parts();
    document
}

/// The document's frame: everything but the paths (and the schemas they
/// reference), which [`document`] adds from [`configure_api`].
#[derive(OpenApi)]
#[openapi(
    info(title = "gpuhour", description = "A marketplace and double-entry ledger for subsidised GPU time."),
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
    use std::collections::BTreeSet;
    use std::path::Path;

    use actix_web::http::StatusCode;
    use actix_web::test::{TestRequest, call_service, init_service};
    use actix_web::{App, HttpResponse, web};
    use utoipa_actix_web::AppExt;

    use super::{Sandbox, configure_api, document};

    /// The whole document, snapshotted (`snapshots/`): any change to the API —
    /// a route, a field, a status — fails this test until the snapshot is
    /// updated, so it shows in review. Update with
    /// `INSTA_UPDATE=always cargo test --lib openapi` and commit the `.snap`.
    #[test]
    fn the_openapi_document_is_the_reviewed_one() {
        let document = serde_json::to_value(document()).expect("the document serialises");
        insta::assert_json_snapshot!("openapi", document);
    }

    const METHODS: [&str; 8] = ["get", "post", "put", "patch", "delete", "head", "options", "trace"];

    /// `(method, path)` of every operation in the document.
    fn documented_operations() -> BTreeSet<(String, String)> {
        let document = serde_json::to_value(document()).expect("the document serialises");
        let paths = document["paths"].as_object().expect("the document has paths");
        paths
            .iter()
            .flat_map(|(path, item)| {
                METHODS
                    .iter()
                    .filter(|method| item.get(**method).is_some())
                    .map(|method| (method.to_string(), path.clone()))
            })
            .collect()
    }

    /// `(method, path)` of every actix route attribute (`#[get("/v1/…")]`)
    /// under `dir`, skipping the console, whose HTML pages are not API.
    fn declared_routes(dir: &Path, routes: &mut BTreeSet<(String, String)>) {
        for entry in std::fs::read_dir(dir).expect("the source directory reads") {
            let path = entry.expect("a directory entry").path();
            if path.ends_with("src/console") {
                continue;
            }
            if path.is_dir() {
                declared_routes(&path, routes);
                continue;
            }
            if path.extension().is_none_or(|extension| extension != "rs") {
                continue;
            }
            let source = std::fs::read_to_string(&path).expect("the source file reads");
            // Test modules mount no production routes.
            for line in source.lines().map(str::trim).take_while(|line| *line != "#[cfg(test)]") {
                // Routes mounted without an attribute would not be seen here,
                // nor documented: every API route has its own handler.
                assert!(
                    !line.contains(".route(") && !line.contains("web::resource(") && !line.starts_with("#[route("),
                    "{}: mount API routes as attributed handlers through `configure_api`: {line}",
                    path.display()
                );
                for method in METHODS {
                    let Some(rest) = line.strip_prefix(&format!("#[{method}(\"")) else { continue };
                    let Some(route) = rest.strip_suffix("\")]") else { continue };
                    routes.insert((method.to_string(), route.to_string()));
                }
            }
        }
    }

    /// A handler written but left out of [`configure_api`] (or mounted the
    /// plain actix way beside it) would be served yet undocumented, or not
    /// served at all: every route attribute outside the console must be an
    /// operation of the document, and the document must have no other.
    #[test]
    fn every_route_handler_is_mounted_and_documented() {
        let mut declared = BTreeSet::new();
        declared_routes(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"), &mut declared);
        let documented = documented_operations();
        let undocumented: Vec<_> = declared.difference(&documented).collect();
        assert!(undocumented.is_empty(), "handlers missing from configure_api: {undocumented:?}");
        let undeclared: Vec<_> = documented.difference(&declared).collect();
        assert!(undeclared.is_empty(), "documented operations without a route attribute: {undeclared:?}");
        assert!(declared.len() > 80, "the source scan found only {} routes", declared.len());
    }

    /// Every documented operation is routed to a handler, at the path the
    /// document gives: a request to it never reaches the default service.
    /// (No state is configured, so the handlers themselves answer 500 or 401;
    /// only routing is under test.)
    #[actix_web::test]
    async fn every_documented_operation_is_routed() {
        let unrouted = StatusCode::IM_A_TEAPOT;
        let app = init_service(
            App::new()
                .into_utoipa_app()
                .configure(|cfg| configure_api(cfg, Sandbox::Mounted))
                .into_app()
                .default_service(web::to(move || async move { HttpResponse::build(unrouted).finish() })),
        )
        .await;
        for (method, path) in documented_operations() {
            let uri = path
                .split('/')
                .map(|segment| if segment.starts_with('{') { "00000000-0000-0000-0000-000000000000" } else { segment })
                .collect::<Vec<_>>()
                .join("/");
            let method = actix_web::http::Method::from_bytes(method.to_uppercase().as_bytes()).expect("a method");
            let response =
                call_service(&app, TestRequest::default().method(method.clone()).uri(&uri).to_request()).await;
            assert_ne!(response.status(), unrouted, "{method} {path} is documented but not routed");
        }
    }

    /// Without the sandbox, its routes are not mounted (but stay documented).
    #[actix_web::test]
    async fn the_sandbox_routes_are_mounted_only_in_sandbox_mode() {
        let unrouted = StatusCode::IM_A_TEAPOT;
        let app = init_service(
            App::new()
                .into_utoipa_app()
                .configure(|cfg| configure_api(cfg, Sandbox::Absent))
                .into_app()
                .default_service(web::to(move || async move { HttpResponse::build(unrouted).finish() })),
        )
        .await;
        let response = call_service(&app, TestRequest::get().uri("/v1/sandbox/clock").to_request()).await;
        assert_eq!(response.status(), unrouted);
        assert!(documented_operations().contains(&("get".to_string(), "/v1/sandbox/clock".to_string())));
    }
}
