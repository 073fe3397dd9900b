//! Query plans for triad: what an analyst asks of secret tables, as data.
//!
//! A [`Query`] is a list of frame operators (table, filter, merge, new
//! column, projection) ending in one [`Output`] (an aggregate, a group-by, or
//! a new stored table). It has a versioned canonical binary encoding and a
//! digest: the client signs the digest, the three nodes run the same plan,
//! and approvals (later) name it.
//!
//! [`check`] types a query against the public schemas of its input tables:
//! it tracks every value's range, picks the bounded comparison width the
//! ranges allow, refuses arithmetic or sums that could wrap (naming the
//! column), and lowers the plan into the typed form the nodes execute.
//!
//! This crate owns no secret, no I/O and no protocol: execution lives in
//! `triad-exec`, transport in the node. It must stay free of polars so the
//! nodes build without it.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod check;
mod query;
mod types;

pub use check::{
    Checked, CheckedFrame, CheckedOp, CheckedOutput, DOMAIN_LIMIT, GroupForm, IS_IN_LIMIT,
    MergeKey, TypedExpr, TypedKind, check, check_expr,
};
pub use query::{
    Agg, Aggregation, BinOp, EXPR_DEPTH_MAX, Expr, Frame, FrameId, How, Output, PLAN_VERSION,
    PlanError, Query,
};
pub use types::{ColumnInfo, ExprInfo, MAX_SCALE, MAX_WIDTH, TableSchema, Ty, ValueInfo, bits_for};
