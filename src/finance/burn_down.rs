//! A programme's burn-down: cumulative spent and committed subsidy per day of
//! its span, from the postings of its grants' `spent` accounts — the same
//! accounts and the same rules as the programme report's `spent` and
//! `committed`, so the last day's figures are the report's.

use chrono::{NaiveDate, TimeDelta};
use diesel::sql_types::{Numeric, Text, Uuid as SqlUuid};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use rust_decimal::Decimal;
use uuid::Uuid;

use super::FinanceError;
use crate::money::Currency;

/// What one day (in the programme office's zone) moved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DailyMovement {
    pub day: NaiveDate,
    /// Change of the settled subsidy (posted, net of outage refunds).
    pub spent: Decimal,
    /// Change of what orders hold and have not settled (pending).
    pub committed: Decimal,
}

/// The running totals at the end of a day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BurnPoint {
    pub day: NaiveDate,
    pub spent: Decimal,
    pub committed: Decimal,
}

#[derive(diesel::QueryableByName)]
struct DayRow {
    #[diesel(sql_type = Text)]
    day: String,
    #[diesel(sql_type = Numeric)]
    spent: Decimal,
    #[diesel(sql_type = Numeric)]
    committed: Decimal,
}

/// Each day's movement of the programme's `spent` accounts, oldest first.
/// Posted balance: `posted` and `post_pending` postings; pending balance:
/// `pending` adds, `post_pending` and `void_pending` take off (as
/// `ledger::queries::figures_from_postings` counts them).
pub async fn daily_movements(
    conn: &mut AsyncPgConnection,
    programme: Uuid,
    c: Currency,
    time_zone: &str,
) -> Result<Vec<DailyMovement>, FinanceError> {
    let rows: Vec<DayRow> = diesel::sql_query(
        "WITH spent_accounts AS ( \
           SELECT a.id FROM grants g JOIN accounts a ON a.code = 'budget:grant:' || g.id::text || ':spent' \
           WHERE g.programme_id = $1 AND a.currency = $2), \
         moves AS ( \
           SELECT p.effective_at, p.kind, \
                  CASE WHEN p.credit_account_id IN (SELECT id FROM spent_accounts) THEN p.amount ELSE -p.amount END AS amount \
           FROM postings p \
           WHERE p.credit_account_id IN (SELECT id FROM spent_accounts) \
              OR p.debit_account_id IN (SELECT id FROM spent_accounts)) \
         SELECT to_char(effective_at AT TIME ZONE $3, 'YYYY-MM-DD') AS day, \
                coalesce(sum(CASE WHEN kind IN ('posted', 'post_pending') THEN amount ELSE 0 END), 0) AS spent, \
                coalesce(sum(CASE kind WHEN 'pending' THEN amount WHEN 'posted' THEN 0 ELSE -amount END), 0) AS committed \
         FROM moves GROUP BY 1 ORDER BY 1",
    )
    .bind::<SqlUuid, _>(programme)
    .bind::<Text, _>(c.code())
    .bind::<Text, _>(time_zone)
    .load(conn)
    .await?;
    rows.into_iter()
        .map(|r| {
            let day = NaiveDate::parse_from_str(&r.day, "%Y-%m-%d").map_err(FinanceError::UnreadableDay)?;
            Ok(DailyMovement { day, spent: r.spent, committed: r.committed })
        })
        .collect()
}

/// Running totals for every day from `first` to `last`: a movement before
/// `first` counts from the first day, one after `last` on the last, so the
/// last point always equals the totals. `None` if a sum overflows or the
/// span is empty.
pub fn burn_down(movements: &[DailyMovement], first: NaiveDate, last: NaiveDate) -> Option<Vec<BurnPoint>> {
    if last < first {
        return None;
    }
    let mut points = Vec::new();
    let (mut spent, mut committed) = (Decimal::ZERO, Decimal::ZERO);
    let mut pending = movements.iter().peekable();
    let mut day = first;
    loop {
        while let Some(m) = pending.next_if(|m| m.day <= day || day == last) {
            spent = spent.checked_add(m.spent)?;
            committed = committed.checked_add(m.committed)?;
        }
        points.push(BurnPoint { day, spent, committed });
        if day == last {
            return Some(points);
        }
        day = day.checked_add_signed(TimeDelta::days(1))?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    fn d(m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, m, day).expect("date")
    }

    fn movement(day: NaiveDate, spent: Decimal, committed: Decimal) -> DailyMovement {
        DailyMovement { day, spent, committed }
    }

    #[test]
    fn every_day_carries_the_running_totals() {
        let moves = [movement(d(3, 2), dec!(0), dec!(5603)), movement(d(3, 4), dec!(5603), dec!(-5603))];
        let points = burn_down(&moves, d(3, 1), d(3, 5)).expect("points");
        let totals: Vec<(NaiveDate, Decimal, Decimal)> = points.iter().map(|p| (p.day, p.spent, p.committed)).collect();
        assert_eq!(
            totals,
            vec![
                (d(3, 1), dec!(0), dec!(0)),
                (d(3, 2), dec!(0), dec!(5603)),
                (d(3, 3), dec!(0), dec!(5603)),
                (d(3, 4), dec!(5603), dec!(0)),
                (d(3, 5), dec!(5603), dec!(0)),
            ]
        );
    }

    #[test]
    fn movements_outside_the_span_count_at_its_ends() {
        let moves = [
            movement(d(2, 1), dec!(100), dec!(0)),
            movement(d(3, 2), dec!(10.5), dec!(1)),
            movement(d(4, 1), dec!(7), dec!(2)),
        ];
        let points = burn_down(&moves, d(3, 1), d(3, 3)).expect("points");
        assert_eq!((points[0].spent, points[0].committed), (dec!(100), dec!(0)));
        assert_eq!((points[1].spent, points[1].committed), (dec!(110.5), dec!(1)));
        assert_eq!((points[2].spent, points[2].committed), (dec!(117.5), dec!(3)));
    }

    #[test]
    fn an_empty_span_or_an_overflow_gives_nothing() {
        assert_eq!(burn_down(&[], d(3, 2), d(3, 1)), None);
        let huge = [movement(d(3, 1), Decimal::MAX, dec!(0)), movement(d(3, 1), Decimal::MAX, dec!(0))];
        assert_eq!(burn_down(&huge, d(3, 1), d(3, 1)), None);
        assert_eq!(burn_down(&[], d(3, 1), d(3, 1)).map(|p| p.len()), Some(1));
    }
}
