//! The order group commit: concurrent `POST /v1/orders` gathered for a moment
//! and placed in one transaction.
//!
//! Every order of a programme touches the programme's subsidy receivable, and
//! every order of a provider its payable: placed one transaction each, they
//! queue on those rows, each holding the lock through its commit. Gathered,
//! a batch locks each row once and one commit (one fsync) carries them all.
//! Each order is still judged on its own (`batch::judge`): a refused order
//! does not fail its neighbours, and each client is answered only once the
//! batch's transaction — the orders, their postings, audit records and stored
//! idempotent answers — has committed.
//!
//! One batcher serves every worker thread of the process: it runs, with its
//! batches, on the process's multi-threaded runtime, where the database
//! connections' own tasks run, and the HTTP workers hand it their orders. A
//! batcher per worker split the clients between workers, and two processes
//! into four batches of a quarter each, though a batch's fixed cost (some
//! twenty statements and a commit) is worth ten orders' work. Batches of
//! two processes take their locks in one order (see `batch.rs`).

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;

use actix_web::HttpResponse;
use actix_web::http::StatusCode;
use diesel_async::AsyncPgConnection;
use rust_decimal::Decimal;
use tokio::sync::{Semaphore, mpsc, oneshot};

use super::batch::{self, OrderAsk};
use crate::clock::Clock;
use crate::config::OrderBatchLimits;
use crate::db::DbPool;
use crate::http::ApiError;
use crate::http::idempotency::{self, BatchedWrite, Outcome};

struct Job {
    ask: OrderAsk,
    write: BatchedWrite,
    reply: oneshot::Sender<Result<Outcome, ApiError>>,
}

/// A handle on this worker's batcher.
#[derive(Clone)]
pub struct OrderBatcher {
    jobs: mpsc::Sender<Job>,
}

/// What a batch runs with.
#[derive(Clone)]
struct Batching {
    pool: DbPool,
    clock: Clock,
    fee_rate: Decimal,
    limits: OrderBatchLimits,
}

impl OrderBatcher {
    /// Starts the process's batcher on the current (multi-threaded) runtime;
    /// it stops when the last handle is dropped.
    pub fn start(pool: DbPool, clock: Clock, fee_rate: Decimal, limits: OrderBatchLimits) -> Self {
        // A bounded queue: when the database falls behind, requests wait here
        // (and in the pool) instead of piling up without end.
        let capacity = limits.max_orders.saturating_mul(limits.in_flight.max(1)).saturating_mul(4);
        let (jobs, queue) = mpsc::channel(capacity);
        tokio::spawn(run(queue, Batching { pool, clock, fee_rate, limits }));
        OrderBatcher { jobs }
    }

    /// Places one order with whichever others arrive with it; answers as
    /// `POST /v1/orders` does.
    pub async fn place(&self, ask: OrderAsk, write: BatchedWrite) -> Result<HttpResponse, ApiError> {
        let (reply, answer) = oneshot::channel();
        self.jobs.send(Job { ask, write, reply }).await.map_err(|_| stopped())?;
        let outcome = answer.await.map_err(|_| stopped())??;
        Ok(idempotency::respond(outcome))
    }
}

fn stopped() -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        crate::http::ProblemCode::ShuttingDown,
        "the service is shutting down; retry",
    )
}

async fn run(mut queue: mpsc::Receiver<Job>, batching: Batching) {
    // Up to `in_flight` batches run at once: while one waits on its round
    // trips and its commit, the next is judged and written. They take their
    // locks in one order, as batches of two workers do.
    let slots = Arc::new(Semaphore::new(batching.limits.in_flight.max(1)));
    // A repeat of a key already in the batch waits for the next one, where it
    // finds the first's stored answer (or waits on its key's lock till the
    // first commits).
    let mut deferred: VecDeque<Job> = VecDeque::new();
    loop {
        // A slot first: while every slot is busy, orders wait in the queue
        // and join the next batch.
        let Ok(slot) = Arc::clone(&slots).acquire_owned().await else { return };
        let mut jobs: Vec<Job> = deferred.drain(..).collect();
        if jobs.is_empty() {
            match queue.recv().await {
                Some(job) => jobs.push(job),
                None => return,
            }
        }
        // This batch and every other one free to start share what is queued.
        let free = slots.available_permits() + 1;
        gather(&mut queue, &mut jobs, batching.limits, free).await;
        let mut keys = HashSet::new();
        let (now, later): (Vec<Job>, Vec<Job>) =
            jobs.into_iter().partition(|j| j.write.scoped_key().is_none_or(|k| keys.insert(k)));
        deferred.extend(later);
        let batching = batching.clone();
        tokio::spawn(async move {
            answer(&batching, now).await;
            drop(slot);
        });
    }
}

