//! Throttling repeated logins and sign-ups (docs/security.md, "Abuse").
//!
//! Every attempt is counted *before* the password is checked, for each subject
//! it belongs to — the (email, client address) pair, the address, the email —
//! in one transaction that locks the subjects' rows: the check and the count
//! are one atomic step, so forty concurrent guesses see each other and only the
//! limit's worth get a password check. A success takes its attempt back.
//!
//! Past a subject's limit, attempts are not refused for a fixed long spell but
//! spaced out: each one allowed past the limit blocks the subject for a while
//! that doubles every time (a minute, two, four, ... at most fifteen), so a
//! user who mistyped gets a try again soon, while guessing slows to a few an
//! hour. And lockout cannot be turned on someone else: the pair is the only
//! subject that applies to an address the user has logged in from before, and
//! only that address's own failures move it.
//!
//! Counts live in the database so every process sees the same ones. Business
//! rules are the plain functions [`reserve`], [`decide`] and [`forgive`].

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Array, Integer, Nullable, Text, Timestamptz};
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use crate::db::schema::{login_known_addresses, login_throttle};

/// How many attempts a subject may make before it is spaced out, and how.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// Attempts allowed in a row; the last of them already blocks the subject.
    pub limit: i32,
    /// The first block; each attempt after it doubles the next.
    pub first_block: TimeDelta,
    /// The longest block.
    pub max_block: TimeDelta,
    /// Attempts further apart than this start the count again.
    pub window: TimeDelta,
}

/// Failed logins of one email from one address.
pub const PER_PAIR: Policy = Policy {
    limit: 10,
    first_block: TimeDelta::minutes(1),
    max_block: TimeDelta::minutes(15),
    window: TimeDelta::hours(1),
};
/// Failed logins from one address, whatever the email: many users may share
/// one (an office behind one NAT), so the limit is high. Not applied to
/// addresses the user has logged in from before.
pub const PER_ADDRESS: Policy = Policy {
    limit: 100,
    first_block: TimeDelta::minutes(1),
    max_block: TimeDelta::minutes(15),
    window: TimeDelta::hours(1),
};
/// Failed logins of one email from every address together: guessing spread
/// over many addresses. Not applied to addresses the user has logged in from before.
pub const PER_EMAIL: Policy = Policy {
    limit: 50,
    first_block: TimeDelta::minutes(1),
    max_block: TimeDelta::minutes(15),
    window: TimeDelta::hours(1),
};
/// How long a successful login makes its address known for the email.
pub const KNOWN_FOR: TimeDelta = TimeDelta::days(90);

/// Sign-ups from one address (`limit` is `GPUHOUR_SIGNUPS_PER_ADDRESS_PER_HOUR`):
/// each answers whether an email is registered, so they are counted like guesses.
pub fn signup_policy(limit: i32) -> Policy {
    Policy { limit, first_block: TimeDelta::minutes(15), max_block: TimeDelta::hours(1), window: TimeDelta::hours(1) }
}

/// One subject's count, as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Count {
    pub attempts: i32,
    pub last_attempt: DateTime<Utc>,
    pub blocked_until: Option<DateTime<Utc>>,
}

/// What counting one more attempt gives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reservation {
    /// The attempt may go ahead; the subject's count becomes this.
    Allowed(Count),
    /// The subject is blocked until then; nothing is counted.
    Refused { until: DateTime<Utc> },
}

/// How long a subject is blocked once it has made `attempts` (at least the
/// limit): the first block, doubled for every attempt past the limit, at most
/// the longest.
pub fn block_for(policy: &Policy, attempts: i32) -> TimeDelta {
    let doublings = attempts.saturating_sub(policy.limit).clamp(0, 20) as u32;
    policy.first_block.checked_mul(1 << doublings).map_or(policy.max_block, |block| block.min(policy.max_block))
}

/// Counts one attempt of a subject whose count is `count` (none yet: `None`).
pub fn reserve(policy: &Policy, count: Option<Count>, now: DateTime<Utc>) -> Reservation {
    if let Some(until) = count.and_then(|c| c.blocked_until).filter(|until| *until > now) {
        return Reservation::Refused { until };
    }
    let before = match count {
        Some(c) if c.last_attempt + policy.window > now => c.attempts,
        _ => 0,
    };
    let attempts = before.saturating_add(1);
    // The attempt that reaches the limit blocks at once, before its password is
    // checked, so that attempts racing it are refused rather than checked too.
    let blocked_until = (attempts >= policy.limit).then(|| now + block_for(policy, attempts));
    Reservation::Allowed(Count { attempts, last_attempt: now, blocked_until })
}

