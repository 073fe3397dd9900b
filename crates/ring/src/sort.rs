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

use crate::circuit::{AndTree, SignCircuit};
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

        let mut order: Vec<u32> = (0..n as u32).collect();
        // Unsorted ranges of `order` with at least two rows.
        let mut segments: Vec<(usize, usize)> = vec![(0, n)];
        while !segments.is_empty() {
            let mut elements = Vec::new();
            let mut pivots = Vec::new();
            for &(start, len) in &segments {
                let pivot = order[start];
                for &row in &order[start + 1..start + len] {
                    elements.push(row);
                    pivots.push(pivot);
                }
            }
            let differences: Vec<Arith> = limbs
                .iter()
                .map(|l| gather_difference(l, &elements, &pivots))
                .collect();
            let less = self.lex_negative(&differences, &widths)?;
            let less = self.reveal_bits(&less)?;
            let mut outcome = less.into_iter();
            let mut next_segments = Vec::new();
            for &(start, len) in &segments {
                let pivot = order[start];
                let mut below = Vec::with_capacity(len);
                let mut above = Vec::with_capacity(len);
                for &row in &order[start + 1..start + len] {
                    if outcome.next().unwrap_or(false) {
                        below.push(row);
                    } else {
                        above.push(row);
                    }
                }
                let (nb, na) = (below.len(), above.len());
                let range = &mut order[start..start + len];
                range[..nb].copy_from_slice(&below);
                range[nb] = pivot;
                range[nb + 1..].copy_from_slice(&above);
                if nb >= 2 {
                    next_segments.push((start, nb));
                }
                if na >= 2 {
                    next_segments.push((start + nb + 1, na));
                }
            }
            segments = next_segments;
        }
        if self.transcript().is_some() {
            self.record(Event::RevealedPermutation(order.clone()));
        }
        Ok(payload_shuffled.iter().map(|c| c.gather(&order)).collect())
    }

    /// Lexicographic `a < b` over limbs (most significant first), given the
    /// limb differences `a - b`, each below `2^width` in absolute value.
    /// Sign and equality circuits of all limbs share rounds; then one AND
    /// per extra limb.
    pub(crate) fn lex_negative(
        &mut self,
        differences: &[Arith],
        widths: &[u32],
    ) -> Result<Bits, Error> {
        let n = differences.first().map(Arith::len).unwrap_or(0);
        let last = widths.len() - 1;
        let mut signs = Vec::new();
        let mut equals = Vec::new();
        for (l, &width) in widths.iter().enumerate() {
            let d = &differences[l];
            let negate: &[bool] = if l < last { &[false, true] } else { &[false] };
            let (u, mut vs) = self.summand_planes(&d.own, &d.next, width as usize + 1, negate)?;
            if l < last {
                let neg_v = vs.pop().unwrap_or_default();
                equals.push(AndTree::new(self.equal_planes(&u, &neg_v, n)));
            }
            signs.push(SignCircuit::new(
                u,
                vs.pop().unwrap_or_default(),
                width as usize,
            ));
        }
        {
            let mut circuits: Vec<&mut dyn crate::circuit::Circuit> = Vec::new();
            for s in signs.iter_mut() {
                circuits.push(s);
            }
            for e in equals.iter_mut() {
                circuits.push(e);
            }
            self.run_circuits(&mut circuits)?;
        }
        let to_bits = |p: crate::circuit::Plane| {
            let mut b = Bits {
                len: n,
                own: p.own,
                next: p.next,
            };
            b.clear_tail();
            b
        };
        let mut result = to_bits(signs[last].output());
        for l in (0..last).rev() {
            let eq = to_bits(equals[l].output());
            let carried = self.and(&eq, &result)?;
            result = to_bits(signs[l].output()).xor(&carried)?;
        }
        Ok(result)
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

/// `x[elements[k]] - x[pivots[k]]` for every `k`, in one pass.
fn gather_difference(x: &Arith, elements: &[u32], pivots: &[u32]) -> Arith {
    let diff = |v: &[u64]| -> Vec<u64> {
        elements
            .iter()
            .zip(pivots)
            .map(|(&e, &p)| v[e as usize].wrapping_sub(v[p as usize]))
            .collect()
    };
    Arith {
        own: diff(&x.own),
        next: diff(&x.next),
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
