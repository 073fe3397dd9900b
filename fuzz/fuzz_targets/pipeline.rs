//! `Pipeline::parse` and `load_str`: pipeline files, sent inside job
//! requests and read from disk.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use triad_pipeline::{Pipeline, ScriptInfo, load_str};

fn scripts(path: &Path) -> Result<ScriptInfo, String> {
    let name = path.to_string_lossy();
    Ok(ScriptInfo {
        digest: "00".repeat(32),
        stores: name.contains('s'),
        reveals: name.contains('r'),
        bindings: None,
    })
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = load_str(&text, "fuzz.yaml", &scripts);
    if let Ok(pipeline) = Pipeline::parse(&text, "fuzz.yaml") {
        let names: Vec<&str> = pipeline.actions.iter().map(|a| a.name.as_str()).collect();
        let _ = pipeline.order(&names);
        let _ = pipeline.digest();
    }
});
