//! The segmented copy-forward scan against a plaintext reference, and its
//! cost: rounds logarithmic in the column length and communication linear
//! in it.

mod common;

use common::{agree, shares};
use proptest::prelude::*;
use triad_ring::testing::run3;
use triad_ring::{SessionConfig, Stats};

/// Every row gets the value of its segment's first row; row 0 starts a
/// segment whatever its flag says.
fn reference(starts: &[u64], column: &[u64]) -> Vec<u64> {
    let mut current = 0;
    column
        .iter()
        .zip(starts)
        .enumerate()
        .map(|(i, (v, f))| {
            if i == 0 || *f == 1 {
                current = *v;
            }
            current
        })
        .collect()
}

/// What the old Hillis-Steele scan sent per party: `n - d` products per
/// column and for the flags in each round `d = 1, 2, 4, ... < n`.
fn hillis_steele_bytes(n: usize, columns: usize) -> u64 {
    let mut words = 0;
    let mut d = 1;
    while d < n {
        words += (n - d) * (columns + 1);
        d *= 2;
    }
    words as u64 * 8
}

fn ceil_log2(n: usize) -> u32 {
    if n <= 1 {
        0
    } else {
        usize::BITS - (n - 1).leading_zeros()
    }
}

/// Opens the copied columns and returns them with the statistics and wall
/// time of the scan alone (the most of the three parties).
fn run(seed: u64, starts: &[u64], columns: &[Vec<u64>]) -> (Vec<Vec<u64>>, Stats) {
    let [a, b, c] = run3(seed, SessionConfig::default(), |s| {
        let f = shares(s.id(), seed, starts);
        let x: Vec<_> = columns
            .iter()
            .enumerate()
            .map(|(k, c)| shares(s.id(), seed ^ (k as u64 + 1), c))
            .collect();
        let refs: Vec<_> = x.iter().collect();
        s.reset_stats();
        let copied = s.copy_forward(&f, &refs)?;
        let stats = s.stats();
        let opened = copied
            .iter()
            .map(|c| s.reveal(c))
            .collect::<Result<Vec<_>, _>>()?;
        Ok((opened, stats))
    });
    let a = a.expect("party 0");
    let b = b.expect("party 1");
    let c = c.expect("party 2");
    assert_eq!(a.0, b.0, "parties 0 and 1 disagree");
    assert_eq!(a.0, c.0, "parties 0 and 2 disagree");
    let stats = Stats {
        bytes_sent: a.1.bytes_sent.max(b.1.bytes_sent).max(c.1.bytes_sent),
        messages_sent: a
            .1
            .messages_sent
            .max(b.1.messages_sent)
            .max(c.1.messages_sent),
        rounds: a.1.rounds.max(b.1.rounds).max(c.1.rounds),
    };
    (a.0, stats)
}

/// Edge values mixed with uniform ones.
fn element() -> impl Strategy<Value = u64> {
    prop_oneof![
        Just(0u64),
        Just(1u64),
        Just(u64::MAX),
        Just(i64::MIN as u64),
        Just(i64::MAX as u64),
        any::<u64>(),
    ]
}

/// Flags: all zero, all one, sparse or dense.
fn flags(n: usize) -> impl Strategy<Value = Vec<u64>> {
    prop_oneof![
        Just(vec![0u64; n]),
        Just(vec![1u64; n]),
        prop::collection::vec(prop::bool::weighted(0.05).prop_map(u64::from), n),
        prop::collection::vec(prop::bool::weighted(0.5).prop_map(u64::from), n),
    ]
}

fn length() -> impl Strategy<Value = usize> {
    prop_oneof![
        0usize..=9,
        Just(15usize),
        Just(16usize),
        Just(17usize),
        Just(1000usize),
        Just(1023usize),
        Just(1024usize),
        Just(1025usize),
        10usize..1100,
    ]
}

