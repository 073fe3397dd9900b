//! The three parties as three OS processes over QUIC, on loopback or on
//! hosts of their own behind a simulated network.
//!
//! The parent makes three node identities in a private temporary
//! directory and starts `triad-bench party` three times. Each party binds
//! its listen address (`127.0.0.1:0` on loopback) and prints it as the
//! first line of its stdout; the parent sends back, as one line on each
//! party's stdin, where that party reaches the other two (through the relay
//! on a simulated network); the parties form the mesh, run every operation
//! in one session (the same [`run_op`] body as the in-memory path, with a
//! barrier over the network) and print one [`PartyRun`] JSON line per
//! operation, which the parent combines into one [`Measurement`] per
//! operation.

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, bail, ensure};
use serde::{Deserialize, Serialize};
use triad_net::{MeshConfig, MeshListener, NodeIdentity, PeerConfig, load_certificate};
use triad_ring::PartyId;

use crate::{Measurement, PartyRun, combine, network_barrier, party_session, run_op};

/// First line a party prints: where it listens.
#[derive(Serialize, Deserialize)]
struct Listening {
    address: SocketAddr,
}

/// The line the parent sends each party: where it reaches each party.
#[derive(Serialize, Deserialize)]
struct Addresses {
    addresses: [SocketAddr; 3],
}

/// What a party is asked to run.
#[derive(Clone, Debug)]
pub struct Plan {
    /// Operation names, in order.
    pub ops: Vec<String>,
    /// Elements per operand.
    pub n: usize,
    /// Threads per party for local work.
    pub threads: usize,
    /// Untimed runs before timing.
    pub warmup: usize,
    /// Timed runs.
    pub repeats: usize,
    /// Words per part of a streamed frame; 0 sends frames whole.
    pub part_words: usize,
    /// Connections between each two parties.
    pub lanes: usize,
    /// Worker threads of each party's network runtime.
    pub network_threads: usize,
}

fn certificate_path(dir: &Path, party: usize) -> PathBuf {
    dir.join(format!("party-{party}.cert.pem"))
}

fn key_path(dir: &Path, party: usize) -> PathBuf {
    dir.join(format!("party-{party}.key.pem"))
}

