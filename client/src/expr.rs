//! Row-wise expressions for the DataFrame API, built like polars':
//! `(col("condition_y").eq(lit(1)) & col("month").eq(lit(5))).with_threshold(3)`.
//!
//! An [`Expr`] is only a description: building one sends nothing and
//! reveals nothing. It becomes part of a query plan (a
//! [`triad_plan::Expr`]) that the nodes evaluate on secret shares, row by
//! row, with every intermediate value secret. Literals are part of the
//! plan, which is public (it is signed, logged and, later, approved).
//!
//! Values are the columns' encoded integers: a `fixed(s)` column holds the
//! value times `10^s`, a date the days since 1970-01-01, a bool 0 or 1.
//! Literals carry their own scale ([`lit_decimal`], [`lit_fixed`]) and the
//! plan checker aligns scales; a date column compares with [`lit_date`] or
//! with a plain number of days.
//!
//! Errors in building an expression (a malformed decimal or date literal,
//! `is_in` on something other than literals) do not panic: they travel
//! with the expression and come back as [`ClientError::BadPlan`] from the
//! operation that would have sent it, before anything is sent.

use std::fmt;
use std::ops::{Add, BitAnd, BitOr, Mul, Not, Sub};

use triad_plan::{BinOp, Expr as PlanExpr, MAX_SCALE};

use crate::error::ClientError;

/// A row-wise expression over the columns of a secret frame: a column, a
/// literal, arithmetic (`+ - *`), comparisons (`eq`, `neq`, `lt`,
/// `lt_eq`, `gt`, `gt_eq`), logic (`&`, `|`, `!`), `is_null` and `is_in`.
///
/// Comparisons and logic give truth values (null where an operand is
/// null, with Kleene logic for `&` and `|`, as polars); a filter keeps the
/// rows where its predicate is true.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expr {
    inner: Result<PlanExpr, String>,
}

/// The column called `name`.
pub fn col(name: &str) -> Expr {
    Expr::from_plan(PlanExpr::Column(name.to_owned()))
}

/// An integer literal (also a date as days since 1970-01-01, or a bool as
/// 0/1).
pub fn lit(value: i64) -> Expr {
    lit_fixed(value, 0)
}

/// A boolean literal (1 or 0).
pub fn lit_bool(value: bool) -> Expr {
    lit(i64::from(value))
}

/// A decimal literal given as its scaled integer: `lit_fixed(125, 2)` is
/// 1.25.
pub fn lit_fixed(value: i64, scale: u32) -> Expr {
    if scale > MAX_SCALE {
        return Expr::error(format!(
            "literal with {scale} decimal places (at most {MAX_SCALE})"
        ));
    }
    Expr::from_plan(PlanExpr::Literal { value, scale })
}

/// A decimal literal written in base ten: `lit_decimal("1.25")`,
/// `lit_decimal("-0.5")`, `lit_decimal("3")`. Its scale is the number of
/// digits after the point (at most 18).
pub fn lit_decimal(text: &str) -> Expr {
    match parse_decimal(text) {
        Some((value, scale)) => lit_fixed(value, scale),
        None => Expr::error(format!(
            "{text:?} is not a decimal literal (digits, an optional sign and point, at most {MAX_SCALE} decimal places, within 64 bits)"
        )),
    }
}

/// A date literal written `YYYY-MM-DD`, as days since 1970-01-01 (the
/// encoding of date columns).
pub fn lit_date(text: &str) -> Expr {
    match crate::schema::parse_date(text) {
        Some(days) => lit(days),
        None => Expr::error(format!("{text:?} is not a date written YYYY-MM-DD")),
    }
}

/// The days since 1970-01-01 of a date written `YYYY-MM-DD`, if it is one.
pub fn date_days(text: &str) -> Option<i64> {
    crate::schema::parse_date(text)
}

