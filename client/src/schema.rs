//! Table schemas: the columns of a table, their types and their declared
//! (public) ranges.
//!
//! A schema is written by the data owner as a TOML file:
//!
//! ```toml
//! [[column]]
//! name = "year"
//! type = "int"
//! min = 2000
//! max = 2030
//!
//! [[column]]
//! name = "dose"
//! type = "fixed"
//! scale = 2
//! min = "-100.00"
//! max = "100.00"
//! nullable = true
//! ```
//!
//! Ranges are public (they are part of the schema the nodes see), so they
//! must be declared for `int` and `fixed` columns. Every value is encoded as
//! one or more integers; [`ColumnSpec::min`] and [`ColumnSpec::max`] are in
//! that encoded domain (days since 1970-01-01 for dates, the value times
//! `10^scale` for fixed-point decimals).

use std::collections::HashSet;
use std::fmt;
use std::path::Path;
use std::str::FromStr;

use serde::Deserialize;
use triad_plan::Ty;

/// Largest supported scale of a fixed-point column.
pub const MAX_SCALE: u32 = triad_plan::MAX_SCALE;
/// Largest supported width, in bytes, of a string column.
pub const MAX_WIDTH: u32 = triad_plan::MAX_WIDTH;

/// Days since 1970-01-01 of 0000-01-01, the default minimum of a date column.
const DEFAULT_DATE_MIN: i128 = -719_528;
/// Days since 1970-01-01 of 9999-12-31, the default maximum of a date column.
const DEFAULT_DATE_MAX: i128 = 2_932_896;

/// The type of a column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ColumnType {
    /// A 64-bit signed integer.
    Int,
    /// A boolean, encoded as 0 or 1.
    Bool,
    /// A date, written `YYYY-MM-DD` and encoded as days since 1970-01-01.
    Date,
    /// A fixed-point decimal, encoded as the value times `10^scale`.
    Fixed {
        /// Number of decimal places kept.
        scale: u32,
    },
    /// A UTF-8 string of at most `width` bytes, packed little-endian into
    /// `ceil(width / 8)` 64-bit limbs and zero padded.
    String {
        /// Maximum length in bytes.
        width: u32,
    },
}

impl ColumnType {
    /// The tag the nodes store for this type: `int`, `bool`, `date`,
    /// `fixed(2)`, `string(16)`.
    pub fn tag(&self) -> String {
        match self {
            ColumnType::Int => "int".to_owned(),
            ColumnType::Bool => "bool".to_owned(),
            ColumnType::Date => "date".to_owned(),
            ColumnType::Fixed { scale } => format!("fixed({scale})"),
            ColumnType::String { width } => format!("string({width})"),
        }
    }

    /// Parses a tag made by [`ColumnType::tag`], checking the scale and the
    /// width are in their supported ranges.
    pub fn from_tag(tag: &str) -> Result<ColumnType, SchemaError> {
        // One parser for the nodes' tags: the plan's.
        Ok(
            match Ty::from_tag(tag).ok_or_else(|| SchemaError::BadTag(tag.to_owned()))? {
                Ty::Int => ColumnType::Int,
                Ty::Bool => ColumnType::Bool,
                Ty::Date => ColumnType::Date,
                Ty::Fixed(scale) => ColumnType::Fixed { scale },
                Ty::String(width) => ColumnType::String { width },
            },
        )
    }

    /// Number of 64-bit share columns holding one value of this type
    /// (not counting the validity column of a nullable column).
    pub fn limbs(&self) -> usize {
        match self {
            ColumnType::String { width } => (*width as usize).div_ceil(8),
            _ => 1,
        }
    }

    /// The default encoded range of this type when none is declared, or
    /// `None` when a range must be declared.
    fn default_range(&self) -> Option<(i128, i128)> {
        match self {
            ColumnType::Int | ColumnType::Fixed { .. } => None,
            ColumnType::Bool => Some((0, 1)),
            ColumnType::Date => Some((DEFAULT_DATE_MIN, DEFAULT_DATE_MAX)),
            ColumnType::String { .. } => Some((0, u64::MAX as i128)),
        }
    }

    /// Formats an encoded value in the column's units: an integer, `0`/`1`
    /// for booleans, an ISO date, or a decimal with `scale` places. String
    /// limbs are shown as integers.
    pub fn format_value(&self, v: i128) -> String {
        match self {
            ColumnType::Date => i64::try_from(v)
                .ok()
                .and_then(format_date)
                .unwrap_or_else(|| v.to_string()),
            ColumnType::Fixed { scale } => format_decimal(v, *scale),
            _ => v.to_string(),
        }
    }
}

