//! Oblivious shuffle by three re-sharings (Asharov, Hamada, Ikarashi,
//! Kikuchi, Nof, Pinkas et al., CCS 2022, section 4): for each pair of
//! parties, the pair turns the replicated shares into two additive shares,
//! both permute them by a permutation only the pair knows, re-mask, and the
//! third party's new components come from keys it shares with each of them.
//! The composition of the three permutations is unknown to every single
//! party. One round per pair, two elements per party per column per pair
//! it takes part in; all columns move with one permutation and one message.

use crate::error::Error;
use crate::party::PartyId;
use crate::session::{Event, Session};
use crate::share::{Arith, XorWords};
use crate::transport::Transport;

/// Moves row `r` to position `perm[r]`.
pub(crate) fn scatter(values: &[u64], perm: &[u32]) -> Vec<u64> {
    let mut out = vec![0u64; values.len()];
    for (v, &p) in values.iter().zip(perm) {
        out[p as usize] = *v;
    }
    out
}

/// Checks that `values` is a permutation of `0..len` and returns it.
pub(crate) fn as_permutation(op: &'static str, values: &[u64]) -> Result<Vec<u32>, Error> {
    let n = values.len();
    let mut seen = vec![false; n];
    let mut perm = Vec::with_capacity(n);
    for &v in values {
        let slot = seen
            .get_mut(v as usize)
            .filter(|s| !**s && v < n as u64)
            .ok_or(Error::NotPermutation { op, len: n })?;
        *slot = true;
        perm.push(v as u32);
    }
    Ok(perm)
}

#[derive(Clone, Copy)]
enum Group {
    Add,
    Xor,
}

impl Group {
    fn combine(self, a: u64, b: u64) -> u64 {
        match self {
            Group::Add => a.wrapping_add(b),
            Group::Xor => a ^ b,
        }
    }

    fn remove(self, a: u64, b: u64) -> u64 {
        match self {
            Group::Add => a.wrapping_sub(b),
            Group::Xor => a ^ b,
        }
    }
}

impl<T: Transport> Session<T> {
    /// Shuffles all given columns (of one length) by one fresh random
    /// permutation that no party learns.
    pub fn shuffle(
        &mut self,
        arith: &[&Arith],
        xor: &[&XorWords],
    ) -> Result<(Vec<Arith>, Vec<XorWords>), Error> {
        let n = arith
            .first()
            .map(|c| c.len())
            .or(xor.first().map(|c| c.len()))
            .unwrap_or(0);
        let mut columns: Vec<(Group, Vec<u64>, Vec<u64>)> = Vec::new();
        for c in arith {
            if c.len() != n {
                return Err(Error::LengthMismatch {
                    op: "shuffle",
                    left: n,
                    right: c.len(),
                });
            }
            columns.push((Group::Add, c.own.clone(), c.next.clone()));
        }
        for c in xor {
            if c.len() != n {
                return Err(Error::LengthMismatch {
                    op: "shuffle",
                    left: n,
                    right: c.len(),
                });
            }
            columns.push((Group::Xor, c.own.clone(), c.next.clone()));
        }
        for first in PartyId::ALL {
            self.reshuffle(first, &mut columns, n)?;
        }
        let mut arith_out = Vec::with_capacity(arith.len());
        let mut xor_out = Vec::with_capacity(xor.len());
        for (group, own, next) in columns {
            match group {
                Group::Add => arith_out.push(Arith { own, next }),
                Group::Xor => xor_out.push(XorWords { own, next }),
            }
        }
        Ok((arith_out, xor_out))
    }

    /// One re-sharing: parties `first` and `first + 1` permute. Columns are
    /// updated in place; each column's masks come from its own PRG stream.
    fn reshuffle(
        &mut self,
        first: PartyId,
        columns: &mut [(Group, Vec<u64>, Vec<u64>)],
        n: usize,
    ) -> Result<(), Error> {
        let mask_streams: Vec<u64> = columns.iter().map(|_| self.next_step()).collect();
        let perm_stream = self.next_step();
        let step = self.next_step();
        let id = self.id();
        if id != first && id != first.next() {
            // The third party's new components are its two keystreams.
            for ((_, own, next), &stream) in columns.iter_mut().zip(&mask_streams) {
                self.random_own(stream, own);
                self.random_next(stream, next);
            }
            return Ok(());
        }
        let is_first = id == first;
        // Scatter rather than gather: random writes retire through the store
        // buffer, random reads stall on every cache miss.
        let order = self.pair_permutation(perm_stream, n, is_first);
        let mut destination = vec![0u32; n];
        for (k, &row) in order.iter().enumerate() {
            destination[row as usize] = k as u32;
        }
        let mut outgoing = vec![0u64; n * columns.len()];
        for (c, (group, own, next)) in columns.iter_mut().enumerate() {
            let out = &mut outgoing[c * n..(c + 1) * n];
            // `first` holds x_j + x_{j+1}; its partner holds x_{j+2}.
            if is_first {
                for ((a, b), &d) in own.iter().zip(next.iter()).zip(&destination) {
                    out[d as usize] = group.combine(*a, *b);
                }
            } else {
                for (b, &d) in next.iter().zip(&destination) {
                    out[d as usize] = *b;
                }
            }
            // Re-mask with the component shared with the third party; it
            // becomes this party's kept component.
            let kept = if is_first { own } else { next };
            if is_first {
                self.random_own(mask_streams[c], kept);
            } else {
                self.random_next(mask_streams[c], kept);
            }
            out.iter_mut()
                .zip(kept.iter())
                .for_each(|(o, m)| *o = group.remove(*o, *m));
        }
        let partner = if is_first { id.next() } else { id.prev() };
        self.send(partner, step, &outgoing)?;
        let incoming = self.recv(partner, step, outgoing.len())?;
        for (c, (group, own, next)) in columns.iter_mut().enumerate() {
            let middle = if is_first { next } else { own };
            let range = c * n..(c + 1) * n;
            middle
                .iter_mut()
                .zip(&outgoing[range.clone()])
                .zip(&incoming[range])
                .for_each(|((m, a), b)| *m = group.combine(*a, *b));
        }
        Ok(())
    }

    /// Opens a column that must be a permutation of `0..n` (it was shuffled
    /// by a fresh uniform permutation, so the opened value is uniform and
    /// reveals nothing) and checks it.
    pub(crate) fn reveal_permutation(
        &mut self,
        x: &Arith,
        op: &'static str,
    ) -> Result<Vec<u32>, Error> {
        let values = self.reveal(x)?;
        let perm = as_permutation(op, &values)?;
        if self.transcript().is_some() {
            self.record(Event::RevealedPermutation(perm.clone()));
        }
        Ok(perm)
    }
}