fn parse_decimal(text: &str) -> Option<(i64, u32)> {
    let t = text.trim();
    let (negative, digits) = match t.as_bytes().first()? {
        b'-' => (true, &t[1..]),
        b'+' => (false, &t[1..]),
        _ => (false, t),
    };
    let (int, frac) = match digits.split_once('.') {
        Some((i, f)) => (i, f),
        None => (digits, ""),
    };
    if (int.is_empty() && frac.is_empty())
        || !int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit())
        || (digits.contains('.') && frac.is_empty())
    {
        return None;
    }
    let scale = u32::try_from(frac.len()).ok().filter(|s| *s <= MAX_SCALE)?;
    let mut v: i128 = 0;
    for b in int.bytes().chain(frac.bytes()) {
        v = v.checked_mul(10)?.checked_add(i128::from(b - b'0'))?;
        if v > i128::from(u64::MAX) {
            return None;
        }
    }
    let v = if negative { -v } else { v };
    Some((i64::try_from(v).ok()?, scale))
}

impl Expr {
    /// Wraps a plan expression.
    pub fn from_plan(expr: PlanExpr) -> Expr {
        Expr { inner: Ok(expr) }
    }

    /// An expression that failed to build; the error surfaces when a plan
    /// containing it is built.
    fn error(message: String) -> Expr {
        Expr {
            inner: Err(message),
        }
    }

    /// The plan expression, or the error made while building it
    /// ([`ClientError::BadPlan`]).
    pub fn to_plan(&self) -> Result<PlanExpr, ClientError> {
        self.inner.clone().map_err(|message| ClientError::BadPlan {
            message,
            plan: None,
        })
    }

    fn binary(op: BinOp, left: Expr, right: Expr) -> Expr {
        match (left.inner, right.inner) {
            (Ok(l), Ok(r)) => Expr::from_plan(PlanExpr::Binary {
                op,
                left: Box::new(l),
                right: Box::new(r),
            }),
            (Err(e), _) | (_, Err(e)) => Expr::error(e),
        }
    }

    fn unary(self, wrap: impl FnOnce(Box<PlanExpr>) -> PlanExpr) -> Expr {
        match self.inner {
            Ok(e) => Expr::from_plan(wrap(Box::new(e))),
            Err(e) => Expr::error(e),
        }
    }

    /// `self == other`.
    pub fn eq(self, other: impl Into<Expr>) -> Expr {
        Expr::binary(BinOp::Eq, self, other.into())
    }

    /// `self != other`.
    pub fn neq(self, other: impl Into<Expr>) -> Expr {
        Expr::binary(BinOp::Ne, self, other.into())
    }

    /// `self < other`.
    pub fn lt(self, other: impl Into<Expr>) -> Expr {
        Expr::binary(BinOp::Lt, self, other.into())
    }

    /// `self <= other`.
    pub fn lt_eq(self, other: impl Into<Expr>) -> Expr {
        Expr::binary(BinOp::Le, self, other.into())
    }

    /// `self > other`.
    pub fn gt(self, other: impl Into<Expr>) -> Expr {
        Expr::binary(BinOp::Gt, self, other.into())
    }

    /// `self >= other`.
    pub fn gt_eq(self, other: impl Into<Expr>) -> Expr {
        Expr::binary(BinOp::Ge, self, other.into())
    }

    /// True where the value is null (never null itself).
    pub fn is_null(self) -> Expr {
        self.unary(PlanExpr::IsNull)
    }

    /// True where the value is not null.
    pub fn is_not_null(self) -> Expr {
        !self.is_null()
    }

    /// True where the value equals one of `values`, which must be literals
    /// (numbers, [`lit_decimal`], [`lit_date`], ...); they are brought to
    /// one scale. At most 64 values (the plan checker's limit).
    pub fn is_in<T: Into<Expr> + Clone>(self, values: &[T]) -> Expr {
        let mut literals = Vec::with_capacity(values.len());
        for v in values {
            match v.clone().into().inner {
                Ok(PlanExpr::Literal { value, scale }) => literals.push((value, scale)),
                Ok(other) => {
                    return Expr::error(format!("is_in takes literals, not {other}"));
                }
                Err(e) => return Expr::error(e),
            }
        }
        let scale = literals.iter().map(|(_, s)| *s).max().unwrap_or(0);
        let mut scaled = Vec::with_capacity(literals.len());
        for (value, s) in literals {
            match 10i64
                .checked_pow(scale - s)
                .and_then(|f| value.checked_mul(f))
            {
                Some(v) => scaled.push(v),
                None => {
                    return Expr::error(format!(
                        "is_in literal {value} does not fit 64 bits at scale {scale}"
                    ));
                }
            }
        }
        self.unary(|expr| PlanExpr::IsIn {
            expr,
            values: scaled,
            scale,
        })
    }