/// Counts one attempt against every subject: either all allow it (their new
/// counts, in order) or it is refused until the latest of the refusals, and
/// nothing is counted anywhere.
pub fn decide(subjects: &[(Policy, Option<Count>)], now: DateTime<Utc>) -> Result<Vec<Count>, DateTime<Utc>> {
    let mut counts = Vec::with_capacity(subjects.len());
    let mut refused: Option<DateTime<Utc>> = None;
    for (policy, count) in subjects {
        match reserve(policy, *count, now) {
            Reservation::Allowed(count) => counts.push(count),
            Reservation::Refused { until } => refused = refused.max(Some(until)),
        }
    }
    refused.map_or(Ok(counts), Err)
}

/// Takes back one attempt that turned out a success, and the block it set if
/// the count falls below the limit again.
pub fn forgive(policy: &Policy, count: Count) -> Count {
    let attempts = count.attempts.saturating_sub(1).max(0);
    Count { attempts, blocked_until: count.blocked_until.filter(|_| attempts >= policy.limit), ..count }
}

/// The pause before answering a failed login: none for the first two failures,
/// then 100 ms more per failure, at most one second. It makes serial guessing
/// slow without making a typo painful.
pub fn delay_after(failures: i32) -> Duration {
    let steps = (failures - 2).clamp(0, 10) as u64;
    Duration::from_millis(100 * steps)
}

pub fn pair_subject(email: &str, address: &str) -> String {
    format!("pair:{email}|{address}")
}

pub fn email_subject(email: &str) -> String {
    format!("email:{email}")
}

pub fn address_subject(address: &str) -> String {
    format!("address:{address}")
}

pub fn signup_subject(address: &str) -> String {
    format!("signup:{address}")
}

/// The subjects a login attempt counts against: the pair always; the address
/// and the email only from an address the user has not logged in from.
pub fn login_subjects(email: &str, address: &str, known: bool) -> Vec<(String, Policy)> {
    let mut subjects = vec![(pair_subject(email, address), PER_PAIR)];
    if !known {
        subjects.push((address_subject(address), PER_ADDRESS));
        subjects.push((email_subject(email), PER_EMAIL));
    }
    subjects
}

#[derive(QueryableByName)]
struct Row {
    #[diesel(sql_type = Text)]
    subject: String,
    #[diesel(sql_type = Integer)]
    attempts: i32,
    #[diesel(sql_type = Timestamptz)]
    last_attempt: DateTime<Utc>,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    blocked_until: Option<DateTime<Utc>>,
}

/// Locks the subjects' rows (creating missing ones), in subject order so two
/// attempts can never deadlock, and returns their counts in the order asked.
async fn lock_counts(
    conn: &mut AsyncPgConnection,
    subjects: &[String],
    now: DateTime<Utc>,
) -> QueryResult<Vec<Option<Count>>> {
    diesel::sql_query(
        "INSERT INTO login_throttle (subject, attempts, last_attempt) \
         SELECT s, 0, $2 FROM unnest($1::text[]) AS s ORDER BY s ON CONFLICT (subject) DO NOTHING",
    )
    .bind::<Array<Text>, _>(subjects)
    .bind::<Timestamptz, _>(now)
    .execute(conn)
    .await?;
    let rows: Vec<Row> = diesel::sql_query(
        "SELECT subject, attempts, last_attempt, blocked_until FROM login_throttle \
         WHERE subject = ANY($1) ORDER BY subject FOR UPDATE",
    )
    .bind::<Array<Text>, _>(subjects)
    .load(conn)
    .await?;
    Ok(subjects
        .iter()
        .map(|s| {
            rows.iter().find(|r| &r.subject == s).map(|r| Count {
                attempts: r.attempts,
                last_attempt: r.last_attempt,
                blocked_until: r.blocked_until,
            })
        })
        .collect())
}

