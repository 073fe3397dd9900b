//! Aggregates behind threshold gates, and group-bys.
//!
//! The gate counts the rows that are selected and non-null in the
//! aggregated column, compares the count with the threshold in MPC and
//! reveals only the outcome bit; the aggregate itself is computed and sent
//! to the requester only when the gate passed.

use triad_plan::{Agg, Aggregation, ColumnInfo, GroupForm, bits_for};
use triad_ring::{Arith, Bits, Session, SortAlgorithm, SortKey, Transport};

use crate::release::{self, COUNT_BITS, ReleasePolicy};
use crate::{ExecError, SecretTable};

/// What an aggregate query returns: the public gate outcomes and shares of
/// the result words of the groups that passed.
///
/// Word layout, per passing group in order: for a sorted group-by, one word
/// per key first; then per aggregation [`Agg::words`] words:
/// sum; count; mean as (sum, count); var as (sum, count, sum of squares);
/// min or max as the value. A plain aggregate is one passing group with no
/// keys. With `P` passing groups of `W` words each, `words` has `P * W`
/// words.
///
/// # Under a release policy
///
/// When the deployment sets [`Policy::release`](crate::Policy::release)
/// (`rule` is then `Some`), the same `P * W` words come first, in the same
/// order, transformed per group:
///
/// - every *count* word (a count, and the count of a mean or a var) is the
///   policy's rounded count of that count ([`ReleasePolicy::apply_plain`]),
///   or 0 where the group is redacted;
/// - every *sum* word (a sum, and the sum and the sum of squares of a mean
///   or a var) is the exact sum, or 0 where the group is redacted;
/// - key words are unchanged (a redacted group's key is still shown);
/// - min and max are refused ([`ExecError::Unsupported`]) before anything
///   runs.
///
/// Then `P` more words, one per passing group in the same order: its
/// redaction bit, 1 where redacted, 0 where released. So `words` has
/// `P * W + P` words; [`released_layout`](crate::release::released_layout)
/// splits them. A group is redacted when any count its gate compared with
/// the threshold (its selected rows, and the non-null rows of each
/// nullable aggregated column) is at most
/// [`ReleasePolicy::redaction_bound`]. Means and variances are for the
/// client to derive from the released sums and the *rounded* count (so
/// they are approximate, by design: the exact count is never released).
///
/// [`ReleasePolicy::apply_plain`]: crate::ReleasePolicy::apply_plain
/// [`ReleasePolicy::redaction_bound`]: crate::ReleasePolicy::redaction_bound
#[derive(Debug)]
pub struct Answer {
    /// Gate outcome per candidate group (one entry for a plain aggregate;
    /// one per key combination for a small-domain group-by; one per
    /// shuffled row for a sorted group-by).
    pub passed: Vec<bool>,
    /// Shares of the result words.
    pub words: Arith,
    /// The release rule applied ([`ReleasePolicy::describe`]), `None` when
    /// the deployment has no release policy; to be shown with the result.
    ///
    /// [`ReleasePolicy::describe`]: crate::ReleasePolicy::describe
    pub rule: Option<String>,
}

/// One word of every passing group's layout, naming the column (one
/// element per passing group) it is taken from.
#[derive(Clone, Copy, Debug)]
enum Slot {
    /// A key's value (sorted group-bys): index into `Columns::keys`.
    Key(usize),
    /// A gate count (a count, or the count of a mean or a var): index into
    /// `Columns::counts`.
    Count(usize),
    /// An additive word (a sum, or a sum of squares): index into
    /// `Columns::sums`.
    Sum(usize),
    /// Anything else (min, max): index into `Columns::others`.
    Other(usize),
}

/// The passing groups' results column by column, each column one element
/// per passing group, before they are laid out as words.
struct Columns {
    passed: Vec<bool>,
    /// The words of one group.
    layout: Vec<Slot>,
    keys: Vec<Arith>,
    /// Every count the gate compared with the threshold, per group.
    counts: Vec<Arith>,
    sums: Vec<Arith>,
    others: Vec<Arith>,
}

