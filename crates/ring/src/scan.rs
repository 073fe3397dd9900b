//! Prefix sums (local) and the segmented copy-forward scan (Hillis-Steele:
//! `ceil(log2 n)` rounds, all columns and the flags in one message per
//! round).

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
            let f_hi = flags.slice(distance..n);
            let f_lo = flags.slice(0..m);
            let diffs: Vec<(Arith, Arith)> = columns
                .iter()
                .map(|c| {
                    let lo = c.slice(0..m);
                    let hi = c.slice(distance..n);
                    let diff = hi.sub(&lo)?;
                    Ok((lo, diff))
                })
                .collect::<Result<_, Error>>()?;
            let mut pairs: Vec<(&Arith, &Arith)> = vec![(&f_hi, &f_lo)];
            pairs.extend(diffs.iter().map(|(_, diff)| (&f_hi, diff)));
            let products = self.mul_many(&pairs)?;
            let or = f_hi.add(&f_lo)?.sub(&products[0])?;
            flags.own[distance..].copy_from_slice(&or.own);
            flags.next[distance..].copy_from_slice(&or.next);
            for ((column, (lo, _)), product) in columns.iter_mut().zip(&diffs).zip(&products[1..]) {
                let updated = lo.add(product)?;
                column.own[distance..].copy_from_slice(&updated.own);
                column.next[distance..].copy_from_slice(&updated.next);
            }
            distance *= 2;
        }
        Ok(columns)
    }
}
