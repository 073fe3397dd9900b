//! Comparisons, equality and selection.
//!
//! Less-than with a declared bound uses the sign of `d = a - b`: when
//! `|d| < 2^w` the sign is bit `w` of `u + v` (ALGORITHMS.md, the
//! two-known-summands trick), so only `w + 1` bit planes enter the circuit.
//! Equality tests `u == -v` on the low `w + 1` bits, which suffices because
//! the only multiple of `2^(w+1)` in `(-2^w, 2^w)` is zero.

use crate::bits::ones;
use crate::circuit::{Adjust, AndTree, Plane, SignCircuit};
use crate::error::Error;
use crate::session::Session;
use crate::share::{Arith, Bits};
use crate::transport::Transport;

fn check_bound(op: &'static str, width: u32) -> Result<usize, Error> {
    if (1..=63).contains(&width) {
        Ok(width as usize)
    } else {
        Err(Error::Width { op, width, max: 63 })
    }
}

fn check_same(op: &'static str, a: &Arith, b: &Arith) -> Result<(), Error> {
    if a.len() == b.len() {
        Ok(())
    } else {
        Err(Error::LengthMismatch {
            op,
            left: a.len(),
            right: b.len(),
        })
    }
}

fn plane_bits(plane: Plane, len: usize) -> Bits {
    let mut bits = Bits {
        len,
        own: plane.own,
        next: plane.next,
    };
    bits.clear_tail();
    bits
}

/// `len` elements padded to whole words, so columns can be stacked into one
/// bit-sliced batch and split on word boundaries.
fn padded(len: usize) -> usize {
    len.div_ceil(64) * 64
}

fn stack(parts: &[(&[u64], &[u64])]) -> (Vec<u64>, Vec<u64>) {
    let mut own = Vec::new();
    let mut next = Vec::new();
    for (o, n) in parts {
        let target = padded(o.len());
        own.extend_from_slice(o);
        own.resize(own.len() + target - o.len(), 0);
        next.extend_from_slice(n);
        next.resize(next.len() + target - n.len(), 0);
    }
    (own, next)
}

fn split_plane(plane: &Plane, parts: usize) -> Vec<Plane> {
    let words = plane.own.len() / parts.max(1);
    (0..parts)
        .map(|k| Plane {
            own: plane.own[k * words..(k + 1) * words].to_vec(),
            next: plane.next[k * words..(k + 1) * words].to_vec(),
        })
        .collect()
}

impl<T: Transport> Session<T> {
    /// `a < b` for values with `|a - b| < 2^width` (the caller proves this
    /// from declared ranges), `width` in 1..=63. About `3 width` ANDs and
    /// `2 + ceil(log2 width)` rounds.
    pub fn lt(&mut self, a: &Arith, b: &Arith, width: u32) -> Result<Bits, Error> {
        check_same("lt", a, b)?;
        let width = check_bound("lt", width)?;
        let d = a.sub(b)?;
        self.sign_bits(&d, width)
    }

    /// `a <= b`, same bound as [`Session::lt`].
    pub fn le(&mut self, a: &Arith, b: &Arith, width: u32) -> Result<Bits, Error> {
        let gt = self.lt(b, a, width)?;
        Ok(gt.not(self.id()))
    }

    /// `a > b`, same bound as [`Session::lt`].
    pub fn gt(&mut self, a: &Arith, b: &Arith, width: u32) -> Result<Bits, Error> {
        self.lt(b, a, width)
    }

    /// `a >= b`, same bound as [`Session::lt`].
    pub fn ge(&mut self, a: &Arith, b: &Arith, width: u32) -> Result<Bits, Error> {
        let lt = self.lt(a, b, width)?;
        Ok(lt.not(self.id()))
    }

