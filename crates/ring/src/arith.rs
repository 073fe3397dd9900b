//! Arithmetic protocols: input, reveal, multiplication and inner products
//! (Araki, Furukawa, Lindell, Nof, Ohara, CCS 2016, section 2: each party
//! computes its three cross terms plus a zero share and sends one element
//! to its previous party; one round, one element per party per product).

use rayon::prelude::*;

use crate::error::Error;
use crate::party::PartyId;
use crate::session::Session;
use crate::share::Arith;
use crate::transport::Transport;

const MIN_LEN: usize = 4096;

/// Component slices `((x_own, x_next), (y_own, y_next))` of one product.
pub(crate) type ProductOperands<'a> = ((&'a [u64], &'a [u64]), (&'a [u64], &'a [u64]));

impl<T: Transport> Session<T> {
    /// Shares of a public column.
    pub fn public(&self, values: &[u64]) -> Arith {
        Arith::public(self.id(), values)
    }

    /// Secret-shares `values`, known to `owner` only; the other parties pass
    /// `None` and the length `n`. Costs one message of `n` elements from the
    /// owner to its previous party: component `j` is `v - r`, `j+1` is `r`
    /// from the key `owner` shares with its next party, `j+2` is zero.
    pub fn input(
        &mut self,
        owner: PartyId,
        values: Option<&[u64]>,
        n: usize,
    ) -> Result<Arith, Error> {
        let stream = self.next_step();
        let step = self.next_step();
        let id = self.id();
        if id == owner {
            let values = values.ok_or(Error::LengthMismatch {
                op: "input",
                left: 0,
                right: n,
            })?;
            if values.len() != n {
                return Err(Error::LengthMismatch {
                    op: "input",
                    left: values.len(),
                    right: n,
                });
            }
            let mut r = vec![0u64; n];
            self.random_next(stream, &mut r);
            let mut masked = vec![0u64; n];
            self.send_computed(id.prev(), step, &mut masked, |offset, chunk| {
                chunk
                    .par_iter_mut()
                    .zip(values[offset..].par_iter().zip(&r[offset..]))
                    .with_min_len(MIN_LEN)
                    .for_each(|(m, (v, r))| *m = v.wrapping_sub(*r));
            })?;
            Ok(Arith {
                own: masked,
                next: r,
            })
        } else if id == owner.next() {
            let mut r = vec![0u64; n];
            self.random_own(stream, &mut r);
            Ok(Arith {
                own: r,
                next: vec![0; n],
            })
        } else {
            let masked = self.recv(owner, step, n)?;
            Ok(Arith {
                own: vec![0; n],
                next: masked,
            })
        }
    }

    /// Opens `x` to all three parties: each sends its own component to its
    /// next party. One round, one element per party per value.
    pub fn reveal(&mut self, x: &Arith) -> Result<Vec<u64>, Error> {
        let id = self.id();
        let missing = self.exchange(id.next(), &x.own, id.prev(), x.len())?;
        Ok(self.install(|| {
            x.own
                .par_iter()
                .zip(&x.next)
                .zip(&missing)
                .with_min_len(MIN_LEN)
                .map(|((a, b), c)| a.wrapping_add(*b).wrapping_add(*c))
                .collect()
        }))
    }

    /// Opens `x` to `target` only; the others get `None` and learn nothing.
    pub fn reveal_to(&mut self, x: &Arith, target: PartyId) -> Result<Option<Vec<u64>>, Error> {
        let id = self.id();
        let step = self.next_step();
        if id == target.next() {
            // Component target+2 is this party's `next`.
            self.send(target, step, &x.next)?;
            Ok(None)
        } else if id == target {
            let missing = self.recv(target.next(), step, x.len())?;
            Ok(Some(
                x.own
                    .iter()
                    .zip(&x.next)
                    .zip(&missing)
                    .map(|((a, b), c)| a.wrapping_add(*b).wrapping_add(*c))
                    .collect(),
            ))
        } else {
            Ok(None)
        }
    }

    /// Element-wise product. One round, one element per party per product.
    pub fn mul(&mut self, x: &Arith, y: &Arith) -> Result<Arith, Error> {
        let mut out = self.mul_many(&[(x, y)])?;
        Ok(out.pop().unwrap_or_default())
    }

    /// Several element-wise products in one round.
    pub fn mul_many(&mut self, pairs: &[(&Arith, &Arith)]) -> Result<Vec<Arith>, Error> {
        for (x, y) in pairs {
            if x.len() != y.len() {
                return Err(Error::LengthMismatch {
                    op: "mul",
                    left: x.len(),
                    right: y.len(),
                });
            }
        }
        let slices: Vec<ProductOperands<'_>> = pairs
            .iter()
            .map(|(x, y)| ((&x.own[..], &x.next[..]), (&y.own[..], &y.next[..])))
            .collect();
        self.mul_slices(&slices)
    }

