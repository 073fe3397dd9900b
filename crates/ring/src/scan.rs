//! Prefix sums (local) and the segmented copy-forward scan.
//!
//! Copy-forward scans under the segmented copy operator
//! `(f1, v1) . (f2, v2) = (f1 OR f2, f2 ? v2 : v1)`: one product for the
//! flag (`f1 + f2 - f1 f2`) and one per column (`v1 + f2 (v2 - v1)`), both
//! in the same round. A Hillis-Steele scan of all `n` rows would multiply
//! about `n log2 n` elements per column. Instead rows are paired into
//! blocks for a few levels (the up-sweep of a Brent-Kung scan, under `n`
//! products per column in all), Hillis-Steele scans the short column of
//! block aggregates, and a down-sweep hands each block's prefix back down
//! (under `n` more). Every level is one round with one message carrying all
//! columns and the flags.

use std::borrow::Cow;

use rayon::prelude::*;

use crate::arith::ProductOperands;
use crate::error::Error;
use crate::session::Session;
use crate::share::Arith;
use crate::transport::Transport;

const MIN_LEN: usize = 4096;

fn prefix(values: &[u64]) -> Vec<u64> {
    let mut acc = 0u64;
    values
        .iter()
        .map(|v| {
            acc = acc.wrapping_add(*v);
            acc
        })
        .collect()
}

fn ceil_log2(n: usize) -> u32 {
    if n <= 1 {
        0
    } else {
        usize::BITS - (n - 1).leading_zeros()
    }
}

/// Applies `f` to the same component of every operand, for both components.
fn componentwise<const K: usize>(
    operands: [&Arith; K],
    f: impl Fn([&[u64]; K]) -> Vec<u64>,
) -> Arith {
    let [own, next] =
        [false, true].map(|next| f(operands.map(|x| if next { &x.next[..] } else { &x.own[..] })));
    Arith { own, next }
}

/// `f(v[2k], v[2k + 1])` for every whole pair; an odd last row is left out.
fn pairwise(v: &[u64], f: impl Fn(u64, u64) -> u64 + Sync + Send) -> Vec<u64> {
    v.par_chunks_exact(2)
        .with_min_len(MIN_LEN)
        .map(|p| f(p[0], p[1]))
        .collect()
}

/// `f(v[2k], v[2k + 1], p[k])` for every whole pair.
fn pairwise_with(v: &[u64], p: &[u64], f: impl Fn(u64, u64, u64) -> u64 + Sync + Send) -> Vec<u64> {
    v.par_chunks_exact(2)
        .zip(p)
        .with_min_len(MIN_LEN)
        .map(|(v, p)| f(v[0], v[1], *p))
        .collect()
}

/// Rows `2k + 2` of `v`, the blocks the down-sweep combines with the prefix
/// before them.
fn even_after_first(v: &[u64]) -> &[u64] {
    v.get(1..).unwrap_or_default()
}

fn operands<'a>(x: &'a Arith, y: &'a Arith) -> ProductOperands<'a> {
    ((&x.own, &x.next), (&y.own, &y.next))
}

/// One level of the block tree: row `k` of level `t` aggregates rows
/// `k 2^t .. (k + 1) 2^t` of the input (flag: does a segment start in the
/// block; value: the last started segment's, else the block's first row's).
struct Level<'a> {
    flags: Cow<'a, Arith>,
    columns: Vec<Cow<'a, Arith>>,
}

impl<T: Transport> Session<T> {
    /// Inclusive prefix sums: element `i` becomes `x_0 + ... + x_i`. Local.
    pub fn prefix_sum(&self, x: &Arith) -> Arith {
        Arith {
            own: prefix(&x.own),
            next: prefix(&x.next),
        }
    }

