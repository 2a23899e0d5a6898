//! Energy and carbon (issue 12 item 6): what a listing declares about its
//! accelerators and power, the grid's carbon intensity per region, and the
//! estimates an order carries.
//!
//! Every figure is an exact `Decimal`: an estimate is stored as computed and
//! only its display is rounded ([`display`]: to four fraction digits, a
//! tenth of a watt-hour or gram — the precision providers' meters report
//! usage in — half to even, trailing zeros dropped).

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use rust_decimal::{Decimal, RoundingStrategy};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::db::schema::{grid_intensities, listings};
use crate::http::FieldError;

/// What a listing declares, as stored (every field optional: listings made
/// before issue 12 declare nothing, and get no estimate).
#[derive(Debug, Clone, Default, PartialEq, Queryable, Selectable, QueryableByName, Insertable, AsChangeset)]
#[diesel(table_name = listings, check_for_backend(diesel::pg::Pg))]
pub struct Declared {
    pub accelerator_kind: Option<String>,
    pub accelerator_vendor: Option<String>,
    pub accelerator_model: Option<String>,
    /// Watts per accelerator.
    pub board_power_w: Option<i32>,
    /// The data centre's power usage effectiveness (≥ 1).
    pub pue: Option<Decimal>,
    /// FP16/BF16 TFLOPS per accelerator.
    pub performance_tflops: Option<Decimal>,
}

impl Declared {
    /// Estimated kWh per GPU-hour: board power × PUE ÷ 1000, when power is
    /// declared (a PUE not declared counts as 1: the board's own draw).
    pub fn kwh_per_gpu_hour(&self) -> Option<Decimal> {
        let watts = Decimal::from(self.board_power_w?);
        watts.checked_mul(self.pue.unwrap_or(Decimal::ONE))?.checked_div(Decimal::ONE_THOUSAND)
    }
}

/// The accelerator a listing sells.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Accelerator {
    /// `gpu` or `npu` (e.g. Rebellions ATOM, FuriosaAI RNGD).
    pub kind: String,
    pub vendor: String,
    pub model: String,
}

/// A listing's declaration as asked for (`POST /v1/listings`).
#[derive(Debug, Clone, Default)]
pub struct Declaration<'a> {
    pub accelerator: Option<&'a Accelerator>,
    pub board_power_w: Option<i32>,
    pub pue: Option<&'a str>,
    pub performance_tflops: Option<&'a str>,
}

pub const MAX_BOARD_POWER_W: i32 = 100_000;
const MAX_PUE: Decimal = Decimal::from_parts(10, 0, 0, false, 0);

fn parse_decimal(raw: &str, max_scale: u32) -> Result<Decimal, String> {
    let value: Decimal = raw.trim().parse().map_err(|_| format!("{raw:?} is not a decimal"))?;
    if value.normalize().scale() > max_scale {
        return Err(format!("has more than {max_scale} fraction digits"));
    }
    Ok(value.normalize())
}

/// Checks a declaration; every field found wrong is pushed to `errors`.
pub fn check_declaration(errors: &mut Vec<FieldError>, d: &Declaration<'_>) -> Declared {
    let mut out = Declared::default();
    if let Some(a) = d.accelerator {
        if a.kind != "gpu" && a.kind != "npu" {
            errors.push(FieldError::new("accelerator.kind", "must be gpu or npu"));
        }
        for (field, value) in [("accelerator.vendor", &a.vendor), ("accelerator.model", &a.model)] {
            let v = value.trim();
            if v.is_empty() || v.chars().count() > 100 {
                errors.push(FieldError::new(field, "must be 1 to 100 characters"));
            }
        }
        out.accelerator_kind = Some(a.kind.clone());
        out.accelerator_vendor = Some(a.vendor.trim().to_string());
        out.accelerator_model = Some(a.model.trim().to_string());
    }
    if let Some(w) = d.board_power_w {
        if !(1..=MAX_BOARD_POWER_W).contains(&w) {
            errors.push(FieldError::new("board_power_w", format!("must be between 1 and {MAX_BOARD_POWER_W} watts")));
        }
        out.board_power_w = Some(w);
    }
    if let Some(raw) = d.pue {
        match parse_decimal(raw, 3) {
            Ok(p) if p >= Decimal::ONE && p <= MAX_PUE => out.pue = Some(p),
            Ok(_) => errors.push(FieldError::new("pue", "must be at least 1 and at most 10")),
            Err(e) => errors.push(FieldError::new("pue", e)),
        }
    }
    if let Some(raw) = d.performance_tflops {
        match parse_decimal(raw, 3) {
            Ok(t) if t > Decimal::ZERO && t <= Decimal::from(1_000_000) => out.performance_tflops = Some(t),
            Ok(_) => errors.push(FieldError::new("performance_tflops", "must be more than 0 and at most 1000000")),
            Err(e) => errors.push(FieldError::new("performance_tflops", e)),
        }
    }
    out
}

