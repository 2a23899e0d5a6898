//! Charts drawn on the server as SVG: nothing to load, nothing to run in the
//! browser, and (as SVG attributes, not inline styles) allowed by the pages'
//! content security policy.

use chrono::{DateTime, Utc};
use maud::{Markup, html};

use super::i18n::Lang;
use super::layout::VIEWER_ZONE;

/// One hour of a listing: GPUs reserved and free.
pub struct Hour {
    pub at: DateTime<Utc>,
    pub reserved: i32,
    pub free: i32,
}

/// Stacked bars, one per hour: reserved below, free above; a label each day
/// at midnight in the viewer's zone.
pub fn availability(hours: &[Hour], capacity: i32, lang: Lang) -> Markup {
    const HEIGHT: f64 = 160.0;
    const TOP: f64 = 10.0;
    const BOTTOM: f64 = 24.0;
    const LEFT: f64 = 34.0;
    let bar = 6.0_f64;
    let width = LEFT + bar * hours.len().max(1) as f64 + 8.0;
    let scale = if capacity > 0 { (HEIGHT - TOP - BOTTOM) / f64::from(capacity) } else { 0.0 };
    let base = HEIGHT - BOTTOM;
    let title = lang.tr("GPUs reserved and free, by hour", "시간대별 예약된 GPU와 남은 GPU");
    html! {
        figure {
            svg.chart viewBox={ "0 0 " (width) " " (HEIGHT) } role="img" aria-label=(title) preserveAspectRatio="xMinYMin meet" {
                title { (title) }
                text x="2" y=(TOP + 8.0) { (capacity) }
                text x="2" y=(base) { "0" }
                @for (i, h) in hours.iter().enumerate() {
                    @let x = LEFT + bar * i as f64;
                    @let reserved = f64::from(h.reserved.max(0)) * scale;
                    @let free = f64::from(h.free.max(0)) * scale;
                    rect.reserved x=(x) y=(base - reserved) width=(bar - 1.0) height=(reserved) {
                        title { (super::layout::time(h.at)) ": " (h.reserved) " " (lang.tr("reserved", "예약")) }
                    }
                    rect.free x=(x) y=(base - reserved - free) width=(bar - 1.0) height=(free) {
                        title { (super::layout::time(h.at)) ": " (h.free) " " (lang.tr("free", "남음")) }
                    }
                    @if h.at.with_timezone(&VIEWER_ZONE).format("%H").to_string() == "00" {
                        text x=(x) y=(HEIGHT - 8.0) { (h.at.with_timezone(&VIEWER_ZONE).format("%m-%d")) }
                    }
                }
            }
            figcaption.legend {
                span.reserved { (lang.tr("Reserved", "예약됨")) } " "
                span.free { (lang.tr("Free", "남음")) }
            }
        }
    }
}

/// A bar split into used, committed and left, in proportion to `total`
/// (the parts are whole shares of a 1000-wide box, exact to a pixel).
pub fn gauge(
    used: rust_decimal::Decimal,
    committed: rust_decimal::Decimal,
    total: rust_decimal::Decimal,
    label: &str,
) -> Markup {
    use rust_decimal::prelude::ToPrimitive;
    let share = |part: rust_decimal::Decimal| -> f64 {
        if total > rust_decimal::Decimal::ZERO {
            // Display geometry only: a float is fine for pixels, never for money.
            part.max(rust_decimal::Decimal::ZERO)
                .checked_div(total)
                .and_then(|ratio| ratio.checked_mul(rust_decimal::Decimal::from(1000)))
                .and_then(|w| w.to_f64())
                .map_or(1000.0, |w| w.min(1000.0))
        } else {
            0.0
        }
    };
    let used_w = share(used);
    let committed_w = share(committed).min(1000.0 - used_w);
    html! {
        svg.gauge viewBox="0 0 1000 20" preserveAspectRatio="none" role="img" aria-label=(label) width="100%" height="16" {
            rect x="0" y="0" width="1000" height="20" fill="#2f8f5b" {}
            rect x="0" y="0" width=(used_w) height="20" fill="#a3360f" {}
            rect x=(used_w) y="0" width=(committed_w) height="20" fill="#e6a23c" {}
        }
    }
}