    /// Segmented copy-forward: `starts` holds shares of 0/1 flags marking
    /// the first row of each segment (row 0 always starts one); every row
    /// gets the value of its segment's first row, for every column of
    /// `values`. Neither the flags nor the segment sizes are revealed.
    ///
    /// Costs about `2.4 n` products per column plus `1.4 n` for the flags at
    /// a million rows, in about `log2 n + log2 log2 n` rounds (25 there),
    /// one message each.
    pub fn copy_forward(&mut self, starts: &Arith, values: &[&Arith]) -> Result<Vec<Arith>, Error> {
        let n = starts.len();
        for v in values {
            if v.len() != n {
                return Err(Error::LengthMismatch {
                    op: "copy_forward",
                    left: n,
                    right: v.len(),
                });
            }
        }
        if values.is_empty() {
            return Ok(Vec::new());
        }
        // With 2^levels >= log2 n the Hillis-Steele stage sees at most
        // n / log2 n blocks, so it too multiplies at most n elements per
        // column. Each level adds a round (one up, one down, one fewer for
        // Hillis-Steele): fewer levels would cost bytes, more would cost
        // rounds.
        let levels = ceil_log2(ceil_log2(n) as usize) as usize;
        let mut tree = vec![Level {
            flags: Cow::Borrowed(starts),
            columns: values.iter().map(|v| Cow::Borrowed(*v)).collect(),
        }];
        while tree.len() <= levels && tree[tree.len() - 1].flags.len() >= 2 {
            let up = self.pair_up(&tree[tree.len() - 1])?;
            tree.push(up);
        }
        let top = tree
            .pop()
            .unwrap_or_else(|| unreachable!("the input level"));
        let mut prefixes = self.hillis_steele(
            top.flags.into_owned(),
            top.columns.into_iter().map(Cow::into_owned).collect(),
        )?;
        for level in tree.iter().rev() {
            prefixes = self.hand_down(level, &prefixes)?;
        }
        Ok(prefixes)
    }