    /// This expression as a filter predicate whose selection any later
    /// aggregate must count at least `n` rows of (crandas' `with_threshold`).
    /// The threshold gate reveals only whether it passed.
    pub fn with_threshold(self, n: u64) -> Predicate {
        Predicate {
            expr: self,
            threshold: Some(n),
        }
    }
}

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.inner {
            Ok(e) => write!(f, "{e}"),
            Err(e) => write!(f, "<error: {e}>"),
        }
    }
}

impl From<PlanExpr> for Expr {
    fn from(expr: PlanExpr) -> Expr {
        Expr::from_plan(expr)
    }
}

impl From<i64> for Expr {
    fn from(v: i64) -> Expr {
        lit(v)
    }
}

impl From<i32> for Expr {
    fn from(v: i32) -> Expr {
        lit(i64::from(v))
    }
}

impl From<u32> for Expr {
    fn from(v: u32) -> Expr {
        lit(i64::from(v))
    }
}

impl From<bool> for Expr {
    fn from(v: bool) -> Expr {
        lit_bool(v)
    }
}

impl<T: Into<Expr>> Add<T> for Expr {
    type Output = Expr;
    fn add(self, rhs: T) -> Expr {
        Expr::binary(BinOp::Add, self, rhs.into())
    }
}

impl<T: Into<Expr>> Sub<T> for Expr {
    type Output = Expr;
    fn sub(self, rhs: T) -> Expr {
        Expr::binary(BinOp::Sub, self, rhs.into())
    }
}

impl<T: Into<Expr>> Mul<T> for Expr {
    type Output = Expr;
    fn mul(self, rhs: T) -> Expr {
        Expr::binary(BinOp::Mul, self, rhs.into())
    }
}

impl<T: Into<Expr>> BitAnd<T> for Expr {
    type Output = Expr;
    fn bitand(self, rhs: T) -> Expr {
        Expr::binary(BinOp::And, self, rhs.into())
    }
}

impl<T: Into<Expr>> BitOr<T> for Expr {
    type Output = Expr;
    fn bitor(self, rhs: T) -> Expr {
        Expr::binary(BinOp::Or, self, rhs.into())
    }
}

impl Not for Expr {
    type Output = Expr;
    fn not(self) -> Expr {
        self.unary(PlanExpr::Not)
    }
}

/// A filter predicate: a truth-valued [`Expr`] and, optionally, the
/// threshold that every aggregate over the rows it selects must reach
/// (`expr.with_threshold(n)`). A plain `Expr` converts into one with no
/// threshold (the deployment's minimum still applies to every aggregate).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Predicate {
    /// The condition.
    pub expr: Expr,
    /// Minimum rows any aggregate over this selection must count.
    pub threshold: Option<u64>,
}

impl Predicate {
    /// The same predicate with threshold `n`.
    pub fn with_threshold(self, n: u64) -> Predicate {
        Predicate {
            threshold: Some(n),
            ..self
        }
    }
}

