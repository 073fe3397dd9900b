//! Decoding what the nodes reveal to the client: the reconstructed result
//! words of an aggregate or group-by, into typed values and tables.
//!
//! The word layout is the one `triad_exec::Answer` documents: per passing
//! group, in order, first (for a sorted group-by) one word per key, then
//! per aggregation [`Agg::words`] words: sum; count; mean as (sum, count);
//! var as (sum, count, sum of squares); min or max as the value. Words are
//! encoded integers in two's complement: `fixed(s)` is the value times
//! `10^s`, a date the days since 1970-01-01, a bool 0 or 1.
//!
//! Means and variances are computed here from exact integer sums (in
//! `i128`) and converted to `f64` only at the end.

use std::fmt;

use polars::prelude as pl;
use triad_plan::{Agg, Aggregation, ColumnInfo, GroupForm, Ty};

use crate::error::ClientError;

/// A revealed value, typed by the column it came from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value {
    /// An integer: sums and min/max of `int` columns, counts, sums of
    /// `bool` columns.
    Int(i64),
    /// A min or max of a `bool` column.
    Bool(bool),
    /// An exact decimal, `value / 10^scale`: sums and min/max of `fixed`
    /// columns.
    Decimal {
        /// The scaled value.
        value: i64,
        /// Decimal places.
        scale: u32,
    },
    /// A mean or a variance (`NaN` when undefined: a variance of fewer
    /// than two values, a mean of none).
    Float(f64),
    /// A date as days since 1970-01-01: min/max of `date` columns.
    Date(i64),
}

impl Value {
    /// The value of encoded word `v` of a column of type `ty` (string
    /// limbs come back as integers).
    pub fn from_encoded(ty: Ty, v: i64) -> Value {
        match ty {
            Ty::Bool => Value::Bool(v != 0),
            Ty::Date => Value::Date(v),
            Ty::Fixed(scale) => Value::Decimal { value: v, scale },
            Ty::Int | Ty::String(_) => Value::Int(v),
        }
    }

    /// The value as a float (dates as days, bools as 0/1).
    pub fn as_f64(&self) -> f64 {
        match *self {
            Value::Int(v) | Value::Date(v) => v as f64,
            Value::Bool(b) => f64::from(u8::from(b)),
            Value::Decimal { value, scale } => value as f64 / 10f64.powi(scale as i32),
            Value::Float(f) => f,
        }
    }

    /// The value as an integer, if it is one (ints, bools as 0/1, dates as
    /// days, decimals without decimal places).
    pub fn as_i64(&self) -> Option<i64> {
        match *self {
            Value::Int(v) | Value::Date(v) => Some(v),
            Value::Bool(b) => Some(i64::from(b)),
            Value::Decimal { value, scale: 0 } => Some(value),
            Value::Decimal { .. } | Value::Float(_) => None,
        }
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Value::Int(v) => write!(f, "{v}"),
            Value::Bool(b) => write!(f, "{b}"),
            Value::Decimal { value, scale } => {
                f.write_str(&crate::schema::ColumnType::Fixed { scale }.format_value(value.into()))
            }
            Value::Float(v) => write!(f, "{v}"),
            Value::Date(d) => match crate::schema::format_date(d) {
                Some(s) => f.write_str(&s),
                None => write!(f, "{d} days"),
            },
        }
    }
}

fn broken(message: String) -> ClientError {
    ClientError::Disagreement(message)
}

/// `num / (den * 10^scale)` as a float: one correctly rounded division
/// when both fit a float exactly, otherwise through the exact integer
/// quotient and remainder.
fn ratio(num: i128, den: i128, scale: u32) -> f64 {
    const EXACT: u128 = 1 << 53;
    if den == 0 {
        return f64::NAN;
    }
    match 10i128.checked_pow(scale).and_then(|p| den.checked_mul(p)) {
        Some(d) if num.unsigned_abs() <= EXACT && d.unsigned_abs() <= EXACT => {
            num as f64 / d as f64
        }
        Some(d) => (num / d) as f64 + (num % d) as f64 / d as f64,
        None => ((num / den) as f64 + (num % den) as f64 / den as f64) / 10f64.powi(scale as i32),
    }
}