/// Estimated energy of `gpus` accelerators for `hours`:
/// gpus × hours × board_power_w × pue ÷ 1000 kWh, exact. `None` when the
/// listing declares no power (or the figure would overflow).
pub fn estimated_energy_kwh(gpus: i64, hours: i64, declared: &Declared) -> Option<Decimal> {
    let per_gpu_hour = declared.kwh_per_gpu_hour()?;
    Decimal::from(gpus).checked_mul(Decimal::from(hours))?.checked_mul(per_gpu_hour)
}

/// The carbon of `kwh` at a grid intensity in gCO2e/kWh, in kg: kWh × g ÷ 1000.
pub fn co2e_kg(kwh: Decimal, g_co2e_per_kwh: Decimal) -> Option<Decimal> {
    kwh.checked_mul(g_co2e_per_kwh)?.checked_div(Decimal::ONE_THOUSAND)
}

/// How an energy or carbon figure is shown: four fraction digits (a tenth
/// of a Wh or g), half to even, trailing zeros dropped.
pub fn display(value: Decimal) -> String {
    value.round_dp_with_strategy(4, RoundingStrategy::MidpointNearestEven).normalize().to_string()
}

/// An order's estimate: kWh, and kgCO2e when its region's intensity is set.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Estimate {
    pub energy_kwh: Option<Decimal>,
    pub co2e_kg: Option<Decimal>,
}

impl Estimate {
    /// The estimate an order stored when it was placed.
    pub fn of(order: &super::orders::OrderRow) -> Estimate {
        Estimate { energy_kwh: order.estimated_energy_kwh, co2e_kg: order.estimated_co2e_kg }
    }
}

/// The carbon of `metered` kWh at the grid intensity the order's estimate
/// was made with (its kgCO2e ÷ its kWh, exact: the estimate is kWh ×
/// intensity ÷ 1000); `None` when the estimate has no carbon or no energy.
pub fn metered_co2e_kg(metered: Decimal, estimate: Estimate) -> Option<Decimal> {
    let kwh = estimate.energy_kwh.filter(|k| !k.is_zero())?;
    metered.checked_mul(estimate.co2e_kg?)?.checked_div(kwh)
}

pub fn estimate(gpus: i64, hours: i64, declared: &Declared, g_co2e_per_kwh: Option<Decimal>) -> Estimate {
    let energy_kwh = estimated_energy_kwh(gpus, hours, declared);
    let co2e_kg = energy_kwh.zip(g_co2e_per_kwh).and_then(|(kwh, g)| co2e_kg(kwh, g));
    Estimate { energy_kwh, co2e_kg }
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = grid_intensities, check_for_backend(diesel::pg::Pg))]
pub struct GridIntensityRow {
    pub region: String,
    pub g_co2e_per_kwh: Decimal,
    pub updated_at: DateTime<Utc>,
}

/// The intensities of `regions` (those set).
pub async fn intensities(
    conn: &mut AsyncPgConnection,
    regions: &[String],
) -> QueryResult<std::collections::HashMap<String, Decimal>> {
    if regions.is_empty() {
        return Ok(Default::default());
    }
    Ok(grid_intensities::table
        .filter(grid_intensities::region.eq_any(regions))
        .select((grid_intensities::region, grid_intensities::g_co2e_per_kwh))
        .load::<(String, Decimal)>(conn)
        .await?
        .into_iter()
        .collect())
}

