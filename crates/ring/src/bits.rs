//! Boolean protocols on bit-sliced shares: AND (the boolean form of the
//! replicated multiplication, one bit per party per gate), input and reveal
//! of bits, and the 64x64 transposes between one-word-per-element and
//! one-word-per-64-elements-per-bit-position layouts.

use rayon::prelude::*;

use crate::circuit::Plane;
use crate::error::Error;
use crate::party::PartyId;
use crate::session::Session;
use crate::share::{Bits, XorWords, tail_mask, words_for};
use crate::transport::Transport;

/// Transposes a 64x64 bit matrix in place: afterwards bit `c` of row `r` is
/// what bit `r` of row `c` was (recursive block swap, Hacker's Delight 7-3).
pub(crate) fn transpose64(a: &mut [u64; 64]) {
    let mut width = 32;
    let mut mask: u64 = 0x0000_0000_FFFF_FFFF;
    while width != 0 {
        let mut row = 0;
        while row < 64 {
            if row & width == 0 {
                let t = ((a[row] >> width) ^ a[row + width]) & mask;
                a[row + width] ^= t;
                a[row] ^= t << width;
            }
            row += 1;
        }
        width >>= 1;
        mask ^= mask << width;
    }
}

/// Splits one word per element into `planes` bit planes of bit-sliced words,
/// plane-major: word `k * words + w` holds bit `k` of elements
/// `64w..64w+64`, where `words = ceil(len / 64)`.
pub(crate) fn to_planes_flat(values: &[u64], planes: usize) -> Vec<u64> {
    let words = words_for(values.len());
    let mut out = vec![0u64; planes * words];
    let mut m = [0u64; 64];
    for (block, chunk) in values.chunks(64).enumerate() {
        m[..chunk.len()].copy_from_slice(chunk);
        m[chunk.len()..].fill(0);
        transpose64(&mut m);
        for (k, word) in m.iter().take(planes).enumerate() {
            out[k * words + block] = *word;
        }
    }
    out
}

/// As [`to_planes_flat`], one vector per plane.
pub(crate) fn to_planes(values: &[u64], planes: usize) -> Vec<Vec<u64>> {
    let words = words_for(values.len());
    let flat = to_planes_flat(values, planes);
    if words == 0 {
        return vec![Vec::new(); planes];
    }
    flat.chunks(words).map(<[u64]>::to_vec).collect()
}

/// Joins bit planes back into one word per element (`len` elements); planes
/// past the given ones read as zero.
pub(crate) fn from_planes(planes: &[&[u64]], len: usize) -> Vec<u64> {
    let mut out = vec![0u64; len];
    out.chunks_mut(64).enumerate().for_each(|(block, chunk)| {
        let mut m = [0u64; 64];
        for (k, plane) in planes.iter().enumerate().take(64) {
            m[k] = plane[block];
        }
        transpose64(&mut m);
        chunk.copy_from_slice(&m[..chunk.len()]);
    });
    out
}

/// One batch entry of an AND round: `(x_own, x_next, y_own, y_next)`.
pub(crate) type Gate<'a> = (&'a [u64], &'a [u64], &'a [u64], &'a [u64]);

impl<T: Transport> Session<T> {
    /// Element-wise AND. One round, one bit per party per gate.
    pub fn and(&mut self, x: &Bits, y: &Bits) -> Result<Bits, Error> {
        if x.len != y.len {
            return Err(Error::LengthMismatch {
                op: "and",
                left: x.len,
                right: y.len,
            });
        }
        let (own, next) = self.and_words(&[(&x.own, &x.next, &y.own, &y.next)])?;
        let mut out = Bits {
            len: x.len,
            own,
            next,
        };
        out.clear_tail();
        Ok(out)
    }