async fn write_counts(conn: &mut AsyncPgConnection, subjects: &[String], counts: &[Count]) -> QueryResult<()> {
    diesel::sql_query(
        "UPDATE login_throttle AS t SET attempts = v.attempts, last_attempt = v.last_attempt, \
           blocked_until = v.blocked_until \
         FROM unnest($1::text[], $2::int[], $3::timestamptz[], $4::timestamptz[]) \
           AS v(subject, attempts, last_attempt, blocked_until) \
         WHERE t.subject = v.subject",
    )
    .bind::<Array<Text>, _>(subjects)
    .bind::<Array<Integer>, _>(counts.iter().map(|c| c.attempts).collect::<Vec<_>>())
    .bind::<Array<Timestamptz>, _>(counts.iter().map(|c| c.last_attempt).collect::<Vec<_>>())
    .bind::<Array<Nullable<Timestamptz>>, _>(counts.iter().map(|c| c.blocked_until).collect::<Vec<_>>())
    .execute(conn)
    .await?;
    Ok(())
}

/// Counts one attempt against `subjects` in one transaction: `Ok(counts)` when
/// every subject allows it (the new counts, in order), `Err(until)` when one
/// refuses it (then nothing is counted).
pub async fn reserve_attempt(
    conn: &mut AsyncPgConnection,
    subjects: &[(String, Policy)],
    now: DateTime<Utc>,
) -> QueryResult<Result<Vec<Count>, DateTime<Utc>>> {
    let names: Vec<String> = subjects.iter().map(|(s, _)| s.clone()).collect();
    crate::db::transaction(conn, async |conn: &mut AsyncPgConnection| {
        let counts = lock_counts(conn, &names, now).await?;
        let asked: Vec<(Policy, Option<Count>)> = subjects.iter().map(|(_, p)| *p).zip(counts).collect();
        let decision = decide(&asked, now);
        if let Ok(counts) = &decision {
            write_counts(conn, &names, counts).await?;
        }
        Ok(decision)
    })
    .await
}

/// A successful login: the pair starts again from nothing, the address and
/// the email take the attempt back (when they counted it), and the address
/// becomes known for the email.
pub async fn record_login(
    conn: &mut AsyncPgConnection,
    email: &str,
    address: &str,
    known: bool,
    now: DateTime<Utc>,
) -> QueryResult<()> {
    crate::db::transaction(conn, async |conn: &mut AsyncPgConnection| {
        diesel::delete(login_throttle::table.find(pair_subject(email, address))).execute(conn).await?;
        if !known {
            let subjects = login_subjects(email, address, false).split_off(1);
            let names: Vec<String> = subjects.iter().map(|(s, _)| s.clone()).collect();
            let counts = lock_counts(conn, &names, now).await?;
            let forgiven: Vec<Count> = subjects
                .iter()
                .zip(counts)
                .map(|((_, policy), count)| {
                    count.map_or(Count { attempts: 0, last_attempt: now, blocked_until: None }, |c| forgive(policy, c))
                })
                .collect();
            write_counts(conn, &names, &forgiven).await?;
        }
        diesel::insert_into(login_known_addresses::table)
            .values((
                login_known_addresses::email.eq(email),
                login_known_addresses::address.eq(address),
                login_known_addresses::last_login_at.eq(now),
            ))
            .on_conflict((login_known_addresses::email, login_known_addresses::address))
            .do_update()
            .set(login_known_addresses::last_login_at.eq(now))
            .execute(conn)
            .await?;
        Ok(())
    })
    .await
}