pub async fn intensity(conn: &mut AsyncPgConnection, region: &str) -> QueryResult<Option<Decimal>> {
    grid_intensities::table.find(region).select(grid_intensities::g_co2e_per_kwh).first(conn).await.optional()
}

pub async fn all_intensities(conn: &mut AsyncPgConnection) -> QueryResult<Vec<GridIntensityRow>> {
    grid_intensities::table.order(grid_intensities::region).select(GridIntensityRow::as_select()).load(conn).await
}

pub async fn set_intensity(conn: &mut AsyncPgConnection, row: &GridIntensityRow) -> QueryResult<GridIntensityRow> {
    diesel::insert_into(grid_intensities::table)
        .values(row)
        .on_conflict(grid_intensities::region)
        .do_update()
        .set(row)
        .returning(GridIntensityRow::as_returning())
        .get_result(conn)
        .await
}

/// Parses a grid intensity (gCO2e/kWh): 0 to 5000, at most three fraction digits.
pub fn parse_intensity(raw: &str) -> Result<Decimal, String> {
    let g = parse_decimal(raw, 3)?;
    if g < Decimal::ZERO || g > Decimal::from(5000) {
        return Err("must be between 0 and 5000 gCO2e/kWh".into());
    }
    Ok(g)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    fn declared(w: i32, pue: Decimal) -> Declared {
        Declared { board_power_w: Some(w), pue: Some(pue), ..Declared::default() }
    }

    #[test]
    fn eight_gpus_for_ten_hours_at_700_w_and_pue_1_25_use_70_kwh() {
        let kwh = estimated_energy_kwh(8, 10, &declared(700, dec!(1.25)));
        assert_eq!(kwh, Some(dec!(70)));
        assert_eq!(co2e_kg(dec!(70), dec!(450)), Some(dec!(31.5)));
        assert_eq!(display(dec!(70.000)), "70");
        assert_eq!(display(dec!(31.5)), "31.5");
    }

    #[test]
    fn no_power_no_estimate_and_no_intensity_no_carbon() {
        assert_eq!(estimated_energy_kwh(8, 10, &Declared::default()), None);
        let e = estimate(1, 1, &declared(350, dec!(1.1)), None);
        assert_eq!(e, Estimate { energy_kwh: Some(dec!(0.385)), co2e_kg: None });
        // A power without a PUE counts the board only.
        let board_only = Declared { board_power_w: Some(400), ..Declared::default() };
        assert_eq!(board_only.kwh_per_gpu_hour(), Some(dec!(0.4)));
    }

    #[test]
    fn display_rounds_to_tenths_of_a_watt_hour_half_to_even() {
        assert_eq!(display(dec!(6.2525)), "6.2525");
        assert_eq!(display(dec!(0.01225)), "0.0122");
        assert_eq!(display(dec!(0.01235)), "0.0124");
        assert_eq!(display(dec!(1.234567)), "1.2346");
        assert_eq!(display(dec!(70.0000)), "70");
    }

    #[test]
    fn declarations_are_checked_field_by_field() {
        let tpu = Accelerator { kind: "tpu".into(), vendor: "Google".into(), model: "v5e".into() };
        let mut errors = Vec::new();
        check_declaration(
            &mut errors,
            &Declaration {
                accelerator: Some(&tpu),
                board_power_w: Some(-5),
                pue: Some("0.9"),
                performance_tflops: None,
            },
        );
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, vec!["accelerator.kind", "board_power_w", "pue"]);

        let npu = Accelerator { kind: "npu".into(), vendor: "FuriosaAI".into(), model: "RNGD".into() };
        let mut errors = Vec::new();
        let d = check_declaration(
            &mut errors,
            &Declaration {
                accelerator: Some(&npu),
                board_power_w: Some(150),
                pue: Some("1.3"),
                performance_tflops: Some("256"),
            },
        );
        assert!(errors.is_empty());
        assert_eq!(d.kwh_per_gpu_hour(), Some(dec!(0.195)));
    }

    #[test]
    fn intensities_are_bounded() {
        assert_eq!(parse_intensity("450"), Ok(dec!(450)));
        assert!(parse_intensity("-1").is_err());
        assert!(parse_intensity("abc").is_err());
    }
}

