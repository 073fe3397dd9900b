//! Typing and range tracking: turns a [`Query`] into the [`Checked`] form
//! the nodes execute, or refuses it naming what is wrong.

use std::fmt;

use crate::query::{Agg, Aggregation, BinOp, Expr, Frame, FrameId, How, Output, PlanError, Query};
use crate::types::{ColumnInfo, ExprInfo, TableSchema, Ty, ValueInfo, bits_for};

/// Largest number of key combinations a group-by enumerates (one equality
/// per row per combination); wider keys are grouped by sorting.
pub const DOMAIN_LIMIT: u128 = 256;

/// Largest `is_in` set.
pub const IS_IN_LIMIT: usize = 64;

/// A typed expression: every node knows its type, range and nullability.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TypedExpr {
    /// The operation.
    pub kind: TypedKind,
    /// What it yields.
    pub info: ExprInfo,
}

/// Typed operations. Operands of arithmetic and comparisons are already at
/// the same scale.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TypedKind {
    /// A column of the frame.
    Column(String),
    /// A literal at the expression's scale.
    Literal(i64),
    /// The operand times a power of ten, to align decimal scales.
    Rescale {
        /// Operand.
        expr: Box<TypedExpr>,
        /// Factor, `10^k`.
        factor: i64,
    },
    /// `+`, `-` or `*`.
    Arith {
        /// Operator.
        op: BinOp,
        /// Left.
        left: Box<TypedExpr>,
        /// Right.
        right: Box<TypedExpr>,
    },
    /// A comparison; `width` bounds `|left - right| < 2^width` (64: no
    /// bound, the full-range comparison runs).
    Compare {
        /// Operator.
        op: BinOp,
        /// Left.
        left: Box<TypedExpr>,
        /// Right.
        right: Box<TypedExpr>,
        /// Proven bound.
        width: u32,
    },
    /// `&` or `|` (Kleene logic with nulls, as polars).
    Logic {
        /// Operator.
        op: BinOp,
        /// Left.
        left: Box<TypedExpr>,
        /// Right.
        right: Box<TypedExpr>,
    },
    /// Negation.
    Not(Box<TypedExpr>),
    /// Null test.
    IsNull(Box<TypedExpr>),
    /// A 0/1 value used as a truth value.
    Truth(Box<TypedExpr>),
}

/// A join key pair with the range covering both sides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MergeKey {
    /// Left column.
    pub left: String,
    /// Right column.
    pub right: String,
    /// Smallest value on either side.
    pub min: i128,
    /// Largest value on either side.
    pub max: i128,
    /// Bits of `max - min`.
    pub width: u32,
}

/// A frame operator with its inputs' types resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckedOp {
    /// A stored table.
    Table {
        /// The handle.
        handle: String,
    },
    /// A filter.
    Filter {
        /// Input frame.
        input: FrameId,
        /// Typed predicate (a truth value).
        predicate: TypedExpr,
    },
    /// A join.
    Merge {
        /// Left frame.
        left: FrameId,
        /// Right frame.
        right: FrameId,
        /// Kind.
        how: How,
        /// Keys with their joint ranges.
        keys: Vec<MergeKey>,
        /// Left non-key columns: (input name, output name).
        left_columns: Vec<(String, String)>,
        /// Right non-key columns: (input name, output name).
        right_columns: Vec<(String, String)>,
    },
    /// A computed column.
    WithColumn {
        /// Input frame.
        input: FrameId,
        /// Output name.
        name: String,
        /// Typed value.
        expr: TypedExpr,
    },
    /// A projection.
    Select {
        /// Input frame.
        input: FrameId,
        /// Columns kept.
        columns: Vec<String>,
    },
}

/// A checked frame: its operator, its schema, and the largest threshold of
/// any filter it derives from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedFrame {
    /// Operator.
    pub op: CheckedOp,
    /// Output schema (rows: length of the stored arrays).
    pub schema: TableSchema,
    /// Largest `with_threshold` along the frame's lineage (0 if none).
    pub threshold: u64,
}

