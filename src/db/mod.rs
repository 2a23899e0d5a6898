//! The database: the connection pool, creating the database, and the embedded
//! migrations. gpuhour uses diesel-async (tokio-postgres underneath, no libpq)
//! with a deadpool pool, so a request never blocks an executor thread.

mod prepared;
pub mod schema;

pub use prepared::{PreparedSql, prepared};

use std::time::Duration;

use diesel::sql_types::{BigInt, Text};
use diesel_async::pooled_connection::AsyncDieselConnectionManager;
use diesel_async::pooled_connection::deadpool::{Object, Pool, PoolError};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};

pub type DbPool = Pool<AsyncPgConnection>;
pub type PooledConnection = Object<AsyncPgConnection>;
pub use diesel_async::pooled_connection::deadpool::PoolError as DbPoolError;

pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations");

/// Arbitrary constant naming the advisory lock that serialises migrations when
/// several processes start on one database at once.
const MIGRATION_LOCK: i64 = 0x6770_7568_6f75_7201;

#[derive(Debug, thiserror::Error)]
pub enum DbSetupError {
    #[error("DATABASE_URL has no database name: {0}")]
    NoDatabaseName(String),
    #[error("cannot connect to PostgreSQL")]
    Connect(#[source] diesel::ConnectionError),
    #[error("database query failed")]
    Query(#[source] diesel::result::Error),
    #[error("migrations failed: {0}")]
    Migrations(String),
    #[error("could not build the connection pool: {0}")]
    Pool(String),
}

/// Splits `postgres://…/name?opts` into its database name and the URL with the
/// name replaced by `other`.
pub fn with_database(url: &str, other: &str) -> Result<(String, String), DbSetupError> {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let after_scheme = base.find("://").map(|i| i + 3).unwrap_or(0);
    let slash = base[after_scheme..]
        .find('/')
        .map(|i| i + after_scheme)
        .ok_or_else(|| DbSetupError::NoDatabaseName(crate::config::redact_url(url)))?;
    let name = &base[slash + 1..];
    if name.is_empty() {
        return Err(DbSetupError::NoDatabaseName(crate::config::redact_url(url)));
    }
    let mut replaced = format!("{}/{}", &base[..slash], other);
    if let Some(q) = query {
        replaced.push('?');
        replaced.push_str(q);
    }
    Ok((name.to_string(), replaced))
}

/// Creates the database named in `url` if it does not exist (connecting to the
/// server's `postgres` database to do so).
pub async fn ensure_database_exists(url: &str) -> Result<(), DbSetupError> {
    let (name, admin_url) = with_database(url, "postgres")?;
    let mut conn = AsyncPgConnection::establish(&admin_url).await.map_err(DbSetupError::Connect)?;
    #[derive(diesel::QueryableByName)]
    struct Found {
        #[diesel(sql_type = BigInt)]
        n: i64,
    }
    let found: Found = diesel::sql_query("SELECT count(*) AS n FROM pg_database WHERE datname = $1")
        .bind::<Text, _>(&name)
        .get_result(&mut conn)
        .await
        .map_err(DbSetupError::Query)?;
    if found.n == 0 {
        let statement = format!("CREATE DATABASE \"{}\"", name.replace('"', "\"\""));
        match diesel::sql_query(statement).execute(&mut conn).await {
            Ok(_) => tracing::info!(database = %name, "created the database"),
            // Another process created it at the same moment: that is what we wanted.
            Err(diesel::result::Error::DatabaseError(_, info)) if info.message().contains("already exists") => {}
            Err(e) => return Err(DbSetupError::Query(e)),
        }
    }
    Ok(())
}

/// Applies the embedded migrations that have not run yet, one process at a time.
pub async fn run_migrations(url: &str) -> Result<(), DbSetupError> {
    let url = url.to_string();
    tokio::task::spawn_blocking(move || {
        use diesel_async::async_connection_wrapper::AsyncConnectionWrapper;
        let mut conn: AsyncConnectionWrapper<AsyncPgConnection> =
            diesel::Connection::establish(&url).map_err(DbSetupError::Connect)?;
        diesel::RunQueryDsl::execute(
            diesel::sql_query(format!("SELECT pg_advisory_lock({MIGRATION_LOCK})")),
            &mut conn,
        )
        .map_err(DbSetupError::Query)?;
        let result = conn
            .run_pending_migrations(MIGRATIONS)
            .map(|done| {
                for m in done {
                    tracing::info!(migration = %m, "applied migration");
                }
            })
            .map_err(|e| DbSetupError::Migrations(e.to_string()));
        diesel::RunQueryDsl::execute(
            diesel::sql_query(format!("SELECT pg_advisory_unlock({MIGRATION_LOCK})")),
            &mut conn,
        )
        .map_err(DbSetupError::Query)?;
        result
    })
    .await
    .map_err(|e| DbSetupError::Migrations(e.to_string()))?
}

/// A pool whose checkouts fail fast while the database is away, so requests get
/// a 503 instead of hanging, and which reconnects by itself when it is back.
/// Limits every pooled session carries (0 turns one off): a stuck row lock or
/// statement fails its request with a clear problem instead of holding it and
/// the pool for as long as the lock lasts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionLimits {
    pub statement_timeout_ms: u64,
    pub lock_timeout_ms: u64,
    pub idle_in_transaction_timeout_ms: u64,
}

impl SessionLimits {
    pub const NONE: SessionLimits =
        SessionLimits { statement_timeout_ms: 0, lock_timeout_ms: 0, idle_in_transaction_timeout_ms: 0 };

