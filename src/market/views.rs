//! What the marketplace's routes answer with: listings, availability,
//! outages, quotes, orders and settlement runs as the API shows them.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::charged::{self, Charged, ChargedView};
use super::energy::{self, Accelerator, Declared};
use super::listings::{ListingRow, ListingStatus};
use super::orders::{OrderRow, OrderStatus};
use super::settlement::{OutageCredit, Settled};
use crate::events::{EventType, NewEvent, view_data};
use crate::ledger::LedgerError;
use crate::money::format_amount;

use crate::market::routes::unit_price;

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ListingView {
    pub id: Uuid,
    pub provider_org_id: Uuid,
    pub gpu_model: String,
    pub gpu_memory_gb: i32,
    pub gpus: i32,
    pub region: String,
    pub interconnect: Option<String>,
    pub price_per_gpu_hour: String,
    pub currency: String,
    pub available_from: DateTime<Utc>,
    pub available_until: DateTime<Utc>,
    pub min_hours: i32,
    pub status: ListingStatus,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// In search results: GPUs free in every hour of the window asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub free_gpus: Option<i32>,
    /// What it sells (null when not declared).
    pub accelerator: Option<Accelerator>,
    /// Watts per accelerator, as declared.
    pub board_power_w: Option<i32>,
    pub pue: Option<String>,
    /// FP16/BF16 TFLOPS per accelerator, as declared.
    pub performance_tflops: Option<String>,
    /// Estimated kWh per GPU-hour (board power × PUE ÷ 1000); null without a declared power.
    pub kwh_per_gpu_hour: Option<String>,
}

pub fn listing_view(l: ListingRow, free_gpus: Option<i32>) -> ListingView {
    ListingView {
        id: l.id,
        provider_org_id: l.provider_org_id,
        gpu_model: l.gpu_model,
        gpu_memory_gb: l.gpu_memory_gb,
        gpus: l.gpus,
        region: l.region,
        interconnect: l.interconnect,
        price_per_gpu_hour: unit_price(l.price_per_gpu_hour),
        currency: l.currency.code().to_string(),
        available_from: l.available_from,
        available_until: l.available_until,
        min_hours: l.min_hours,
        status: l.status,
        created_at: l.created_at,
        updated_at: l.updated_at,
        free_gpus,
        accelerator: accelerator_of(&l.energy),
        board_power_w: l.energy.board_power_w,
        pue: l.energy.pue.map(|p| p.normalize().to_string()),
        performance_tflops: l.energy.performance_tflops.map(|t| t.normalize().to_string()),
        kwh_per_gpu_hour: l.energy.kwh_per_gpu_hour().map(energy::display),
    }
}

