//! Tests of schema parsing and table reading/encoding.

use std::path::PathBuf;

use polars::prelude::{DataFrame, NamedFrom, ParquetWriter, Series};
use proptest::prelude::*;
use tempfile::TempDir;
use triad_client::schema::{ColumnSpec, ColumnType, Schema};
use triad_client::table::{EncodedTable, encode_frame, read_table, widen_range};

fn write(dir: &TempDir, name: &str, text: &str) -> PathBuf {
    let path = dir.path().join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn schema(text: &str) -> Schema {
    Schema::from_toml_str(text, "schema.toml").unwrap()
}

fn col(t: &EncodedTable, name: &str) -> Vec<u64> {
    t.column(name)
        .unwrap_or_else(|| panic!("no share column {name}"))
        .to_vec()
}

fn limb(s: &str) -> u64 {
    let mut buf = [0u8; 8];
    buf[..s.len()].copy_from_slice(s.as_bytes());
    u64::from_le_bytes(buf)
}

fn days(y: i32, m: u32, d: u32) -> u64 {
    // Independent reference: count days with a simple loop.
    let leap = |y: i32| (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let mut n: i64 = 0;
    if y >= 1970 {
        for yy in 1970..y {
            n += if leap(yy) { 366 } else { 365 };
        }
    } else {
        for yy in y..1970 {
            n -= if leap(yy) { 366 } else { 365 };
        }
    }
    let mdays = [
        31,
        if leap(y) { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    n += mdays[..(m - 1) as usize].iter().sum::<i64>() + i64::from(d) - 1;
    n as u64
}

const ALL_TYPES: &str = r#"
[[column]]
name = "id"
type = "int"
min = -9223372036854775808
max = 9223372036854775807

[[column]]
name = "year"
type = "int"
min = -5
max = 2030
nullable = true

[[column]]
name = "smokes"
type = "bool"

[[column]]
name = "visit"
type = "date"
min = "1900-01-01"
max = "2024-12-31"

[[column]]
name = "dose"
type = "fixed"
scale = 2
min = "-100.00"
max = 100

[[column]]
name = "article"
type = "string"
width = 12
nullable = true
"#;

#[test]
fn good_csv_with_every_type() {
    let dir = TempDir::new().unwrap();
    let path = write(
        &dir,
        "good.csv",
        "year,id,smokes,visit,dose,article\n\
         2020,-9223372036854775808,true,1970-01-01,-1.5,hello\n\
         ,9223372036854775807,FALSE,1969-12-31,100,abcdefghijkl\n\
         -5,0,1,1900-01-01,0.07,\n\
         2030,-1,0,2024-12-31,-100.00,\"a,b\"\n",
    );
    let s = schema(ALL_TYPES);
    let t = read_table(&path, Some(&s)).unwrap();
    assert_eq!(t.source, "good.csv");
    assert_eq!(t.rows, 4);
    assert_eq!(t.schema, s);
    assert!(t.warnings.is_empty());
    let names: Vec<&str> = t.columns.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "id",
            "year",
            "year#valid",
            "smokes",
            "visit",
            "dose",
            "article#0",
            "article#1",
            "article#valid"
        ]
    );
    assert_eq!(
        col(&t, "id"),
        [i64::MIN as u64, i64::MAX as u64, 0, u64::MAX]
    );
    assert_eq!(col(&t, "year"), [2020, 0, -5i64 as u64, 2030]);
    assert_eq!(col(&t, "year#valid"), [1, 0, 1, 1]);
    assert_eq!(col(&t, "smokes"), [1, 0, 1, 0]);
    assert_eq!(
        col(&t, "visit"),
        [0, u64::MAX, days(1900, 1, 1), days(2024, 12, 31)]
    );
    assert_eq!(days(1900, 1, 1), -25_567i64 as u64);
    assert_eq!(
        col(&t, "dose"),
        [-150i64 as u64, 10_000, 7, -10_000i64 as u64]
    );
    assert_eq!(
        col(&t, "article#0"),
        [limb("hello"), limb("abcdefgh"), 0, limb("a,b")]
    );
    assert_eq!(col(&t, "article#1"), [0, limb("ijkl"), 0, 0]);
    assert_eq!(col(&t, "article#valid"), [1, 1, 0, 1]);
}

#[test]
fn crlf_bom_and_no_final_newline() {
    let dir = TempDir::new().unwrap();
    let path = write(&dir, "crlf.csv", "\u{feff}a,b\r\n1,x\r\n2,y");
    let s = schema(
        "[[column]]\nname='a'\ntype='int'\nmin=0\nmax=9\n\
         [[column]]\nname='b'\ntype='string'\nwidth=1\n",
    );
    let t = read_table(&path, Some(&s)).unwrap();
    assert_eq!(t.rows, 2);
    assert_eq!(col(&t, "a"), [1, 2]);
    assert_eq!(col(&t, "b#0"), [limb("x"), limb("y")]);
}

#[test]
fn header_only_and_one_row() {
    let dir = TempDir::new().unwrap();
    let s = schema(ALL_TYPES);
    let header = "id,year,smokes,visit,dose,article";
    for text in [format!("{header}\n"), header.to_owned()] {
        let path = write(&dir, "empty.csv", &text);
        let t = read_table(&path, Some(&s)).unwrap();
        assert_eq!(t.rows, 0);
        assert_eq!(t.columns.len(), 9);
        assert!(t.columns.iter().all(|(_, v)| v.is_empty()));
    }
    let path = write(
        &dir,
        "one.csv",
        &format!("{header}\n7,,true,2000-03-01,1.25,z\n"),
    );
    let t = read_table(&path, Some(&s)).unwrap();
    assert_eq!(t.rows, 1);
    assert_eq!(col(&t, "id"), [7]);
    assert_eq!(col(&t, "year#valid"), [0]);
    assert_eq!(col(&t, "visit"), [days(2000, 3, 1)]);
    assert_eq!(col(&t, "dose"), [125]);
    assert_eq!(col(&t, "article#0"), [limb("z")]);
}

const ERR_SCHEMA: &str = r#"
[[column]]
name = "year"
type = "int"
min = 2000
max = 2030

[[column]]
name = "smokes"
type = "bool"
nullable = true

[[column]]
name = "visit"
type = "date"

[[column]]
name = "dose"
type = "fixed"
scale = 2
min = "-100.00"
max = "100.00"

[[column]]
name = "article"
type = "string"
width = 4
"#;

/// Writes a file whose line 4 has one bad cell, reads it and checks the
/// error names file, line and column but not the value.
fn cell_error(column: &str, value: &str, expect: &str) {
    let dir = TempDir::new().unwrap();
    let good = ["2020", "true", "2021-01-01", "1.00", "ab"];
    let cols = ["year", "smokes", "visit", "dose", "article"];
    let i = cols.iter().position(|c| *c == column).unwrap();
    let mut bad = good;
    bad[i] = value;
    let text = format!(
        "{}\n{}\n{}\n{}\n{}\n",
        cols.join(","),
        good.join(","),
        good.join(","),
        bad.join(","),
        good.join(",")
    );
    let path = write(&dir, "people.csv", &text);
    let msg = read_table(&path, Some(&schema(ERR_SCHEMA)))
        .unwrap_err()
        .to_string();
    assert!(msg.contains("people.csv"), "{msg}");
    assert!(msg.contains("line 4"), "{msg}");
    assert!(msg.contains(&format!("column '{column}'")), "{msg}");
    assert!(msg.contains(expect), "{msg}");
    if !value.is_empty() {
        assert!(!msg.contains(value), "{msg} contains the value {value}");
    }
}

#[test]
fn bad_cells_are_refused_without_their_value() {
    cell_error("year", "zzz", "not an integer");
    cell_error("year", "2031", "above declared max 2030");
    cell_error("year", "1999", "below declared min 2000");
    cell_error("year", "", "null in non-nullable column");
    cell_error("year", "99999999999999999999", "outside the 64-bit range");
    cell_error("year", "2020.5", "not an integer");
    cell_error("smokes", "maybe", "not a boolean");
    cell_error("visit", "2021-13-01", "not a date");
    cell_error("visit", "2021-02-29", "not a date");
    cell_error("visit", "", "null in non-nullable column");
    cell_error(
        "dose",
        "1.005",
        "more decimal places than the declared scale 2",
    );
    cell_error("dose", "x1", "not a decimal number");
    cell_error("dose", "100.01", "above declared max 100.00");
    cell_error("article", "abcde", "longer than declared width 4 bytes");
    cell_error("article", "", "null in non-nullable column");
}

#[test]
fn line_numbers_count_quoted_newlines() {
    let dir = TempDir::new().unwrap();
    let path = write(
        &dir,
        "multi.csv",
        "year,smokes,visit,dose,article\n\
         2020,,2021-01-01,1,\"a\nb\"\n\
         2040,,2021-01-01,1,ab\n",
    );
    let msg = read_table(&path, Some(&schema(ERR_SCHEMA)))
        .unwrap_err()
        .to_string();
    assert!(msg.contains("line 4, column 'year'"), "{msg}");
}

#[test]
fn earliest_bad_row_is_reported() {
    let dir = TempDir::new().unwrap();
    let path = write(
        &dir,
        "two.csv",
        "year,smokes,visit,dose,article\n\
         2020,,2021-01-01,1,ab\n\
         2020,,2021-01-01,1,abcdef\n\
         1,,2021-01-01,1,ab\n",
    );
    let msg = read_table(&path, Some(&schema(ERR_SCHEMA)))
        .unwrap_err()
        .to_string();
    assert!(msg.contains("line 3, column 'article'"), "{msg}");
}

#[test]
fn missing_extra_and_ragged() {
    let dir = TempDir::new().unwrap();
    let s = schema(ERR_SCHEMA);
    let path = write(
        &dir,
        "m.csv",
        "year,smokes,visit,dose\n2020,,2021-01-01,1\n",
    );
    let msg = read_table(&path, Some(&s)).unwrap_err().to_string();
    assert!(
        msg.contains("m.csv") && msg.contains("missing") && msg.contains("'article'"),
        "{msg}"
    );

    let path = write(
        &dir,
        "e.csv",
        "year,smokes,visit,dose,article,secret\n2020,,2021-01-01,1,ab,5\n",
    );
    let msg = read_table(&path, Some(&s)).unwrap_err().to_string();
    assert!(
        msg.contains("e.csv") && msg.contains("'secret'") && msg.contains("not declared"),
        "{msg}"
    );

    let path = write(
        &dir,
        "r.csv",
        "year,smokes,visit,dose,article\n2020,,2021-01-01,1,ab\n2020,,2021-01-01,1\n",
    );
    let msg = read_table(&path, Some(&s)).unwrap_err().to_string();
    assert!(
        msg.contains("r.csv") && msg.contains("line 3 has 4 field(s)"),
        "{msg}"
    );

    let path = write(
        &dir,
        "q.csv",
        "year,smokes,visit,dose,article\n2020,,2021-01-01,1,\"ab\n",
    );
    let msg = read_table(&path, Some(&s)).unwrap_err().to_string();
    assert!(
        msg.contains("q.csv") && msg.contains("line 2: unterminated"),
        "{msg}"
    );

    let path = write(&dir, "d.csv", "year,year\n1,2\n");
    let msg = read_table(&path, None).unwrap_err().to_string();
    assert!(msg.contains("more than once"), "{msg}");

    let path = write(&dir, "t.txt", "year\n1\n");
    let msg = read_table(&path, None).unwrap_err().to_string();
    assert!(
        msg.contains("t.txt") && msg.contains("unsupported file type"),
        "{msg}"
    );

    let path = dir.path().join("absent.csv");
    let msg = read_table(&path, None).unwrap_err().to_string();
    assert!(msg.contains("absent.csv"), "{msg}");

    let path = write(&dir, "empty.csv", "");
    let msg = read_table(&path, None).unwrap_err().to_string();
    assert!(msg.contains("empty file"), "{msg}");
}

#[test]
fn inferred_ranges_are_widened_with_warnings() {
    let dir = TempDir::new().unwrap();
    let path = write(&dir, "inf.csv", "a,b,c\n0,-3,true\n200,5,\n7,,false\n");
    let t = read_table(&path, None).unwrap();
    assert_eq!(t.rows, 3);
    assert_eq!(
        t.schema.columns,
        [
            ColumnSpec {
                name: "a".into(),
                ty: ColumnType::Int,
                min: 0,
                max: 255,
                nullable: false
            },
            ColumnSpec {
                name: "b".into(),
                ty: ColumnType::Int,
                min: -8,
                max: 7,
                nullable: true
            },
            ColumnSpec {
                name: "c".into(),
                ty: ColumnType::Bool,
                min: 0,
                max: 1,
                nullable: true
            },
        ]
    );
    assert_eq!(col(&t, "a"), [0, 200, 7]);
    assert_eq!(col(&t, "b"), [-3i64 as u64, 5, 0]);
    assert_eq!(col(&t, "b#valid"), [1, 1, 0]);
    assert_eq!(col(&t, "c"), [1, 0, 0]);
    assert_eq!(col(&t, "c#valid"), [1, 0, 1]);
    assert_eq!(t.warnings.len(), 3);
    assert!(t.warnings[0].contains("'a'") && t.warnings[0].contains("[0, 255]"));
    assert!(t.warnings[1].contains("'b'") && t.warnings[1].contains("[-8, 7]"));
    assert!(t.warnings.iter().all(|w| w.contains("public")));
    // The inferred schema can be saved and read back.
    let again = Schema::from_toml_str(&t.schema.to_toml_string(), "inferred.toml").unwrap();
    assert_eq!(again, t.schema);

    let path = write(&dir, "f.csv", "x\n1.5\n");
    let msg = read_table(&path, None).unwrap_err().to_string();
    assert!(msg.contains("column 'x'") && msg.contains("fixed"), "{msg}");
    let path = write(&dir, "s.csv", "x\nhello\n");
    let msg = read_table(&path, None).unwrap_err().to_string();
    assert!(msg.contains("column 'x'") && msg.contains("string") && !msg.contains("hello"));

    assert_eq!(widen_range(0, 0), (0, 1));
    assert_eq!(widen_range(0, 2), (0, 3));
    assert_eq!(widen_range(3, 255), (0, 255));
    assert_eq!(widen_range(0, 256), (0, 511));
    assert_eq!(widen_range(-1, 0), (-2, 1));
    assert_eq!(widen_range(-4, 3), (-4, 3));
    assert_eq!(widen_range(0, i64::MAX), (0, i64::MAX as i128));
    assert_eq!(
        widen_range(i64::MIN, 0),
        (i64::MIN as i128, i64::MAX as i128)
    );
}

#[test]
fn parquet_file_and_in_memory_frame() {
    let dir = TempDir::new().unwrap();
    let mut df = DataFrame::new_infer_height(vec![
        Series::new("year".into(), &[Some(2020i64), Some(2030), Some(2000)]).into(),
        Series::new("smokes".into(), &[Some(true), None, Some(false)]).into(),
        Series::new("visit".into(), &["1970-01-02", "1969-01-01", "2000-02-29"]).into(),
        Series::new("dose".into(), &[1.005f64, -1.005, 0.125]).into(),
        Series::new("article".into(), &["ab", "", "abcd"]).into(),
    ])
    .unwrap();
    let path = dir.path().join("people.parquet");
    let mut f = std::fs::File::create(&path).unwrap();
    ParquetWriter::new(&mut f).finish(&mut df).unwrap();
    drop(f);
    let s = schema(ERR_SCHEMA);
    let t = read_table(&path, Some(&s)).unwrap();
    assert_eq!(t.source, "people.parquet");
    assert_eq!(t.rows, 3);
    assert_eq!(col(&t, "year"), [2020, 2030, 2000]);
    assert_eq!(col(&t, "smokes"), [1, 0, 0]);
    assert_eq!(col(&t, "smokes#valid"), [1, 0, 1]);
    assert_eq!(col(&t, "visit"), [1, days(1969, 1, 1), days(2000, 2, 29)]);
    // Floats are rounded half away from zero from their shortest decimal form.
    assert_eq!(col(&t, "dose"), [101, -101i64 as u64, 13]);
    assert_eq!(col(&t, "article#0"), [limb("ab"), 0, limb("abcd")]);

    let u = encode_frame(&df, Some(&s), "frame").unwrap();
    assert_eq!(u.columns, t.columns);
    assert_eq!(u.source, "frame");

    // A bad cell in a frame or a Parquet file is located by row.
    let mut bad = df.clone();
    bad.replace(
        "year",
        Series::new("year".into(), &[2020i64, 2020, 1990]).into(),
    )
    .unwrap();
    let msg = encode_frame(&bad, Some(&s), "frame")
        .unwrap_err()
        .to_string();
    assert!(msg.contains("frame: row 3, column 'year'"), "{msg}");
    assert!(!msg.contains("1990"), "{msg}");
    let path = dir.path().join("bad.pq");
    let mut f = std::fs::File::create(&path).unwrap();
    ParquetWriter::new(&mut f).finish(&mut bad).unwrap();
    drop(f);
    let msg = read_table(&path, Some(&s)).unwrap_err().to_string();
    assert!(msg.contains("bad.pq: row 3, column 'year'"), "{msg}");

    // A column of the wrong type is refused by name.
    let mut wrong = df.clone();
    wrong
        .replace("visit", Series::new("visit".into(), &[1i64, 2, 3]).into())
        .unwrap();
    let msg = encode_frame(&wrong, Some(&s), "frame")
        .unwrap_err()
        .to_string();
    assert!(msg.contains("column 'visit'"), "{msg}");
}

#[test]
fn schema_validation() {
    let bad = |text: &str, expect: &str| {
        let msg = Schema::from_toml_str(text, "s.toml")
            .unwrap_err()
            .to_string();
        assert!(msg.contains("s.toml"), "{msg}");
        assert!(msg.contains(expect), "{msg} lacks {expect}");
    };
    let int = |name: &str| format!("[[column]]\nname='{name}'\ntype='int'\nmin=0\nmax=1\n");
    bad(
        &format!("{}{}", int("a"), int("a")),
        "column 'a': declared more than once",
    );
    bad("[[column]]\nname='a'\ntype='int'\nmin=0\n", "column 'a'");
    bad(
        "[[column]]\nname='a'\ntype='int'\nmin=2\nmax=1\n",
        "min 2 is above max 1",
    );
    bad(
        "[[column]]\nname='a'\ntype='int'\nmin=0\nmax=1\ncolour=3\n",
        "colour",
    );
    bad("[[column]]\nname='a'\ntype='float'\n", "unknown type");
    bad(
        "[[column]]\nname='a'\ntype='fixed'\nscale=19\nmin=0\nmax=1\n",
        "scale 19",
    );
    bad("[[column]]\nname='a'\ntype='string'\nwidth=0\n", "width 0");
    bad(
        "[[column]]\nname='a'\ntype='string'\nwidth=65\n",
        "width 65",
    );
    bad("[[column]]\nname='a'\ntype='string'\n", "needs a width");
    bad(
        "[[column]]\nname='a'\ntype='bool'\nmin=0\n",
        "min is not allowed",
    );
    bad(
        "[[column]]\nname='a'\ntype='date'\nmin='2020-02-30'\n",
        "column 'a'",
    );
    bad(
        "[[column]]\nname='a'\ntype='fixed'\nscale=1\nmin='0.05'\nmax=1\n",
        "decimal places",
    );
    bad("[[column]]\nname='a#b'\ntype='bool'\n", "'#'");
    bad("", "no columns");

    let s = schema(ALL_TYPES);
    let tags: Vec<String> = s.columns.iter().map(ColumnSpec::type_tag).collect();
    assert_eq!(
        tags,
        ["int", "int", "bool", "date", "fixed(2)", "string(12)"]
    );
    for c in &s.columns {
        assert_eq!(ColumnType::from_tag(&c.type_tag()).unwrap(), c.ty);
    }
    assert!(ColumnType::from_tag("fixed(19)").is_err());
    let dose = s.column("dose").unwrap();
    assert_eq!((dose.min, dose.max), (-10_000, 10_000));
    let visit = s.column("visit").unwrap();
    assert_eq!((visit.min, visit.max), (-25_567, 20_088));
    let article = s.column("article").unwrap();
    assert_eq!((article.min, article.max), (0, u64::MAX as i128));
    assert_eq!(
        Schema::from_toml_str(&s.to_toml_string(), "again.toml").unwrap(),
        s
    );
    // Native TOML dates are accepted too.
    let d = schema("[[column]]\nname='d'\ntype='date'\nmin=2020-01-01\n");
    assert_eq!(d.columns[0].min, days(2020, 1, 1) as i64 as i128);
}

fn range_and_values() -> impl Strategy<Value = (i64, i64, Vec<(i64, i64)>)> {
    (any::<i64>(), any::<i64>()).prop_flat_map(|(a, b)| {
        let (lo, hi) = (a.min(b), a.max(b));
        (
            Just(lo),
            Just(hi),
            prop::collection::vec((lo..=hi, lo..=hi), 0..40),
        )
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    #[test]
    fn random_int_columns_round_trip((lo, hi, rows) in range_and_values()) {
        let dir = TempDir::new().unwrap();
        let mut text = String::from("x,y\n");
        for (x, y) in &rows {
            text.push_str(&format!("{x},{y}\n"));
        }
        let path = write(&dir, "p.csv", &text);
        let s = schema(&format!(
            "[[column]]\nname='x'\ntype='int'\nmin={lo}\nmax={hi}\n\
             [[column]]\nname='y'\ntype='int'\nmin={lo}\nmax={hi}\n"
        ));
        let t = read_table(&path, Some(&s)).unwrap();
        prop_assert_eq!(t.rows, rows.len() as u64);
        let xs: Vec<u64> = rows.iter().map(|r| r.0 as u64).collect();
        let ys: Vec<u64> = rows.iter().map(|r| r.1 as u64).collect();
        prop_assert_eq!(col(&t, "x"), xs);
        prop_assert_eq!(col(&t, "y"), ys);
    }
}

#[test]
fn blank_and_short_lines_are_refused() {
    let dir = TempDir::new().unwrap();
    for (text, line) in [
        ("a,b\n1,2\n\n", 3),
        ("a,b\n1,2\n\n3,4\n", 3),
        ("a,b\n1\n", 2),
    ] {
        let path = write(&dir, "blank.csv", text);
        let msg = read_table(&path, None).unwrap_err().to_string();
        assert!(msg.contains(&format!("line {line} ")), "{msg}");
    }
    // In a one-column file a blank line is a null.
    let path = write(&dir, "one.csv", "a\n1\n\n3\n");
    let t = read_table(&path, None).unwrap();
    assert_eq!(col(&t, "a"), [1, 0, 3]);
    assert_eq!(col(&t, "a#valid"), [1, 0, 1]);
}
