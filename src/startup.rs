//! Builds the application from its settings: prepares the database, builds the
//! pool and the `App`, and binds its own listener (port 0 in tests).

use std::net::TcpListener;
use std::sync::Arc;

use actix_web::dev::{Server, Service};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::{App, HttpMessage, HttpRequest, HttpResponse, HttpServer, web};
use actix_web_prom::PrometheusMetricsBuilder;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use tracing_actix_web::{RequestId, TracingLogger};
use utoipa_actix_web::AppExt;
use utoipa_swagger_ui::SwaggerUi;

use crate::auth::{self, TokenKeys};
use crate::clock::Clock;
use crate::config::Settings;
use crate::db::{self, DbPool, DbSetupError};
use crate::http::ApiError;
use crate::http::openapi::{Sandbox, configure_api};
use crate::ledger;
use crate::state::AppState;

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(
        "GPUHOUR_JWT_SECRET is not set: outside sandbox mode gpuhour refuses to start without a signing key \
         (set a random secret of at least 32 bytes, or GPUHOUR_SANDBOX=1 for a throwaway key)"
    )]
    MissingSecret,
    #[error(transparent)]
    Database(#[from] DbSetupError),
    #[error("bootstrap failed")]
    Bootstrap(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("could not bind {0}")]
    Bind(String, #[source] std::io::Error),
    #[error("metrics: {0}")]
    Metrics(String),
}

/// Builds the signing keys; refuses to go on without a secret outside sandbox mode.
pub fn token_keys(settings: &Settings) -> Result<TokenKeys, StartupError> {
    match (&settings.jwt_secret, settings.sandbox) {
        (Some(secret), _) => {
            use secrecy::ExposeSecret;
            Ok(TokenKeys::from_secret(secret.expose_secret().as_bytes(), settings.token_ttl))
        }
        (None, true) => {
            tracing::warn!(
                "GPUHOUR_JWT_SECRET is not set: sandbox mode signs tokens with a random key; \
                 tokens will not survive a restart or work across processes"
            );
            Ok(TokenKeys::random(settings.token_ttl))
        }
        (None, false) => Err(StartupError::MissingSecret),
    }
}

/// Creates the database if needed, applies migrations, and creates the rows
/// every process expects (the operator's accounts, the sandbox clock).
pub async fn prepare_database(settings: &Settings) -> Result<(), StartupError> {
    db::ensure_database_exists(&settings.database_url).await?;
    db::run_migrations(&settings.database_url).await?;
    let mut conn = AsyncPgConnection::establish(&settings.database_url)
        .await
        .map_err(|e| StartupError::Database(DbSetupError::Connect(e)))?;
    check_time_zone(&mut conn, &settings.time_zone).await?;
    let clock = Clock::for_mode(settings.sandbox);
    clock.initialise(&mut conn).await.map_err(|e| StartupError::Bootstrap(Box::new(e)))?;
    let now = clock.now(&mut conn).await.map_err(|e| StartupError::Bootstrap(Box::new(e)))?;
    ledger::store::ensure_accounts(&mut conn, &ledger::chart::operator_accounts(), now)
        .await
        .map_err(|e| StartupError::Bootstrap(Box::new(e)))?;
    auth::store::operator_org(&mut conn, now).await.map_err(|e| StartupError::Bootstrap(Box::new(e)))?;
    Ok(())
}

/// Refuses to start with a zone PostgreSQL does not know: every day and month
/// of the reports is counted in it.
async fn check_time_zone(conn: &mut AsyncPgConnection, zone: &str) -> Result<(), StartupError> {
    #[derive(diesel::QueryableByName)]
    struct Known {
        #[diesel(sql_type = diesel::sql_types::Bool)]
        known: bool,
    }
    let found: Known = diesel::sql_query("SELECT EXISTS (SELECT 1 FROM pg_timezone_names WHERE name = $1) AS known")
        .bind::<diesel::sql_types::Text, _>(zone)
        .get_result(conn)
        .await
        .map_err(|e| StartupError::Bootstrap(Box::new(e)))?;
    if found.known {
        Ok(())
    } else {
        Err(StartupError::Bootstrap(format!("GPUHOUR_TIME_ZONE {zone:?} is not a time zone PostgreSQL knows").into()))
    }
}

/// Creates the first administrator from `GPUHOUR_ADMIN_EMAIL` and
/// `GPUHOUR_ADMIN_PASSWORD` when no administrator exists yet.
pub async fn bootstrap_admin(settings: &Settings, pool: &DbPool) -> Result<(), StartupError> {
    let (Some(email), Some(password)) = (&settings.admin_email, &settings.admin_password) else {
        return Ok(());
    };
    let fail = |e: String| StartupError::Bootstrap(e.into());
    let email = auth::model::Email::parse(email).map_err(|e| fail(format!("GPUHOUR_ADMIN_EMAIL {e}")))?;
    let password = auth::model::NewPassword::parse(secrecy::ExposeSecret::expose_secret(password))
        .map_err(|e| fail(format!("GPUHOUR_ADMIN_PASSWORD {e}")))?;
    let mut conn = pool.get().await.map_err(|e| fail(e.to_string()))?;
    if auth::store::any_admin(&mut conn).await.map_err(|e| fail(e.to_string()))? {
        return Ok(());
    }
    let hash = auth::password::hash(password.expose().to_string()).await.map_err(|e| fail(e.to_string()))?;
    let now = Clock::for_mode(settings.sandbox).now(&mut conn).await.map_err(|e| fail(e.to_string()))?;
    let operator = auth::store::operator_org(&mut conn, now).await.map_err(|e| fail(e.to_string()))?;
    match auth::store::create_user(&mut conn, operator.id, email.as_str(), &hash, auth::Role::Admin, now).await {
        Ok(user) => tracing::info!(user_id = %user.id, email = %email.as_str(), "created the first administrator"),
        // Another process made it a moment ago.
        Err(auth::store::StoreError::DuplicateEmail) => {}
        Err(e) => return Err(fail(e.to_string())),
    }
    Ok(())
}

pub struct Application {
    port: u16,
    server: Server,
    pub pool: DbPool,
    settler: Option<(Clock, std::time::Duration)>,
    webhooks: Option<(crate::webhooks::worker::DeliveryConfig, std::time::Duration)>,
}

impl Application {
    pub async fn build(settings: Settings) -> Result<Self, StartupError> {
        let keys = token_keys(&settings)?;
        prepare_database(&settings).await?;
        let pool = db::build_pool_with(
            &settings.database_url,
            settings.pool_size,
            settings.session_limits,
            std::time::Duration::from_secs(10),
        )?;
        let probe_limits = db::SessionLimits {
            statement_timeout_ms: 2_000,
            lock_timeout_ms: 1_000,
            idle_in_transaction_timeout_ms: 5_000,
        };
        let probe = db::build_pool_with(&settings.database_url, 1, probe_limits, std::time::Duration::from_secs(2))?;
        bootstrap_admin(&settings, &pool).await?;
        let listener = TcpListener::bind(&settings.bind).map_err(|e| StartupError::Bind(settings.bind.clone(), e))?;
        let port = listener.local_addr().map_err(|e| StartupError::Bind(settings.bind.clone(), e))?.port();
        let clock = Clock::for_mode(settings.sandbox);
        let settler = settings.settle_interval.map(|interval| (clock, interval));
        let webhooks = settings.webhooks.interval.map(|interval| {
            (crate::webhooks::worker::DeliveryConfig::new(&settings.webhooks, settings.sandbox), interval)
        });
        let state = AppState { pool: pool.clone(), probe, clock, settings: Arc::new(settings) };
        let server = run(listener, state, keys)?;
        Ok(Application { port, server, pool, settler, webhooks })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Stops the server (tests stop theirs when done).
    pub fn handle(&self) -> actix_web::dev::ServerHandle {
        self.server.handle()
    }

    /// Serves, with the background settler and webhook worker alongside, until the server stops.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let settler = self.settler.map(|(clock, interval)| {
            tokio::spawn(crate::market::settlement::run_settler(self.pool.clone(), clock, interval))
        });
        // Usage partitions ahead and the reclaim rule, on the settler's interval.
        let usage_jobs = self.settler.map(|(clock, interval)| {
            tokio::spawn(crate::subsidy::reclaim::run_usage_jobs(self.pool.clone(), clock, interval))
        });
        let webhooks = self.webhooks.map(|(config, interval)| {
            tokio::spawn(crate::webhooks::worker::run_worker(self.pool.clone(), config, interval))
        });
        let result = self.server.await;
        for task in [settler, usage_jobs, webhooks].into_iter().flatten() {
            task.abort();
        }
        result
    }
}

