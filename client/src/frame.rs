//! The DataFrame API: secret frames built like polars or crandas frames,
//! run as query plans on the three nodes.
//!
//! ```no_run
//! use triad_client::prelude::*;
//! # fn main() -> Result<(), triad_client::ClientError> {
//! # let client = triad_client::Client::connect_file("triad.conn".as_ref())?;
//! # let h1: Handle = "11".repeat(32).parse().unwrap();
//! # let h2: Handle = "22".repeat(32).parse().unwrap();
//! let party1 = client.frame(&h1)?;
//! let party2 = client.frame(&h2)?;
//! let merged = party1.merge(&party2, How::Inner, &["year", "month", "day"]);
//! let may = merged.filter((col("condition_y").eq(1) & col("month").eq(5)).with_threshold(3));
//! match may.sum("condition_y") {
//!     Ok(sum) => println!("May: {sum}"),
//!     Err(e) if e.is_threshold_not_met() => println!("May: suppressed"),
//!     Err(e) => return Err(e),
//! }
//! # Ok(())
//! # }
//! ```
//!
//! A [`SecretFrame`] is a plan under construction: the frame operators so
//! far ([`triad_plan::Frame`]) and the public schema of every table they
//! read. Building one (`filter`, `merge`, `with_column`, `select`) is local
//! and sends nothing. The terminal operations (`sum`, `count`, `mean`,
//! `var`, `min`, `max`, [`GroupBy::agg`], `store`) type the plan here with
//! [`triad_plan::check`] (so an unknown column or a sum that could overflow
//! fails at once, with nothing sent), then send it, signed, to the three
//! nodes, which run it on secret shares.
//!
//! # What is revealed, and to whom
//!
//! The plan itself is public to the nodes (and signed and logged). Beyond
//! it:
//!
//! - **Filters** reveal nothing: they make a secret mask, the frame keeps
//!   its length, and how many rows a filter kept stays secret.
//! - **Merges** reveal to the nodes, and only to them, whether each side's
//!   keys are unique among its selected rows (two bits: one side must be
//!   unique, or the query fails with [`ClientError::NotUnique`]). The
//!   output has one row per input row and a secret mask, so its size says
//!   nothing about how many rows matched.
//! - **Aggregates** (`sum`, `count`, ...) sit behind a threshold gate: the
//!   selected, non-null rows of the aggregated column are counted in secret
//!   and compared with the threshold (the largest `with_threshold` along the
//!   frame's filters, the aggregate's own threshold and the deployment's
//!   minimum). The gate's outcome is revealed to the nodes and the client.
//!   If it passed, the aggregate is revealed to this client only (sealed
//!   to a key only it holds); if it failed, nothing else is revealed and
//!   the operation returns [`ClientError::ThresholdNotMet`]. `min` and
//!   `max` reveal one row's value.
//! - **Group-bys on a small key domain** (at most
//!   [`triad_plan::DOMAIN_LIMIT`] combinations of the keys' declared
//!   values) reveal, to the nodes and the client, which key combinations
//!   passed their per-group gate, and the aggregates of those groups to
//!   the client.
//! - **Group-bys on wider keys** sort obliviously and reveal how many
//!   groups passed their gate (not which rows formed them); the client
//!   gets the keys and aggregates of the passing groups.
//! - **`store`** reveals nothing: the result is a new secret table (with
//!   its secret mask) whose handle and stored row count (the length of its
//!   arrays, not how many rows are selected) are public.

use std::collections::BTreeMap;

use polars::prelude::DataFrame;
use triad_node::api::TableSummary;
use triad_node::store::Handle;
use triad_plan::{Checked, CheckedOutput, Frame, FrameId, Output, Query, TableSchema, Ty};

pub use triad_plan::{Aggregation, How};

use crate::answer::{Value, decode_aggregation, decode_group_by, groups_to_dataframe};
use crate::error::ClientError;
use crate::expr::{Expr, Predicate};
use crate::remote::{Client, QueryReply};

/// Constructors of [`Aggregation`]s, for [`GroupBy::agg`] and
/// [`SecretFrame::aggregate`].
pub mod agg {
    use triad_plan::{Agg, Aggregation};

