//! `triad-bench upload`: a CSV of random integers uploaded end to end
//! through three node processes on loopback, phase by phase.

use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use serde::Serialize;
use triad_auth::UserKey;
use triad_client::Client;
use triad_client::cluster::LocalCluster;
use triad_client::schema::Schema;
use triad_client::table::read_table;
use triad_node::config::Role;

/// One line of output.
#[derive(Debug, Serialize)]
pub struct Phase {
    /// read, share, send, commit or total.
    pub phase: &'static str,
    /// Rows uploaded.
    pub rows: u64,
    /// Columns uploaded.
    pub cols: usize,
    /// Wall-clock seconds.
    pub seconds: f64,
    /// Bytes the client sent to the busiest node in this phase.
    pub bytes_per_party: u64,
    /// Node-to-node rounds (agreement, report exchange, commit status).
    pub rounds: u64,
    /// "quic".
    pub transport: &'static str,
}

/// Writes `rows` x `cols` random integers in [0, 2^20) as CSV, with a
/// schema declaring that range.
fn write_input(dir: &Path, rows: u64, cols: usize) -> anyhow::Result<(std::path::PathBuf, Schema)> {
    let csv = dir.join("input.csv");
    let mut out = std::io::BufWriter::new(std::fs::File::create(&csv)?);
    let header: Vec<String> = (0..cols).map(|c| format!("c{c}")).collect();
    writeln!(out, "{}", header.join(","))?;
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut line = String::new();
    for _ in 0..rows {
        line.clear();
        for c in 0..cols {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            if c > 0 {
                line.push(',');
            }
            line.push_str(&(state % (1 << 20)).to_string());
        }
        writeln!(out, "{line}")?;
    }
    out.flush()?;
    let mut schema = String::new();
    for name in &header {
        schema.push_str(&format!(
            "[[column]]\nname = \"{name}\"\ntype = \"int\"\nmin = 0\nmax = 1048575\n\n"
        ));
    }
    Ok((csv, Schema::from_toml_str(&schema, "bench schema")?))
}

/// How soon a node notices a silent peer in these clusters.
const IDLE_MS: u64 = 2_000;

/// Three node processes on loopback, tuned for this machine, and the
/// data owner's client.
fn start_cluster(root: &Path) -> anyhow::Result<(LocalCluster, Client)> {
    let key_path = root.join("owner.key");
    let key = UserKey::generate()?;
    key.save(&key_path)?;
    let program = std::env::current_exe()?;
    let users = vec![(
        "owner".to_string(),
        key.public().to_string(),
        vec![Role::Owner],
    )];
    let mut cluster = LocalCluster::create(&root.join("cluster"), &program, &users, &key_path)?;
    cluster.tune(|file| {
        // Three nodes and the client share the machine's cores.
        file.threads.compute = 1;
        file.threads.client = 1;
        file.threads.network = 1;
        file.limits.idle_timeout_ms = IDLE_MS;
        file.limits.peer_timeout_ms = 4 * IDLE_MS;
    })?;
    cluster.start(Duration::from_secs(60))?;
    let client = Client::connect_file(&cluster.connection_path())?;
    Ok((cluster, client))
}

/// The sum of column `c0` in the clear, to check the nodes' answer.
fn expected_sum(table: &triad_client::table::EncodedTable) -> i64 {
    table
        .column("c0")
        .map(|c| c.iter().fold(0u64, |a, b| a.wrapping_add(*b)) as i64)
        .unwrap_or(0)
}

