//! The protocol core of triad: three-party replicated secret sharing over
//! Z_2^64 (Araki et al., CCS 2016) with bit-sliced boolean sharing, and the
//! vectorised protocols built on it: multiplication, conversions,
//! comparisons, scans, shuffles and sorts.
//!
//! Party `i` holds components `(x_i, x_{i+1})` of `x = x_0 + x_1 + x_2`
//! (XOR for boolean values, 64 values per word). Every protocol works on
//! whole columns and sends one message per round whatever the column length,
//! so round counts never grow with the data.
//!
//! This crate is sans-IO: it is generic over [`Transport`], a blocking
//! byte-message channel, and owns no sockets, runtime or clock. It never
//! draws randomness from anywhere but the pairwise keys handed to a
//! [`Session`] (production keys come from the OS generator through
//! [`PairKeys::establish`]); seeded keys exist only behind the
//! `insecure-test-keys` feature. It must not log values or keys.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod arith;
mod bits;
mod circuit;
mod compare;
mod convert;
mod error;
pub mod outside;
mod party;
mod prg;
mod scan;
mod session;
mod share;
mod shuffle;
mod sort;
pub mod transport;

#[cfg(any(test, feature = "insecure-test-keys"))]
pub mod testing;

pub use error::{Error, ProtocolProblem};
pub use party::PartyId;
pub use prg::PairKeys;
pub use session::{Event, Session, SessionConfig, Stats, Transcript};
pub use share::{Arith, Bits, XorWords};
pub use sort::{SortAlgorithm, SortKey};
pub use transport::{MemoryTransport, Transport, TransportError, memory_mesh};
