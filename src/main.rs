//! The `gpuhour` command: `serve`, `verify`.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use diesel_async::{AsyncConnection, AsyncPgConnection};
use gpuhour::config::Settings;
use gpuhour::startup::Application;

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
}

#[tokio::main]
async fn main() -> ExitCode {
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
    let report = gpuhour::ledger::verify::verify(&mut conn).await?;
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(if report.ok { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}
