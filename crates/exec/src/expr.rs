//! Row-wise expressions on shares: arithmetic on whole columns,
//! comparisons as batched bit circuits, Kleene logic on bit-sliced truth
//! values (as polars: `false & null` is false, `true | null` is true, and a
//! filter keeps only rows whose predicate is true).

use triad_plan::{BinOp, ColumnInfo, TypedExpr, TypedKind};
use triad_ring::{Arith, Bits, Session, Transport};

use crate::{ExecError, SecretColumn, SecretTable};

/// A value column or a truth column, each with its validity if it can be
/// null. A truth bit is 0 wherever its validity is 0.
pub(crate) enum Val {
    Num { value: Arith, valid: Option<Arith> },
    Truth { t: Bits, valid: Option<Bits> },
}

fn unsupported(what: &str) -> ExecError {
    ExecError::Unsupported(what.to_owned())
}

/// Validity as truth bits: the low bit of each 0/1 element.
pub(crate) fn to_bits<T: Transport>(s: &mut Session<T>, x: &Arith) -> Result<Bits, ExecError> {
    Ok(s.a2b(x, 1)?.bit(0))
}

fn or_bits<T: Transport>(s: &mut Session<T>, x: &Bits, y: &Bits) -> Result<Bits, ExecError> {
    let both = s.and(x, y)?;
    Ok(x.xor(y)?.xor(&both)?)
}

pub(crate) fn and_valid<T: Transport>(
    s: &mut Session<T>,
    a: Option<Arith>,
    b: Option<Arith>,
) -> Result<Option<Arith>, ExecError> {
    Ok(match (a, b) {
        (Some(a), Some(b)) => Some(s.mul(&a, &b)?),
        (a, None) => a,
        (None, b) => b,
    })
}

fn num<T: Transport>(
    s: &mut Session<T>,
    table: &SecretTable,
    e: &TypedExpr,
) -> Result<(Arith, Option<Arith>), ExecError> {
    match eval(s, table, e)? {
        Val::Num { value, valid } => Ok((value, valid)),
        Val::Truth { .. } => Err(unsupported("a truth value where a number is needed")),
    }
}

fn truth<T: Transport>(
    s: &mut Session<T>,
    table: &SecretTable,
    e: &TypedExpr,
) -> Result<(Bits, Option<Bits>), ExecError> {
    match eval(s, table, e)? {
        Val::Truth { t, valid } => Ok((t, valid)),
        Val::Num { .. } => Err(unsupported("a number where a truth value is needed")),
    }
}

fn literal_of(e: &TypedExpr) -> Option<u64> {
    match &e.kind {
        TypedKind::Literal(v) => Some(*v as u64),
        _ => None,
    }
}

