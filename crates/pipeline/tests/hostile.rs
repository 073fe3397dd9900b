//! Pipeline files from requesters (inside job requests) and from disk, on
//! hostile input through the public API: arbitrary bytes and byte-level
//! edits of a valid file never panic, whatever parses orders and digests,
//! and deep nesting is an error rather than a stack overflow. (The unit
//! tests cover arbitrary strings and text-level edits.)

use std::path::Path;

use proptest::prelude::*;
use triad_pipeline::{ErrorKind, Pipeline, ScriptInfo, TEXT_BYTES_MAX, load_str};

/// One edit of a file's bytes.
#[path = "../../../testkit/mutate.rs"]
mod mutate;
use mutate::{apply, edit};

const VALID: &str = "\
version: 1
actions:
  merge_tables:
    script: scripts/merge.approved
    inputs:
      party1: 3f2a3f2a3f2a3f2a3f2a3f2a3f2a3f2a3f2a3f2a3f2a3f2a3f2a3f2a3f2a3f2a
      party2: 9b1c9b1c9b1c9b1c9b1c9b1c9b1c9b1c9b1c9b1c9b1c9b1c9b1c9b1c9b1c9b1c
    outputs:
      highly_sensitive:
        merged: table
  monthly_sums:
    script: scripts/sums.approved
    needs: [merge_tables]
    inputs:
      merged: merge_tables.merged
    outputs:
      moderately_sensitive:
        sums: aggregates
";

fn scripts(path: &Path) -> Result<ScriptInfo, String> {
    let (stores, reveals) = match path.to_str() {
        Some("scripts/merge.approved") => (true, false),
        Some("scripts/sums.approved") => (false, true),
        _ => return Err("no such file".into()),
    };
    Ok(ScriptInfo {
        digest: "00".repeat(32),
        stores,
        reveals,
        bindings: None,
    })
}

/// Everything a node does with a pipeline it is sent; a parsed pipeline
/// must order its actions and digest the same way twice.
fn exercise(bytes: &[u8]) -> Result<(), TestCaseError> {
    let text = String::from_utf8_lossy(bytes);
    let _ = load_str(&text, "hostile.yaml", &scripts);
    if let Ok(pipeline) = Pipeline::parse(&text, "hostile.yaml") {
        let names: Vec<&str> = pipeline.actions.iter().map(|a| a.name.as_str()).collect();
        let _ = pipeline.order(&names);
        let again = Pipeline::parse(&text, "hostile.yaml")
            .map_err(|e| TestCaseError::fail(format!("parsed once, then not: {e:?}")))?;
        prop_assert_eq!(pipeline.digest(), again.digest());
    }
    Ok(())
}

/// Runs `f` on a thread with a quarter of a tokio worker's stack: a stack
/// overflow aborts the test process.
fn on_small_stack<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|scope| {
        std::thread::Builder::new()
            .stack_size(512 << 10)
            .spawn_scoped(scope, f)
            .expect("spawn")
            .join()
            .expect("no panic")
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    #[test]
    fn arbitrary_bytes_parse_consistently_or_are_refused(
        bytes in prop::collection::vec(any::<u8>(), 0..2000),
    ) {
        exercise(&bytes)?;
    }

    #[test]
    fn edited_pipelines_parse_consistently_or_are_refused(
        edits in prop::collection::vec(edit(), 1..5),
    ) {
        let mut bytes = VALID.as_bytes().to_vec();
        apply(&mut bytes, &edits);
        exercise(&bytes)?;
    }
}

#[test]
fn the_valid_pipeline_loads() {
    load_str(VALID, "valid.yaml", &scripts).expect("valid");
}

/// Nesting a megabyte deep, in each of YAML's ways to nest: an error
/// naming the problem, on a small stack.
#[test]
fn deep_nesting_is_an_error_not_a_stack_overflow() {
    let depth = TEXT_BYTES_MAX / 4;
    let texts = [
        "[".repeat(depth),
        "{".repeat(depth),
        format!("a: {}", "{b: ".repeat(depth / 4)),
        (0..900)
            .map(|i| format!("{}- \n", " ".repeat(2 * i)))
            .collect(),
        format!("version: 1\nactions: {}", "[".repeat(depth)),
    ];
    for text in texts {
        let errors = on_small_stack(|| Pipeline::parse(&text, "deep.yaml")).expect_err("refused");
        assert!(!errors.is_empty());
        assert!(
            errors
                .iter()
                .all(|e| matches!(e.kind, ErrorKind::Syntax | ErrorKind::Unsupported)),
            "{errors:?}"
        );
    }
}
