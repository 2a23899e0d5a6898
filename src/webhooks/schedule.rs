//! When a failed delivery is tried again: exponential backoff with full
//! jitter (a uniformly random wait between zero and a ceiling that doubles
//! from 30 seconds up to 8 hours), so receivers that fail together are not
//! hit together again. After [`MAX_ATTEMPTS`] the delivery is failed; the
//! ceilings add up to about 40 hours, so the expected schedule — half of it —
//! is about a day.

use std::time::Duration;

/// Attempts before a delivery is given up (the first send included).
pub const MAX_ATTEMPTS: i32 = 15;
/// The first retry's ceiling.
pub const BASE_DELAY: Duration = Duration::from_secs(30);
/// No retry waits longer than this.
pub const MAX_DELAY: Duration = Duration::from_secs(8 * 60 * 60);

/// The longest wait after the `attempts_made`-th failed attempt (1-based).
pub fn ceiling(attempts_made: i32) -> Duration {
    let doublings = attempts_made.saturating_sub(1).clamp(0, 30) as u32;
    BASE_DELAY.saturating_mul(1u32 << doublings).min(MAX_DELAY)
}

/// The wait before the next attempt after `attempts_made` attempts have
/// failed, or `None` when the delivery is to be given up. `roll` is a random
/// number; the wait is `roll` folded into `0..=ceiling` (in milliseconds).
pub fn retry_delay(attempts_made: i32, roll: u64) -> Option<Duration> {
    if attempts_made >= MAX_ATTEMPTS {
        return None;
    }
    let ceiling_ms = ceiling(attempts_made).as_millis() as u64;
    Some(Duration::from_millis(roll % (ceiling_ms + 1)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ceiling_doubles_from_thirty_seconds_up_to_eight_hours() {
        let seconds: Vec<u64> = (1..MAX_ATTEMPTS).map(|a| ceiling(a).as_secs()).collect();
        assert_eq!(
            seconds,
            vec![30, 60, 120, 240, 480, 960, 1_920, 3_840, 7_680, 15_360, 28_800, 28_800, 28_800, 28_800]
        );
        assert_eq!(ceiling(0), BASE_DELAY);
        assert_eq!(ceiling(i32::MAX), MAX_DELAY);
    }

    #[test]
    fn the_whole_schedule_is_about_a_day() {
        let longest: u64 = (1..MAX_ATTEMPTS).map(|a| ceiling(a).as_secs()).sum();
        assert_eq!(longest, 145_890);
        // Full jitter waits half the ceiling on average: about 20 hours.
        assert_eq!(longest / 2 / 3600, 20);
    }

    #[test]
    fn the_wait_is_anywhere_from_zero_to_the_ceiling() {
        assert_eq!(retry_delay(1, 0), Some(Duration::ZERO));
        assert_eq!(retry_delay(1, 30_000), Some(Duration::from_secs(30)));
        assert_eq!(retry_delay(1, 30_001), Some(Duration::ZERO));
        assert_eq!(retry_delay(3, 119_999), Some(Duration::from_millis(119_999)));
        for roll in [0, 1, 12_345, u64::MAX] {
            let wait = retry_delay(14, roll).expect("not yet given up");
            assert!(wait <= MAX_DELAY, "{wait:?}");
        }
    }

    #[test]
    fn a_delivery_is_given_up_after_the_last_attempt() {
        assert!(retry_delay(MAX_ATTEMPTS - 1, 7).is_some());
        assert_eq!(retry_delay(MAX_ATTEMPTS, 7), None);
        assert_eq!(retry_delay(MAX_ATTEMPTS + 1, 7), None);
    }
}
