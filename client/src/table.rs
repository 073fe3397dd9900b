//! Reading a data owner's table (CSV or Parquet) and encoding it into
//! 64-bit share columns, ready to be secret-shared.
//!
//! Every value is checked against the schema before anything leaves the
//! machine: wrong types, values outside the declared range, nulls in
//! non-nullable columns, over-long strings and malformed files are refused
//! with an error naming the file, the row (the line, for CSV) and the
//! column. Errors never contain cell values: they may be logged, and values
//! are secret.
//!
//! Encoding (see [`EncodedTable::columns`]): `int`, `date` and `fixed`
//! values become their `i64` value as `u64` (two's complement), booleans
//! 0 or 1, strings `ceil(width / 8)` little-endian limbs named `name#0`,
//! `name#1`, ... Nulls encode as 0, and a nullable column gets an extra
//! validity column `name#valid` holding 1 for present and 0 for null.

use std::collections::HashSet;
use std::fmt;
use std::io::Cursor;
use std::path::Path;
use std::sync::Arc;

use polars::prelude as pl;
use polars::prelude::{DataType, SerReader};
use rayon::prelude::*;

use crate::schema::{
    ColumnSpec, ColumnType, DecimalError, Schema, check_name, parse_date, parse_decimal,
};

/// Where a bad cell is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Position {
    /// A line of a CSV file, counting the header as line 1.
    Line(u64),
    /// A data row (1-based) of a Parquet file or an in-memory frame.
    Row(u64),
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Position::Line(n) => write!(f, "line {n}"),
            Position::Row(n) => write!(f, "row {n}"),
        }
    }
}

/// Why a table could not be read or encoded. Messages name the file, and
/// where relevant the column and row, but never contain cell values.
#[derive(Debug, thiserror::Error)]
pub enum TableError {
    /// The file could not be read.
    #[error("cannot read {file}: {error}")]
    Io {
        /// The file.
        file: String,
        /// The underlying error.
        #[source]
        error: std::io::Error,
    },
    /// The file as a whole is unusable (format, header, columns).
    #[error("{file}: {problem}")]
    File {
        /// The file.
        file: String,
        /// What is wrong.
        problem: String,
    },
    /// A column is unusable (type, or type inference).
    #[error("{file}: column '{column}': {problem}")]
    Column {
        /// The file.
        file: String,
        /// The column.
        column: String,
        /// What is wrong.
        problem: String,
    },
    /// A cell is refused.
    #[error("{file}: {at}, column '{column}': {problem}")]
    Cell {
        /// The file.
        file: String,
        /// The line or row of the cell.
        at: Position,
        /// The column.
        column: String,
        /// What is wrong (without the value).
        problem: String,
    },
}

/// A table read, checked and encoded into share columns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedTable {
    /// Name of the file (or the name the caller gave an in-memory frame).
    pub source: String,
    /// Number of rows.
    pub rows: u64,
    /// The effective schema: the given one, or the inferred one with
    /// widened ranges.
    pub schema: Schema,
    /// Share columns in schema order, each `rows` long: see the module
    /// documentation for names and encoding.
    pub columns: Vec<(String, Vec<u64>)>,
    /// Warnings for the owner to confirm (inferred types and ranges, which
    /// are public), one per inferred column.
    pub warnings: Vec<String>,
}

impl EncodedTable {
    /// The share column called `name`, if any.
    pub fn column(&self, name: &str) -> Option<&[u64]> {
        self.columns
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_slice())
    }
}

/// Reads a CSV (`.csv`, with a header row, comma separated) or Parquet
/// (`.parquet`, `.pq`) file and encodes it with [`encode_frame`]. Without a
/// schema, types, ranges and nullability are inferred (see
/// [`encode_frame`]). CSV cells that are empty are null.
pub fn read_table(path: &Path, schema: Option<&Schema>) -> Result<EncodedTable, TableError> {
    let file = path.display().to_string();
    let source = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| file.clone());
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(|e| e.to_ascii_lowercase());
    match ext.as_deref() {
        Some("csv") => read_csv(path, &file, &source, schema),
        Some("parquet" | "pq") => read_parquet(path, &file, &source, schema),
        _ => Err(TableError::File {
            file,
            problem: "unsupported file type: expected a .csv, .parquet or .pq file".to_owned(),
        }),
    }
}

