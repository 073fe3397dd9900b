//! `decode_column`: a share column file read back from a node's disk. The
//! first byte picks the party whose file it claims to be.
#![no_main]

use libfuzzer_sys::fuzz_target;
use triad_node::store::{decode_column, encode_column};
use triad_ring::PartyId;

fuzz_target!(|data: &[u8]| {
    let Some((&party, bytes)) = data.split_first() else {
        return;
    };
    let party = PartyId::ALL[usize::from(party) % 3];
    if let Ok(shares) = decode_column(bytes, party) {
        assert_eq!(encode_column(party, &shares), bytes);
    }
});
