//! The seed notebook's analysis (`seeds/000_*.txt`), as `triad demo` and
//! the `seed_analysis` example run it:
//!
//! ```python
//! merged = cd.merge(party1_table, party2_table, how='inner',
//!                   on=['year', 'month', 'day', 'article_nr', 'batch_nr', 'smokes'])
//! def compute_sum(month):
//!     return merged[((merged["condition_y"] == 1) & (merged['month'] == month))
//!                   .with_threshold(3)]["condition_y"].sum()
//! # for January, May and September
//! ```
//!
//! Also here: the same analysis in the clear with polars (to check the
//! secret one against), the demo's generated tables, the result table and
//! the bar chart.

use std::path::{Path, PathBuf};

use polars::prelude as pl;
use polars::prelude::{DataFrameJoinOps, SerReader};

use crate::error::ClientError;
use crate::expr::{col, lit};
use crate::frame::{How, SecretFrame};
use crate::remote::Client;
use triad_node::store::Handle;

/// The merge keys of the seed analysis.
pub const SEED_KEYS: [&str; 6] = ["year", "month", "day", "article_nr", "batch_nr", "smokes"];

/// The months the seed analysis reports: January, May, September.
pub const SEED_MONTHS: [u32; 3] = [1, 5, 9];

/// The seed's `with_threshold(3)`.
pub const SEED_THRESHOLD: u64 = 3;

/// The seed analysis on the tables `party1` (with `condition_x`) and
/// `party2` (with `condition_y`): merges them (inner, on [`SEED_KEYS`]),
/// stores the merge as a new secret table (left on the nodes, like the
/// seed's `merged` table), and for each month in `months` sums
/// `condition_y` over the merged rows with `condition_y == 1` in that
/// month, behind a threshold of [`SEED_THRESHOLD`] rows. A month whose
/// gate failed is `None`.
///
/// Reveals: to the nodes, whether each side's merge keys are unique and
/// each month's gate outcome; to this client, the sums of the months that
/// passed.
pub fn seed_analysis(
    client: &Client,
    party1: &Handle,
    party2: &Handle,
    months: &[u32],
) -> Result<Vec<(u32, Option<i64>)>, ClientError> {
    let p1 = client.frame(party1)?;
    let p2 = client.frame(party2)?;
    let merged = p1.merge(&p2, How::Inner, &SEED_KEYS).store()?;
    monthly_sums(&client.frame(&merged)?, months)
}

