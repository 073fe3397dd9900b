//! The release policy in MPC against hand-computed tables and the plaintext
//! reference, and the nodes' view: bytes, rounds and message shapes that
//! do not depend on the counts.

use proptest::prelude::*;
use triad_exec::ExecError;
use triad_exec::release::{
    COUNT_BITS, ReleasePolicy, ReleasedRow, apply, apply_to_counts, read_released,
};
use triad_ring::outside::{deal, reconstruct};
use triad_ring::testing::run3;
use triad_ring::{Arith, Event, SessionConfig, Stats};

const MAX_COUNT: u64 = (1 << COUNT_BITS) - 1;

fn shares(values: &[u64]) -> [Arith; 3] {
    deal(values).unwrap().map(|d| d.into_shares().unwrap())
}

/// What the client reconstructs, and what the nodes saw.
struct Run {
    counts: Vec<u64>,
    redacted: Vec<u64>,
    sums: Vec<Vec<u64>>,
    words: Vec<u64>,
    rule: String,
    /// Per party.
    stats: [Stats; 3],
    /// Per party: (to, words, round) of every message sent.
    sent: [Vec<(usize, usize, u32)>; 3],
}

fn release_with_seed(
    seed: u64,
    counts: &[u64],
    sums: &[Vec<u64>],
    policy: &ReleasePolicy,
) -> Result<Run, String> {
    let dealt_counts = shares(counts);
    let dealt_sums: Vec<[Arith; 3]> = sums.iter().map(|s| shares(s)).collect();
    let config = SessionConfig {
        record_transcript: true,
        ..SessionConfig::default()
    };
    let results = run3(seed, config, |s| {
        let p = s.id().index();
        let sums: Vec<&Arith> = dealt_sums.iter().map(|d| &d[p]).collect();
        s.reset_stats();
        let released = apply(s, &dealt_counts[p], &sums, policy);
        let sent: Vec<(usize, usize, u32)> = s
            .transcript()
            .unwrap()
            .events
            .iter()
            .filter_map(|e| match e {
                Event::Sent {
                    to, words, round, ..
                } => Some((to.index(), *words, *round)),
                _ => None,
            })
            .collect();
        Ok((released, s.stats(), sent))
    });
    let [a, b, c] = results.map(|r| r.unwrap());
    let (a, b, c) = match (a, b, c) {
        ((Ok(x), sx, tx), (Ok(y), sy, ty), (Ok(z), sz, tz)) => {
            ((x, sx, tx), (y, sy, ty), (z, sz, tz))
        }
        ((Err(e), ..), (Err(f), ..), (Err(g), ..)) => {
            let (e, f, g) = (e.to_string(), f.to_string(), g.to_string());
            assert_eq!(e, f);
            assert_eq!(e, g);
            return Err(e);
        }
        _ => panic!("the parties disagree on the outcome"),
    };
    assert_eq!(a.0.rule, b.0.rule);
    assert_eq!(a.0.rule, c.0.rule);
    let open = |f: &dyn Fn(&triad_exec::Released) -> &Arith| {
        reconstruct([f(&a.0), f(&b.0), f(&c.0)]).unwrap()
    };
    let counts = open(&|r| &r.counts);
    let redacted = open(&|r| &r.redacted);
    let sums = (0..sums.len())
        .map(|k| reconstruct([&a.0.sums[k], &b.0.sums[k], &c.0.sums[k]]).unwrap())
        .collect();
    let words = reconstruct([&a.0.words(), &b.0.words(), &c.0.words()]).unwrap();
    Ok(Run {
        counts,
        redacted,
        sums,
        words,
        rule: a.0.rule.clone(),
        stats: [a.1, b.1, c.1],
        sent: [a.2, b.2, c.2],
    })
}

fn release(counts: &[u64], policy: &ReleasePolicy) -> Run {
    release_with_seed(11, counts, &[], policy).unwrap()
}

