//! Measurement harness shared by the `triad-bench` binary and the criterion
//! benches: runs one protocol operation as three parties, times it from a
//! common start, counts bytes and rounds, and checks the opened result
//! against plaintext so a broken protocol cannot post a figure.
//!
//! One party's body ([`party_session`], [`run_op`]) is generic over the
//! transport: [`measure`] runs the three parties as threads over the
//! in-memory mesh, [`quic`] as three processes over QUIC on loopback.

use std::sync::Barrier;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use triad_ring::outside::deal_with_seeds;
use triad_ring::{
    Arith, Bits, PairKeys, PartyId, Session, SessionConfig, SortAlgorithm, SortKey, Stats,
    Transport, XorWords, memory_mesh,
};

pub mod e2e;
pub mod net;
pub mod quic;

/// Operations `triad-bench micro` knows, in the order `--op all` runs them.
pub const OPS: &[&str] = &[
    "input",
    "reveal",
    "add",
    "sub",
    "add_public",
    "mul_public",
    "xor",
    "mul",
    "inner_product",
    "and",
    "lt",
    "lt32",
    "lt_full",
    "eq",
    "a2b",
    "b2a",
    "inject",
    "select",
    "prefix_sum",
    "copy_forward",
    "shuffle",
    "sort32",
    "sort63",
    "sort32_radix",
    "sort63_radix",
];

/// One line of `triad-bench` output. Field names are a stable contract:
/// figures are compared across versions.
#[derive(Clone, Debug, Serialize)]
pub struct Measurement {
    /// Operation name.
    pub op: String,
    /// Elements per operand.
    pub n: usize,
    /// Wall time of one run, the slowest party's.
    pub seconds: f64,
    /// Payload bytes one party sent, the most of the three.
    pub bytes_per_party: u64,
    /// Depth of dependent messages.
    pub rounds: u32,
    /// Transport the parties used.
    pub transport: &'static str,
    /// Threads per party for local work.
    pub threads: usize,
    /// The simulated network between the parties, if any (`lan`, `wan`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub net: Option<&'static str>,
    /// Words per part of a streamed frame (quic transport; 0: whole).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub part_words: Option<usize>,
    /// Connections between each two parties (quic transport).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lanes: Option<usize>,
}

/// Plaintext inputs of one benchmark, the same at every party.
struct Inputs {
    a: Vec<u64>,
    b: Vec<u64>,
    bits: Vec<bool>,
}

fn inputs(op: &str, n: usize) -> Inputs {
    let mut rng = ChaCha8Rng::seed_from_u64(n as u64 ^ 0x0074_7269_6164);
    let mut column = |mask: u64, offset: u64| -> Vec<u64> {
        (0..n)
            .map(|_| (rng.next_u64() & mask).wrapping_sub(offset))
            .collect()
    };
    let (a, b) = match op {
        // |a - b| < 2^63: values in [-2^62, 2^62).
        "lt" => (
            column((1 << 63) - 1, 1 << 62),
            column((1 << 63) - 1, 1 << 62),
        ),
        "lt32" => (
            column((1 << 32) - 1, 1 << 31),
            column((1 << 32) - 1, 1 << 31),
        ),
        "sort32" | "sort32_radix" => (column((1 << 32) - 1, 0), column(u64::MAX, 0)),
        "sort63" | "sort63_radix" => (column((1 << 63) - 1, 0), column(u64::MAX, 0)),
        "copy_forward" => {
            let values = column(u64::MAX, 0);
            let starts = column(u64::MAX, 0)
                .iter()
                .map(|v| (v % 8 == 0) as u64)
                .collect();
            (values, starts)
        }
        _ => (column(u64::MAX, 0), column(u64::MAX, 0)),
    };
    let bits = b.iter().map(|v| v & 1 == 1).collect();
    Inputs { a, b, bits }
}

fn shares(id: PartyId, values: &[u64], salt: u8) -> Arith {
    let [d0, d1, d2] = deal_with_seeds(values, [salt; 32], [salt.wrapping_add(1); 32]);
    let dealt = match id {
        PartyId::P0 => d0,
        PartyId::P1 => d1,
        PartyId::P2 => d2,
    };
    dealt
        .into_shares()
        .unwrap_or_else(|_| unreachable!("dealt locally"))
}

/// Shares of the inputs, prepared before the clock starts.
struct Prepared {
    a: Arith,
    b: Arith,
    bits: Bits,
    words: XorWords,
}

/// Shares an operation returns, opened after the clock stops.
enum Out {
    Arith(Arith),
    Bits(Bits),
    Xor(XorWords),
    Plain(Vec<u64>),
}

