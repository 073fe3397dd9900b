//! Oblivious stable sorts by a secret key of declared width.
//!
//! Both families of ALGORITHMS.md compute the sorting permutation from the
//! key alone and move payload columns once:
//!
//! - [`SortAlgorithm::Quick`]: shuffle (key, original position) together
//!   with the payload, then quicksort with opened comparison outcomes
//!   (Hamada, Kikuchi, Ikarashi, Chida, Takahashi, ICISC 2012). The position
//!   makes every key distinct, so the outcomes reveal only the order of a
//!   uniformly shuffled list; it also makes the sort stable. All comparisons
//!   of one quicksort level run as one batched comparison, so rounds grow
//!   with the recursion depth (about `4 log2 n` levels), never with `n`.
//! - [`SortAlgorithm::Radix`]: least-significant-bit-first radix sort by
//!   permutation application (AHI+22, section 5): per key bit, the stable
//!   destination of each row is computed with one multiplication, then rows
//!   are moved by shuffling and opening the (uniformly random) shuffled
//!   destinations. The payload moves once at the end.

use crate::circuit::{Adjust, Circuit, Plane, SignCircuit, SummandRequest};
use crate::error::Error;
use crate::session::{Event, Session};
use crate::share::{Arith, Bits, XorWords};
use crate::shuffle::scatter;
use crate::transport::Transport;

/// Which sort protocol to run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SortAlgorithm {
    /// Shuffle, then quicksort with opened comparisons (the default: fewer
    /// bytes and less time on every width measured, see BENCHMARKS.md).
    #[default]
    Quick,
    /// One-bit-per-pass radix sort by permutation application.
    Radix,
}

/// A sort key: one or more limbs, most significant first, each an unsigned
/// value below `2^width` with `width` in 1..=63.
#[derive(Clone, Debug)]
pub struct SortKey {
    limbs: Vec<Arith>,
    widths: Vec<u32>,
}

impl SortKey {
    /// A key from `(limb, width)` pairs, most significant first. Every
    /// element of a limb must lie in `[0, 2^width)`; the caller proves it
    /// from declared ranges (offset signed values by the range minimum).
    pub fn new(limbs: Vec<(Arith, u32)>) -> Result<SortKey, Error> {
        let n = limbs.first().map(|(l, _)| l.len()).unwrap_or(0);
        for (limb, width) in &limbs {
            if !(1..=63).contains(width) {
                return Err(Error::Width {
                    op: "sort",
                    width: *width,
                    max: 63,
                });
            }
            if limb.len() != n {
                return Err(Error::LengthMismatch {
                    op: "sort",
                    left: n,
                    right: limb.len(),
                });
            }
        }
        let (limbs, widths) = limbs.into_iter().unzip();
        Ok(SortKey { limbs, widths })
    }

    /// Rows.
    pub fn len(&self) -> usize {
        self.limbs.first().map(Arith::len).unwrap_or(0)
    }