/// How a group-by finds its groups.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupForm {
    /// Every combination of the keys' declared values is a candidate
    /// group: one equality per row and combination. Reveals which
    /// combinations pass the threshold, nothing else.
    Domain {
        /// The combinations, in order (each one value per key).
        combinations: Vec<Vec<i64>>,
    },
    /// Sort by the keys, segmented sums, shuffle the groups. Reveals how
    /// many groups pass the threshold, and their keys and aggregates.
    Sorted,
}

/// The output, typed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckedOutput {
    /// One aggregate.
    Aggregate {
        /// Frame.
        frame: FrameId,
        /// Function and column.
        aggregation: Aggregation,
        /// The column's description, if one is named.
        column: Option<ColumnInfo>,
        /// Effective threshold (lineage and aggregate; the node applies its
        /// deployment minimum on top).
        threshold: u64,
    },
    /// Per-group aggregates.
    GroupBy {
        /// Frame.
        frame: FrameId,
        /// Key columns.
        keys: Vec<ColumnInfo>,
        /// Aggregates with their columns' descriptions.
        aggregations: Vec<(Aggregation, Option<ColumnInfo>)>,
        /// Effective per-group threshold.
        threshold: u64,
        /// How groups are found.
        form: GroupForm,
    },
    /// A new stored table.
    Store {
        /// Frame.
        frame: FrameId,
    },
}

/// A query that typed: frames and output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checked {
    /// Frames in order.
    pub frames: Vec<CheckedFrame>,
    /// Output.
    pub output: CheckedOutput,
}

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expr::Column(name) => write!(f, "{name}"),
            // Literals are part of the plan the analyst wrote, not data.
            Expr::Literal { value, scale } => write!(f, "{}", scaled(*value, *scale)),
            Expr::Binary { op, left, right } => write!(f, "({left} {} {right})", op.symbol()),
            Expr::Not(e) => write!(f, "!{e}"),
            Expr::IsNull(e) => write!(f, "{e}.is_null()"),
            Expr::IsIn {
                expr,
                values,
                scale,
            } => {
                let items: Vec<String> = values.iter().map(|v| scaled(*v, *scale)).collect();
                write!(f, "{expr}.is_in([{}])", items.join(", "))
            }
        }
    }
}

fn scaled(value: i64, scale: u32) -> String {
    if scale == 0 {
        return value.to_string();
    }
    let p = 10i128.pow(scale);
    let v = value as i128;
    let sign = if v < 0 { "-" } else { "" };
    format!(
        "{sign}{}.{:0width$}",
        v.abs() / p,
        v.abs() % p,
        width = scale as usize
    )
}

const I64: (i128, i128) = (i64::MIN as i128, i64::MAX as i128);

fn fits(min: i128, max: i128) -> bool {
    min >= I64.0 && max <= I64.1
}

fn numeric(info: &ExprInfo, what: &dyn fmt::Display) -> Result<(ValueInfo, bool), PlanError> {
    match info {
        ExprInfo::Value { value, nullable } => match value.ty {
            Ty::String(_) => Err(PlanError::Unsupported(format!(
                "string column in an expression: {what}"
            ))),
            _ => Ok((*value, *nullable)),
        },
        ExprInfo::Truth { .. } => Err(PlanError::Type(format!(
            "{what} is a truth value where a number is needed"
        ))),
    }
}

fn pow10(k: u32) -> i64 {
    10i64.pow(k)
}

/// Brings two numeric operands to one scale, wrapping the finer-grained
/// side's opposite in a rescale.
fn align(
    l: TypedExpr,
    r: TypedExpr,
    expr: &Expr,
) -> Result<(TypedExpr, TypedExpr, u32), PlanError> {
    let (lv, _) = numeric(&l.info, expr)?;
    let (rv, _) = numeric(&r.info, expr)?;
    let (ls, rs) = (lv.ty.scale(), rv.ty.scale());
    let scale = ls.max(rs);
    Ok((
        rescale(l, scale - ls, expr)?,
        rescale(r, scale - rs, expr)?,
        scale,
    ))
}