/// Checks and encodes an in-memory frame; `source` names it in errors
/// (rows are numbered from 1).
///
/// With a schema, the frame must have exactly the schema's columns (in any
/// order); integer, boolean and string frame columns are accepted where
/// they can be converted exactly (text is parsed, floats are allowed for
/// `fixed` columns and rounded half away from zero to the scale).
///
/// Without a schema, integer columns become `int` with the data's range
/// widened to `[0, 2^k - 1]` (if no value is negative) or
/// `[-2^k, 2^k - 1]`, boolean columns become `bool`, and a column is
/// nullable if it holds a null; other column types are refused with a hint
/// to write a schema. A warning per column reports what was inferred.
pub fn encode_frame(
    df: &pl::DataFrame,
    schema: Option<&Schema>,
    source: &str,
) -> Result<EncodedTable, TableError> {
    encode(df, schema, source, source).map_err(|f| f.at_row(source))
}

// ---------------------------------------------------------------------------
// Files

fn read_parquet(
    path: &Path,
    file: &str,
    source: &str,
    schema: Option<&Schema>,
) -> Result<EncodedTable, TableError> {
    let handle = std::fs::File::open(path).map_err(|error| TableError::Io {
        file: file.to_owned(),
        error,
    })?;
    // Polars' messages may quote data, so only the kind of error is shown.
    let df = pl::ParquetReader::new(handle)
        .finish()
        .map_err(|e| TableError::File {
            file: file.to_owned(),
            problem: format!("not a readable Parquet file ({})", polars_kind(&e)),
        })?;
    encode(&df, schema, file, source).map_err(|f| f.at_row(file))
}

fn read_csv(
    path: &Path,
    file: &str,
    source: &str,
    schema: Option<&Schema>,
) -> Result<EncodedTable, TableError> {
    let file_err = |problem: String| TableError::File {
        file: file.to_owned(),
        problem,
    };
    let raw = std::fs::read(path).map_err(|error| TableError::Io {
        file: file.to_owned(),
        error,
    })?;
    let bytes = raw.strip_prefix(b"\xef\xbb\xbf").unwrap_or(&raw);
    let header = read_header(bytes).map_err(file_err)?;

    let dtypes: Option<Vec<DataType>> = match schema {
        Some(schema) => {
            check_columns(&header, schema).map_err(file_err)?;
            Some(
                header
                    .iter()
                    .map(|h| match schema.column(h).map(|c| c.ty) {
                        Some(ColumnType::Int) => DataType::Int64,
                        _ => DataType::String,
                    })
                    .collect(),
            )
        }
        None => None,
    };

    // Parse with polars while checking the file's structure (field counts,
    // quotes) ourselves, which also counts the records.
    let (parsed, structure) = rayon::join(
        || parse_csv(bytes, &header, dtypes.as_deref()),
        || check_structure(bytes, header.len()),
    );
    let records = structure.map_err(file_err)?;
    let df = match parsed {
        Ok(df) => df,
        Err(e) => {
            // Polars could not parse a typed column: read everything as
            // text so that our own parsers find and name the bad cell.
            let all_text = dtypes.as_ref().map(|d| vec![DataType::String; d.len()]);
            match all_text.map(|d| parse_csv(bytes, &header, Some(&d))) {
                Some(Ok(df)) => df,
                _ => {
                    return Err(file_err(format!(
                        "the file could not be parsed as CSV ({})",
                        polars_kind(&e)
                    )));
                }
            }
        }
    };
    if df.height() != records {
        return Err(file_err(format!(
            "malformed CSV: found {records} records but parsed {} rows",
            df.height()
        )));
    }
    encode(&df, schema, file, source).map_err(|f| match f {
        Fail::Cell {
            row,
            column,
            problem,
        } => TableError::Cell {
            file: file.to_owned(),
            at: record_line(bytes, row).map_or(Position::Row(row as u64 + 1), Position::Line),
            column,
            problem,
        },
        Fail::Table(e) => e,
    })
}