/// Elements `at` of `x`, in order, as one column.
fn gather(x: &Arith, at: &[usize]) -> Arith {
    let parts: Vec<Arith> = at.iter().map(|&i| x.slice(i..i + 1)).collect();
    Arith::concat(&parts.iter().collect::<Vec<_>>())
}

/// Lays out the words of `columns`, after releasing them under `release`.
/// Without a policy this sends nothing and the words are the groups' words
/// as they were computed.
fn finish<T: Transport>(
    s: &mut Session<T>,
    columns: Columns,
    rows: usize,
    release: Option<&ReleasePolicy>,
) -> Result<Answer, ExecError> {
    let Columns {
        passed,
        layout,
        keys,
        mut counts,
        mut sums,
        others,
    } = columns;
    let groups = passed.iter().filter(|p| **p).count();
    let mut redacted = None;
    let mut rule = None;
    if let Some(policy) = release {
        if !others.is_empty() {
            return Err(ExecError::Unsupported(
                "min or max under the deployment's release policy".into(),
            ));
        }
        if rows as u128 >= 1u128 << COUNT_BITS {
            return Err(ExecError::Unsupported(format!(
                "release policy: counts over {rows} rows do not fit in {COUNT_BITS} bits"
            )));
        }
        let released = release_columns(s, &counts, &sums, policy)?;
        counts = released.counts;
        sums = released.sums;
        redacted = Some(released.redacted);
        rule = Some(released.rule);
    }
    let mut out: Vec<Arith> = Vec::with_capacity(groups * layout.len() + 1);
    for g in 0..groups {
        for slot in &layout {
            let column = match *slot {
                Slot::Key(i) => &keys[i],
                Slot::Count(i) => &counts[i],
                Slot::Sum(i) => &sums[i],
                Slot::Other(i) => &others[i],
            };
            out.push(column.slice(g..g + 1));
        }
    }
    out.extend(redacted);
    Ok(Answer {
        passed,
        words: Arith::concat(&out.iter().collect::<Vec<_>>()),
        rule,
    })
}

/// Released count columns, sum columns and the group's redaction bits.
struct ReleasedColumns {
    counts: Vec<Arith>,
    sums: Vec<Arith>,
    redacted: Arith,
    rule: String,
}

/// Applies `policy` to every gate count of the passing groups (`counts`,
/// one column per gated count, one element per group): a group is
/// redacted when any of its counts is; its counts are rounded (0 where
/// redacted) and its `sums` kept (0 where redacted). Rounds and bytes
/// depend on the numbers of groups, counts and sums only.
fn release_columns<T: Transport>(
    s: &mut Session<T>,
    counts: &[Arith],
    sums: &[Arith],
    policy: &ReleasePolicy,
) -> Result<ReleasedColumns, ExecError> {
    let rule = policy.describe();
    let Some(first) = counts.first() else {
        return Err(ExecError::Unsupported(
            "release policy: an answer with no count to release".into(),
        ));
    };
    let groups = first.len();
    if groups == 0 {
        return Ok(ReleasedColumns {
            counts: counts.iter().map(|_| Arith::zeros(0)).collect(),
            sums: sums.iter().map(|_| Arith::zeros(0)).collect(),
            redacted: Arith::zeros(0),
            rule,
        });
    }
    if counts.len() == 1 {
        // The common case: the policy suppresses the sums itself.
        let sum_refs: Vec<&Arith> = sums.iter().collect();
        let released = release::apply(s, first, &sum_refs, policy)?;
        return Ok(ReleasedColumns {
            counts: vec![released.counts],
            sums: released.sums,
            redacted: released.redacted,
            rule,
        });
    }
    // Several counts per group (nullable aggregated columns): release them
    // all at once, then redact the group where any of them is redacted.
    let k = counts.len();
    let stacked = Arith::concat(&counts.iter().collect::<Vec<_>>());
    let released = release::apply_to_counts(s, &stacked, policy)?;
    let id = s.id();
    let mut keep: Vec<Arith> = (0..k)
        .map(|w| {
            released
                .redacted
                .slice(w * groups..(w + 1) * groups)
                .neg()
                .add_public(id, 1)
        })
        .collect();
    // AND of the keep bits, as a balanced tree of batched products.
    while keep.len() > 1 {
        let pairs: Vec<(&Arith, &Arith)> = keep
            .chunks_exact(2)
            .map(|pair| (&pair[0], &pair[1]))
            .collect();
        let mut next = s.mul_many(&pairs)?;
        if keep.len() % 2 == 1 {
            next.extend(keep.pop());
        }
        keep = next;
    }
    let keep = keep.pop().unwrap_or_else(|| Arith::zeros(groups));
    let redacted = keep.neg().add_public(id, 1);
    let rounded: Vec<Arith> = (0..k)
        .map(|w| released.counts.slice(w * groups..(w + 1) * groups))
        .collect();
    let mut pairs: Vec<(&Arith, &Arith)> = rounded.iter().map(|c| (&keep, c)).collect();
    pairs.extend(sums.iter().map(|x| (&keep, x)));
    let mut kept = s.mul_many(&pairs)?;
    let sums = kept.split_off(k);
    Ok(ReleasedColumns {
        counts: kept,
        sums,
        redacted,
        rule,
    })
}

