//! The DataFrame API against three real node processes: random small
//! tables uploaded, merged, filtered, aggregated, grouped and stored, each
//! result checked against polars computing the same in the clear.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use polars::prelude as pl;
use polars::prelude::{ChunkAgg, ChunkVar, DataFrameJoinOps};
use triad_auth::UserKey;
use triad_client::cluster::LocalCluster;
use triad_client::prelude::*;
use triad_client::schema::Schema;
use triad_client::seed;
use triad_client::table::read_table;
use triad_node::config::Role;
use triad_plan::{CheckedOutput, GroupForm, Output, PlanError};

const PROGRAM: &str = env!("CARGO_BIN_EXE_triad");

/// splitmix64: reproducible data.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> i64 {
        (self.next() % n) as i64
    }
}

/// 2020-01-01 as days since 1970-01-01.
const DAY0: i64 = 18_262;
const IDS: [i64; 6] = [17, 4242, 99_000, 500_000, 999_999, 123_456];

const LEFT_SCHEMA: &str = r#"
[[column]]
name = "k1"
type = "int"
min = 0
max = 5

[[column]]
name = "k2"
type = "int"
min = 0
max = 3

[[column]]
name = "id"
type = "int"
min = 0
max = 1000000

[[column]]
name = "month"
type = "int"
min = 1
max = 12

[[column]]
name = "x"
type = "int"
min = -50
max = 50

[[column]]
name = "p"
type = "fixed"
scale = 2
min = "-10.00"
max = "10.00"
nullable = true

[[column]]
name = "flag"
type = "bool"
"#;

const RIGHT_SCHEMA: &str = r#"
[[column]]
name = "k1"
type = "int"
min = 0
max = 5

[[column]]
name = "k2"
type = "int"
min = 0
max = 3

[[column]]
name = "w"
type = "int"
min = 0
max = 100

[[column]]
name = "d"
type = "date"
min = "2020-01-01"
max = "2024-12-31"
"#;

/// The left table: keys with duplicates, a wide `id`, a month, values.
/// The right table: unique keys, a subset of all (k1, k2).
fn generate(seed: u64, rows: usize) -> (pl::DataFrame, String, pl::DataFrame, String) {
    let mut rng = Rng(seed);
    let mut cols: [Vec<i64>; 5] = Default::default();
    let mut p: Vec<Option<i64>> = Vec::new();
    let mut flag = Vec::new();
    let mut csv = String::from("k1,k2,id,month,x,p,flag\n");
    for _ in 0..rows {
        let row = [
            rng.below(6),
            rng.below(4),
            IDS[rng.below(6) as usize],
            1 + rng.below(12),
            rng.below(101) - 50,
        ];
        let cents = (rng.below(10) != 0).then(|| rng.below(2001) - 1000);
        let f = rng.below(2) == 1;
        for (c, v) in cols.iter_mut().zip(row) {
            c.push(v);
        }
        p.push(cents);
        flag.push(f);
        let p_text = cents
            .map(|c| Value::Decimal { value: c, scale: 2 }.to_string())
            .unwrap_or_default();
        csv.push_str(&format!(
            "{},{},{},{},{},{p_text},{f}\n",
            row[0], row[1], row[2], row[3], row[4]
        ));
    }
    let left = pl::DataFrame::new(
        rows,
        vec![
            pl::Column::new("k1".into(), &cols[0]),
            pl::Column::new("k2".into(), &cols[1]),
            pl::Column::new("id".into(), &cols[2]),
            pl::Column::new("month".into(), &cols[3]),
            pl::Column::new("x".into(), &cols[4]),
            pl::Column::new("p".into(), &p),
            pl::Column::new("flag".into(), &flag),
        ],
    )
    .unwrap();

    let (mut k1, mut k2, mut w, mut d) = (vec![], vec![], vec![], vec![]);
    let mut rcsv = String::from("k1,k2,w,d\n");
    for a in 0..6i64 {
        for b in 0..4i64 {
            if rng.below(3) == 0 {
                continue;
            }
            let (wv, dv) = (rng.below(101), DAY0 + rng.below(1827));
            k1.push(a);
            k2.push(b);
            w.push(wv);
            d.push(dv);
            rcsv.push_str(&format!("{a},{b},{wv},{}\n", Value::Date(dv)));
        }
    }
    let right = pl::DataFrame::new(
        k1.len(),
        vec![
            pl::Column::new("k1".into(), &k1),
            pl::Column::new("k2".into(), &k2),
            pl::Column::new("w".into(), &w),
            pl::Column::new("d".into(), &d),
        ],
    )
    .unwrap();
    (left, csv, right, rcsv)
}