fn rescale(e: TypedExpr, by: u32, expr: &Expr) -> Result<TypedExpr, PlanError> {
    if by == 0 {
        return Ok(e);
    }
    let (v, nullable) = numeric(&e.info, expr)?;
    let factor = pow10(by);
    let (min, max) = (v.min * factor as i128, v.max * factor as i128);
    if !fits(min, max) {
        return Err(PlanError::Overflow {
            what: format!("rescaling in {expr}"),
            detail: format!("[{min}, {max}]"),
        });
    }
    let ty = Ty::Fixed(v.ty.scale() + by);
    Ok(TypedExpr {
        kind: TypedKind::Rescale {
            expr: Box::new(e),
            factor,
        },
        info: ExprInfo::Value {
            value: ValueInfo { ty, min, max },
            nullable,
        },
    })
}

fn truth(e: TypedExpr, expr: &Expr) -> Result<TypedExpr, PlanError> {
    match e.info {
        ExprInfo::Truth { .. } => Ok(e),
        ExprInfo::Value { value, nullable } if value.ty == Ty::Bool => Ok(TypedExpr {
            kind: TypedKind::Truth(Box::new(e)),
            info: ExprInfo::Truth { nullable },
        }),
        _ => Err(PlanError::Type(format!(
            "{expr} needs truth values (comparisons or bool columns)"
        ))),
    }
}

/// Types `expr` against `schema` (frame `frame`, for error messages).
pub fn check_expr(expr: &Expr, schema: &TableSchema, frame: u32) -> Result<TypedExpr, PlanError> {
    match expr {
        Expr::Column(name) => {
            let c = schema
                .column(name)
                .ok_or_else(|| PlanError::UnknownColumn {
                    frame,
                    column: name.clone(),
                })?;
            Ok(TypedExpr {
                kind: TypedKind::Column(name.clone()),
                info: ExprInfo::Value {
                    value: ValueInfo {
                        ty: c.ty,
                        min: c.min,
                        max: c.max,
                    },
                    nullable: c.nullable,
                },
            })
        }
        Expr::Literal { value, scale } => {
            if *scale > crate::types::MAX_SCALE {
                return Err(PlanError::Type(format!("literal scale {scale} too large")));
            }
            Ok(TypedExpr {
                kind: TypedKind::Literal(*value),
                info: ExprInfo::Value {
                    value: ValueInfo {
                        ty: if *scale == 0 {
                            Ty::Int
                        } else {
                            Ty::Fixed(*scale)
                        },
                        min: *value as i128,
                        max: *value as i128,
                    },
                    nullable: false,
                },
            })
        }
        Expr::Not(inner) => {
            let e = truth(check_expr(inner, schema, frame)?, expr)?;
            let info = e.info;
            Ok(TypedExpr {
                kind: TypedKind::Not(Box::new(e)),
                info,
            })
        }
        Expr::IsNull(inner) => Ok(TypedExpr {
            kind: TypedKind::IsNull(Box::new(check_expr(inner, schema, frame)?)),
            info: ExprInfo::Truth { nullable: false },
        }),
        Expr::IsIn {
            expr: inner,
            values,
            scale,
        } => {
            if values.is_empty() || values.len() > IS_IN_LIMIT {
                return Err(PlanError::Unsupported(format!(
                    "is_in with {} values (1 to {IS_IN_LIMIT} allowed): {expr}",
                    values.len()
                )));
            }
            // Lowered to a chain of equalities: the executor batches them.
            let mut lowered: Option<Expr> = None;
            for v in values {
                let eq = Expr::Binary {
                    op: BinOp::Eq,
                    left: inner.clone(),
                    right: Box::new(Expr::Literal {
                        value: *v,
                        scale: *scale,
                    }),
                };
                lowered = Some(match lowered {
                    None => eq,
                    Some(acc) => Expr::Binary {
                        op: BinOp::Or,
                        left: Box::new(acc),
                        right: Box::new(eq),
                    },
                });
            }
            match lowered {
                Some(e) => check_expr(&e, schema, frame),
                None => Err(PlanError::Unsupported("empty is_in".into())),
            }
        }
        Expr::Binary { op, left, right } => {
            let l = check_expr(left, schema, frame)?;
            let r = check_expr(right, schema, frame)?;
            let nullable = l.info.nullable() || r.info.nullable();
            match op {
                BinOp::And | BinOp::Or => {
                    let (l, r) = (truth(l, expr)?, truth(r, expr)?);
                    Ok(TypedExpr {
                        kind: TypedKind::Logic {
                            op: *op,
                            left: Box::new(l),
                            right: Box::new(r),
                        },
                        info: ExprInfo::Truth { nullable },
                    })
                }
                BinOp::Eq | BinOp::Ne | BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge => {
                    let (l, r, _) = align(l, r, expr)?;
                    let (lv, _) = numeric(&l.info, expr)?;
                    let (rv, _) = numeric(&r.info, expr)?;
                    let lo = lv.min - rv.max;
                    let hi = lv.max - rv.min;
                    let width = bits_for(lo.unsigned_abs().max(hi.unsigned_abs()));
                    Ok(TypedExpr {
                        kind: TypedKind::Compare {
                            op: *op,
                            left: Box::new(l),
                            right: Box::new(r),
                            width,
                        },
                        info: ExprInfo::Truth { nullable },
                    })
                }
                BinOp::Add | BinOp::Sub | BinOp::Mul => arith(*op, l, r, nullable, expr),
            }
        }
    }
}