impl fmt::Display for ColumnType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.tag())
    }
}

impl FromStr for ColumnType {
    type Err = SchemaError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ColumnType::from_tag(s)
    }
}

/// One column of a schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnSpec {
    /// Column name, as in the header of the file.
    pub name: String,
    /// Column type.
    pub ty: ColumnType,
    /// Smallest allowed value, in the encoded integer domain.
    pub min: i128,
    /// Largest allowed value, in the encoded integer domain.
    pub max: i128,
    /// Whether cells may be null (a nullable column gets a validity column).
    pub nullable: bool,
}

impl ColumnSpec {
    /// The type tag the nodes store: see [`ColumnType::tag`].
    pub fn type_tag(&self) -> String {
        self.ty.tag()
    }

    /// Names of the share columns this column is encoded into: `name` for
    /// one-limb types, `name#0`, `name#1`, ... for strings, followed by
    /// `name#valid` if the column is nullable.
    pub fn share_column_names(&self) -> Vec<String> {
        let limbs = self.ty.limbs();
        let mut names: Vec<String> = if matches!(self.ty, ColumnType::String { .. }) {
            (0..limbs).map(|i| format!("{}#{i}", self.name)).collect()
        } else {
            vec![self.name.clone()]
        };
        if self.nullable {
            names.push(format!("{}#valid", self.name));
        }
        names
    }
}

/// The columns of a table.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Schema {
    /// The columns, in declaration order.
    pub columns: Vec<ColumnSpec>,
}