fn ints(df: &pl::DataFrame, name: &str) -> Vec<Option<i64>> {
    df.column(name)
        .unwrap()
        .cast(&pl::DataType::Int64)
        .unwrap()
        .i64()
        .unwrap()
        .iter()
        .collect()
}

fn floats(df: &pl::DataFrame, name: &str) -> Vec<Option<f64>> {
    df.column(name)
        .unwrap()
        .cast(&pl::DataType::Float64)
        .unwrap()
        .f64()
        .unwrap()
        .iter()
        .collect()
}

/// The rows of `df` where `keep` holds (polars' filter).
fn filtered(df: &pl::DataFrame, keep: impl Fn(usize) -> bool) -> pl::DataFrame {
    let mask: pl::BooleanChunked = (0..df.height()).map(|i| Some(keep(i))).collect();
    df.filter(&mask).unwrap()
}

fn int_column(df: &pl::DataFrame, name: &str) -> pl::Int64Chunked {
    df.column(name)
        .unwrap()
        .cast(&pl::DataType::Int64)
        .unwrap()
        .i64()
        .unwrap()
        .clone()
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * (1.0 + b.abs())
}

fn threshold_not_met<T: std::fmt::Debug>(result: Result<T, ClientError>) {
    match result {
        Err(ClientError::ThresholdNotMet { .. }) => {}
        other => panic!("expected ThresholdNotMet, got {other:?}"),
    }
}

struct Fixture {
    _dir: tempfile::TempDir,
    root: PathBuf,
    _cluster: LocalCluster,
    client: Client,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_owned();
    let key_path = root.join("analyst.key");
    let key = UserKey::generate().unwrap();
    key.save(&key_path).unwrap();
    let users = vec![(
        "analyst".into(),
        key.public().to_string(),
        vec![Role::Owner, Role::Analyst],
    )];
    let mut cluster =
        LocalCluster::create(&root.join("cluster"), Path::new(PROGRAM), &users, &key_path).unwrap();
    // Thresholds exactly as the queries ask (the deployment minimum would
    // otherwise raise the small ones).
    cluster.tune(|file| file.limits.min_threshold = 1).unwrap();
    cluster.start(Duration::from_secs(60)).unwrap();
    let client = Client::connect_file(&cluster.connection_path()).unwrap();
    Fixture {
        _dir: dir,
        root,
        _cluster: cluster,
        client,
    }
}

impl Fixture {
    fn upload(&self, name: &str, csv: &str, schema: &str) -> Handle {
        let path = self.root.join(format!("{name}.csv"));
        std::fs::write(&path, csv).unwrap();
        let schema = Schema::from_toml_str(schema, name).unwrap();
        self.client
            .upload(&read_table(&path, Some(&schema)).unwrap())
            .unwrap()
            .handle
    }
}

