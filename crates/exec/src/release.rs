//! The deployment's disclosure-control release policy, applied in MPC to
//! counts before their shares leave the nodes.
//!
//! One [`ReleasePolicy`] per deployment: counts at or below a bound are
//! redacted, the others are rounded half up to a multiple of `round_to`,
//! and sums released beside a count are suppressed with it. Rounding is a
//! deterministic function of the count (no noise), so rerunning a query
//! gives the same released value and averaging reruns learns nothing new.
//! Derived values (means, percentages) are computed by the client from the
//! *rounded* counts: [`ReleasedRow::mean`] and [`ReleasedRow::percent_of`]
//! divide by the released count, never by the exact one, which no party
//! ever opens. The rule applied travels with the output
//! ([`Released::rule`], [`ReleasePolicy::describe`]).
//!
//! What is revealed, and to whom: nothing to the nodes (no gate bit, no
//! count, no redaction bit is opened here; bytes and rounds depend only on
//! the number of values and the policy, both public). To the requesting
//! client, per value: the rounded count, or the fact that it was redacted
//! (a redacted value opens as count 0 with redaction bit 1, so the client
//! cannot tell a redacted 0 from a redacted 7), and each accompanying sum
//! unless the count was redacted (then 0).
//!
//! This module owns the arithmetic of the policy only. It does no I/O, has
//! no policy source (the node reads the deployment's policy and passes it
//! in) and never opens anything: the caller sends [`Released::words`] to
//! the requester like any other answer.
//!
//! Query execution applies it to every answer when
//! [`Policy::release`](crate::Policy::release) is set (the word layout is
//! documented on [`Answer`](crate::Answer)); [`released_layout`] is the
//! client's split of such an answer.
//!
//! # How rounding is computed
//!
//! `rounded = x - (x mod r)` with `x = c + floor(r / 2)`, which is
//! `round_half_up(c / r) * r`; no division by a secret is needed. The
//! remainder comes from the bits of `x`: `x mod r = s mod r` where
//! `s = sum_i b_i (2^i mod r)` is small (below `41 r`), and
//! `s mod r = s - r * #{k >= 1 : s >= k r}`, one batched comparison per
//! public multiple of `r` that `s` can reach (at most 41).
//!
//! Cost for `n` values, whatever their values: one `a2b` of `2n` elements
//! at 42 bits (the redaction sign rides along as the top bit of
//! `t - c + 2^41`), one bit injection of `(m + 1) n` bits (`m` the bits of
//! `x` with non-zero weight), one comparison of `K n` elements at the width
//! of `s` and its injection (skipped when `K = 0`, e.g. `r` a power of two
//! or 1), and one round of products. Injections dominate the bytes (an
//! input and a product per bit). Measured at party 0 for `n = 10_000`
//! (`tests/release.rs` prints them): defaults, 17 rounds and about 1.1 kB
//! per value (0.64 kB at the other parties); `round_to` 1 or a power of
//! two, 11 rounds and 120 to 170 bytes per value.

use triad_ring::{Arith, Bits, Session, Transport, XorWords};

use crate::ExecError;

/// Counts must be below `2^COUNT_BITS`; they come from summing 0/1 row
/// weights, so this bounds the rows an aggregate may cover.
pub const COUNT_BITS: u32 = 40;

/// Width of the one bit decomposition: `x < 2^41` and the redaction sign
/// is bit 41 of `t - c + 2^41`.
const DECOMPOSE_BITS: u32 = COUNT_BITS + 2;
const SIGN_BIT: u32 = COUNT_BITS + 1;

/// One deployment's disclosure-control rule. The node reads it from its
/// configuration; no query can weaken it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReleasePolicy {
    /// Smallest number of rows any released aggregate may cover; a count
    /// below it is redacted too, so lowering `redact_at_most` cannot
    /// release what the gates would have hidden.
    pub min_threshold: u64,
    /// Counts at or below this are redacted: small cells identify people.
    pub redact_at_most: u64,
    /// Released counts are multiples of this (1: no rounding), so that
    /// differences of overlapping queries do not pin single rows.
    pub round_to: u64,
}