fn arith(
    op: BinOp,
    l: TypedExpr,
    r: TypedExpr,
    nullable: bool,
    expr: &Expr,
) -> Result<TypedExpr, PlanError> {
    let (lv0, _) = numeric(&l.info, expr)?;
    let (rv0, _) = numeric(&r.info, expr)?;
    let dates = (lv0.ty == Ty::Date) as u8 + (rv0.ty == Ty::Date) as u8;
    let (l, r, ty) = if op == BinOp::Mul {
        if dates > 0 {
            return Err(PlanError::Type(format!("cannot multiply dates: {expr}")));
        }
        let scale = lv0.ty.scale() + rv0.ty.scale();
        if scale > crate::types::MAX_SCALE {
            return Err(PlanError::Unsupported(format!(
                "product with {scale} decimal places: {expr}"
            )));
        }
        let ty = if scale == 0 {
            Ty::Int
        } else {
            Ty::Fixed(scale)
        };
        (l, r, ty)
    } else {
        let (l, r, scale) = align(l, r, expr)?;
        let ty = match (dates, op, scale) {
            (2, BinOp::Sub, _) => Ty::Int,
            (2, _, _) => return Err(PlanError::Type(format!("cannot add dates: {expr}"))),
            (1, _, 0) => Ty::Date,
            (1, _, _) => {
                return Err(PlanError::Type(format!("date with decimals: {expr}")));
            }
            (_, _, 0) => Ty::Int,
            (_, _, s) => Ty::Fixed(s),
        };
        (l, r, ty)
    };
    let (lv, _) = numeric(&l.info, expr)?;
    let (rv, _) = numeric(&r.info, expr)?;
    let (min, max) = match op {
        BinOp::Add => (lv.min + rv.min, lv.max + rv.max),
        BinOp::Sub => (lv.min - rv.max, lv.max - rv.min),
        _ => {
            let products = [
                lv.min * rv.min,
                lv.min * rv.max,
                lv.max * rv.min,
                lv.max * rv.max,
            ];
            (
                products.iter().copied().min().unwrap_or(0),
                products.iter().copied().max().unwrap_or(0),
            )
        }
    };
    if !fits(min, max) {
        return Err(PlanError::Overflow {
            what: format!("{expr}"),
            detail: format!("its range would be [{min}, {max}]"),
        });
    }
    Ok(TypedExpr {
        kind: TypedKind::Arith {
            op,
            left: Box::new(l),
            right: Box::new(r),
        },
        info: ExprInfo::Value {
            value: ValueInfo { ty, min, max },
            nullable,
        },
    })
}

fn value_column(
    schema: &TableSchema,
    frame: u32,
    name: &str,
    what: &str,
) -> Result<ColumnInfo, PlanError> {
    let c = schema
        .column(name)
        .ok_or_else(|| PlanError::UnknownColumn {
            frame,
            column: name.to_owned(),
        })?;
    if let Ty::String(_) = c.ty {
        return Err(PlanError::Unsupported(format!(
            "string column {name:?} as {what}"
        )));
    }
    Ok(c.clone())
}