/// Runs the benchmark and returns its phases.
pub fn run(rows: u64, cols: usize, keep: Option<&Path>) -> anyhow::Result<Vec<Phase>> {
    let temp = tempfile::tempdir()?;
    let root = keep.unwrap_or(temp.path());
    std::fs::create_dir_all(root)?;
    let (csv, schema) = write_input(root, rows, cols)?;
    let (mut cluster, client) = start_cluster(root)?;

    let started = Instant::now();
    let table = read_table(&csv, Some(&schema))?;
    let read = started.elapsed().as_secs_f64();
    let uploaded = client.upload(&table)?;
    let total = started.elapsed().as_secs_f64();
    let check = client.sum(&uploaded.handle, "c0")?;
    anyhow::ensure!(
        check == expected_sum(&table),
        "the uploaded table does not sum right"
    );
    client.close();
    cluster.stop();
    let t = uploaded.timings;
    let bytes = t.bytes_per_node.iter().copied().max().unwrap_or(0);
    let phase = |phase, seconds, bytes_per_party, rounds| Phase {
        phase,
        rows,
        cols,
        seconds,
        bytes_per_party,
        rounds,
        transport: "quic",
    };
    Ok(vec![
        phase("read", read, 0, 0),
        phase("share", t.share, 0, 0),
        phase("send", t.send, bytes, 0),
        phase("commit", t.commit, 0, 3),
        phase("total", total, bytes, 3),
    ])
}

/// `triad-bench recover`: uploads the table, then gives node 2 a new disk
/// and times its rebuild from the other two: the transfer as the node
/// logs it (phase `rebuild`), and from starting the process to the
/// cluster serving again (phase `recover`, which adds the process start
/// and the mesh forming). `bytes_per_party` is what each of the other two
/// sent it. Checks a sum afterwards.
pub fn run_recover(rows: u64, cols: usize, keep: Option<&Path>) -> anyhow::Result<Vec<Phase>> {
    let temp = tempfile::tempdir()?;
    let root = keep.unwrap_or(temp.path());
    std::fs::create_dir_all(root)?;
    let (csv, schema) = write_input(root, rows, cols)?;
    let (mut cluster, client) = start_cluster(root)?;
    let table = read_table(&csv, Some(&schema))?;
    let uploaded = client.upload(&table)?;
    client.close();

    cluster.kill_node(2);
    // A disk is replaced long after the other two noticed the node gone;
    // `recover` should time the rebuild, not their idle timeout.
    std::thread::sleep(Duration::from_millis(IDLE_MS * 3 / 2));
    cluster.replace_disk(2)?;
    let started = Instant::now();
    cluster.start_node(2)?;
    cluster.wait_ready(Duration::from_secs(600))?;
    let seconds = started.elapsed().as_secs_f64();
    let client = Client::connect_file(&cluster.connection_path())?;
    let check = client.sum(&uploaded.handle, "c0")?;
    anyhow::ensure!(
        check == expected_sum(&table),
        "the rebuilt node's shares do not sum right"
    );
    client.close();
    cluster.stop();
    let log = std::fs::read_to_string(cluster.log_path(2))?;
    let transfer = rebuild_seconds(&log)
        .ok_or_else(|| anyhow::anyhow!("node 2's log has no finished rebuild"))?;
    // One component of each column from each of the other two.
    let bytes = rows * cols as u64 * 8;
    let phase = |phase, seconds| Phase {
        phase,
        rows,
        cols,
        seconds,
        bytes_per_party: bytes,
        // Offers, the request for tables, then the columns streamed
        // without waiting, and the audit heads.
        rounds: 3,
        transport: "quic",
    };
    Ok(vec![phase("rebuild", transfer), phase("recover", seconds)])
}

/// The duration the node logged for its rebuild (the `seconds` field of
/// its "rebuilt from the other two nodes" line): the transfer alone,
/// without starting the process and forming the mesh.
fn rebuild_seconds(log: &str) -> Option<f64> {
    let line = log
        .lines()
        .rev()
        .find(|l| l.contains("rebuilt from the other two nodes"))?;
    // Field names and values may be wrapped in colour codes.
    let mut plain = String::new();
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c == 'm' {
                    break;
                }
            }
        } else {
            plain.push(c);
        }
    }
    let value = plain.split("seconds=").nth(1)?;
    let number: String = value
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.')
        .collect();
    number.parse().ok()
}