    /// Products of component slices, one round for all; the scans use it to
    /// multiply shifted views of a column without copying them.
    pub(crate) fn mul_slices(
        &mut self,
        pairs: &[ProductOperands<'_>],
    ) -> Result<Vec<Arith>, Error> {
        let total: usize = pairs.iter().map(|(x, _)| x.0.len()).sum();
        let mut z = self.zero_share(total, false);
        let id = self.id();
        let step = self.next_step();
        // Each part is the products of a range of the concatenated pairs,
        // so the first part is on the wire while the rest are computed.
        self.send_computed(id.prev(), step, &mut z, |offset, chunk| {
            let mut start = 0;
            for ((x_own, x_next), (y_own, y_next)) in pairs {
                let len = x_own.len();
                let (lo, hi) = (offset.max(start), (offset + chunk.len()).min(start + len));
                if lo < hi {
                    let (a, b) = (lo - start, hi - start);
                    chunk[lo - offset..hi - offset]
                        .par_iter_mut()
                        .zip(x_own[a..b].par_iter().zip(&x_next[a..b]))
                        .zip(y_own[a..b].par_iter().zip(&y_next[a..b]))
                        .with_min_len(MIN_LEN)
                        .for_each(|((z, (x0, x1)), (y0, y1))| {
                            *z = z
                                .wrapping_add(x0.wrapping_mul(*y0))
                                .wrapping_add(x0.wrapping_mul(*y1))
                                .wrapping_add(x1.wrapping_mul(*y0));
                        });
                }
                start += len;
            }
        })?;
        let received = self.recv(id.next(), step, total)?;
        Ok(split_columns(
            z,
            received,
            pairs.iter().map(|(x, _)| x.0.len()),
        ))
    }

    /// `sum_k x_k * y_k` as shares of one element: one round, one element
    /// per party for the whole column.
    pub fn inner_product(&mut self, x: &Arith, y: &Arith) -> Result<Arith, Error> {
        self.inner_products(&[(x, y)])
    }

    /// Several inner products in one round: element `k` of the result is
    /// `sum_i x_k[i] * y_k[i]`. One element per pair per party.
    pub fn inner_products(&mut self, pairs: &[(&Arith, &Arith)]) -> Result<Arith, Error> {
        for (x, y) in pairs {
            if x.len() != y.len() {
                return Err(Error::LengthMismatch {
                    op: "inner_products",
                    left: x.len(),
                    right: y.len(),
                });
            }
        }
        let alpha = self.zero_share(pairs.len(), false);
        let local: Vec<u64> = self.install(|| {
            pairs
                .iter()
                .map(|(x, y)| {
                    x.own
                        .par_iter()
                        .zip(&x.next)
                        .zip(y.own.par_iter().zip(&y.next))
                        .with_min_len(MIN_LEN)
                        .map(|((x0, x1), (y0, y1))| {
                            x0.wrapping_mul(*y0)
                                .wrapping_add(x0.wrapping_mul(*y1))
                                .wrapping_add(x1.wrapping_mul(*y0))
                        })
                        .reduce(|| 0, u64::wrapping_add)
                })
                .collect()
        });
        let z: Vec<u64> = local
            .iter()
            .zip(&alpha)
            .map(|(l, a)| l.wrapping_add(*a))
            .collect();
        let id = self.id();
        let received = self.exchange(id.prev(), &z, id.next(), pairs.len())?;
        Ok(Arith {
            own: z,
            next: received,
        })
    }

    /// The sum of a column as shares of one element (local).
    pub fn sum(&self, x: &Arith) -> Arith {
        let add = |v: &[u64]| v.iter().fold(0u64, |a, b| a.wrapping_add(*b));
        Arith {
            own: vec![add(&x.own)],
            next: vec![add(&x.next)],
        }
    }
}

/// Cuts concatenated result components back into columns of the given
/// lengths; a single column takes the vectors without copying.
pub(crate) fn split_columns(
    own: Vec<u64>,
    next: Vec<u64>,
    lengths: impl ExactSizeIterator<Item = usize>,
) -> Vec<Arith> {
    if lengths.len() == 1 {
        return vec![Arith { own, next }];
    }
    let mut out = Vec::with_capacity(lengths.len());
    let mut offset = 0;
    for n in lengths {
        out.push(Arith {
            own: own[offset..offset + n].to_vec(),
            next: next[offset..offset + n].to_vec(),
        });
        offset += n;
    }
    out
}