fn case() -> impl Strategy<Value = (Vec<u64>, Vec<Vec<u64>>)> {
    (length(), 1usize..=3).prop_flat_map(|(n, k)| {
        (
            flags(n),
            prop::collection::vec(prop::collection::vec(element(), n), k),
        )
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn copy_forward_matches_plaintext(seed in any::<u64>(), (starts, columns) in case()) {
        let n = starts.len();
        let (got, stats) = run(seed, &starts, &columns);
        for (k, (got, column)) in got.iter().zip(&columns).enumerate() {
            prop_assert_eq!(got, &reference(&starts, column), "column {} of {}, n {}", k, columns.len(), n);
        }
        let log = ceil_log2(n);
        prop_assert!(
            stats.rounds <= 2 * log,
            "n {}: {} rounds, more than 2 ceil(log2 n) = {}", n, stats.rounds, 2 * log
        );
        prop_assert_eq!(u64::from(stats.rounds), stats.messages_sent, "one message per round");
        if n >= 64 {
            let old = hillis_steele_bytes(n, columns.len());
            prop_assert!(
                stats.bytes_sent < old,
                "n {}: {} bytes, no fewer than Hillis-Steele's {}", n, stats.bytes_sent, old
            );
            // Linear: a few products per element and column, whatever n.
            let per_element = stats.bytes_sent as f64 / (n * (columns.len() + 1)) as f64;
            prop_assert!(per_element <= 4.0 * 8.0, "n {}: {} bytes per element and column", n, per_element);
        }
    }
}

#[test]
fn copy_forward_edge_lengths_and_flags() {
    let edges = [0, 1, u64::MAX, i64::MIN as u64, i64::MAX as u64];
    for n in [0usize, 1, 2, 3, 4, 5, 7, 8, 9, 31, 32, 33, 1000, 1025] {
        let column: Vec<u64> = (0..n).map(|i| edges[i % edges.len()]).collect();
        let negated: Vec<u64> = column.iter().map(|v| v.wrapping_neg()).collect();
        let alternating: Vec<u64> = (0..n).map(|i| (i % 2) as u64).collect();
        let every_third: Vec<u64> = (0..n).map(|i| u64::from(i % 3 == 0)).collect();
        for starts in [vec![0; n], vec![1; n], alternating, every_third] {
            let got = agree(n as u64, |s| {
                let f = shares(s.id(), 7, &starts);
                let x = shares(s.id(), 8, &column);
                let y = shares(s.id(), 9, &negated);
                let copied = s.copy_forward(&f, &[&x, &y])?;
                Ok((s.reveal(&copied[0])?, s.reveal(&copied[1])?))
            });
            assert_eq!(
                got.0,
                reference(&starts, &column),
                "n {n}, starts {starts:?}"
            );
            assert_eq!(got.1, reference(&starts, &negated), "n {n}");
        }
    }
}

#[test]
fn copy_forward_cost_is_linear_in_rows() {
    let n = (1 << 16) + 3;
    let starts: Vec<u64> = (0..n).map(|i| u64::from(i % 5 == 0)).collect();
    let column: Vec<u64> = (0..n as u64).collect();
    let (got, stats) = run(13, &starts, std::slice::from_ref(&column));
    assert_eq!(got[0], reference(&starts, &column));
    let log = ceil_log2(n);
    assert!(
        stats.rounds <= log + 2 * ceil_log2(log as usize),
        "{} rounds",
        stats.rounds
    );
    assert!(
        stats.bytes_sent * 4 < hillis_steele_bytes(n, 1),
        "{} bytes, Hillis-Steele {}",
        stats.bytes_sent,
        hillis_steele_bytes(n, 1)
    );
}

#[test]
fn copy_forward_without_columns_and_mismatched_lengths() {
    let got = agree(11, |s| {
        let f = shares(s.id(), 1, &[1, 0, 1]);
        let x = shares(s.id(), 2, &[5, 6]);
        let none = s.copy_forward(&f, &[])?.len();
        let mismatch = s.copy_forward(&f, &[&x]).is_err();
        Ok((none, mismatch))
    });
    assert_eq!(got, (0, true));
}
