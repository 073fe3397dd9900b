//! `ConfigFile::read`: a node's configuration file.
#![no_main]

use libfuzzer_sys::fuzz_target;
use triad_node::config::ConfigFile;

fuzz_target!(|data: &[u8]| {
    let path = std::env::temp_dir().join(format!("triad-fuzz-config-{}.toml", std::process::id()));
    std::fs::write(&path, data).expect("the fuzzer's temporary file");
    let _ = ConfigFile::read(&path);
});
