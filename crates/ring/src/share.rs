//! Share types. Each holds this party's two components of a whole column:
//! `own` is component `i`, `next` is component `i + 1` for party `i`.
//! Operations here are local (no messages); those needing the party id or
//! randomness live on [`crate::Session`].

use std::fmt;

use crate::error::Error;
use crate::party::PartyId;

/// Additive shares of a column of values in Z_2^64.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Arith {
    pub(crate) own: Vec<u64>,
    pub(crate) next: Vec<u64>,
}

/// XOR shares of a column of 64-bit words (one element per word), the
/// layout shuffles and per-element bit extraction need.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct XorWords {
    pub(crate) own: Vec<u64>,
    pub(crate) next: Vec<u64>,
}

/// XOR shares of a column of bits, bit-sliced: element `e` is bit `e % 64`
/// of word `e / 64`. Bits past `len` in the last word are kept zero.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Bits {
    pub(crate) len: usize,
    pub(crate) own: Vec<u64>,
    pub(crate) next: Vec<u64>,
}

// Shares are not secrets on their own, but printing them helps nobody and
// invites logging; Debug shows the shape only.
impl fmt::Debug for Arith {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Arith(len = {})", self.len())
    }
}

impl fmt::Debug for XorWords {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "XorWords(len = {})", self.len())
    }
}

impl fmt::Debug for Bits {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Bits(len = {})", self.len)
    }
}

fn check_len(op: &'static str, left: usize, right: usize) -> Result<(), Error> {
    if left == right {
        Ok(())
    } else {
        Err(Error::LengthMismatch { op, left, right })
    }
}

/// Words needed for `len` bit-sliced bits.
pub(crate) fn words_for(len: usize) -> usize {
    len.div_ceil(64)
}

/// Mask of the valid bits of the last word of a `len`-bit column.
pub(crate) fn tail_mask(len: usize) -> u64 {
    match len % 64 {
        0 => u64::MAX,
        r => (1u64 << r) - 1,
    }
}

/// Components of a public constant: component 0 carries it, which party 0
/// holds as `own` and party 2 as `next`.
fn public_components(id: PartyId, values: Vec<u64>) -> (Vec<u64>, Vec<u64>) {
    let zeros = vec![0; values.len()];
    match id {
        PartyId::P0 => (values, zeros),
        PartyId::P1 => (zeros.clone(), zeros),
        PartyId::P2 => (zeros, values),
    }
}

impl Arith {
    /// Shares from this party's two components.
    pub fn from_components(own: Vec<u64>, next: Vec<u64>) -> Result<Arith, Error> {
        check_len("Arith::from_components", own.len(), next.len())?;
        Ok(Arith { own, next })
    }

    /// This party's components `(x_i, x_{i+1})`.
    pub fn components(&self) -> (&[u64], &[u64]) {
        (&self.own, &self.next)
    }

    /// Consumes the shares into `(x_i, x_{i+1})`.
    pub fn into_components(self) -> (Vec<u64>, Vec<u64>) {
        (self.own, self.next)
    }

    /// Shares of a public column: every party can form them alone.
    pub fn public(id: PartyId, values: &[u64]) -> Arith {
        let (own, next) = public_components(id, values.to_vec());
        Arith { own, next }
    }

    /// Shares of `n` zeros.
    pub fn zeros(n: usize) -> Arith {
        Arith {
            own: vec![0; n],
            next: vec![0; n],
        }
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.own.len()
    }

    /// Whether the column is empty.
    pub fn is_empty(&self) -> bool {
        self.own.is_empty()
    }

    fn zip_with(
        &self,
        other: &Arith,
        op: &'static str,
        f: impl Fn(u64, u64) -> u64,
    ) -> Result<Arith, Error> {
        check_len(op, self.len(), other.len())?;
        let apply = |a: &[u64], b: &[u64]| a.iter().zip(b).map(|(&x, &y)| f(x, y)).collect();
        Ok(Arith {
            own: apply(&self.own, &other.own),
            next: apply(&self.next, &other.next),
        })
    }

    fn map(&self, f: impl Fn(u64) -> u64) -> Arith {
        Arith {
            own: self.own.iter().map(|&x| f(x)).collect(),
            next: self.next.iter().map(|&x| f(x)).collect(),
        }
    }