/// An error in a schema file or a type tag.
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    /// The schema file could not be read.
    #[error("cannot read schema file {path}: {error}")]
    Io {
        /// The schema file.
        path: String,
        /// The underlying error.
        #[source]
        error: std::io::Error,
    },
    /// The schema is not valid TOML or has unknown or missing keys.
    #[error("{source_name}: {message}")]
    Syntax {
        /// The schema file.
        source_name: String,
        /// What is wrong.
        message: String,
    },
    /// A column declaration is invalid.
    #[error("{source_name}: column '{column}': {problem}")]
    Column {
        /// The schema file.
        source_name: String,
        /// The column.
        column: String,
        /// What is wrong.
        problem: String,
    },
    /// The schema as a whole is invalid.
    #[error("{source_name}: {problem}")]
    Invalid {
        /// The schema file.
        source_name: String,
        /// What is wrong.
        problem: String,
    },
    /// A type tag could not be parsed.
    #[error("unknown column type tag '{0}'")]
    BadTag(String),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSchema {
    #[serde(default)]
    column: Vec<RawColumn>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawColumn {
    name: String,
    #[serde(rename = "type")]
    ty: String,
    min: Option<toml::Value>,
    max: Option<toml::Value>,
    #[serde(default)]
    nullable: bool,
    scale: Option<u32>,
    width: Option<u32>,
}

impl Schema {
    /// Reads and validates a schema file.
    pub fn load(path: &Path) -> Result<Schema, SchemaError> {
        let text = std::fs::read_to_string(path).map_err(|error| SchemaError::Io {
            path: path.display().to_string(),
            error,
        })?;
        Schema::from_toml_str(&text, &path.display().to_string())
    }

    /// Parses and validates a schema; `source_name` (usually the file name)
    /// is used in error messages.
    pub fn from_toml_str(text: &str, source_name: &str) -> Result<Schema, SchemaError> {
        let raw: RawSchema = toml::from_str(text).map_err(|e| SchemaError::Syntax {
            source_name: source_name.to_owned(),
            message: e.to_string(),
        })?;
        let columns = raw
            .column
            .into_iter()
            .map(|c| column_from_raw(c, source_name))
            .collect::<Result<Vec<_>, _>>()?;
        let schema = Schema { columns };
        schema.validate(source_name)?;
        Ok(schema)
    }

    /// Checks the schema's invariants: at least one column, unique valid
    /// names, `min <= max`, ranges within `i64` (within `0..=u64::MAX` for
    /// strings), scale and width within their limits.
    pub fn validate(&self, source_name: &str) -> Result<(), SchemaError> {
        if self.columns.is_empty() {
            return Err(SchemaError::Invalid {
                source_name: source_name.to_owned(),
                problem: "the schema declares no columns".to_owned(),
            });
        }
        let mut seen = HashSet::new();
        for c in &self.columns {
            let err = |problem: String| SchemaError::Column {
                source_name: source_name.to_owned(),
                column: c.name.clone(),
                problem,
            };
            check_name(&c.name).map_err(|p| err(p.to_owned()))?;
            if !seen.insert(c.name.as_str()) {
                return Err(err("declared more than once".to_owned()));
            }
            match c.ty {
                ColumnType::Fixed { scale } if scale > MAX_SCALE => {
                    return Err(err(format!("scale {scale} is above {MAX_SCALE}")));
                }
                ColumnType::String { width } if !(1..=MAX_WIDTH).contains(&width) => {
                    return Err(err(format!("width {width} is not in 1..={MAX_WIDTH}")));
                }
                _ => {}
            }
            let (lo, hi) = match c.ty {
                ColumnType::String { .. } => (0, u64::MAX as i128),
                ColumnType::Bool => (0, 1),
                _ => (i64::MIN as i128, i64::MAX as i128),
            };
            if c.min < lo || c.max > hi {
                return Err(err(format!(
                    "range {}..={} is outside the supported {}..={}",
                    c.ty.format_value(c.min),
                    c.ty.format_value(c.max),
                    c.ty.format_value(lo),
                    c.ty.format_value(hi)
                )));
            }
            if c.min > c.max {
                return Err(err(format!(
                    "min {} is above max {}",
                    c.ty.format_value(c.min),
                    c.ty.format_value(c.max)
                )));
            }
        }
        Ok(())
    }

    /// The column called `name`, if any.
    pub fn column(&self, name: &str) -> Option<&ColumnSpec> {
        self.columns.iter().find(|c| c.name == name)
    }

    /// Writes the schema as TOML that [`Schema::from_toml_str`] reads back
    /// (e.g. to let an owner confirm and keep an inferred schema).
    pub fn to_toml_string(&self) -> String {
        let mut out = String::new();
        for (i, c) in self.columns.iter().enumerate() {
            if i > 0 {
                out.push('\n');
            }
            out.push_str("[[column]]\n");
            out.push_str(&format!("name = {}\n", toml::Value::String(c.name.clone())));
            match c.ty {
                ColumnType::Int => {
                    out.push_str(&format!(
                        "type = \"int\"\nmin = {}\nmax = {}\n",
                        c.min, c.max
                    ));
                }
                ColumnType::Bool => out.push_str("type = \"bool\"\n"),
                ColumnType::Date => out.push_str(&format!(
                    "type = \"date\"\nmin = \"{}\"\nmax = \"{}\"\n",
                    c.ty.format_value(c.min),
                    c.ty.format_value(c.max)
                )),
                ColumnType::Fixed { scale } => out.push_str(&format!(
                    "type = \"fixed\"\nscale = {scale}\nmin = \"{}\"\nmax = \"{}\"\n",
                    c.ty.format_value(c.min),
                    c.ty.format_value(c.max)
                )),
                ColumnType::String { width } => {
                    out.push_str(&format!("type = \"string\"\nwidth = {width}\n"));
                }
            }
            if c.nullable {
                out.push_str("nullable = true\n");
            }
        }
        out
    }
}

/// Checks a column name is usable: non-empty and without `#`, which
/// separates a column name from its share-column suffix.
pub(crate) fn check_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        Err("empty column name")
    } else if name.contains('#') {
        Err("column names may not contain '#'")
    } else {
        Ok(())
    }
}