/// An opened result.
#[derive(PartialEq)]
enum Opened {
    Words(Vec<u64>),
    Bools(Vec<bool>),
}

type Runner<T> = fn(&mut Session<T>, &Inputs, &Prepared) -> Result<Out, triad_ring::Error>;

fn runner<T: Transport>(op: &str) -> anyhow::Result<Runner<T>> {
    Ok(match op {
        "input" => |s, i, _| {
            let mine = (s.id() == PartyId::P0).then_some(i.a.as_slice());
            Ok(Out::Arith(s.input(PartyId::P0, mine, i.a.len())?))
        },
        "reveal" => |s, _, p| Ok(Out::Plain(s.reveal(&p.a)?)),
        "add" => |_, _, p| Ok(Out::Arith(p.a.add(&p.b)?)),
        "sub" => |_, _, p| Ok(Out::Arith(p.a.sub(&p.b)?)),
        "add_public" => |s, _, p| Ok(Out::Arith(p.a.add_public(s.id(), 7))),
        "mul_public" => |_, _, p| Ok(Out::Arith(p.a.mul_public(3))),
        "xor" => |s, _, p| Ok(Out::Bits(p.bits.xor(&p.bits.not(s.id()))?)),
        "mul" => |s, _, p| Ok(Out::Arith(s.mul(&p.a, &p.b)?)),
        "inner_product" => |s, _, p| Ok(Out::Arith(s.inner_product(&p.a, &p.b)?)),
        "and" => |s, _, p| {
            let other = p.bits.not(s.id());
            Ok(Out::Bits(s.and(&p.bits, &other)?))
        },
        "lt" => |s, _, p| Ok(Out::Bits(s.lt(&p.a, &p.b, 63)?)),
        "lt32" => |s, _, p| Ok(Out::Bits(s.lt(&p.a, &p.b, 32)?)),
        "lt_full" => |s, _, p| Ok(Out::Bits(s.lt_full(&p.a, &p.b)?)),
        "eq" => |s, _, p| Ok(Out::Bits(s.eq(&p.a, &p.b, 64)?)),
        "a2b" => |s, _, p| Ok(Out::Xor(s.a2b(&p.a, 64)?)),
        "b2a" => |s, _, p| Ok(Out::Arith(s.b2a(&p.words)?)),
        "inject" => |s, _, p| Ok(Out::Arith(s.inject(&p.bits)?)),
        "select" => |s, _, p| Ok(Out::Arith(s.select(&p.bits, &p.a, &p.b)?)),
        "prefix_sum" => |s, _, p| Ok(Out::Arith(s.prefix_sum(&p.a))),
        "copy_forward" => |s, _, p| {
            let mut out = s.copy_forward(&p.b, &[&p.a])?;
            Ok(Out::Arith(out.pop().unwrap_or_default()))
        },
        "shuffle" => |s, _, p| {
            let (mut out, _) = s.shuffle(&[&p.a, &p.b], &[])?;
            Ok(Out::Arith(out.swap_remove(0)))
        },
        "sort32" => |s, _, p| sort(s, p, 32, SortAlgorithm::default()),
        "sort63" => |s, _, p| sort(s, p, 63, SortAlgorithm::default()),
        "sort32_quick" => |s, _, p| sort(s, p, 32, SortAlgorithm::Quick),
        "sort63_quick" => |s, _, p| sort(s, p, 63, SortAlgorithm::Quick),
        "sort32_radix" => |s, _, p| sort(s, p, 32, SortAlgorithm::Radix),
        "sort63_radix" => |s, _, p| sort(s, p, 63, SortAlgorithm::Radix),
        other => bail!("unknown op {other:?}; known: {}", OPS.join(", ")),
    })
}

/// Fails with the list of known operations if `op` is not one.
pub fn check_op(op: &str) -> anyhow::Result<()> {
    runner::<triad_ring::MemoryTransport>(op).map(|_| ())
}

/// Sorts payload `b` by key `a` of `width` bits.
fn sort<T: Transport>(
    s: &mut Session<T>,
    p: &Prepared,
    width: u32,
    algorithm: SortAlgorithm,
) -> Result<Out, triad_ring::Error> {
    let key = SortKey::new(vec![(p.a.clone(), width)])?;
    let mut out = s.sort(&key, &[&p.b], algorithm)?;
    Ok(Out::Arith(out.pop().unwrap_or_default()))
}

fn open<T: Transport>(s: &mut Session<T>, out: Out) -> Result<Opened, triad_ring::Error> {
    Ok(match out {
        Out::Arith(x) => Opened::Words(s.reveal(&x)?),
        Out::Bits(x) => Opened::Bools(s.reveal_bits(&x)?),
        Out::Xor(x) => Opened::Words(s.reveal_xor(&x)?),
        Out::Plain(v) => Opened::Words(v),
    })
}