/// Decodes one aggregation from its [`Agg::words`] words. `column` is the
/// aggregated column's description (none for a count of rows).
pub fn decode_aggregation(
    aggregation: &Aggregation,
    column: Option<&ColumnInfo>,
    words: &[u64],
) -> Result<Value, ClientError> {
    let need = aggregation.agg.words();
    if words.len() != need {
        return Err(broken(format!(
            "{} came back as {} words, not {need}",
            aggregation.agg.name(),
            words.len()
        )));
    }
    let ty = column.map_or(Ty::Int, |c| c.ty);
    let scale = ty.scale();
    let signed = |i: usize| words[i] as i64;
    Ok(match aggregation.agg {
        Agg::Count => Value::Int(signed(0)),
        Agg::Sum => match ty {
            Ty::Fixed(scale) => Value::Decimal {
                value: signed(0),
                scale,
            },
            _ => Value::Int(signed(0)),
        },
        Agg::Mean => Value::Float(ratio(i128::from(signed(0)), i128::from(signed(1)), scale)),
        Agg::Var => {
            let (s, n, ss) = (
                i128::from(signed(0)),
                i128::from(signed(1)),
                i128::from(signed(2)),
            );
            if n < 2 {
                Value::Float(f64::NAN)
            } else {
                // Sample variance (ddof 1): (n ss - s^2) / (n (n - 1)); every
                // term fits i128 because the plan bounds s and ss by 2^63.
                let num = n * ss - s * s;
                Value::Float(ratio(num, n * (n - 1), 2 * scale))
            }
        }
        Agg::Min | Agg::Max => Value::from_encoded(ty, signed(0)),
    })
}

/// One group of a group-by that passed its gate.
#[derive(Debug, Clone, PartialEq)]
pub struct Group {
    /// Encoded key values, one per key column.
    pub key: Vec<i64>,
    /// One value per aggregation.
    pub values: Vec<Value>,
}

/// Decodes a group-by's answer. For a [`GroupForm::Domain`] group-by,
/// `passed[i]` belongs to `combinations[i]` and the groups come back in
/// combination order; for [`GroupForm::Sorted`], `passed` has one entry per
/// shuffled row, every passing row carries its keys, and the groups are
/// returned sorted by key.
pub fn decode_group_by(
    keys: &[ColumnInfo],
    aggregations: &[(Aggregation, Option<ColumnInfo>)],
    form: &GroupForm,
    passed: &[bool],
    words: &[u64],
) -> Result<Vec<Group>, ClientError> {
    let per_aggregates: usize = aggregations.iter().map(|(a, _)| a.agg.words()).sum();
    let passing = passed.iter().filter(|p| **p).count();
    let key_words = match form {
        GroupForm::Domain { combinations } => {
            if passed.len() != combinations.len() {
                return Err(broken(format!(
                    "{} gate outcomes for {} key combinations",
                    passed.len(),
                    combinations.len()
                )));
            }
            0
        }
        GroupForm::Sorted => keys.len(),
    };
    let per_group = key_words + per_aggregates;
    if words.len() != passing * per_group {
        return Err(broken(format!(
            "{} result words for {passing} groups of {per_group} words",
            words.len()
        )));
    }
    let mut groups = Vec::with_capacity(passing);
    let mut chunks = words.chunks_exact(per_group.max(1));
    for (i, ok) in passed.iter().enumerate() {
        if !ok {
            continue;
        }
        let chunk = if per_group == 0 {
            &[][..]
        } else {
            chunks
                .next()
                .ok_or_else(|| broken("too few result words".into()))?
        };
        let key = match form {
            GroupForm::Domain { combinations } => combinations[i].clone(),
            GroupForm::Sorted => chunk[..key_words].iter().map(|w| *w as i64).collect(),
        };
        let mut at = key_words;
        let mut values = Vec::with_capacity(aggregations.len());
        for (a, column) in aggregations {
            let n = a.agg.words();
            values.push(decode_aggregation(a, column.as_ref(), &chunk[at..at + n])?);
            at += n;
        }
        groups.push(Group { key, values });
    }
    if matches!(form, GroupForm::Sorted) {
        groups.sort_by(|a, b| a.key.cmp(&b.key));
    }
    Ok(groups)
}