fn parse_csv(
    bytes: &[u8],
    header: &[String],
    dtypes: Option<&[DataType]>,
) -> pl::PolarsResult<pl::DataFrame> {
    let mut options = pl::CsvReadOptions::default()
        .with_has_header(true)
        .with_infer_schema_length(None);
    if let Some(dtypes) = dtypes {
        let schema: pl::Schema = header
            .iter()
            .zip(dtypes)
            .map(|(name, dt)| pl::Field::new(name.as_str().into(), dt.clone()))
            .collect();
        options = options.with_schema(Some(Arc::new(schema)));
    }
    options
        .into_reader_with_file_handle(Cursor::new(bytes))
        .finish()
}

/// The name of a polars error's kind, without its message (which may
/// quote cell values).
fn polars_kind(e: &pl::PolarsError) -> String {
    let debug = format!("{e:?}");
    debug
        .split(|c: char| !c.is_alphanumeric())
        .next()
        .unwrap_or("error")
        .to_owned()
}

/// The column names of a CSV file's header row.
fn read_header(bytes: &[u8]) -> Result<Vec<String>, String> {
    let mut scan = CsvScan::new(bytes);
    let mut fields = Vec::new();
    match scan.next_record(Some(&mut fields)) {
        Ok(Some(_)) => {}
        Ok(None) => return Err("empty file: expected a header row".to_owned()),
        Err(line) => return Err(format!("line {line}: unterminated quoted field")),
    }
    let mut names = Vec::with_capacity(fields.len());
    let mut seen = HashSet::new();
    for (i, f) in fields.into_iter().enumerate() {
        let name = String::from_utf8(f)
            .map_err(|_| format!("header field {} is not valid UTF-8", i + 1))?;
        if name.is_empty() {
            return Err(format!("header field {} is empty", i + 1));
        }
        if !seen.insert(name.clone()) {
            return Err(format!(
                "column '{name}' appears more than once in the header"
            ));
        }
        names.push(name);
    }
    Ok(names)
}

/// Checks the file's columns are exactly the schema's.
fn check_columns(names: &[String], schema: &Schema) -> Result<(), String> {
    let quote = |v: Vec<&str>| {
        v.iter()
            .map(|n| format!("'{n}'"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let missing: Vec<&str> = schema
        .columns
        .iter()
        .map(|c| c.name.as_str())
        .filter(|n| !names.iter().any(|h| h == n))
        .collect();
    if !missing.is_empty() {
        return Err(format!(
            "missing column(s) declared in the schema: {}",
            quote(missing)
        ));
    }
    let extra: Vec<&str> = names
        .iter()
        .map(String::as_str)
        .filter(|n| schema.column(n).is_none())
        .collect();
    if !extra.is_empty() {
        return Err(format!(
            "column(s) not declared in the schema: {} (remove them from the file or declare \
             them; nothing is dropped silently)",
            quote(extra)
        ));
    }
    Ok(())
}

/// Checks every record has `n_fields` fields and quotes are closed;
/// returns the number of data records.
fn check_structure(bytes: &[u8], n_fields: usize) -> Result<usize, String> {
    let mut scan = CsvScan::new(bytes);
    let mut records = 0usize;
    loop {
        let start = scan.pos;
        match scan.next_record(None) {
            Ok(Some((line, n))) => {
                if n != n_fields {
                    let blank = matches!(&bytes[start..scan.pos], b"" | b"\n" | b"\r\n");
                    if blank {
                        return Err(format!(
                            "line {line} is blank but the header has {n_fields} fields"
                        ));
                    }
                    return Err(format!(
                        "line {line} has {n} field(s) but the header has {n_fields}"
                    ));
                }
                records += 1;
            }
            Ok(None) => return Ok(records.saturating_sub(1)),
            Err(line) => return Err(format!("line {line}: unterminated quoted field")),
        }
    }
}

/// The line on which data record `row` (0-based) starts.
fn record_line(bytes: &[u8], row: usize) -> Option<u64> {
    let mut scan = CsvScan::new(bytes);
    for _ in 0..=row {
        scan.next_record(None).ok()??;
    }
    scan.next_record(None).ok()?.map(|(line, _)| line)
}

/// A minimal CSV record scanner (comma separated, `"` quoting with `""`
/// escapes, `\n` or `\r\n` line ends), used to read the header, check the
/// structure and find the line of a record.
struct CsvScan<'a> {
    bytes: &'a [u8],
    pos: usize,
    line: u64,
}

impl<'a> CsvScan<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        CsvScan {
            bytes,
            pos: 0,
            line: 1,
        }
    }

    /// The next record's first line and field count, storing its fields in
    /// `fields` if given; `Err(line)` for an unterminated quote.
    fn next_record(
        &mut self,
        mut fields: Option<&mut Vec<Vec<u8>>>,
    ) -> Result<Option<(u64, usize)>, u64> {
        let bytes = self.bytes;
        if self.pos >= bytes.len() {
            return Ok(None);
        }
        let start = self.line;
        if let Some(f) = fields.as_deref_mut() {
            f.clear();
            f.push(Vec::new());
        }
        let mut n = 1usize;
        let mut quoted = false;
        while self.pos < bytes.len() {
            let b = bytes[self.pos];
            self.pos += 1;
            if quoted {
                match b {
                    b'"' if bytes.get(self.pos) == Some(&b'"') => {
                        self.pos += 1;
                    }
                    b'"' => {
                        quoted = false;
                        continue;
                    }
                    b'\n' => self.line += 1,
                    _ => {}
                }
            } else {
                match b {
                    b'"' => {
                        quoted = true;
                        continue;
                    }
                    b',' => {
                        n += 1;
                        if let Some(f) = fields.as_deref_mut() {
                            f.push(Vec::new());
                        }
                        continue;
                    }
                    b'\n' => {
                        self.line += 1;
                        strip_cr(fields.as_deref_mut());
                        return Ok(Some((start, n)));
                    }
                    _ => {}
                }
            }
            if let Some(last) = fields.as_deref_mut().and_then(|f| f.last_mut()) {
                last.push(b);
            }
        }
        if quoted {
            return Err(start);
        }
        strip_cr(fields);
        Ok(Some((start, n)))
    }
}

