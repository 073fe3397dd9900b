//! Privacy of each party's view, checked on recorded transcripts:
//!
//! - the shape of the view (who sends what to whom, when and how much)
//!   does not depend on the secret inputs, for every operation with a fixed
//!   message pattern;
//! - the payloads a party receives before any output is opened are uniform
//!   bytes and uniform bits, even for the worst-case input of all zeros;
//! - the permutations the sorts open are uniform over all permutations,
//!   even with duplicate keys.
//!
//! Every statistical test runs a fixed set of seeds, so a failure
//! reproduces; the failure message names the seeds.

mod common;

use common::shares;
use triad_ring::outside::expand;
use triad_ring::testing::run3;
use triad_ring::{
    Arith, Bits, Error, Event, MemoryTransport, PartyId, Session, SessionConfig, SortAlgorithm,
    SortKey, Transcript, XorWords,
};

type Party = Session<MemoryTransport>;

/// Column length: not a multiple of 64, so bit-sliced messages have a
/// partly used tail word.
const N: usize = 100;

/// Chi-square critical values at p = 0.001 (and a stricter one for the many
/// per-message tests, so that their number does not make a false alarm
/// likely).
const CHI2_255_P001: f64 = 330.52;
const CHI2_255_P1E6: f64 = 377.08;
const CHI2_5_P001: f64 = 20.52;
const CHI2_35_P001: f64 = 66.62;

/// A bit's frequency of ones may stray this many standard deviations from
/// one half.
const BIT_SIGMAS: f64 = 5.0;

fn recording() -> SessionConfig {
    SessionConfig {
        record_transcript: true,
        ..SessionConfig::default()
    }
}

/// Runs `f` as the three parties with recorded transcripts and returns each
/// party's result and transcript; panics naming the seed if one fails.
fn run_recorded<R, F>(seed: u64, f: F) -> [(R, Transcript); 3]
where
    R: Send,
    F: Fn(&mut Party) -> Result<R, Error> + Sync,
{
    let [a, b, c] = run3(seed, recording(), |s| {
        let out = f(s)?;
        let transcript = s
            .transcript()
            .cloned()
            .expect("the session records a transcript");
        Ok((out, transcript))
    });
    let take = |r: Result<(R, Transcript), Error>, p: usize| {
        r.unwrap_or_else(|e| panic!("seed {seed}: party {p} failed: {e}"))
    };
    [take(a, 0), take(b, 1), take(c, 2)]
}

fn seed_bytes(seed: u64, salt: u8) -> [u8; 32] {
    let mut out = [salt; 32];
    out[..8].copy_from_slice(&seed.to_le_bytes());
    out
}

/// This party's XOR shares of `values`, dealt from `seed` (components 0 and
/// 1 are expanded from seeds, component 2 completes the XOR).
fn xor_components(id: PartyId, seed: u64, values: &[u64]) -> (Vec<u64>, Vec<u64>) {
    let c0 = expand(&seed_bytes(seed, 0xB0), values.len());
    let c1 = expand(&seed_bytes(seed, 0xB1), values.len());
    let c2: Vec<u64> = values
        .iter()
        .zip(c0.iter().zip(&c1))
        .map(|(v, (a, b))| v ^ a ^ b)
        .collect();
    let mut c = [c0, c1, c2];
    let i = id.index();
    (
        std::mem::take(&mut c[i]),
        std::mem::take(&mut c[(i + 1) % 3]),
    )
}

fn xor_shares(id: PartyId, seed: u64, values: &[u64]) -> XorWords {
    let (own, next) = xor_components(id, seed, values);
    XorWords::from_components(own, next).expect("components of one length")
}