    fn of(agg: Agg, column: &str) -> Aggregation {
        Aggregation {
            agg,
            column: Some(column.to_owned()),
        }
    }

    /// Sum of the selected non-null values.
    pub fn sum(column: &str) -> Aggregation {
        of(Agg::Sum, column)
    }

    /// Number of selected rows.
    pub fn count() -> Aggregation {
        Aggregation {
            agg: Agg::Count,
            column: None,
        }
    }

    /// Number of selected rows where `column` is not null.
    pub fn count_column(column: &str) -> Aggregation {
        of(Agg::Count, column)
    }

    /// Mean of the selected non-null values.
    pub fn mean(column: &str) -> Aggregation {
        of(Agg::Mean, column)
    }

    /// Sample variance (ddof 1) of the selected non-null values.
    pub fn var(column: &str) -> Aggregation {
        of(Agg::Var, column)
    }

    /// Smallest selected value (reveals one row's value; not per group).
    pub fn min(column: &str) -> Aggregation {
        of(Agg::Min, column)
    }

    /// Largest selected value (reveals one row's value; not per group).
    pub fn max(column: &str) -> Aggregation {
        of(Agg::Max, column)
    }
}

/// The public schema of a stored table, as the plan checker needs it.
pub fn table_schema(summary: &TableSummary) -> Result<TableSchema, ClientError> {
    let mut columns = Vec::with_capacity(summary.schema.len());
    for c in &summary.schema {
        let ty = Ty::from_tag(&c.type_tag).ok_or_else(|| {
            ClientError::Usage(format!(
                "table {}: column {:?} has unknown type {:?}",
                summary.handle, c.name, c.type_tag
            ))
        })?;
        columns.push(triad_plan::ColumnInfo {
            name: c.name.clone(),
            ty,
            min: c.min,
            max: c.max,
            nullable: c.nullable,
        });
    }
    Ok(TableSchema {
        rows: summary.rows,
        columns,
    })
}

impl Client {
    /// A secret frame of the stored table `handle` (an upload or a stored
    /// query result). Fetches the table's public schema (one listing
    /// call); reveals nothing.
    pub fn frame(&self, handle: &Handle) -> Result<SecretFrame<'_>, ClientError> {
        let summary = self.get_table(handle)?;
        Ok(SecretFrame {
            client: self,
            plan: FramePlan::table(&handle.to_string(), table_schema(&summary)?),
        })
    }

    /// Types `query` against the public schemas of the tables it reads
    /// (fetched with one listing call), as the nodes will; nothing of the
    /// query is sent.
    pub fn check(&self, query: &Query) -> Result<Checked, ClientError> {
        let tables = self.tables()?;
        let mut schemas = BTreeMap::new();
        for t in &tables {
            schemas.insert(t.handle.to_string(), table_schema(t)?);
        }
        Ok(triad_plan::check(query, &|h| schemas.get(h).cloned())?)
    }
}

/// A secret table as a plan under construction: the frame operators so far
/// (the last one is this frame) and the public schemas of the stored tables
/// they read. Cheap to clone; building sends nothing. See the [module
/// documentation](self) for what each operation reveals.
#[derive(Debug, Clone)]
pub struct SecretFrame<'c> {
    client: &'c Client,
    plan: FramePlan,
}

/// The client-free part of a [`SecretFrame`]: frames, schemas, and the
/// first error made while building (a bad literal, frames of two clients),
/// reported by the terminal operation.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct FramePlan {
    frames: Vec<Frame>,
    schemas: BTreeMap<String, TableSchema>,
    error: Option<String>,
}

/// Shifts every frame reference of `frame` by `by`.
fn renumber(frame: &Frame, by: FrameId) -> Frame {
    match frame.clone() {
        Frame::Table { handle } => Frame::Table { handle },
        Frame::Filter {
            input,
            predicate,
            threshold,
        } => Frame::Filter {
            input: input + by,
            predicate,
            threshold,
        },
        Frame::Merge {
            left,
            right,
            how,
            left_on,
            right_on,
            suffixes,
        } => Frame::Merge {
            left: left + by,
            right: right + by,
            how,
            left_on,
            right_on,
            suffixes,
        },
        Frame::WithColumn { input, name, expr } => Frame::WithColumn {
            input: input + by,
            name,
            expr,
        },
        Frame::Select { input, columns } => Frame::Select {
            input: input + by,
            columns,
        },
    }
}

