//! Sharing with parties outside the three: a data owner deals shares of an
//! uploaded column, and a result receiver reconstructs from what the three
//! parties send it, checking that the components held twice agree.
//!
//! Dealing follows ALGORITHMS.md (Upload): components 0 and 1 are expanded
//! from fresh seeds and component 2 is `x - x_0 - x_1`, so party 0 gets two
//! seeds and parties 1 and 2 each get one seed and one explicit vector.

use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::{Rng, SeedableRng};

use crate::error::Error;
use crate::party::PartyId;
use crate::prg::os_seed;
use crate::share::Arith;

/// Where one component of a dealt column comes from.
#[derive(Clone, PartialEq, Eq)]
pub enum Component {
    /// Expanded from a 32-byte seed with [`expand`].
    Seed([u8; 32]),
    /// Sent explicitly.
    Explicit(Vec<u64>),
}

impl std::fmt::Debug for Component {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Component::Seed(_) => f.write_str("Seed(..)"),
            Component::Explicit(v) => write!(f, "Explicit(len = {})", v.len()),
        }
    }
}

/// What one party receives for one column: its two components.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dealt {
    /// The party it is for.
    pub party: PartyId,
    /// Component `i`.
    pub own: Component,
    /// Component `i + 1`.
    pub next: Component,
    /// Elements in the column.
    pub len: usize,
}

/// The keystream a seed expands to (ChaCha8, stream 0).
pub fn expand(seed: &[u8; 32], len: usize) -> Vec<u64> {
    let mut rng = ChaCha8Rng::from_seed(*seed);
    (0..len).map(|_| rng.next_u64()).collect()
}

/// Deals `values` with fresh seeds from the OS generator.
pub fn deal(values: &[u64]) -> Result<[Dealt; 3], Error> {
    Ok(deal_with_seeds(values, os_seed()?, os_seed()?))
}

/// Deals `values` from given seeds (tests; production uses [`deal`]).
pub fn deal_with_seeds(values: &[u64], seed0: [u8; 32], seed1: [u8; 32]) -> [Dealt; 3] {
    let len = values.len();
    let x0 = expand(&seed0, len);
    let x1 = expand(&seed1, len);
    let x2: Vec<u64> = values
        .iter()
        .zip(x0.iter().zip(&x1))
        .map(|(v, (a, b))| v.wrapping_sub(*a).wrapping_sub(*b))
        .collect();
    [
        Dealt {
            party: PartyId::P0,
            own: Component::Seed(seed0),
            next: Component::Seed(seed1),
            len,
        },
        Dealt {
            party: PartyId::P1,
            own: Component::Seed(seed1),
            next: Component::Explicit(x2.clone()),
            len,
        },
        Dealt {
            party: PartyId::P2,
            own: Component::Explicit(x2),
            next: Component::Seed(seed0),
            len,
        },
    ]
}

impl Dealt {
    /// The party's shares of the column.
    pub fn into_shares(self) -> Result<Arith, Error> {
        let len = self.len;
        let open = |c: Component| -> Result<Vec<u64>, Error> {
            match c {
                Component::Seed(seed) => Ok(expand(&seed, len)),
                Component::Explicit(v) if v.len() == len => Ok(v),
                Component::Explicit(v) => Err(Error::LengthMismatch {
                    op: "dealt column",
                    left: len,
                    right: v.len(),
                }),
            }
        };
        Arith::from_components(open(self.own)?, open(self.next)?)
    }
}

/// Reconstructs a column from the shares all three parties sent to an
/// outside receiver, indexed by party. Every component arrives twice; any
/// disagreement is an error (a lying party or corruption), and nothing is
/// returned.
pub fn reconstruct(shares: [&Arith; 3]) -> Result<Vec<u64>, Error> {
    let n = shares[0].len();
    for s in &shares[1..] {
        if s.len() != n {
            return Err(Error::LengthMismatch {
                op: "reconstruct",
                left: n,
                right: s.len(),
            });
        }
    }
    // Component j is party j's `own` and party j-1's `next`.
    for j in 0..3 {
        let own = &shares[j].own;
        let next = &shares[(j + 2) % 3].next;
        if let Some(index) = own.iter().zip(next).position(|(a, b)| a != b) {
            return Err(Error::Inconsistent {
                component: j,
                index,
            });
        }
    }
    Ok((0..n)
        .map(|e| {
            shares[0].own[e]
                .wrapping_add(shares[1].own[e])
                .wrapping_add(shares[2].own[e])
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deal_then_reconstruct() {
        let values = vec![0, 1, u64::MAX, 1 << 63, 42];
        let dealt = deal(&values).unwrap();
        let shares: Vec<Arith> = dealt
            .into_iter()
            .map(|d| d.into_shares().unwrap())
            .collect();
        assert_eq!(
            reconstruct([&shares[0], &shares[1], &shares[2]]).unwrap(),
            values
        );
    }

    #[test]
    fn tampering_is_detected() {
        let values = vec![5, 6, 7];
        let dealt = deal_with_seeds(&values, [1; 32], [2; 32]);
        let mut shares: Vec<Arith> = dealt
            .into_iter()
            .map(|d| d.into_shares().unwrap())
            .collect();
        shares[1].next[2] ^= 1;
        let err = reconstruct([&shares[0], &shares[1], &shares[2]]).unwrap_err();
        assert!(matches!(
            err,
            Error::Inconsistent {
                component: 2,
                index: 2
            }
        ));
    }

    #[test]
    fn explicit_length_is_checked() {
        let d = Dealt {
            party: PartyId::P1,
            own: Component::Seed([0; 32]),
            next: Component::Explicit(vec![1]),
            len: 2,
        };
        assert!(d.into_shares().is_err());
    }
}
