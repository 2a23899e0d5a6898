//! Liveness and readiness.

use actix_web::{HttpResponse, get, web};
use diesel_async::RunQueryDsl;
use serde_json::json;

use crate::state::AppState;

/// The process is up.
#[utoipa::path(tag = "operations", responses((status = 200, description = "The process is up")))]
#[get("/healthz")]
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

/// The database is reachable: 503 while it is not. It has a pool of its own,
/// so a busy request pool does not make a healthy instance look unready.
#[utoipa::path(tag = "operations", responses(
    (status = 200, description = "Ready to serve"),
    (status = 503, description = "The database is unreachable"),
))]
#[get("/readyz")]
pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let probe = async {
        let mut conn = state.probe.get().await.map_err(|e| e.to_string())?;
        diesel::sql_query("SELECT 1").execute(&mut conn).await.map_err(|e| e.to_string())
    };
    match tokio::time::timeout(std::time::Duration::from_secs(3), probe).await {
        Ok(Ok(_)) => HttpResponse::Ok().json(json!({"status": "ready"})),
        Ok(Err(reason)) => {
            tracing::warn!(%reason, "not ready");
            HttpResponse::ServiceUnavailable().json(json!({"status": "unavailable", "reason": "database unreachable"}))
        }
        Err(_) => {
            HttpResponse::ServiceUnavailable().json(json!({"status": "unavailable", "reason": "database timed out"}))
        }
    }
}
