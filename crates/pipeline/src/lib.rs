//! triad pipeline files (`triad.yaml`): which approved scripts run in which
//! order, on which tables, and what each leaves at which privacy level.
//!
//! The format follows OpenSAFELY's `project.yaml`, with triad's meaning for
//! the two levels: `highly_sensitive` outputs are secret tables that stay
//! on the three nodes as shares (handles, never revealed); a
//! `moderately_sensitive` output is revealed aggregates.
//!
//! ```yaml
//! version: 1
//! actions:
//!   merge_tables:
//!     script: scripts/merge.approved      # an approved script, relative to this file
//!     inputs:
//!       party1: 3f2a...                   # a production handle: 64 lowercase hex
//!       party2: 9b1c...
//!     outputs:
//!       highly_sensitive:
//!         merged: table                   # a secret table the script stores
//!   monthly_sums:
//!     script: scripts/sums.approved
//!     needs: [merge_tables]
//!     inputs:
//!       merged: merge_tables.merged       # an output of an action in `needs`
//!     outputs:
//!       moderately_sensitive:
//!         sums: aggregates                # aggregates the script reveals
//! ```
//!
//! # Decisions
//!
//! - **Every error at once, each with its line.** A serde derive stops at
//!   the first problem and forgets where keys were; so the text is read with
//!   saphyr-parser (the maintained successor of yaml-rust, YAML 1.2, no
//!   unsafe code of its own, two small dependencies; serde_yaml is
//!   deprecated, serde_yml unsound: RUSTSEC-2025-0068) into a small tree
//!   that keeps positions and duplicate keys, and [`Pipeline::parse`] walks
//!   it, going on past each problem. [`load`] and [`load_str`] then run
//!   [`Pipeline::validate`] on whatever was read, so a file with an unknown
//!   key still has its cycles reported. Only a YAML syntax error stops
//!   everything.
//! - **Output names are per action.** Others refer to an output as
//!   `action.output`, so two actions may both have `merged`; the clashes are
//!   one name twice in one action, within a level or across the two.
//! - **Duplicate keys are errors**, above all two actions of one name,
//!   which YAML readers commonly resolve by keeping the last silently.
//! - **The file format is strict**: no aliases (a line number must point at
//!   the text that means it), one document, names of `[A-Za-z0-9_-]{1,64}`
//!   (no dots: they separate `action.output`), at most [`TEXT_BYTES_MAX`].
//! - **Scripts are checked through the caller.** Deciding whether a file is
//!   an approved script means decoding it, which lives in the client crate
//!   with polars behind it; [`Pipeline::validate`] takes a checker returning
//!   a [`ScriptInfo`], and checks outputs against what the script does.
//!   A script that reveals must have an `aggregates` output: whatever leaves
//!   the nodes is labelled. When the checker also says which tables the
//!   script reads ([`ScriptBindings`]), the action's inputs must be exactly
//!   those: its handle inputs the production tables the script names, and
//!   each `action.output` input a table that other action's script stores
//!   (its `table` outputs, in file order, are its storing steps in order)
//!   and this script reads by that script's digest and step.
//! - **Inputs read tables.** An input is a handle or a `table` output of an
//!   action in `needs`; revealed aggregates are not on the nodes to read.
//! - **The digest is of the meaning, not the text.** [`Pipeline::digest`]
//!   hashes a canonical JSON form with sorted keys, so comments, quoting,
//!   indentation and key order do not change it; it covers script paths,
//!   not script contents, which have their own digests.
//! - **Order is a function of the file.** [`Pipeline::order`] returns the
//!   requested actions and everything they need, dependencies first, ties
//!   broken by file order.
//!
//! This crate owns the file format, its validation and the run order. It
//! must not execute anything, touch the network or depend on polars (or on
//! the client crate that brings it): job execution, the portal and the
//! release policy build on it elsewhere.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod error;
mod model;
mod parse;
mod validate;
mod yaml;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::Read;
use std::path::Path;

use serde::Serialize;

pub use error::{Error, ErrorKind, Position};
pub use model::{
    Action, Input, InputSource, Level, Output, OutputKind, Pipeline, PipelineDigest,
    ScriptBindings, ScriptInfo, Spanned,
};

use error::{Report, finish};

/// The only format version: `version: 1`.
pub const VERSION: u32 = 1;

/// The largest pipeline file read. Pipelines are a page or two; the limit
/// keeps a mistaken path (a data file) from being parsed at length.
pub const TEXT_BYTES_MAX: usize = 1 << 20;

/// Separates pipeline digests from every other BLAKE3 use in triad.
const DIGEST_CONTEXT: &str = "triad pipeline 2025 canonical form v1";

impl Pipeline {
    /// Reads a pipeline's structure: YAML, keys, types, names, versions and
    /// the shape of every action. `file` names the text in errors. Checks
    /// across actions and scripts are [`Pipeline::validate`]'s; to get every
    /// error of a file at once use [`load_str`] or [`load`].
    pub fn parse(text: &str, file: &str) -> Result<Pipeline, Vec<Error>> {
        let (pipeline, errors) = read(text, file);
        match pipeline {
            Some(pipeline) if errors.is_empty() => Ok(pipeline),
            _ => Err(finish(errors)),
        }
    }