async fn not_found(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    Err(ApiError::not_found(format!("no route {} {}", req.method(), req.path())))
}

fn run(listener: TcpListener, state: AppState, keys: TokenKeys) -> Result<Server, StartupError> {
    let metrics = PrometheusMetricsBuilder::new("gpuhour")
        .endpoint("/metrics")
        .mask_unmatched_patterns("UNMATCHED")
        .build()
        .map_err(|e| StartupError::Metrics(e.to_string()))?;
    let max_body = state.settings.max_body_bytes;
    let sandbox = if state.settings.sandbox { Sandbox::Mounted } else { Sandbox::Absent };
    // One order batcher for the process, on this (multi-threaded) runtime;
    // every worker thread hands it its orders.
    let batcher = web::Data::new(crate::market::batcher::OrderBatcher::start(
        state.pool.clone(),
        state.clock,
        state.settings.fee_rate,
        state.settings.order_batch,
    ));
    let state = web::Data::new(state);
    let keys = web::Data::new(keys);
    let openapi = crate::http::openapi::document();
    let server = HttpServer::new(move || {
        App::new()
            .wrap_fn(|req, srv| {
                let response = srv.call(req);
                async move {
                    let mut response = response.await?;
                    let id = response.request().extensions().get::<RequestId>().copied();
                    if let Some(id) = id
                        && let Ok(value) = HeaderValue::from_str(&id.to_string())
                    {
                        response.headers_mut().insert(HeaderName::from_static("x-request-id"), value);
                    }
                    Ok(response)
                }
            })
            .wrap(TracingLogger::default())
            .wrap(metrics.clone())
            .app_data(batcher.clone())
            .app_data(state.clone())
            .app_data(keys.clone())
            .app_data(web::PayloadConfig::new(max_body))
            .app_data(crate::http::extract::path_config())
            // Outside the API document, as they are not API: the document
            // itself and its Swagger UI here, the console's HTML pages below
            // (`/metrics` is answered by the middleware above).
            .service(SwaggerUi::new("/docs/{_:.*}").url("/openapi.json", openapi.clone()))
            .service(web::redirect("/docs", "/docs/"))
            // The API, from the list the document served above is built from;
            // the per-worker copy of the document this builds is dropped.
            .into_utoipa_app()
            .configure(|cfg| configure_api(cfg, sandbox))
            .into_app()
            .configure(crate::console::configure)
            .default_service(web::to(not_found))
    })
    .listen(listener)
    .map_err(|e| StartupError::Bind("listener".into(), e))?
    .run();
    Ok(server)
}
