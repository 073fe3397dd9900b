//! Helpers shared by the protocol tests: run three parties, deal plaintext
//! inputs to them, and check that all three agree on an opened result.
#![allow(dead_code)]

use triad_ring::outside::deal_with_seeds;
use triad_ring::testing::run3_in_parts;
use triad_ring::{Arith, Error, MemoryTransport, PartyId, Session, SessionConfig};

/// Runs `f` as the three parties and returns party 0's result after
/// checking that all three returned the same; panics naming the seed.
pub fn agree<R, F>(seed: u64, f: F) -> R
where
    R: Send + PartialEq + std::fmt::Debug,
    F: Fn(&mut Session<MemoryTransport>) -> Result<R, Error> + Sync,
{
    agree_with(seed, SessionConfig::default(), f)
}

/// As [`agree`], with a session configuration.
pub fn agree_with<R, F>(seed: u64, config: SessionConfig, f: F) -> R
where
    R: Send + PartialEq + std::fmt::Debug,
    F: Fn(&mut Session<MemoryTransport>) -> Result<R, Error> + Sync,
{
    // Half the seeds run with frames sent in parts of 1 to 64 words, as a
    // streaming transport asks for them: results must not depend on it.
    let parts = (seed % 2 == 1).then_some(1 + (seed / 2 % 64) as usize);
    let [a, b, c] = run3_in_parts(seed, config, parts, f);
    let a = a.unwrap_or_else(|e| panic!("seed {seed}: party 0 failed: {e}"));
    let b = b.unwrap_or_else(|e| panic!("seed {seed}: party 1 failed: {e}"));
    let c = c.unwrap_or_else(|e| panic!("seed {seed}: party 2 failed: {e}"));
    assert_eq!(a, b, "seed {seed}: parties 0 and 1 disagree");
    assert_eq!(a, c, "seed {seed}: parties 0 and 2 disagree");
    a
}

/// This party's shares of a plaintext column, dealt as a data owner would.
pub fn shares(id: PartyId, seed: u64, values: &[u64]) -> Arith {
    let s0 = seed_bytes(seed, 0);
    let s1 = seed_bytes(seed, 1);
    let [d0, d1, d2] = deal_with_seeds(values, s0, s1);
    let dealt = match id {
        PartyId::P0 => d0,
        PartyId::P1 => d1,
        PartyId::P2 => d2,
    };
    dealt
        .into_shares()
        .expect("dealt shares have the right length")
}

fn seed_bytes(seed: u64, salt: u8) -> [u8; 32] {
    let mut out = [salt; 32];
    out[..8].copy_from_slice(&seed.to_le_bytes());
    out
}

/// i64 values as ring elements.
pub fn ring(values: &[i64]) -> Vec<u64> {
    values.iter().map(|&v| v as u64).collect()
}