/// Takes its share of what is queued (`batch_size`), then, while the batch
/// is smaller than that, waits up to the window for more.
async fn gather(queue: &mut mpsc::Receiver<Job>, jobs: &mut Vec<Job>, limits: OrderBatchLimits, free: usize) {
    let deadline = tokio::time::Instant::now() + limits.window;
    loop {
        let size = batch_size(jobs.len() + queue.len(), free, limits);
        while jobs.len() < size {
            match queue.try_recv() {
                Ok(job) => jobs.push(job),
                Err(_) => break,
            }
        }
        if jobs.len() >= size || limits.window.is_zero() {
            return;
        }
        match tokio::time::timeout_at(deadline, queue.recv()).await {
            Ok(Some(job)) => jobs.push(job),
            Ok(None) | Err(_) => return,
        }
    }
}

/// How many orders a batch takes when `waiting` are at hand and `free`
/// batches (this one among them) may start: an even share of them, but not
/// less than the least worth a batch, nor more than the most.
fn batch_size(waiting: usize, free: usize, limits: OrderBatchLimits) -> usize {
    waiting.div_ceil(free.max(1)).max(limits.min_orders).min(limits.max_orders)
}

/// Runs a batch and answers each client. A batch that fails before its
/// commit (a damaged row, a lost connection) is rolled back and its orders are
/// retried one by one, so that one order's trouble cannot fail its neighbours;
/// a failed commit is not retried, since it may have committed after all.
async fn answer(batching: &Batching, jobs: Vec<Job>) {
    match run_batch(batching, &jobs).await {
        Ok(answers) => {
            for (job, answer) in jobs.into_iter().zip(answers) {
                // A client that went away is not waiting for its answer.
                let _ = job.reply.send(answer);
            }
        }
        Err(BatchFailure::BeforeCommit(error)) if jobs.len() > 1 => {
            tracing::warn!(orders = jobs.len(), error = %error.detail, "order batch failed; placing its orders one by one");
            for job in jobs {
                let answer = match run_batch(batching, std::slice::from_ref(&job)).await {
                    Ok(mut answers) => answers.pop().unwrap_or_else(|| Err(stopped())),
                    Err(BatchFailure::BeforeCommit(e) | BatchFailure::Commit(e)) => Err(e),
                };
                let _ = job.reply.send(answer);
            }
        }
        Err(BatchFailure::BeforeCommit(error) | BatchFailure::Commit(error)) => {
            // The first client gets the error with its source (logged when
            // answered); the others the same answer.
            let mut jobs = jobs.into_iter();
            let first = jobs.next();
            for job in jobs {
                let _ = job.reply.send(Err(error.clone_public()));
            }
            if let Some(first) = first {
                let _ = first.reply.send(Err(error));
            }
        }
    }
}

enum BatchFailure {
    BeforeCommit(ApiError),
    Commit(ApiError),
}

impl From<diesel::result::Error> for BatchFailure {
    // The only diesel errors that reach `transaction` unwrapped are its own:
    // BEGIN, COMMIT and ROLLBACK.
    fn from(e: diesel::result::Error) -> Self {
        BatchFailure::Commit(ApiError::from(e))
    }
}

/// One transaction: replays and refusals of keys seen before, the orders,
/// and for each order placed its audit record and stored answer.
async fn run_batch(batching: &Batching, jobs: &[Job]) -> Result<Vec<Result<Outcome, ApiError>>, BatchFailure> {
    let mut conn = batching.pool.get().await.map_err(|e| BatchFailure::BeforeCommit(e.into()))?;
    crate::db::transaction(&mut conn, async |conn: &mut AsyncPgConnection| {
        place_and_record(batching, conn, jobs).await.map_err(BatchFailure::BeforeCommit)
    })
    .await
}

