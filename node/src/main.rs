//! `triad-node`: one of the three compute nodes. See the crate docs and
//! `deploy/` for the operator guide.

use clap::Parser;
use triad_node::cli::{NodeCommand, run_command};

#[derive(Debug, Parser)]
#[command(name = "triad-node", version, about = "A triad compute node")]
struct Cli {
    #[command(subcommand)]
    command: NodeCommand,
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("TRIAD_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    run_command(Cli::parse().command)?;
    Ok(())
}
