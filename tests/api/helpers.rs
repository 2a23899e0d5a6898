//! Test harness: each test gets its own database, cloned from a migrated
//! template, and its own running server on a free port.

use std::process::{Child, Command};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use diesel::sql_types::{BigInt, Text};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use gpuhour::auth::{OrgId, Role, TokenKeys};
use gpuhour::config::Settings;
use gpuhour::db::{DbPool, with_database};
use gpuhour::startup::{Application, prepare_database};
use reqwest::{Response, StatusCode};
use rust_decimal::Decimal;
use serde::de::DeserializeOwned;
use serde_json::Value;
use uuid::Uuid;

pub const TEST_SECRET: &str = "test-secret-test-secret-test-secret-0123";

static SERVER_URL: tokio::sync::OnceCell<String> = tokio::sync::OnceCell::const_new();
static TEMPLATE: tokio::sync::OnceCell<String> = tokio::sync::OnceCell::const_new();
static THROWAWAY: OnceLock<Mutex<Option<(Child, tempfile::TempDir)>>> = OnceLock::new();

/// The PostgreSQL server tests use: `DATABASE_URL` (any database on it), or the
/// local default; when neither answers, a throwaway server started from the
/// installed PostgreSQL binaries.
pub async fn server_url() -> String {
    SERVER_URL
        .get_or_init(|| async {
            let configured = std::env::var("DATABASE_URL")
                .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_string());
            let (_, url) = with_database(&configured, "postgres").expect("DATABASE_URL names a database");
            if AsyncPgConnection::establish(&url).await.is_ok() {
                return url;
            }
            eprintln!("PostgreSQL at {url} is unreachable: starting a throwaway server");
            start_throwaway_postgres().await
        })
        .await
        .clone()
}

fn postgres_bin_dir() -> std::path::PathBuf {
    let mut versions: Vec<_> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|dir| dir.filter_map(Result::ok).map(|e| e.path().join("bin")).collect())
        .unwrap_or_default();
    versions.sort();
    versions
        .pop()
        .filter(|bin| bin.join("initdb").exists())
        .unwrap_or_else(|| panic!("no PostgreSQL binaries found under /usr/lib/postgresql: install PostgreSQL"))
}