#[test]
fn dataframe_api_matches_polars() {
    let f = fixture();
    let client = &f.client;
    let (ldf, lcsv, rdf, rcsv) = generate(0x5eed, 60);
    let lh = f.upload("left", &lcsv, LEFT_SCHEMA);
    let rh = f.upload("right", &rcsv, RIGHT_SCHEMA);
    let lf = client.frame(&lh).unwrap();
    let rf = client.frame(&rh).unwrap();
    let on = ["k1", "k2"];

    // Errors found here, before anything is sent.
    match lf.sum("nope") {
        Err(ClientError::BadPlan {
            plan: Some(PlanError::UnknownColumn { column, .. }),
            ..
        }) => assert_eq!(column, "nope"),
        other => panic!("{other:?}"),
    }
    let cubed = lf.with_column("c", col("x") * col("id") * col("id") * col("id"));
    assert!(matches!(
        cubed.sum("c"),
        Err(ClientError::BadPlan {
            plan: Some(PlanError::Overflow { .. }),
            ..
        })
    ));

    // Inner merge (many left rows per right key) + filter + aggregates.
    let inner = lf.merge(&rf, How::Inner, &on);
    let inner_clear = ldf
        .join(&rdf, on, on, pl::JoinArgs::new(pl::JoinType::Inner), None)
        .unwrap();
    let pred = || col("x").gt(0) & col("w").lt(lit(70));
    let (x, w) = (ints(&inner_clear, "x"), ints(&inner_clear, "w"));
    let sel_clear = filtered(&inner_clear, |i| {
        x[i].is_some_and(|x| x > 0) && w[i].is_some_and(|w| w < 70)
    });
    let n = sel_clear.height() as u64;
    assert!(n >= 3, "the data should select a few rows, got {n}");
    let sel = inner.filter(pred());
    let xs = int_column(&sel_clear, "x");
    assert_eq!(sel.count().unwrap(), Value::Int(n as i64));
    assert_eq!(sel.sum("x").unwrap(), Value::Int(xs.sum().unwrap()));
    let var = sel.var("x").unwrap().as_f64();
    assert!(close(var, xs.var(1).unwrap()), "{var} vs {:?}", xs.var(1));
    assert_eq!(
        sel.max("w").unwrap(),
        Value::Int(int_column(&sel_clear, "w").max().unwrap())
    );
    assert_eq!(
        sel.min("d").unwrap(),
        Value::Date(int_column(&sel_clear, "d").min().unwrap())
    );
    assert_eq!(sel.min("x").unwrap(), Value::Int(xs.min().unwrap()));
    let ps = int_column(&sel_clear, "p");
    let n_p = (ps.len() - ps.null_count()) as u64;
    assert_eq!(sel.count_column("p").unwrap(), Value::Int(n_p as i64));
    let mean_p = sel.mean("p").unwrap().as_f64();
    assert!(close(mean_p, ps.mean().unwrap() / 100.0), "{mean_p}");
    assert_eq!(
        sel.sum("p").unwrap(),
        Value::Decimal {
            value: ps.sum().unwrap(),
            scale: 2
        }
    );
    // Thresholds exactly at the count pass; one more fails, revealing
    // nothing but that. The gate of a nullable column counts its non-null
    // rows.
    assert_eq!(
        inner.filter(pred().with_threshold(n)).count().unwrap(),
        Value::Int(n as i64)
    );
    threshold_not_met(inner.filter(pred().with_threshold(n + 1)).count());
    threshold_not_met(inner.filter(pred().with_threshold(n + 1)).sum("x"));
    assert_eq!(
        sel.threshold(n).sum("x").unwrap(),
        Value::Int(xs.sum().unwrap())
    );
    threshold_not_met(sel.threshold(n + 1).sum("x"));
    assert!(n_p < n, "some selected p should be null");
    assert!(sel.threshold(n_p).mean("p").is_ok());
    threshold_not_met(sel.threshold(n_p + 1).mean("p"));
    // A threshold on a filter carries through later filters and merges.
    let gated = inner
        .filter(pred().with_threshold(n + 1))
        .filter(col("k1").gt_eq(0));
    threshold_not_met(gated.count());

    // Left merge: every left row; right columns null where unmatched.
    let left = lf.merge(&rf, How::Left, &on);
    let left_clear = ldf
        .join(&rdf, on, on, pl::JoinArgs::new(pl::JoinType::Left), None)
        .unwrap();
    assert_eq!(left_clear.height(), ldf.height());
    let lx = ints(&left_clear, "x");
    let kept = filtered(&left_clear, |i| lx[i].is_some_and(|x| x > -30));
    let sel = left.filter(col("x").gt(-30));
    let ws = int_column(&kept, "w");
    assert_eq!(sel.count().unwrap(), Value::Int(kept.height() as i64));
    assert_eq!(
        sel.count_column("w").unwrap(),
        Value::Int((ws.len() - ws.null_count()) as i64)
    );
    assert_eq!(sel.sum("w").unwrap(), Value::Int(ws.sum().unwrap()));
    assert!(close(sel.mean("w").unwrap().as_f64(), ws.mean().unwrap()));
    assert_eq!(
        sel.max("d").unwrap(),
        Value::Date(int_column(&kept, "d").max().unwrap())
    );
    let unmatched = ws.null_count() as i64;
    assert!(unmatched > 0, "some left rows should have no match");
    assert_eq!(
        sel.filter(col("w").is_null()).count().unwrap(),
        Value::Int(unmatched)
    );
    let cut = date_days("2022-06-01").unwrap();
    let late = int_column(&kept, "d")
        .iter()
        .filter(|d| d.is_some_and(|d| d >= cut))
        .count() as i64;
    assert_eq!(
        sel.filter(col("d").gt_eq(lit_date("2022-06-01")))
            .count()
            .unwrap(),
        Value::Int(late)
    );
    // Keys unique on neither side.
    match lf.merge(&lf, How::Inner, &on).count() {
        Err(ClientError::NotUnique { .. }) => {}
        other => panic!("expected NotUnique, got {other:?}"),
    }

    // Group-by on month: a small domain. A group passes when its rows and
    // its non-null p both reach the threshold.
    let by_month = inner.group_by(&["month"]).threshold(3);
    let aggs = [agg::sum("x"), agg::count(), agg::mean("p")];
    let (_, checked) = inner
        .plan(Output::GroupBy {
            frame: inner.id(),
            keys: vec!["month".into()],
            aggregations: aggs.to_vec(),
            threshold: Some(3),
        })
        .unwrap();
    assert!(matches!(
        checked.output,
        CheckedOutput::GroupBy {
            form: GroupForm::Domain { .. },
            ..
        }
    ));
    let got = by_month.agg(&aggs).unwrap();
    let (months, xs, ps) = (
        ints(&inner_clear, "month"),
        ints(&inner_clear, "x"),
        ints(&inner_clear, "p"),
    );
    let mut groups: BTreeMap<i64, (i64, i64, i64, i64)> = BTreeMap::new();
    for i in 0..inner_clear.height() {
        let g = groups.entry(months[i].unwrap()).or_default();
        g.0 += xs[i].unwrap();
        g.1 += 1;
        if let Some(p) = ps[i] {
            g.2 += p;
            g.3 += 1;
        }
    }
    let expected: Vec<(i64, i64, i64, f64)> = groups
        .iter()
        .filter(|(_, g)| g.1 >= 3 && g.3 >= 3)
        .map(|(m, g)| (*m, g.0, g.1, g.2 as f64 / g.3 as f64 / 100.0))
        .collect();
    assert!(
        !expected.is_empty() && expected.len() < groups.len(),
        "the data should make some months pass and some not"
    );
    let (gm, gx, gc, gp) = (
        ints(&got, "month"),
        ints(&got, "x_sum"),
        ints(&got, "count"),
        floats(&got, "p_mean"),
    );
    assert_eq!(got.height(), expected.len(), "{got}");
    for (i, (m, sx, c, mp)) in expected.iter().enumerate() {
        assert_eq!(
            (gm[i], gx[i], gc[i]),
            (Some(*m), Some(*sx), Some(*c)),
            "{got}"
        );
        assert!(close(gp[i].unwrap(), *mp), "{got}");
    }

    // Group-by on a wide key: sorted, reveals how many groups passed.
    let fx = ints(&ldf, "x");
    let some = filtered(&ldf, |i| fx[i].is_some_and(|x| x > -20));
    let (ids, xs) = (ints(&some, "id"), ints(&some, "x"));
    let mut groups: BTreeMap<i64, Vec<i64>> = BTreeMap::new();
    for i in 0..some.height() {
        groups
            .entry(ids[i].unwrap())
            .or_default()
            .push(xs[i].unwrap());
    }
    let t = 7;
    let expected: Vec<(i64, Vec<i64>)> = groups
        .into_iter()
        .filter(|(_, v)| v.len() as u64 >= t)
        .collect();
    let wide = lf.filter(col("x").gt(-20));
    let aggs = [agg::count(), agg::sum("x"), agg::var("x")];
    let (_, checked) = wide
        .plan(Output::GroupBy {
            frame: wide.id(),
            keys: vec!["id".into()],
            aggregations: aggs.to_vec(),
            threshold: Some(t),
        })
        .unwrap();
    assert!(matches!(
        checked.output,
        CheckedOutput::GroupBy {
            form: GroupForm::Sorted,
            ..
        }
    ));
    let got = wide.group_by(&["id"]).threshold(t).agg(&aggs).unwrap();
    assert!(!expected.is_empty() && expected.len() < IDS.len());
    assert_eq!(got.height(), expected.len(), "{got}");
    let (gi, gc, gx, gv) = (
        ints(&got, "id"),
        ints(&got, "count"),
        ints(&got, "x_sum"),
        floats(&got, "x_var"),
    );
    for (i, (id, v)) in expected.iter().enumerate() {
        let ca = pl::Int64Chunked::from_vec("x".into(), v.clone());
        assert_eq!(gi[i], Some(*id));
        assert_eq!(gc[i], Some(v.len() as i64));
        assert_eq!(gx[i], ca.sum());
        assert!(close(gv[i].unwrap(), ca.var(1).unwrap()), "{got}");
    }

    // Store the merge, then query the stored table.
    let stored = inner.store().unwrap();
    let summary = client.get_table(&stored).unwrap();
    assert_eq!(summary.rows as usize, ldf.height() + rdf.height());
    let sf = client.frame(&stored).unwrap();
    assert_eq!(
        sf.sum("x").unwrap(),
        Value::Int(int_column(&inner_clear, "x").sum().unwrap())
    );
    assert_eq!(sf.count().unwrap(), Value::Int(inner_clear.height() as i64));
    assert_eq!(sf.filter(pred()).count().unwrap(), Value::Int(n as i64));
    threshold_not_met(sf.filter(pred().with_threshold(n + 1)).sum("x"));
}

#[test]
fn the_seed_analysis_matches_polars() {
    let f = fixture();
    let dir = f.root.join("seed");
    std::fs::create_dir_all(&dir).unwrap();
    let tables = seed::write_demo_tables(&dir, 400, 11).unwrap();
    let mut handles = Vec::new();
    for (csv, schema) in &tables {
        let schema = Schema::load(schema).unwrap();
        let table = read_table(csv, Some(&schema)).unwrap();
        handles.push(f.client.upload(&table).unwrap().handle);
    }
    let months: Vec<u32> = (1..=12).collect();
    let secret = seed::seed_analysis(&f.client, &handles[0], &handles[1], &months).unwrap();
    let clear = seed::seed_analysis_clear(&tables[0].0, &tables[1].0, &months).unwrap();
    assert_eq!(secret, clear);
    assert!(
        clear.iter().any(|(_, s)| s.is_some()) && clear.iter().any(|(_, s)| s.is_none()),
        "the data should make some months pass and some not: {clear:?}"
    );
}