    /// What each new session runs: JIT off, and these limits unless they are
    /// all off (then the server's own settings stand).
    fn sql(&self) -> String {
        if *self == SessionLimits::NONE {
            return JIT_OFF.to_string();
        }
        format!(
            "{JIT_OFF}; SET statement_timeout = {}; SET lock_timeout = {}; SET idle_in_transaction_session_timeout = {}",
            self.statement_timeout_ms, self.lock_timeout_ms, self.idle_in_transaction_timeout_ms
        )
    }
}

/// Every pooled session runs without PostgreSQL's JIT compiler. JIT compiles
/// a statement whose *estimated* cost passes `jit_above_cost`, and estimates
/// are worst just when tables grow fast (a programme's opening morning, a bulk
/// load, before autovacuum's next ANALYZE): then a one-millisecond index lookup
/// pays 80 to 220 ms of compilation. Measured on a freshly seeded
/// million-order ledger, the settler's per-order lookup of pending postings
/// did, and settled 8 orders a second. gpuhour's statements are short lookups
/// and bounded pages; none gains from compiling.
const JIT_OFF: &str = "SET jit = off";

/// Whether commits must lift the statement timeout first. With a synchronous
/// standby, a COMMIT cancelled by `statement_timeout` while it waits for the
/// standby is reported as done (with only a warning) though the standby may
/// not have it: a client could be told "201" for an order a failover loses.
static GUARD_COMMIT: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

pub fn build_pool(url: &str, size: usize) -> Result<DbPool, DbSetupError> {
    build_pool_with(url, size, SessionLimits::NONE, Duration::from_secs(10))
}

/// A pool whose connections carry `limits`; `wait` bounds the wait for a free one.
pub fn build_pool_with(url: &str, size: usize, limits: SessionLimits, wait: Duration) -> Result<DbPool, DbSetupError> {
    use diesel_async::SimpleAsyncConnection;
    use diesel_async::pooled_connection::ManagerConfig;
    if limits.statement_timeout_ms > 0 {
        GUARD_COMMIT.store(true, std::sync::atomic::Ordering::Relaxed);
    }
    let mut config = ManagerConfig::<AsyncPgConnection>::default();
    config.custom_setup = Box::new(move |url| {
        let setup = limits.sql();
        Box::pin(async move {
            let mut conn = AsyncPgConnection::establish(url).await?;
            conn.batch_execute(&setup).await.map_err(diesel::ConnectionError::CouldntSetupConfiguration)?;
            Ok(conn)
        })
    });
    let manager = AsyncDieselConnectionManager::<AsyncPgConnection>::new_with_config(url, config);
    Pool::builder(manager)
        .max_size(size)
        .wait_timeout(Some(wait))
        .create_timeout(Some(Duration::from_secs(5)))
        .recycle_timeout(Some(Duration::from_secs(5)))
        .runtime(deadpool_runtime())
        .build()
        .map_err(|e| DbSetupError::Pool(e.to_string()))
}

fn deadpool_runtime() -> deadpool::Runtime {
    deadpool::Runtime::Tokio1
}

/// Whether a pool error means the database is unreachable (503) rather than a bug.
pub fn is_unavailable(e: &PoolError) -> bool {
    matches!(e, PoolError::Timeout(_) | PoolError::Backend(_) | PoolError::Closed | PoolError::PostCreateHook(_))
}

/// Runs `work` in a transaction: committed when it returns `Ok`, rolled back
/// when it returns `Err`. If the future is dropped midway (a client hung up),
/// the connection is left inside its transaction, which the pool treats as
/// broken and discards, so PostgreSQL rolls the transaction back.
///
/// diesel-async's own `transaction` wants a `Send` future; actix-web handlers
/// run on one thread each and need not be, which keeps handler code plain.
pub async fn transaction<T, E, F>(conn: &mut AsyncPgConnection, work: F) -> Result<T, E>
where
    F: AsyncFnOnce(&mut AsyncPgConnection) -> Result<T, E>,
    E: From<diesel::result::Error>,
{
    use diesel_async::{AnsiTransactionManager, TransactionManager};
    AnsiTransactionManager::begin_transaction(conn).await?;
    match work(&mut *conn).await {
        Ok(value) => {
            if std::sync::atomic::AtomicBool::load(&GUARD_COMMIT, std::sync::atomic::Ordering::Relaxed) {
                use diesel_async::SimpleAsyncConnection;
                conn.batch_execute("SET LOCAL statement_timeout = 0").await?;
            }
            AnsiTransactionManager::commit_transaction(conn).await?;
            Ok(value)
        }
        Err(error) => match AnsiTransactionManager::rollback_transaction(conn).await {
            Ok(()) | Err(diesel::result::Error::BrokenTransactionManager) => Err(error),
            Err(rollback_error) => Err(rollback_error.into()),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_session_turns_jit_off_and_sets_only_the_limits_it_has() {
        assert_eq!(SessionLimits::NONE.sql(), "SET jit = off");
        let limits =
            SessionLimits { statement_timeout_ms: 5000, lock_timeout_ms: 0, idle_in_transaction_timeout_ms: 0 };
        assert_eq!(
            limits.sql(),
            "SET jit = off; SET statement_timeout = 5000; SET lock_timeout = 0; SET idle_in_transaction_session_timeout = 0"
        );
    }

    #[test]
    fn swaps_the_database_name() {
        let (name, url) = with_database("postgres://u:p@h:5432/gpuhour?sslmode=disable", "postgres").expect("valid");
        assert_eq!(name, "gpuhour");
        assert_eq!(url, "postgres://u:p@h:5432/postgres?sslmode=disable");
        assert!(with_database("postgres://h:5432", "x").is_err());
        assert!(with_database("postgres://h:5432/", "x").is_err());
    }

    #[test]
    fn keeps_every_host_and_option_of_a_multi_host_url() {
        // The form a primary with standbys is reached by (docs/operations.md):
        // the database is created through whichever host takes writes.
        let url =
            "postgres://app:pw@10.0.0.1:5432,10.0.0.2:5433/gpuhour?target_session_attrs=read-write&connect_timeout=2";
        let (name, admin) = with_database(url, "postgres").expect("valid");
        assert_eq!(name, "gpuhour");
        assert_eq!(
            admin,
            "postgres://app:pw@10.0.0.1:5432,10.0.0.2:5433/postgres?target_session_attrs=read-write&connect_timeout=2"
        );
        assert_eq!(
            crate::config::redact_url(url),
            "postgres://app:***@10.0.0.1:5432,10.0.0.2:5433/gpuhour?target_session_attrs=read-write&connect_timeout=2"
        );
    }
}