fn owned(names: &[&str]) -> Vec<String> {
    names.iter().map(|s| (*s).to_owned()).collect()
}

fn message(e: ClientError) -> String {
    match e {
        ClientError::BadPlan { message, .. } => message,
        other => other.to_string(),
    }
}

impl FramePlan {
    pub(crate) fn table(handle: &str, schema: TableSchema) -> FramePlan {
        let mut schemas = BTreeMap::new();
        schemas.insert(handle.to_owned(), schema);
        FramePlan {
            frames: vec![Frame::Table {
                handle: handle.to_owned(),
            }],
            schemas,
            error: None,
        }
    }

    fn id(&self) -> FrameId {
        (self.frames.len() - 1) as FrameId
    }

    fn fail(&mut self, message: String) {
        self.error.get_or_insert(message);
    }

    fn push(&self, frame: impl FnOnce(FrameId) -> Result<Frame, ClientError>) -> FramePlan {
        let mut next = self.clone();
        match frame(self.id()) {
            Ok(f) => next.frames.push(f),
            Err(e) => next.fail(message(e)),
        }
        next
    }

    fn filter(&self, predicate: Predicate) -> FramePlan {
        let Predicate { expr, threshold } = predicate;
        self.push(|input| {
            Ok(Frame::Filter {
                input,
                predicate: expr.to_plan()?,
                threshold,
            })
        })
    }

    fn merge(
        &self,
        right: &FramePlan,
        how: How,
        left_on: &[&str],
        right_on: &[&str],
        suffixes: [&str; 2],
    ) -> FramePlan {
        let mut next = self.clone();
        if let Some(e) = &right.error {
            next.fail(e.clone());
        }
        let offset = self.frames.len() as FrameId;
        next.frames
            .extend(right.frames.iter().map(|f| renumber(f, offset)));
        for (handle, schema) in &right.schemas {
            next.schemas
                .entry(handle.clone())
                .or_insert_with(|| schema.clone());
        }
        next.frames.push(Frame::Merge {
            left: self.id(),
            right: offset + right.id(),
            how,
            left_on: owned(left_on),
            right_on: owned(right_on),
            suffixes: [suffixes[0].to_owned(), suffixes[1].to_owned()],
        });
        next
    }

    fn with_column(&self, name: &str, expr: Expr) -> FramePlan {
        self.push(|input| {
            Ok(Frame::WithColumn {
                input,
                name: name.to_owned(),
                expr: expr.to_plan()?,
            })
        })
    }

    fn select(&self, columns: &[&str]) -> FramePlan {
        self.push(|input| {
            Ok(Frame::Select {
                input,
                columns: owned(columns),
            })
        })
    }

    fn query(&self, output: Output) -> Query {
        Query::new(self.frames.clone(), output)
    }

    fn plan(&self, output: Output) -> Result<(Query, Checked), ClientError> {
        if let Some(message) = &self.error {
            return Err(ClientError::BadPlan {
                message: message.clone(),
                plan: None,
            });
        }
        let query = self.query(output);
        let checked = triad_plan::check(&query, &|h| self.schemas.get(h).cloned())?;
        Ok((query, checked))
    }
}

