//! A Jepsen-style bank test of the posting code: concurrent random transfers,
//! some of them reserved and later posted or voided, while readers check in one
//! statement that money is conserved and no floor is ever broken.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use diesel::sql_types::{Array, Bool, Numeric, Uuid as SqlUuid};
use diesel_async::RunQueryDsl;
use gpuhour::auth::Role;
use gpuhour::db::transaction;
use gpuhour::ledger::LedgerError;
use gpuhour::ledger::chart;
use gpuhour::ledger::model::EntryKind;
use gpuhour::ledger::posting::{self, NewEntry};
use gpuhour::ledger::rules::Movement;
use gpuhour::money::Currency;
use rand::Rng;
use rust_decimal::Decimal;
use uuid::Uuid;

use crate::helpers::{TestApp, dec, spawn_app, verify_is_clean};
use crate::ledger_entries::wallet;

const ACCOUNTS: usize = 8;
const WRITERS: usize = 16;
const READERS: usize = 4;
const OPENING: &str = "1000";

#[derive(diesel::QueryableByName)]
struct Snapshot {
    #[diesel(sql_type = Numeric)]
    posted: Decimal,
    #[diesel(sql_type = Numeric)]
    debits_pending: Decimal,
    #[diesel(sql_type = Numeric)]
    credits_pending: Decimal,
    #[diesel(sql_type = Bool)]
    floors_hold: bool,
}

async fn post(app: &TestApp, entry: NewEntry) -> Result<posting::PostedEntry, LedgerError> {
    let mut conn = app.conn().await;
    transaction(&mut conn, async |c| posting::post_entry(c, entry).await).await
}

async fn writer(app: Arc<TestApp>, accounts: Arc<Vec<Uuid>>, stop: Arc<AtomicBool>, stats: Arc<[AtomicU64; 4]>) {
    let now = chrono::Utc::now();
    while !AtomicBool::load(&stop, Ordering::Relaxed) {
        let (from, to, amount, pending, outcome) = {
            let mut rng = rand::rng();
            let from = rng.random_range(0..ACCOUNTS);
            let to = (from + rng.random_range(1..ACCOUNTS)) % ACCOUNTS;
            (from, to, Decimal::from(rng.random_range(1..=400)), rng.random_bool(0.5), rng.random_range(0..3))
        };
        let movement = if pending {
            Movement::pending(accounts[from], accounts[to], amount)
        } else {
            Movement::posted(accounts[from], accounts[to], amount)
        };
        match post(&app, NewEntry::new(EntryKind::Adjustment, now, vec![movement])).await {
            Err(LedgerError::FloorBroken { .. }) => {
                stats[1].fetch_add(1, Ordering::Relaxed);
                continue;
            }
            Err(e) => panic!("unexpected ledger error: {e:?}"),
            Ok(entry) => {
                stats[0].fetch_add(1, Ordering::Relaxed);
                if !pending {
                    continue;
                }
                let id = entry.postings[0].0;
                let half = (amount / Decimal::TWO).floor();
                // Post it all, void it all, or post part and void the rest.
                let movements = match outcome {
                    0 => vec![Movement::PostPending { pending_posting_id: id, amount }],
                    1 => vec![Movement::VoidPending { pending_posting_id: id, amount }],
                    _ if half > Decimal::ZERO => vec![
                        Movement::PostPending { pending_posting_id: id, amount: half },
                        Movement::VoidPending { pending_posting_id: id, amount: amount - half },
                    ],
                    _ => vec![Movement::VoidPending { pending_posting_id: id, amount }],
                };
                post(&app, NewEntry::new(EntryKind::Settlement, now, movements))
                    .await
                    .expect("resolving a pending never fails");
                stats[2].fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

async fn reader(app: Arc<TestApp>, accounts: Arc<Vec<Uuid>>, stop: Arc<AtomicBool>, reads: Arc<AtomicU64>) {
    let total = dec(OPENING) * Decimal::from(ACCOUNTS as u64);
    while !AtomicBool::load(&stop, Ordering::Relaxed) {
        let mut conn = app.conn().await;
        let s: Snapshot = diesel::sql_query(
            "SELECT sum(credits_posted - debits_posted) AS posted, sum(debits_pending) AS debits_pending, \
                    sum(credits_pending) AS credits_pending, \
                    bool_and(debits_posted + debits_pending <= credits_posted) AS floors_hold \
             FROM accounts WHERE id = ANY($1)",
        )
        .bind::<Array<SqlUuid>, _>(accounts.as_slice())
        .get_result(&mut conn)
        .await
        .expect("snapshot");
        assert_eq!(s.posted, total, "money is conserved in every snapshot");
        assert_eq!(s.debits_pending, s.credits_pending, "pending debits equal pending credits");
        assert!(s.floors_hold, "no wallet is ever overdrawn");
        reads.fetch_add(1, Ordering::Relaxed);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_transfers_conserve_money_and_respect_floors() {
    let app = Arc::new(spawn_app().await);
    let bank = app.account_id(chart::BANK, Currency::Krw).await;
    let mut accounts = Vec::new();
    for i in 0..ACCOUNTS {
        let id = wallet(&app, &format!("bank-test-{i}")).await;
        post(
            &app,
            NewEntry::new(EntryKind::Deposit, chrono::Utc::now(), vec![Movement::posted(bank, id, dec(OPENING))]),
        )
        .await
        .expect("opening deposit");
        accounts.push(id);
    }
    let accounts = Arc::new(accounts);
    let stop = Arc::new(AtomicBool::new(false));
    let stats: Arc<[AtomicU64; 4]> = Arc::new(Default::default());
    let reads = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..WRITERS {
        tasks.push(tokio::spawn(writer(app.clone(), accounts.clone(), stop.clone(), stats.clone())));
    }
    for _ in 0..READERS {
        tasks.push(tokio::spawn(reader(app.clone(), accounts.clone(), stop.clone(), reads.clone())));
    }
    // Run for at least four seconds and until enough has happened, however
    // slow the machine: a busy machine makes the race slower, not smaller.
    // Two minutes without that much work means the writers are stuck.
    let enough = || {
        AtomicU64::load(&stats[0], Ordering::Relaxed) > 100
            && AtomicU64::load(&stats[2], Ordering::Relaxed) > 10
            && AtomicU64::load(&reads, Ordering::Relaxed) > 10
    };
    let started = tokio::time::Instant::now();
    while started.elapsed() < Duration::from_secs(4) || (!enough() && started.elapsed() < Duration::from_secs(120)) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        task.await.expect("task did not panic");
    }
    let (written, refused, resolved) = (
        AtomicU64::load(&stats[0], Ordering::Relaxed),
        AtomicU64::load(&stats[1], Ordering::Relaxed),
        AtomicU64::load(&stats[2], Ordering::Relaxed),
    );
    eprintln!(
        "bank test: {written} entries, {refused} refused by a floor, {resolved} pendings resolved, {} reads",
        AtomicU64::load(&reads, Ordering::Relaxed)
    );
    assert!(
        written > 100 && resolved > 10 && AtomicU64::load(&reads, Ordering::Relaxed) > 10,
        "the test did real work"
    );

    assert_eq!(app.count("SELECT count(*) AS n FROM pending_remainders WHERE remaining <> 0").await, 0);
    let finance = app.token(Role::Finance).await;
    verify_is_clean(&app, &finance).await;
}