/// Evaluates `e` on every row of `table`.
pub(crate) fn eval<T: Transport>(
    s: &mut Session<T>,
    table: &SecretTable,
    e: &TypedExpr,
) -> Result<Val, ExecError> {
    let n = table.rows;
    Ok(match &e.kind {
        TypedKind::Column(name) => {
            let c = table
                .column(name)
                .ok_or_else(|| unsupported(&format!("column {name:?} was not loaded")))?;
            let value = c
                .limbs
                .first()
                .cloned()
                .ok_or_else(|| unsupported("a column without limbs"))?;
            Val::Num {
                value,
                valid: c.valid.clone(),
            }
        }
        TypedKind::Literal(v) => Val::Num {
            value: s.public(&vec![*v as u64; n]),
            valid: None,
        },
        TypedKind::Rescale { expr, factor } => {
            let (value, valid) = num(s, table, expr)?;
            Val::Num {
                value: value.mul_public(*factor as u64),
                valid,
            }
        }
        TypedKind::Arith { op, left, right } => {
            let (a, va) = num(s, table, left)?;
            let (b, vb) = num(s, table, right)?;
            let value = match op {
                BinOp::Add => a.add(&b)?,
                BinOp::Sub => a.sub(&b)?,
                BinOp::Mul => match (literal_of(left), literal_of(right)) {
                    (Some(c), _) => b.mul_public(c),
                    (_, Some(c)) => a.mul_public(c),
                    _ => s.mul(&a, &b)?,
                },
                _ => return Err(unsupported("operator")),
            };
            Val::Num {
                value,
                valid: and_valid(s, va, vb)?,
            }
        }
        TypedKind::Compare {
            op,
            left,
            right,
            width,
        } => {
            let (a, va) = num(s, table, left)?;
            let (b, vb) = num(s, table, right)?;
            let id = s.id();
            let full = *width > 63;
            let lt = |s: &mut Session<T>, x: &Arith, y: &Arith| -> Result<Bits, ExecError> {
                Ok(if full {
                    s.lt_full(x, y)?
                } else {
                    s.lt(x, y, *width)?
                })
            };
            let t = match op {
                BinOp::Lt => lt(s, &a, &b)?,
                BinOp::Gt => lt(s, &b, &a)?,
                BinOp::Le => lt(s, &b, &a)?.not(id),
                BinOp::Ge => lt(s, &a, &b)?.not(id),
                BinOp::Eq => s.eq(&a, &b, (*width).min(64))?,
                BinOp::Ne => s.eq(&a, &b, (*width).min(64))?.not(id),
                _ => return Err(unsupported("operator")),
            };
            let valid = match and_valid(s, va, vb)? {
                Some(v) => Some(to_bits(s, &v)?),
                None => None,
            };
            let t = match &valid {
                Some(v) => s.and(&t, v)?,
                None => t,
            };
            Val::Truth { t, valid }
        }
        TypedKind::Logic { op, left, right } => {
            let (ta, va) = truth(s, table, left)?;
            let (tb, vb) = truth(s, table, right)?;
            if va.is_none() && vb.is_none() {
                let t = match op {
                    BinOp::And => s.and(&ta, &tb)?,
                    _ => or_bits(s, &ta, &tb)?,
                };
                return Ok(Val::Truth { t, valid: None });
            }
            let id = s.id();
            // Known-false bits: valid and not true.
            let fa = match &va {
                Some(v) => v.xor(&ta)?,
                None => ta.not(id),
            };
            let fb = match &vb {
                Some(v) => v.xor(&tb)?,
                None => tb.not(id),
            };
            let (t, valid) = match op {
                BinOp::And => {
                    let t = s.and(&ta, &tb)?;
                    let f = or_bits(s, &fa, &fb)?;
                    let v = or_bits(s, &t, &f)?;
                    (t, v)
                }
                _ => {
                    let t = or_bits(s, &ta, &tb)?;
                    let f = s.and(&fa, &fb)?;
                    let v = or_bits(s, &t, &f)?;
                    (t, v)
                }
            };
            Val::Truth {
                t,
                valid: Some(valid),
            }
        }
        TypedKind::Not(inner) => {
            let (t, valid) = truth(s, table, inner)?;
            let t = match &valid {
                Some(v) => v.xor(&t)?,
                None => t.not(s.id()),
            };
            Val::Truth { t, valid }
        }
        TypedKind::IsNull(inner) => {
            let valid = match eval(s, table, inner)? {
                Val::Num { valid, .. } => match valid {
                    Some(v) => Some(to_bits(s, &v)?),
                    None => None,
                },
                Val::Truth { valid, .. } => valid,
            };
            let t = match valid {
                Some(v) => v.not(s.id()),
                None => Bits::public(s.id(), &vec![false; n]),
            };
            Val::Truth { t, valid: None }
        }
        TypedKind::Truth(inner) => {
            let (value, valid) = num(s, table, inner)?;
            let t = to_bits(s, &value)?;
            let valid = match valid {
                Some(v) => Some(to_bits(s, &v)?),
                None => None,
            };
            let t = match &valid {
                Some(v) => s.and(&t, v)?,
                None => t,
            };
            Val::Truth { t, valid }
        }
    })
}

/// The 0/1 mask of rows where `predicate` is true (null is not true) and
/// `mask` (if any) is 1. The earlier mask joins as bits: its low bit costs
/// one input plane, an AND a bit, where multiplying the injected
/// predicate by the arithmetic mask would cost a word per row.
pub(crate) fn filter_mask<T: Transport>(
    s: &mut Session<T>,
    table: &SecretTable,
    predicate: &TypedExpr,
    mask: Option<&Arith>,
) -> Result<Arith, ExecError> {
    let (t, _) = truth(s, table, predicate)?;
    let t = match mask {
        Some(mask) => {
            let m = to_bits(s, mask)?;
            s.and(&t, &m)?
        }
        None => t,
    };
    Ok(s.inject(&t)?)
}

/// Evaluates `e` as a new column described by `info` (truth values become
/// 0/1 bool columns).
pub(crate) fn column<T: Transport>(
    s: &mut Session<T>,
    table: &SecretTable,
    e: &TypedExpr,
    info: ColumnInfo,
) -> Result<SecretColumn, ExecError> {
    let (value, valid) = match eval(s, table, e)? {
        Val::Num { value, valid } => (value, valid),
        Val::Truth { t, valid } => {
            let value = s.inject(&t)?;
            let valid = match valid {
                Some(v) => Some(s.inject(&v)?),
                None => None,
            };
            (value, valid)
        }
    };
    // The stored column has a validity column exactly when its type says
    // it can be null.
    let valid = if info.nullable {
        Some(valid.unwrap_or_else(|| s.public(&vec![1; table.rows])))
    } else {
        None
    };
    Ok(SecretColumn {
        info,
        limbs: vec![value],
        valid,
    })
}
