//! The `gpuhour` command: `serve`, `verify`.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use diesel_async::{AsyncConnection, AsyncPgConnection};
use gpuhour::config::Settings;
use gpuhour::startup::{Application, prepare_database};

// glibc's malloc took a fifth of the service's CPU under the order load (perf:
// many small, short-lived allocations on every worker thread); mimalloc cut
// the service's CPU per order by about a tenth (docs/performance.md). It also
// gives Argon2id's 19 MiB blocks back: 2,000 sign-ups leave the service at
// about 130 MiB (glibc's default malloc kept each blocking thread's, 800 MiB).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "gpuhour", version, about = "A marketplace and double-entry ledger for subsidised GPU time")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP service (configuration from the environment; see README).
    Serve,
    /// Recompute the ledger's invariants from its postings; exit 1 on any difference.
    Verify,
    /// Seed a realistic market (sandbox mode) and serve it.
    Demo,
    /// Print the journal's posted movements as an hledger file or CSV.
    Export {
        /// `hledger` (default) or `csv`.
        #[arg(long, default_value = "hledger")]
        format: String,
        /// Start of the period (RFC 3339, inclusive).
        #[arg(long)]
        from: Option<chrono::DateTime<chrono::Utc>>,
        /// End of the period (RFC 3339, exclusive).
        #[arg(long)]
        to: Option<chrono::DateTime<chrono::Utc>>,
    },
    /// Sandbox mode only: seed a large synthetic ledger (the `reports`
    /// benchmark, bench/reports.py) and print what it made as JSON.
    SeedLedger {
        #[arg(long, default_value_t = 1_000_000)]
        orders: usize,
        #[arg(long, default_value_t = 1_000)]
        tenants: usize,
    },
    /// Administration.
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
}

#[derive(Subcommand)]
enum AdminCommand {
    /// Create a user. The password is read from GPUHOUR_NEW_USER_PASSWORD, or
    /// else from the first line of standard input (never from the command line,
    /// where other users of the machine could read it).
    CreateUser {
        #[arg(long)]
        email: String,
        /// finance, admin (operator users), tenant or provider (with --org-id).
        #[arg(long)]
        role: String,
        /// The organisation of a tenant or provider user.
        #[arg(long)]
        org_id: Option<uuid::Uuid>,
    },
}

fn main() -> ExitCode {
    match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime.block_on(run()),
        Err(e) => {
            eprintln!("gpuhour: could not start the runtime: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> ExitCode {
    let cli = Cli::parse();
    let settings = match Settings::from_env() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("gpuhour: {e}");
            return ExitCode::from(2);
        }
    };
    gpuhour::telemetry::init(settings.log_json);
    let result = match cli.command {
        Command::Serve => serve(settings).await,
        Command::Verify => verify(settings).await,
        Command::Demo => gpuhour::demo::run(settings).await.map(|_| ExitCode::SUCCESS),
        Command::Export { format, from, to } => export(settings, &format, from, to).await,
        Command::SeedLedger { orders, tenants } => seed_ledger(settings, orders, tenants).await,
        Command::Admin { command: AdminCommand::CreateUser { email, role, org_id } } => {
            create_user(settings, email, role, org_id).await
        }
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            let mut message = format!("gpuhour: {e}");
            let mut cause = e.source();
            while let Some(c) = cause {
                message.push_str(&format!("\n  caused by: {c}"));
                cause = c.source();
            }
            eprintln!("{message}");
            ExitCode::FAILURE
        }
    }
}

type AnyError = Box<dyn std::error::Error + Send + Sync>;

async fn serve(settings: Settings) -> Result<ExitCode, AnyError> {
    tracing::info!(settings = ?settings, "starting gpuhour");
    let app = Application::build(settings).await?;
    tracing::info!(port = app.port(), "listening");
    app.run_until_stopped().await?;
    Ok(ExitCode::SUCCESS)
}

/// Reads only: an auditor may point it at a production database.
async fn verify(settings: Settings) -> Result<ExitCode, AnyError> {
    let mut conn = AsyncPgConnection::establish(&settings.database_url).await?;
    let report = gpuhour::verify::verify(&mut conn).await?;
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(if report.ok { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

async fn create_user(
    settings: Settings,
    email: String,
    role: String,
    org_id: Option<uuid::Uuid>,
) -> Result<ExitCode, AnyError> {
    use gpuhour::auth::model::{Email, NewPassword};
    use gpuhour::auth::{Role, password, routes::resolve_org_for, store};
    let email = Email::parse(&email).map_err(|e| format!("--email {e}"))?;
    let role: Role = role.parse().map_err(|e: String| format!("--role: {e}"))?;
    let raw = match std::env::var("GPUHOUR_NEW_USER_PASSWORD") {
        Ok(p) => p,
        Err(_) => {
            let mut line = String::new();
            std::io::stdin().read_line(&mut line)?;
            line.trim_end_matches(['\r', '\n']).to_string()
        }
    };
    let new_password = NewPassword::parse(&raw).map_err(|e| format!("the password {e}"))?;
    prepare_database(&settings).await?;
    let hash = password::hash(new_password.expose().to_string()).await?;
    let mut conn = AsyncPgConnection::establish(&settings.database_url).await?;
    let now = gpuhour::clock::Clock::for_mode(settings.sandbox).now(&mut conn).await?;
    let org = resolve_org_for(&mut conn, role, org_id, now).await.map_err(|e| e.detail.clone())?;
    let user = store::create_user(&mut conn, org.id, email.as_str(), &hash, role, now).await?;
    println!("{}", serde_json::json!({"user_id": user.id, "email": user.email, "role": user.role, "org_id": org.id}));
    Ok(ExitCode::SUCCESS)
}

/// Reads only, like `verify`.
async fn export(
    settings: Settings,
    format: &str,
    from: Option<chrono::DateTime<chrono::Utc>>,
    to: Option<chrono::DateTime<chrono::Utc>>,
) -> Result<ExitCode, AnyError> {
    use gpuhour::finance::export;
    if let (Some(from), Some(to)) = (from, to)
        && from > to
    {
        return Err(format!("--from {from} is after --to {to}").into());
    }
    let mut conn = AsyncPgConnection::establish(&settings.database_url).await?;
    let rows = export::rows(&mut conn, from, to, &settings.time_zone).await.map_err(|e| format!("{e:?}"))?;
    let text = match format {
        "hledger" => export::hledger(&rows),
        "csv" => export::csv(&rows),
        other => return Err(format!("--format {other:?}: expected hledger or csv").into()),
    };
    print!("{text}");
    Ok(ExitCode::SUCCESS)
}

async fn seed_ledger(settings: Settings, orders: usize, tenants: usize) -> Result<ExitCode, AnyError> {
    // The error's Debug form carries its whole chain of causes.
    let seeded =
        gpuhour::sandbox::seed_ledger::seed(&settings, orders, tenants.max(1)).await.map_err(|e| format!("{e:?}"))?;
    println!("{}", serde_json::to_string_pretty(&seeded)?);
    Ok(ExitCode::SUCCESS)
}