/// Whether the user of `email` has logged in from `address` lately.
pub async fn is_known(
    conn: &mut AsyncPgConnection,
    email: &str,
    address: &str,
    now: DateTime<Utc>,
) -> QueryResult<bool> {
    diesel::select(diesel::dsl::exists(
        login_known_addresses::table
            .filter(login_known_addresses::email.eq(email))
            .filter(login_known_addresses::address.eq(address))
            .filter(login_known_addresses::last_login_at.gt(now - KNOWN_FOR)),
    ))
    .get_result(conn)
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(minutes: i64) -> DateTime<Utc> {
        DateTime::UNIX_EPOCH + TimeDelta::days(20_000) + TimeDelta::minutes(minutes)
    }

    const POLICY: Policy = Policy {
        limit: 3,
        first_block: TimeDelta::minutes(1),
        max_block: TimeDelta::minutes(15),
        window: TimeDelta::hours(1),
    };

    fn allowed(r: Reservation) -> Count {
        match r {
            Reservation::Allowed(count) => count,
            Reservation::Refused { until } => panic!("refused until {until}"),
        }
    }

    #[test]
    fn the_attempt_that_reaches_the_limit_blocks_the_ones_after_it() {
        let first = allowed(reserve(&POLICY, None, at(0)));
        assert_eq!(first, Count { attempts: 1, last_attempt: at(0), blocked_until: None });
        let second = allowed(reserve(&POLICY, Some(first), at(0)));
        let third = allowed(reserve(&POLICY, Some(second), at(0)));
        assert_eq!(third, Count { attempts: 3, last_attempt: at(0), blocked_until: Some(at(1)) });
        assert_eq!(reserve(&POLICY, Some(third), at(0)), Reservation::Refused { until: at(1) });
    }

    #[test]
    fn past_the_limit_each_attempt_doubles_the_wait_up_to_the_longest() {
        let mut count = Count { attempts: 3, last_attempt: at(0), blocked_until: Some(at(1)) };
        let mut now = at(1);
        let mut waits = Vec::new();
        for _ in 0..6 {
            count = allowed(reserve(&POLICY, Some(count), now));
            let until = count.blocked_until.expect("blocked");
            waits.push((until - now).num_minutes());
            assert_eq!(reserve(&POLICY, Some(count), until - TimeDelta::seconds(1)), Reservation::Refused { until });
            now = until;
        }
        assert_eq!(waits, vec![2, 4, 8, 15, 15, 15]);
        assert_eq!(block_for(&POLICY, i32::MAX), POLICY.max_block);
    }

    #[test]
    fn attempts_an_hour_apart_start_again() {
        let stale = Count { attempts: 40, last_attempt: at(0), blocked_until: Some(at(15)) };
        assert_eq!(
            allowed(reserve(&POLICY, Some(stale), at(60))),
            Count { attempts: 1, last_attempt: at(60), blocked_until: None }
        );
    }

    #[test]
    fn one_refusing_subject_refuses_the_attempt_and_nothing_is_counted() {
        let open = Count { attempts: 0, last_attempt: at(0), blocked_until: None };
        let blocked = Count { attempts: 3, last_attempt: at(0), blocked_until: Some(at(5)) };
        let also_blocked = Count { attempts: 3, last_attempt: at(0), blocked_until: Some(at(9)) };
        assert_eq!(
            decide(&[(POLICY, Some(open)), (POLICY, Some(blocked)), (POLICY, Some(also_blocked))], at(2)),
            Err(at(9))
        );
        let counts = decide(&[(POLICY, Some(open)), (POLICY, None)], at(2)).expect("allowed");
        assert_eq!(counts.iter().map(|c| c.attempts).collect::<Vec<_>>(), vec![1, 1]);
    }

    #[test]
    fn a_success_takes_its_attempt_and_its_block_back() {
        let reached = Count { attempts: 3, last_attempt: at(0), blocked_until: Some(at(1)) };
        assert_eq!(forgive(&POLICY, reached), Count { attempts: 2, last_attempt: at(0), blocked_until: None });
        let beyond = Count { attempts: 5, last_attempt: at(0), blocked_until: Some(at(4)) };
        assert_eq!(forgive(&POLICY, beyond).blocked_until, Some(at(4)));
        let none = Count { attempts: 0, last_attempt: at(0), blocked_until: None };
        assert_eq!(forgive(&POLICY, none).attempts, 0);
    }

    #[test]
    fn a_known_address_counts_against_its_pair_only() {
        let subjects = |known| login_subjects("a@x.example", "10.0.0.1", known);
        assert_eq!(subjects(true), vec![("pair:a@x.example|10.0.0.1".to_string(), PER_PAIR)]);
        assert_eq!(
            subjects(false),
            vec![
                ("pair:a@x.example|10.0.0.1".to_string(), PER_PAIR),
                ("address:10.0.0.1".to_string(), PER_ADDRESS),
                ("email:a@x.example".to_string(), PER_EMAIL),
            ]
        );
    }

    #[test]
    fn the_delay_grows_then_stops_growing() {
        assert_eq!(delay_after(1), Duration::ZERO);
        assert_eq!(delay_after(2), Duration::ZERO);
        assert_eq!(delay_after(3), Duration::from_millis(100));
        assert_eq!(delay_after(10), Duration::from_millis(800));
        assert_eq!(delay_after(50), Duration::from_millis(1000));
    }
}
