//! `triad-bench`: prints one JSON object per line per measured operation.
//! The fields (`op`, `n`, `seconds`, `bytes_per_party`, `rounds`,
//! `transport`, `threads`) are a stable contract across versions.

use anyhow::bail;
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
        /// Runs per operation inside one session; figures are per run.
        #[arg(long, default_value_t = 1)]
        repeat: usize,
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
        Command::Micro { op, n, threads, repeat, transport } => {
            if let Transport::Quic = transport {
                bail!("the QUIC transport is not built yet; use --transport memory");
            }
            let ops: Vec<&str> = if op == "all" {
                OPS.to_vec()
            } else {
                op.split(',').map(str::trim).collect()
            };
            for op in ops {
                let m = measure(op, n, threads, repeat)?;
                println!("{}", serde_json::to_string(&m)?);
            }
        }
    }
    Ok(())
}