fn column_from_raw(c: RawColumn, source_name: &str) -> Result<ColumnSpec, SchemaError> {
    let err = |problem: String| SchemaError::Column {
        source_name: source_name.to_owned(),
        column: c.name.clone(),
        problem,
    };
    let ty = match c.ty.as_str() {
        "int" => ColumnType::Int,
        "bool" => ColumnType::Bool,
        "date" => ColumnType::Date,
        "fixed" => ColumnType::Fixed {
            scale: c
                .scale
                .ok_or_else(|| err("a fixed column needs a scale".to_owned()))?,
        },
        "string" => ColumnType::String {
            width: c
                .width
                .ok_or_else(|| err("a string column needs a width".to_owned()))?,
        },
        other => {
            return Err(err(format!(
                "unknown type '{other}' (expected int, bool, date, fixed or string)"
            )));
        }
    };
    if c.scale.is_some() && !matches!(ty, ColumnType::Fixed { .. }) {
        return Err(err("scale is only allowed for fixed columns".to_owned()));
    }
    if c.width.is_some() && !matches!(ty, ColumnType::String { .. }) {
        return Err(err("width is only allowed for string columns".to_owned()));
    }
    match ty {
        ColumnType::Fixed { scale } if scale > MAX_SCALE => {
            return Err(err(format!("scale {scale} is above {MAX_SCALE}")));
        }
        ColumnType::String { width } if !(1..=MAX_WIDTH).contains(&width) => {
            return Err(err(format!("width {width} is not in 1..={MAX_WIDTH}")));
        }
        _ => {}
    }
    let bound = |v: &Option<toml::Value>, which: &str| -> Result<Option<i128>, SchemaError> {
        let Some(v) = v else { return Ok(None) };
        match ty {
            ColumnType::Bool | ColumnType::String { .. } => Err(err(format!(
                "{which} is not allowed for {} columns",
                ty.tag()
            ))),
            ColumnType::Int => match v {
                toml::Value::Integer(i) => Ok(Some(*i as i128)),
                _ => Err(err(format!("{which} must be an integer"))),
            },
            ColumnType::Date => {
                let text = match v {
                    toml::Value::String(s) => s.clone(),
                    toml::Value::Datetime(d) => d.to_string(),
                    _ => String::new(),
                };
                parse_date(&text)
                    .map(|d| Some(d as i128))
                    .ok_or_else(|| err(format!("{which} must be a date written YYYY-MM-DD")))
            }
            ColumnType::Fixed { scale } => {
                let text = match v {
                    toml::Value::String(s) => s.clone(),
                    toml::Value::Integer(i) => i.to_string(),
                    toml::Value::Float(f) if f.is_finite() => f.to_string(),
                    _ => String::new(),
                };
                match parse_decimal(&text, scale, false) {
                    Ok(v) => Ok(Some(v)),
                    Err(DecimalError::TooManyDecimals) => {
                        Err(err(format!("{which} has more than {scale} decimal places")))
                    }
                    Err(_) => Err(err(format!(
                        "{which} must be a decimal number within the 64-bit range"
                    ))),
                }
            }
        }
    };
    let min = bound(&c.min, "min")?;
    let max = bound(&c.max, "max")?;
    let (min, max) = match (min, max, ty.default_range()) {
        (Some(lo), Some(hi), _) => (lo, hi),
        (lo, hi, Some((dlo, dhi))) => (lo.unwrap_or(dlo), hi.unwrap_or(dhi)),
        _ => {
            return Err(err(format!(
                "{} columns need both min and max: ranges are public and must be declared",
                ty.tag()
            )));
        }
    };
    Ok(ColumnSpec {
        name: c.name.clone(),
        ty,
        min,
        max,
        nullable: c.nullable,
    })
}

/// Why a decimal could not be parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DecimalError {
    /// Not a decimal number.
    NotANumber,
    /// More significant decimal places than the scale (only when not rounding).
    TooManyDecimals,
    /// Too large to compute with.
    Overflow,
}

/// Parses a decimal written `[+-]digits[.digits]` into `value * 10^scale`.
/// Surrounding ASCII whitespace is ignored. Extra decimal places must be
/// zeros unless `round` is set, in which case the result is rounded half
/// away from zero.
pub(crate) fn parse_decimal(text: &str, scale: u32, round: bool) -> Result<i128, DecimalError> {
    let s = text.trim().as_bytes();
    let (neg, s) = match s.first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let (int, frac) = match s.iter().position(|&b| b == b'.') {
        Some(i) => (&s[..i], &s[i + 1..]),
        None => (s, &s[s.len()..]),
    };
    if (int.is_empty() && frac.is_empty()) || !int.iter().chain(frac).all(|b| b.is_ascii_digit()) {
        return Err(DecimalError::NotANumber);
    }
    let mut v: i128 = 0;
    let push = |v: i128, d: u8| -> Result<i128, DecimalError> {
        v.checked_mul(10)
            .and_then(|v| v.checked_add(i128::from(d - b'0')))
            .ok_or(DecimalError::Overflow)
    };
    for &d in int {
        v = push(v, d)?;
    }
    let scale = scale as usize;
    for i in 0..scale {
        v = push(v, frac.get(i).copied().unwrap_or(b'0'))?;
    }
    let rest = frac.get(scale..).unwrap_or(&[]);
    if rest.iter().any(|&d| d != b'0') {
        if !round {
            return Err(DecimalError::TooManyDecimals);
        }
        if rest[0] >= b'5' {
            v = v.checked_add(1).ok_or(DecimalError::Overflow)?;
        }
    }
    Ok(if neg { -v } else { v })
}

