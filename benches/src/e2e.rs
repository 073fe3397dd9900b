//! `triad-bench e2e`: the seed analysis (merge two parties' tables on six
//! keys, then three gated filtered sums) on generated tables, phase by
//! phase. `--transport memory` runs the three parties' executors in this
//! process over in-memory channels (the protocol's own cost);
//! `--transport quic` (the default) runs it through three node processes.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Barrier;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use rand_chacha::ChaCha8Rng;
use rand_core::{Rng, SeedableRng};
use serde::Serialize;
use triad_exec::{ExecError, Outcome, Policy, SecretColumn, SecretTable, TableSource, execute};
use triad_plan::{
    Agg, Aggregation, BinOp, ColumnInfo, Expr, Frame, How, Output, Query, TableSchema, Ty, check,
};
use triad_ring::outside::{deal, reconstruct};
use triad_ring::{Arith, PartyId, memory_mesh};

use triad_auth::UserKey;
use triad_client::cluster::LocalCluster;
use triad_client::error::ClientError;
use triad_client::remote::{Client, QueryReply};
use triad_client::schema::Schema;
use triad_client::seed::seed_analysis_clear;
use triad_client::table::read_table;
use triad_node::config::Role;

use crate::net::simulated;
use crate::party_session;
use triad_netsim::Shape;

/// The six join keys with their declared ranges, then the condition.
pub const KEYS: [(&str, i64, i64); 6] = [
    ("year", 2019, 2024),
    ("month", 1, 12),
    ("day", 1, 31),
    ("article_nr", 0, 9999),
    ("batch_nr", 0, 999),
    ("smokes", 0, 1),
];

/// Months the analysis reports.
pub const MONTHS: [i64; 3] = [1, 5, 9];

/// One generated party table: rows of six keys and a 0/1 condition.
#[derive(Clone, Debug)]
pub struct SeedTable {
    /// Name of the condition column.
    pub condition: &'static str,
    /// Rows: keys then condition.
    pub rows: Vec<[i64; 7]>,
}

/// Two tables of `rows` rows each with unique keys, about half of party
/// 2's keys also in party 1's.
pub fn generate(rows: usize, seed: u64) -> (SeedTable, SeedTable) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let key = |rng: &mut ChaCha8Rng| -> [i64; 6] {
        KEYS.map(|(_, lo, hi)| lo + (rng.next_u64() % (hi - lo + 1) as u64) as i64)
    };
    let mut seen = HashSet::with_capacity(rows * 2);
    let mut p1 = Vec::with_capacity(rows);
    while p1.len() < rows {
        let k = key(&mut rng);
        if seen.insert(k) {
            let c = (rng.next_u64() % 2) as i64;
            p1.push([k[0], k[1], k[2], k[3], k[4], k[5], c]);
        }
    }
    let mut p2 = Vec::with_capacity(rows);
    let mut taken = HashSet::with_capacity(rows);
    while p2.len() < rows {
        let k = if rng.next_u64() % 2 == 0 {
            let r = &p1[(rng.next_u64() % rows as u64) as usize];
            [r[0], r[1], r[2], r[3], r[4], r[5]]
        } else {
            key(&mut rng)
        };
        if taken.insert(k) {
            let c = (rng.next_u64() % 2) as i64;
            p2.push([k[0], k[1], k[2], k[3], k[4], k[5], c]);
        }
    }
    (
        SeedTable {
            condition: "condition_x",
            rows: p1,
        },
        SeedTable {
            condition: "condition_y",
            rows: p2,
        },
    )
}

impl SeedTable {
    /// Public schema.
    pub fn schema(&self) -> TableSchema {
        let mut columns: Vec<ColumnInfo> = KEYS
            .iter()
            .map(|(name, lo, hi)| ColumnInfo {
                name: (*name).into(),
                ty: if *name == "smokes" { Ty::Bool } else { Ty::Int },
                min: *lo as i128,
                max: *hi as i128,
                nullable: false,
            })
            .collect();
        columns.push(ColumnInfo {
            name: self.condition.into(),
            ty: Ty::Int,
            min: 0,
            max: 1,
            nullable: false,
        });
        TableSchema {
            rows: self.rows.len() as u64,
            columns,
        }
    }

