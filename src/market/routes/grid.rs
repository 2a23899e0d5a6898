//! Grid carbon intensity per region: finance sets it, anyone reads it.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, get, put, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::Principal;
use crate::http::extract::{JsonBody, NoQuery};
use crate::http::{ApiError, Write};
use crate::market::energy::{self, GridIntensityRow};
use crate::state::AppState;

type Problem = crate::http::problem::Problem;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GridIntensityRequest {
    /// gCO2e per kWh, a decimal string from 0 to 5000 (e.g. `"450"`).
    pub g_co2e_per_kwh: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct GridIntensityView {
    /// A listing's `region`, exactly as listings name it.
    pub region: String,
    pub g_co2e_per_kwh: String,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct GridIntensities {
    pub data: Vec<GridIntensityView>,
}

fn view(row: GridIntensityRow) -> GridIntensityView {
    GridIntensityView {
        region: row.region,
        g_co2e_per_kwh: row.g_co2e_per_kwh.normalize().to_string(),
        updated_at: row.updated_at,
    }
}

/// Sets a region's grid intensity, used for the carbon of orders placed from
/// now on (an order keeps the estimate it was placed with). Roles: finance, admin.
#[utoipa::path(tag = "market", params(("region" = String, Path), ("Idempotency-Key" = Option<String>, Header)),
    request_body = GridIntensityRequest, security(("bearer" = [])), responses(
    (status = 200, body = GridIntensityView), (status = 403, body = Problem), (status = 422, body = Problem),
))]
#[put("/v1/grid-intensities/{region}")]
pub async fn set_grid_intensity(
    state: web::Data<AppState>,
    write: Write<JsonBody<GridIntensityRequest>>,
    region: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let Write { principal, body, op } = write;
    principal.require_finance()?;
    let region = region.into_inner().trim().to_string();
    if region.is_empty() || region.chars().count() > 100 || region.chars().any(char::is_control) {
        return Err(ApiError::invalid("region", "must be 1 to 100 characters, none of them control characters"));
    }
    let g = energy::parse_intensity(&body.value.g_co2e_per_kwh).map_err(|e| ApiError::invalid("g_co2e_per_kwh", e))?;
    let clock = state.clock;
    op.run(StatusCode::OK, async move |conn| {
        let now = clock.now(conn).await?;
        let row = GridIntensityRow { region, g_co2e_per_kwh: g, updated_at: now };
        Ok(view(energy::set_intensity(conn, &row).await?))
    })
    .await
}

/// Every region's grid intensity, by region. Roles: any.
#[utoipa::path(tag = "market", security(("bearer" = [])), responses((status = 200, body = GridIntensities)))]
#[get("/v1/grid-intensities")]
pub async fn list_grid_intensities(
    state: web::Data<AppState>,
    _principal: Principal,
    _: NoQuery,
) -> Result<HttpResponse, ApiError> {
    let mut conn = state.pool.get().await?;
    let data = energy::all_intensities(&mut conn).await?.into_iter().map(view).collect();
    Ok(HttpResponse::Ok().json(GridIntensities { data }))
}
