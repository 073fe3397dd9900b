//! Executes checked query plans ([`triad_plan::Checked`]) on secret-shared
//! tables: filters as secret masks, oblivious sort-based merges, gated
//! aggregates and group-bys, all as batched whole-column protocols of the
//! core ([`triad_ring::Session`]).
//!
//! Every node runs the same plan on its shares; what the nodes learn is
//! exactly what the plan's public parts say (row counts of the stored
//! arrays, the threshold gate bits, the per-side key uniqueness bits of a
//! merge), never a value or how many rows a filter kept.
//!
//! This crate owns no storage, network or keys: the node loads tables
//! through [`TableSource`], hands in a session over its mesh, and seals
//! what [`execute`] returns. It must not log values.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod aggregate;
mod expr;
mod merge;
mod prune;
pub mod release;

use std::collections::{BTreeMap, BTreeSet};

use triad_plan::{
    Agg, Aggregation, Checked, CheckedOp, CheckedOutput, ColumnInfo, PlanError, TableSchema,
};
use triad_ring::{Arith, Session, SortAlgorithm, Transport};

pub use aggregate::Answer;
pub use release::{ReleasePolicy, Released};

/// One column's shares: one limb per 64-bit word of the type, and the 0/1
/// validity column if the column is nullable.
#[derive(Clone, Debug)]
pub struct SecretColumn {
    /// Public description.
    pub info: ColumnInfo,
    /// Value limbs.
    pub limbs: Vec<Arith>,
    /// Validity (1 where not null), if nullable.
    pub valid: Option<Arith>,
}

/// A table of shares: every column has `rows` elements; `mask` (0/1) marks
/// the rows selected by earlier filters and merges (`None`: all rows).
#[derive(Clone, Debug)]
pub struct SecretTable {
    /// Stored rows, selected or not.
    pub rows: usize,
    /// Columns.
    pub columns: Vec<SecretColumn>,
    /// Row mask.
    pub mask: Option<Arith>,
}

impl SecretTable {
    /// The column called `name`.
    pub fn column(&self, name: &str) -> Option<&SecretColumn> {
        self.columns.iter().find(|c| c.info.name == name)
    }

    /// Public schema.
    pub fn schema(&self) -> TableSchema {
        TableSchema {
            rows: self.rows as u64,
            columns: self.columns.iter().map(|c| c.info.clone()).collect(),
        }
    }
}

/// Where tables come from: the node's store.
pub trait TableSource {
    /// Loads the named columns (and the row mask, if the table has one) of
    /// the table `handle`.
    fn load(&mut self, handle: &str, columns: &BTreeSet<String>) -> Result<SecretTable, ExecError>;
}

/// Deployment rules applied whatever the query asks.
#[derive(Clone, Copy, Debug)]
pub struct Policy {
    /// Smallest threshold any aggregate gets.
    pub min_threshold: u64,
    /// Sort protocol for merges and sorted group-bys. Quicksort's rounds
    /// vary with the random shuffle (never with the data); radix sort's
    /// are fixed, which tests of the nodes' view rely on.
    pub sort: SortAlgorithm,
    /// The deployment's disclosure-control rule for answers (`None`, the
    /// default: answers are exact, as without this field).
    ///
    /// When set, every [`Outcome::Answer`] of an aggregate or a group-by is
    /// released under it, in MPC, before its shares leave the nodes:
    ///
    /// - the gate threshold is at least the policy's `min_threshold` (the
    ///   larger of it, [`Policy::min_threshold`] and the query's);
    /// - for each group that passed its gate (or the single aggregate),
    ///   every count the gate compared with the threshold goes through
    ///   [`release::apply`]; the group is *redacted* when any of them is
    ///   at most [`ReleasePolicy::redaction_bound`];
    /// - count words (a count, and the count of a mean or a var) become the
    ///   rounded count ([`ReleasePolicy::apply_plain`]), 0 in a redacted
    ///   group; sum words (a sum, and the sum and the sum of squares of a
    ///   mean or a var) stay exact, 0 in a redacted group; keys are kept;
    /// - one word per passing group is appended after all the groups'
    ///   words: its redaction bit (1: redacted). See [`Answer`] for the
    ///   layout and [`release::released_layout`] for the client's split;
    /// - [`Answer::rule`] carries [`ReleasePolicy::describe`].
    ///
    /// `min` and `max` reveal one row's value, which neither rounding nor
    /// redaction protects: under a release policy they are refused with
    /// [`ExecError::Unsupported`] before anything is loaded or sent. Means
    /// and variances are derived by the client from the released sums and
    /// the rounded count (approximate by design).
    ///
    /// The nodes learn nothing more than without a policy: the same gate
    /// bits are opened and nothing else; the extra rounds and bytes depend
    /// only on the number of passing groups (public already), the plan and
    /// the policy. Stored tables ([`Outcome::Table`]) do not leave the
    /// nodes and are not affected.
    pub release: Option<ReleasePolicy>,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            min_threshold: 3,
            sort: SortAlgorithm::Quick,
            release: None,
        }
    }
}

