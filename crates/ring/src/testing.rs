//! Three parties in one process for tests and benchmarks. Keys here are
//! derived from a seed so failures reproduce; this module exists only with
//! the `insecure-test-keys` feature, which production binaries refuse.

use std::thread;
use std::time::Duration;

use crate::error::Error;
use crate::party::PartyId;
use crate::prg::PairKeys;
use crate::session::{Session, SessionConfig};
use crate::transport::{MemoryTransport, memory_mesh};

/// Pairwise keys for all three parties derived from `seed`.
pub fn seeded_keys(seed: u64) -> [PairKeys; 3] {
    let key = |j: usize| {
        let mut hasher = blake3::Hasher::new();
        hasher.update(b"triad/test-keys");
        hasher.update(&seed.to_le_bytes());
        hasher.update(&[j as u8]);
        *hasher.finalize().as_bytes()
    };
    // Party i holds K_i (with prev) and K_{i+1} (with next).
    let k = [key(0), key(1), key(2)];
    [0, 1, 2].map(|i| PairKeys::from_bytes(k[i], k[(i + 1) % 3]))
}

/// Runs `f` as all three parties over an in-memory mesh with keys from
/// `seed`, one thread per party, and returns their results in party order.
/// A stuck protocol fails after a minute instead of hanging.
pub fn run3<R, F>(seed: u64, config: SessionConfig, f: F) -> [Result<R, Error>; 3]
where
    R: Send,
    F: Fn(&mut Session<MemoryTransport>) -> Result<R, Error> + Sync,
{
    run3_in_parts(seed, config, None, f)
}

/// As [`run3`], with senders asked for frames in parts of `part_words`
/// words, as a streaming transport would ask.
pub fn run3_in_parts<R, F>(
    seed: u64,
    config: SessionConfig,
    part_words: Option<usize>,
    f: F,
) -> [Result<R, Error>; 3]
where
    R: Send,
    F: Fn(&mut Session<MemoryTransport>) -> Result<R, Error> + Sync,
{
    let keys = seeded_keys(seed);
    let transports = memory_mesh().map(|t| {
        let t = t.with_timeout(Duration::from_secs(60));
        match part_words {
            Some(words) => t.with_parts(words),
            None => t,
        }
    });
    let f = &f;
    let config = &config;
    thread::scope(|scope| {
        let handles: Vec<_> = transports
            .into_iter()
            .zip(keys.iter())
            .zip(PartyId::ALL)
            .map(|((transport, keys), id)| {
                scope.spawn(move || {
                    let mut session = Session::new(id, transport, keys, config)?;
                    f(&mut session)
                })
            })
            .collect();
        let mut results = handles.into_iter().map(|h| {
            h.join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        });
        [(); 3].map(|_| {
            results
                .next()
                .unwrap_or_else(|| unreachable!("three threads"))
        })
    })
}
