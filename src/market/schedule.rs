//! Time and shares: which hours have begun or elapsed, and how much of a pending
//! posting each settlement, cancellation or outage credit moves.

use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use rust_decimal::Decimal;

use crate::money::{Currency, floor_to_minor};

pub fn is_whole_hour(t: DateTime<Utc>) -> bool {
    t.duration_trunc(TimeDelta::hours(1)).is_ok_and(|h| h == t)
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

/// What to post of a pending posting of `amount` over `total` hours, of which
/// `posted` is posted and `remaining` still pending, once hours up to `upto` are
/// due. Each hour's share is `floor(amount ÷ total)` and the last hour takes the
/// rounding remainder (SPEC section 4). What outage credits released from the
/// reservation comes off the end: the target is never more than what is left.
pub fn share_due(
    amount: Decimal,
    posted: Decimal,
    remaining: Decimal,
    upto: i32,
    total: i32,
    currency: Currency,
) -> Decimal {
    if remaining <= Decimal::ZERO || upto <= 0 || total <= 0 {
        return Decimal::ZERO;
    }
    if upto >= total {
        return remaining;
    }
    let hourly = floor_to_minor(amount / Decimal::from(total), currency);
    // amount ≤ 10^15 and hours ≤ 10^4: these products cannot overflow.
    let target = (hourly * Decimal::from(upto)).min(posted + remaining);
    (target - posted).max(Decimal::ZERO).min(remaining)
}

/// The part of `amount` that `gpu_hours` of `total_gpu_hours` account for, floored,
/// cumulatively: credits of 1, 2, 3 GPU-hours in turn add up to the credit of 6.
pub fn cumulative_share(amount: Decimal, gpu_hours: i64, total_gpu_hours: i64, currency: Currency) -> Decimal {
    if total_gpu_hours <= 0 || gpu_hours <= 0 {
        return Decimal::ZERO;
    }
    if gpu_hours >= total_gpu_hours {
        return amount;
    }
    floor_to_minor(amount * Decimal::from(gpu_hours) / Decimal::from(total_gpu_hours), currency)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;

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

    #[test]
    fn shares_settle_hour_by_hour_and_the_last_takes_the_rest() {
        let amount = dec!(7004);
        let (mut posted, mut remaining) = (dec!(0), amount);
        let mut shares = Vec::new();
        for hour in 1..=7 {
            let share = share_due(amount, posted, remaining, hour, 7, Currency::Krw);
            posted += share;
            remaining -= share;
            shares.push(share);
        }
        assert_eq!(shares, vec![dec!(1000), dec!(1000), dec!(1000), dec!(1000), dec!(1000), dec!(1000), dec!(1004)]);
        assert_eq!(remaining, dec!(0));
        // Several hours at once post the same as one by one.
        assert_eq!(share_due(amount, dec!(0), amount, 3, 7, Currency::Krw), dec!(3000));
        assert_eq!(share_due(amount, dec!(0), amount, 7, 7, Currency::Krw), dec!(7004));
        assert_eq!(share_due(amount, dec!(3000), dec!(4004), 3, 7, Currency::Krw), dec!(0));
        // USD: 10.00 over 3 hours is 3.33, 3.33, 3.34.
        assert_eq!(share_due(dec!(10), dec!(0), dec!(10), 2, 3, Currency::Usd), dec!(6.66));
    }

    #[test]
    fn a_released_reservation_comes_off_the_last_hours() {
        // 700 over 7 hours; 3 hours settled (300); an outage released 100.
        assert_eq!(share_due(dec!(700), dec!(300), dec!(300), 5, 7, Currency::Krw), dec!(200));
        assert_eq!(share_due(dec!(700), dec!(500), dec!(100), 6, 7, Currency::Krw), dec!(100));
        assert_eq!(share_due(dec!(700), dec!(600), dec!(0), 7, 7, Currency::Krw), dec!(0));
    }

    #[test]
    fn cumulative_shares_never_drift() {
        let a = dec!(1401);
        let parts: Decimal = [1, 3, 6]
            .iter()
            .scan(0i64, |prev, &n| {
                let s =
                    cumulative_share(a, *prev + n, 21, Currency::Krw) - cumulative_share(a, *prev, 21, Currency::Krw);
                *prev += n;
                Some(s)
            })
            .sum();
        assert_eq!(parts, cumulative_share(a, 10, 21, Currency::Krw));
        assert_eq!(cumulative_share(a, 21, 21, Currency::Krw), a);
    }
}