    /// Whether there are no rows.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Rows sampled for the first pivot (odd: the median is one of them).
const SAMPLE: usize = 7;

/// Rows of a long segment compared pairwise while it is partitioned, so
/// that each part gets about half of them to take its pivot's median from.
const LOOKAHEAD: usize = 15;

/// Segments from this long pick their pivot from a sample; shorter ones
/// take their first row. The 105 sample comparisons add a fifth to the
/// shortest such segment's partition and are repaid by better splits
/// (measured at 1M rows: 12% fewer bytes, 15% fewer rounds).
const SAMPLE_FROM: usize = 512;

/// Pairs `(a, b)`, `a < b`, of look-ahead sample rows, in batch order.
fn lookahead_pairs() -> Vec<(usize, usize)> {
    (0..LOOKAHEAD)
        .flat_map(|a| (a + 1..LOOKAHEAD).map(move |b| (a, b)))
        .collect()
}

/// The median of the sample rows `members` given the opened outcomes
/// `less[k]` of `pairs[k]` (`a < b`); `None` for fewer than three.
fn median_of(members: &[usize], pairs: &[(usize, usize)], less: &[bool]) -> Option<usize> {
    if members.len() < 3 {
        return None;
    }
    let mut below = [0usize; LOOKAHEAD];
    for (&(a, b), &a_less) in pairs.iter().zip(less) {
        if members.contains(&a) && members.contains(&b) {
            below[if a_less { b } else { a }] += 1;
        }
    }
    members
        .iter()
        .copied()
        .find(|&m| below[m] == members.len() / 2)
}

/// Bits needed to write `0..n`.
fn index_bits(n: usize) -> u32 {
    (usize::BITS - (n.max(2) - 1).leading_zeros()).max(1)
}

impl<T: Transport> Session<T> {
    /// Sorts `payload` columns stably by `key`, ascending.
    pub fn sort(
        &mut self,
        key: &SortKey,
        payload: &[&Arith],
        algorithm: SortAlgorithm,
    ) -> Result<Vec<Arith>, Error> {
        for column in payload {
            if column.len() != key.len() {
                return Err(Error::LengthMismatch {
                    op: "sort",
                    left: key.len(),
                    right: column.len(),
                });
            }
        }
        if key.len() <= 1 || key.limbs.is_empty() {
            return Ok(payload.iter().map(|c| (*c).clone()).collect());
        }
        match algorithm {
            SortAlgorithm::Quick => self.quick_sort(key, payload),
            SortAlgorithm::Radix => self.radix_sort(key, payload),
        }
    }

