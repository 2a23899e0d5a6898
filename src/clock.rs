//! The service's clock. Every piece of code that asks the time asks this.
//!
//! Outside sandbox mode it is the system clock. In sandbox mode (SPEC section 4)
//! it is a frozen instant stored in the database, shared by every process on it,
//! that `POST /v1/sandbox/clock` moves forward (never back), as Stripe's test
//! clocks do: hours elapse when a test says so, and only then.

use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use crate::db::schema::sandbox_clock;

/// Whether a period [`from`, `to`) runs backwards (`from` after `to`); an
/// open end is never backwards and `from == to` is a valid, empty period.
pub fn is_backwards(from: Option<DateTime<Utc>>, to: Option<DateTime<Utc>>) -> bool {
    matches!((from, to), (Some(from), Some(to)) if from > to)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Clock {
    System,
    Sandbox,
}

/// PostgreSQL keeps microseconds; instants are truncated to them so that what
/// is written reads back equal.
pub fn truncate_to_micros(t: DateTime<Utc>) -> DateTime<Utc> {
    t.duration_trunc(TimeDelta::microseconds(1)).unwrap_or(t)
}

#[derive(Debug, thiserror::Error)]
pub enum ClockError {
    #[error("the sandbox clock never moves back: it is {current}, {requested} was asked for")]
    Backwards { current: DateTime<Utc>, requested: DateTime<Utc> },
    #[error(transparent)]
    Database(#[from] diesel::result::Error),
}

impl Clock {
    pub fn for_mode(sandbox: bool) -> Self {
        if sandbox { Clock::Sandbox } else { Clock::System }
    }

    pub async fn now(&self, conn: &mut AsyncPgConnection) -> Result<DateTime<Utc>, diesel::result::Error> {
        match self {
            Clock::System => Ok(truncate_to_micros(Utc::now())),
            Clock::Sandbox => sandbox_clock::table.select(sandbox_clock::now).first(conn).await,
        }
    }

    /// Starts the sandbox clock at the current hour if no process has yet.
    pub async fn initialise(&self, conn: &mut AsyncPgConnection) -> Result<(), diesel::result::Error> {
        if *self == Clock::Sandbox {
            let start = Utc::now().duration_trunc(TimeDelta::hours(1)).unwrap_or_else(|_| Utc::now());
            diesel::insert_into(sandbox_clock::table)
                .values((sandbox_clock::singleton.eq(true), sandbox_clock::now.eq(start)))
                .on_conflict_do_nothing()
                .execute(conn)
                .await?;
        }
        Ok(())
    }

    /// Moves the sandbox clock to `to`; refuses to move it back.
    pub async fn advance(conn: &mut AsyncPgConnection, to: DateTime<Utc>) -> Result<DateTime<Utc>, ClockError> {
        let to = truncate_to_micros(to);
        let moved: Option<DateTime<Utc>> = diesel::update(sandbox_clock::table.filter(sandbox_clock::now.le(to)))
            .set(sandbox_clock::now.eq(to))
            .returning(sandbox_clock::now)
            .get_result(conn)
            .await
            .optional()?;
        match moved {
            Some(now) => Ok(now),
            None => {
                let current = sandbox_clock::table.select(sandbox_clock::now).first(conn).await?;
                Err(ClockError::Backwards { current, requested: to })
            }
        }
    }
}
