//! The command line: `ferrovec run standalone | <role>[,<role>...]`.

use std::path::PathBuf;

use crate::Standalone;
use crate::roles::{START_ORDER, parse_roles};
use clap::{Parser, Subcommand};
use fv_config::Config;
use fv_runtime::rpc::Role;
use fv_runtime::telemetry;

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
    let roles = match parse_roles(&args.role) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("ferrovec: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    let who = identity(&roles, &config);
    let system = actix_rt::System::with_tokio_rt(|| {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .thread_name("ferrovec-worker")
            .build()
            .expect("the tokio runtime starts")
    });
    let code = system.block_on(async move {
        // Inside the runtime: the OTLP exporter's gRPC channel is spawned on it.
        let telemetry = match telemetry::init(&config.log, &config.telemetry, &who) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("ferrovec: {e}");
                return 2;
            }
        };
        let code = match Standalone::start_roles(config, &roles, true).await {
            Ok(running) => {
                tracing::info!(grpc = ?running.grpc_addr, health = ?running.http_addr, "ferrovec is ready");
                wait_for_signal().await;
                tracing::info!("shutting down");
                running.stop().await;
                0
            }
            Err(e) => {
                tracing::error!(error = %e, "ferrovec failed to start");
                1
            }
        };
        // Last, so the spans of the shutdown (and of a failed start) are exported too.
        telemetry.shutdown().await;
        code
    });
    std::process::ExitCode::from(code)
}

/// How traces name this process: `ferrovec-standalone` for every role, otherwise
/// `ferrovec-` and the roles joined by `+` (`ferrovec-querynode`,
/// `ferrovec-rootcoord+datacoord`); the instance is the configured node id, or the pid
/// when node ids are allocated at start (after tracing is set up).
fn identity(roles: &[Role], config: &Config) -> telemetry::Identity {
    let service_name = if roles.len() == START_ORDER.len() {
        "ferrovec-standalone".to_string()
    } else {
        let names: Vec<&str> = roles.iter().map(|r| r.name()).collect();
        format!("ferrovec-{}", names.join("+"))
    };
    let instance_id =
        if config.node_id > 0 { format!("node-{}", config.node_id) } else { format!("pid-{}", std::process::id()) };
    telemetry::Identity { service_name, instance_id }
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