    /// Checks across actions: needs exist and form no cycle, inputs read
    /// declared table outputs of needed actions, levels match kinds, and
    /// each script is approved (by `check_script`, given the script path as
    /// written) and does what the outputs say. Returns every problem,
    /// sorted; empty when the pipeline is valid.
    pub fn validate(
        &self,
        check_script: &dyn Fn(&Path) -> Result<ScriptInfo, String>,
    ) -> Vec<Error> {
        let mut report = Report::new(&self.file);
        validate::validate(self, check_script, &mut report);
        finish(report.errors)
    }

    /// The name errors carry, as given to [`Pipeline::parse`].
    pub fn file(&self) -> &str {
        &self.file
    }

    /// The action called `name`.
    pub fn action(&self, name: &str) -> Option<&Action> {
        self.actions.iter().find(|a| a.name == name)
    }

    /// The `requested` actions and all they need, transitively, each once,
    /// every action after those it needs; among actions free to go next,
    /// the one earlier in the file goes first. Fails on an unknown action
    /// and on a cycle or a bad need among those to run.
    pub fn order(&self, requested: &[&str]) -> Result<Vec<&Action>, Error> {
        validate::order(self, requested)
    }

    /// The canonical form the digest covers: compact JSON, keys sorted, no
    /// positions, needs as a set. Two files that mean the same pipeline
    /// have the same canonical form.
    pub fn canonical(&self) -> String {
        let actions = self
            .actions
            .iter()
            .map(|action| {
                let mut outputs: BTreeMap<Level, BTreeMap<&str, OutputKind>> = BTreeMap::new();
                for output in &action.outputs {
                    outputs
                        .entry(output.level)
                        .or_default()
                        .insert(&output.name, output.kind);
                }
                let canonical = CanonicalAction {
                    script: &action.script.value,
                    needs: action.needs.iter().map(|n| n.value.as_str()).collect(),
                    inputs: action
                        .inputs
                        .iter()
                        .map(|i| (i.name.as_str(), i.source.to_string()))
                        .collect(),
                    outputs,
                };
                (action.name.as_str(), canonical)
            })
            .collect();
        let canonical = Canonical {
            version: self.version,
            actions,
        };
        // Serialising maps with string keys, strings and enums cannot fail.
        serde_json::to_string(&canonical).unwrap_or_default()
    }

    /// BLAKE3 (in derive-key mode, with a context of its own) over
    /// [`Pipeline::canonical`]: what a job request records as the pipeline
    /// it ran.
    pub fn digest(&self) -> PipelineDigest {
        let mut hasher = blake3::Hasher::new_derive_key(DIGEST_CONTEXT);
        hasher.update(self.canonical().as_bytes());
        PipelineDigest(*hasher.finalize().as_bytes())
    }
}

#[derive(Serialize)]
struct Canonical<'a> {
    version: u32,
    actions: BTreeMap<&'a str, CanonicalAction<'a>>,
}

#[derive(Serialize)]
struct CanonicalAction<'a> {
    script: &'a str,
    needs: BTreeSet<&'a str>,
    inputs: BTreeMap<&'a str, String>,
    outputs: BTreeMap<Level, BTreeMap<&'a str, OutputKind>>,
}

fn read(text: &str, file: &str) -> (Option<Pipeline>, Vec<Error>) {
    let mut report = Report::new(file);
    if text.len() > TEXT_BYTES_MAX {
        report.errors.push(Error::unplaced(
            file,
            ErrorKind::Io,
            format!(
                "{} bytes is larger than a pipeline file may be ({TEXT_BYTES_MAX})",
                text.len()
            ),
        ));
        return (None, report.errors);
    }
    let pipeline = parse::read(text, &mut report);
    (pipeline, report.errors)
}

/// Parses and validates `text` (named `file` in errors), reporting every
/// problem of both at once, sorted. `check_script` gets script paths as
/// written.
pub fn load_str(
    text: &str,
    file: &str,
    check_script: &dyn Fn(&Path) -> Result<ScriptInfo, String>,
) -> Result<Pipeline, Vec<Error>> {
    let (pipeline, mut errors) = read(text, file);
    let Some(pipeline) = pipeline else {
        return Err(finish(errors));
    };
    errors.extend(pipeline.validate(check_script));
    if errors.is_empty() {
        Ok(pipeline)
    } else {
        Err(finish(errors))
    }
}

/// Reads the pipeline file at `path` and does [`load_str`], with script
/// paths resolved against the file's directory before `check_script` sees
/// them, as an analyst writes them.
pub fn load(
    path: &Path,
    check_script: &dyn Fn(&Path) -> Result<ScriptInfo, String>,
) -> Result<Pipeline, Vec<Error>> {
    let file = path.display().to_string();
    let io = |message: String| vec![Error::unplaced(&file, ErrorKind::Io, message)];
    let handle = fs::File::open(path).map_err(|e| io(format!("cannot read: {e}")))?;
    let mut bytes = Vec::new();
    // One byte past the limit is enough to know it is too large.
    handle
        .take(TEXT_BYTES_MAX as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| io(format!("cannot read: {e}")))?;
    if bytes.len() > TEXT_BYTES_MAX {
        return Err(io(format!(
            "larger than a pipeline file may be ({TEXT_BYTES_MAX} bytes)"
        )));
    }
    let text = String::from_utf8(bytes).map_err(|_| io("not UTF-8 text".into()))?;
    let base = path.parent().unwrap_or(Path::new(""));
    load_str(&text, &file, &|script| check_script(&base.join(script)))
}

#[cfg(test)]
mod tests;