/// Shares of the low bits of `values`, bit-sliced.
fn bit_shares(id: PartyId, seed: u64, values: &[u64]) -> Bits {
    let mut packed = vec![0u64; values.len().div_ceil(64)];
    for (e, v) in values.iter().enumerate() {
        packed[e / 64] |= (v & 1) << (e % 64);
    }
    let (own, next) = xor_components(id, seed, &packed);
    Bits::from_components(values.len(), own, next).expect("components of the right length")
}

/// Plaintext column `variant`: 0 is all zeros, others are uniform values
/// with every third one an edge value.
fn plain(variant: u8, n: usize) -> Vec<u64> {
    const EDGES: [u64; 5] = [i64::MIN as u64, i64::MAX as u64, u64::MAX, 0, 1];
    if variant == 0 {
        return vec![0; n];
    }
    let mut values = expand(&[variant; 32], n);
    for (i, v) in values.iter_mut().enumerate() {
        if i % 3 == 0 {
            *v = EDGES[(i / 3) % EDGES.len()];
        }
    }
    values
}

/// Values in `[-2^(width-2), 2^(width-2))`, so any difference is below
/// `2^width` as the bounded comparisons require.
fn bounded(values: &[u64], width: u32) -> Vec<u64> {
    values
        .iter()
        .map(|&v| ((v as i64) >> (65 - width)) as u64)
        .collect()
}

fn masked(values: &[u64], width: u32) -> Vec<u64> {
    values.iter().map(|v| v & ((1u64 << width) - 1)).collect()
}

/// Operations under test.
#[derive(Clone, Copy, Debug)]
enum Op {
    Mul,
    InnerProduct,
    And,
    Lt40,
    Lt63,
    LtFull,
    Eq64,
    Eq40,
    A2b,
    B2a,
    Inject,
    Select,
    Shuffle,
    CopyForward,
    SortRadix,
    SortRadixTwoLimbs,
}

/// Results of an operation, to be opened or dropped.
enum Output {
    Arith(Arith),
    Bits(Bits),
    Words(XorWords),
}

