//! The command line: `ferrovec run standalone | <role>[,<role>...]`.

use std::path::PathBuf;

use crate::Standalone;
use crate::roles::parse_roles;
use clap::{Parser, Subcommand};
use fv_config::Config;

#[derive(Parser, Debug)]
#[command(name = "ferrovec", version, about = "A cloud-native vector database that speaks the Milvus protocol")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Runs every role in one process (`standalone`), or the given roles.
    Run(RunArgs),
}

#[derive(clap::Args, Debug)]
struct RunArgs {
    /// `standalone`, or a role (rootcoord, datacoord, indexcoord, querycoord, datanode,
    /// querynode, indexnode, proxy), or a comma-separated list of roles.
    role: String,
    /// Configuration file (TOML); every key has a default.
    #[arg(long, short = 'c')]
    config: Option<PathBuf>,
    /// Where data is stored (overrides `data_dir`).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Milvus API port (overrides `proxy.port`).
    #[arg(long)]
    port: Option<u16>,
    /// Health endpoint port (overrides `http.port`).
    #[arg(long)]
    http_port: Option<u16>,
    /// Log filter, e.g. `info` or `fv_querynode=debug,info` (overrides `log.level`).
    #[arg(long)]
    log_level: Option<String>,
}

/// Parses the process arguments and runs; the `ferrovec` binary is just this.
pub fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let Command::Run(args) = cli.command;
    let mut config = match Config::load(args.config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("ferrovec: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    if let Some(d) = args.data_dir {
        config.data_dir = d;
    }
    if let Some(p) = args.port {
        config.proxy.port = p;
    }
    if let Some(p) = args.http_port {
        config.http.port = p;
    }
    if let Some(l) = args.log_level {
        config.log.level = l;
    }
    fv_runtime::telemetry::init(&config.log.level, config.log.format == "json");
    let roles = match parse_roles(&args.role) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("ferrovec: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    let system = actix_rt::System::with_tokio_rt(|| {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .thread_name("ferrovec-worker")
            .build()
            .expect("the tokio runtime starts")
    });
    let code = system.block_on(async move {
        let running = match Standalone::start_roles(config, &roles, true).await {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(error = %e, "ferrovec failed to start");
                return 1;
            }
        };
        tracing::info!(grpc = ?running.grpc_addr, health = ?running.http_addr, "ferrovec is ready");
        wait_for_signal().await;
        tracing::info!("shutting down");
        running.stop().await;
        0
    });
    std::process::ExitCode::from(code)
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
