//! Prefix sums (local) and the segmented copy-forward scan (Hillis-Steele:
//! `ceil(log2 n)` rounds, all columns and the flags in one message per
//! round).

use crate::arith::ProductOperands;
use crate::error::Error;
use crate::session::Session;
use crate::share::Arith;
use crate::transport::Transport;

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
        let mut flags = starts.clone();
        let mut columns: Vec<Arith> = values.iter().map(|v| (*v).clone()).collect();
        let mut distance = 1;
        while distance < n {
            let m = n - distance;
            // Row i (>= distance) combines with row i - distance:
            // value_i = value_{i-d} + f_i (value_i - value_{i-d}),
            // f_i = f_i + f_{i-d} - f_i f_{i-d}.
            let diffs: Vec<(Vec<u64>, Vec<u64>)> = columns
                .iter()
                .map(|c| {
                    let diff = |v: &[u64]| -> Vec<u64> {
                        v[distance..]
                            .iter()
                            .zip(&v[..m])
                            .map(|(hi, lo)| hi.wrapping_sub(*lo))
                            .collect()
                    };
                    (diff(&c.own), diff(&c.next))
                })
                .collect();
            let f_hi = (&flags.own[distance..], &flags.next[distance..]);
            let f_lo = (&flags.own[..m], &flags.next[..m]);
            let mut pairs: Vec<ProductOperands<'_>> = vec![(f_hi, f_lo)];
            pairs.extend(diffs.iter().map(|(o, x)| (f_hi, (&o[..], &x[..]))));
            let products = self.mul_slices(&pairs)?;
            // Update from the top down: row i reads row i - distance, which
            // must still hold the previous level's value.
            let update_or = |v: &mut [u64], p: &[u64]| {
                for i in (distance..n).rev() {
                    v[i] = v[i]
                        .wrapping_add(v[i - distance])
                        .wrapping_sub(p[i - distance]);
                }
            };
            update_or(&mut flags.own, &products[0].own);
            update_or(&mut flags.next, &products[0].next);
            let update_value = |v: &mut [u64], p: &[u64]| {
                for i in (distance..n).rev() {
                    v[i] = v[i - distance].wrapping_add(p[i - distance]);
                }
            };
            for (column, product) in columns.iter_mut().zip(&products[1..]) {
                update_value(&mut column.own, &product.own);
                update_value(&mut column.next, &product.next);
            }
            distance *= 2;
        }
        Ok(columns)
    }
}