async fn place_and_record(
    batching: &Batching,
    conn: &mut AsyncPgConnection,
    jobs: &[Job],
) -> Result<Vec<Result<Outcome, ApiError>>, ApiError> {
    let now = batching.clock.now(conn).await?;
    // Callers first: one whose user is gone, disabled or changed learns
    // nothing, not even whether its key was used.
    let callers: Vec<_> = jobs.iter().map(|j| j.ask.principal).collect();
    let current = crate::auth::principal::still_current(conn, &callers).await?;
    let mut answers: Vec<Option<Result<Outcome, ApiError>>> = jobs
        .iter()
        .map(|j| {
            (!current.contains(&j.ask.principal)).then(|| Err(crate::auth::principal::AuthError::NotCurrent.into()))
        })
        .collect();
    let admitted: Vec<usize> = (0..jobs.len()).filter(|&i| answers[i].is_none()).collect();
    let writes: Vec<&BatchedWrite> = admitted.iter().map(|&i| &jobs[i].write).collect();
    for (&i, found) in admitted.iter().zip(idempotency::lock_and_find_many(conn, &writes).await?) {
        answers[i] = found;
    }
    let fresh: Vec<usize> = admitted.into_iter().filter(|&i| answers[i].is_none()).collect();
    let asks: Vec<OrderAsk> = fresh.iter().map(|&i| jobs[i].ask.clone()).collect();
    // The postings go last: they lock the accounts many batches share.
    let (placed, postings) = batch::place_many_deferred(conn, &asks, batching.fee_rate, now).await?;
    let mut bodies = Vec::with_capacity(fresh.len());
    for (&i, result) in fresh.iter().zip(placed) {
        match result {
            // The answer is the order's view, as its event carries it.
            Ok(placed) => bodies.push((i, Box::<str>::from(placed.view).into_string(), placed.order.id)),
            Err(refusal) => answers[i] = Some(Err(refusal.into())),
        }
    }
    let records: Vec<_> =
        bodies.iter().map(|(i, body, id)| (&jobs[*i].write, StatusCode::CREATED, body.as_str(), Some(*id))).collect();
    idempotency::record_many(conn, &records).await?;
    postings.write(conn).await?;
    for (i, body, _) in bodies {
        answers[i] = Some(Ok(Outcome::Fresh(StatusCode::CREATED, body)));
    }
    Ok(answers
        .into_iter()
        .map(|a| a.unwrap_or_else(|| Err(ApiError::internal(std::io::Error::other("an order went unanswered")))))
        .collect())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn limits() -> OrderBatchLimits {
        OrderBatchLimits { min_orders: 32, max_orders: 256, window: Duration::from_millis(1), in_flight: 2 }
    }

    #[test]
    fn what_is_queued_is_shared_over_the_batches_free_to_start() {
        // 64 clients of one process, both batches free: two batches of 32.
        assert_eq!(batch_size(64, 2, limits()), 32);
        // 256 clients: two batches of 128, not one of 256 and an idle slot.
        assert_eq!(batch_size(256, 2, limits()), 128);
        assert_eq!(batch_size(65, 2, limits()), 33);
        // One batch already in the database: this one takes all it may.
        assert_eq!(batch_size(64, 1, limits()), 64);
    }

    #[test]
    fn a_batch_is_not_split_below_the_least_worth_one() {
        // Two processes with 32 clients each: one batch of 32 each, not two
        // of 16 (a batch's fixed cost is worth about ten orders).
        assert_eq!(batch_size(32, 2, limits()), 32);
        // Few waiting: the batch waits (up to the window) for the least.
        assert_eq!(batch_size(3, 2, limits()), 32);
        assert_eq!(batch_size(0, 1, limits()), 32);
    }

    #[test]
    fn a_batch_never_takes_more_than_the_most() {
        assert_eq!(batch_size(10_000, 2, limits()), 256);
        assert_eq!(batch_size(10_000, 0, limits()), 256);
        let one = OrderBatchLimits { min_orders: 1, max_orders: 1, ..limits() };
        assert_eq!(batch_size(64, 2, one), 1);
    }
}
