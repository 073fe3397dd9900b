//! What a pipeline file says, once read: actions, scripts, inputs, outputs,
//! each with the place it was written so that later checks can point at it.

use std::fmt;

use serde::Serialize;

use crate::error::Position;

/// A value and where the file says it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spanned<T> {
    /// The value.
    pub value: T,
    /// Where it is written.
    pub position: Position,
}

/// A parsed `triad.yaml`: its actions in file order.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Pipeline {
    /// The format version; [`VERSION`](crate::VERSION) is the only one.
    pub version: u32,
    /// The actions, in the order the file lists them. That order breaks ties
    /// in [`Pipeline::order`](crate::Pipeline::order), so it is kept.
    pub actions: Vec<Action>,
    /// The name errors carry, as the caller gave it.
    pub(crate) file: String,
}

/// One action: an approved script run on named inputs, and what it leaves.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Action {
    /// The action's name, unique in the pipeline.
    pub name: String,
    /// Where the name is written.
    pub position: Position,
    /// The approved script's path as written, `/`-separated and relative to
    /// the pipeline file (resolving it is the caller's business, so that the
    /// digest does not depend on where the project is checked out).
    pub script: Spanned<String>,
    /// The actions that must run first, as listed.
    pub needs: Vec<Spanned<String>>,
    /// The tables the script reads, by the name it knows them under.
    pub inputs: Vec<Input>,
    /// What the action leaves, each with its privacy level.
    pub outputs: Vec<Output>,
}

/// One table an action reads.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Input {
    /// The name the script knows the table under.
    pub name: String,
    /// Where the table comes from.
    pub source: InputSource,
    /// Where the input is written.
    pub position: Position,
}

/// Where an input table comes from.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum InputSource {
    /// A table already on the nodes, by its handle (64 lowercase hex).
    Handle(String),
    /// A `highly_sensitive` table that another action stores.
    Output {
        /// The action, which must be in `needs`.
        action: String,
        /// One of that action's outputs.
        output: String,
    },
}

impl fmt::Display for InputSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InputSource::Handle(handle) => f.write_str(handle),
            InputSource::Output { action, output } => write!(f, "{action}.{output}"),
        }
    }
}

/// One output of an action.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Output {
    /// The output's name; others refer to it as `action.output`.
    pub name: String,
    /// The privacy level it is declared under.
    pub level: Level,
    /// What it is.
    pub kind: OutputKind,
    /// Where the output is written.
    pub position: Position,
}

/// An output's privacy level, as in OpenSAFELY's `project.yaml`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    /// Secret tables: shares on the three nodes, never revealed; others can
    /// only run approved scripts on them.
    HighlySensitive,
    /// Revealed aggregates, after disclosure control, encrypted to the
    /// requester; the only outputs a release can ever include.
    ModeratelySensitive,
}

impl Level {
    /// The key that names the level in the file.
    pub fn key(self) -> &'static str {
        match self {
            Level::HighlySensitive => "highly_sensitive",
            Level::ModeratelySensitive => "moderately_sensitive",
        }
    }
}

/// What an output is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OutputKind {
    /// A secret table the script stores: must be `highly_sensitive`.
    Table,
    /// Aggregates the script reveals: must be `moderately_sensitive`.
    Aggregates,
}

impl OutputKind {
    /// The word that names the kind in the file.
    pub fn word(self) -> &'static str {
        match self {
            OutputKind::Table => "table",
            OutputKind::Aggregates => "aggregates",
        }
    }

    /// The kind in a sentence: "a table", "aggregates".
    pub fn described(self) -> &'static str {
        match self {
            OutputKind::Table => "a table",
            OutputKind::Aggregates => "aggregates",
        }
    }
}

/// What a script checker says about an approved script. The checker is the
/// caller's (the client decodes `.approved` files, and pulls polars), so
/// this crate only needs the facts it checks outputs against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScriptInfo {
    /// The approved script's digest (hex), for callers that record which
    /// script an action ran.
    pub digest: String,
    /// Some step stores a table: needed for a `table` output.
    pub stores: bool,
    /// Some step reveals aggregates: needed for an `aggregates` output, and
    /// then the action must declare one.
    pub reveals: bool,
    /// Which tables the script reads and stores, when the checker knows:
    /// then the action's inputs must be exactly what the script reads.
    pub bindings: Option<ScriptBindings>,
}

/// The tables an approved script reads and the steps that store, against
/// which an action's inputs and outputs are checked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScriptBindings {
    /// The steps that store a table, in order: the action's `table`
    /// outputs, in file order, name them.
    pub stored_steps: Vec<u32>,
    /// The production tables (handles) the script reads: each must be a
    /// handle input of the action, and each handle input one of these.
    pub reads: Vec<String>,
    /// The tables of other approved scripts it reads, as (script digest,
    /// step): each must be an input naming the `table` output that step
    /// stores.
    pub reads_outputs: Vec<(String, u32)>,
}

/// A pipeline's digest: BLAKE3 over its canonical form, shown as 64
/// lowercase hex.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PipelineDigest(pub [u8; 32]);

impl fmt::Display for PipelineDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for byte in self.0 {
            write!(f, "{byte:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for PipelineDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PipelineDigest({self})")
    }
}