    fn quick_sort(&mut self, key: &SortKey, payload: &[&Arith]) -> Result<Vec<Arith>, Error> {
        let n = key.len();
        let bits = index_bits(n);
        let positions: Vec<u64> = (0..n as u64).collect();
        let position = self.public(&positions);
        // Pack key and position into one limb when they fit, so each
        // comparison is a single bounded less-than.
        let (limbs, widths): (Vec<Arith>, Vec<u32>) =
            if key.limbs.len() == 1 && key.widths[0] + bits <= 62 {
                let packed = key.limbs[0].mul_public(1u64 << bits).add(&position)?;
                (vec![packed], vec![key.widths[0] + bits])
            } else {
                let mut limbs = key.limbs.clone();
                limbs.push(position);
                let mut widths = key.widths.clone();
                widths.push(bits);
                (limbs, widths)
            };
        let columns: Vec<&Arith> = limbs.iter().chain(payload.iter().copied()).collect();
        let (mut shuffled, _) = self.shuffle(&columns, &[])?;
        let payload_shuffled = shuffled.split_off(limbs.len());
        let limbs = shuffled;

        // The key limbs are kept physically in the current order, so every
        // level reads and rewrites each segment sequentially; `order` maps
        // positions back to shuffled rows for the payload.
        let mut limbs = limbs;
        let mut order: Vec<u32> = (0..n as u32).collect();
        // Unsorted ranges of positions with at least two rows.
        let mut segments: Vec<(usize, usize)> = vec![(0, n)];
        let mut scratch: Vec<u64> = Vec::with_capacity(n);
        let mut scratch_order: Vec<u32> = Vec::with_capacity(n);
        self.choose_pivots(&mut limbs, &mut order, &segments, &widths)?;
        while !segments.is_empty() {
            // Each long segment also compares a spread-out sample of its
            // rows pairwise, in the same batch: once the partition is known,
            // each part's pivot is the median of the sample rows it got, at
            // no extra round.
            let samples: Vec<Option<[usize; LOOKAHEAD]>> = segments
                .iter()
                .map(|&(start, len)| {
                    (len >= SAMPLE_FROM).then(|| {
                        std::array::from_fn(|i| {
                            start + 1 + (2 * i + 1) * (len - 1) / (2 * LOOKAHEAD)
                        })
                    })
                })
                .collect();
            let pairs = lookahead_pairs();
            let sampled = samples.iter().flatten().count() * pairs.len();
            let partitioned: usize = segments.iter().map(|&(_, len)| len - 1).sum();
            let differences: Vec<Arith> = limbs
                .iter()
                .map(|limb| {
                    let diff = |v: &[u64]| -> Vec<u64> {
                        let mut out = Vec::with_capacity(partitioned + sampled);
                        for &(start, len) in &segments {
                            let pivot = v[start];
                            out.extend(
                                v[start + 1..start + len]
                                    .iter()
                                    .map(|x| x.wrapping_sub(pivot)),
                            );
                        }
                        for at in samples.iter().flatten() {
                            out.extend(pairs.iter().map(|&(a, b)| v[at[a]].wrapping_sub(v[at[b]])));
                        }
                        out
                    };
                    Arith {
                        own: diff(&limb.own),
                        next: diff(&limb.next),
                    }
                })
                .collect();
            let less = self.lex_negative(&differences, &widths)?;
            let less = self.reveal_bits(&less)?;
            let mut next_segments = Vec::new();
            let mut offset = 0;
            let mut sample_offset = partitioned;
            let mut destination: Vec<u32> = Vec::new();
            for (&(start, len), sample) in segments.iter().zip(&samples) {
                let outcomes = &less[offset..offset + len - 1];
                offset += len - 1;
                let below = outcomes.iter().filter(|&&b| b).count();
                // Stable partition of the segment: rows below the pivot, the
                // pivot, rows above; computed once, applied to `order` and
                // every limb component.
                destination.clear();
                destination.push(below as u32);
                let (mut low, mut high) = (0u32, below as u32 + 1);
                for &b in outcomes {
                    let slot = if b { &mut low } else { &mut high };
                    destination.push(*slot);
                    *slot += 1;
                }
                for limb in limbs.iter_mut() {
                    for values in [&mut limb.own, &mut limb.next] {
                        let segment = &mut values[start..start + len];
                        scratch.clear();
                        scratch.resize(len, 0);
                        for (v, &d) in segment.iter().zip(&destination) {
                            scratch[d as usize] = *v;
                        }
                        segment.copy_from_slice(&scratch);
                    }
                }
                let rows = &mut order[start..start + len];
                scratch_order.clear();
                scratch_order.resize(len, 0);
                for (v, &d) in rows.iter().zip(&destination) {
                    scratch_order[d as usize] = *v;
                }
                rows.copy_from_slice(&scratch_order);
                let above = len - 1 - below;
                if let Some(at) = sample {
                    let sample_less = &less[sample_offset..sample_offset + pairs.len()];
                    sample_offset += pairs.len();
                    // Where each sample row went, and on which side.
                    let moved: [(usize, bool); LOOKAHEAD] = std::array::from_fn(|i| {
                        let local = at[i] - start;
                        (start + destination[local] as usize, outcomes[local - 1])
                    });
                    for (side, front, part_len) in
                        [(true, start, below), (false, start + below + 1, above)]
                    {
                        if part_len < 2 {
                            continue;
                        }
                        let members: Vec<usize> =
                            (0..LOOKAHEAD).filter(|&i| moved[i].1 == side).collect();
                        if let Some(median) = median_of(&members, &pairs, sample_less) {
                            let row = moved[median].0;
                            for limb in limbs.iter_mut() {
                                limb.own.swap(front, row);
                                limb.next.swap(front, row);
                            }
                            order.swap(front, row);
                        }
                    }
                }
                if below >= 2 {
                    next_segments.push((start, below));
                }
                if above >= 2 {
                    next_segments.push((start + below + 1, above));
                }
            }
            segments = next_segments;
        }
        if self.transcript().is_some() {
            self.record(Event::RevealedPermutation(order.clone()));
        }
        Ok(payload_shuffled.iter().map(|c| c.gather(&order)).collect())
    }