/// The per-month thresholded sums of the seed analysis on an already
/// merged frame.
pub fn monthly_sums(
    merged: &SecretFrame<'_>,
    months: &[u32],
) -> Result<Vec<(u32, Option<i64>)>, ClientError> {
    let mut out = Vec::with_capacity(months.len());
    for &month in months {
        let selected = merged.filter(
            (col("condition_y").eq(lit(1)) & col("month").eq(lit(i64::from(month))))
                .with_threshold(SEED_THRESHOLD),
        );
        match selected.sum("condition_y") {
            Ok(value) => {
                let sum = value.as_i64().ok_or_else(|| {
                    ClientError::Usage(format!("condition_y summed to a non-integer {value}"))
                })?;
                out.push((month, Some(sum)));
            }
            Err(ClientError::ThresholdNotMet { .. }) => out.push((month, None)),
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}

fn polars_error(what: &str) -> impl Fn(pl::PolarsError) -> ClientError + '_ {
    move |e| ClientError::Usage(format!("{what}: {e}"))
}

fn read_csv(path: &Path) -> Result<pl::DataFrame, ClientError> {
    let file = std::fs::File::open(path).map_err(|source| ClientError::File {
        path: path.to_owned(),
        source,
    })?;
    pl::CsvReadOptions::default()
        .with_has_header(true)
        .with_infer_schema_length(None)
        .into_reader_with_file_handle(file)
        .finish()
        .map_err(|e| ClientError::Usage(format!("{}: {e}", path.display())))
}

/// The seed analysis in the clear, with polars, from the two tables' CSV
/// files: the reference the secret result must equal.
pub fn seed_analysis_clear(
    party1_csv: &Path,
    party2_csv: &Path,
    months: &[u32],
) -> Result<Vec<(u32, Option<i64>)>, ClientError> {
    let left = read_csv(party1_csv)?;
    let right = read_csv(party2_csv)?;
    let merged = left
        .join(
            &right,
            SEED_KEYS,
            SEED_KEYS,
            pl::JoinArgs::new(pl::JoinType::Inner),
            None,
        )
        .map_err(polars_error("merging in the clear"))?;
    let column = |name: &str| -> Result<Vec<Option<i64>>, ClientError> {
        let c = merged
            .column(name)
            .and_then(|c| c.cast(&pl::DataType::Int64))
            .map_err(polars_error(name))?;
        Ok(c.i64().map_err(polars_error(name))?.iter().collect())
    };
    let month = column("month")?;
    let condition = column("condition_y")?;
    let mut out = Vec::with_capacity(months.len());
    for &m in months {
        let selected: Vec<i64> = month
            .iter()
            .zip(&condition)
            .filter_map(|(mo, c)| match (mo, c) {
                (Some(mo), Some(1)) if *mo == i64::from(m) => Some(1),
                _ => None,
            })
            .collect();
        let passed = selected.len() as u64 >= SEED_THRESHOLD;
        out.push((m, passed.then(|| selected.iter().sum())));
    }
    Ok(out)
}

/// The seed's label for a month: "Jan", "May", "September" (and short
/// English names for the others).
pub fn month_label(month: u32) -> &'static str {
    match month {
        1 => "Jan",
        2 => "Feb",
        3 => "Mar",
        4 => "Apr",
        5 => "May",
        6 => "Jun",
        7 => "Jul",
        8 => "Aug",
        9 => "September",
        10 => "Oct",
        11 => "Nov",
        12 => "Dec",
        _ => "?",
    }
}

/// What a suppressed month shows.
pub fn suppressed_text() -> String {
    format!("suppressed (fewer than {SEED_THRESHOLD} rows)")
}

/// The results as a two-column text table, Month and Sum of Asthma.
pub fn format_results(results: &[(u32, Option<i64>)]) -> String {
    let mut out = format!("{:<12} {}\n", "Month", "Sum of Asthma");
    for (month, sum) in results {
        let value = match sum {
            Some(s) => s.to_string(),
            None => suppressed_text(),
        };
        out.push_str(&format!("{:<12} {value}\n", month_label(*month)));
    }
    out
}

fn chart_error(e: impl std::fmt::Display) -> ClientError {
    ClientError::Usage(format!("drawing the chart: {e}"))
}

/// Writes the results as an SVG bar chart (Month, Sum of Asthma) to
/// `path`; suppressed months have no bar and are labelled so.
pub fn write_chart(path: &Path, results: &[(u32, Option<i64>)]) -> Result<(), ClientError> {
    use plotters::prelude::*;

    let labels: Vec<&str> = results.iter().map(|(m, _)| month_label(*m)).collect();
    let n = results.len().max(1) as u32;
    let top = results
        .iter()
        .filter_map(|(_, v)| *v)
        .max()
        .unwrap_or(0)
        .max(1);
    let root = SVGBackend::new(path, (720, 440)).into_drawing_area();
    root.fill(&WHITE).map_err(chart_error)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!("Sum of Asthma per month (threshold {SEED_THRESHOLD})"),
            ("sans-serif", 22),
        )
        .margin(16)
        .x_label_area_size(40)
        .y_label_area_size(56)
        .build_cartesian_2d((0u32..n).into_segmented(), 0i64..top + top / 5 + 1)
        .map_err(chart_error)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_desc("Month")
        .y_desc("Sum of Asthma")
        .axis_desc_style(("sans-serif", 16))
        .label_style(("sans-serif", 14))
        .x_label_formatter(&|x| match x {
            SegmentValue::CenterOf(i) => labels.get(*i as usize).copied().unwrap_or("").to_owned(),
            _ => String::new(),
        })
        .draw()
        .map_err(chart_error)?;
    chart
        .draw_series(results.iter().enumerate().filter_map(|(i, (_, v))| {
            v.map(|v| {
                let i = i as u32;
                let mut bar = Rectangle::new(
                    [(SegmentValue::Exact(i), 0), (SegmentValue::Exact(i + 1), v)],
                    BLUE.mix(0.7).filled(),
                );
                bar.set_margin(0, 0, 24, 24);
                bar
            })
        }))
        .map_err(chart_error)?;
    let label = |i: usize, text: String, y: i64| {
        Text::new(
            text,
            (SegmentValue::CenterOf(i as u32), y),
            ("sans-serif", 14).into_font(),
        )
    };
    chart
        .draw_series(results.iter().enumerate().map(|(i, (_, v))| match v {
            Some(v) => label(i, v.to_string(), *v + top / 40 + 1),
            None => label(i, suppressed_text(), top / 20 + 1),
        }))
        .map_err(chart_error)?;
    root.present().map_err(chart_error)?;
    Ok(())
}