    /// `self + other`.
    pub fn add(&self, other: &Arith) -> Result<Arith, Error> {
        self.zip_with(other, "add", u64::wrapping_add)
    }

    /// `self - other`.
    pub fn sub(&self, other: &Arith) -> Result<Arith, Error> {
        self.zip_with(other, "sub", u64::wrapping_sub)
    }

    /// `-self`.
    pub fn neg(&self) -> Arith {
        self.map(u64::wrapping_neg)
    }

    /// `c * self` for a public `c`.
    pub fn mul_public(&self, c: u64) -> Arith {
        self.map(|x| x.wrapping_mul(c))
    }

    /// Element-wise product with a public column.
    pub fn mul_public_column(&self, c: &[u64]) -> Result<Arith, Error> {
        check_len("mul_public_column", self.len(), c.len())?;
        let apply = |a: &[u64]| a.iter().zip(c).map(|(&x, &y)| x.wrapping_mul(y)).collect();
        Ok(Arith {
            own: apply(&self.own),
            next: apply(&self.next),
        })
    }

    /// `self + c` for a public `c`; party `id` is the caller.
    pub fn add_public(&self, id: PartyId, c: u64) -> Arith {
        let mut out = self.clone();
        match id {
            PartyId::P0 => out.own.iter_mut().for_each(|x| *x = x.wrapping_add(c)),
            PartyId::P1 => {}
            PartyId::P2 => out.next.iter_mut().for_each(|x| *x = x.wrapping_add(c)),
        }
        out
    }

    /// Elements `range` as a new column.
    pub fn slice(&self, range: std::ops::Range<usize>) -> Arith {
        Arith {
            own: self.own[range.clone()].to_vec(),
            next: self.next[range].to_vec(),
        }
    }

    /// Columns one after another.
    pub fn concat(parts: &[&Arith]) -> Arith {
        Arith {
            own: parts.iter().flat_map(|p| p.own.iter().copied()).collect(),
            next: parts.iter().flat_map(|p| p.next.iter().copied()).collect(),
        }
    }

    /// Row `rows[k]` of `self` at position `k`; `rows` are public positions.
    pub fn gather(&self, rows: &[u32]) -> Arith {
        Arith {
            own: rows.iter().map(|&r| self.own[r as usize]).collect(),
            next: rows.iter().map(|&r| self.next[r as usize]).collect(),
        }
    }

    /// Element `index` repeated `n` times.
    pub fn broadcast(&self, index: usize, n: usize) -> Arith {
        Arith {
            own: vec![self.own[index]; n],
            next: vec![self.next[index]; n],
        }
    }
}

impl XorWords {
    /// Shares from this party's two components.
    pub fn from_components(own: Vec<u64>, next: Vec<u64>) -> Result<XorWords, Error> {
        check_len("XorWords::from_components", own.len(), next.len())?;
        Ok(XorWords { own, next })
    }

    /// This party's components.
    pub fn components(&self) -> (&[u64], &[u64]) {
        (&self.own, &self.next)
    }

    /// Shares of public words.
    pub fn public(id: PartyId, values: &[u64]) -> XorWords {
        let (own, next) = public_components(id, values.to_vec());
        XorWords { own, next }
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.own.len()
    }

    /// Whether the column is empty.
    pub fn is_empty(&self) -> bool {
        self.own.is_empty()
    }

    /// `self ^ other`.
    pub fn xor(&self, other: &XorWords) -> Result<XorWords, Error> {
        check_len("xor", self.len(), other.len())?;
        let apply = |a: &[u64], b: &[u64]| a.iter().zip(b).map(|(x, y)| x ^ y).collect();
        Ok(XorWords {
            own: apply(&self.own, &other.own),
            next: apply(&self.next, &other.next),
        })
    }

    /// Bit `bit` of every element, bit-sliced. Local: XOR sharing commutes
    /// with taking bits.
    pub fn bit(&self, bit: u32) -> Bits {
        let pack = |words: &[u64]| -> Vec<u64> {
            words
                .chunks(64)
                .map(|chunk| {
                    chunk
                        .iter()
                        .enumerate()
                        .fold(0u64, |acc, (e, &w)| acc | (((w >> bit) & 1) << e))
                })
                .collect()
        };
        Bits {
            len: self.len(),
            own: pack(&self.own),
            next: pack(&self.next),
        }
    }