    /// Moves the median of a sample of each long segment to its front, to
    /// serve as the pivot: quicksort then needs about 1.1 n log2 n
    /// comparisons instead of 1.39 n log2 n. The rows were shuffled, so a
    /// sample at fixed positions is a random one; comparing them reveals
    /// only more of the same uniformly random order the sort opens anyway,
    /// and which rows are compared depends only on earlier outcomes. All
    /// segments' sample comparisons form one batch.
    fn choose_pivots(
        &mut self,
        limbs: &mut [Arith],
        order: &mut [u32],
        segments: &[(usize, usize)],
        widths: &[u32],
    ) -> Result<(), Error> {
        // Spread-out positions: earlier samples end up at the heads of the
        // partitions they fall in, so a sample of the head would be biased.
        let chosen: Vec<[usize; SAMPLE]> = segments
            .iter()
            .filter(|&&(_, len)| len >= SAMPLE_FROM)
            .map(|&(start, len)| std::array::from_fn(|i| start + (2 * i + 1) * len / (2 * SAMPLE)))
            .collect();
        if chosen.is_empty() {
            return Ok(());
        }
        let pairs: Vec<(usize, usize)> = (0..SAMPLE)
            .flat_map(|a| (a + 1..SAMPLE).map(move |b| (a, b)))
            .collect();
        let differences: Vec<Arith> = limbs
            .iter()
            .map(|limb| {
                let diff = |v: &[u64]| -> Vec<u64> {
                    let mut out = Vec::with_capacity(chosen.len() * pairs.len());
                    for at in &chosen {
                        out.extend(pairs.iter().map(|&(a, b)| v[at[a]].wrapping_sub(v[at[b]])));
                    }
                    out
                };
                Arith {
                    own: diff(&limb.own),
                    next: diff(&limb.next),
                }
            })
            .collect();
        let less = self.lex_negative(&differences, widths)?;
        let less = self.reveal_bits(&less)?;
        for ((k, at), &(start, _)) in chosen
            .iter()
            .enumerate()
            .zip(segments.iter().filter(|&&(_, len)| len >= SAMPLE_FROM))
        {
            let outcomes = &less[k * pairs.len()..(k + 1) * pairs.len()];
            let mut below = [0usize; SAMPLE];
            for (&(a, b), &a_less) in pairs.iter().zip(outcomes) {
                below[if a_less { b } else { a }] += 1;
            }
            let median = at[below.iter().position(|&r| r == SAMPLE / 2).unwrap_or(0)];
            for limb in limbs.iter_mut() {
                limb.own.swap(start, median);
                limb.next.swap(start, median);
            }
            order.swap(start, median);
        }
        Ok(())
    }

    /// Lexicographic `a < b` over limbs (most significant first), given the
    /// limb differences `d_l = a_l - b_l`, each below `2^width_l` in absolute
    /// value. With `s_L = 0`, `s_l = sign(d_l - s_{l+1})` is the sign of the
    /// whole difference from limb `l` down (the lower limbs can only borrow
    /// one); each `s_l` is bit `width_l` of `u + (v - 1) + !s_{l+1}`, a
    /// carry-in to the limb's generate/propagate tree. All trees run side by
    /// side with one input message; chaining costs one AND round per extra
    /// limb.
    pub(crate) fn lex_negative(
        &mut self,
        differences: &[Arith],
        widths: &[u32],
    ) -> Result<Bits, Error> {
        let n = differences.first().map(Arith::len).unwrap_or(0);
        let last = widths.len() - 1;
        let adjust_last = [Adjust::Plain];
        let adjust_chained = [Adjust::MinusOne];
        let requests: Vec<SummandRequest<'_>> = differences
            .iter()
            .zip(widths)
            .enumerate()
            .map(|(l, (d, &width))| SummandRequest {
                own: &d.own,
                next: &d.next,
                planes: width as usize + 1,
                adjust: if l == last {
                    &adjust_last
                } else {
                    &adjust_chained
                },
            })
            .collect();
        let summands = self.summands(&requests)?;
        let mut circuits: Vec<SignCircuit> = summands
            .into_iter()
            .zip(widths)
            .enumerate()
            .map(|(l, ((u, mut vs), &width))| {
                let v = vs.pop().unwrap_or_default();
                if l == last {
                    SignCircuit::new(u, v, width as usize)
                } else {
                    SignCircuit::with_carry_in(u, v, width as usize)
                }
            })
            .collect();
        {
            let mut refs: Vec<&mut dyn Circuit> =
                circuits.iter_mut().map(|c| c as &mut dyn Circuit).collect();
            self.run_circuits(&mut refs)?;
        }
        let id = self.id();
        let all = crate::bits::ones(n);
        let mut sign = circuits[last].output();
        for circuit in circuits[..last].iter().rev() {
            let (top, generate, propagate) = circuit.generate_propagate();
            let mut carry_in = sign;
            carry_in.xor_public(id, &all);
            let (own, next) = self.and_words(&[(
                &propagate.own,
                &propagate.next,
                &carry_in.own,
                &carry_in.next,
            )])?;
            sign = top.xor(&generate).xor(&Plane { own, next });
        }
        let mut bits = Bits {
            len: n,
            own: sign.own,
            next: sign.next,
        };
        bits.clear_tail();
        Ok(bits)
    }