/// Deterministic generator for the demo's dummy data (splitmix64).
struct Mix(u64);

impl Mix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// A dummy table of `rows` random rows for a table's public schema (as
/// `get_table` shows it), like OpenSAFELY's dummy data from
/// `population_size`: every value uniform in its declared range, strings
/// of random lowercase letters up to their width, nullable cells null one
/// time in ten. `seed` picks the data. Upload it with `dummy_for` set to
/// that table's handle.
pub fn dummy_table(
    schema: &[triad_node::store::ColumnSchema],
    rows: usize,
    seed: u64,
) -> Result<crate::table::EncodedTable, ClientError> {
    use crate::schema::{ColumnSpec, ColumnType, Schema};
    let mut rng = Mix(seed);
    let mut specs = Vec::new();
    let mut columns = Vec::new();
    for column in schema {
        let ty = ColumnType::from_tag(&column.type_tag)
            .map_err(|e| ClientError::Usage(format!("column {:?}: {e}", column.name)))?;
        let spec = ColumnSpec {
            name: column.name.clone(),
            ty,
            min: column.min,
            max: column.max,
            nullable: column.nullable,
        };
        let valid: Vec<u64> = (0..rows)
            .map(|_| u64::from(!column.nullable || rng.below(10) != 0))
            .collect();
        match ty {
            ColumnType::String { width } => {
                let limbs = ty.limbs();
                let mut words = vec![vec![0u64; rows]; limbs];
                for (row, ok) in valid.iter().enumerate() {
                    if *ok == 0 {
                        continue;
                    }
                    let len = rng.below(u64::from(width) + 1) as usize;
                    for i in 0..len {
                        let letter = b'a' + rng.below(26) as u8;
                        words[i / 8][row] |= u64::from(letter) << (8 * (i % 8));
                    }
                }
                for (i, limb) in words.into_iter().enumerate() {
                    columns.push((format!("{}#{i}", column.name), limb));
                }
            }
            _ => {
                // Ranges are at most 2^64 wide (they fit the encoded
                // domain), so the span fits a u128 and the draw a u64.
                let span = (column.max - column.min + 1).max(1) as u128;
                let values = valid
                    .iter()
                    .map(|ok| {
                        if *ok == 0 {
                            return 0;
                        }
                        let draw = if span > u64::MAX as u128 {
                            rng.next() as u128
                        } else {
                            rng.next() as u128 % span
                        };
                        (column.min + draw as i128) as i64 as u64
                    })
                    .collect();
                columns.push((column.name.clone(), values));
            }
        }
        if column.nullable {
            columns.push((format!("{}#valid", column.name), valid));
        }
        specs.push(spec);
    }
    Ok(crate::table::EncodedTable {
        source: "generated dummy data".into(),
        rows: rows as u64,
        schema: Schema { columns: specs },
        columns,
        warnings: Vec::new(),
    })
}

/// The declared key columns of the demo tables (schema TOML).
pub const DEMO_SCHEMA_KEYS: &str = r#"
[[column]]
name = "year"
type = "int"
min = 2019
max = 2024

[[column]]
name = "month"
type = "int"
min = 1
max = 12

[[column]]
name = "day"
type = "int"
min = 1
max = 31

[[column]]
name = "article_nr"
type = "int"
min = 0
max = 9999