/// A private directory removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> anyhow::Result<TempDir> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or_default();
        let path = std::env::temp_dir().join(format!("triad-bench-{}-{nanos}", std::process::id()));
        let mut builder = std::fs::DirBuilder::new();
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder
            .create(&path)
            .with_context(|| format!("creating {}", path.display()))?;
        Ok(TempDir(path))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The party processes; any still running when this is dropped (after an
/// error) are killed.
struct Parties(Vec<(Child, BufReader<ChildStdout>)>);

impl Drop for Parties {
    fn drop(&mut self) {
        for (child, _) in &mut self.0 {
            if let Ok(None) = child.try_wait() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

fn read_line(stdout: &mut BufReader<ChildStdout>, party: usize) -> anyhow::Result<String> {
    let mut line = String::new();
    let read = stdout
        .read_line(&mut line)
        .with_context(|| format!("reading from party {party}"))?;
    ensure!(
        read > 0,
        "party {party} exited early (its error is on stderr above)"
    );
    Ok(line)
}

/// Runs `plan` as three `party` processes of the executable `exe` and hands
/// each operation's combined figures to `emit` as soon as all three report.
pub fn measure_processes(
    exe: &Path,
    plan: &Plan,
    net: Option<(&'static str, &crate::net::Network)>,
    mut emit: impl FnMut(Measurement) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let dir = TempDir::new()?;
    for party in 0..3 {
        NodeIdentity::generate()?
            .save(&certificate_path(&dir.0, party), &key_path(&dir.0, party))?;
    }
    let mut parties = Parties(Vec::new());
    for party in 0..3 {
        let launcher = net.map(|(_, n)| n.placement.launchers[party].as_slice());
        let listen = net.map_or_else(
            || SocketAddr::from(([127, 0, 0, 1], 0)),
            |(_, n)| n.placement.listen[party],
        );
        let mut command = match launcher {
            Some([program, args @ ..]) => {
                let mut command = Command::new(program);
                command.args(args).arg(exe);
                command
            }
            _ => Command::new(exe),
        };
        let mut child = command
            .arg("party")
            .args(["--listen", &listen.to_string()])
            .args(["--party", &party.to_string()])
            .arg("--dir")
            .arg(&dir.0)
            .args(["--op", &plan.ops.join(",")])
            .args(["--n", &plan.n.to_string()])
            .args(["--threads", &plan.threads.to_string()])
            .args(["--warmup", &plan.warmup.to_string()])
            .args(["--repeat", &plan.repeats.to_string()])
            .args(["--part-words", &plan.part_words.to_string()])
            .args(["--lanes", &plan.lanes.to_string()])
            .args(["--network-threads", &plan.network_threads.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("starting party {party} ({})", exe.display()))?;
        let stdout = child.stdout.take().context("party stdout is piped")?;
        parties.0.push((child, BufReader::new(stdout)));
    }
    let mut addresses = Vec::new();
    for (party, (_, stdout)) in parties.0.iter_mut().enumerate() {
        let line = read_line(stdout, party)?;
        let listening: Listening = serde_json::from_str(&line)
            .with_context(|| format!("party {party} address line {line:?}"))?;
        addresses.push(listening.address);
    }
    let addresses: [SocketAddr; 3] = addresses
        .try_into()
        .unwrap_or_else(|_| unreachable!("three parties"));
    for (party, (child, _)) in parties.0.iter_mut().enumerate() {
        let addresses = Addresses {
            addresses: net.map_or(addresses, |(_, n)| n.placement.dial[party]),
        };
        let line = serde_json::to_string(&addresses)?;
        let mut stdin = child.stdin.take().context("party stdin is piped")?;
        writeln!(stdin, "{line}").with_context(|| format!("writing to party {party}"))?;
    }
    for op in &plan.ops {
        let mut runs = Vec::with_capacity(3);
        for (party, (_, stdout)) in parties.0.iter_mut().enumerate() {
            let line = read_line(stdout, party)?;
            let run: PartyRun = serde_json::from_str(&line)
                .with_context(|| format!("party {party} result line {line:?}"))?;
            runs.push(run);
        }
        let runs: [PartyRun; 3] = runs
            .try_into()
            .unwrap_or_else(|_| unreachable!("three parties"));
        let mut measurement = combine(op, plan.n, plan.threads, plan.repeats, "quic", &runs);
        measurement.net = net.map(|(name, _)| name);
        measurement.part_words = Some(plan.part_words);
        measurement.lanes = Some(plan.lanes);
        emit(measurement)?;
    }
    for (party, (child, _)) in parties.0.iter_mut().enumerate() {
        let status = child.wait()?;
        ensure!(status.success(), "party {party} failed: {status}");
    }
    Ok(())
}

/// The body of `triad-bench party`: one party's process. Prints its address,
/// reads the others', forms the mesh and prints one [`PartyRun`] per op.
pub fn party_main(party: usize, dir: &Path, listen: SocketAddr, plan: &Plan) -> anyhow::Result<()> {
    let Some(me) = PartyId::from_index(party) else {
        bail!("--party must be 0, 1 or 2, not {party}");
    };
    let identity = NodeIdentity::load(&certificate_path(dir, party), &key_path(dir, party))?;
    let peers: Vec<PeerConfig> = PartyId::ALL
        .into_iter()
        .filter(|p| *p != me)
        .map(|p| {
            Ok(PeerConfig {
                party: p,
                address: None,
                certificate: load_certificate(&certificate_path(dir, p.index()))?,
            })
        })
        .collect::<anyhow::Result<_>>()?;
    let peers: [PeerConfig; 2] = peers
        .try_into()
        .unwrap_or_else(|_| unreachable!("two peers"));
    let mut config = MeshConfig::new(me, listen, identity, peers);
    // A stuck run fails instead of hanging; a dead peer shows as Closed
    // long before this.
    config.recv_timeout = Some(Duration::from_secs(300));
    config.part_words = plan.part_words;
    config.lanes = plan.lanes;
    config.worker_threads = plan.network_threads;
    let mut listener = MeshListener::bind(config)?;

    let mut stdout = std::io::stdout().lock();
    let listening = Listening {
        address: listener.local_addr(),
    };
    writeln!(stdout, "{}", serde_json::to_string(&listening)?)?;
    stdout.flush()?;
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("reading the peers' addresses")?;
    let Addresses { addresses } =
        serde_json::from_str(&line).with_context(|| format!("addresses line {line:?}"))?;
    for p in PartyId::ALL.into_iter().filter(|p| *p != me) {
        listener.set_peer_address(p, addresses[p.index()])?;
    }
    let transport = listener.connect()?;

    let mut session = party_session(me, transport, plan.threads)?;
    let mut start = |s: &mut triad_ring::Session<_>| network_barrier(s);
    for op in &plan.ops {
        let run = run_op(
            &mut session,
            op,
            plan.n,
            plan.warmup,
            plan.repeats,
            &mut start,
        )
        .with_context(|| format!("{op} at {me}"))?;
        writeln!(stdout, "{}", serde_json::to_string(&run)?)?;
        stdout.flush()?;
    }
    // Dropping the session closes the transport after the last frames are
    // delivered, so the peers finish their last run.
    drop(session);
    Ok(())
}