fn value_of<'a>(
    table: &'a SecretTable,
    info: &ColumnInfo,
) -> Result<(&'a Arith, Option<&'a Arith>), ExecError> {
    let c = table
        .column(&info.name)
        .ok_or_else(|| ExecError::Unsupported(format!("column {:?} was not loaded", info.name)))?;
    let x = c
        .limbs
        .first()
        .ok_or_else(|| ExecError::Unsupported("a column without limbs".into()))?;
    Ok((x, c.valid.as_ref()))
}

/// Bound for comparing counts (at most `rows`) with `threshold`.
fn count_width(rows: usize, threshold: u64) -> u32 {
    bits_for((rows as u128).max(threshold as u128)).min(63)
}

/// `count >= threshold` for each element, revealed.
fn gate<T: Transport>(
    s: &mut Session<T>,
    counts: &Arith,
    rows: usize,
    threshold: u64,
) -> Result<Vec<bool>, ExecError> {
    let t = s.public(&vec![threshold; counts.len()]);
    let ge = s.ge(counts, &t, count_width(rows, threshold))?;
    Ok(s.reveal_bits(&ge)?)
}

/// The weights of an aggregation: selected and non-null rows (`None`: all).
fn weights<T: Transport>(
    s: &mut Session<T>,
    mask: Option<&Arith>,
    valid: Option<&Arith>,
) -> Result<Option<Arith>, ExecError> {
    Ok(match (mask, valid) {
        (Some(m), Some(v)) => Some(s.mul(m, v)?),
        (Some(m), None) => Some(m.clone()),
        (None, Some(v)) => Some(v.clone()),
        (None, None) => None,
    })
}