impl<'c> SecretFrame<'c> {
    fn with(&self, plan: FramePlan) -> SecretFrame<'c> {
        SecretFrame {
            client: self.client,
            plan,
        }
    }

    /// The frame operators of the plan so far; the last is this frame.
    pub fn frames(&self) -> &[Frame] {
        &self.plan.frames
    }

    /// Index of this frame in [`frames`](Self::frames).
    pub fn id(&self) -> FrameId {
        self.plan.id()
    }

    /// The rows where `predicate` is true (null counts as false), with the
    /// predicate's threshold if it has one (`expr.with_threshold(n)`): any
    /// aggregate over this frame, or over frames derived from it, must
    /// then count at least `n` rows. Reveals nothing: the rows are masked
    /// in secret, the frame keeps its length.
    pub fn filter(&self, predicate: impl Into<Predicate>) -> SecretFrame<'c> {
        self.with(self.plan.filter(predicate.into()))
    }

    /// Oblivious join with `right` on equal values of the columns `on`
    /// (present on both sides), `how` inner or left; non-key columns
    /// present on both sides get the suffixes `_x` (left) and `_y`
    /// (right), as pandas and crandas. See [`merge_on`](Self::merge_on).
    pub fn merge(&self, right: &SecretFrame<'c>, how: How, on: &[&str]) -> SecretFrame<'c> {
        self.merge_on(right, how, on, on, ["_x", "_y"])
    }

    /// Oblivious join of this frame's `left_on` columns with `right`'s
    /// `right_on` columns (pairwise, same types). An inner join keeps the
    /// rows with a match on both sides; a left join keeps every selected
    /// left row, with the right side's columns null where nothing matched.
    /// Keys must be unique on at least one side among its selected rows.
    /// Key columns keep their left names; other columns present on both
    /// sides get `suffixes`.
    ///
    /// Reveals to the nodes whether each side's keys are unique (two bits;
    /// neither: the query fails with [`ClientError::NotUnique`]); nothing
    /// about which or how many rows matched (the output has one row per
    /// input row, masked in secret). The right frame's operators are
    /// appended to this frame's, renumbered.
    pub fn merge_on(
        &self,
        right: &SecretFrame<'c>,
        how: How,
        left_on: &[&str],
        right_on: &[&str],
        suffixes: [&str; 2],
    ) -> SecretFrame<'c> {
        let mut plan = self
            .plan
            .merge(&right.plan, how, left_on, right_on, suffixes);
        if !std::ptr::eq(self.client, right.client) {
            plan.fail("merge of frames from two different clients".to_owned());
        }
        self.with(plan)
    }

    /// Adds the column `name` (or replaces it), computed row by row from
    /// `expr` in secret. Truth values become bool columns. Reveals nothing.
    pub fn with_column(&self, name: &str, expr: Expr) -> SecretFrame<'c> {
        self.with(self.plan.with_column(name, expr))
    }

    /// Keeps only `columns`, in this order. Reveals nothing.
    pub fn select(&self, columns: &[&str]) -> SecretFrame<'c> {
        self.with(self.plan.select(columns))
    }

    /// The query of this frame's operators with `output` (not checked).
    pub fn query(&self, output: Output) -> Query {
        self.plan.query(output)
    }

    /// Builds and types the query with `output`, as the nodes will; any
    /// error (a bad literal, an unknown column, wrong types, a sum that
    /// could overflow) is a [`ClientError::BadPlan`] and nothing is sent.
    pub fn plan(&self, output: Output) -> Result<(Query, Checked), ClientError> {
        self.plan.plan(output)
    }

    /// This frame's public schema: column names, types, ranges,
    /// nullability and stored rows (masked rows included). Local; fails as
    /// [`plan`](Self::plan) does.
    pub fn schema(&self) -> Result<TableSchema, ClientError> {
        let (_, checked) = self.plan(Output::Store { frame: self.id() })?;
        checked
            .frames
            .last()
            .map(|f| f.schema.clone())
            .ok_or_else(|| ClientError::Usage("empty frame".into()))
    }

    /// One aggregate of this frame behind its threshold gate; `threshold`
    /// adds to the frame's (the largest applies, and never less than the
    /// deployment's minimum). Reveals whether the gate passed and, only if
    /// it did, the aggregate (to this client only); a failed gate is
    /// [`ClientError::ThresholdNotMet`].
    pub fn aggregate(
        &self,
        aggregation: Aggregation,
        threshold: Option<u64>,
    ) -> Result<Value, ClientError> {
        let (query, checked) = self.plan(Output::Aggregate {
            frame: self.id(),
            aggregation,
            threshold,
        })?;
        let CheckedOutput::Aggregate {
            aggregation,
            column,
            threshold,
            ..
        } = checked.output
        else {
            return Err(ClientError::Usage("not an aggregate".into()));
        };
        match self.client.query(&query)? {
            QueryReply::Answer { passed, words, .. } => match passed[..] {
                [true] => {
                    let value = decode_aggregation(&aggregation, column.as_ref(), &words)?;
                    self.client.note_output(|| value.to_string());
                    Ok(value)
                }
                [false] => Err(ClientError::ThresholdNotMet {
                    message: format!(
                        "the gate counted fewer rows than the threshold (at least {threshold}, or the deployment's minimum)"
                    ),
                }),
                _ => Err(ClientError::Disagreement(format!(
                    "{} gate outcomes for one aggregate",
                    passed.len()
                ))),
            },
            QueryReply::Stored { .. } => Err(ClientError::Disagreement(
                "the nodes stored a table instead of answering an aggregate".into(),
            )),
        }
    }

    /// Sum of the selected non-null values of `column` (exact: an `int` or
    /// `bool` column gives [`Value::Int`], a `fixed` column
    /// [`Value::Decimal`]). Gated: see [`aggregate`](Self::aggregate).
    pub fn sum(&self, column: &str) -> Result<Value, ClientError> {
        self.aggregate(agg::sum(column), None)
    }

    /// Number of selected rows ([`Value::Int`]). Gated.
    pub fn count(&self) -> Result<Value, ClientError> {
        self.aggregate(agg::count(), None)
    }

    /// Number of selected rows where `column` is not null. Gated.
    pub fn count_column(&self, column: &str) -> Result<Value, ClientError> {
        self.aggregate(agg::count_column(column), None)
    }

    /// Mean of the selected non-null values ([`Value::Float`]), from the
    /// revealed sum and count. Gated.
    pub fn mean(&self, column: &str) -> Result<Value, ClientError> {
        self.aggregate(agg::mean(column), None)
    }

    /// Sample variance (ddof 1) of the selected non-null values
    /// ([`Value::Float`]), computed here in exact integers from the
    /// revealed sum, count and sum of squares. Gated.
    pub fn var(&self, column: &str) -> Result<Value, ClientError> {
        self.aggregate(agg::var(column), None)
    }

    /// Smallest selected value, typed as the column. Gated; reveals one
    /// row's value.
    pub fn min(&self, column: &str) -> Result<Value, ClientError> {
        self.aggregate(agg::min(column), None)
    }

    /// Largest selected value, typed as the column. Gated; reveals one
    /// row's value.
    pub fn max(&self, column: &str) -> Result<Value, ClientError> {
        self.aggregate(agg::max(column), None)
    }

    /// The same aggregates with threshold `n` on the aggregate itself:
    /// `frame.threshold(5).sum("x")`.
    pub fn threshold(&self, n: u64) -> Thresholded<'_, 'c> {
        Thresholded {
            frame: self,
            threshold: n,
        }
    }

    /// Groups by the key columns `keys` (not nullable); finish with
    /// [`GroupBy::agg`].
    pub fn group_by(&self, keys: &[&str]) -> GroupBy<'_, 'c> {
        GroupBy {
            frame: self,
            keys: owned(keys),
            threshold: None,
        }
    }

    /// Stores this frame as a new secret table on the three nodes and
    /// returns its handle; query it later with [`Client::frame`]. Reveals
    /// nothing but the handle and the stored row count (which counts
    /// masked rows too).
    pub fn store(&self) -> Result<Handle, ClientError> {
        let (query, _) = self.plan(Output::Store { frame: self.id() })?;
        match self.client.query(&query)? {
            QueryReply::Stored { handle, .. } => Ok(handle),
            QueryReply::Answer { .. } => Err(ClientError::Disagreement(
                "the nodes answered a store with an aggregate".into(),
            )),
        }
    }
}

