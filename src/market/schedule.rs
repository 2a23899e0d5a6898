//! Time and shares: which hours have begun or elapsed, and how much of a pending
//! posting each settlement, cancellation or outage credit moves.

use std::collections::BTreeMap;

use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use rust_decimal::Decimal;

use crate::money::{Currency, floor_to_minor};

pub fn is_whole_hour(t: DateTime<Utc>) -> bool {
    t.duration_trunc(TimeDelta::hours(1)).is_ok_and(|h| h == t)
}

/// A span of whole hours, [`start`, `end`), with `start` before `end`: what an
/// order, a listing's availability, an outage or a search window is. Made
/// only by [`HourWindow::parse`], so holding one means the checks passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HourWindow {
    start: DateTime<Utc>,
    end: DateTime<Utc>,
}

/// The names the caller gives a window's two ends (`start`/`end`,
/// `available_from`/`available_until`), for the messages of a refused one.
#[derive(Debug, Clone, Copy)]
pub struct WindowFields {
    pub start: &'static str,
    pub end: &'static str,
}

impl WindowFields {
    pub const START_END: WindowFields = WindowFields { start: "start", end: "end" };
}

impl HourWindow {
    /// Checks that both ends are on whole hours and `start < end`. A refusal
    /// lists every problem found, each as (field, message), start first.
    pub fn parse(
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        fields: WindowFields,
    ) -> Result<HourWindow, Vec<(&'static str, String)>> {
        let mut problems = Vec::new();
        if !is_whole_hour(start) {
            problems.push((fields.start, "must be on a whole hour (e.g. 2026-03-01T10:00:00Z)".to_string()));
        }
        if !is_whole_hour(end) {
            problems.push((fields.end, "must be on a whole hour".to_string()));
        }
        if end <= start {
            problems.push((fields.end, format!("must be after {}", fields.start)));
        }
        if problems.is_empty() { Ok(HourWindow { start, end }) } else { Err(problems) }
    }

    pub fn start(&self) -> DateTime<Utc> {
        self.start
    }

    pub fn end(&self) -> DateTime<Utc> {
        self.end
    }

    /// The number of hours in the window (at least 1).
    pub fn hours(&self) -> i64 {
        (self.end - self.start).num_hours()
    }

    pub fn span(&self) -> TimeDelta {
        self.end - self.start
    }
}

/// [`HourWindow::parse`], its refusal added to `errors` (the caller goes on
/// checking its other fields, then answers every problem at once).
pub fn parse_window(
    errors: &mut Vec<crate::http::FieldError>,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    fields: WindowFields,
) -> Option<HourWindow> {
    HourWindow::parse(start, end, fields)
        .map_err(|problems| {
            errors.extend(problems.into_iter().map(|(field, message)| crate::http::FieldError::new(field, message)))
        })
        .ok()
}

/// Hours of an order starting at `start` that have fully elapsed at `now`, at most `hours`.
pub fn hours_elapsed(start: DateTime<Utc>, now: DateTime<Utc>, hours: i32) -> i32 {
    if now <= start {
        return 0;
    }
    ((now - start).num_hours().min(hours as i64)) as i32
}

/// Hours that have begun at `now` (the current one included), at most `hours`.
pub fn hours_begun(start: DateTime<Utc>, now: DateTime<Utc>, hours: i32) -> i32 {
    if now < start {
        return 0;
    }
    // The hour that starts at `now` has begun too.
    (((now - start).num_hours() + 1).min(hours as i64)) as i32
}

/// Hour `index`'s share of a pending posting of `amount` spread over `hours`
/// hours: `floor(amount ÷ hours)`, and the last hour takes the rounding
/// remainder (SPEC section 4), so the shares add up to `amount` exactly.
pub fn hour_share(amount: Decimal, index: i32, hours: i32, currency: Currency) -> Decimal {
    if hours <= 0 || index < 0 || index >= hours {
        return Decimal::ZERO;
    }
    let hourly = floor_to_minor(amount / Decimal::from(hours), currency);
    if index == hours - 1 {
        // amount ≤ 10^15 and hours ≤ 10^4: this product cannot overflow.
        amount - hourly * Decimal::from(hours - 1)
    } else {
        hourly
    }
}