/// The output column name of an aggregation: `{column}_{agg}` (`count` for
/// a count of rows).
pub fn aggregation_name(aggregation: &Aggregation) -> String {
    match &aggregation.column {
        Some(c) => format!("{c}_{}", aggregation.agg.name()),
        None => aggregation.agg.name().to_owned(),
    }
}

fn polars_error(e: pl::PolarsError) -> ClientError {
    ClientError::Usage(format!("building the result table: {e}"))
}

/// A polars column of typed values: `int` as Int64, `bool` as Boolean,
/// `fixed` and floats as Float64 (NaN as null), dates as ISO strings
/// (`YYYY-MM-DD`).
fn value_column(name: &str, ty: ValueKind, values: Vec<Value>) -> pl::Column {
    let name: pl::PlSmallStr = name.into();
    match ty {
        ValueKind::Int => pl::Column::new(
            name,
            values
                .iter()
                .map(|v| v.as_i64())
                .collect::<Vec<Option<i64>>>(),
        ),
        ValueKind::Bool => pl::Column::new(
            name,
            values
                .iter()
                .map(|v| v.as_i64().map(|x| x != 0))
                .collect::<Vec<Option<bool>>>(),
        ),
        ValueKind::Float => pl::Column::new(
            name,
            values
                .iter()
                .map(|v| Some(v.as_f64()).filter(|f| !f.is_nan()))
                .collect::<Vec<Option<f64>>>(),
        ),
        ValueKind::Date => pl::Column::new(
            name,
            values
                .iter()
                .map(|v| Some(v.to_string()))
                .collect::<Vec<Option<String>>>(),
        ),
    }
}

#[derive(Clone, Copy)]
enum ValueKind {
    Int,
    Bool,
    Float,
    Date,
}

fn kind_of_type(ty: Ty) -> ValueKind {
    match ty {
        Ty::Int | Ty::String(_) => ValueKind::Int,
        Ty::Bool => ValueKind::Bool,
        Ty::Date => ValueKind::Date,
        Ty::Fixed(_) => ValueKind::Float,
    }
}

fn kind_of_aggregation(aggregation: &Aggregation, column: Option<&ColumnInfo>) -> ValueKind {
    let ty = column.map_or(Ty::Int, |c| c.ty);
    match aggregation.agg {
        Agg::Count => ValueKind::Int,
        Agg::Sum => match ty {
            Ty::Fixed(_) => ValueKind::Float,
            _ => ValueKind::Int,
        },
        Agg::Mean | Agg::Var => ValueKind::Float,
        Agg::Min | Agg::Max => kind_of_type(ty),
    }
}