impl From<Expr> for Predicate {
    fn from(expr: Expr) -> Predicate {
        Predicate {
            expr,
            threshold: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(e: Expr) -> PlanExpr {
        e.to_plan().unwrap()
    }

    fn column(name: &str) -> Box<PlanExpr> {
        Box::new(PlanExpr::Column(name.into()))
    }

    fn literal(value: i64, scale: u32) -> Box<PlanExpr> {
        Box::new(PlanExpr::Literal { value, scale })
    }

    #[test]
    fn builds_the_seed_predicate() {
        let p = (col("condition_y").eq(lit(1)) & col("month").eq(5u32)).with_threshold(3);
        assert_eq!(p.threshold, Some(3));
        assert_eq!(
            plan(p.expr.clone()),
            PlanExpr::Binary {
                op: BinOp::And,
                left: Box::new(PlanExpr::Binary {
                    op: BinOp::Eq,
                    left: column("condition_y"),
                    right: literal(1, 0),
                }),
                right: Box::new(PlanExpr::Binary {
                    op: BinOp::Eq,
                    left: column("month"),
                    right: literal(5, 0),
                }),
            }
        );
        assert_eq!(p.expr.to_string(), "((condition_y == 1) & (month == 5))");
    }

    #[test]
    fn operators_and_comparisons() {
        let cases: Vec<(Expr, BinOp)> = vec![
            (col("a") + 1, BinOp::Add),
            (col("a") - 1, BinOp::Sub),
            (col("a") * 1, BinOp::Mul),
            (col("a") | 1, BinOp::Or),
            (col("a").neq(1), BinOp::Ne),
            (col("a").lt(1), BinOp::Lt),
            (col("a").lt_eq(1), BinOp::Le),
            (col("a").gt(1), BinOp::Gt),
            (col("a").gt_eq(1), BinOp::Ge),
        ];
        for (e, op) in cases {
            assert_eq!(
                plan(e),
                PlanExpr::Binary {
                    op,
                    left: column("a"),
                    right: literal(1, 0),
                }
            );
        }
        assert_eq!(plan(!col("b")), PlanExpr::Not(column("b")));
        assert_eq!(plan(col("b").is_null()), PlanExpr::IsNull(column("b")));
        assert_eq!(
            plan(col("b").is_not_null()),
            PlanExpr::Not(Box::new(PlanExpr::IsNull(column("b"))))
        );
        assert_eq!(plan(lit_bool(true)), *literal(1, 0));
        assert_eq!(plan(Expr::from(false)), *literal(0, 0));
    }

    #[test]
    fn literals() {
        assert_eq!(plan(lit_decimal("1.25")), *literal(125, 2));
        assert_eq!(plan(lit_decimal("-0.5")), *literal(-5, 1));
        assert_eq!(plan(lit_decimal("+3")), *literal(3, 0));
        assert_eq!(plan(lit_decimal(".5")), *literal(5, 1));
        assert_eq!(plan(lit_date("1970-01-02")), *literal(1, 0));
        assert_eq!(plan(lit_date("2024-01-31")), *literal(19_753, 0));
        assert_eq!(date_days("2024-01-31"), Some(19_753));
        for bad in ["", "-", "1.", "1.2.3", "1e5", "abc", "99999999999999999999"] {
            let e = lit_decimal(bad);
            assert!(
                matches!(e.to_plan(), Err(ClientError::BadPlan { .. })),
                "{bad}"
            );
        }
        assert!(lit_date("2023-02-29").to_plan().is_err());
        assert!(lit_fixed(1, 19).to_plan().is_err());
        // An error anywhere in the tree surfaces.
        let e = (col("a").eq(lit_date("nope")) & col("b").eq(1)) | col("c");
        match e.to_plan() {
            Err(ClientError::BadPlan { message, .. }) => assert!(message.contains("nope")),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn is_in_aligns_scales_and_takes_only_literals() {
        assert_eq!(
            plan(col("m").is_in(&[1, 5, 9])),
            PlanExpr::IsIn {
                expr: column("m"),
                values: vec![1, 5, 9],
                scale: 0,
            }
        );
        assert_eq!(
            plan(col("p").is_in(&[lit(1), lit_decimal("2.5")])),
            PlanExpr::IsIn {
                expr: column("p"),
                values: vec![10, 25],
                scale: 1,
            }
        );
        assert!(col("p").is_in(&[col("q")]).to_plan().is_err());
        assert!(
            col("p")
                .is_in(&[lit(i64::MAX), lit_decimal("0.1")])
                .to_plan()
                .is_err()
        );
    }
}