    /// ANDs of many word slices `(x_own, x_next, y_own, y_next)` in one
    /// round; the results come back concatenated in order.
    pub(crate) fn and_words(&mut self, gates: &[Gate<'_>]) -> Result<(Vec<u64>, Vec<u64>), Error> {
        let planes = self.and_planes(gates)?;
        if planes.len() == 1 {
            let plane = planes.into_iter().next().unwrap_or_default();
            return Ok((plane.own, plane.next));
        }
        Ok((
            planes.iter().flat_map(|p| p.own.iter().copied()).collect(),
            planes.iter().flat_map(|p| p.next.iter().copied()).collect(),
        ))
    }

    /// ANDs of many gates in one round, one output plane per gate. Each
    /// party's output component is its cross terms XOR a zero share, sent
    /// to its previous party (Araki et al. 2016, section 2.2, for GF(2)).
    pub(crate) fn and_planes(&mut self, gates: &[Gate<'_>]) -> Result<Vec<Plane>, Error> {
        let total: usize = gates.iter().map(|g| g.0.len()).sum();
        let stream = self.next_step();
        let mut frame = vec![0u64; total];
        let mut own_stream = vec![0u64; total];
        self.random_next(stream, &mut frame);
        self.random_own(stream, &mut own_stream);
        let outputs: Vec<Vec<u64>> = self.install(|| {
            let mut outputs = Vec::with_capacity(gates.len());
            let mut offset = 0;
            for (x0, x1, y0, y1) in gates {
                let range = offset..offset + x0.len();
                offset += x0.len();
                let z = &mut frame[range.clone()];
                z.par_iter_mut()
                    .zip(&own_stream[range])
                    .zip(x0.par_iter().zip(*x1))
                    .zip(y0.par_iter().zip(*y1))
                    .with_min_len(1024)
                    .for_each(|(((z, m), (a0, a1)), (b0, b1))| {
                        *z ^= m ^ (a0 & b0) ^ (a0 & b1) ^ (a1 & b0);
                    });
                outputs.push(z.to_vec());
            }
            outputs
        });
        let id = self.id();
        let step = self.next_step();
        self.send_owned(id.prev(), step, frame)?;
        let received = self.recv(id.next(), step, total)?;
        let mut planes = Vec::with_capacity(outputs.len());
        let mut offset = 0;
        for own in outputs {
            let next = received[offset..offset + own.len()].to_vec();
            offset += own.len();
            planes.push(Plane { own, next });
        }
        Ok(planes)
    }

    /// Opens bits to all three parties.
    pub fn reveal_bits(&mut self, x: &Bits) -> Result<Vec<bool>, Error> {
        let words = self.reveal_words_xor(&x.own, &x.next)?;
        Ok(crate::share::unpack_bools(&words, x.len))
    }

    /// Opens XOR-shared words to all three parties.
    pub fn reveal_xor(&mut self, x: &XorWords) -> Result<Vec<u64>, Error> {
        self.reveal_words_xor(&x.own, &x.next)
    }

    fn reveal_words_xor(&mut self, own: &[u64], next: &[u64]) -> Result<Vec<u64>, Error> {
        let id = self.id();
        let missing = self.exchange(id.next(), own, id.prev(), own.len())?;
        Ok(own
            .iter()
            .zip(next)
            .zip(&missing)
            .map(|((a, b), c)| a ^ b ^ c)
            .collect())
    }

    /// XOR-shares words known to `owner` only (others pass `None` and the
    /// length). One message from the owner to its previous party.
    pub fn input_xor(
        &mut self,
        owner: PartyId,
        values: Option<&[u64]>,
        n: usize,
    ) -> Result<XorWords, Error> {
        let (own, next) = self.input_xor_words(owner, values, n)?;
        Ok(XorWords { own, next })
    }

    /// XOR-shares bit-sliced bits known to `owner` only.
    pub fn input_bits(
        &mut self,
        owner: PartyId,
        values: Option<&[bool]>,
        len: usize,
    ) -> Result<Bits, Error> {
        let packed = values.map(crate::share::pack_bools);
        let (own, next) = self.input_xor_words(owner, packed.as_deref(), words_for(len))?;
        let mut bits = Bits { len, own, next };
        bits.clear_tail();
        Ok(bits)
    }

    pub(crate) fn input_xor_words(
        &mut self,
        owner: PartyId,
        values: Option<&[u64]>,
        n: usize,
    ) -> Result<(Vec<u64>, Vec<u64>), Error> {
        let stream = self.next_step();
        let step = self.next_step();
        let id = self.id();
        if id == owner {
            let values = values.ok_or(Error::LengthMismatch {
                op: "input_xor",
                left: 0,
                right: n,
            })?;
            if values.len() != n {
                return Err(Error::LengthMismatch {
                    op: "input_xor",
                    left: values.len(),
                    right: n,
                });
            }
            let mut r = vec![0u64; n];
            self.random_next(stream, &mut r);
            let masked: Vec<u64> = values.iter().zip(&r).map(|(v, r)| v ^ r).collect();
            self.send(id.prev(), step, &masked)?;
            Ok((masked, r))
        } else if id == owner.next() {
            let mut r = vec![0u64; n];
            self.random_own(stream, &mut r);
            Ok((r, vec![0; n]))
        } else {
            let masked = self.recv(owner, step, n)?;
            Ok((vec![0; n], masked))
        }
    }
}

/// Bits of all-ones over `len` elements, as words.
pub(crate) fn ones(len: usize) -> Vec<u64> {
    let mut words = vec![u64::MAX; words_for(len)];
    if let Some(w) = words.last_mut() {
        *w &= tail_mask(len);
    }
    words
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transpose_matches_definition() {
        let mut m = [0u64; 64];
        for (r, row) in m.iter_mut().enumerate() {
            *row = (r as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (r as u64) << 7;
        }
        let original = m;
        transpose64(&mut m);
        for (r, row) in m.iter().enumerate() {
            for (c, column) in original.iter().enumerate() {
                assert_eq!((row >> c) & 1, (column >> r) & 1, "r={r} c={c}");
            }
        }
        transpose64(&mut m);
        assert_eq!(m, original);
    }

    #[test]
    fn planes_roundtrip() {
        let values: Vec<u64> = (0..200u64)
            .map(|v| v.wrapping_mul(0xDEAD_BEEF_1234_5677))
            .collect();
        let planes = to_planes(&values, 64);
        for (e, v) in values.iter().enumerate() {
            for (k, plane) in planes.iter().enumerate() {
                assert_eq!((plane[e / 64] >> (e % 64)) & 1, (v >> k) & 1);
            }
        }
        let refs: Vec<&[u64]> = planes.iter().map(|p| p.as_slice()).collect();
        assert_eq!(from_planes(&refs, values.len()), values);
        assert_eq!(to_planes_flat(&values, 64), planes.concat());
    }
}