/// The plaintext result `op` must give on `i`.
fn expected(op: &str, i: &Inputs) -> Opened {
    let (a, b, c) = (&i.a, &i.b, &i.bits);
    let words = |f: &dyn Fn(usize) -> u64| Opened::Words((0..a.len()).map(f).collect());
    let bools = |f: &dyn Fn(usize) -> bool| Opened::Bools((0..a.len()).map(f).collect());
    match op {
        "add" => words(&|e| a[e].wrapping_add(b[e])),
        "sub" => words(&|e| a[e].wrapping_sub(b[e])),
        "add_public" => words(&|e| a[e].wrapping_add(7)),
        "mul_public" => words(&|e| a[e].wrapping_mul(3)),
        "xor" => bools(&|_| true),
        "mul" => words(&|e| a[e].wrapping_mul(b[e])),
        "inner_product" => Opened::Words(vec![
            a.iter()
                .zip(b)
                .fold(0u64, |s, (x, y)| s.wrapping_add(x.wrapping_mul(*y))),
        ]),
        "and" => bools(&|_| false),
        "lt" | "lt32" | "lt_full" => bools(&|e| (a[e] as i64) < (b[e] as i64)),
        "eq" => bools(&|e| a[e] == b[e]),
        "inject" => words(&|e| c[e] as u64),
        "select" => words(&|e| if c[e] { a[e] } else { b[e] }),
        "prefix_sum" => {
            let mut acc = 0u64;
            Opened::Words(
                a.iter()
                    .map(|x| {
                        acc = acc.wrapping_add(*x);
                        acc
                    })
                    .collect(),
            )
        }
        "copy_forward" => {
            let mut current = 0;
            let copied = (0..a.len())
                .map(|e| {
                    if e == 0 || b[e] == 1 {
                        current = a[e];
                    }
                    current
                })
                .collect();
            Opened::Words(copied)
        }
        "shuffle" => {
            let mut sorted = a.clone();
            sorted.sort_unstable();
            Opened::Words(sorted)
        }
        op if op.starts_with("sort") => {
            let mut order: Vec<usize> = (0..a.len()).collect();
            order.sort_by_key(|&e| a[e]);
            Opened::Words(order.iter().map(|&e| b[e]).collect())
        }
        // input, reveal, a2b, b2a: the value itself.
        _ => Opened::Words(a.clone()),
    }
}

fn check(op: &str, i: &Inputs, opened: Opened) -> anyhow::Result<()> {
    let opened = match (op, opened) {
        ("shuffle", Opened::Words(mut v)) => {
            v.sort_unstable();
            Opened::Words(v)
        }
        (_, other) => other,
    };
    ensure!(
        opened == expected(op, i),
        "{op}: opened result does not match the plaintext reference"
    );
    Ok(())
}

/// What one party measured for one operation.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PartyRun {
    /// Wall time of all timed runs together.
    pub elapsed_seconds: f64,
    /// Wall time of each timed run.
    pub run_seconds: Vec<f64>,
    /// Payload bytes sent over all timed runs.
    pub bytes_sent: u64,
    /// Messages sent over all timed runs.
    pub messages_sent: u64,
    /// Rounds of the deepest run.
    pub rounds: u32,
}

/// Starts party `id`'s session: fresh pairwise keys from the OS generator,
/// agreed over `transport`.
pub fn party_session<T: Transport>(
    id: PartyId,
    mut transport: T,
    threads: usize,
) -> anyhow::Result<Session<T>> {
    let keys = PairKeys::establish(id, &mut transport)?;
    let config = SessionConfig {
        threads,
        ..SessionConfig::default()
    };
    Ok(Session::new(id, transport, &keys, &config)?)
}

/// Waits until all three parties reach this point, over the session's own
/// transport: after two reveals every party has seen both others start the
/// first (each reveal waits on the previous party, who waited on its own
/// previous one).
pub fn network_barrier<T: Transport>(session: &mut Session<T>) -> anyhow::Result<()> {
    let token = session.public(&[0]);
    session.reveal(&token)?;
    session.reveal(&token)?;
    Ok(())
}