/// Checks an aggregate's column and that its sums stay in 64 bits.
fn check_aggregation(
    aggregation: &Aggregation,
    schema: &TableSchema,
    frame: u32,
) -> Result<Option<ColumnInfo>, PlanError> {
    let Some(name) = &aggregation.column else {
        return match aggregation.agg {
            Agg::Count => Ok(None),
            other => Err(PlanError::Type(format!("{} needs a column", other.name()))),
        };
    };
    let c = value_column(schema, frame, name, "an aggregate")?;
    let rows = schema.rows as i128;
    let bound = c.min.unsigned_abs().max(c.max.unsigned_abs()) as i128;
    let check = |needed: i128, what: &str| -> Result<(), PlanError> {
        if needed > I64.1 {
            Err(PlanError::Overflow {
                what: format!("{what} of column {name:?}"),
                detail: format!(
                    "{rows} rows of magnitude up to {bound} need {} bits",
                    128 - needed.leading_zeros()
                ),
            })
        } else {
            Ok(())
        }
    };
    match aggregation.agg {
        Agg::Sum | Agg::Mean => check(rows.saturating_mul(bound), aggregation.agg.name())?,
        Agg::Var => {
            check(rows.saturating_mul(bound), "var")?;
            check(
                rows.saturating_mul(bound.saturating_mul(bound)),
                "sum of squares (var)",
            )?;
        }
        Agg::Count | Agg::Min | Agg::Max => {}
    }
    Ok(Some(c))
}

fn frame_ref(id: FrameId, at: usize, frames: &[CheckedFrame]) -> Result<&CheckedFrame, PlanError> {
    if (id as usize) < at {
        Ok(&frames[id as usize])
    } else {
        Err(PlanError::BadReference {
            frame: at as u32,
            target: id,
        })
    }
}

/// Types `query`; `schema_of` gives the public schema of a stored table (or
/// `None` if the handle is unknown).
pub fn check(
    query: &Query,
    schema_of: &dyn Fn(&str) -> Option<TableSchema>,
) -> Result<Checked, PlanError> {
    if query.version != crate::query::PLAN_VERSION {
        return Err(PlanError::Version {
            found: query.version,
        });
    }
    let mut frames: Vec<CheckedFrame> = Vec::with_capacity(query.frames.len());
    for (at, frame) in query.frames.iter().enumerate() {
        let checked = match frame {
            Frame::Table { handle } => {
                let schema = schema_of(handle).ok_or_else(|| PlanError::UnknownTable {
                    handle: handle.clone(),
                })?;
                CheckedFrame {
                    op: CheckedOp::Table {
                        handle: handle.clone(),
                    },
                    schema,
                    threshold: 0,
                }
            }
            Frame::Filter {
                input,
                predicate,
                threshold,
            } => {
                let source = frame_ref(*input, at, &frames)?;
                let typed = truth(check_expr(predicate, &source.schema, *input)?, predicate)?;
                CheckedFrame {
                    op: CheckedOp::Filter {
                        input: *input,
                        predicate: typed,
                    },
                    schema: source.schema.clone(),
                    threshold: source.threshold.max(threshold.unwrap_or(0)),
                }
            }
            Frame::WithColumn { input, name, expr } => {
                let source = frame_ref(*input, at, &frames)?;
                let typed = check_expr(expr, &source.schema, *input)?;
                let (value, nullable) = match typed.info {
                    ExprInfo::Value { value, nullable } => (value, nullable),
                    // Truth values are stored as bool columns.
                    ExprInfo::Truth { nullable } => (
                        ValueInfo {
                            ty: Ty::Bool,
                            min: 0,
                            max: 1,
                        },
                        nullable,
                    ),
                };
                check_name(name)?;
                let mut schema = source.schema.clone();
                let info = ColumnInfo {
                    name: name.clone(),
                    ty: value.ty,
                    min: value.min,
                    max: value.max,
                    nullable,
                };
                match schema.columns.iter_mut().find(|c| &c.name == name) {
                    Some(c) => *c = info,
                    None => schema.columns.push(info),
                }
                CheckedFrame {
                    op: CheckedOp::WithColumn {
                        input: *input,
                        name: name.clone(),
                        expr: typed,
                    },
                    schema,
                    threshold: source.threshold,
                }
            }
            Frame::Select { input, columns } => {
                let source = frame_ref(*input, at, &frames)?;
                let mut kept = Vec::new();
                for name in columns {
                    let c = source
                        .schema
                        .column(name)
                        .ok_or_else(|| PlanError::UnknownColumn {
                            frame: *input,
                            column: name.clone(),
                        })?;
                    if kept.iter().any(|k: &ColumnInfo| &k.name == name) {
                        return Err(PlanError::Type(format!("column {name:?} selected twice")));
                    }
                    kept.push(c.clone());
                }
                CheckedFrame {
                    op: CheckedOp::Select {
                        input: *input,
                        columns: columns.clone(),
                    },
                    schema: TableSchema {
                        rows: source.schema.rows,
                        columns: kept,
                    },
                    threshold: source.threshold,
                }
            }
            Frame::Merge {
                left,
                right,
                how,
                left_on,
                right_on,
                suffixes,
            } => check_merge(
                at, &frames, *left, *right, *how, left_on, right_on, suffixes,
            )?,
        };
        frames.push(checked);
    }
    let output = check_output(&query.output, &frames)?;
    Ok(Checked { frames, output })
}