/// One aggregate of `table`, released under `release` if set.
pub(crate) fn aggregate<T: Transport>(
    s: &mut Session<T>,
    table: &SecretTable,
    aggregation: &Aggregation,
    column: Option<&ColumnInfo>,
    threshold: u64,
    release: Option<&ReleasePolicy>,
) -> Result<Answer, ExecError> {
    let n = table.rows;
    let value = column.map(|c| value_of(table, c)).transpose()?;
    let w = weights(s, table.mask.as_ref(), value.and_then(|(_, v)| v))?;
    let count = match &w {
        Some(w) => s.sum(w),
        None => s.public(&[n as u64]),
    };
    let passed = gate(s, &count, n, threshold)?;
    if !passed[0] {
        return Err(ExecError::ThresholdNotMet { threshold });
    }
    let mut columns = Columns {
        passed,
        layout: Vec::new(),
        keys: Vec::new(),
        counts: Vec::new(),
        sums: Vec::new(),
        others: Vec::new(),
    };
    match (aggregation.agg, value, column) {
        (Agg::Count, _, _) => {
            columns.layout = vec![Slot::Count(0)];
        }
        (agg @ (Agg::Sum | Agg::Mean | Agg::Var), Some((x, _)), _) => {
            let squares = if agg == Agg::Var {
                Some(s.mul(x, x)?)
            } else {
                None
            };
            let mut summed: Vec<&Arith> = vec![x];
            summed.extend(squares.as_ref());
            let sums = match &w {
                Some(w) => {
                    let pairs: Vec<(&Arith, &Arith)> = summed.iter().map(|c| (w, *c)).collect();
                    s.inner_products(&pairs)?
                }
                // Every row counts: plain sums, no message.
                None => {
                    let parts: Vec<Arith> = summed.iter().map(|c| s.sum(c)).collect();
                    Arith::concat(&parts.iter().collect::<Vec<_>>())
                }
            };
            columns.layout = match agg {
                Agg::Sum => vec![Slot::Sum(0)],
                Agg::Mean => vec![Slot::Sum(0), Slot::Count(0)],
                _ => vec![Slot::Sum(0), Slot::Count(0), Slot::Sum(1)],
            };
            columns.sums = (0..sums.len()).map(|i| sums.slice(i..i + 1)).collect();
        }
        (agg @ (Agg::Min | Agg::Max), Some((x, _)), Some(info)) => {
            columns.layout = vec![Slot::Other(0)];
            columns.others = vec![extreme(s, x, w.as_ref(), info, agg == Agg::Max)?];
        }
        _ => {
            return Err(ExecError::Unsupported(format!(
                "{} without a column",
                aggregation.agg.name()
            )));
        }
    }
    columns.counts = vec![count];
    finish(s, columns, n, release)
}

/// Smallest (or largest) selected value: unselected rows are replaced by
/// the range's far end, then a tournament of batched comparisons.
fn extreme<T: Transport>(
    s: &mut Session<T>,
    x: &Arith,
    w: Option<&Arith>,
    info: &ColumnInfo,
    max: bool,
) -> Result<Arith, ExecError> {
    let n = x.len();
    let sentinel = if max { info.min } else { info.max } as i64 as u64;
    let mut v = match w {
        Some(w) => {
            let base = s.public(&vec![sentinel; n]);
            s.select_arith(w, x, &base)?
        }
        None => x.clone(),
    };
    let width = bits_for((info.max - info.min) as u128);
    while v.len() > 1 {
        let half = v.len() / 2;
        let a = v.slice(0..half);
        let b = v.slice(half..2 * half);
        // Keep a where it wins: a < b for min, b < a for max.
        let (p, q) = if max { (&b, &a) } else { (&a, &b) };
        let wins = if width > 63 {
            s.lt_full(p, q)?
        } else {
            s.lt(p, q, width)?
        };
        let kept = s.select(&wins, &a, &b)?;
        v = if v.len() % 2 == 1 {
            Arith::concat(&[&kept, &v.slice(2 * half..v.len())])
        } else {
            kept
        };
    }
    Ok(v)
}

/// Pads `n` to whole words, so bit columns can be stacked and split.
fn padded(n: usize) -> usize {
    n.div_ceil(64) * 64
}

fn split_bits(bits: &Bits, parts: usize, len: usize) -> Result<Vec<Bits>, ExecError> {
    let (own, next) = bits.components();
    let words = padded(len) / 64;
    (0..parts)
        .map(|k| {
            Bits::from_components(
                len,
                own[k * words..(k + 1) * words].to_vec(),
                next[k * words..(k + 1) * words].to_vec(),
            )
            .map_err(ExecError::from)
        })
        .collect()
}

fn stack_bits(parts: &[Bits], len: usize) -> Result<Bits, ExecError> {
    let words = padded(len) / 64;
    let mut own = Vec::with_capacity(words * parts.len());
    let mut next = Vec::with_capacity(words * parts.len());
    for p in parts {
        let (o, x) = p.components();
        own.extend_from_slice(o);
        next.extend_from_slice(x);
    }
    debug_assert_eq!(own.len(), words * parts.len());
    Ok(Bits::from_components(padded(len) * parts.len(), own, next)?)
}