/// A frame's aggregates with a threshold of their own (see
/// [`SecretFrame::threshold`]).
#[derive(Debug, Clone, Copy)]
pub struct Thresholded<'f, 'c> {
    frame: &'f SecretFrame<'c>,
    threshold: u64,
}

impl Thresholded<'_, '_> {
    /// [`SecretFrame::sum`] with this threshold.
    pub fn sum(&self, column: &str) -> Result<Value, ClientError> {
        self.aggregate(agg::sum(column))
    }

    /// [`SecretFrame::count`] with this threshold.
    pub fn count(&self) -> Result<Value, ClientError> {
        self.aggregate(agg::count())
    }

    /// [`SecretFrame::count_column`] with this threshold.
    pub fn count_column(&self, column: &str) -> Result<Value, ClientError> {
        self.aggregate(agg::count_column(column))
    }

    /// [`SecretFrame::mean`] with this threshold.
    pub fn mean(&self, column: &str) -> Result<Value, ClientError> {
        self.aggregate(agg::mean(column))
    }

    /// [`SecretFrame::var`] with this threshold.
    pub fn var(&self, column: &str) -> Result<Value, ClientError> {
        self.aggregate(agg::var(column))
    }

    /// [`SecretFrame::min`] with this threshold.
    pub fn min(&self, column: &str) -> Result<Value, ClientError> {
        self.aggregate(agg::min(column))
    }