/// One party's part of measuring `op` on `n` elements: shares the inputs,
/// runs `warmup` untimed runs, calls `start` (which must return when all
/// three parties are there), then times `repeats` runs, and finally opens
/// the last result and checks it against plaintext.
pub fn run_op<T: Transport>(
    session: &mut Session<T>,
    op: &str,
    n: usize,
    warmup: usize,
    repeats: usize,
    start: &mut dyn FnMut(&mut Session<T>) -> anyhow::Result<()>,
) -> anyhow::Result<PartyRun> {
    let run = runner::<T>(op)?;
    let repeats = repeats.max(1);
    let inputs = inputs(op, n);
    let id = session.id();
    let bits = (id == PartyId::P0).then_some(inputs.bits.as_slice());
    let bits = session.input_bits(PartyId::P0, bits, n)?;
    let words = (id == PartyId::P0).then_some(inputs.a.as_slice());
    let words = session.input_xor(PartyId::P0, words, n)?;
    let prepared = Prepared {
        a: shares(id, &inputs.a, 2),
        b: shares(id, &inputs.b, 4),
        bits,
        words,
    };
    // One untimed run first: a long-running node has its buffers paged in;
    // a cold process pays page faults on every first touch, which is not
    // the protocol's cost.
    for _ in 0..warmup {
        run(session, &inputs, &prepared)?;
    }
    start(session)?;
    let mut elapsed = Duration::ZERO;
    let mut run_seconds = Vec::with_capacity(repeats);
    let mut stats = Stats::default();
    let mut last = None;
    for _ in 0..repeats {
        session.reset_stats();
        let started = Instant::now();
        last = Some(run(session, &inputs, &prepared)?);
        let took = started.elapsed();
        elapsed += took;
        run_seconds.push(took.as_secs_f64());
        let run_stats = session.stats();
        stats.bytes_sent += run_stats.bytes_sent;
        stats.messages_sent += run_stats.messages_sent;
        stats.rounds = stats.rounds.max(run_stats.rounds);
    }
    let last = last.unwrap_or_else(|| unreachable!("repeats >= 1"));
    let opened = open(session, last)?;
    check(op, &inputs, opened)?;
    Ok(PartyRun {
        elapsed_seconds: elapsed.as_secs_f64(),
        run_seconds,
        bytes_sent: stats.bytes_sent,
        messages_sent: stats.messages_sent,
        rounds: stats.rounds,
    })
}

/// The figures of one operation from the three parties' runs: the median
/// over runs of the slowest party's time (a shared 2-core machine is
/// noisy; the median keeps one disturbed run from moving the figure), bytes
/// of the busiest party.
pub fn combine(
    op: &str,
    n: usize,
    threads: usize,
    repeats: usize,
    transport: &'static str,
    runs: &[PartyRun; 3],
) -> Measurement {
    let repeats = repeats.max(1);
    let mut seconds: f64 = 0.0;
    let mut bytes = 0;
    let mut rounds = 0;
    let mut per_run: Vec<f64> = (0..repeats)
        .map(|r| {
            runs.iter()
                .map(|run| {
                    run.run_seconds
                        .get(r)
                        .copied()
                        .unwrap_or(run.elapsed_seconds / repeats as f64)
                })
                .fold(0.0, f64::max)
        })
        .collect();
    per_run.sort_by(f64::total_cmp);
    if let Some(median) = per_run.get(per_run.len() / 2) {
        seconds = *median;
    }
    for run in runs {
        bytes = bytes.max(run.bytes_sent / repeats as u64);
        rounds = rounds.max(run.rounds);
    }
    Measurement {
        op: op.to_string(),
        n,
        seconds,
        bytes_per_party: bytes,
        rounds,
        transport,
        threads,
        net: None,
        part_words: None,
        lanes: None,
    }
}

/// Runs `op` on `n` elements `warmup` times untimed, then `repeats` times
/// timed, in one session per party, three threads over the in-memory mesh,
/// and reports per-run figures (median time; rounds of one run). The
/// result is checked against plaintext.
pub fn measure(
    op: &str,
    n: usize,
    threads: usize,
    warmup: usize,
    repeats: usize,
) -> anyhow::Result<Measurement> {
    check_op(op)?;
    let barrier = Barrier::new(3);
    let results: Vec<anyhow::Result<PartyRun>> = thread::scope(|scope| {
        let handles: Vec<_> = memory_mesh()
            .into_iter()
            .zip(PartyId::ALL)
            .map(|(transport, id)| {
                let barrier = &barrier;
                scope.spawn(move || -> anyhow::Result<PartyRun> {
                    let mut session = party_session(id, transport, threads)?;
                    let mut start = |_: &mut Session<_>| {
                        barrier.wait();
                        Ok(())
                    };
                    run_op(&mut session, op, n, warmup, repeats, &mut start)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    });
    let mut runs = Vec::with_capacity(3);
    for (id, r) in PartyId::ALL.iter().zip(results) {
        runs.push(r.with_context(|| format!("{op} at {id}"))?);
    }
    let runs: [PartyRun; 3] = runs
        .try_into()
        .unwrap_or_else(|_| unreachable!("three parties"));
    Ok(combine(op, n, threads, repeats, "memory", &runs))
}