    /// Up-sweep: combines rows `2k` and `2k + 1` of `level` into row `k` of
    /// the next level (an odd last row is covered by the down-sweep).
    fn pair_up(&mut self, level: &Level<'_>) -> Result<Level<'static>, Error> {
        let (left_flags, right_flags, diffs) = self.install(|| {
            let left = componentwise([&level.flags], |[f]| pairwise(f, |l, _| l));
            let right = componentwise([&level.flags], |[f]| pairwise(f, |_, r| r));
            let diffs: Vec<Arith> = level
                .columns
                .iter()
                .map(|c| componentwise([c], |[v]| pairwise(v, |l, r| r.wrapping_sub(l))))
                .collect();
            (left, right, diffs)
        });
        let mut products = vec![operands(&left_flags, &right_flags)];
        products.extend(diffs.iter().map(|d| operands(&right_flags, d)));
        let products = self.mul_slices(&products)?;
        Ok(self.install(|| {
            let flags = componentwise([&level.flags, &products[0]], |[f, p]| {
                pairwise_with(f, p, |l, r, p| l.wrapping_add(r).wrapping_sub(p))
            });
            let columns = level
                .columns
                .iter()
                .zip(&products[1..])
                .map(|(c, p)| {
                    let up = componentwise([c, p], |[v, p]| {
                        pairwise_with(v, p, |l, _, p| l.wrapping_add(p))
                    });
                    Cow::Owned(up)
                })
                .collect();
            Level {
                flags: Cow::Owned(flags),
                columns,
            }
        }))
    }

    /// Down-sweep: from the inclusive prefixes of the blocks one level up,
    /// those of `level`'s rows. Row `2k + 1` ends where block `k` above
    /// does; row `2k + 2` combines that prefix with its own aggregate; row
    /// 0's aggregate is its prefix. Only values: no later combine has a
    /// prefix on its right, so the prefixes' flags are never needed.
    fn hand_down(&mut self, level: &Level<'_>, above: &[Arith]) -> Result<Vec<Arith>, Error> {
        let (flags, diffs) = self.install(|| {
            let flags = componentwise([&level.flags], |[f]| {
                pairwise(even_after_first(f), |_, r| r)
            });
            let diffs: Vec<Arith> = level
                .columns
                .iter()
                .zip(above)
                .map(|(c, a)| {
                    componentwise([c, a], |[v, a]| {
                        pairwise_with(even_after_first(v), a, |_, r, a| r.wrapping_sub(a))
                    })
                })
                .collect();
            (flags, diffs)
        });
        let products = if flags.is_empty() {
            // A level of two rows has nothing to combine; all parties know
            // the length, so all skip the round.
            vec![Arith::default(); diffs.len()]
        } else {
            let pairs: Vec<ProductOperands<'_>> =
                diffs.iter().map(|d| operands(&flags, d)).collect();
            self.mul_slices(&pairs)?
        };
        Ok(self.install(|| {
            level
                .columns
                .iter()
                .zip(above)
                .zip(&products)
                .map(|((c, a), p)| {
                    componentwise([c, a, p], |[v, a, p]| {
                        let mut out = vec![0u64; v.len()];
                        out[0] = v[0];
                        out[1..]
                            .par_chunks_mut(2)
                            .zip(a)
                            .enumerate()
                            .with_min_len(MIN_LEN)
                            .for_each(|(k, (o, a))| {
                                o[0] = *a;
                                if let Some(o) = o.get_mut(1) {
                                    *o = a.wrapping_add(p[k]);
                                }
                            });
                        out
                    })
                })
                .collect()
        }))
    }

    /// Inclusive segmented scan in `ceil(log2 n)` rounds and `n log2 n`
    /// products per column: only for the short column of block aggregates.
    fn hillis_steele(
        &mut self,
        mut flags: Arith,
        mut columns: Vec<Arith>,
    ) -> Result<Vec<Arith>, Error> {
        let n = flags.len();
        let mut distance = 1;
        while distance < n {
            let m = n - distance;
            // The flags only feed later rounds.
            let last = 2 * distance >= n;
            // Row i (>= distance) combines with row i - distance:
            // value_i = value_{i-d} + f_i (value_i - value_{i-d}),
            // f_i = f_i + f_{i-d} - f_i f_{i-d}.
            let diffs: Vec<Arith> = columns
                .iter()
                .map(|c| {
                    componentwise([c], |[v]| {
                        v[distance..]
                            .iter()
                            .zip(&v[..m])
                            .map(|(hi, lo)| hi.wrapping_sub(*lo))
                            .collect()
                    })
                })
                .collect();
            let f_hi = (&flags.own[distance..], &flags.next[distance..]);
            let f_lo = (&flags.own[..m], &flags.next[..m]);
            let mut pairs: Vec<ProductOperands<'_>> = Vec::with_capacity(columns.len() + 1);
            if !last {
                pairs.push((f_hi, f_lo));
            }
            pairs.extend(diffs.iter().map(|d| (f_hi, (&d.own[..], &d.next[..]))));
            let mut products = self.mul_slices(&pairs)?;
            if !last {
                let p = products.remove(0);
                // Top down: row i reads row i - distance, which must still
                // hold the previous round's value.
                let update_or = |v: &mut [u64], p: &[u64]| {
                    for i in (distance..n).rev() {
                        v[i] = v[i]
                            .wrapping_add(v[i - distance])
                            .wrapping_sub(p[i - distance]);
                    }
                };
                update_or(&mut flags.own, &p.own);
                update_or(&mut flags.next, &p.next);
            }
            let update_value = |v: &mut [u64], p: &[u64]| {
                for i in (distance..n).rev() {
                    v[i] = v[i - distance].wrapping_add(p[i - distance]);
                }
            };
            for (column, product) in columns.iter_mut().zip(&products) {
                update_value(&mut column.own, &product.own);
                update_value(&mut column.next, &product.next);
            }
            distance *= 2;
        }
        Ok(columns)
    }
}