/// Runs `op` on shares of the plaintext columns `a` and `b` (mapped into
/// the operation's domain), dealt from `seed`. With `reveal` the outputs
/// are opened; without, no opening message exists.
fn run_op(
    op: Op,
    s: &mut Party,
    seed: u64,
    a: &[u64],
    b: &[u64],
    reveal: bool,
) -> Result<(), Error> {
    let id = s.id();
    let x = shares(id, seed, a);
    let y = shares(id, seed ^ 1, b);
    let outputs = match op {
        Op::Mul => vec![Output::Arith(s.mul(&x, &y)?)],
        Op::InnerProduct => vec![Output::Arith(s.inner_product(&x, &y)?)],
        Op::And => {
            let p = bit_shares(id, seed ^ 2, a);
            let q = bit_shares(id, seed ^ 3, b);
            vec![Output::Bits(s.and(&p, &q)?)]
        }
        Op::Lt40 | Op::Lt63 | Op::Eq40 => {
            let width = if matches!(op, Op::Lt63) { 63 } else { 40 };
            let x = shares(id, seed, &bounded(a, width));
            let y = shares(id, seed ^ 1, &bounded(b, width));
            let out = if matches!(op, Op::Eq40) {
                s.eq(&x, &y, width)?
            } else {
                s.lt(&x, &y, width)?
            };
            vec![Output::Bits(out)]
        }
        Op::LtFull => vec![Output::Bits(s.lt_full(&x, &y)?)],
        Op::Eq64 => vec![Output::Bits(s.eq(&x, &y, 64)?)],
        Op::A2b => vec![Output::Words(s.a2b(&x, 64)?), Output::Words(s.a2b(&y, 40)?)],
        Op::B2a => {
            let w = xor_shares(id, seed ^ 4, a);
            vec![Output::Arith(s.b2a(&w)?)]
        }
        Op::Inject => {
            let p = bit_shares(id, seed ^ 2, a);
            vec![Output::Arith(s.inject(&p)?)]
        }
        Op::Select => {
            let p = bit_shares(id, seed ^ 2, a);
            vec![Output::Arith(s.select(&p, &x, &y)?)]
        }
        Op::Shuffle => {
            let w = xor_shares(id, seed ^ 4, b);
            let (arith, words) = s.shuffle(&[&x, &y], &[&w])?;
            arith
                .into_iter()
                .map(Output::Arith)
                .chain(words.into_iter().map(Output::Words))
                .collect()
        }
        Op::CopyForward => {
            let starts = shares(id, seed ^ 5, &masked(a, 1));
            s.copy_forward(&starts, &[&x, &y])?
                .into_iter()
                .map(Output::Arith)
                .collect()
        }
        Op::SortRadix => {
            let key = shares(id, seed ^ 6, &masked(a, 5));
            let sort_key = SortKey::new(vec![(key.clone(), 5)])?;
            s.sort(&sort_key, &[&y, &key], SortAlgorithm::Radix)?
                .into_iter()
                .map(Output::Arith)
                .collect()
        }
        Op::SortRadixTwoLimbs => {
            let hi = shares(id, seed ^ 6, &masked(a, 3));
            let lo = shares(id, seed ^ 7, &masked(b, 2));
            let sort_key = SortKey::new(vec![(hi, 3), (lo, 2)])?;
            s.sort(&sort_key, &[&x], SortAlgorithm::Radix)?
                .into_iter()
                .map(Output::Arith)
                .collect()
        }
    };
    if reveal {
        for out in &outputs {
            match out {
                Output::Arith(v) => drop(s.reveal(v)?),
                Output::Bits(v) => drop(s.reveal_bits(v)?),
                Output::Words(v) => drop(s.reveal_xor(v)?),
            }
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// 1. The shape of each party's view does not depend on the inputs.

/// One transcript event without its contents.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Shape {
    Sent {
        to: PartyId,
        step: u64,
        words: usize,
        round: u32,
    },
    Received {
        from: PartyId,
        step: u64,
        round: u32,
        words: usize,
    },
    Permutation(usize),
}

fn shape(transcript: &Transcript) -> Vec<Shape> {
    transcript
        .events
        .iter()
        .map(|event| match event {
            Event::Sent {
                to,
                step,
                words,
                round,
            } => Shape::Sent {
                to: *to,
                step: *step,
                words: *words,
                round: *round,
            },
            Event::Received {
                from,
                step,
                round,
                payload,
            } => Shape::Received {
                from: *from,
                step: *step,
                round: *round,
                words: payload.len(),
            },
            Event::RevealedPermutation(perm) => Shape::Permutation(perm.len()),
        })
        .collect()
}

fn view_shapes(op: Op, seed: u64, a: &[u64], b: &[u64]) -> [Vec<Shape>; 3] {
    run_recorded(seed, |s| run_op(op, s, seed, a, b, true)).map(|(_, t)| shape(&t))
}

fn assert_same_shape(op: Op, seed: u64, party: usize, base: &[Shape], other: &[Shape]) {
    if base == other {
        return;
    }
    let at = base
        .iter()
        .zip(other)
        .position(|(x, y)| x != y)
        .unwrap_or(base.len().min(other.len()));
    panic!(
        "seed {seed}: {op:?}: party {party}'s view shape depends on the input: \
         event {at} is {:?} with zero inputs but {:?} with others \
         ({} vs {} events)",
        base.get(at),
        other.get(at),
        base.len(),
        other.len()
    );
}

#[test]
fn view_shape_does_not_depend_on_inputs() {
    const OPS: [Op; 16] = [
        Op::Mul,
        Op::InnerProduct,
        Op::And,
        Op::Lt40,
        Op::Lt63,
        Op::LtFull,
        Op::Eq64,
        Op::Eq40,
        Op::A2b,
        Op::B2a,
        Op::Inject,
        Op::Select,
        Op::Shuffle,
        Op::CopyForward,
        Op::SortRadix,
        Op::SortRadixTwoLimbs,
    ];
    let zeros = plain(0, N);
    let others = [(plain(1, N), plain(2, N)), (plain(3, N), plain(4, N))];
    for op in OPS {
        for seed in [101u64, 202] {
            let base = view_shapes(op, seed, &zeros, &zeros);
            for (p, view) in base.iter().enumerate() {
                let sent = view
                    .iter()
                    .filter(|e| matches!(e, Shape::Sent { .. }))
                    .count();
                assert!(sent > 0, "seed {seed}: {op:?}: party {p} sent nothing");
            }
            for (a, b) in &others {
                let views = view_shapes(op, seed, a, b);
                for p in 0..3 {
                    assert_same_shape(op, seed, p, &base[p], &views[p]);
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------
// 2. Received payloads are uniform.

/// Runs required by the uniformity tests; seeds `SEEDS_FROM..+RUNS`.
const RUNS: u64 = 200;
const SEEDS_FROM: u64 = 1_000;

/// Chi-square statistic of the little-endian bytes of `words` over 256
/// equally likely values.
fn byte_chi_square(words: &[u64]) -> f64 {
    let mut counts = [0u64; 256];
    for w in words {
        for byte in w.to_le_bytes() {
            counts[byte as usize] += 1;
        }
    }
    let expected = (words.len() * 8) as f64 / 256.0;
    counts
        .iter()
        .map(|&c| {
            let d = c as f64 - expected;
            d * d / expected
        })
        .sum()
}

/// The bit position whose frequency of ones strays furthest from one half,
/// with its distance in standard deviations.
fn worst_bit(words: &[u64]) -> (u32, f64) {
    let n = words.len() as f64;
    let sd = n.sqrt() / 2.0;
    (0..64u32)
        .map(|bit| {
            let ones = words.iter().filter(|w| (*w >> bit) & 1 == 1).count() as f64;
            (bit, (ones - n / 2.0).abs() / sd)
        })
        .fold((0, 0.0), |best, b| if b.1 > best.1 { b } else { best })
}

/// The payloads of every message a party received, in order.
fn received(transcript: &Transcript) -> Vec<(PartyId, u64, &[u64])> {
    transcript
        .events
        .iter()
        .filter_map(|event| match event {
            Event::Received {
                from,
                step,
                payload,
                ..
            } => Some((*from, *step, payload.as_slice())),
            _ => None,
        })
        .collect()
}

/// Runs `op` on all-zero inputs over the seeds and checks that what each
/// party receives is uniform: all payload words together (byte chi-square
/// at p = 0.001, every bit position within [`BIT_SIGMAS`]), and each message
/// of the fixed pattern on its own (at p = 1e-6, as there are many).
fn check_uniform(op: Op) {
    let zeros = vec![0u64; N];
    let seeds = SEEDS_FROM..SEEDS_FROM + RUNS;
    let what = |p: usize| format!("{op:?}, party {p}, all-zero inputs, seeds {seeds:?}");
    // Per party: all words, and words by message index.
    let mut all: [Vec<u64>; 3] = Default::default();
    let mut by_message: [Vec<(PartyId, u64, Vec<u64>)>; 3] = Default::default();
    for seed in seeds.clone() {
        let views = run_recorded(seed, |s| run_op(op, s, seed, &zeros, &zeros, false));
        for (p, (_, transcript)) in views.iter().enumerate() {
            let messages = received(transcript);
            assert!(
                !messages.is_empty(),
                "seed {seed}: {op:?}: party {p} received nothing"
            );
            if by_message[p].is_empty() {
                by_message[p] = messages
                    .iter()
                    .map(|(from, step, _)| (*from, *step, Vec::new()))
                    .collect();
            }
            assert_eq!(
                messages.len(),
                by_message[p].len(),
                "seed {seed}: {op:?}: party {p} message count changed"
            );
            for ((_, _, words), (_, _, payload)) in by_message[p].iter_mut().zip(&messages) {
                words.extend_from_slice(payload);
                all[p].extend_from_slice(payload);
            }
        }
    }
    for p in 0..3 {
        let words = &all[p];
        let chi = byte_chi_square(words);
        assert!(
            chi < CHI2_255_P001,
            "{}: byte chi-square {chi:.1} >= {CHI2_255_P001} over {} words",
            what(p),
            words.len()
        );
        let (bit, sigmas) = worst_bit(words);
        assert!(
            sigmas < BIT_SIGMAS,
            "{}: bit {bit} is one at a rate {sigmas:.1} sd from 1/2 over {} words",
            what(p),
            words.len()
        );
        for (k, (from, step, words)) in by_message[p].iter().enumerate() {
            // A message may be empty: with few rows, a party's block of a
            // balanced input can hold no elements.
            if words.is_empty() {
                continue;
            }
            let chi = byte_chi_square(words);
            assert!(
                chi < CHI2_255_P1E6,
                "{}: message {k} (step {step} from {from}): byte chi-square \
                 {chi:.1} >= {CHI2_255_P1E6} over {} words",
                what(p),
                words.len()
            );
            let (bit, sigmas) = worst_bit(words);
            assert!(
                sigmas < BIT_SIGMAS,
                "{}: message {k} (step {step} from {from}): bit {bit} is one at \
                 a rate {sigmas:.1} sd from 1/2 over {} words",
                what(p),
                words.len()
            );
        }
    }
}

#[test]
fn received_bits_are_uniform_mul() {
    check_uniform(Op::Mul);
}

#[test]
fn received_bits_are_uniform_and() {
    check_uniform(Op::And);
}

#[test]
fn received_bits_are_uniform_lt() {
    check_uniform(Op::Lt63);
}

#[test]
fn received_bits_are_uniform_eq() {
    check_uniform(Op::Eq64);
}

#[test]
fn received_bits_are_uniform_other_ops() {
    for op in [
        Op::InnerProduct,
        Op::Lt40,
        Op::LtFull,
        Op::Eq40,
        Op::A2b,
        Op::B2a,
        Op::Inject,
        Op::Select,
        Op::Shuffle,
        Op::CopyForward,
    ] {
        check_uniform(op);
    }
}

// ---------------------------------------------------------------------------
// 3. Permutations opened inside the sorts are uniform.

/// Sorts keys `[5, 5, 1]` (width 3) and returns the permutations party 0
/// saw opened, after checking all parties saw the same and the sort is
/// right.
fn sort_permutations(algorithm: SortAlgorithm, seed: u64) -> Vec<Vec<u32>> {
    let keys = [5u64, 5, 1];
    let positions = [0u64, 1, 2];
    let views = run_recorded(seed, |s| {
        let key = shares(s.id(), seed, &keys);
        let payload = shares(s.id(), seed ^ 1, &positions);
        let sort_key = SortKey::new(vec![(key, 3)])?;
        let sorted = s.sort(&sort_key, &[&payload], algorithm)?;
        s.reveal(&sorted[0])
    });
    let opened = |t: &Transcript| -> Vec<Vec<u32>> {
        t.events
            .iter()
            .filter_map(|event| match event {
                Event::RevealedPermutation(perm) => Some(perm.clone()),
                _ => None,
            })
            .collect()
    };
    let perms = opened(&views[0].1);
    for (p, (sorted, transcript)) in views.iter().enumerate() {
        assert_eq!(
            sorted,
            &vec![2, 0, 1],
            "seed {seed}: {algorithm:?}: party {p} got a wrong order"
        );
        assert_eq!(
            opened(transcript),
            perms,
            "seed {seed}: {algorithm:?}: party {p} saw other permutations than party 0"
        );
    }
    for perm in &perms {
        let mut sorted = perm.clone();
        sorted.sort_unstable();
        assert_eq!(
            sorted,
            vec![0, 1, 2],
            "seed {seed}: {algorithm:?}: opened {perm:?}, not a permutation"
        );
    }
    perms
}

/// Index of a permutation of `0..3` among all six (lexicographic rank).
fn rank3(perm: &[u32]) -> usize {
    let mut rank = 0;
    let mut factorial = 1;
    for i in (0..perm.len()).rev() {
        let smaller_after = perm[i + 1..].iter().filter(|&&q| q < perm[i]).count();
        rank += smaller_after * factorial;
        factorial *= perm.len() - i;
    }
    rank
}

fn chi_square(counts: &[u64]) -> f64 {
    let total: u64 = counts.iter().sum();
    let expected = total as f64 / counts.len() as f64;
    counts
        .iter()
        .map(|&c| {
            let d = c as f64 - expected;
            d * d / expected
        })
        .sum()
}

const SORT_RUNS: u64 = 600;
const SORT_SEEDS_FROM: u64 = 5_000;

fn check_sort_permutations(algorithm: SortAlgorithm, per_sort: usize) {
    let seeds = SORT_SEEDS_FROM..SORT_SEEDS_FROM + SORT_RUNS;
    let mut single = vec![[0u64; 6]; per_sort];
    let mut pooled = [0u64; 6];
    let mut adjacent = vec![[0u64; 36]; per_sort.saturating_sub(1)];
    for seed in seeds.clone() {
        let perms = sort_permutations(algorithm, seed);
        assert_eq!(
            perms.len(),
            per_sort,
            "seed {seed}: {algorithm:?}: expected {per_sort} opened permutations"
        );
        let ranks: Vec<usize> = perms.iter().map(|p| rank3(p)).collect();
        for (k, &r) in ranks.iter().enumerate() {
            single[k][r] += 1;
            pooled[r] += 1;
        }
        for (k, pair) in ranks.windows(2).enumerate() {
            adjacent[k][pair[0] * 6 + pair[1]] += 1;
        }
    }
    for (k, counts) in single.iter().enumerate() {
        let chi = chi_square(counts);
        assert!(
            chi < CHI2_5_P001,
            "{algorithm:?}, seeds {seeds:?}: opened permutation {k} is not uniform: \
             counts {counts:?}, chi-square {chi:.1} >= {CHI2_5_P001}"
        );
    }
    let chi = chi_square(&pooled);
    assert!(
        chi < CHI2_5_P001,
        "{algorithm:?}, seeds {seeds:?}: opened permutations pooled are not uniform: \
         counts {pooled:?}, chi-square {chi:.1} >= {CHI2_5_P001}"
    );
    // Consecutive openings come from independent shuffles: their pairs are
    // uniform over all 36.
    for (k, counts) in adjacent.iter().enumerate() {
        let chi = chi_square(counts);
        assert!(
            chi < CHI2_35_P001,
            "{algorithm:?}, seeds {seeds:?}: opened permutations {k} and {} are \
             not independent: chi-square {chi:.1} >= {CHI2_35_P001}",
            k + 1
        );
    }
}

#[test]
fn rank3_enumerates_permutations() {
    let all = [
        [0, 1, 2],
        [0, 2, 1],
        [1, 0, 2],
        [1, 2, 0],
        [2, 0, 1],
        [2, 1, 0],
    ];
    for (i, p) in all.iter().enumerate() {
        assert_eq!(rank3(p), i, "{p:?}");
    }
}

#[test]
fn quick_sort_opens_a_uniform_order() {
    // One opening per sort: the final order of the shuffled rows.
    check_sort_permutations(SortAlgorithm::Quick, 1);
}

#[test]
fn radix_sort_opens_uniform_permutations() {
    // One opening per key bit, then two to apply the result.
    check_sort_permutations(SortAlgorithm::Radix, 3 + 2);
}