/// What `credited` of an hour's `gpus` GPUs (lost to outages) take off that
/// hour's `share`: the lost part, floored; a fully credited hour gives back
/// its whole share. Cumulative within the hour, so successive outages never drift.
pub fn hour_credit(share: Decimal, credited: i32, gpus: i32, currency: Currency) -> Decimal {
    if credited <= 0 || gpus <= 0 {
        return Decimal::ZERO;
    }
    if credited >= gpus {
        return share;
    }
    floor_to_minor(share * Decimal::from(credited) / Decimal::from(gpus), currency)
}

/// The schedule of one pending posting of an order: which share of it each
/// hour carries, and what outage credits took off which hour. Every figure the
/// ledger moves for an order (settlement, cancellation, outage credit) and the
/// order-level check of `verify` come from it, so what was credited is tied to
/// the hour it was for.
#[derive(Debug, Clone, Copy)]
pub struct PostingSchedule<'a> {
    pub amount: Decimal,
    pub hours: i32,
    pub gpus: i32,
    pub currency: Currency,
    /// GPUs credited per hour (hour index from the order's start → GPUs).
    pub credits: &'a BTreeMap<i32, i32>,
}

impl PostingSchedule<'_> {
    /// The net charge of hours `[from, to)`: their shares less their credits.
    pub fn net(&self, from: i32, to: i32) -> Decimal {
        let (from, to) = (from.max(0), to.min(self.hours));
        if to <= from {
            return Decimal::ZERO;
        }
        let hourly = hour_share(self.amount, 0, self.hours, self.currency);
        let includes_last = to == self.hours;
        let plain_hours = to - from - i32::from(includes_last);
        // amount ≤ 10^15 and hours ≤ 10^4: these products cannot overflow.
        let mut net = hourly * Decimal::from(plain_hours);
        if includes_last {
            net += hour_share(self.amount, self.hours - 1, self.hours, self.currency);
        }
        for (&hour, &credited) in self.credits.range(from..to) {
            net -= hour_credit(
                hour_share(self.amount, hour, self.hours, self.currency),
                credited,
                self.gpus,
                self.currency,
            );
        }
        net
    }

    /// What raising hour `hour`'s credited GPUs from `before` to `after` takes off it.
    pub fn credit_increase(&self, hour: i32, before: i32, after: i32) -> Decimal {
        let share = hour_share(self.amount, hour, self.hours, self.currency);
        hour_credit(share, after, self.gpus, self.currency) - hour_credit(share, before, self.gpus, self.currency)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    #[test]
    fn an_hour_window_is_whole_hours_start_before_end() {
        let window = HourWindow::parse(t(10, 0), t(13, 0), WindowFields::START_END).expect("a valid window");
        assert_eq!((window.start(), window.end(), window.hours()), (t(10, 0), t(13, 0), 3));
        assert_eq!(
            HourWindow::parse(t(10, 30), t(13, 0), WindowFields::START_END),
            Err(vec![("start", "must be on a whole hour (e.g. 2026-03-01T10:00:00Z)".to_string())])
        );
        assert_eq!(
            HourWindow::parse(t(10, 0), t(12, 15), WindowFields::START_END),
            Err(vec![("end", "must be on a whole hour".to_string())])
        );
        let fields = WindowFields { start: "available_from", end: "available_until" };
        assert_eq!(
            HourWindow::parse(t(10, 0), t(10, 0), fields),
            Err(vec![("available_until", "must be after available_from".to_string())])
        );
        // Every problem at once, start first.
        assert_eq!(HourWindow::parse(t(11, 30), t(10, 15), WindowFields::START_END).map_err(|p| p.len()), Err(3));
    }

    fn t(h: u32, m: u32) -> DateTime<Utc> {
        use chrono::TimeZone;
        Utc.with_ymd_and_hms(2026, 3, 1, h, m, 0).single().expect("time")
    }

    #[test]
    fn hours_elapsed_and_begun() {
        assert_eq!(hours_elapsed(t(10, 0), t(9, 0), 7), 0);
        assert_eq!(hours_elapsed(t(10, 0), t(10, 59), 7), 0);
        assert_eq!(hours_elapsed(t(10, 0), t(13, 0), 7), 3);
        assert_eq!(hours_elapsed(t(10, 0), t(23, 0), 7), 7);
        assert_eq!(hours_begun(t(10, 0), t(9, 59), 7), 0);
        assert_eq!(hours_begun(t(10, 0), t(10, 0), 7), 1);
        assert_eq!(hours_begun(t(10, 0), t(12, 0), 7), 3, "at 12:00 the third hour begins");
        assert_eq!(hours_begun(t(10, 0), t(12, 30), 7), 3);
        assert_eq!(hours_begun(t(10, 0), t(23, 0), 7), 7);
    }

    fn schedule(amount: Decimal, hours: i32, gpus: i32, credits: &BTreeMap<i32, i32>) -> PostingSchedule<'_> {
        PostingSchedule { amount, hours, gpus, currency: Currency::Krw, credits }
    }

    #[test]
    fn shares_settle_hour_by_hour_and_the_last_takes_the_rest() {
        let none = BTreeMap::new();
        let s = schedule(dec!(7004), 7, 1, &none);
        let shares: Vec<Decimal> = (0..7).map(|h| s.net(h, h + 1)).collect();
        assert_eq!(shares, vec![dec!(1000), dec!(1000), dec!(1000), dec!(1000), dec!(1000), dec!(1000), dec!(1004)]);
        // Several hours at once post the same as one by one.
        assert_eq!(s.net(0, 3), dec!(3000));
        assert_eq!(s.net(0, 7), dec!(7004));
        assert_eq!(s.net(3, 7), dec!(4004));
        assert_eq!(s.net(3, 3), dec!(0));
        assert_eq!(s.net(5, 99), dec!(2004), "past the end is the end");
        // USD: 10.00 over 3 hours is 3.33, 3.33, 3.34.
        let usd = PostingSchedule { amount: dec!(10), hours: 3, gpus: 1, currency: Currency::Usd, credits: &none };
        assert_eq!((usd.net(0, 2), usd.net(2, 3)), (dec!(6.66), dec!(3.34)));
    }

    #[test]
    fn a_credit_comes_off_the_hour_it_was_for() {
        // The reliability review's defect: 1 GPU, 10 hours, 5,000 of the tenant's
        // money; hour 0 lost to an outage. Charging hour 0 (cancellation at
        // start + 30 min) must charge nothing, not 500 taken off the last hour.
        let credits = BTreeMap::from([(0, 1)]);
        let s = schedule(dec!(5000), 10, 1, &credits);
        assert_eq!(s.credit_increase(0, 0, 1), dec!(500));
        assert_eq!(s.net(0, 1), dec!(0));
        assert_eq!(s.net(1, 10), dec!(4500));
        assert_eq!(s.net(0, 10), dec!(4500));
    }

    #[test]
    fn partial_credits_are_cumulative_within_the_hour() {
        // 3 GPUs × 4 hours, 1,001 an hour: one GPU, then another, lost in hour 2.
        let none = BTreeMap::new();
        let s = schedule(dec!(4004), 4, 3, &none);
        let (first, second, third) =
            (s.credit_increase(2, 0, 1), s.credit_increase(2, 1, 2), s.credit_increase(2, 2, 3));
        assert_eq!((first, second, third), (dec!(333), dec!(334), dec!(334)));
        assert_eq!(first + second + third, dec!(1001), "a wholly lost hour gives back its whole share");
        let credits = BTreeMap::from([(2, 2)]);
        assert_eq!(schedule(dec!(4004), 4, 3, &credits).net(0, 4), dec!(4004) - dec!(667));
        // The last hour's share carries the remainder, and so does its credit.
        let last = BTreeMap::from([(3, 3)]);
        assert_eq!(schedule(dec!(4003), 4, 3, &last).net(0, 4), dec!(3000));
    }
}