    fn radix_sort(&mut self, key: &SortKey, payload: &[&Arith]) -> Result<Vec<Arith>, Error> {
        let n = key.len();
        let id = self.id();
        let mut words: Vec<XorWords> = Vec::with_capacity(key.limbs.len());
        for (limb, &width) in key.limbs.iter().zip(&key.widths) {
            words.push(self.a2b(limb, width)?);
        }
        let positions: Vec<u64> = (0..n as u64).collect();
        let mut origin = self.public(&positions);
        let passes: Vec<(usize, u32)> = key
            .widths
            .iter()
            .enumerate()
            .rev()
            .flat_map(|(l, &w)| (0..w).map(move |bit| (l, bit)))
            .collect();
        for (pass, &(limb, bit)) in passes.iter().enumerate() {
            let b = self.inject(&words[limb].bit(bit))?;
            let zeros_flag = b.neg().add_public(id, 1);
            let zeros = self.prefix_sum(&zeros_flag);
            let ones = self.prefix_sum(&b);
            let total_zeros = zeros.broadcast(n - 1, n);
            let offset = total_zeros.add(&ones)?.sub(&zeros)?;
            let moved = self.mul(&b, &offset)?;
            let destination = zeros.add_public(id, u64::MAX).add(&moved)?;
            // Key words still needed: this limb (if bits remain) and the
            // more significant ones.
            let remaining = if pass + 1 == passes.len() {
                0
            } else if bit + 1 < key.widths[limb] {
                limb + 1
            } else {
                limb
            };
            let word_refs: Vec<&XorWords> = words[..remaining].iter().collect();
            let (arith, xor) = self.shuffle(&[&destination, &origin], &word_refs)?;
            let perm = self.reveal_permutation(&arith[0], "radix sort")?;
            origin = scatter_arith(&arith[1], &perm);
            for (w, shuffled) in words.iter_mut().zip(xor) {
                *w = XorWords {
                    own: scatter(&shuffled.own, &perm),
                    next: scatter(&shuffled.next, &perm),
                };
            }
        }
        self.apply_inverse(&origin, payload)
    }

    /// Given `origin[k]`, the input row that belongs at position `k`,
    /// moves every payload column accordingly: two shuffle-and-open rounds,
    /// the payload moving once.
    pub(crate) fn apply_inverse(
        &mut self,
        origin: &Arith,
        payload: &[&Arith],
    ) -> Result<Vec<Arith>, Error> {
        let n = origin.len();
        let positions: Vec<u64> = (0..n as u64).collect();
        let position = self.public(&positions);
        let (pair, _) = self.shuffle(&[origin, &position], &[])?;
        let perm = self.reveal_permutation(&pair[0], "sort inverse")?;
        let destination = scatter_arith(&pair[1], &perm);
        let mut columns: Vec<&Arith> = vec![&destination];
        columns.extend(payload.iter().copied());
        let (shuffled, _) = self.shuffle(&columns, &[])?;
        let perm = self.reveal_permutation(&shuffled[0], "sort apply")?;
        Ok(shuffled[1..]
            .iter()
            .map(|c| scatter_arith(c, &perm))
            .collect())
    }
}

fn scatter_arith(x: &Arith, perm: &[u32]) -> Arith {
    Arith {
        own: scatter(&x.own, perm),
        next: scatter(&x.next, perm),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_bits_cover_positions() {
        assert_eq!(index_bits(0), 1);
        assert_eq!(index_bits(2), 1);
        assert_eq!(index_bits(3), 2);
        assert_eq!(index_bits(4), 2);
        assert_eq!(index_bits(5), 3);
        assert_eq!(index_bits(1 << 20), 20);
        assert_eq!(index_bits((1 << 20) + 1), 21);
    }
}