/// initdb + postgres in a temporary directory, as the `postgres` user when we are
/// root (PostgreSQL refuses to run as root), on a free port.
#[allow(clippy::zombie_processes)] // the server lives as long as the test process, by design
async fn start_throwaway_postgres() -> String {
    let bin = postgres_bin_dir();
    let dir = tempfile::tempdir().expect("temporary directory");
    let data = dir.path().join("data");
    let is_root = unsafe { libc::geteuid() } == 0;
    let as_postgres = |program: &std::path::Path| {
        if is_root {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(program);
            c
        } else {
            Command::new(program)
        }
    };
    if is_root {
        Command::new("chown").args(["-R", "postgres"]).arg(dir.path()).status().expect("chown");
    }
    let status = as_postgres(&bin.join("initdb"))
        .args(["-A", "trust", "-U", "postgres", "--no-sync", "-D"])
        .arg(&data)
        .stdout(std::process::Stdio::null())
        .status()
        .expect("initdb runs");
    assert!(status.success(), "initdb failed");
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("free port").local_addr().expect("addr").port();
    let mut command = as_postgres(&bin.join("postgres"));
    command
        .arg("-D")
        .arg(&data)
        .args(["-p", &port.to_string(), "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"])
        .args(["-c", "max_connections=300", "-k"])
        .arg(dir.path());
    // The server goes when the test process goes: the parent-death signal fires
    // when the spawning *thread* exits, so a thread that never exits spawns it.
    unsafe {
        use std::os::unix::process::CommandExt;
        command.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
            Ok(())
        });
    }
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = sender.send(command.spawn());
        loop {
            std::thread::park();
        }
    });
    let child = receiver.recv().expect("spawner thread").expect("postgres starts");
    let url = format!("postgres://postgres@127.0.0.1:{port}/postgres");
    for _ in 0..100 {
        if AsyncPgConnection::establish(&url).await.is_ok() {
            THROWAWAY.get_or_init(|| Mutex::new(Some((child, dir))));
            return url;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the throwaway PostgreSQL server did not start");
}

fn migrations_fingerprint() -> String {
    use sha2::{Digest, Sha256};
    let mut paths: Vec<_> = walk(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations"));
    paths.sort();
    let mut hasher = Sha256::new();
    for p in paths {
        hasher.update(p.to_string_lossy().as_bytes());
        hasher.update(std::fs::read(&p).expect("migration file"));
    }
    hex::encode(&hasher.finalize()[..8])
}

fn walk(dir: std::path::PathBuf) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(&dir).expect("migrations dir").filter_map(Result::ok) {
        let path = entry.path();
        if path.is_dir() { out.extend(walk(path)) } else { out.push(path) }
    }
    out
}

#[derive(diesel::QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

/// A migrated database to clone, made once per migration set (several test
/// processes may race to make it: an advisory lock lets one do it).
async fn template() -> String {
    TEMPLATE
        .get_or_init(|| async {
            let server = server_url().await;
            let name = format!("gpuhour_template_{}", migrations_fingerprint());
            let mut conn = AsyncPgConnection::establish(&server).await.expect("connect");
            diesel::sql_query("SELECT pg_advisory_lock(7340032)").execute(&mut conn).await.expect("lock");
            let exists: Count = diesel::sql_query("SELECT count(*) AS n FROM pg_database WHERE datname = $1")
                .bind::<Text, _>(&name)
                .get_result(&mut conn)
                .await
                .expect("query");
            if exists.n == 0 {
                // Built under another name and renamed, so a half-made template never exists.
                let building = format!("{name}_building");
                diesel::sql_query(format!("DROP DATABASE IF EXISTS \"{building}\" WITH (FORCE)"))
                    .execute(&mut conn)
                    .await
                    .expect("drop");
                diesel::sql_query(format!("CREATE DATABASE \"{building}\"")).execute(&mut conn).await.expect("create");
                let (_, url) = with_database(&server, &building).expect("url");
                prepare_database(&settings_for(&url)).await.expect("migrate the template");
                rename_when_idle(&mut conn, &building, &name).await;
            }
            diesel::sql_query("SELECT pg_advisory_unlock(7340032)").execute(&mut conn).await.expect("unlock");
            name
        })
        .await
        .clone()
}

async fn rename_when_idle(conn: &mut AsyncPgConnection, from: &str, to: &str) {
    for _ in 0..50 {
        let sql = format!("ALTER DATABASE \"{from}\" RENAME TO \"{to}\"");
        match diesel::sql_query(sql).execute(conn).await {
            Ok(_) => return,
            // The migration connections may take a moment to go away.
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    panic!("could not rename the template database");
}

/// A test's own database, dropped when the test ends.
pub struct TestDatabase {
    pub url: String,
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        // Dropping a database needs a connection and Drop cannot await: a short
        // thread with its own runtime does it, forcing out the pool's connections.
        let url = self.url.clone();
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else { return };
            rt.block_on(async move {
                let Ok((name, admin)) = with_database(&url, "postgres") else { return };
                if let Ok(mut conn) = AsyncPgConnection::establish(&admin).await {
                    let _ = diesel::sql_query(format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                        .execute(&mut conn)
                        .await;
                }
            });
        })
        .join();
    }
}

/// A fresh database of its own for one test.
pub async fn fresh_database() -> TestDatabase {
    let template = template().await;
    let server = server_url().await;
    let name = format!("gpuhour_test_{}", Uuid::new_v4().simple());
    let mut conn = AsyncPgConnection::establish(&server).await.expect("connect");
    let mut attempts = 0;
    loop {
        let sql = format!("CREATE DATABASE \"{name}\" TEMPLATE \"{template}\"");
        match diesel::sql_query(sql).execute(&mut conn).await {
            Ok(_) => break,
            Err(e) if attempts < 50 => {
                attempts += 1;
                let _ = e;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("cannot create a test database: {e}"),
        }
    }
    TestDatabase { url: with_database(&server, &name).expect("url").1 }
}

pub fn settings_for(database_url: &str) -> Settings {
    let mut settings = Settings::from_lookup(|_| None).expect("default settings");
    settings.database_url = database_url.into();
    settings.bind = "127.0.0.1:0".into();
    settings.sandbox = true;
    settings.jwt_secret = Some(TEST_SECRET.into());
    settings.pool_size = 24;
    settings.log_json = false;
    // Tests settle explicitly; one test turns the background settler on.
    settings.settle_interval = None;
    // Webhook tests run the worker's rounds themselves.
    settings.webhooks.interval = None;
    settings
}

pub struct TestApp {
    pub address: String,
    pub database_url: String,
    pub pool: DbPool,
    pub client: reqwest::Client,
    pub keys: TokenKeys,
    handle: actix_web::dev::ServerHandle,
    // Declared last: dropped after the server is told to stop.
    _database: Option<TestDatabase>,
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// Spawns an app on a fresh database, with `adjust` applied to its settings.
pub async fn spawn_app_with(adjust: impl FnOnce(&mut Settings)) -> TestApp {
    let database = fresh_database().await;
    let mut settings = settings_for(&database.url);
    adjust(&mut settings);
    let mut app = start(settings).await;
    app._database = Some(database);
    app
}

/// Starts another server (another "process") on an existing database.
pub async fn start(settings: Settings) -> TestApp {
    let database_url = settings.database_url.to_string();
    let app = Application::build(settings).await.expect("the app starts");
    let address = format!("http://127.0.0.1:{}", app.port());
    let pool = app.pool.clone();
    let handle = app.handle();
    tokio::spawn(app.run_until_stopped());
    TestApp {
        address,
        database_url,
        pool,
        client: reqwest::Client::builder().timeout(Duration::from_secs(60)).build().expect("client"),
        keys: TokenKeys::from_secret(TEST_SECRET.as_bytes(), Duration::from_secs(600)),
        handle,
        _database: None,
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        // `stop` sends its command when called; its future only waits for the end.
        drop(self.handle.stop(false));
    }
}

/// A signed-in user made directly in the database (no password: tests that log
/// in go through the API).
pub struct Caller {
    pub token: String,
    pub user_id: Uuid,
    pub org_id: Uuid,
}

impl TestApp {
    /// A new user of `role`: in the operator organisation for finance and admin,
    /// in an organisation of their own for tenants (category sme, confirmed) and providers.
    pub async fn caller(&self, role: Role) -> Caller {
        use gpuhour::auth::model::{OrgKind, TenantCategory};
        use gpuhour::auth::store;
        let mut conn = self.conn().await;
        let now = chrono::Utc::now();
        let org = match role {
            Role::Finance | Role::Admin => store::operator_org(&mut conn, now).await.expect("operator"),
            Role::Tenant => store::create_org(
                &mut conn,
                "Test Tenant",
                OrgKind::Tenant,
                Some(TenantCategory::Sme),
                store::CategorySource::Operator,
                now,
            )
            .await
            .expect("tenant org"),
            Role::Provider => store::create_org(
                &mut conn,
                "Test Provider",
                OrgKind::Provider,
                None,
                store::CategorySource::Operator,
                now,
            )
            .await
            .expect("provider org"),
        };
        let email = format!("{}@test.example", Uuid::now_v7().simple());
        let user = store::create_user(&mut conn, org.id, &email, "no-login", role, now).await.expect("user");
        let token = self.keys.issue(user.id, OrgId(org.id), role).expect("token");
        Caller { token, user_id: user.id, org_id: org.id }
    }

    /// A tenant of `category` ("sme", "university", …) in an organisation of its own.
    pub async fn tenant(&self, category: &str) -> Caller {
        use gpuhour::auth::model::{OrgKind, TenantCategory};
        use gpuhour::auth::store;
        let category: TenantCategory = category.parse().expect("category");
        let mut conn = self.conn().await;
        let now = chrono::Utc::now();
        // Made as finance would: the category is confirmed.
        let org = store::create_org(
            &mut conn,
            "Tenant",
            OrgKind::Tenant,
            Some(category),
            store::CategorySource::Operator,
            now,
        )
        .await
        .expect("org");
        let email = format!("{}@test.example", Uuid::now_v7().simple());
        let user = store::create_user(&mut conn, org.id, &email, "no-login", Role::Tenant, now).await.expect("user");
        let token = self.keys.issue(user.id, OrgId(org.id), Role::Tenant).expect("token");
        Caller { token, user_id: user.id, org_id: org.id }
    }

    pub async fn token(&self, role: Role) -> String {
        self.caller(role).await.token
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    pub async fn get(&self, path: &str, token: &str) -> Response {
        self.client.get(self.url(path)).bearer_auth(token).send().await.expect("request")
    }

    pub async fn post(&self, path: &str, token: &str, body: &Value, key: Option<&str>) -> Response {
        let mut request = self.client.post(self.url(path)).bearer_auth(token).json(body);
        if let Some(key) = key {
            request = request.header("Idempotency-Key", key);
        }
        request.send().await.expect("request")
    }

    /// GET `path`, expecting 200, read as the crate's view `T`.
    pub async fn get_as<T: DeserializeOwned>(&self, path: &str, token: &str) -> T {
        read_as(self.get(path, token).await, 200).await
    }

    /// POST `body` to `path`, expecting `status`, read as the crate's view `T`.
    pub async fn post_as<T: DeserializeOwned>(
        &self,
        path: &str,
        token: &str,
        body: &Value,
        key: Option<&str>,
        status: u16,
    ) -> T {
        read_as(self.post(path, token, body, key).await, status).await
    }

    pub async fn conn(&self) -> gpuhour::db::PooledConnection {
        self.pool.get().await.expect("connection")
    }

    /// The id of an operator account by code.
    pub async fn account_id(&self, code: &str, currency: gpuhour::money::Currency) -> Uuid {
        let mut conn = self.conn().await;
        gpuhour::ledger::store::account_by_code(&mut conn, code, currency)
            .await
            .expect("query")
            .unwrap_or_else(|| panic!("no account {code}"))
            .id
    }

    pub async fn count(&self, sql: &str) -> i64 {
        let mut conn = self.conn().await;
        let row: Count = diesel::sql_query(sql).get_result(&mut conn).await.expect("count query");
        row.n
    }
}

/// Reads a response as (status, JSON body).
pub async fn json(response: Response) -> (StatusCode, Value) {
    let status = response.status();
    let text = response.text().await.expect("body");
    let value = serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON ({status}): {text}"));
    (status, value)
}

/// Reads a response as (status, the crate's view `T`): a field the view renames
/// or retypes breaks the test's compilation, where `body["field"]` would only
/// fail when run.
pub async fn typed<T: DeserializeOwned>(response: Response) -> (StatusCode, T) {
    let status = response.status();
    let text = response.text().await.expect("body");
    let value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("not a {} ({status}): {e}: {text}", std::any::type_name::<T>()));
    (status, value)
}

/// Asserts the response's `status`, then reads it as `T` (the body is shown when either fails).
pub async fn read_as<T: DeserializeOwned>(response: Response, status: u16) -> T {
    let got = response.status();
    let text = response.text().await.expect("body");
    assert_eq!(got.as_u16(), status, "{text}");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("not a {}: {e}: {text}", std::any::type_name::<T>()))
}

/// Asserts a problem+json response with `status` and `code`; returns its body.
pub async fn expect_problem(response: Response, status: u16, code: &str) -> Value {
    let content_type = response.headers().get("content-type").and_then(|v| v.to_str().ok()).map(String::from);
    let (got, body) = json(response).await;
    assert_eq!((got.as_u16(), body["code"].as_str()), (status, Some(code)), "{body:#}");
    assert_eq!(content_type.as_deref(), Some("application/problem+json"));
    assert_eq!(body["status"], status);
    assert!(body["detail"].as_str().is_some_and(|d| !d.is_empty()), "{body:#}");
    body
}

pub fn dec(s: &str) -> Decimal {
    s.parse().expect("decimal")
}

/// Asserts that `verify` finds nothing wrong with the books.
pub async fn verify_is_clean(app: &TestApp, finance: &str) {
    let report: gpuhour::ledger::verify::VerifyReport = app.get_as("/v1/ledger/verify", finance).await;
    assert_eq!(report, gpuhour::ledger::verify::VerifyReport::from(Vec::new()));
}

/// The start of the next whole hour after the sandbox clock.
pub async fn next_hour(app: &TestApp, finance: &str) -> chrono::DateTime<chrono::Utc> {
    hour_after(now(app, finance).await)
}

/// The start of the next whole hour after `t`.
pub fn hour_after(t: chrono::DateTime<chrono::Utc>) -> chrono::DateTime<chrono::Utc> {
    use chrono::DurationRound;
    t.duration_trunc(chrono::Duration::hours(1)).expect("trunc") + chrono::Duration::hours(1)
}

/// The sandbox clock's time.
pub async fn now(app: &TestApp, finance: &str) -> chrono::DateTime<chrono::Utc> {
    let clock: gpuhour::sandbox::ClockView = app.get_as("/v1/sandbox/clock", finance).await;
    clock.now
}

/// The trial balance's `totals` (or `memo_totals`) in `currency`: debits and
/// credits posted, debits and credits pending.
pub fn totals_in<'a>(totals: &'a [gpuhour::ledger::routes::CurrencyTotals], currency: &str) -> [&'a str; 4] {
    let t = totals.iter().find(|t| t.currency == currency).unwrap_or_else(|| panic!("no {currency} totals"));
    [&t.debits_posted, &t.credits_posted, &t.debits_pending, &t.credits_pending].map(String::as_str)
}

/// The trial balance's row of the account `code` in `currency`, if it has one.
pub fn trial_balance_row<'a>(
    tb: &'a gpuhour::ledger::routes::TrialBalance,
    code: &str,
    currency: &str,
) -> Option<&'a gpuhour::ledger::routes::TrialBalanceRow> {
    tb.data.iter().find(|r| r.account.code == code && r.account.currency == currency)
}