/// Formats `v / 10^scale` with exactly `scale` decimal places.
pub(crate) fn format_decimal(v: i128, scale: u32) -> String {
    if scale == 0 {
        return v.to_string();
    }
    let digits = v.unsigned_abs().to_string();
    let scale = scale as usize;
    let padded = format!("{digits:0>width$}", width = scale + 1);
    let (int, frac) = padded.split_at(padded.len() - scale);
    format!("{}{int}.{frac}", if v < 0 { "-" } else { "" })
}

/// Parses an ISO date `YYYY-MM-DD` (surrounding ASCII whitespace ignored)
/// into days since 1970-01-01.
pub(crate) fn parse_date(text: &str) -> Option<i64> {
    let s = text.trim().as_bytes();
    if s.len() != 10 || s[4] != b'-' || s[7] != b'-' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let part = &s[r];
        part.iter().all(|b| b.is_ascii_digit()).then(|| {
            part.iter()
                .fold(0i64, |acc, &d| acc * 10 + i64::from(d - b'0'))
        })
    };
    let (y, m, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    if !(1..=12).contains(&m) || d < 1 || d > days_in_month(y, m) {
        return None;
    }
    Some(days_from_civil(y, m, d))
}

/// Formats days since 1970-01-01 as `YYYY-MM-DD`, for years 0..=9999.
pub(crate) fn format_date(days: i64) -> Option<String> {
    let (y, m, d) = civil_from_days(days)?;
    (0..=9999)
        .contains(&y)
        .then(|| format!("{y:04}-{m:02}-{d:02}"))
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

// Howard Hinnant's algorithms (proleptic Gregorian calendar).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(days: i64) -> Option<(i64, i64, i64)> {
    let z = days.checked_add(719_468)?;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    Some((y, m, d))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_round_trip() {
        assert_eq!(parse_date("1970-01-01"), Some(0));
        assert_eq!(parse_date("1969-12-31"), Some(-1));
        assert_eq!(parse_date("2000-03-01"), Some(11_017));
        assert_eq!(parse_date("0000-01-01"), Some(DEFAULT_DATE_MIN as i64));
        assert_eq!(parse_date("9999-12-31"), Some(DEFAULT_DATE_MAX as i64));
        assert_eq!(parse_date("2021-02-29"), None);
        assert_eq!(parse_date("2020-02-29"), Some(18_321));
        for d in [-800_000, -1, 0, 1, 18_321, 2_932_896] {
            if let Some(s) = format_date(d) {
                assert_eq!(parse_date(&s), Some(d));
            }
        }
    }

    #[test]
    fn decimals() {
        assert_eq!(parse_decimal("-100.00", 2, false), Ok(-10_000));
        assert_eq!(parse_decimal("1.5", 2, false), Ok(150));
        assert_eq!(parse_decimal("1.500", 2, false), Ok(150));
        assert_eq!(parse_decimal(".5", 1, false), Ok(5));
        assert_eq!(
            parse_decimal("1.005", 2, false),
            Err(DecimalError::TooManyDecimals)
        );
        assert_eq!(parse_decimal("1.005", 2, true), Ok(101));
        assert_eq!(parse_decimal("-1.005", 2, true), Ok(-101));
        assert_eq!(parse_decimal("1.004", 2, true), Ok(100));
        assert_eq!(parse_decimal("", 2, false), Err(DecimalError::NotANumber));
        assert_eq!(
            parse_decimal("1e5", 2, false),
            Err(DecimalError::NotANumber)
        );
        assert_eq!(format_decimal(-10_000, 2), "-100.00");
        assert_eq!(format_decimal(5, 2), "0.05");
        assert_eq!(format_decimal(-5, 0), "-5");
    }

    #[test]
    fn tags_round_trip() {
        for ty in [
            ColumnType::Int,
            ColumnType::Bool,
            ColumnType::Date,
            ColumnType::Fixed { scale: 2 },
            ColumnType::String { width: 16 },
        ] {
            assert_eq!(ColumnType::from_tag(&ty.tag()).ok(), Some(ty));
        }
        for bad in [
            "fixed(19)",
            "string(0)",
            "string(65)",
            "fixed()",
            "fixed(+1)",
            "float",
        ] {
            assert!(ColumnType::from_tag(bad).is_err(), "{bad}");
        }
    }
}
