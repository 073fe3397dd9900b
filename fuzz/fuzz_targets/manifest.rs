//! `decode_manifest`: a table's manifest read back from a node's disk.
#![no_main]

use libfuzzer_sys::fuzz_target;
use triad_node::store::decode_manifest;

fuzz_target!(|data: &[u8]| {
    let _ = decode_manifest(data);
});
