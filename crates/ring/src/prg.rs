//! Correlated randomness from pairwise keys.
//!
//! Component `j` of every random sharing is drawn from key `K_j`, which
//! parties `j - 1` and `j` share; so party `i` holds `K_i` (with its prev) and
//! `K_{i+1}` (with its next) and can make its two components of a random
//! sharing, or its part of a zero sharing, without a message.
//!
//! Keys are derived per session from the long-lived pair keys, the epoch and
//! the query id (BLAKE3 keyed hash); each protocol step then reads its own
//! ChaCha8 stream (the step number is the stream id), so no keystream is ever
//! used twice.

use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::{Rng, SeedableRng};
use rayon::prelude::*;

use crate::error::Error;
use crate::party::PartyId;
use crate::transport::Transport;

/// Words per independently seekable PRG chunk: large enough to amortise the
/// seek, small enough to spread over threads.
const CHUNK_WORDS: usize = 1 << 14;

/// A party's two long-lived pairwise keys. Never printed: `Debug` hides them.
#[derive(Clone)]
pub struct PairKeys {
    /// `K_i`, shared with the previous party.
    pub(crate) with_prev: [u8; 32],
    /// `K_{i+1}`, shared with the next party.
    pub(crate) with_next: [u8; 32],
}

impl std::fmt::Debug for PairKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PairKeys(..)")
    }
}

impl PairKeys {
    /// Agrees fresh pairwise keys over `transport`: each party draws the key
    /// it shares with its next party from the OS generator and sends it
    /// there. The transport must be confidential (mutual TLS between nodes).
    pub fn establish<T: Transport>(id: PartyId, transport: &mut T) -> Result<PairKeys, Error> {
        let with_next = os_seed()?;
        let words: Vec<u64> = with_next
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().unwrap_or([0; 8])))
            .collect();
        transport.send(id.next(), words)?;
        let received = transport.recv(id.prev())?;
        if received.len() != 4 {
            return Err(Error::Protocol {
                peer: id.prev(),
                step: 0,
                problem: crate::error::ProtocolProblem::WrongLength {
                    expected: 4,
                    got: received.len() as u64,
                },
            });
        }
        let mut with_prev = [0u8; 32];
        for (chunk, word) in with_prev.chunks_exact_mut(8).zip(&received) {
            chunk.copy_from_slice(&word.to_le_bytes());
        }
        Ok(PairKeys {
            with_prev,
            with_next,
        })
    }

    /// Builds keys from raw bytes, for a transport layer that agreed them
    /// itself (for example from a TLS exporter).
    pub fn from_bytes(with_prev: [u8; 32], with_next: [u8; 32]) -> PairKeys {
        PairKeys {
            with_prev,
            with_next,
        }
    }

    /// Derives the per-session keys for one epoch and query.
    pub(crate) fn derive(&self, epoch: u64, query: u64) -> SessionKeys {
        let derive = |key: &[u8; 32]| {
            let mut hasher = blake3::Hasher::new_keyed(key);
            hasher.update(b"triad/prg/v1");
            hasher.update(&epoch.to_le_bytes());
            hasher.update(&query.to_le_bytes());
            *hasher.finalize().as_bytes()
        };
        SessionKeys {
            with_prev: derive(&self.with_prev),
            with_next: derive(&self.with_next),
        }
    }
}

/// Keys of one session; see the module docs.
#[derive(Clone)]
pub(crate) struct SessionKeys {
    pub(crate) with_prev: [u8; 32],
    pub(crate) with_next: [u8; 32],
}

/// Fills `out` with the keystream of `key` on stream `stream`. Chunks seek
/// independently, so the output does not depend on how many threads fill it.
pub(crate) fn fill(key: &[u8; 32], stream: u64, out: &mut [u64], parallel: bool) {
    let fill_chunk = |(index, chunk): (usize, &mut [u64])| {
        let mut rng = ChaCha8Rng::from_seed(*key);
        rng.set_stream(stream);
        rng.set_word_pos((index * CHUNK_WORDS * 2) as u128);
        rng.fill_bytes(bytemuck::cast_slice_mut(chunk));
        if cfg!(target_endian = "big") {
            for word in chunk.iter_mut() {
                *word = u64::from_le(*word);
            }
        }
    };
    if parallel && out.len() > CHUNK_WORDS {
        out.par_chunks_mut(CHUNK_WORDS)
            .enumerate()
            .for_each(fill_chunk);
    } else {
        out.chunks_mut(CHUNK_WORDS).enumerate().for_each(fill_chunk);
    }
}

/// A uniformly random ordering of `0..n` from the keystream of `key` on
/// `stream`: `order[k]` is the row that moves to position `k`.
///
/// Small `n` uses Fisher-Yates. Large `n` uses the Rao-Sandelius method:
/// every row gets an independent uniform bucket label, each bucket is
/// Fisher-Yates shuffled (it fits in cache), and the buckets are
/// concatenated. The result is exactly uniform, and it avoids the cache miss
/// per swap that Fisher-Yates pays on a column of millions of rows.
pub(crate) fn permutation(key: &[u8; 32], stream: u64, n: usize) -> Vec<u32> {
    let mut rng = ChaCha8Rng::from_seed(*key);
    rng.set_stream(stream);
    if n < BUCKETED_FROM {
        let mut order: Vec<u32> = (0..n as u32).collect();
        fisher_yates(&mut rng, &mut order);
        return order;
    }
    bucketed(&mut rng, n, BUCKET_BITS)
}