/// The groups as a polars `DataFrame`: one column per key (named as the
/// key) and one per aggregation (named by [`aggregation_name`]). Keys and
/// values are typed as in [`Value`]: `int` columns and counts as Int64,
/// `bool` as Boolean, `fixed` values, means and variances as Float64
/// (an undefined variance is null), dates as `YYYY-MM-DD` strings.
pub fn groups_to_dataframe(
    keys: &[ColumnInfo],
    aggregations: &[(Aggregation, Option<ColumnInfo>)],
    groups: &[Group],
) -> Result<pl::DataFrame, ClientError> {
    let mut columns = Vec::new();
    for (k, info) in keys.iter().enumerate() {
        let values = groups
            .iter()
            .map(|g| Value::from_encoded(info.ty, g.key[k]))
            .collect();
        columns.push(value_column(&info.name, kind_of_type(info.ty), values));
    }
    for (j, (a, column)) in aggregations.iter().enumerate() {
        let values = groups.iter().map(|g| g.values[j]).collect();
        columns.push(value_column(
            &aggregation_name(a),
            kind_of_aggregation(a, column.as_ref()),
            values,
        ));
    }
    pl::DataFrame::new(groups.len(), columns).map_err(polars_error)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(name: &str, ty: Ty, min: i128, max: i128) -> ColumnInfo {
        ColumnInfo {
            name: name.into(),
            ty,
            min,
            max,
            nullable: false,
        }
    }

    fn agg(agg: Agg, column: Option<&str>) -> Aggregation {
        Aggregation {
            agg,
            column: column.map(str::to_owned),
        }
    }

    fn w(v: i64) -> u64 {
        v as u64
    }

    #[test]
    fn single_aggregates() {
        let x = info("x", Ty::Int, -100, 100);
        let p = info("p", Ty::Fixed(2), -10_000, 10_000);
        let d = info("d", Ty::Date, 0, 30_000);
        let b = info("b", Ty::Bool, 0, 1);
        let dec = |a, c: Option<&ColumnInfo>, words: &[u64]| {
            decode_aggregation(&agg(a, c.map(|c| c.name.as_str())), c, words).unwrap()
        };
        assert_eq!(dec(Agg::Sum, Some(&x), &[w(-42)]), Value::Int(-42));
        assert_eq!(
            dec(Agg::Sum, Some(&p), &[w(-1234)]),
            Value::Decimal {
                value: -1234,
                scale: 2
            }
        );
        assert_eq!(dec(Agg::Sum, Some(&p), &[w(-1234)]).to_string(), "-12.34");
        assert_eq!(dec(Agg::Count, None, &[7]), Value::Int(7));
        assert_eq!(dec(Agg::Count, Some(&x), &[7]), Value::Int(7));
        assert_eq!(dec(Agg::Mean, Some(&x), &[w(-7), 2]), Value::Float(-3.5));
        assert_eq!(dec(Agg::Mean, Some(&p), &[w(300), 4]), Value::Float(0.75));
        // Values 1, 2, 3, 4: sum 10, sum of squares 30, sample var 5/3.
        assert_eq!(
            dec(Agg::Var, Some(&x), &[10, 4, 30]),
            Value::Float(5.0 / 3.0)
        );
        // The same in fixed(2): 0.01 .. 0.04, variance scaled by 10^-4.
        let v = dec(Agg::Var, Some(&p), &[10, 4, 30]).as_f64();
        assert!((v - 5.0 / 3.0 / 1e4).abs() < 1e-15, "{v}");
        // Large values stay exact until the final division: values
        // 2^30 + {0, 1, 2}: var 1.
        let base = 1i128 << 30;
        let (s, ss) = (3 * base + 3, (base * base) * 3 + 2 * base * 3 + 5);
        assert_eq!(
            dec(Agg::Var, Some(&x), &[s as u64, 3, ss as u64]),
            Value::Float(1.0)
        );
        assert!(dec(Agg::Var, Some(&x), &[5, 1, 25]).as_f64().is_nan());
        assert_eq!(dec(Agg::Min, Some(&x), &[w(-100)]), Value::Int(-100));
        assert_eq!(dec(Agg::Max, Some(&d), &[19_753]), Value::Date(19_753));
        assert_eq!(dec(Agg::Max, Some(&d), &[19_753]).to_string(), "2024-01-31");
        assert_eq!(dec(Agg::Min, Some(&b), &[1]), Value::Bool(true));
        assert_eq!(
            dec(Agg::Max, Some(&p), &[w(-5)]),
            Value::Decimal {
                value: -5,
                scale: 2
            }
        );
        // Word counts are checked.
        assert!(decode_aggregation(&agg(Agg::Mean, Some("x")), Some(&x), &[1]).is_err());
        assert!(decode_aggregation(&agg(Agg::Sum, Some("x")), Some(&x), &[1, 2]).is_err());
    }

    #[test]
    fn domain_group_by() {
        let month = info("month", Ty::Int, 1, 3);
        let smokes = info("smokes", Ty::Bool, 0, 1);
        let x = info("x", Ty::Int, 0, 10);
        let keys = vec![month.clone(), smokes.clone()];
        let combinations: Vec<Vec<i64>> = (1..=3)
            .flat_map(|m| (0..=1).map(move |s| vec![m, s]))
            .collect();
        let form = GroupForm::Domain {
            combinations: combinations.clone(),
        };
        let aggs = vec![
            (agg(Agg::Sum, Some("x")), Some(x.clone())),
            (agg(Agg::Count, None), None),
            (agg(Agg::Var, Some("x")), Some(x.clone())),
        ];
        // Groups (1, true) and (3, false) passed.
        let passed = [false, true, false, false, true, false];
        let words = [10, 4, 10, 4, 30, 6, 3, 6, 3, 14];
        let groups = decode_group_by(&keys, &aggs, &form, &passed, &words).unwrap();
        assert_eq!(groups.len(), 2);
        assert_eq!(groups[0].key, vec![1, 1]);
        assert_eq!(
            groups[0].values,
            vec![Value::Int(10), Value::Int(4), Value::Float(5.0 / 3.0)]
        );
        assert_eq!(groups[1].key, vec![3, 0]);
        assert_eq!(groups[1].values[2], Value::Float(1.0));
        // Wrong lengths are refused.
        assert!(decode_group_by(&keys, &aggs, &form, &passed, &words[1..]).is_err());
        assert!(decode_group_by(&keys, &aggs, &form, &passed[1..], &words).is_err());

        let df = groups_to_dataframe(&keys, &aggs, &groups).unwrap();
        assert_eq!(df.height(), 2);
        let names: Vec<String> = df
            .get_column_names()
            .iter()
            .map(|n| n.to_string())
            .collect();
        assert_eq!(names, ["month", "smokes", "x_sum", "count", "x_var"]);
        let months: Vec<Option<i64>> = df.column("month").unwrap().i64().unwrap().iter().collect();
        assert_eq!(months, [Some(1), Some(3)]);
        let smokes: Vec<Option<bool>> = df
            .column("smokes")
            .unwrap()
            .bool()
            .unwrap()
            .iter()
            .collect();
        assert_eq!(smokes, [Some(true), Some(false)]);
    }

    #[test]
    fn sorted_group_by() {
        let id = info("id", Ty::Int, 0, 1 << 40);
        let day = info("day", Ty::Date, 0, 40_000);
        let p = info("p", Ty::Fixed(1), -1000, 1000);
        let keys = vec![id.clone(), day.clone()];
        let aggs = vec![
            (agg(Agg::Mean, Some("p")), Some(p.clone())),
            (agg(Agg::Count, Some("p")), Some(p.clone())),
        ];
        // Shuffled rows; rows 1 and 3 passed, in reverse key order.
        let passed = [false, true, false, true];
        let words = [9, 19_753, w(-30), 4, 4, 2, 0, 15, 3, 3];
        let groups = decode_group_by(&keys, &aggs, &GroupForm::Sorted, &passed, &words).unwrap();
        assert_eq!(groups[0].key, vec![2, 0]);
        assert_eq!(groups[0].values, vec![Value::Float(0.5), Value::Int(3)]);
        assert_eq!(groups[1].key, vec![9, 19_753]);
        assert_eq!(groups[1].values, vec![Value::Float(-0.75), Value::Int(4)]);
        let df = groups_to_dataframe(&keys, &aggs, &groups).unwrap();
        let days: Vec<Option<String>> = df
            .column("day")
            .unwrap()
            .str()
            .unwrap()
            .iter()
            .map(|s| s.map(str::to_owned))
            .collect();
        assert_eq!(days, [Some("1970-01-01".into()), Some("2024-01-31".into())]);
        let means: Vec<Option<f64>> = df.column("p_mean").unwrap().f64().unwrap().iter().collect();
        assert_eq!(means, [Some(0.5), Some(-0.75)]);
        // Nothing passed: an empty table with the right columns.
        let none = decode_group_by(&keys, &aggs, &GroupForm::Sorted, &[false; 4], &[]).unwrap();
        let df = groups_to_dataframe(&keys, &aggs, &none).unwrap();
        assert_eq!(df.shape(), (0, 4));
        assert!(decode_group_by(&keys, &aggs, &GroupForm::Sorted, &passed, &words[..9]).is_err());
    }
}