/// Removes the `\r` of a `\r\n` line end from the last field.
fn strip_cr(fields: Option<&mut Vec<Vec<u8>>>) {
    if let Some(last) = fields.and_then(|f| f.last_mut()) {
        if last.last() == Some(&b'\r') {
            last.pop();
        }
    }
}

// ---------------------------------------------------------------------------
// Encoding

/// An encoding failure: a bad cell is located by its 0-based row, which
/// the caller turns into a line or row number.
enum Fail {
    Table(TableError),
    Cell {
        row: usize,
        column: String,
        problem: String,
    },
}

impl Fail {
    fn at_row(self, file: &str) -> TableError {
        match self {
            Fail::Table(e) => e,
            Fail::Cell {
                row,
                column,
                problem,
            } => TableError::Cell {
                file: file.to_owned(),
                at: Position::Row(row as u64 + 1),
                column,
                problem,
            },
        }
    }
}

/// A column-level encoding failure.
enum ColFail {
    Cell { row: usize, problem: String },
    Column(String),
}

/// One column's share columns before naming: value limbs and validity.
struct Encoded {
    limbs: Vec<Vec<u64>>,
    valid: Option<Vec<u64>>,
}

fn encode(
    df: &pl::DataFrame,
    schema: Option<&Schema>,
    file: &str,
    source: &str,
) -> Result<EncodedTable, Fail> {
    let names: Vec<String> = df
        .get_column_names()
        .iter()
        .map(|n| n.to_string())
        .collect();
    let col_err = |column: &str, problem: String| {
        Fail::Table(TableError::Column {
            file: file.to_owned(),
            column: column.to_owned(),
            problem,
        })
    };
    let (specs, warnings) = match schema {
        Some(schema) => {
            check_columns(&names, schema).map_err(|problem| {
                Fail::Table(TableError::File {
                    file: file.to_owned(),
                    problem,
                })
            })?;
            (schema.columns.clone(), Vec::new())
        }
        None => {
            let mut specs = Vec::with_capacity(names.len());
            let mut warnings = Vec::with_capacity(names.len());
            for name in &names {
                let series = series(df, name).map_err(|p| col_err(name, p))?;
                let (spec, warning) = infer(name, series).map_err(|p| col_err(name, p))?;
                specs.push(spec);
                warnings.push(warning);
            }
            if specs.is_empty() {
                return Err(Fail::Table(TableError::File {
                    file: file.to_owned(),
                    problem: "the table has no columns".to_owned(),
                }));
            }
            (specs, warnings)
        }
    };

    let results: Vec<Result<Encoded, ColFail>> = specs
        .par_iter()
        .map(|spec| {
            let s = series(df, &spec.name).map_err(ColFail::Column)?;
            encode_column(s, spec)
        })
        .collect();

    // Report a column problem first, else the earliest bad cell.
    let mut first_cell: Option<(usize, usize, String)> = None;
    let mut columns = Vec::new();
    for (i, (spec, result)) in specs.iter().zip(results).enumerate() {
        match result {
            Ok(enc) => {
                let values = enc.limbs.into_iter().chain(enc.valid);
                columns.extend(spec.share_column_names().into_iter().zip(values));
            }
            Err(ColFail::Column(problem)) => return Err(col_err(&spec.name, problem)),
            Err(ColFail::Cell { row, problem }) => {
                if first_cell.as_ref().is_none_or(|(r, _, _)| row < *r) {
                    first_cell = Some((row, i, problem));
                }
            }
        }
    }
    if let Some((row, i, problem)) = first_cell {
        return Err(Fail::Cell {
            row,
            column: specs[i].name.clone(),
            problem,
        });
    }
    Ok(EncodedTable {
        source: source.to_owned(),
        rows: df.height() as u64,
        schema: Schema { columns: specs },
        columns,
        warnings,
    })
}