/// `None` where redacted, else the released count.
fn shown(run: &Run) -> Vec<Option<u64>> {
    run.counts
        .iter()
        .zip(&run.redacted)
        .map(|(c, r)| match r {
            0 => Some(*c),
            1 => {
                assert_eq!(*c, 0, "a redacted count must open as 0");
                None
            }
            _ => panic!("redaction bit {r} is not 0/1"),
        })
        .collect()
}

const TABLE: [u64; 12] = [0, 1, 7, 8, 9, 10, 12, 13, 17, 18, 1000, 1 << 39];

#[test]
fn default_policy_by_hand() {
    let policy = ReleasePolicy::default();
    assert_eq!(
        policy.describe(),
        "counts <= 7 redacted; counts rounded to the nearest 5; threshold >= 3"
    );
    let run = release(&TABLE, &policy);
    // 2^39 = 549_755_813_888 ends in 8: the nearest multiple of 5 is ...890.
    let expected = vec![
        None,
        None,
        None,
        Some(10),
        Some(10),
        Some(10),
        Some(10),
        Some(15),
        Some(15),
        Some(20),
        Some(1000),
        Some(549_755_813_890),
    ];
    assert_eq!(shown(&run), expected);
    assert_eq!(run.rule, policy.describe());
    let plain: Vec<Option<u64>> = TABLE.iter().map(|c| policy.apply_plain(*c)).collect();
    assert_eq!(plain, expected);
}

#[test]
fn rounding_to_ten_by_hand() {
    let policy = ReleasePolicy {
        round_to: 10,
        ..ReleasePolicy::default()
    };
    let counts = [7, 8, 14, 15, 16, 24, 25, 1000, 1004, 1005, 1 << 39];
    let run = release(&counts, &policy);
    assert_eq!(
        shown(&run),
        vec![
            None,
            Some(10),
            Some(10),
            Some(20),
            Some(20),
            Some(20),
            Some(30),
            Some(1000),
            Some(1000),
            Some(1010),
            Some(549_755_813_890),
        ]
    );
    assert_eq!(
        run.rule,
        "counts <= 7 redacted; counts rounded to the nearest 10; threshold >= 3"
    );
}

#[test]
fn redact_only_zero_by_hand() {
    let policy = ReleasePolicy {
        min_threshold: 1,
        redact_at_most: 0,
        round_to: 5,
    };
    let run = release(&[0, 1, 2, 3, 7, 8, 12, 13], &policy);
    assert_eq!(
        shown(&run),
        vec![
            None,
            Some(0),
            Some(0),
            Some(5),
            Some(5),
            Some(10),
            Some(10),
            Some(15)
        ]
    );
    assert_eq!(
        run.rule,
        "counts <= 0 redacted; counts rounded to the nearest 5; threshold >= 1"
    );
}

#[test]
fn the_minimum_threshold_raises_the_redaction_bound() {
    let policy = ReleasePolicy {
        min_threshold: 3,
        redact_at_most: 0,
        round_to: 1,
    };
    let run = release(&[0, 1, 2, 3, 4], &policy);
    assert_eq!(shown(&run), vec![None, None, None, Some(3), Some(4)]);
    assert_eq!(
        run.rule,
        "counts <= 2 redacted; counts not rounded; threshold >= 3"
    );
}

#[test]
fn round_to_one_keeps_counts() {
    let policy = ReleasePolicy {
        round_to: 1,
        ..ReleasePolicy::default()
    };
    let counts = [0, 7, 8, 9, 13, 1001, MAX_COUNT];
    let run = release(&counts, &policy);
    assert_eq!(
        shown(&run),
        vec![
            None,
            None,
            Some(8),
            Some(9),
            Some(13),
            Some(1001),
            Some(MAX_COUNT)
        ]
    );
}