    /// The CSV text of the table.
    pub fn csv(&self) -> String {
        let mut text = String::with_capacity(self.rows.len() * 32);
        let names: Vec<&str> = KEYS.iter().map(|k| k.0).collect();
        text.push_str(&names.join(","));
        text.push(',');
        text.push_str(self.condition);
        text.push('\n');
        for r in &self.rows {
            let cells: Vec<String> = r.iter().map(i64::to_string).collect();
            text.push_str(&cells.join(","));
            text.push('\n');
        }
        text
    }
}

/// The analysis in the clear: per month, the sum of condition_y over
/// merged rows with condition_y == 1 in that month, or `None` when fewer
/// than `threshold` rows qualify.
pub fn in_the_clear(p1: &SeedTable, p2: &SeedTable, threshold: u64) -> Vec<(i64, Option<i64>)> {
    let keys: HashSet<[i64; 6]> = p1
        .rows
        .iter()
        .map(|r| [r[0], r[1], r[2], r[3], r[4], r[5]])
        .collect();
    MONTHS
        .iter()
        .map(|m| {
            let count = p2
                .rows
                .iter()
                .filter(|r| {
                    r[1] == *m && r[6] == 1 && keys.contains(&[r[0], r[1], r[2], r[3], r[4], r[5]])
                })
                .count() as i64;
            (*m, (count as u64 >= threshold).then_some(count))
        })
        .collect()
}

/// The merge query of the seed analysis, stored as a table.
pub fn merge_query(h1: &str, h2: &str) -> Query {
    let on: Vec<String> = KEYS.iter().map(|k| k.0.to_string()).collect();
    Query::new(
        vec![
            Frame::Table { handle: h1.into() },
            Frame::Table { handle: h2.into() },
            Frame::Merge {
                left: 0,
                right: 1,
                how: How::Inner,
                left_on: on.clone(),
                right_on: on,
                suffixes: ["_x".into(), "_y".into()],
            },
        ],
        Output::Store { frame: 2 },
    )
}

/// One month's gated sum over the merged table.
pub fn month_query(merged: &str, month: i64, threshold: u64) -> Query {
    let eq = |column: &str, value: i64| Expr::Binary {
        op: BinOp::Eq,
        left: Box::new(Expr::Column(column.into())),
        right: Box::new(Expr::Literal { value, scale: 0 }),
    };
    Query::new(
        vec![
            Frame::Table {
                handle: merged.into(),
            },
            Frame::Filter {
                input: 0,
                predicate: Expr::Binary {
                    op: BinOp::And,
                    left: Box::new(eq("condition_y", 1)),
                    right: Box::new(eq("month", month)),
                },
                threshold: Some(threshold),
            },
        ],
        Output::Aggregate {
            frame: 1,
            aggregation: Aggregation {
                agg: Agg::Sum,
                column: Some("condition_y".into()),
            },
            threshold: None,
        },
    )
}

/// One line of output.
#[derive(Debug, Serialize)]
pub struct Phase {
    /// upload, merge, filter_sums, total, or clear (the same analysis in
    /// the clear, for the ratio).
    pub phase: &'static str,
    /// Rows per party table.
    pub rows: usize,
    /// Wall-clock seconds.
    pub seconds: f64,
    /// Bytes the busiest party sent in this phase.
    pub bytes_per_party: u64,
    /// Communication rounds in this phase.
    pub rounds: u64,
    /// "memory" or "quic".
    pub transport: &'static str,
    /// For `total`: seconds divided by the in-the-clear seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ratio_to_clear: Option<f64>,
    /// Seconds the busiest node spent in the protocol itself (the rest is
    /// reading and writing shares, agreement and the client's calls).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub protocol_seconds: Option<f64>,
    /// The simulated network, "lan" or "wan" (`--net`); absent on plain
    /// loopback.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub net: Option<&'static str>,
    /// Where the nodes ran under `--net`: "namespaces" (a host each) or
    /// "loopback" (where namespaces are unavailable).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hosts: Option<&'static str>,
    /// CPU seconds the relay itself used during the phase, taken from the
    /// cores the nodes share.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub relay_cpu_seconds: Option<f64>,
}

fn dealt(table: &SeedTable) -> [SecretTable; 3] {
    let schema = table.schema();
    let mut parties: [Vec<SecretColumn>; 3] = Default::default();
    for (k, info) in schema.columns.iter().enumerate() {
        let values: Vec<u64> = table.rows.iter().map(|r| r[k] as u64).collect();
        let shares = deal(&values)
            .map(|d| d.map(|d| d.into_shares()))
            .unwrap_or_else(|_| unreachable!("dealing a column cannot fail"));
        for (p, share) in shares.into_iter().enumerate() {
            parties[p].push(SecretColumn {
                info: info.clone(),
                limbs: vec![share.unwrap_or_else(|_| unreachable!("dealt locally"))],
                valid: None,
            });
        }
    }
    parties.map(|columns| SecretTable {
        rows: table.rows.len(),
        columns,
        mask: None,
    })
}