fn series<'a>(df: &'a pl::DataFrame, name: &str) -> Result<&'a pl::Series, String> {
    df.column(name)
        .map(|c| c.as_materialized_series())
        .map_err(|_| "column not found in the table".to_owned())
}

fn wrong_type(dtype: &DataType, ty: &ColumnType) -> ColFail {
    ColFail::Column(format!(
        "the table's column has type {dtype}, which cannot hold the schema's type {}",
        ty.tag()
    ))
}

fn encode_column(s: &pl::Series, spec: &ColumnSpec) -> Result<Encoded, ColFail> {
    let dtype = s.dtype();
    let n = s.len();
    match spec.ty {
        ColumnType::Int => {
            if *dtype == DataType::UInt64 {
                let ca = s.u64().map_err(|_| wrong_type(dtype, &spec.ty))?;
                encode_cells(n, spec, ca.iter().map(|v| Ok(v.map(i128::from))))
            } else if dtype.is_integer() {
                let cast = s
                    .strict_cast(&DataType::Int64)
                    .map_err(|_| wrong_type(dtype, &spec.ty))?;
                let ca = cast.i64().map_err(|_| wrong_type(dtype, &spec.ty))?;
                encode_i64(ca, spec)
            } else if *dtype == DataType::String {
                let ca = s.str().map_err(|_| wrong_type(dtype, &spec.ty))?;
                encode_cells(n, spec, ca.iter().map(|v| v.map_or(Ok(None), parse_int)))
            } else {
                Err(wrong_type(dtype, &spec.ty))
            }
        }
        ColumnType::Bool => {
            if *dtype == DataType::Boolean {
                let ca = s.bool().map_err(|_| wrong_type(dtype, &spec.ty))?;
                encode_cells(n, spec, ca.iter().map(|v| Ok(v.map(i128::from))))
            } else if dtype.is_integer() {
                let cast = s
                    .strict_cast(&DataType::Int64)
                    .map_err(|_| wrong_type(dtype, &spec.ty))?;
                let ca = cast.i64().map_err(|_| wrong_type(dtype, &spec.ty))?;
                encode_cells(
                    n,
                    spec,
                    ca.iter().map(|v| match v {
                        None => Ok(None),
                        Some(v @ (0 | 1)) => Ok(Some(i128::from(v))),
                        Some(_) => Err("not a boolean (expected 0 or 1)".to_owned()),
                    }),
                )
            } else if *dtype == DataType::String {
                let ca = s.str().map_err(|_| wrong_type(dtype, &spec.ty))?;
                encode_cells(n, spec, ca.iter().map(|v| v.map_or(Ok(None), parse_bool)))
            } else {
                Err(wrong_type(dtype, &spec.ty))
            }
        }
        ColumnType::Date => {
            if *dtype == DataType::String {
                let ca = s.str().map_err(|_| wrong_type(dtype, &spec.ty))?;
                encode_cells(
                    n,
                    spec,
                    ca.iter().map(|v| match v.map(str::trim) {
                        None | Some("") => Ok(None),
                        Some(v) => parse_date(v)
                            .map(|d| Some(i128::from(d)))
                            .ok_or_else(|| "not a date (expected YYYY-MM-DD)".to_owned()),
                    }),
                )
            } else {
                Err(ColFail::Column(format!(
                    "the table's column has type {dtype}; dates must be text written YYYY-MM-DD"
                )))
            }
        }
        ColumnType::Fixed { scale } => {
            let factor = 10i128.pow(scale);
            if *dtype == DataType::String {
                let ca = s.str().map_err(|_| wrong_type(dtype, &spec.ty))?;
                encode_cells(
                    n,
                    spec,
                    ca.iter().map(|v| match v.map(str::trim) {
                        None | Some("") => Ok(None),
                        Some(v) => parse_fixed(v, scale, false).map(Some),
                    }),
                )
            } else if *dtype == DataType::UInt64 {
                let ca = s.u64().map_err(|_| wrong_type(dtype, &spec.ty))?;
                encode_cells(
                    n,
                    spec,
                    ca.iter().map(|v| Ok(v.map(|v| i128::from(v) * factor))),
                )
            } else if dtype.is_integer() {
                let cast = s
                    .strict_cast(&DataType::Int64)
                    .map_err(|_| wrong_type(dtype, &spec.ty))?;
                let ca = cast.i64().map_err(|_| wrong_type(dtype, &spec.ty))?;
                encode_cells(
                    n,
                    spec,
                    ca.iter().map(|v| Ok(v.map(|v| i128::from(v) * factor))),
                )
            } else if *dtype == DataType::Float64 {
                let ca = s.f64().map_err(|_| wrong_type(dtype, &spec.ty))?;
                encode_cells(
                    n,
                    spec,
                    ca.iter()
                        .map(|v| v.map_or(Ok(None), |v| float_fixed(v, v.is_finite(), scale))),
                )
            } else if *dtype == DataType::Float32 {
                let ca = s.f32().map_err(|_| wrong_type(dtype, &spec.ty))?;
                encode_cells(
                    n,
                    spec,
                    ca.iter()
                        .map(|v| v.map_or(Ok(None), |v| float_fixed(v, v.is_finite(), scale))),
                )
            } else {
                Err(wrong_type(dtype, &spec.ty))
            }
        }
        ColumnType::String { width } => {
            if *dtype == DataType::String {
                let ca = s.str().map_err(|_| wrong_type(dtype, &spec.ty))?;
                encode_strings(n, spec, width, ca.iter())
            } else {
                Err(wrong_type(dtype, &spec.ty))
            }
        }
    }
}