impl Default for ReleasePolicy {
    fn default() -> Self {
        ReleasePolicy {
            min_threshold: 3,
            redact_at_most: 7,
            round_to: 5,
        }
    }
}

impl ReleasePolicy {
    /// The largest count redacted: `redact_at_most`, raised to
    /// `min_threshold - 1` if that is larger.
    pub fn redaction_bound(&self) -> u64 {
        self.redact_at_most
            .max(self.min_threshold.saturating_sub(1))
    }

    /// Checks the policy fits the protocol's bounds (counts below
    /// `2^COUNT_BITS`).
    pub fn check(&self) -> Result<(), ExecError> {
        let limit = 1u64 << COUNT_BITS;
        if self.round_to == 0 || self.round_to > limit {
            return Err(ExecError::Unsupported(format!(
                "release policy: round_to {} is not in 1..=2^{COUNT_BITS}",
                self.round_to
            )));
        }
        if self.redaction_bound() >= limit {
            return Err(ExecError::Unsupported(format!(
                "release policy: redaction bound {} is not below 2^{COUNT_BITS}",
                self.redaction_bound()
            )));
        }
        Ok(())
    }

    /// The rule in words, recorded with every output it was applied to,
    /// e.g. "counts <= 7 redacted; counts rounded to the nearest 5;
    /// threshold >= 3".
    pub fn describe(&self) -> String {
        let rounding = if self.round_to == 1 {
            "counts not rounded".to_string()
        } else {
            format!("counts rounded to the nearest {}", self.round_to)
        };
        format!(
            "counts <= {} redacted; {rounding}; threshold >= {}",
            self.redaction_bound(),
            self.min_threshold
        )
    }

    /// The policy on plaintext: `None` where redacted, else the rounded
    /// count. The reference the MPC version must agree with.
    pub fn apply_plain(&self, count: u64) -> Option<u64> {
        if count <= self.redaction_bound() {
            return None;
        }
        // In u128 so a count out of range gives a wrong answer, not a panic.
        let r = self.round_to.max(1) as u128;
        let x = count as u128 + r / 2;
        Some((x - x % r) as u64)
    }
}

/// Shares ready to leave the nodes, with the rule that produced them.
#[derive(Debug)]
pub struct Released {
    /// Rounded counts, 0 where redacted.
    pub counts: Arith,
    /// 1 where the count was redacted, else 0; opened with the counts so
    /// the client shows "redacted" rather than 0.
    pub redacted: Arith,
    /// Each accompanying sum column, 0 where the count was redacted.
    pub sums: Vec<Arith>,
    /// [`ReleasePolicy::describe`] of the policy applied.
    pub rule: String,
}

impl Released {
    /// The words to send to the requester, column after column: counts,
    /// redaction bits, then each sum column; [`read_released`] is the
    /// client's inverse.
    pub fn words(&self) -> Arith {
        let mut parts = vec![&self.counts, &self.redacted];
        parts.extend(self.sums.iter());
        Arith::concat(&parts)
    }
}

/// [`apply`] with no sums.
pub fn apply_to_counts<T: Transport>(
    session: &mut Session<T>,
    counts: &Arith,
    policy: &ReleasePolicy,
) -> Result<Released, ExecError> {
    apply(session, counts, &[], policy)
}

