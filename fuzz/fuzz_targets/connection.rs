//! `ConnectionFile::load`: the client's connection file. Needs the
//! `client` feature: `cargo +nightly fuzz run connection --features client`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use triad_client::ConnectionFile;

fuzz_target!(|data: &[u8]| {
    let path = std::env::temp_dir().join(format!("triad-fuzz-connection-{}", std::process::id()));
    std::fs::write(&path, data).expect("the fuzzer's temporary file");
    if let Ok(file) = ConnectionFile::load(&path) {
        let indices: Vec<usize> = file.nodes.iter().map(|n| n.index).collect();
        assert_eq!(indices, [0, 1, 2]);
    }
});