fn check_name(name: &str) -> Result<(), PlanError> {
    if name.is_empty()
        || name.len() > 128
        || name.contains('#')
        || name.chars().any(char::is_control)
    {
        return Err(PlanError::Type(format!(
            "column name {name:?} must be 1 to 128 characters without '#' or control characters"
        )));
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn check_merge(
    at: usize,
    frames: &[CheckedFrame],
    left: FrameId,
    right: FrameId,
    how: How,
    left_on: &[String],
    right_on: &[String],
    suffixes: &[String; 2],
) -> Result<CheckedFrame, PlanError> {
    let l = frame_ref(left, at, frames)?;
    let r = frame_ref(right, at, frames)?;
    if left_on.is_empty() || left_on.len() != right_on.len() {
        return Err(PlanError::Type(format!(
            "merge needs the same number (at least one) of left and right keys, got {} and {}",
            left_on.len(),
            right_on.len()
        )));
    }
    let mut keys = Vec::new();
    let mut columns = Vec::new();
    for (lk, rk) in left_on.iter().zip(right_on) {
        let lc = value_column(&l.schema, left, lk, "a merge key")?;
        let rc = value_column(&r.schema, right, rk, "a merge key")?;
        if lc.ty != rc.ty {
            return Err(PlanError::Type(format!(
                "merge key {lk:?} is {} on the left but {rk:?} is {} on the right",
                lc.ty, rc.ty
            )));
        }
        let (min, max) = (lc.min.min(rc.min), lc.max.max(rc.max));
        let width = bits_for((max - min) as u128).min(64);
        keys.push(MergeKey {
            left: lk.clone(),
            right: rk.clone(),
            min,
            max,
            width,
        });
        columns.push(ColumnInfo {
            name: lk.clone(),
            ty: lc.ty,
            min,
            max,
            // Unmatched left rows of a left join keep their (maybe null)
            // key; an inner join only outputs rows whose keys matched.
            nullable: how == How::Left && lc.nullable,
        });
    }
    let rest = |schema: &TableSchema, on: &[String]| -> Vec<ColumnInfo> {
        schema
            .columns
            .iter()
            .filter(|c| !on.contains(&c.name))
            .cloned()
            .collect()
    };
    let left_rest = rest(&l.schema, left_on);
    let right_rest = rest(&r.schema, right_on);
    let mut left_columns = Vec::new();
    for c in &left_rest {
        let clash = right_rest.iter().any(|o| o.name == c.name);
        let name = if clash {
            format!("{}{}", c.name, suffixes[0])
        } else {
            c.name.clone()
        };
        left_columns.push((c.name.clone(), name.clone()));
        columns.push(ColumnInfo { name, ..c.clone() });
    }
    let mut right_columns = Vec::new();
    for c in &right_rest {
        let clash = left_rest.iter().any(|o| o.name == c.name);
        let name = if clash {
            format!("{}{}", c.name, suffixes[1])
        } else {
            c.name.clone()
        };
        right_columns.push((c.name.clone(), name.clone()));
        columns.push(ColumnInfo {
            name,
            nullable: c.nullable || how == How::Left,
            ..c.clone()
        });
    }
    for (i, c) in columns.iter().enumerate() {
        check_name(&c.name)?;
        if columns[..i].iter().any(|o| o.name == c.name) {
            return Err(PlanError::Type(format!(
                "merge output has two columns named {:?}; choose other suffixes",
                c.name
            )));
        }
    }
    Ok(CheckedFrame {
        op: CheckedOp::Merge {
            left,
            right,
            how,
            keys,
            left_columns,
            right_columns,
        },
        schema: TableSchema {
            rows: l.schema.rows + r.schema.rows,
            columns,
        },
        threshold: l.threshold.max(r.threshold),
    })
}

fn check_output(output: &Output, frames: &[CheckedFrame]) -> Result<CheckedOutput, PlanError> {
    let at = frames.len();
    match output {
        Output::Aggregate {
            frame,
            aggregation,
            threshold,
        } => {
            let f = frame_ref(*frame, at, frames)?;
            let column = check_aggregation(aggregation, &f.schema, *frame)?;
            Ok(CheckedOutput::Aggregate {
                frame: *frame,
                aggregation: aggregation.clone(),
                column,
                threshold: f.threshold.max(threshold.unwrap_or(0)),
            })
        }
        Output::GroupBy {
            frame,
            keys,
            aggregations,
            threshold,
        } => {
            let f = frame_ref(*frame, at, frames)?;
            if keys.is_empty() {
                return Err(PlanError::Type("group-by needs at least one key".into()));
            }
            // The groups' gates count what the aggregates cover: without
            // one there is nothing to gate, and the keys would go out bare.
            if aggregations.is_empty() {
                return Err(PlanError::Type(
                    "group-by needs at least one aggregate".into(),
                ));
            }
            let mut infos = Vec::new();
            let mut domain: u128 = 1;
            for k in keys {
                let c = value_column(&f.schema, *frame, k, "a group key")?;
                if c.nullable {
                    return Err(PlanError::Unsupported(format!(
                        "nullable group key {k:?}: fill or filter its nulls first"
                    )));
                }
                domain = domain.saturating_mul((c.max - c.min + 1) as u128);
                infos.push(c);
            }
            let mut checked = Vec::new();
            for a in aggregations {
                if a.agg.reveals_a_row() {
                    return Err(PlanError::Unsupported(format!(
                        "{} per group",
                        a.agg.name()
                    )));
                }
                checked.push((a.clone(), check_aggregation(a, &f.schema, *frame)?));
            }
            let form = if domain <= DOMAIN_LIMIT {
                let mut combinations: Vec<Vec<i64>> = vec![vec![]];
                for c in &infos {
                    let mut next = Vec::new();
                    for prefix in &combinations {
                        for v in c.min..=c.max {
                            let mut p = prefix.clone();
                            p.push(v as i64);
                            next.push(p);
                        }
                    }
                    combinations = next;
                }
                GroupForm::Domain { combinations }
            } else {
                GroupForm::Sorted
            };
            Ok(CheckedOutput::GroupBy {
                frame: *frame,
                keys: infos,
                aggregations: checked,
                threshold: f.threshold.max(threshold.unwrap_or(0)),
                form,
            })
        }
        Output::Store { frame } => {
            frame_ref(*frame, at, frames)?;
            Ok(CheckedOutput::Store { frame: *frame })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema() -> TableSchema {
        let col = |name: &str, ty, min, max, nullable| ColumnInfo {
            name: name.into(),
            ty,
            min,
            max,
            nullable,
        };
        TableSchema {
            rows: 1000,
            columns: vec![
                col("month", Ty::Int, 1, 12, false),
                col("price", Ty::Fixed(2), 0, 100_000, true),
                col("big", Ty::Int, i64::MIN as i128, i64::MAX as i128, false),
                col("day", Ty::Date, 0, 30_000, false),
                col("name", Ty::String(8), 0, u64::MAX as i128, false),
            ],
        }
    }

    fn c(name: &str) -> Box<Expr> {
        Box::new(Expr::Column(name.into()))
    }

    fn lit(value: i64, scale: u32) -> Box<Expr> {
        Box::new(Expr::Literal { value, scale })
    }

    fn bin(op: BinOp, l: Box<Expr>, r: Box<Expr>) -> Expr {
        Expr::Binary {
            op,
            left: l,
            right: r,
        }
    }

    #[test]
    fn comparisons_get_the_narrowest_proven_width() {
        let e = check_expr(&bin(BinOp::Eq, c("month"), lit(5, 0)), &schema(), 0).unwrap();
        let TypedKind::Compare { width, .. } = e.kind else {
            panic!()
        };
        // month - 5 lies in [-4, 7].
        assert_eq!(width, 3);
        let e = check_expr(&bin(BinOp::Lt, c("big"), lit(0, 0)), &schema(), 0).unwrap();
        let TypedKind::Compare { width, .. } = e.kind else {
            panic!()
        };
        assert_eq!(width, 64, "full-range values need the unbounded comparison");
    }

    #[test]
    fn decimals_are_aligned_by_rescaling_the_coarser_side() {
        // price (2 places) < 1.5 (1 place): the literal becomes 150.
        let e = check_expr(&bin(BinOp::Lt, c("price"), lit(15, 1)), &schema(), 0).unwrap();
        let TypedKind::Compare { right, .. } = e.kind else {
            panic!()
        };
        assert!(matches!(right.kind, TypedKind::Rescale { factor: 10, .. }));
        assert!(e.info.nullable());
    }

    #[test]
    fn mistakes_are_named() {
        let s = schema();
        let unknown = check_expr(&Expr::Column("nope".into()), &s, 2).unwrap_err();
        assert_eq!(unknown.to_string(), "frame 2 has no column \"nope\"");
        let overflow = check_expr(&bin(BinOp::Mul, c("big"), lit(2, 0)), &s, 0).unwrap_err();
        assert!(overflow.to_string().contains("(big * 2)"), "{overflow}");
        let not_truth = check_expr(&bin(BinOp::And, c("month"), c("month")), &s, 0).unwrap_err();
        assert!(
            not_truth.to_string().contains("truth values"),
            "{not_truth}"
        );
        let dates = check_expr(&bin(BinOp::Add, c("day"), c("day")), &s, 0).unwrap_err();
        assert!(dates.to_string().contains("cannot add dates"));
        let strings = check_expr(&bin(BinOp::Eq, c("name"), lit(1, 0)), &s, 0).unwrap_err();
        assert!(strings.to_string().contains("string column"));
    }

    #[test]
    fn group_by_form_follows_the_declared_domain() {
        let s = schema();
        let query = |key: &str| Query {
            version: crate::PLAN_VERSION,
            frames: vec![Frame::Table { handle: "t".into() }],
            output: Output::GroupBy {
                frame: 0,
                keys: vec![key.into()],
                aggregations: vec![Aggregation {
                    agg: Agg::Count,
                    column: None,
                }],
                threshold: None,
            },
        };
        let lookup = |_: &str| Some(s.clone());
        let checked = check(&query("month"), &lookup).unwrap();
        let CheckedOutput::GroupBy { form, .. } = checked.output else {
            panic!()
        };
        assert!(matches!(form, GroupForm::Domain { ref combinations } if combinations.len() == 12));
        let checked = check(&query("day"), &lookup).unwrap();
        assert!(matches!(
            checked.output,
            CheckedOutput::GroupBy {
                form: GroupForm::Sorted,
                ..
            }
        ));
    }

    #[test]
    fn group_by_needs_an_aggregate() {
        let s = schema();
        let query = Query {
            version: crate::PLAN_VERSION,
            frames: vec![Frame::Table { handle: "t".into() }],
            output: Output::GroupBy {
                frame: 0,
                keys: vec!["day".into()],
                aggregations: vec![],
                threshold: None,
            },
        };
        assert_eq!(
            check(&query, &|_: &str| Some(s.clone())),
            Err(PlanError::Type(
                "group-by needs at least one aggregate".into()
            ))
        );
    }

    #[test]
    fn frames_may_only_look_back() {
        let query = Query {
            version: crate::PLAN_VERSION,
            frames: vec![Frame::Filter {
                input: 0,
                predicate: *c("month"),
                threshold: None,
            }],
            output: Output::Store { frame: 0 },
        };
        assert_eq!(
            check(&query, &|_| None),
            Err(PlanError::BadReference {
                frame: 0,
                target: 0
            })
        );
    }
}