/// Per-group aggregates, released under `release` if set.
#[allow(clippy::too_many_arguments)]
pub(crate) fn group_by<T: Transport>(
    s: &mut Session<T>,
    table: &SecretTable,
    keys: &[ColumnInfo],
    aggregations: &[(Aggregation, Option<ColumnInfo>)],
    threshold: u64,
    form: &GroupForm,
    algorithm: SortAlgorithm,
    release: Option<&ReleasePolicy>,
) -> Result<Answer, ExecError> {
    let columns = match form {
        GroupForm::Domain { combinations } => {
            domain_group_by(s, table, keys, aggregations, threshold, combinations)?
        }
        GroupForm::Sorted => sorted_group_by(s, table, keys, aggregations, threshold, algorithm)?,
    };
    finish(s, columns, table.rows, release)
}

/// Sums of weighted terms for one aggregation, with the weights it needs.
struct Terms {
    /// Index of the weight (count) column among the weight columns.
    weight: usize,
}

fn domain_group_by<T: Transport>(
    s: &mut Session<T>,
    table: &SecretTable,
    keys: &[ColumnInfo],
    aggregations: &[(Aggregation, Option<ColumnInfo>)],
    threshold: u64,
    combinations: &[Vec<i64>],
) -> Result<Columns, ExecError> {
    let n = table.rows;
    let id = s.id();
    let pad = padded(n);
    // One equality per key and declared value, all in one batch.
    let mut diffs: Vec<Arith> = Vec::new();
    let mut slots: Vec<Vec<i64>> = Vec::new();
    let mut width = 1;
    for k in keys {
        let (x, _) = value_of(table, k)?;
        width = width.max(bits_for((k.max - k.min) as u128));
        let mut values = Vec::new();
        for v in k.min..=k.max {
            let d = x.add_public(id, (v as i64).wrapping_neg() as u64);
            diffs.push(Arith::concat(&[&d, &Arith::zeros(pad - n)]));
            values.push(v as i64);
        }
        slots.push(values);
    }
    let stacked = Arith::concat(&diffs.iter().collect::<Vec<_>>());
    let eq = s.eq(&stacked, &Arith::zeros(stacked.len()), width.min(64))?;
    let eq = split_bits(&eq, diffs.len(), pad)?;
    let mut offsets = Vec::new();
    let mut at = 0;
    for values in &slots {
        offsets.push(at);
        at += values.len();
    }
    let pick = |j: usize, v: i64| -> usize { offsets[j] + (v - slots[j][0]) as usize };
    // AND across keys, all combinations at once per key level.
    let mut current: Vec<Bits> = combinations
        .iter()
        .map(|c| split_first(&eq[pick(0, c[0])], n))
        .collect::<Result<_, _>>()?;
    for j in 1..keys.len() {
        let other: Vec<Bits> = combinations
            .iter()
            .map(|c| split_first(&eq[pick(j, c[j])], n))
            .collect::<Result<_, _>>()?;
        let a = stack_bits(&current, n)?;
        let b = stack_bits(&other, n)?;
        let and = s.and(&a, &b)?;
        current = split_bits(&and, combinations.len(), n)?;
    }
    let in_group = s.inject(&stack_bits(&current, n)?)?;
    let groups: Vec<Arith> = (0..combinations.len())
        .map(|c| in_group.slice(c * pad..c * pad + n))
        .collect();
    let groups: Vec<Arith> = match &table.mask {
        Some(mask) => {
            let pairs: Vec<(&Arith, &Arith)> = groups.iter().map(|g| (g, mask)).collect();
            s.mul_many(&pairs)?
        }
        None => groups,
    };

    // Weight columns: the group's rows, and per nullable column its
    // non-null rows.
    let mut weight_columns: Vec<Option<&Arith>> = vec![None];
    let mut terms = Vec::new();
    for (_, info) in aggregations {
        let valid = match info {
            Some(info) => value_of(table, info)?.1,
            None => None,
        };
        let weight = match valid {
            None => 0,
            Some(v) => match weight_columns
                .iter()
                .position(|w| w.is_some_and(|w| std::ptr::eq(w, v)))
            {
                Some(i) => i,
                None => {
                    weight_columns.push(Some(v));
                    weight_columns.len() - 1
                }
            },
        };
        terms.push(Terms { weight });
    }
    let mut weights: Vec<Vec<Arith>> = vec![groups.clone()];
    for v in weight_columns.iter().skip(1).flatten() {
        let pairs: Vec<(&Arith, &Arith)> = groups.iter().map(|g| (g, *v)).collect();
        weights.push(s.mul_many(&pairs)?);
    }
    // Counts per weight and group, gated together: a group passes when
    // every count it reports reaches the threshold.
    let count_parts: Vec<Arith> = weights
        .iter()
        .flat_map(|ws| ws.iter().map(|w| s.sum(w)))
        .collect();
    let counts = Arith::concat(&count_parts.iter().collect::<Vec<_>>());
    let t = s.public(&vec![threshold; counts.len()]);
    let ge = s.ge(&counts, &t, count_width(n, threshold))?;
    let ge = s.inject(&ge)?;
    let c = combinations.len();
    let mut all = ge.slice(0..c);
    for k in 1..weights.len() {
        all = s.mul(&all, &ge.slice(k * c..(k + 1) * c))?;
    }
    let passed: Vec<bool> = s.reveal(&all)?.iter().map(|b| *b == 1).collect();

    // Sums only for passing groups.
    let mut squares: Vec<Option<Arith>> = Vec::new();
    for (a, info) in aggregations {
        squares.push(match (a.agg, info) {
            (Agg::Var, Some(info)) => {
                let (x, _) = value_of(table, info)?;
                Some(s.mul(x, x)?)
            }
            _ => None,
        });
    }
    // One group's words, and the (weight, value) products behind its sums.
    let mut layout: Vec<Slot> = Vec::new();
    let mut products: Vec<(usize, &Arith)> = Vec::new();
    let mut refused = None;
    for (((a, info), term), sq) in aggregations.iter().zip(&terms).zip(&squares) {
        let count = Slot::Count(term.weight);
        let x = match info {
            Some(info) => Some(value_of(table, info)?.0),
            None => None,
        };
        match (a.agg, x) {
            (Agg::Count, _) => layout.push(count),
            (Agg::Sum, Some(x)) | (Agg::Mean, Some(x)) | (Agg::Var, Some(x)) => {
                products.push((term.weight, x));
                layout.push(Slot::Sum(products.len() - 1));
                if a.agg != Agg::Sum {
                    layout.push(count);
                }
                if let (Agg::Var, Some(sq)) = (a.agg, sq) {
                    products.push((term.weight, sq));
                    layout.push(Slot::Sum(products.len() - 1));
                }
            }
            _ => {
                refused.get_or_insert_with(|| {
                    ExecError::Unsupported(format!("{} per group", a.agg.name()))
                });
            }
        }
    }
    let passing: Vec<usize> = (0..c).filter(|g| passed[*g]).collect();
    // Refused only once a group passed, as nothing is computed before.
    if let (Some(error), false) = (refused, passing.is_empty()) {
        return Err(error);
    }
    // Sums only for passing groups, group after group.
    let mut pairs: Vec<(&Arith, &Arith)> = Vec::new();
    for &g in &passing {
        pairs.extend(products.iter().map(|(w, x)| (&weights[*w][g], *x)));
    }
    let sums = s.inner_products(&pairs)?;
    let per_group = products.len();
    let sums: Vec<Arith> = (0..per_group)
        .map(|j| {
            let at: Vec<usize> = (0..passing.len()).map(|i| i * per_group + j).collect();
            gather(&sums, &at)
        })
        .collect();
    let counts: Vec<Arith> = (0..weights.len())
        .map(|w| {
            let at: Vec<usize> = passing.iter().map(|g| w * c + g).collect();
            gather(&counts, &at)
        })
        .collect();
    Ok(Columns {
        passed,
        layout,
        keys: Vec::new(),
        counts,
        sums,
        others: Vec::new(),
    })
}