struct Tables(HashMap<String, SecretTable>);

impl TableSource for Tables {
    fn load(&mut self, handle: &str, columns: &BTreeSet<String>) -> Result<SecretTable, ExecError> {
        let t = self.0.get(handle).ok_or_else(|| ExecError::Table {
            handle: handle.into(),
            reason: "unknown".into(),
        })?;
        Ok(SecretTable {
            rows: t.rows,
            columns: t
                .columns
                .iter()
                .filter(|c| columns.contains(&c.info.name))
                .cloned()
                .collect(),
            mask: t.mask.clone(),
        })
    }
}

struct PartyResult {
    merge: (f64, u64, u32),
    sums: (f64, u64, u32),
    words: Vec<Option<Arith>>,
}

/// The analysis with the three parties' executors in this process.
pub fn run_memory(rows: usize, threads: usize) -> anyhow::Result<Vec<Phase>> {
    let (p1, p2) = generate(rows, 1);
    let temp = tempfile::tempdir()?;
    let (csv1, _) = write_upload(temp.path(), "party1", &p1)?;
    let (csv2, _) = write_upload(temp.path(), "party2", &p2)?;
    let months: Vec<u32> = MONTHS.iter().map(|m| *m as u32).collect();
    let clear_start = Instant::now();
    let clear = seed_analysis_clear(&csv1, &csv2, &months)?;
    let clear_seconds = clear_start.elapsed().as_secs_f64();
    let want = in_the_clear(&p1, &p2, 3);
    anyhow::ensure!(
        want.iter()
            .map(|(m, v)| (*m as u32, *v))
            .collect::<Vec<_>>()
            == clear,
        "the generator's reference and polars disagree"
    );
    let (s1, s2) = (p1.schema(), p2.schema());
    let schemas: HashMap<String, TableSchema> =
        [("p1".to_string(), s1), ("p2".to_string(), s2)].into();
    let merge = check(&merge_query("p1", "p2"), &|h| schemas.get(h).cloned())?;
    let merged_schema = merge
        .frames
        .last()
        .map(|f| f.schema.clone())
        .context("merge has frames")?;
    let months: Vec<_> = MONTHS
        .iter()
        .map(|m| {
            check(&month_query("merged", *m, 3), &|_| {
                Some(merged_schema.clone())
            })
        })
        .collect::<Result<_, _>>()?;
    let d1 = dealt(&p1);
    let d2 = dealt(&p2);
    let barrier = Barrier::new(3);
    let policy = Policy::default();
    let results: Vec<anyhow::Result<PartyResult>> = thread::scope(|scope| {
        let handles: Vec<_> = memory_mesh()
            .into_iter()
            .zip(PartyId::ALL)
            .map(|(transport, id)| {
                let (barrier, merge, months, policy) = (&barrier, &merge, &months, &policy);
                let tables = [d1[id.index()].clone(), d2[id.index()].clone()];
                scope.spawn(move || -> anyhow::Result<PartyResult> {
                    let mut session = party_session(id, transport, threads)?;
                    let [t1, t2] = tables;
                    let mut source =
                        Tables([("p1".to_string(), t1), ("p2".to_string(), t2)].into());
                    barrier.wait();
                    session.reset_stats();
                    let start = Instant::now();
                    let Outcome::Table(merged) = execute(&mut session, merge, &mut source, policy)?
                    else {
                        bail!("the merge returned no table");
                    };
                    let stats = session.stats();
                    let merge_phase = (
                        start.elapsed().as_secs_f64(),
                        stats.bytes_sent,
                        stats.rounds,
                    );
                    source.0.insert("merged".into(), merged);
                    barrier.wait();
                    session.reset_stats();
                    let start = Instant::now();
                    let mut words = Vec::new();
                    let mut rounds = 0;
                    let mut bytes = 0;
                    for month in months {
                        session.reset_stats();
                        match execute(&mut session, month, &mut source, policy) {
                            Ok(Outcome::Answer(a)) => words.push(Some(a.words)),
                            Err(ExecError::ThresholdNotMet { .. }) => words.push(None),
                            Ok(Outcome::Table(_)) => bail!("a sum returned a table"),
                            Err(e) => return Err(e.into()),
                        }
                        let stats = session.stats();
                        rounds += stats.rounds;
                        bytes += stats.bytes_sent;
                    }
                    let sums = (start.elapsed().as_secs_f64(), bytes, rounds);
                    Ok(PartyResult {
                        merge: merge_phase,
                        sums,
                        words,
                    })
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    });
    let mut runs = Vec::new();
    for r in results {
        runs.push(r?);
    }
    // Check against the analysis in the clear.
    for (k, (month, expected)) in want.iter().enumerate() {
        let got = match (&runs[0].words[k], &runs[1].words[k], &runs[2].words[k]) {
            (Some(a), Some(b), Some(c)) => Some(reconstruct([a, b, c])?[0] as i64),
            (None, None, None) => None,
            _ => bail!("the parties disagree on month {month}'s gate"),
        };
        if got != *expected {
            bail!("month {month}: got {got:?}, the clear analysis gives {expected:?}");
        }
    }
    let max = |f: &dyn Fn(&PartyResult) -> (f64, u64, u32)| -> (f64, u64, u64) {
        runs.iter().map(f).fold((0.0, 0, 0), |acc, (s, b, r)| {
            (acc.0.max(s), acc.1.max(b), acc.2.max(r as u64))
        })
    };
    let merge_phase = max(&|r| r.merge);
    let sums = max(&|r| r.sums);
    let phase = |phase, (seconds, bytes_per_party, rounds): (f64, u64, u64), ratio| Phase {
        phase,
        rows,
        seconds,
        bytes_per_party,
        rounds,
        transport: "memory",
        ratio_to_clear: ratio,
        protocol_seconds: None,
        net: None,
        hosts: None,
        relay_cpu_seconds: None,
    };
    let total = (
        merge_phase.0 + sums.0,
        merge_phase.1 + sums.1,
        merge_phase.2 + sums.2,
    );
    Ok(vec![
        phase("merge", merge_phase, None),
        phase("filter_sums", sums, None),
        phase("clear", (clear_seconds, 0, 0), None),
        phase("total", total, Some(total.0 / clear_seconds.max(1e-9))),
    ])
}

/// Writes `table` as CSV with its schema file, for upload.
pub fn write_upload(
    dir: &Path,
    name: &str,
    table: &SeedTable,
) -> anyhow::Result<(PathBuf, Schema)> {
    let csv = dir.join(format!("{name}.csv"));
    std::fs::write(&csv, table.csv())?;
    let mut schema = String::new();
    for (column, lo, hi) in KEYS {
        let ty = if column == "smokes" { "bool" } else { "int" };
        schema.push_str(&format!(
            "[[column]]\nname = \"{column}\"\ntype = \"{ty}\"\n"
        ));
        if ty == "int" {
            schema.push_str(&format!("min = {lo}\nmax = {hi}\n"));
        }
        schema.push('\n');
    }
    schema.push_str(&format!(
        "[[column]]\nname = \"{}\"\ntype = \"int\"\nmin = 0\nmax = 1\n",
        table.condition
    ));
    Ok((csv, Schema::from_toml_str(&schema, name)?))
}

/// The analysis through three node processes: upload both tables, merge
/// and store, then the three gated sums. With `net` (its name and shape),
/// each node runs on a host of its own where namespaces are available,
/// and every link goes through the relay.
pub fn run_quic(
    rows: usize,
    keep: Option<&Path>,
    net: Option<(&'static str, Shape)>,
) -> anyhow::Result<Vec<Phase>> {
    let temp = tempfile::tempdir()?;
    let root = keep.unwrap_or(temp.path());
    std::fs::create_dir_all(root)?;
    let (p1, p2) = generate(rows, 1);
    let (csv1, schema1) = write_upload(root, "party1", &p1)?;
    let (csv2, schema2) = write_upload(root, "party2", &p2)?;
    let clear_start = Instant::now();
    let months: Vec<u32> = MONTHS.iter().map(|m| *m as u32).collect();
    let clear = seed_analysis_clear(&csv1, &csv2, &months)?;
    let clear_seconds = clear_start.elapsed().as_secs_f64();

    let key_path = root.join("analyst.key");
    let key = UserKey::generate()?;
    key.save(&key_path)?;
    let users = vec![(
        "analyst".to_string(),
        key.public().to_string(),
        vec![Role::Owner, Role::Analyst],
    )];
    let program = std::env::current_exe()?;
    let network = match net {
        Some((_, shape)) => {
            let (network, fallback) = simulated(shape)?;
            if let Some(reason) = fallback {
                eprintln!("warning: {reason}; the nodes share loopback behind the relay");
            }
            Some(network)
        }
        None => None,
    };
    let mut cluster = match &network {
        Some(network) => LocalCluster::create_placed(
            &root.join("cluster"),
            &program,
            &users,
            &key_path,
            &network.placement,
        )?,
        None => LocalCluster::create(&root.join("cluster"), &program, &users, &key_path)?,
    };
    cluster.tune(|file| {
        // Three nodes and the client share the machine's cores.
        file.threads.compute = 1;
        file.threads.client = 1;
        file.threads.network = 1;
    })?;
    cluster.start(Duration::from_secs(60))?;
    let client = Client::connect_file(&cluster.connection_path())?;
    let result = (|| -> anyhow::Result<Vec<Phase>> {
        let started = Instant::now();
        let t1 = read_table(&csv1, Some(&schema1))?;
        let t2 = read_table(&csv2, Some(&schema2))?;
        let u1 = client.upload(&t1)?;
        let u2 = client.upload(&t2)?;
        let upload_seconds = started.elapsed().as_secs_f64();
        let upload_bytes = u1
            .timings
            .bytes_per_node
            .iter()
            .zip(&u2.timings.bytes_per_node)
            .map(|(a, b)| a + b)
            .max()
            .unwrap_or(0);

        let relay_before = network.as_ref().map(|n| n.relay.report().cpu_seconds);
        let started = Instant::now();
        let merge = merge_query(&u1.handle.to_string(), &u2.handle.to_string());
        let (merged, merge_stats) = match client.query(&merge)? {
            QueryReply::Stored { handle, stats, .. } => (handle, stats),
            QueryReply::Answer { .. } => bail!("the merge returned an answer"),
        };
        let merge_seconds = started.elapsed().as_secs_f64();

        let started = Instant::now();
        let mut got = Vec::new();
        let (mut bytes, mut rounds, mut protocol) = (0u64, 0u64, 0.0);
        for m in MONTHS {
            match client.query(&month_query(&merged.to_string(), m, 3)) {
                Ok(QueryReply::Answer { words, stats, .. }) => {
                    got.push((m as u32, words.first().map(|w| *w as i64)));
                    bytes += stats.bytes_sent;
                    rounds += u64::from(stats.rounds);
                    protocol += stats.seconds;
                }
                Err(ClientError::ThresholdNotMet { .. }) => got.push((m as u32, None)),
                Ok(QueryReply::Stored { .. }) => bail!("a sum stored a table"),
                Err(e) => return Err(e.into()),
            }
        }
        let sums_seconds = started.elapsed().as_secs_f64();
        anyhow::ensure!(
            got == clear,
            "the secret analysis gave {got:?}, polars in the clear {clear:?}"
        );
        let relay_cpu = network
            .as_ref()
            .zip(relay_before)
            .map(|(n, before)| n.relay.report().cpu_seconds - before);
        let phase = |phase, seconds, bytes_per_party, rounds, ratio, protocol| Phase {
            phase,
            rows,
            seconds,
            bytes_per_party,
            rounds,
            transport: "quic",
            ratio_to_clear: ratio,
            protocol_seconds: protocol,
            net: net.map(|(name, _)| name),
            hosts: network.as_ref().map(|n| n.kind()),
            relay_cpu_seconds: None,
        };
        let total = merge_seconds + sums_seconds;
        Ok(vec![
            phase("upload", upload_seconds, upload_bytes, 3, None, None),
            phase(
                "merge",
                merge_seconds,
                merge_stats.bytes_sent,
                u64::from(merge_stats.rounds),
                None,
                Some(merge_stats.seconds),
            ),
            phase(
                "filter_sums",
                sums_seconds,
                bytes,
                rounds,
                None,
                Some(protocol),
            ),
            phase("clear", clear_seconds, 0, 0, None, None),
            Phase {
                relay_cpu_seconds: relay_cpu,
                ..phase(
                    "total",
                    total,
                    merge_stats.bytes_sent + bytes,
                    u64::from(merge_stats.rounds) + rounds,
                    Some(total / clear_seconds.max(1e-9)),
                    Some(merge_stats.seconds + protocol),
                )
            },
        ])
    })();
    client.close();
    cluster.stop();
    result
}