/// Applies `policy` to `counts` (secret, each in `0..2^COUNT_BITS`; the
/// caller guarantees it) and suppresses each column of `sums` (one value
/// per count, e.g. the sum whose mean the client wants) where the count is
/// redacted. Sums are not rounded: the client derives means from them and
/// the rounded count. Nothing is opened; every party must call this with
/// the same policy and lengths.
pub fn apply<T: Transport>(
    session: &mut Session<T>,
    counts: &Arith,
    sums: &[&Arith],
    policy: &ReleasePolicy,
) -> Result<Released, ExecError> {
    policy.check()?;
    let n = counts.len();
    for sum in sums {
        if sum.len() != n {
            return Err(triad_ring::Error::LengthMismatch {
                op: "release sums",
                left: sum.len(),
                right: n,
            }
            .into());
        }
    }
    let rule = policy.describe();
    if n == 0 {
        return Ok(Released {
            counts: Arith::zeros(0),
            redacted: Arith::zeros(0),
            sums: sums.iter().map(|_| Arith::zeros(0)).collect(),
            rule,
        });
    }
    let id = session.id();
    let r = policy.round_to;
    let x = counts.add_public(id, r / 2);
    // Bit SIGN_BIT of y is 1 exactly when c <= t, as |t - c| < 2^40.
    let y = counts
        .neg()
        .add_public(id, policy.redaction_bound().wrapping_add(1 << SIGN_BIT));

    // Only bits whose weight 2^i mod r is non-zero matter for x mod r.
    let weights: Vec<(u32, u64)> = (0..SIGN_BIT)
        .map(|i| (i, ((1u128 << i) % r as u128) as u64))
        .filter(|(_, w)| *w != 0)
        .collect();
    let stacked = Arith::concat(&[&x, &y]);
    let words = session.a2b(&stacked, DECOMPOSE_BITS)?;
    let mut picks: Vec<(usize, u32)> = Vec::with_capacity((weights.len() + 1) * n);
    for (i, _) in &weights {
        picks.extend((0..n).map(|j| (j, *i)));
    }
    picks.extend((0..n).map(|j| (n + j, SIGN_BIT)));
    let injected = session.inject(&pick_bits(&words, &picks)?)?;
    let redacted = injected.slice(weights.len() * n..(weights.len() + 1) * n);

    let mut s = Arith::zeros(n);
    for (k, (_, w)) in weights.iter().enumerate() {
        s = s.add(&injected.slice(k * n..(k + 1) * n).mul_public(*w))?;
    }
    let s_max: u64 = weights.iter().map(|(_, w)| w).sum();
    let multiples = s_max / r;
    let remainder = if multiples == 0 {
        s
    } else {
        let repeated: Vec<&Arith> = (0..multiples).map(|_| &s).collect();
        let thresholds: Vec<u64> = (1..=multiples)
            .flat_map(|k| std::iter::repeat_n(k * r, n))
            .collect();
        let width = 64 - s_max.leading_zeros();
        let thresholds = session.public(&thresholds);
        let reached = session.ge(&Arith::concat(&repeated), &thresholds, width)?;
        let reached = session.inject(&reached)?;
        let mut quotient = Arith::zeros(n);
        for k in 0..multiples as usize {
            quotient = quotient.add(&reached.slice(k * n..(k + 1) * n))?;
        }
        s.sub(&quotient.mul_public(r))?
    };
    let rounded = x.sub(&remainder)?;

    let mut pairs: Vec<(&Arith, &Arith)> = vec![(&redacted, &rounded)];
    pairs.extend(sums.iter().map(|sum| (&redacted, *sum)));
    let hidden = session.mul_many(&pairs)?;
    let counts = rounded.sub(&hidden[0])?;
    let sums = sums
        .iter()
        .zip(&hidden[1..])
        .map(|(sum, h)| sum.sub(h))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Released {
        counts,
        redacted,
        sums,
        rule,
    })
}

/// Bit `b` of element `j` for each `(j, b)` in `picks`, as one bit-sliced
/// column. Local: XOR sharing commutes with taking bits.
fn pick_bits(words: &XorWords, picks: &[(usize, u32)]) -> Result<Bits, ExecError> {
    let (own, next) = words.components();
    let pack = |w: &[u64]| -> Vec<u64> {
        picks
            .chunks(64)
            .map(|chunk| {
                chunk
                    .iter()
                    .enumerate()
                    .fold(0u64, |acc, (e, &(j, b))| acc | (((w[j] >> b) & 1) << e))
            })
            .collect()
    };
    Ok(Bits::from_components(picks.len(), pack(own), pack(next))?)
}