impl Policy {
    /// The threshold an aggregate gets: the query's, raised to the
    /// deployment's minimum and the release policy's, and at least 1.
    pub fn threshold(&self, query: u64) -> u64 {
        query
            .max(self.min_threshold)
            .max(self.release.map_or(0, |r| r.min_threshold))
            .max(1)
    }
}

/// What a query produced.
#[derive(Debug)]
pub enum Outcome {
    /// Aggregates behind their gates, as shares to send to the requester.
    Answer(Answer),
    /// A new secret table to store.
    Table(SecretTable),
}

/// Why a query did not produce a result.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    /// The plan does not type against the tables.
    #[error(transparent)]
    Plan(#[from] PlanError),
    /// The gate counted fewer rows than the threshold; nothing was revealed.
    #[error("threshold not met: the aggregate needs at least {threshold} rows")]
    ThresholdNotMet {
        /// The threshold applied.
        threshold: u64,
    },
    /// Neither side of a merge has unique keys among its selected rows.
    #[error(
        "merge keys are not unique on either side among the selected rows (one side must be unique)"
    )]
    NotUnique,
    /// A table could not be loaded.
    #[error("table {handle}: {reason}")]
    Table {
        /// Handle.
        handle: String,
        /// Why.
        reason: String,
    },
    /// A valid plan this version cannot run.
    #[error("not supported: {0}")]
    Unsupported(String),
    /// The protocol failed (a peer went away, a malformed message).
    #[error(transparent)]
    Protocol(#[from] triad_ring::Error),
}

/// The columns `checked` reads from each input table (by handle as the
/// plan writes it): a node need read no others.
pub fn input_columns(checked: &Checked) -> BTreeMap<String, BTreeSet<String>> {
    let needed = prune::needed_columns(checked);
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (frame, columns) in checked.frames.iter().zip(needed) {
        if let CheckedOp::Table { handle } = &frame.op {
            out.entry(handle.clone()).or_default().extend(columns);
        }
    }
    out
}

/// Refuses, before anything runs, an answer that `release` cannot release:
/// an invalid policy, or a min or a max.
fn check_release(checked: &Checked, release: &ReleasePolicy) -> Result<(), ExecError> {
    let aggregations: Vec<&Aggregation> = match &checked.output {
        CheckedOutput::Store { .. } => return Ok(()),
        CheckedOutput::Aggregate { aggregation, .. } => vec![aggregation],
        CheckedOutput::GroupBy { aggregations, .. } => {
            aggregations.iter().map(|(a, _)| a).collect()
        }
    };
    release.check()?;
    for a in aggregations {
        if matches!(a.agg, Agg::Min | Agg::Max) {
            return Err(ExecError::Unsupported(format!(
                "{} under the deployment's release policy: it reveals one row's value, \
                 which rounding and redaction cannot protect",
                a.agg.name()
            )));
        }
    }
    Ok(())
}

