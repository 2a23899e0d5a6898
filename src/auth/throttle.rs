//! Slowing and then refusing repeated failed logins, per email and per client
//! address. Counts live in the database so every process sees the same ones.

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Integer, Interval, Text, Timestamptz};
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use crate::db::schema::login_throttle;

/// How many failures in a row block a subject, and for how long.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    pub limit: i32,
    pub block: TimeDelta,
    /// Failures further apart than this start the count again.
    pub window: TimeDelta,
}

pub const PER_EMAIL: Policy = Policy { limit: 10, block: TimeDelta::minutes(15), window: TimeDelta::minutes(15) };
/// An address may try many emails (an office behind one NAT), but not forever.
pub const PER_ADDRESS: Policy = Policy { limit: 100, block: TimeDelta::minutes(15), window: TimeDelta::minutes(15) };

/// The pause before answering a failed login: none for the first two failures,
/// then 100 ms more per failure, at most one second. It makes guessing slow
/// without making a typo painful.
pub fn delay_after(failures: i32) -> Duration {
    let steps = (failures - 2).clamp(0, 10) as u64;
    Duration::from_millis(100 * steps)
}

pub fn email_subject(email: &str) -> String {
    format!("email:{email}")
}

pub fn address_subject(address: &str) -> String {
    format!("address:{address}")
}

/// The latest instant until which any of `subjects` is blocked, if one is now.
pub async fn blocked_until(
    conn: &mut AsyncPgConnection,
    subjects: &[String],
    now: DateTime<Utc>,
) -> QueryResult<Option<DateTime<Utc>>> {
    let until: Vec<Option<DateTime<Utc>>> = login_throttle::table
        .filter(login_throttle::subject.eq_any(subjects))
        .filter(login_throttle::blocked_until.gt(now))
        .select(login_throttle::blocked_until)
        .load(conn)
        .await?;
    Ok(until.into_iter().flatten().max())
}

#[derive(QueryableByName)]
struct Failures {
    #[diesel(sql_type = Integer)]
    failures: i32,
}

fn interval(d: TimeDelta) -> diesel::pg::data_types::PgInterval {
    diesel::pg::data_types::PgInterval::from_microseconds(d.num_microseconds().unwrap_or(i64::MAX))
}

/// Counts one failure for `subject`; blocks it once the policy's limit is reached.
/// Returns the failures in a row so far.
pub async fn record_failure(
    conn: &mut AsyncPgConnection,
    subject: &str,
    policy: Policy,
    now: DateTime<Utc>,
) -> QueryResult<i32> {
    let row: Failures = diesel::sql_query(
        "INSERT INTO login_throttle AS t (subject, failures, last_failure) VALUES ($1, 1, $2) \
         ON CONFLICT (subject) DO UPDATE SET \
           failures = CASE WHEN t.last_failure < $2 - $4 THEN 1 ELSE t.failures + 1 END, \
           last_failure = $2, \
           blocked_until = CASE \
             WHEN (CASE WHEN t.last_failure < $2 - $4 THEN 1 ELSE t.failures + 1 END) >= $3 THEN $2 + $5 \
             ELSE t.blocked_until END \
         RETURNING failures",
    )
    .bind::<Text, _>(subject)
    .bind::<Timestamptz, _>(now)
    .bind::<Integer, _>(policy.limit)
    .bind::<Interval, _>(interval(policy.window))
    .bind::<Interval, _>(interval(policy.block))
    .get_result(conn)
    .await?;
    Ok(row.failures)
}

/// A successful login clears the email's count (not the address's: one success
/// must not wash out a spray of guesses at other accounts).
pub async fn record_success(conn: &mut AsyncPgConnection, subject: &str) -> QueryResult<()> {
    diesel::delete(login_throttle::table.find(subject)).execute(conn).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_delay_grows_then_stops_growing() {
        assert_eq!(delay_after(1), Duration::ZERO);
        assert_eq!(delay_after(2), Duration::ZERO);
        assert_eq!(delay_after(3), Duration::from_millis(100));
        assert_eq!(delay_after(10), Duration::from_millis(800));
        assert_eq!(delay_after(50), Duration::from_millis(1000));
    }
}
