//! `triad-node`: one of the three compute nodes. See the crate docs and
//! `deploy/` for the operator guide.

use clap::Parser;
use triad_node::cli::{NodeCommand, run_command};

// Queries allocate and free columns of millions of elements; glibc hands
// such blocks back to the OS on free, so each new column page-faults again
// (a tenth of a merge's time). jemalloc keeps freed pages for reuse.
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

// Large allocations stay in the normal arenas, which keep freed pages for
// ten seconds instead of returning them at once. jemalloc reads this C
// string at start-up.
#[allow(unsafe_code)]
#[unsafe(export_name = "_rjem_malloc_conf")]
static MALLOC_CONF: &u8 = &b"oversize_threshold:0\0"[0];

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