/// Runs `checked` with `session`, loading inputs from `tables`.
///
/// With [`Policy::release`] set, answers are released under it (see
/// there); a plan it cannot release is refused before any table is loaded.
pub fn execute<T: Transport>(
    session: &mut Session<T>,
    checked: &Checked,
    tables: &mut dyn TableSource,
    policy: &Policy,
) -> Result<Outcome, ExecError> {
    if let Some(release) = &policy.release {
        check_release(checked, release)?;
    }
    let needed = prune::needed_columns(checked);
    let mut remaining = prune::uses(checked);
    let mut frames: Vec<Option<SecretTable>> = Vec::with_capacity(checked.frames.len());
    for (index, frame) in checked.frames.iter().enumerate() {
        if remaining[index] == 0 {
            frames.push(None);
            continue;
        }
        let mut take = |id: u32| prune::take(&mut frames, &mut remaining, id);
        let table = match &frame.op {
            CheckedOp::Table { handle } => tables.load(handle, &needed[index])?,
            CheckedOp::Filter { input, predicate } => {
                let mut table = take(*input)?;
                let mask = table.mask.take();
                table.mask = Some(expr::filter_mask(
                    session,
                    &table,
                    predicate,
                    mask.as_ref(),
                )?);
                table
            }
            CheckedOp::WithColumn { input, name, expr } => {
                let mut table = take(*input)?;
                if !needed[index].contains(name) {
                    frames.push(Some(table));
                    continue;
                }
                let info = frame
                    .schema
                    .column(name)
                    .cloned()
                    .ok_or_else(|| ExecError::Unsupported(format!("column {name}")))?;
                let column = expr::column(session, &table, expr, info)?;
                match table.columns.iter_mut().find(|c| &c.info.name == name) {
                    Some(c) => *c = column,
                    None => table.columns.push(column),
                }
                table
            }
            CheckedOp::Select { input, columns } => {
                let mut table = take(*input)?;
                let mut kept = Vec::new();
                for name in columns {
                    if let Some(pos) = table.columns.iter().position(|c| &c.info.name == name) {
                        kept.push(table.columns.swap_remove(pos));
                    }
                }
                table.columns = kept;
                table
            }
            CheckedOp::Merge {
                left,
                right,
                how,
                keys,
                left_columns,
                right_columns,
            } => {
                let l = take(*left)?;
                let r = take(*right)?;
                merge::merge(
                    session,
                    &l,
                    &r,
                    *how,
                    keys,
                    left_columns,
                    right_columns,
                    &frame.schema,
                    &needed[index],
                    policy.sort,
                )?
            }
        };
        frames.push(Some(table));
    }
    match &checked.output {
        CheckedOutput::Store { frame } => {
            let table = prune::take(&mut frames, &mut remaining, *frame)?;
            Ok(Outcome::Table(table))
        }
        CheckedOutput::Aggregate {
            frame,
            aggregation,
            column,
            threshold,
        } => {
            let table = prune::take(&mut frames, &mut remaining, *frame)?;
            aggregate::aggregate(
                session,
                &table,
                aggregation,
                column.as_ref(),
                policy.threshold(*threshold),
                policy.release.as_ref(),
            )
            .map(Outcome::Answer)
        }
        CheckedOutput::GroupBy {
            frame,
            keys,
            aggregations,
            threshold,
            form,
        } => {
            let table = prune::take(&mut frames, &mut remaining, *frame)?;
            aggregate::group_by(
                session,
                &table,
                keys,
                aggregations,
                policy.threshold(*threshold),
                form,
                policy.sort,
                policy.release.as_ref(),
            )
            .map(Outcome::Answer)
        }
    }
}