/// One released value as the client shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReleasedRow {
    /// The rounded count; `None`: redacted.
    pub count: Option<u64>,
    /// The accompanying sums; `None` where the count was redacted.
    pub sums: Vec<Option<u64>>,
}

impl ReleasedRow {
    /// Mean of sum column `k`, divided by the *rounded* count: the exact
    /// count is never released, and dividing by it would undo the
    /// rounding. `None` if redacted or the rounded count is 0.
    pub fn mean(&self, k: usize) -> Option<f64> {
        let count = self.count.filter(|c| *c > 0)?;
        let sum = (*self.sums.get(k)?)? as i64;
        Some(sum as f64 / count as f64)
    }

    /// This count as a percentage of `total`, another released (rounded)
    /// count. `None` if either is redacted or the total is 0.
    pub fn percent_of(&self, total: &ReleasedRow) -> Option<f64> {
        let whole = total.count.filter(|c| *c > 0)?;
        Some(100.0 * self.count? as f64 / whole as f64)
    }
}

/// The client's reading of reconstructed [`Released::words`] for `n`
/// values with `sums` sum columns.
pub fn read_released(words: &[u64], n: usize, sums: usize) -> Result<Vec<ReleasedRow>, ExecError> {
    if words.len() != n * (2 + sums) {
        return Err(ExecError::Unsupported(format!(
            "released words: expected {} for {n} values with {sums} sums, got {}",
            n * (2 + sums),
            words.len()
        )));
    }
    (0..n)
        .map(|j| match words[n + j] {
            0 => Ok(ReleasedRow {
                count: Some(words[j]),
                sums: (0..sums).map(|k| Some(words[(2 + k) * n + j])).collect(),
            }),
            1 => Ok(ReleasedRow {
                count: None,
                sums: vec![None; sums],
            }),
            bit => Err(ExecError::Unsupported(format!(
                "released words: redaction bit {bit} at value {j} is not 0 or 1"
            ))),
        })
        .collect()
}

/// The client's split of the reconstructed words of an answer released
/// under a policy ([`crate::Answer`] with `rule` set; see its layout):
/// the words in the layout they have without a policy (counts already
/// rounded, counts and sums of redacted groups 0), to decode as usual, and
/// per passing group, in order, whether it was redacted (show "redacted",
/// not 0). `passed` is the answer's gate outcomes.
///
/// Fails if the words cannot be such an answer: fewer than one per passing
/// group, a remainder not a whole number of words per group, or a
/// redaction bit other than 0 or 1.
pub fn released_layout<'a>(
    words: &'a [u64],
    passed: &[bool],
) -> Result<(&'a [u64], Vec<bool>), ExecError> {
    let groups = passed.iter().filter(|p| **p).count();
    let broken = |why: String| {
        Err(ExecError::Unsupported(format!(
            "released answer of {} words for {groups} passing groups: {why}",
            words.len()
        )))
    };
    let Some(body) = words.len().checked_sub(groups) else {
        return broken("fewer words than redaction bits".into());
    };
    if (groups == 0 && body != 0) || (groups != 0 && body % groups != 0) {
        return broken("not a whole number of words per group".into());
    }
    let (values, bits) = words.split_at(body);
    let redacted = bits
        .iter()
        .enumerate()
        .map(|(g, bit)| match bit {
            0 => Ok(false),
            1 => Ok(true),
            bit => Err(ExecError::Unsupported(format!(
                "released answer: redaction bit {bit} of passing group {g} is not 0 or 1"
            ))),
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok((values, redacted))
}