/// The Rao-Sandelius ordering of `0..n` with `2^bucket_bits` buckets.
fn bucketed(rng: &mut ChaCha8Rng, n: usize, bucket_bits: u32) -> Vec<u32> {
    let buckets = 1usize << bucket_bits;
    let mut labels = vec![0u64; n.div_ceil(8)];
    rng.fill_bytes(bytemuck::cast_slice_mut(&mut labels));
    let label = |i: usize| (labels[i / 8].to_le() >> (8 * (i % 8))) as usize & (buckets - 1);
    let mut sizes = vec![0usize; buckets];
    for i in 0..n {
        sizes[label(i)] += 1;
    }
    let mut starts = vec![0usize; buckets + 1];
    for b in 0..buckets {
        starts[b + 1] = starts[b] + sizes[b];
    }
    let mut order = vec![0u32; n];
    let mut cursor = starts.clone();
    for i in 0..n {
        let b = label(i);
        order[cursor[b]] = i as u32;
        cursor[b] += 1;
    }
    for b in 0..buckets {
        fisher_yates(rng, &mut order[starts[b]..starts[b + 1]]);
    }
    order
}

/// Rows from which [`permutation`] buckets.
const BUCKETED_FROM: usize = 1 << 16;
/// log2 of the number of buckets: 256 buckets of a million rows hold 16 KiB
/// each.
const BUCKET_BITS: u32 = 8;

fn fisher_yates(rng: &mut ChaCha8Rng, values: &mut [u32]) {
    for i in (1..values.len()).rev() {
        // Lemire's multiply-shift: bias below n / 2^64, negligible.
        let j = ((rng.next_u64() as u128 * (i as u128 + 1)) >> 64) as usize;
        values.swap(i, j);
    }
}

/// A 32-byte seed from the OS generator.
pub(crate) fn os_seed() -> Result<[u8; 32], Error> {
    let mut seed = [0u8; 32];
    // The one place the core reads the OS generator.
    #[allow(clippy::disallowed_methods)]
    getrandom::fill(&mut seed).map_err(Error::Randomness)?;
    Ok(seed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fill_is_chunk_and_thread_independent() {
        let key = [7u8; 32];
        let mut a = vec![0u64; CHUNK_WORDS * 3 + 5];
        let mut b = vec![0u64; CHUNK_WORDS * 3 + 5];
        fill(&key, 9, &mut a, false);
        fill(&key, 9, &mut b, true);
        assert_eq!(a, b);
        let mut c = vec![0u64; 10];
        fill(&key, 9, &mut c, false);
        assert_eq!(&a[..10], &c[..]);
        let mut d = vec![0u64; 10];
        fill(&key, 10, &mut d, false);
        assert_ne!(c, d);
    }

    fn assert_permutation(perm: &[u32]) {
        let mut seen = vec![false; perm.len()];
        for &p in perm {
            assert!(!seen[p as usize]);
            seen[p as usize] = true;
        }
    }

    #[test]
    fn permutation_is_a_permutation() {
        assert_permutation(&permutation(&[3u8; 32], 1, 1000));
        assert_permutation(&permutation(&[3u8; 32], 1, BUCKETED_FROM + 77));
        assert!(permutation(&[3u8; 32], 1, 0).is_empty());
        assert_ne!(
            permutation(&[3u8; 32], 1, 1000),
            permutation(&[3u8; 32], 2, 1000)
        );
    }

    /// The bucketed method on 4 rows and 2 buckets gives all 24 orderings
    /// equally often (chi-square, 23 degrees of freedom, p = 0.001 bound
    /// 49.73).
    #[test]
    fn bucketed_orderings_are_uniform() {
        let mut rng = ChaCha8Rng::from_seed([5u8; 32]);
        let runs = 24 * 400;
        let mut counts = std::collections::HashMap::new();
        for _ in 0..runs {
            *counts.entry(bucketed(&mut rng, 4, 1)).or_insert(0f64) += 1.0;
        }
        assert_eq!(counts.len(), 24);
        let expected = runs as f64 / 24.0;
        let chi: f64 = counts
            .values()
            .map(|c| (c - expected).powi(2) / expected)
            .sum();
        assert!(chi < 49.73, "chi-square {chi}");
    }

    /// Where row 0 and row n-1 land, over many streams, must be uniform
    /// over 64 position bins in the bucketed path as in Fisher-Yates
    /// (chi-square, 63 degrees of freedom, p = 0.001 bound 103.4).
    #[test]
    fn bucketed_permutation_positions_are_uniform() {
        let n = BUCKETED_FROM + 123;
        let runs = 640;
        for row in [0usize, n - 1] {
            let mut bins = [0f64; 64];
            for stream in 0..runs {
                let order = permutation(&[9u8; 32], stream, n);
                let position = order.iter().position(|&r| r as usize == row).unwrap();
                bins[position * 64 / n] += 1.0;
            }
            let expected = runs as f64 / 64.0;
            let chi: f64 = bins.iter().map(|b| (b - expected).powi(2) / expected).sum();
            assert!(chi < 103.4, "row {row}: chi-square {chi}");
        }
    }

    #[test]
    fn session_keys_differ_per_query() {
        let keys = PairKeys::from_bytes([1; 32], [2; 32]);
        let a = keys.derive(0, 1);
        let b = keys.derive(0, 2);
        assert_ne!(a.with_prev, b.with_prev);
        assert_ne!(a.with_prev, a.with_next);
        assert_eq!(format!("{keys:?}"), "PairKeys(..)");
    }
}