fn parse_int(v: &str) -> Result<Option<i128>, String> {
    let v = v.trim();
    if v.is_empty() {
        return Ok(None);
    }
    match v.parse::<i64>() {
        Ok(i) => Ok(Some(i128::from(i))),
        Err(_) => {
            let digits = v.strip_prefix(['-', '+']).unwrap_or(v);
            if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
                Err("integer outside the 64-bit range".to_owned())
            } else {
                Err("not an integer".to_owned())
            }
        }
    }
}

fn parse_bool(v: &str) -> Result<Option<i128>, String> {
    let v = v.trim();
    if v.is_empty() {
        Ok(None)
    } else if v == "1" || v.eq_ignore_ascii_case("true") {
        Ok(Some(1))
    } else if v == "0" || v.eq_ignore_ascii_case("false") {
        Ok(Some(0))
    } else {
        Err("not a boolean (expected true, false, 1 or 0)".to_owned())
    }
}

fn parse_fixed(v: &str, scale: u32, round: bool) -> Result<i128, String> {
    parse_decimal(v, scale, round).map_err(|e| match e {
        DecimalError::NotANumber => "not a decimal number".to_owned(),
        DecimalError::TooManyDecimals => {
            format!("more decimal places than the declared scale {scale}")
        }
        DecimalError::Overflow => "number too large".to_owned(),
    })
}

/// A float as a fixed-point value: its shortest decimal representation
/// rounded half away from zero to `scale` places.
fn float_fixed<F: fmt::Display>(v: F, finite: bool, scale: u32) -> Result<Option<i128>, String> {
    if !finite {
        return Err("not a finite number".to_owned());
    }
    parse_fixed(&v.to_string(), scale, true).map(Some)
}