#[test]
fn odd_power_of_two_and_extreme_divisors() {
    let counts = [0, 8, 11, 12, 13, 99, 100, 1 << 39, MAX_COUNT];
    for round_to in [2, 3, 7, 8, 64, 1000, 1 << 20, 1 << COUNT_BITS] {
        let policy = ReleasePolicy {
            round_to,
            ..ReleasePolicy::default()
        };
        let run = release(&counts, &policy);
        let expected: Vec<Option<u64>> = counts.iter().map(|c| policy.apply_plain(*c)).collect();
        assert_eq!(shown(&run), expected, "round_to {round_to}");
    }
    // Spot checks of the reference itself.
    let p = |round_to| ReleasePolicy {
        round_to,
        ..ReleasePolicy::default()
    };
    assert_eq!(p(3).apply_plain(13), Some(12));
    assert_eq!(p(3).apply_plain(14), Some(15));
    assert_eq!(p(8).apply_plain(12), Some(16));
    assert_eq!(p(8).apply_plain(11), Some(8));
    assert_eq!(
        p(1 << COUNT_BITS).apply_plain(MAX_COUNT),
        Some(1 << COUNT_BITS)
    );
    assert_eq!(p(1 << COUNT_BITS).apply_plain(1 << 38), Some(0));
}

#[test]
fn deterministic_across_reruns() {
    let policy = ReleasePolicy::default();
    let counts: Vec<u64> = (0..200).map(|i| i * 37 % 101).collect();
    let first = release_with_seed(1, &counts, &[], &policy).unwrap();
    let second = release_with_seed(2, &counts, &[], &policy).unwrap();
    assert_eq!(first.counts, second.counts);
    assert_eq!(first.redacted, second.redacted);
    // Twice within one session (fresh randomness each time) as well.
    let dealt = shares(&counts);
    let results = run3(3, SessionConfig::default(), |s| {
        let a = apply_to_counts(s, &dealt[s.id().index()], &policy).unwrap();
        let b = apply_to_counts(s, &dealt[s.id().index()], &policy).unwrap();
        Ok((a, b))
    });
    let [x, y, z] = results.map(|r| r.unwrap());
    let once = reconstruct([&x.0.counts, &y.0.counts, &z.0.counts]).unwrap();
    let again = reconstruct([&x.1.counts, &y.1.counts, &z.1.counts]).unwrap();
    assert_eq!(once, again);
    assert_eq!(once, first.counts);
    assert_ne!(x.0.counts.components(), x.1.counts.components());
}

#[test]
fn sums_are_suppressed_with_their_counts_and_means_use_rounded_counts() {
    let policy = ReleasePolicy::default();
    let counts = vec![3, 12, 18];
    let sums = vec![vec![300, 1200, 1800], vec![5, (-24i64) as u64, 36]];
    let run = release_with_seed(5, &counts, &sums, &policy).unwrap();
    assert_eq!(shown(&run), vec![None, Some(10), Some(20)]);
    assert_eq!(run.sums[0], vec![0, 1200, 1800]);
    assert_eq!(run.sums[1], vec![0, (-24i64) as u64, 36]);
    let rows = read_released(&run.words, 3, 2).unwrap();
    assert_eq!(
        rows[0],
        ReleasedRow {
            count: None,
            sums: vec![None, None]
        }
    );
    assert_eq!(rows[1].count, Some(10));
    // Mean from the rounded count 10, not the exact 12.
    assert_eq!(rows[1].mean(0), Some(120.0));
    assert_eq!(rows[1].mean(1), Some(-2.4));
    assert_eq!(rows[2].mean(0), Some(90.0));
    assert_eq!(rows[0].mean(0), None);
    let total = ReleasedRow {
        count: Some(40),
        sums: vec![],
    };
    assert_eq!(rows[1].percent_of(&total), Some(25.0));
    assert_eq!(rows[0].percent_of(&total), None);
    assert!(read_released(&run.words, 3, 1).is_err());
}

