//! What one node receives from another: a protocol frame (words, checked by
//! the ring session against the step it expects) or an engine message (a
//! length-prefixed frame holding bincode, decoded with `api::decode`). The
//! first byte picks which; the rest is the input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde::Serialize;
use serde::de::DeserializeOwned;
use triad_auth::Digest as AuthDigest;
use triad_node::api::{self, ApiError, CallHeader, Reply, ResultShares};
use triad_node::audit::SignedHead;
use triad_node::store::{Handle, StagedUpload};
use triad_ring::{PairKeys, PartyId, Session, SessionConfig, Transport, memory_mesh};

/// A value that decodes must encode to bytes that decode to it again.
fn stable<T: Serialize + DeserializeOwned>(bytes: &[u8]) {
    if let Ok(value) = api::decode::<T>(bytes) {
        let encoded = api::encode(&value);
        let again: T = api::decode(&encoded).expect("a decoded value re-decodes");
        assert_eq!(api::encode(&again), encoded);
    }
}

/// Party 1 sends `bytes` as words to party 0, which expects a reveal of
/// `expected` values from it.
fn protocol_frame(expected: usize, bytes: &[u8]) {
    let words: Vec<u64> = bytes
        .chunks(8)
        .map(|chunk| {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            u64::from_le_bytes(word)
        })
        .collect();
    let [t0, mut t1, _t2] = memory_mesh();
    t1.send(PartyId::P0, words).expect("in-memory send");
    let keys = PairKeys::from_bytes([1; 32], [2; 32]);
    let mut session =
        Session::new(PartyId::P0, t0, &keys, &SessionConfig::default()).expect("session");
    let x = session.public(&vec![5; expected]);
    let _ = session.reveal_to(&x, PartyId::P0);
}

fuzz_target!(|data: &[u8]| {
    let Some((&which, bytes)) = data.split_first() else {
        return;
    };
    match which % 10 {
        0 => protocol_frame(usize::from(which / 10), bytes),
        1 => stable::<CallHeader>(bytes),
        2 => stable::<Reply>(bytes),
        3 => stable::<ResultShares>(bytes),
        4 => stable::<(AuthDigest, u64)>(bytes),
        5 => stable::<Vec<Handle>>(bytes),
        6 => stable::<Result<StagedUpload, ApiError>>(bytes),
        7 => stable::<SignedHead>(bytes),
        8 => stable::<Result<[u8; 32], String>>(bytes),
        _ => stable::<triad_node::jobs::JobSubmission>(bytes),
    }
});