fn range_problem(v: i128, spec: &ColumnSpec) -> Option<String> {
    if v < spec.min {
        Some(format!(
            "below declared min {}",
            spec.ty.format_value(spec.min)
        ))
    } else if v > spec.max {
        Some(format!(
            "above declared max {}",
            spec.ty.format_value(spec.max)
        ))
    } else {
        None
    }
}

const NULL_PROBLEM: &str = "null in non-nullable column";

/// Encodes a one-limb column cell by cell; each cell is a value in the
/// encoded domain, a null, or a problem.
fn encode_cells(
    n: usize,
    spec: &ColumnSpec,
    cells: impl Iterator<Item = Result<Option<i128>, String>>,
) -> Result<Encoded, ColFail> {
    let mut values = Vec::with_capacity(n);
    let mut valid = spec.nullable.then(|| Vec::with_capacity(n));
    for (row, cell) in cells.enumerate() {
        let cell = cell.map_err(|problem| ColFail::Cell { row, problem })?;
        match cell {
            Some(v) => {
                if let Some(problem) = range_problem(v, spec) {
                    return Err(ColFail::Cell { row, problem });
                }
                // In range, hence within i64.
                values.push(v as i64 as u64);
            }
            None if spec.nullable => values.push(0),
            None => {
                return Err(ColFail::Cell {
                    row,
                    problem: NULL_PROBLEM.to_owned(),
                });
            }
        }
        if let Some(valid) = valid.as_mut() {
            valid.push(u64::from(cell.is_some()));
        }
    }
    Ok(Encoded {
        limbs: vec![values],
        valid,
    })
}

/// The fast path for `int` columns parsed as `Int64`.
fn encode_i64(ca: &pl::Int64Chunked, spec: &ColumnSpec) -> Result<Encoded, ColFail> {
    let (lo, hi) = match (i64::try_from(spec.min), i64::try_from(spec.max)) {
        (Ok(lo), Ok(hi)) => (lo, hi),
        _ => {
            return Err(ColFail::Column(
                "declared range is outside the 64-bit range".to_owned(),
            ));
        }
    };
    let n = ca.len();
    let mut values = Vec::with_capacity(n);
    let mut valid = spec.nullable.then(|| Vec::with_capacity(n));
    let mut base = 0usize;
    for arr in ca.downcast_iter() {
        let vals: &[i64] = arr.values();
        match arr.validity().filter(|b| b.unset_bits() > 0) {
            None => {
                if let Some(i) = vals.iter().position(|&v| v < lo || v > hi) {
                    return Err(ColFail::Cell {
                        row: base + i,
                        problem: range_problem(i128::from(vals[i]), spec).unwrap_or_default(),
                    });
                }
                values.extend(vals.iter().map(|&v| v as u64));
                if let Some(valid) = valid.as_mut() {
                    valid.resize(valid.len() + vals.len(), 1);
                }
            }
            Some(bitmap) => {
                for (i, (&v, present)) in vals.iter().zip(bitmap.iter()).enumerate() {
                    if present {
                        if v < lo || v > hi {
                            return Err(ColFail::Cell {
                                row: base + i,
                                problem: range_problem(i128::from(v), spec).unwrap_or_default(),
                            });
                        }
                        values.push(v as u64);
                    } else if spec.nullable {
                        values.push(0);
                    } else {
                        return Err(ColFail::Cell {
                            row: base + i,
                            problem: NULL_PROBLEM.to_owned(),
                        });
                    }
                    if let Some(valid) = valid.as_mut() {
                        valid.push(u64::from(present));
                    }
                }
            }
        }
        base += vals.len();
    }
    Ok(Encoded {
        limbs: vec![values],
        valid,
    })
}