    /// Row `rows[k]` of `self` at position `k`.
    pub fn gather(&self, rows: &[u32]) -> XorWords {
        XorWords {
            own: rows.iter().map(|&r| self.own[r as usize]).collect(),
            next: rows.iter().map(|&r| self.next[r as usize]).collect(),
        }
    }
}

impl Bits {
    /// Shares from components of `len` bits.
    pub fn from_components(len: usize, own: Vec<u64>, next: Vec<u64>) -> Result<Bits, Error> {
        check_len("Bits::from_components", own.len(), words_for(len))?;
        check_len("Bits::from_components", next.len(), words_for(len))?;
        let mut bits = Bits { len, own, next };
        bits.clear_tail();
        Ok(bits)
    }

    /// This party's components, bit-sliced.
    pub fn components(&self) -> (&[u64], &[u64]) {
        (&self.own, &self.next)
    }

    /// Shares of public bits.
    pub fn public(id: PartyId, values: &[bool]) -> Bits {
        let words = pack_bools(values);
        let (own, next) = public_components(id, words);
        Bits {
            len: values.len(),
            own,
            next,
        }
    }

    /// Number of bits.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the column is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub(crate) fn clear_tail(&mut self) {
        let mask = tail_mask(self.len);
        if let Some(w) = self.own.last_mut() {
            *w &= mask;
        }
        if let Some(w) = self.next.last_mut() {
            *w &= mask;
        }
    }

    /// `self ^ other`.
    pub fn xor(&self, other: &Bits) -> Result<Bits, Error> {
        check_len("xor", self.len, other.len)?;
        let apply = |a: &[u64], b: &[u64]| a.iter().zip(b).map(|(x, y)| x ^ y).collect();
        Ok(Bits {
            len: self.len,
            own: apply(&self.own, &other.own),
            next: apply(&self.next, &other.next),
        })
    }

    /// `!self`; party `id` is the caller.
    pub fn not(&self, id: PartyId) -> Bits {
        let mut out = self.clone();
        let target = match id {
            PartyId::P0 => Some(&mut out.own),
            PartyId::P1 => None,
            PartyId::P2 => Some(&mut out.next),
        };
        if let Some(words) = target {
            words.iter_mut().for_each(|w| *w = !*w);
        }
        out.clear_tail();
        out
    }
}

/// Packs booleans 64 to a word, element `e` at bit `e % 64`.
pub fn pack_bools(values: &[bool]) -> Vec<u64> {
    values
        .chunks(64)
        .map(|chunk| {
            chunk
                .iter()
                .enumerate()
                .fold(0u64, |acc, (e, &b)| acc | ((b as u64) << e))
        })
        .collect()
}

/// Unpacks `len` bit-sliced booleans.
pub fn unpack_bools(words: &[u64], len: usize) -> Vec<bool> {
    (0..len)
        .map(|e| (words[e / 64] >> (e % 64)) & 1 == 1)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pack_roundtrip_and_tail() {
        let values: Vec<bool> = (0..130).map(|i| i % 3 == 0).collect();
        let words = pack_bools(&values);
        assert_eq!(words.len(), 3);
        assert_eq!(unpack_bools(&words, 130), values);
        assert_eq!(tail_mask(130), 0b11);
        assert_eq!(tail_mask(128), u64::MAX);
    }

    #[test]
    fn length_mismatch_is_an_error() {
        let a = Arith::zeros(3);
        let b = Arith::zeros(4);
        assert!(matches!(
            a.add(&b),
            Err(Error::LengthMismatch {
                left: 3,
                right: 4,
                ..
            })
        ));
        assert!(Arith::from_components(vec![1], vec![]).is_err());
        assert!(Bits::from_components(65, vec![0], vec![0]).is_err());
    }

    #[test]
    fn xor_words_bit_extraction() {
        let w = XorWords::public(PartyId::P0, &[0b101, 0b010, 0b111]);
        let b = w.bit(0);
        assert_eq!(b.own, vec![0b101]);
        assert_eq!(b.len(), 3);
    }
}
