//! `triad-portal --config portal.toml`: serves the portal until stopped.
//! See `docs/portal.md`.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::Parser;
use triad_portal::{Config, Portal};

#[derive(Debug, Parser)]
#[command(name = "triad-portal", version, about = "The triad web portal")]
struct Cli {
    /// The portal's configuration file (TOML).
    #[arg(long, env = "TRIAD_PORTAL_CONFIG")]
    config: PathBuf,
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("TRIAD_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let config = Config::load(&cli.config).context("loading the configuration")?;
    let listen = config.file.listen;
    let portal = Portal::new(config).context("starting the portal")?;
    triad_portal::serve(portal, listen).context("serving")?;
    Ok(())
}