    /// [`SecretFrame::max`] with this threshold.
    pub fn max(&self, column: &str) -> Result<Value, ClientError> {
        self.aggregate(agg::max(column))
    }

    /// [`SecretFrame::aggregate`] with this threshold.
    pub fn aggregate(&self, aggregation: Aggregation) -> Result<Value, ClientError> {
        self.frame.aggregate(aggregation, Some(self.threshold))
    }
}

/// A group-by under construction: keys, an optional per-group threshold;
/// [`agg`](Self::agg) runs it.
#[derive(Debug, Clone)]
pub struct GroupBy<'f, 'c> {
    frame: &'f SecretFrame<'c>,
    keys: Vec<String>,
    threshold: Option<u64>,
}

impl GroupBy<'_, '_> {
    /// Every group must count at least `n` rows (with the frame's
    /// thresholds and the deployment's minimum, the largest applies).
    pub fn threshold(mut self, n: u64) -> Self {
        self.threshold = Some(n);
        self
    }

    /// Runs the group-by with `aggregations` (see [`agg`]; sums, counts,
    /// means and variances: min and max are not available per group) and
    /// returns the groups that passed their gate as a polars `DataFrame`:
    /// one column per key, then one per aggregation named
    /// `{column}_{agg}` (`count` for a count of rows); typed as
    /// [`crate::answer::groups_to_dataframe`] says.
    ///
    /// A group passes when each count it reports (its rows, and its
    /// non-null rows of each nullable aggregated column) reaches the
    /// threshold. Groups that did not pass are absent, and so are
    /// candidate groups with no rows at all.
    ///
    /// What is revealed depends on the plan's group form:
    /// - small key domain ([`triad_plan::GroupForm::Domain`], at most
    ///   [`triad_plan::DOMAIN_LIMIT`] combinations of the keys' declared
    ///   values): which key combinations passed (to the nodes too); rows
    ///   come in key order;
    /// - wider keys ([`triad_plan::GroupForm::Sorted`]): how many groups
    ///   passed; rows are sorted by key here.
    pub fn agg(&self, aggregations: &[Aggregation]) -> Result<DataFrame, ClientError> {
        let (query, checked) = self.frame.plan(Output::GroupBy {
            frame: self.frame.id(),
            keys: self.keys.clone(),
            aggregations: aggregations.to_vec(),
            threshold: self.threshold,
        })?;
        let CheckedOutput::GroupBy {
            keys,
            aggregations,
            form,
            ..
        } = checked.output
        else {
            return Err(ClientError::Usage("not a group-by".into()));
        };
        match self.frame.client.query(&query)? {
            QueryReply::Answer { passed, words, .. } => {
                let groups = decode_group_by(&keys, &aggregations, &form, &passed, &words)?;
                let frame = groups_to_dataframe(&keys, &aggregations, &groups)?;
                self.frame.client.note_output(|| format!("{frame}"));
                Ok(frame)
            }
            QueryReply::Stored { .. } => Err(ClientError::Disagreement(
                "the nodes stored a table instead of answering a group-by".into(),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use triad_plan::Expr as PlanExpr;

    use crate::expr::{col, lit, lit_date};

    fn renumbered(frames: &[Frame], by: FrameId) -> Vec<Frame> {
        frames.iter().map(|f| renumber(f, by)).collect()
    }

    #[test]
    fn renumbering_shifts_every_reference() {
        let frames = vec![
            Frame::Table { handle: "a".into() },
            Frame::Table { handle: "b".into() },
            Frame::Filter {
                input: 0,
                predicate: PlanExpr::Column("x".into()),
                threshold: Some(3),
            },
            Frame::Merge {
                left: 2,
                right: 1,
                how: How::Left,
                left_on: vec!["k".into()],
                right_on: vec!["k".into()],
                suffixes: ["_x".into(), "_y".into()],
            },
            Frame::WithColumn {
                input: 3,
                name: "z".into(),
                expr: PlanExpr::Column("x".into()),
            },
            Frame::Select {
                input: 4,
                columns: vec!["z".into()],
            },
        ];
        let shifted = renumbered(&frames, 10);
        assert_eq!(shifted[0], frames[0]);
        assert!(matches!(shifted[2], Frame::Filter { input: 10, .. }));
        assert!(matches!(
            shifted[3],
            Frame::Merge {
                left: 12,
                right: 11,
                ..
            }
        ));
        assert!(matches!(shifted[4], Frame::WithColumn { input: 13, .. }));
        assert!(matches!(shifted[5], Frame::Select { input: 14, .. }));
        assert_eq!(renumbered(&frames, 0), frames);
    }

    #[test]
    fn schemas_convert_from_listings() {
        use triad_node::store::ColumnSchema;
        let summary = TableSummary {
            handle: "00".repeat(32).parse().unwrap(),
            owner: "ab".repeat(32),
            rows: 5,
            created_at: 0,
            schema: vec![
                ColumnSchema {
                    name: "p".into(),
                    type_tag: "fixed(2)".into(),
                    min: -100,
                    max: 100,
                    nullable: true,
                },
                ColumnSchema {
                    name: "d".into(),
                    type_tag: "date".into(),
                    min: 0,
                    max: 10,
                    nullable: false,
                },
            ],
            policy: Default::default(),
        };
        let schema = table_schema(&summary).unwrap();
        assert_eq!(schema.rows, 5);
        assert_eq!(schema.columns[0].ty, Ty::Fixed(2));
        assert!(schema.columns[0].nullable);
        assert_eq!(schema.columns[1].ty, Ty::Date);
        let mut bad = summary.clone();
        bad.schema[0].type_tag = "i64".into();
        assert!(table_schema(&bad).is_err());
    }

    fn column(name: &str, ty: Ty, min: i128, max: i128) -> triad_plan::ColumnInfo {
        triad_plan::ColumnInfo {
            name: name.into(),
            ty,
            min,
            max,
            nullable: false,
        }
    }

    fn party(condition: &str) -> TableSchema {
        TableSchema {
            rows: 100,
            columns: vec![
                column("year", Ty::Int, 2019, 2024),
                column("month", Ty::Int, 1, 12),
                column("smokes", Ty::Bool, 0, 1),
                column(condition, Ty::Int, 0, 1),
                column("shared", Ty::Int, 0, 9),
            ],
        }
    }

    #[test]
    fn the_seed_chain_builds_and_checks() {
        let p1 = FramePlan::table("h1", party("condition_x"));
        let p2 = FramePlan::table("h2", party("condition_y")).filter(col("year").gt(2019).into());
        let on = ["year", "month", "smokes"];
        let merged = p1.merge(&p2, How::Inner, &on, &on, ["_x", "_y"]);
        // The left frame, then the right frames shifted by one (the left
        // has one frame), then the merge.
        assert_eq!(merged.frames.len(), 4);
        assert_eq!(
            merged.frames[1],
            Frame::Table {
                handle: "h2".into()
            }
        );
        assert!(matches!(merged.frames[2], Frame::Filter { input: 1, .. }));
        assert!(matches!(
            merged.frames[3],
            Frame::Merge {
                left: 0,
                right: 2,
                how: How::Inner,
                ..
            }
        ));
        let may = merged
            .filter((col("condition_y").eq(lit(1)) & col("month").eq(lit(5))).with_threshold(3));
        let (query, checked) = may
            .plan(Output::Aggregate {
                frame: may.id(),
                aggregation: agg::sum("condition_y"),
                threshold: None,
            })
            .unwrap();
        assert_eq!(query.inputs(), ["h1", "h2"]);
        match checked.output {
            CheckedOutput::Aggregate { threshold, .. } => assert_eq!(threshold, 3),
            other => panic!("{other:?}"),
        }
        // Clashing non-key columns got the suffixes.
        let schema = checked.frames[3].schema.clone();
        let names: Vec<&str> = schema.columns.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "year",
                "month",
                "smokes",
                "condition_x",
                "shared_x",
                "condition_y",
                "shared_y"
            ]
        );
        // A merge with itself renumbers too, and plans.
        let twice = merged.merge(&merged, How::Left, &on, &on, ["_l", "_r"]);
        assert_eq!(twice.frames.len(), 9);
        assert!(matches!(
            twice.frames[8],
            Frame::Merge {
                left: 3,
                right: 7,
                ..
            }
        ));
        assert!(matches!(
            twice.frames[7],
            Frame::Merge {
                left: 4,
                right: 6,
                ..
            }
        ));
        twice.plan(Output::Store { frame: 8 }).unwrap();
    }

    #[test]
    fn errors_come_back_before_sending() {
        let p = FramePlan::table("h", party("c"));
        let bad = |plan: &FramePlan, output: Output| match plan.plan(output) {
            Err(ClientError::BadPlan { message, plan }) => (message, plan),
            other => panic!("{other:?}"),
        };
        let (message, plan) = bad(
            &p.filter(col("nope").eq(1).into()),
            Output::Store { frame: 1 },
        );
        assert!(message.contains("nope"), "{message}");
        assert!(matches!(
            plan,
            Some(triad_plan::PlanError::UnknownColumn { .. })
        ));
        // A bad literal surfaces at the terminal operation, not before.
        let broken = p.filter(col("year").eq(lit_date("2024-13-01")).into());
        let (message, plan) = bad(&broken, Output::Store { frame: 0 });
        assert!(
            message.contains("2024-13-01") && plan.is_none(),
            "{message}"
        );
        // Errors survive later operations and merges.
        let later = broken.select(&["year"]);
        assert!(later.plan(Output::Store { frame: 1 }).is_err());
        let merged = p.merge(&broken, How::Inner, &["year"], &["year"], ["_x", "_y"]);
        assert!(merged.plan(Output::Store { frame: 2 }).is_err());
        // Overflow: products of wide columns.
        let mut wide = party("c");
        wide.columns.push(column("big", Ty::Int, 0, 1 << 40));
        let w = FramePlan::table("w", wide).with_column("sq", col("big") * col("big") * col("big"));
        let (message, plan) = bad(&w, Output::Store { frame: 1 });
        assert!(
            matches!(plan, Some(triad_plan::PlanError::Overflow { .. })),
            "{message}"
        );
        // Min per group is refused.
        let (message, _) = bad(
            &p,
            Output::GroupBy {
                frame: 0,
                keys: vec!["month".into()],
                aggregations: vec![agg::min("c")],
                threshold: None,
            },
        );
        assert!(message.contains("min"), "{message}");
    }

    #[test]
    fn group_forms_follow_the_key_domain() {
        let p = FramePlan::table("h", party("c"));
        let form = |keys: Vec<String>| {
            let (_, checked) = p
                .plan(Output::GroupBy {
                    frame: 0,
                    keys,
                    aggregations: vec![agg::sum("c"), agg::count()],
                    threshold: Some(5),
                })
                .unwrap();
            match checked.output {
                CheckedOutput::GroupBy {
                    form, threshold, ..
                } => {
                    assert_eq!(threshold, 5);
                    form
                }
                other => panic!("{other:?}"),
            }
        };
        match form(vec!["month".into()]) {
            triad_plan::GroupForm::Domain { combinations } => {
                assert_eq!(combinations.len(), 12);
                assert_eq!(combinations[0], vec![1]);
            }
            other => panic!("{other:?}"),
        }
        // 6 * 12 * 2 * 10 = 1440 combinations: sorted.
        assert_eq!(
            form(vec![
                "year".into(),
                "month".into(),
                "smokes".into(),
                "shared".into()
            ]),
            triad_plan::GroupForm::Sorted
        );
    }
}