    /// The sign bit of each element of `d`, known to lie in
    /// `(-2^width, 2^width)`.
    pub(crate) fn sign_bits(&mut self, d: &Arith, width: usize) -> Result<Bits, Error> {
        let (u, mut vs) = self.summand_planes(&d.own, &d.next, width + 1, &[Adjust::Plain])?;
        let mut circuit = SignCircuit::new(u, vs.pop().unwrap_or_default(), width);
        self.run_circuits(&mut [&mut circuit])?;
        Ok(plane_bits(circuit.output(), d.len()))
    }

    /// `a < b` on the whole of i64 (two's complement), with no bound:
    /// `msb(a) ^ msb(b) ? msb(a) : msb(a - b)`. The three sign bits come from
    /// one batched circuit, then one more AND.
    pub fn lt_full(&mut self, a: &Arith, b: &Arith) -> Result<Bits, Error> {
        check_same("lt_full", a, b)?;
        let n = a.len();
        let d = a.sub(b)?;
        let (own, next) = stack(&[(&a.own, &a.next), (&b.own, &b.next), (&d.own, &d.next)]);
        let (u, mut vs) = self.summand_planes(&own, &next, 64, &[Adjust::Plain])?;
        let mut circuit = SignCircuit::new(u, vs.pop().unwrap_or_default(), 63);
        self.run_circuits(&mut [&mut circuit])?;
        let signs = split_plane(&circuit.output(), 3);
        let (sa, sb, sd) = (&signs[0], &signs[1], &signs[2]);
        let differ = sa.xor(sb);
        let pick = sa.xor(sd);
        let (o, x) = self.and_words(&[(&differ.own, &differ.next, &pick.own, &pick.next)])?;
        let chosen = Plane { own: o, next: x };
        Ok(plane_bits(sd.xor(&chosen), n))
    }

    /// `a == b` for values with `|a - b| < 2^width`; `width` 64 means no
    /// bound. `width` ANDs (fewer than 64 when bounded), `1 + ceil(log2
    /// (width + 1))` rounds.
    pub fn eq(&mut self, a: &Arith, b: &Arith, width: u32) -> Result<Bits, Error> {
        check_same("eq", a, b)?;
        if !(1..=64).contains(&width) {
            return Err(Error::Width {
                op: "eq",
                width,
                max: 64,
            });
        }
        let d = a.sub(b)?;
        self.is_zero(&d, (width as usize + 1).min(64))
    }

    /// `d == 0`, testing the low `planes` bits.
    pub(crate) fn is_zero(&mut self, d: &Arith, planes: usize) -> Result<Bits, Error> {
        let (u, mut vs) = self.summand_planes(&d.own, &d.next, planes, &[Adjust::Negate])?;
        let neg_v = vs.pop().unwrap_or_default();
        let mut tree = AndTree::new(self.equal_planes(&u, &neg_v, d.len()));
        self.run_circuits(&mut [&mut tree])?;
        Ok(plane_bits(tree.output(), d.len()))
    }

    /// Planes that are 1 where `u` and `w` agree.
    pub(crate) fn equal_planes(&self, u: &[Plane], w: &[Plane], len: usize) -> Vec<Plane> {
        let all = ones(len);
        u.iter()
            .zip(w)
            .map(|(a, b)| {
                let mut e = a.xor(b);
                e.xor_public(self.id(), &all);
                e
            })
            .collect()
    }

    /// `c ? x : y` for a secret bit column `c`: bit injection, then
    /// `y + c (x - y)`. Three rounds.
    pub fn select(&mut self, c: &Bits, x: &Arith, y: &Arith) -> Result<Arith, Error> {
        let c = self.inject(c)?;
        self.select_arith(&c, x, y)
    }

    /// `c ? x : y` for `c` already shared as ring elements in {0, 1}. One
    /// round.
    pub fn select_arith(&mut self, c: &Arith, x: &Arith, y: &Arith) -> Result<Arith, Error> {
        check_same("select", x, y)?;
        let diff = x.sub(y)?;
        let chosen = self.mul(c, &diff)?;
        y.add(&chosen)
    }
}