fn accelerator_of(d: &Declared) -> Option<Accelerator> {
    Some(Accelerator {
        kind: d.accelerator_kind.clone()?,
        vendor: d.accelerator_vendor.clone().unwrap_or_default(),
        model: d.accelerator_model.clone().unwrap_or_default(),
    })
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct HourAvailability {
    pub hour: DateTime<Utc>,
    pub reserved: i32,
    pub free: i32,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Availability {
    pub data: Vec<HourAvailability>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct OutageView {
    pub id: Uuid,
    pub listing_id: Uuid,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub gpus: i32,
    /// Each credited order's `outage_credit` entry is in `credits`.
    pub credits: Vec<OutageCredit>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct QuoteView {
    pub listing_id: Uuid,
    pub gpus: i32,
    pub hours: i32,
    pub gpu_hours: i64,
    pub unit_price: String,
    pub subtotal: String,
    pub subsidy: String,
    pub subsidy_rate: String,
    pub tenant_amount: String,
    pub platform_fee: String,
    pub currency: String,
    /// Estimated kWh (see `OrderView`); null when the listing declares no power.
    pub energy_kwh: Option<String>,
    /// Estimated kgCO2e; null without an estimate or a grid intensity for the region.
    pub co2e_kg: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct OrderView {
    pub id: Uuid,
    /// `reserved`, `active`, `completed` or `cancelled`.
    pub status: OrderStatus,
    pub listing_id: Uuid,
    pub tenant_org_id: Uuid,
    pub provider_org_id: Uuid,
    pub gpu_model: String,
    pub region: String,
    pub gpus: i32,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub hours: i32,
    pub gpu_hours: i32,
    pub unit_price: String,
    pub subtotal: String,
    pub subsidy: String,
    pub subsidy_rate: String,
    pub tenant_amount: String,
    pub platform_fee: String,
    pub currency: String,
    pub grant_id: Option<Uuid>,
    /// Hours whose share has been posted.
    pub settled_hours: i32,
    /// Hours charged in all (fewer than `hours` after a cancellation).
    pub charged_hours: i32,
    /// GPU-hours credited back for outages.
    pub credited_gpu_hours: i32,
    pub journal_entry_id: Uuid,
    pub created_at: DateTime<Utc>,
    pub cancelled_at: Option<DateTime<Utc>>,
    /// Energy (kWh): metered (Σ reported `energy_wh` ÷ 1000, exact) once the
    /// provider has reported usage, else estimated from the listing's declared
    /// power and PUE when placed; null with neither. 3 places, half-even.
    pub energy_kwh: Option<String>,
    /// `metered`, `estimated`, or null: where `energy_kwh` comes from.
    pub energy_source: Option<String>,
    /// That energy's carbon (kgCO2e) at the region's grid intensity when the
    /// order was placed; null without an intensity for the region (or, for
    /// metered energy, without the declared power the intensity came with).
    pub co2e_kg: Option<String>,
    /// What the order has really cost so far, from the ledger: the figures
    /// above are the breakdown when it was placed; these account for
    /// settlements, outage credits, refunds and a cancellation.
    pub charged: ChargedView,
    /// Metered: GPU-hours used ÷ GPU-hours reserved (`gpus × charged_hours`),
    /// 4 places, half-even; null while no usage is reported (`market::usage`).
    pub utilisation: Option<String>,
}

pub fn order_view(o: OrderRow, now: DateTime<Utc>, charged: &Charged) -> Result<OrderView, LedgerError> {
    let c = o.currency;
    let charged = charged::view(charged)?;
    Ok(OrderView {
        id: o.id,
        status: o.status_at(now),
        listing_id: o.listing_id,
        tenant_org_id: o.tenant_org_id,
        provider_org_id: o.provider_org_id,
        gpu_model: o.gpu_model,
        region: o.region,
        gpus: o.gpus,
        start: o.start_at,
        end: o.end_at,
        hours: o.hours,
        gpu_hours: o.gpu_hours,
        unit_price: unit_price(o.unit_price),
        subtotal: format_amount(o.subtotal, c),
        subsidy: format_amount(o.subsidy, c),
        subsidy_rate: o.subsidy_rate.normalize().to_string(),
        tenant_amount: format_amount(o.tenant_amount, c),
        platform_fee: format_amount(o.platform_fee, c),
        currency: c.code().to_string(),
        grant_id: o.grant_id,
        settled_hours: o.settled_hours,
        charged_hours: o.charged_hours,
        credited_gpu_hours: o.credited_gpu_hours,
        journal_entry_id: o.journal_entry_id,
        created_at: o.created_at,
        cancelled_at: o.cancelled_at,
        energy_kwh: o.estimated_energy_kwh.map(energy::display),
        energy_source: o.estimated_energy_kwh.map(|_| "estimated".to_string()),
        co2e_kg: o.estimated_co2e_kg.map(energy::display),
        charged,
        utilisation: None,
    })
}

/// An order's event: seen by its tenant and its provider (and finance), with
/// the order's view as of `now` as its data.
pub fn order_event(
    event_type: EventType,
    order: OrderRow,
    now: DateTime<Utc>,
    charged: &Charged,
) -> Result<NewEvent, LedgerError> {
    let (id, orgs) = (order.id, vec![order.tenant_org_id, order.provider_org_id]);
    let data = view_data(&order_view(order, now, charged)?)?;
    Ok(NewEvent::new(event_type, now, id, orgs, data))
}

/// [`order_event`] for orders whose charged figures are read from the ledger
/// (in one query for all of them): after a settlement, cancellation or credit,
/// inside its transaction.
pub async fn order_events(
    conn: &mut diesel_async::AsyncPgConnection,
    events: Vec<(EventType, OrderRow)>,
    now: DateTime<Utc>,
) -> Result<Vec<NewEvent>, LedgerError> {
    let rows: Vec<OrderRow> = events.iter().map(|(_, o)| o.clone()).collect();
    let figures = charged::charged_of(conn, &rows).await?;
    events
        .into_iter()
        .map(|(t, o)| {
            let c = figures.get(&o.id).ok_or_else(|| LedgerError::Corrupt(format!("order {} vanished", o.id)))?;
            order_event(t, o, now, c)
        })
        .collect()
}

impl OrderView {
    /// The view with the order's metered figures: metered energy replaces
    /// the estimate, its carbon at the intensity the estimate was made with.
    pub fn with_usage(mut self, figures: &super::usage::UsageFigures, estimate: energy::Estimate) -> Self {
        self.utilisation = figures.utilisation_shown();
        if let Some(metered) = figures.energy_kwh {
            self.energy_kwh = Some(energy::display(metered));
            self.energy_source = Some("metered".to_string());
            self.co2e_kg = energy::metered_co2e_kg(metered, estimate).map(energy::display);
        }
        self
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SettlementRun {
    /// Orders settled by this run.
    pub orders: usize,
    /// Hours settled in all.
    pub hours: i64,
    pub settled: Vec<Settled>,
}