fn encode_strings<'a>(
    n: usize,
    spec: &ColumnSpec,
    width: u32,
    cells: impl Iterator<Item = Option<&'a str>>,
) -> Result<Encoded, ColFail> {
    let n_limbs = (width as usize).div_ceil(8);
    let mut limbs: Vec<Vec<u64>> = (0..n_limbs).map(|_| Vec::with_capacity(n)).collect();
    let mut valid = spec.nullable.then(|| Vec::with_capacity(n));
    for (row, cell) in cells.enumerate() {
        match cell {
            Some(v) => {
                let bytes = v.as_bytes();
                if bytes.len() > width as usize {
                    return Err(ColFail::Cell {
                        row,
                        problem: format!("longer than declared width {width} bytes"),
                    });
                }
                if bytes.contains(&0) {
                    return Err(ColFail::Cell {
                        row,
                        problem: "contains a NUL byte".to_owned(),
                    });
                }
                for (j, limb) in limbs.iter_mut().enumerate() {
                    let start = (8 * j).min(bytes.len());
                    let end = (8 * j + 8).min(bytes.len());
                    let mut buf = [0u8; 8];
                    buf[..end - start].copy_from_slice(&bytes[start..end]);
                    limb.push(u64::from_le_bytes(buf));
                }
            }
            None if spec.nullable => limbs.iter_mut().for_each(|l| l.push(0)),
            None => {
                return Err(ColFail::Cell {
                    row,
                    problem: NULL_PROBLEM.to_owned(),
                });
            }
        }
        if let Some(valid) = valid.as_mut() {
            valid.push(u64::from(cell.is_some()));
        }
    }
    Ok(Encoded { limbs, valid })
}

// ---------------------------------------------------------------------------
// Inference

/// The smallest range `[0, 2^k - 1]` (if `min >= 0`) or `[-2^k, 2^k - 1]`
/// with `k >= 1` holding `min..=max`.
pub fn widen_range(min: i64, max: i64) -> (i128, i128) {
    let (min, max) = (i128::from(min), i128::from(max));
    let mut k = 1u32;
    if min >= 0 {
        while (1i128 << k) - 1 < max {
            k += 1;
        }
        (0, (1i128 << k) - 1)
    } else {
        while -(1i128 << k) > min || (1i128 << k) - 1 < max {
            k += 1;
        }
        (-(1i128 << k), (1i128 << k) - 1)
    }
}

const PUBLIC_NOTE: &str = "inferred types, ranges and nullability are public: check them, or \
                           declare them in a schema";

fn infer(name: &str, s: &pl::Series) -> Result<(ColumnSpec, String), String> {
    check_name(name).map_err(str::to_owned)?;
    let dtype = s.dtype();
    let nullable = s.null_count() > 0;
    let null_note = if nullable { "nullable" } else { "not nullable" };
    if *dtype == DataType::Boolean {
        let spec = ColumnSpec {
            name: name.to_owned(),
            ty: ColumnType::Bool,
            min: 0,
            max: 1,
            nullable,
        };
        let warning = format!("column '{name}': inferred type bool, {null_note}; {PUBLIC_NOTE}");
        return Ok((spec, warning));
    }
    if dtype.is_integer() {
        let (min, max) = if *dtype == DataType::UInt64 {
            let ca = s.u64().map_err(|e| polars_kind(&e))?;
            let max = ca.iter().flatten().max().unwrap_or(0);
            let max = i64::try_from(max)
                .map_err(|_| "values exceed the 64-bit signed range".to_owned())?;
            (0, max)
        } else {
            let cast = s
                .strict_cast(&DataType::Int64)
                .map_err(|e| polars_kind(&e))?;
            let ca = cast.i64().map_err(|e| polars_kind(&e))?;
            ca.iter()
                .flatten()
                .fold(None, |acc: Option<(i64, i64)>, v| {
                    Some(acc.map_or((v, v), |(lo, hi)| (lo.min(v), hi.max(v))))
                })
                .unwrap_or((0, 0))
        };
        let (min, max) = widen_range(min, max);
        let spec = ColumnSpec {
            name: name.to_owned(),
            ty: ColumnType::Int,
            min,
            max,
            nullable,
        };
        let warning = format!(
            "column '{name}': inferred type int, range [{min}, {max}] (the data's range widened \
             to a power of two), {null_note}; {PUBLIC_NOTE}"
        );
        return Ok((spec, warning));
    }
    let empty = s.null_count() == s.len();
    Err(if dtype.is_float() {
        "floating-point column: give a schema declaring it as type fixed with a scale \
         (number of decimal places)"
            .to_owned()
    } else if empty || *dtype == DataType::Null {
        "no values to infer a type from: give a schema".to_owned()
    } else if *dtype == DataType::String {
        "text column: give a schema declaring it as type string (with a width in bytes) or \
         date (YYYY-MM-DD)"
            .to_owned()
    } else {
        format!("unsupported column type {dtype}: give a schema")
    })
}