[[column]]
name = "batch_nr"
type = "int"
min = 0
max = 999

[[column]]
name = "smokes"
type = "bool"
"#;

/// Writes the two seed-shaped tables (CSV and schema TOML) into `dir`:
/// `party1` with `condition_x`, `party2` with `condition_y` (each 1 with
/// probability 0.3); every other row of party2 has a key of party1, the
/// rest its own. `seed` picks the data. Returns `[(csv, schema); 2]`.
pub fn write_demo_tables(
    dir: &Path,
    rows: usize,
    seed: u64,
) -> Result<[(PathBuf, PathBuf); 2], ClientError> {
    let write = |path: &Path, text: String| {
        std::fs::write(path, text).map_err(|source| ClientError::File {
            path: path.to_owned(),
            source,
        })
    };
    let mut rng = Mix(seed);
    let key = |rng: &mut Mix| {
        (
            2019 + rng.below(6),
            1 + rng.below(12),
            1 + rng.below(28),
            rng.below(10_000),
            rng.below(1000),
            rng.below(2),
        )
    };
    let keys: Vec<_> = (0..rows).map(|_| key(&mut rng)).collect();
    let mut out = Vec::new();
    for (party, condition) in [(1, "condition_x"), (2, "condition_y")] {
        let csv = dir.join(format!("party{party}.csv"));
        let schema = dir.join(format!("party{party}.toml"));
        let mut text = format!("year,month,day,article_nr,batch_nr,smokes,{condition}\n");
        for (i, k) in keys.iter().enumerate() {
            let k = if party == 2 && i % 2 == 1 {
                key(&mut rng)
            } else {
                *k
            };
            let c = u64::from(rng.below(100) < 30);
            text.push_str(&format!(
                "{},{},{},{},{},{},{}\n",
                k.0,
                k.1,
                k.2,
                k.3,
                k.4,
                if k.5 == 1 { "true" } else { "false" },
                c
            ));
        }
        write(&csv, text)?;
        write(
            &schema,
            format!(
                "{DEMO_SCHEMA_KEYS}\n[[column]]\nname = \"{condition}\"\ntype = \"int\"\nmin = 0\nmax = 1\n"
            ),
        )?;
        out.push((csv, schema));
    }
    let mut it = out.into_iter();
    match (it.next(), it.next()) {
        (Some(a), Some(b)) => Ok([a, b]),
        _ => Err(ClientError::Usage("two tables".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clear_analysis_of_generated_tables() {
        let dir = tempfile::tempdir().unwrap();
        let [(p1, _), (p2, _)] = write_demo_tables(dir.path(), 400, 7).unwrap();
        let results = seed_analysis_clear(&p1, &p2, &[1, 5, 9, 13]).unwrap();
        assert_eq!(results.len(), 4);
        // No merged row is in month 13.
        assert_eq!(results[3], (13, None));
        // Cross-check against a plain count over the CSV text.
        let read = |p: &Path| -> Vec<Vec<String>> {
            std::fs::read_to_string(p)
                .unwrap()
                .lines()
                .skip(1)
                .map(|l| l.split(',').map(str::to_owned).collect())
                .collect()
        };
        let (a, b) = (read(&p1), read(&p2));
        for (m, sum) in &results[..3] {
            let mut n = 0;
            for r in &b {
                if r[6] == "1" && r[1] == m.to_string() && a.iter().any(|l| l[..6] == r[..6]) {
                    n += 1;
                }
            }
            let expected = (n >= SEED_THRESHOLD as i64).then_some(n);
            assert_eq!(*sum, expected, "month {m}");
        }
        let text = format_results(&[(1, Some(4)), (5, None)]);
        assert!(text.contains("Jan") && text.contains("suppressed (fewer than 3 rows)"));
        let svg = dir.path().join("chart.svg");
        write_chart(&svg, &[(1, Some(4)), (5, None), (9, Some(12))]).unwrap();
        let drawn = std::fs::read_to_string(&svg).unwrap();
        assert!(
            drawn.contains("<svg") && drawn.contains("September"),
            "{drawn}"
        );
    }
}
