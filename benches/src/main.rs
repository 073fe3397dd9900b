//! `triad-bench`: prints one JSON object per line per measured operation.
//! The fields (`op`, `n`, `seconds`, `bytes_per_party`, `rounds`,
//! `transport`, `threads`) are a stable contract across versions.

use anyhow::bail;

// glibc returns large blocks to the OS on free, so every fresh column
// buffer page-faults again; jemalloc keeps freed pages for reuse.
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

// jemalloc sends allocations from 8 MiB up (a column of a million
// elements) to an arena that returns pages to the OS at once; a threshold
// of 0 keeps them in the normal arenas, which hold freed pages for ten
// seconds. jemalloc reads this C string at start-up.
#[allow(unsafe_code)]
#[unsafe(export_name = "_rjem_malloc_conf")]
static MALLOC_CONF: &u8 = &b"oversize_threshold:0\0"[0];
use clap::{Parser, Subcommand, ValueEnum};
use triad_bench::{OPS, measure};

#[derive(Parser)]
#[command(about = "Benchmarks for triad")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Protocol-core operations, three parties in one process.
    Micro {
        /// Operation names separated by commas, or `all`.
        #[arg(long, default_value = "all")]
        op: String,
        /// Elements per operand.
        #[arg(long, default_value_t = 1_000_000)]
        n: usize,
        /// Threads per party for local work.
        #[arg(long, default_value_t = 1)]
        threads: usize,
        /// Timed runs per operation inside one session; figures are per run.
        #[arg(long, default_value_t = 1)]
        repeat: usize,
        /// Untimed runs before timing, so buffers are paged in.
        #[arg(long, default_value_t = 1)]
        warmup: usize,
        /// Transport between the parties.
        #[arg(long, value_enum, default_value_t = Transport::Memory)]
        transport: Transport,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum Transport {
    /// In-process channels.
    Memory,
    /// QUIC between three node processes.
    Quic,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Micro {
            op,
            n,
            threads,
            repeat,
            warmup,
            transport,
        } => {
            if let Transport::Quic = transport {
                bail!("the QUIC transport is not built yet; use --transport memory");
            }
            let ops: Vec<&str> = if op == "all" {
                OPS.to_vec()
            } else {
                op.split(',').map(str::trim).collect()
            };
            for op in ops {
                let m = measure(op, n, threads, warmup, repeat)?;
                println!("{}", serde_json::to_string(&m)?);
            }
        }
    }
    Ok(())
}
