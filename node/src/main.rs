//! `triad-node`: one of the three compute nodes. See the crate docs and
//! `deploy/` for the operator guide.

use clap::Parser;
use triad_node::cli::{NodeCommand, run_command};

// Queries allocate and free columns of millions of elements; glibc hands
// such blocks back to the OS on free, so each new column page-faults again
// (a tenth of a merge's time). jemalloc keeps freed pages for reuse.
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

// jemalloc sends allocations from 8 MiB up (a column of a million
// elements) to an arena that returns pages to the OS at once; a threshold
// of 0 keeps them in the normal arenas. Those hand freed pages back
// gradually: first lazily (MADV_FREE: the kernel takes them only under
// memory pressure), then for good (MADV_DONTNEED), after which the next
// column faults every page in again. At the rate a protocol allocates and
// frees columns the second step ran all the time and cost about a quarter
// of a multiplication over QUIC; without it (lazily freed pages are never
// purged) the memory is still the kernel's to reclaim when it needs it.
// jemalloc reads this C string at start-up.
#[allow(unsafe_code)]
#[unsafe(export_name = "_rjem_malloc_conf")]
static MALLOC_CONF: &u8 = &b"oversize_threshold:0,muzzy_decay_ms:-1\0"[0];

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
