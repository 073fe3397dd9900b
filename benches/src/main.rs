//! `triad-bench`: prints one JSON object per line per measured operation.
//! The fields (`op`, `n`, `seconds`, `bytes_per_party`, `rounds`,
//! `transport`, `threads`) are a stable contract across versions; `upload`
//! and `recover` print `phase`, `rows`, `cols` in place of `op`, `n`,
//! `threads`.
//!
//! `micro --transport quic` runs the three parties as three processes of
//! this binary (the hidden `party` subcommand) over QUIC on loopback.

mod upload;

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};
use triad_bench::quic::{Plan, measure_processes, party_main};
use triad_bench::{OPS, check_op, measure};

// glibc returns large blocks to the OS on free, so every fresh column
// buffer page-faults again; jemalloc keeps freed pages for reuse.
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

/// The generated table of `upload` and `recover`.
#[derive(clap::Args)]
struct TableArgs {
    /// Rows.
    #[arg(long, default_value_t = 1_000_000)]
    rows: u64,
    /// Integer columns.
    #[arg(long, default_value_t = 8)]
    cols: usize,
    /// Keep the cluster's files (and node logs) here.
    #[arg(long)]
    keep: Option<PathBuf>,
}

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
        /// Words per part of a streamed frame (quic transport); 0 sends
        /// every frame whole.
        #[arg(long, default_value_t = 1 << 16)]
        part_words: usize,
        /// QUIC connections between each two parties (quic transport).
        #[arg(long, default_value_t = 1)]
        lanes: usize,
        /// Worker threads of each party's network runtime (quic
        /// transport).
        #[arg(long, default_value_t = 1)]
        network_threads: usize,
        /// A simulated network between the parties (quic transport), as
        /// for `e2e`: each party on a host of its own, links through a
        /// relay.
        #[arg(long, value_enum)]
        net: Option<Net>,
    },
    /// Upload a generated CSV through three node processes, end to end.
    Upload(TableArgs),
    /// Upload a generated table, then give node 2 a new disk and time its
    /// rebuild from the other two.
    Recover(TableArgs),
    /// The seed analysis (merge, then three gated sums) on generated
    /// tables of `rows` rows per party.
    E2e {
        /// Rows per party table.
        #[arg(long, default_value_t = 100_000)]
        rows: usize,
        /// Where the parties run: in this process, or three node
        /// processes.
        #[arg(long, value_enum, default_value_t = Transport::Quic)]
        transport: Transport,
        /// Threads per party for local work (memory transport).
        #[arg(long, default_value_t = 1)]
        threads: usize,
        /// Keep the cluster's files (and node logs) here (quic transport).
        #[arg(long)]
        keep: Option<PathBuf>,
        /// A simulated network between the nodes (quic transport): each
        /// node on a host of its own (a network namespace; needs root) and
        /// every link through a relay. lan: 0.25 ms one way, 10 Gbit/s;
        /// wan: 10 ms one way, 1 Gbit/s.
        #[arg(long, value_enum)]
        net: Option<Net>,
    },
    /// A node of the upload benchmark's local cluster.
    #[command(subcommand, hide = true)]
    Node(triad_node::cli::NodeCommand),
    /// One party of `micro --transport quic`, started by it.
    #[command(hide = true)]
    Party {
        /// This party's index, 0, 1 or 2.
        #[arg(long)]
        party: usize,
        /// Directory with the three parties' certificates and this party's key.
        #[arg(long)]
        dir: PathBuf,
        /// Operation names separated by commas.
        #[arg(long)]
        op: String,
        /// Elements per operand.
        #[arg(long)]
        n: usize,
        /// Threads for local work.
        #[arg(long, default_value_t = 1)]
        threads: usize,
        /// Timed runs per operation.
        #[arg(long, default_value_t = 1)]
        repeat: usize,
        /// Untimed runs before timing.
        #[arg(long, default_value_t = 1)]
        warmup: usize,
        /// Words per part of a streamed frame.
        #[arg(long)]
        part_words: usize,
        /// Connections to each peer.
        #[arg(long)]
        lanes: usize,
        /// Network runtime workers.
        #[arg(long)]
        network_threads: usize,
        /// Where to listen for the other parties.
        #[arg(long)]
        listen: std::net::SocketAddr,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum Net {
    /// One data centre.
    Lan,
    /// Three organisations or clouds.
    Wan,
}

#[derive(Clone, Copy, ValueEnum)]
enum Transport {
    /// In-process channels.
    Memory,
    /// QUIC between three node processes.
    Quic,
}

fn net_shape(net: Net) -> (&'static str, triad_netsim::Shape) {
    match net {
        Net::Lan => ("lan", triad_netsim::Shape::lan()),
        Net::Wan => ("wan", triad_netsim::Shape::wan()),
    }
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
            part_words,
            lanes,
            network_threads,
            net,
        } => {
            let ops = op_list(&op)?;
            match transport {
                Transport::Memory => {
                    if net.is_some() {
                        anyhow::bail!("--net needs the quic transport");
                    }
                    for op in ops {
                        let m = measure(&op, n, threads, warmup, repeat)?;
                        println!("{}", serde_json::to_string(&m)?);
                    }
                }
                Transport::Quic => {
                    let plan = Plan {
                        ops,
                        n,
                        threads,
                        warmup,
                        repeats: repeat,
                        part_words,
                        lanes,
                        network_threads,
                    };
                    let exe = std::env::current_exe()?;
                    let network = match net {
                        Some(net) => {
                            let (name, shape) = net_shape(net);
                            let (network, fallback) = triad_bench::net::simulated(shape)?;
                            if let Some(reason) = fallback {
                                eprintln!(
                                    "warning: {reason}; the parties share loopback behind the relay"
                                );
                            }
                            Some((name, network))
                        }
                        None => None,
                    };
                    let net = network.as_ref().map(|(name, n)| (*name, n));
                    measure_processes(&exe, &plan, net, |m| {
                        println!("{}", serde_json::to_string(&m)?);
                        Ok(())
                    })?;
                }
            }
        }
        Command::Upload(TableArgs { rows, cols, keep }) => {
            for phase in upload::run(rows, cols, keep.as_deref())? {
                println!("{}", serde_json::to_string(&phase)?);
            }
        }
        Command::Recover(TableArgs { rows, cols, keep }) => {
            for phase in upload::run_recover(rows, cols, keep.as_deref())? {
                println!("{}", serde_json::to_string(&phase)?);
            }
        }
        Command::E2e {
            rows,
            transport,
            threads,
            keep,
            net,
        } => {
            let net = net.map(net_shape);
            let phases = match (transport, net) {
                (Transport::Memory, None) => triad_bench::e2e::run_memory(rows, threads)?,
                (Transport::Memory, Some(_)) => {
                    anyhow::bail!("--net needs the quic transport")
                }
                (Transport::Quic, net) => triad_bench::e2e::run_quic(rows, keep.as_deref(), net)?,
            };
            for phase in phases {
                println!("{}", serde_json::to_string(&phase)?);
            }
        }
        Command::Node(command) => {
            // The same log lines as `triad-node`, so benchmark clusters'
            // logs can be read (and checked) like a deployment's.
            tracing_subscriber::fmt()
                .with_env_filter(
                    tracing_subscriber::EnvFilter::try_from_env("TRIAD_LOG")
                        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
                )
                .with_writer(std::io::stderr)
                .init();
            triad_node::cli::run_command(command)?
        }
        Command::Party {
            party,
            dir,
            op,
            n,
            threads,
            repeat,
            warmup,
            part_words,
            lanes,
            network_threads,
            listen,
        } => {
            let plan = Plan {
                ops: op_list(&op)?,
                n,
                threads,
                warmup,
                repeats: repeat,
                part_words,
                lanes,
                network_threads,
            };
            party_main(party, &dir, listen, &plan)?;
        }
    }
    Ok(())
}

/// The operations named by `--op`: a comma-separated list, or `all`. Names
/// are checked before any party starts.
fn op_list(op: &str) -> anyhow::Result<Vec<String>> {
    let ops: Vec<String> = if op == "all" {
        OPS.iter().map(|s| s.to_string()).collect()
    } else {
        op.split(',').map(|s| s.trim().to_string()).collect()
    };
    for op in &ops {
        check_op(op)?;
    }
    Ok(ops)
}