/// A programme's energy and carbon, over the orders drawing on its grants that
/// carry an estimate, counted for the hours charged (all of them unless
/// cancelled): kWh, kgCO2e and the subtotal per kWh.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ProgrammeEnergy {
    pub energy_kwh: Option<Decimal>,
    pub co2e_kg: Option<Decimal>,
    pub subtotal: Option<Decimal>,
}

impl ProgrammeEnergy {
    /// Subtotal ÷ kWh, shown to two fraction digits, half to even; `None`
    /// without energy.
    pub fn price_per_kwh(&self) -> Option<Decimal> {
        let kwh = self.energy_kwh.filter(|k| *k > Decimal::ZERO)?;
        self.subtotal?.checked_div(kwh).map(|p| p.round_dp_with_strategy(2, RoundingStrategy::MidpointNearestEven))
    }
}

#[derive(QueryableByName)]
struct EnergySums {
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Numeric>)]
    energy_kwh: Option<Decimal>,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Numeric>)]
    co2e_kg: Option<Decimal>,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Numeric>)]
    subtotal: Option<Decimal>,
}

/// The programme report's energy figures (one query), over the orders its
/// grants funded: each order's metered energy where its provider reported
/// usage, else its estimate. An estimate covers all the order's hours; ×
/// charged ÷ hours keeps the hours charged, which is exact (the estimate is
/// gpus × hours × kWh per GPU-hour). Metered carbon is at the intensity the
/// estimate was made with (see [`metered_co2e_kg`]).
pub async fn programme_energy(conn: &mut AsyncPgConnection, programme: uuid::Uuid) -> QueryResult<ProgrammeEnergy> {
    let sums: EnergySums = diesel::sql_query(
        // The metered energy is summed per order once, in one pass over the
        // programme's usage: as a subquery per order it probed every monthly
        // partition of `order_usage` three times per order (21 s at a
        // million orders). An order charged in full needs no × charged ÷
        // hours (the same value; numeric division is most of the cost).
        "WITH metered AS ( \
             SELECT u.order_id, sum(u.energy_wh) / 1000 AS kwh \
             FROM order_usage u JOIN orders o ON o.id = u.order_id JOIN grants g ON g.id = o.grant_id \
             WHERE g.programme_id = $1 \
             GROUP BY u.order_id), \
         per_order AS ( \
             SELECT CASE WHEN o.charged_hours = o.hours THEN o.subtotal \
                         ELSE o.subtotal * o.charged_hours / o.hours END AS subtotal, \
                    CASE WHEN o.charged_hours = o.hours THEN o.estimated_energy_kwh \
                         ELSE o.estimated_energy_kwh * o.charged_hours / o.hours END AS estimated_kwh, \
                    CASE WHEN o.charged_hours = o.hours THEN o.estimated_co2e_kg \
                         ELSE o.estimated_co2e_kg * o.charged_hours / o.hours END AS estimated_co2e, \
                    o.estimated_co2e_kg / NULLIF(o.estimated_energy_kwh, 0) AS kg_per_kwh, \
                    m.kwh AS metered_kwh \
             FROM orders o JOIN grants g ON g.id = o.grant_id LEFT JOIN metered m ON m.order_id = o.id \
             WHERE g.programme_id = $1 AND o.hours > 0) \
         SELECT sum(COALESCE(metered_kwh, estimated_kwh)) AS energy_kwh, \
                sum(CASE WHEN metered_kwh IS NOT NULL THEN metered_kwh * kg_per_kwh ELSE estimated_co2e END) AS co2e_kg, \
                sum(subtotal) FILTER (WHERE COALESCE(metered_kwh, estimated_kwh) IS NOT NULL) AS subtotal \
         FROM per_order",
    )
    .bind::<diesel::sql_types::Uuid, _>(programme)
    .get_result(conn)
    .await?;
    Ok(ProgrammeEnergy {
        energy_kwh: sums.energy_kwh.map(|d| d.normalize()),
        co2e_kg: sums.co2e_kg.map(|d| d.normalize()),
        subtotal: sums.subtotal.map(|d| d.normalize()),
    })
}