fn split_first(bits: &Bits, len: usize) -> Result<Bits, ExecError> {
    let (own, next) = bits.components();
    Ok(Bits::from_components(len, own.to_vec(), next.to_vec())?)
}

/// Group-by on wide keys: sort by key, segmented totals by prefix sums and
/// one copy-forward, shuffle, gate each group's last row. Reveals how many
/// groups pass (the gate bits of shuffled rows), not which rows they were.
fn sorted_group_by<T: Transport>(
    s: &mut Session<T>,
    table: &SecretTable,
    keys: &[ColumnInfo],
    aggregations: &[(Aggregation, Option<ColumnInfo>)],
    threshold: u64,
    algorithm: SortAlgorithm,
) -> Result<Columns, ExecError> {
    let n = table.rows;
    let id = s.id();
    if n == 0 {
        return Ok(Columns {
            passed: Vec::new(),
            layout: Vec::new(),
            keys: Vec::new(),
            counts: vec![Arith::zeros(0)],
            sums: Vec::new(),
            others: Vec::new(),
        });
    }
    let m = table.mask.clone().unwrap_or_else(|| s.public(&vec![1; n]));
    // Packed key limbs: unselected rows last, then the keys.
    let mut parts: Vec<(Arith, u32)> = vec![(m.neg().add_public(id, 1), 1)];
    for k in keys {
        let (x, _) = value_of(table, k)?;
        let width = bits_for((k.max - k.min) as u128);
        if width > 62 {
            return Err(ExecError::Unsupported(format!(
                "group key {:?} spans {width} bits; at most 62 are supported",
                k.name
            )));
        }
        parts.push((
            x.add_public(id, (k.min as i64).wrapping_neg() as u64),
            width,
        ));
    }
    let mut limbs: Vec<(Arith, u32)> = Vec::new();
    for (part, width) in parts {
        match limbs.last_mut() {
            Some((value, w)) if *w + width <= 62 => {
                *value = value.mul_public(1u64 << width).add(&part)?;
                *w += width;
            }
            _ => limbs.push((part, width)),
        }
    }
    // Terms summed per group: weights (counts) as they are, and weighted
    // values (weight, value) multiplied below in one batch.
    let mut term_pairs: Vec<(Arith, Option<Arith>)> = Vec::new();
    let mut layout: Vec<Vec<usize>> = Vec::new();
    let mut weight_of: Vec<(Option<String>, usize)> = Vec::new();
    for (a, info) in aggregations {
        let (x, valid) = match info {
            Some(info) => {
                let (x, v) = value_of(table, info)?;
                (Some(x), v)
            }
            None => (None, None),
        };
        let key = valid.map(|_| info.as_ref().map(|i| i.name.clone()).unwrap_or_default());
        let weight = match weight_of.iter().find(|(k, _)| *k == key) {
            Some((_, i)) => *i,
            None => {
                let w = match valid {
                    Some(v) => s.mul(&m, v)?,
                    None => m.clone(),
                };
                term_pairs.push((w, None));
                weight_of.push((key, term_pairs.len() - 1));
                term_pairs.len() - 1
            }
        };
        let mut words = Vec::new();
        match (a.agg, x) {
            (Agg::Count, _) => words.push(weight),
            (agg @ (Agg::Sum | Agg::Mean | Agg::Var), Some(x)) => {
                let w = term_pairs[weight].0.clone();
                term_pairs.push((w.clone(), Some(x.clone())));
                words.push(term_pairs.len() - 1);
                if agg != Agg::Sum {
                    words.push(weight);
                }
                if agg == Agg::Var {
                    let sq = s.mul(x, x)?;
                    term_pairs.push((w, Some(sq)));
                    words.push(term_pairs.len() - 1);
                }
            }
            _ => {
                return Err(ExecError::Unsupported(format!(
                    "{} per group",
                    a.agg.name()
                )));
            }
        }
        layout.push(words);
    }
    let pairs: Vec<(&Arith, &Arith)> = term_pairs
        .iter()
        .filter_map(|(w, x)| x.as_ref().map(|x| (w, x)))
        .collect();
    let mut products = s.mul_many(&pairs)?.into_iter();
    let terms: Vec<Arith> = term_pairs
        .into_iter()
        .map(|(w, x)| match x {
            None => Some(w),
            Some(_) => products.next(),
        })
        .collect::<Option<_>>()
        .ok_or_else(|| ExecError::Unsupported("group-by terms".into()))?;
    let gate_term = weight_of.iter().map(|(_, i)| *i).collect::<Vec<_>>();

    let mut payload: Vec<&Arith> = limbs.iter().map(|(l, _)| l).collect();
    let key_values: Vec<&Arith> = keys
        .iter()
        .map(|k| value_of(table, k).map(|(x, _)| x))
        .collect::<Result<_, _>>()?;
    payload.extend(key_values.iter().copied());
    payload.extend(terms.iter());
    let sort_key = SortKey::new(limbs.iter().map(|(l, w)| (l.clone(), *w)).collect())?;
    let sorted = s.sort(&sort_key, &payload, algorithm)?;
    let nl = limbs.len();
    let nk = keys.len();
    // e[i]: row i continues row i - 1's group.
    let mut e_bits: Option<Bits> = None;
    if n > 1 {
        for (l, (_, w)) in sorted[..nl].iter().zip(&limbs) {
            let eq = s.eq(&l.slice(1..n), &l.slice(0..n - 1), *w)?;
            e_bits = Some(match e_bits {
                Some(acc) => s.and(&acc, &eq)?,
                None => eq,
            });
        }
    }
    let e = match e_bits {
        Some(b) => Arith::concat(&[&Arith::zeros(1), &s.inject(&b)?]),
        None => Arith::zeros(n),
    };
    let starts = e.neg().add_public(id, 1);
    let prefix: Vec<Arith> = sorted[nl + nk..].iter().map(|t| s.prefix_sum(t)).collect();
    let before: Vec<Arith> = prefix
        .iter()
        .map(|p| Arith::concat(&[&Arith::zeros(1), &p.slice(0..n - 1)]))
        .collect();
    let before_refs: Vec<&Arith> = before.iter().collect();
    let base = s.copy_forward(&starts, &before_refs)?;
    let totals: Vec<Arith> = prefix
        .iter()
        .zip(&base)
        .map(|(p, b)| p.sub(b))
        .collect::<Result<_, _>>()?;
    // A group's totals are complete on its last row.
    let next_e = Arith::concat(&[&e.slice(1..n), &Arith::zeros(1)]);
    let last = next_e.neg().add_public(id, 1);
    let mut moved: Vec<&Arith> = vec![&last];
    moved.extend(sorted[nl..nl + nk].iter());
    moved.extend(totals.iter());
    let (shuffled, _) = s.shuffle(&moved, &[])?;
    let last = &shuffled[0];
    let t = s.public(&vec![threshold; n]);
    let first = s.ge(
        &shuffled[1 + nk + gate_term[0]],
        &t,
        count_width(n, threshold),
    )?;
    let mut ok = s.inject(&first)?;
    for &g in &gate_term[1..] {
        let more = s.ge(&shuffled[1 + nk + g], &t, count_width(n, threshold))?;
        let more = s.inject(&more)?;
        ok = s.mul(&ok, &more)?;
    }
    let ok = s.mul(&ok, last)?;
    let passed: Vec<bool> = s.reveal(&ok)?.iter().map(|b| *b == 1).collect();
    let passing: Vec<usize> = (0..n).filter(|row| passed[*row]).collect();
    // One group's words: its keys, then each aggregation's terms, which
    // are gate counts (weights) or sums (weighted values).
    let mut slots: Vec<Slot> = (0..nk).map(Slot::Key).collect();
    let mut sum_terms: Vec<usize> = Vec::new();
    for &t in layout.iter().flatten() {
        slots.push(match gate_term.iter().position(|g| *g == t) {
            Some(i) => Slot::Count(i),
            None => {
                sum_terms.push(t);
                Slot::Sum(sum_terms.len() - 1)
            }
        });
    }
    let column = |i: usize| gather(&shuffled[i], &passing);
    Ok(Columns {
        layout: slots,
        keys: (0..nk).map(|k| column(1 + k)).collect(),
        counts: gate_term.iter().map(|t| column(1 + nk + t)).collect(),
        sums: sum_terms.iter().map(|t| column(1 + nk + t)).collect(),
        others: Vec::new(),
        passed,
    })
}