#[test]
fn invalid_policies_fail_before_any_message() {
    for policy in [
        ReleasePolicy {
            round_to: 0,
            ..ReleasePolicy::default()
        },
        ReleasePolicy {
            round_to: (1 << COUNT_BITS) + 1,
            ..ReleasePolicy::default()
        },
        ReleasePolicy {
            redact_at_most: 1 << COUNT_BITS,
            ..ReleasePolicy::default()
        },
    ] {
        let err = release_with_seed(1, &[1, 2], &[], &policy)
            .err()
            .expect("must fail");
        assert!(err.contains("release policy"), "{err}");
        assert!(matches!(policy.check(), Err(ExecError::Unsupported(_))));
    }
    let err = release_with_seed(1, &[1, 2], &[vec![1]], &ReleasePolicy::default())
        .err()
        .expect("must fail");
    assert!(err.contains("operands"), "{err}");
}

#[test]
fn no_values_no_messages() {
    let run = release(&[], &ReleasePolicy::default());
    assert!(run.counts.is_empty());
    assert_eq!(run.stats[0].bytes_sent, 0);
}

/// Bytes and rounds of one party depend on `n` and the policy only, and so
/// does the shape of every message; prints the figures.
#[test]
fn cost_is_independent_of_the_counts() {
    for policy in [
        ReleasePolicy::default(),
        ReleasePolicy {
            round_to: 10,
            ..ReleasePolicy::default()
        },
        ReleasePolicy {
            round_to: 8,
            ..ReleasePolicy::default()
        },
        ReleasePolicy {
            round_to: 1,
            ..ReleasePolicy::default()
        },
    ] {
        for n in [1usize, 100, 10_000] {
            let zeros = vec![0u64; n];
            let large = vec![MAX_COUNT; n];
            let mixed: Vec<u64> = (0..n as u64)
                .map(|i| i.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> (64 - COUNT_BITS))
                .collect();
            let a = release(&zeros, &policy);
            let b = release(&large, &policy);
            let c = release(&mixed, &policy);
            assert_eq!(a.stats, b.stats);
            assert_eq!(a.stats, c.stats);
            assert_eq!(a.sent, b.sent);
            assert_eq!(a.sent, c.sent);
            let bytes: Vec<u64> = a.stats.iter().map(|s| s.bytes_sent).collect();
            let rounds = a.stats.iter().map(|s| s.rounds).max().unwrap();
            println!(
                "round_to {:>2}, n {n:>6}: bytes sent per party {bytes:?} \
                 ({:.0} per value at party 0), messages {}, rounds {rounds}",
                policy.round_to,
                bytes[0] as f64 / n as f64,
                a.stats[0].messages_sent
            );
        }
    }
}

fn count_strategy() -> impl Strategy<Value = u64> {
    prop_oneof![
        Just(0u64),
        Just(MAX_COUNT),
        0u64..40,
        0u64..=MAX_COUNT,
        (0u32..COUNT_BITS).prop_map(|b| 1u64 << b),
    ]
}

fn policy_strategy() -> impl Strategy<Value = ReleasePolicy> {
    (
        0u64..12,
        0u64..20,
        prop_oneof![
            1u64..=20,
            Just(100u64),
            Just(1000u64),
            1u64..=(1 << COUNT_BITS)
        ],
    )
        .prop_map(|(min_threshold, redact_at_most, round_to)| ReleasePolicy {
            min_threshold,
            redact_at_most,
            round_to,
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    #[test]
    fn matches_the_plaintext_reference(
        counts in prop::collection::vec(count_strategy(), 1..80),
        policy in policy_strategy(),
        seed in any::<u64>(),
    ) {
        let run = release_with_seed(seed, &counts, &[], &policy).unwrap();
        let expected: Vec<Option<u64>> = counts.iter().map(|c| policy.apply_plain(*c)).collect();
        // The reference itself: multiples of round_to within half of it.
        for (c, r) in counts.iter().zip(&expected) {
            if let Some(r) = r {
                prop_assert_eq!(r % policy.round_to, 0);
                prop_assert!(r.abs_diff(*c) <= policy.round_to / 2);
            }
        }
        prop_assert_eq!(shown(&run), expected, "seed {}", seed);
    }
}
