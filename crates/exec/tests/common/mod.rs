//! Shared test machinery: plaintext tables, dealing them to three parties,
//! running a plan on all three, reconstructing, and a plaintext reference
//! executor with the same semantics (polars': Kleene logic, nulls never
//! join, aggregates skip nulls).
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet, HashMap};

use triad_exec::{
    ExecError, Outcome, Policy, ReleasePolicy, SecretColumn, SecretTable, TableSource, execute,
};
use triad_plan::{
    Agg, BinOp, Checked, CheckedOp, CheckedOutput, ColumnInfo, Expr, GroupForm, How, Query,
    TableSchema, Ty, TypedExpr, TypedKind, check,
};
use triad_ring::outside::{deal, reconstruct};
use triad_ring::testing::run3;
use triad_ring::{Arith, SessionConfig, SortAlgorithm, Stats};

#[derive(Clone, Debug)]
pub struct PlainColumn {
    pub info: ColumnInfo,
    pub values: Vec<Option<i64>>,
}

#[derive(Clone, Debug)]
pub struct PlainTable {
    pub columns: Vec<PlainColumn>,
}

impl PlainTable {
    pub fn rows(&self) -> usize {
        self.columns.first().map(|c| c.values.len()).unwrap_or(0)
    }

    pub fn schema(&self) -> TableSchema {
        TableSchema {
            rows: self.rows() as u64,
            columns: self.columns.iter().map(|c| c.info.clone()).collect(),
        }
    }

    fn index(&self, name: &str) -> usize {
        self.columns
            .iter()
            .position(|c| c.info.name == name)
            .unwrap_or_else(|| panic!("no column {name}"))
    }

    fn row(&self, i: usize) -> Vec<Option<i64>> {
        self.columns.iter().map(|c| c.values[i]).collect()
    }
}

pub fn info(name: &str, ty: Ty, min: i128, max: i128, nullable: bool) -> ColumnInfo {
    ColumnInfo {
        name: name.into(),
        ty,
        min,
        max,
        nullable,
    }
}

pub fn column(info: ColumnInfo, values: Vec<Option<i64>>) -> PlainColumn {
    PlainColumn { info, values }
}

fn shares(values: &[u64]) -> [Arith; 3] {
    deal(values).unwrap().map(|d| d.into_shares().unwrap())
}

/// The three parties' shares of `table`.
pub fn deal_table(table: &PlainTable) -> [SecretTable; 3] {
    let n = table.rows();
    let mut parties: [Vec<SecretColumn>; 3] = Default::default();
    for c in &table.columns {
        let raw: Vec<u64> = c.values.iter().map(|v| v.unwrap_or(0) as u64).collect();
        let value = shares(&raw);
        let valid = c.info.nullable.then(|| {
            let bits: Vec<u64> = c.values.iter().map(|v| v.is_some() as u64).collect();
            shares(&bits)
        });
        for p in 0..3 {
            parties[p].push(SecretColumn {
                info: c.info.clone(),
                limbs: vec![value[p].clone()],
                valid: valid.as_ref().map(|v| v[p].clone()),
            });
        }
    }
    parties.map(|columns| SecretTable {
        rows: n,
        columns,
        mask: None,
    })
}

struct Source {
    tables: HashMap<String, SecretTable>,
}

impl TableSource for Source {
    fn load(&mut self, handle: &str, columns: &BTreeSet<String>) -> Result<SecretTable, ExecError> {
        let t = self.tables.get(handle).ok_or_else(|| ExecError::Table {
            handle: handle.into(),
            reason: "unknown".into(),
        })?;
        Ok(SecretTable {
            rows: t.rows,
            columns: t
                .columns
                .iter()
                .filter(|c| columns.contains(&c.info.name))
                .cloned()
                .collect(),
            mask: t.mask.clone(),
        })
    }
}

/// What a plan gave, reconstructed.
#[derive(Debug, PartialEq, Eq)]
pub enum Result3 {
    Answer {
        passed: Vec<bool>,
        words: Vec<i64>,
    },
    /// Selected rows, sorted, columns in schema order.
    Rows(Vec<Vec<Option<i64>>>),
}

/// Runs `query` on all three parties and reconstructs the result; also
/// returns the bytes party 0 sent and its rounds.
pub fn run(
    query: &Query,
    tables: &[(&str, &PlainTable)],
    min_threshold: u64,
) -> Result<(Result3, u64, u32), String> {
    run_with(query, tables, min_threshold, SortAlgorithm::Quick)
}

/// [`run`] with a chosen sort protocol.
pub fn run_with(
    query: &Query,
    tables: &[(&str, &PlainTable)],
    min_threshold: u64,
    sort: SortAlgorithm,
) -> Result<(Result3, u64, u32), String> {
    let policy = Policy {
        min_threshold,
        sort,
        release: None,
    };
    let run = run_policy(query, tables, &policy);
    assert_eq!(run.rule, None, "no release policy, no rule");
    Ok((run.result?, run.stats[0].bytes_sent, run.stats[0].rounds))
}

/// What [`run_policy`] reconstructed (or the error all three parties
/// agreed on), and the parties' costs either way.
#[derive(Debug)]
pub struct Run {
    pub result: Result<Result3, String>,
    /// [`triad_exec::Answer::rule`] (the same at all three parties).
    pub rule: Option<String>,
    /// Per party.
    pub stats: [Stats; 3],
}

/// Runs `query` under `policy` on all three parties and reconstructs the
/// result.
pub fn run_policy(query: &Query, tables: &[(&str, &PlainTable)], policy: &Policy) -> Run {
    let schemas: HashMap<String, TableSchema> = tables
        .iter()
        .map(|(h, t)| (h.to_string(), t.schema()))
        .collect();
    let checked = match check(query, &|h| schemas.get(h).cloned()) {
        Ok(checked) => checked,
        Err(e) => {
            return Run {
                result: Err(format!("plan: {e}")),
                rule: None,
                stats: Default::default(),
            };
        }
    };
    let dealt: Vec<(String, [SecretTable; 3])> = tables
        .iter()
        .map(|(h, t)| (h.to_string(), deal_table(t)))
        .collect();
    let results = run3(7, SessionConfig::default(), |s| {
        let party = s.id().index();
        let mut source = Source {
            tables: dealt
                .iter()
                .map(|(h, t)| (h.clone(), t[party].clone()))
                .collect(),
        };
        let outcome = execute(s, &checked, &mut source, policy);
        Ok((outcome, s.stats()))
    });
    let [a, b, c] = results.map(|r| r.unwrap());
    let stats = [a.1, b.1, c.1];
    let mut rule = None;
    let outcome = match (a.0, b.0, c.0) {
        (Ok(Outcome::Answer(x)), Ok(Outcome::Answer(y)), Ok(Outcome::Answer(z))) => {
            assert_eq!(x.passed, y.passed);
            assert_eq!(x.passed, z.passed);
            assert_eq!(x.rule, y.rule);
            assert_eq!(x.rule, z.rule);
            rule = x.rule;
            let words = reconstruct([&x.words, &y.words, &z.words]).unwrap();
            Ok(Result3::Answer {
                passed: x.passed,
                words: words.into_iter().map(|w| w as i64).collect(),
            })
        }
        (Ok(Outcome::Table(x)), Ok(Outcome::Table(y)), Ok(Outcome::Table(z))) => {
            Ok(Result3::Rows(open_table([&x, &y, &z])))
        }
        (Err(e), Err(f), Err(g)) => {
            let (e, f, g) = (e.to_string(), f.to_string(), g.to_string());
            assert_eq!(e, f);
            assert_eq!(e, g);
            Err(e)
        }
        _ => panic!("the parties disagree on the outcome"),
    };
    Run {
        result: outcome,
        rule,
        stats,
    }
}

fn open_table(t: [&SecretTable; 3]) -> Vec<Vec<Option<i64>>> {
    let n = t[0].rows;
    let mask = match &t[0].mask {
        Some(_) => reconstruct([
            t[0].mask.as_ref().unwrap(),
            t[1].mask.as_ref().unwrap(),
            t[2].mask.as_ref().unwrap(),
        ])
        .unwrap(),
        None => vec![1; n],
    };
    assert!(mask.iter().all(|m| *m <= 1), "mask is not 0/1");
    let mut columns = Vec::new();
    for k in 0..t[0].columns.len() {
        let value = reconstruct([
            &t[0].columns[k].limbs[0],
            &t[1].columns[k].limbs[0],
            &t[2].columns[k].limbs[0],
        ])
        .unwrap();
        let valid = t[0].columns[k].valid.as_ref().map(|_| {
            reconstruct([
                t[0].columns[k].valid.as_ref().unwrap(),
                t[1].columns[k].valid.as_ref().unwrap(),
                t[2].columns[k].valid.as_ref().unwrap(),
            ])
            .unwrap()
        });
        columns.push((value, valid));
    }
    let mut rows: Vec<Vec<Option<i64>>> = (0..n)
        .filter(|i| mask[*i] == 1)
        .map(|i| {
            columns
                .iter()
                .map(|(v, valid)| match valid {
                    Some(valid) if valid[i] == 0 => None,
                    Some(valid) => {
                        assert_eq!(valid[i], 1, "validity is not 0/1");
                        Some(v[i] as i64)
                    }
                    None => Some(v[i] as i64),
                })
                .collect()
        })
        .collect();
    rows.sort();
    rows
}

// ---------------------------------------------------------------------
// The plaintext reference.

#[derive(Clone, Copy, Debug)]
enum PV {
    Num(Option<i128>),
    Truth(Option<bool>),
}

fn eval(table: &PlainTable, row: usize, e: &TypedExpr) -> PV {
    match &e.kind {
        TypedKind::Column(name) => {
            PV::Num(table.columns[table.index(name)].values[row].map(|v| v as i128))
        }
        TypedKind::Literal(v) => PV::Num(Some(*v as i128)),
        TypedKind::Rescale { expr, factor } => match eval(table, row, expr) {
            PV::Num(v) => PV::Num(v.map(|v| v * *factor as i128)),
            t => t,
        },
        TypedKind::Arith { op, left, right } => {
            let (PV::Num(a), PV::Num(b)) = (eval(table, row, left), eval(table, row, right)) else {
                panic!("types")
            };
            PV::Num(match (a, b) {
                (Some(a), Some(b)) => Some(match op {
                    BinOp::Add => a + b,
                    BinOp::Sub => a - b,
                    _ => a * b,
                }),
                _ => None,
            })
        }
        TypedKind::Compare {
            op, left, right, ..
        } => {
            let (PV::Num(a), PV::Num(b)) = (eval(table, row, left), eval(table, row, right)) else {
                panic!("types")
            };
            PV::Truth(match (a, b) {
                (Some(a), Some(b)) => Some(match op {
                    BinOp::Eq => a == b,
                    BinOp::Ne => a != b,
                    BinOp::Lt => a < b,
                    BinOp::Le => a <= b,
                    BinOp::Gt => a > b,
                    _ => a >= b,
                }),
                _ => None,
            })
        }
        TypedKind::Logic { op, left, right } => {
            let (PV::Truth(a), PV::Truth(b)) = (eval(table, row, left), eval(table, row, right))
            else {
                panic!("types")
            };
            PV::Truth(match op {
                BinOp::And => match (a, b) {
                    (Some(false), _) | (_, Some(false)) => Some(false),
                    (Some(true), Some(true)) => Some(true),
                    _ => None,
                },
                _ => match (a, b) {
                    (Some(true), _) | (_, Some(true)) => Some(true),
                    (Some(false), Some(false)) => Some(false),
                    _ => None,
                },
            })
        }
        TypedKind::Not(inner) => match eval(table, row, inner) {
            PV::Truth(t) => PV::Truth(t.map(|t| !t)),
            _ => panic!("types"),
        },
        TypedKind::IsNull(inner) => PV::Truth(Some(match eval(table, row, inner) {
            PV::Num(v) => v.is_none(),
            PV::Truth(t) => t.is_none(),
        })),
        TypedKind::Truth(inner) => match eval(table, row, inner) {
            PV::Num(v) => PV::Truth(v.map(|v| v == 1)),
            t => t,
        },
    }
}

fn keep_rows(table: &PlainTable, rows: &[usize]) -> PlainTable {
    PlainTable {
        columns: table
            .columns
            .iter()
            .map(|c| PlainColumn {
                info: c.info.clone(),
                values: rows.iter().map(|r| c.values[*r]).collect(),
            })
            .collect(),
    }
}

/// The reference result: what polars would give, as the executor
/// reports it.
pub fn reference(
    query: &Query,
    tables: &[(&str, &PlainTable)],
    min_threshold: u64,
) -> Result<Result3, String> {
    reference_released(query, tables, min_threshold, None)
}

/// One group's words under `release` (see `triad_exec::Answer`): each
/// count word rounded, sums kept, all 0 where the group is redacted, which
/// it is when any of its `gated` counts (its rows, and each aggregation's
/// count of non-null values) is at most the redaction bound. `counts[i]`
/// is the count of word `i` for count words and `None` for sum words.
/// Returns the redaction bit too.
pub fn release_words(
    release: &ReleasePolicy,
    gated: &[u64],
    words: &[i64],
    counts: &[Option<u64>],
) -> (Vec<i64>, bool) {
    let redacted = gated.iter().any(|c| release.apply_plain(*c).is_none());
    let out = words
        .iter()
        .zip(counts)
        .map(|(w, c)| match (redacted, c) {
            (true, _) => 0,
            (false, Some(c)) => release.apply_plain(*c).unwrap() as i64,
            (false, None) => *w,
        })
        .collect();
    (out, redacted)
}

/// [`reference`] with the executor's release policy, if any: the threshold
/// is raised to its minimum, and the answer's words are released.
pub fn reference_released(
    query: &Query,
    tables: &[(&str, &PlainTable)],
    min_threshold: u64,
    release: Option<&ReleasePolicy>,
) -> Result<Result3, String> {
    let min_threshold = min_threshold.max(release.map_or(0, |r| r.min_threshold));
    let schemas: HashMap<String, TableSchema> = tables
        .iter()
        .map(|(h, t)| (h.to_string(), t.schema()))
        .collect();
    let checked: Checked =
        check(query, &|h| schemas.get(h).cloned()).map_err(|e| format!("plan: {e}"))?;
    // Stored tables are not released: the policy does not apply.
    let release = release.filter(|_| !matches!(checked.output, CheckedOutput::Store { .. }));
    if let Some(release) = release {
        release.check().map_err(|e| e.to_string())?;
    }
    let mut frames: Vec<PlainTable> = Vec::new();
    for frame in &checked.frames {
        let t = match &frame.op {
            CheckedOp::Table { handle } => tables
                .iter()
                .find(|(h, _)| h == handle)
                .map(|(_, t)| (*t).clone())
                .unwrap(),
            CheckedOp::Filter { input, predicate } => {
                let src = &frames[*input as usize];
                let rows: Vec<usize> = (0..src.rows())
                    .filter(|r| matches!(eval(src, *r, predicate), PV::Truth(Some(true))))
                    .collect();
                keep_rows(src, &rows)
            }
            CheckedOp::WithColumn { input, name, expr } => {
                let mut src = frames[*input as usize].clone();
                let values = (0..src.rows())
                    .map(|r| match eval(&src, r, expr) {
                        PV::Num(v) => v.map(|v| v as i64),
                        PV::Truth(t) => t.map(|t| t as i64),
                    })
                    .collect();
                let info = frame.schema.column(name).unwrap().clone();
                match src.columns.iter_mut().find(|c| &c.info.name == name) {
                    Some(c) => *c = PlainColumn { info, values },
                    None => src.columns.push(PlainColumn { info, values }),
                }
                src
            }
            CheckedOp::Select { input, columns } => {
                let src = &frames[*input as usize];
                PlainTable {
                    columns: columns
                        .iter()
                        .map(|n| src.columns[src.index(n)].clone())
                        .collect(),
                }
            }
            CheckedOp::Merge {
                left,
                right,
                how,
                keys,
                left_columns,
                right_columns,
            } => {
                let (l, r) = (&frames[*left as usize], &frames[*right as usize]);
                let key_of = |t: &PlainTable, row: usize, names: Vec<&str>| -> Option<Vec<i64>> {
                    names
                        .iter()
                        .map(|n| t.columns[t.index(n)].values[row])
                        .collect()
                };
                let lk: Vec<Option<Vec<i64>>> = (0..l.rows())
                    .map(|i| key_of(l, i, keys.iter().map(|k| k.left.as_str()).collect()))
                    .collect();
                let rk: Vec<Option<Vec<i64>>> = (0..r.rows())
                    .map(|i| key_of(r, i, keys.iter().map(|k| k.right.as_str()).collect()))
                    .collect();
                let unique = |ks: &[Option<Vec<i64>>]| {
                    let present: Vec<&Vec<i64>> = ks.iter().flatten().collect();
                    present.iter().collect::<BTreeSet<_>>().len() == present.len()
                };
                if !unique(&lk) && !unique(&rk) {
                    return Err(ExecError::NotUnique.to_string());
                }
                let mut out: Vec<Vec<Option<i64>>> = Vec::new();
                for (i, key) in lk.iter().enumerate() {
                    let matches: Vec<usize> = (0..r.rows())
                        .filter(|j| key.is_some() && *key == rk[*j])
                        .collect();
                    let build = |j: Option<usize>| -> Vec<Option<i64>> {
                        let mut row = Vec::new();
                        for k in keys {
                            row.push(l.columns[l.index(&k.left)].values[i]);
                        }
                        for (src, _) in left_columns {
                            row.push(l.columns[l.index(src)].values[i]);
                        }
                        for (src, _) in right_columns {
                            row.push(j.and_then(|j| r.columns[r.index(src)].values[j]));
                        }
                        row
                    };
                    if matches.is_empty() {
                        if *how == How::Left {
                            out.push(build(None));
                        }
                    } else {
                        for j in matches {
                            out.push(build(Some(j)));
                        }
                    }
                }
                PlainTable {
                    columns: frame
                        .schema
                        .columns
                        .iter()
                        .enumerate()
                        .map(|(k, info)| PlainColumn {
                            info: info.clone(),
                            values: out.iter().map(|row| row[k]).collect(),
                        })
                        .collect(),
                }
            }
        };
        frames.push(t);
    }
    match &checked.output {
        CheckedOutput::Store { frame } => {
            let t = &frames[*frame as usize];
            let mut rows: Vec<Vec<Option<i64>>> = (0..t.rows()).map(|i| t.row(i)).collect();
            rows.sort();
            Ok(Result3::Rows(rows))
        }
        CheckedOutput::Aggregate {
            frame,
            aggregation,
            column,
            threshold,
        } => {
            let t = &frames[*frame as usize];
            let values: Vec<i64> = match column {
                Some(c) => t.columns[t.index(&c.name)]
                    .values
                    .iter()
                    .flatten()
                    .copied()
                    .collect(),
                None => vec![0; t.rows()],
            };
            let threshold = (*threshold).max(min_threshold).max(1);
            if release.is_some() && aggregation.agg.reveals_a_row() {
                return Err(ExecError::Unsupported(format!(
                    "{} under the deployment's release policy: it reveals one row's value, \
                     which rounding and redaction cannot protect",
                    aggregation.agg.name()
                ))
                .to_string());
            }
            if (values.len() as u64) < threshold {
                return Err(ExecError::ThresholdNotMet { threshold }.to_string());
            }
            let plain = words(aggregation.agg, &values);
            Ok(Result3::Answer {
                passed: vec![true],
                words: match release {
                    None => plain,
                    Some(release) => {
                        let count = values.len() as u64;
                        let counts = word_counts(aggregation.agg, count);
                        let (mut out, redacted) = release_words(release, &[count], &plain, &counts);
                        out.push(redacted as i64);
                        out
                    }
                },
            })
        }
        CheckedOutput::GroupBy {
            frame,
            keys,
            aggregations,
            threshold,
            form,
        } => {
            let t = &frames[*frame as usize];
            let threshold = (*threshold).max(min_threshold).max(1);
            let mut groups: BTreeMap<Vec<i64>, Vec<usize>> = BTreeMap::new();
            for r in 0..t.rows() {
                let key: Vec<i64> = keys
                    .iter()
                    .map(|k| t.columns[t.index(&k.name)].values[r].unwrap())
                    .collect();
                groups.entry(key).or_default().push(r);
            }
            // Words and the redaction bit (false without a policy).
            let group_words = |rows: &[usize]| -> Option<(Vec<i64>, bool)> {
                if (rows.len() as u64) < threshold {
                    return None;
                }
                let mut out = Vec::new();
                let mut counts = Vec::new();
                let mut gated = vec![rows.len() as u64];
                for (a, c) in aggregations {
                    let values: Vec<i64> = match c {
                        Some(c) => rows
                            .iter()
                            .filter_map(|r| t.columns[t.index(&c.name)].values[*r])
                            .collect(),
                        None => vec![0; rows.len()],
                    };
                    if (values.len() as u64) < threshold {
                        return None;
                    }
                    out.extend(words(a.agg, &values));
                    counts.extend(word_counts(a.agg, values.len() as u64));
                    gated.push(values.len() as u64);
                }
                Some(match release {
                    None => (out, false),
                    Some(release) => release_words(release, &gated, &out, &counts),
                })
            };
            match form {
                GroupForm::Domain { combinations } => {
                    let mut passed = Vec::new();
                    let mut all = Vec::new();
                    let mut bits = Vec::new();
                    for c in combinations {
                        let rows = groups.get(c).cloned().unwrap_or_default();
                        match group_words(&rows) {
                            Some((w, redacted)) => {
                                passed.push(true);
                                all.extend(w);
                                bits.push(redacted as i64);
                            }
                            None => passed.push(false),
                        }
                    }
                    if release.is_some() {
                        all.extend(bits);
                    }
                    Ok(Result3::Answer { passed, words: all })
                }
                GroupForm::Sorted => {
                    // Shuffled order: report passing groups sorted by key,
                    // as the test sorts the executor's groups too.
                    let mut all = Vec::new();
                    for (key, rows) in &groups {
                        if let Some(w) = group_words(rows) {
                            all.push((key.clone(), w));
                        }
                    }
                    let bits: Vec<i64> = all.iter().map(|(_, (_, r))| *r as i64).collect();
                    let mut words: Vec<i64> = all
                        .into_iter()
                        .flat_map(|(k, (w, _))| k.into_iter().chain(w))
                        .collect();
                    let passing = bits.len();
                    if release.is_some() {
                        words.extend(bits);
                    }
                    Ok(Result3::Answer {
                        passed: vec![true; passing],
                        words,
                    })
                }
            }
        }
    }
}

/// Per word of `agg`: the count it is (`Some`) or `None` for a sum or a
/// value.
fn word_counts(agg: Agg, count: u64) -> Vec<Option<u64>> {
    match agg {
        Agg::Sum | Agg::Min | Agg::Max => vec![None],
        Agg::Count => vec![Some(count)],
        Agg::Mean => vec![None, Some(count)],
        Agg::Var => vec![None, Some(count), None],
    }
}

fn words(agg: Agg, values: &[i64]) -> Vec<i64> {
    let sum = values.iter().fold(0i64, |a, b| a.wrapping_add(*b));
    let count = values.len() as i64;
    let squares = values
        .iter()
        .fold(0i64, |a, b| a.wrapping_add(b.wrapping_mul(*b)));
    match agg {
        Agg::Sum => vec![sum],
        Agg::Count => vec![count],
        Agg::Mean => vec![sum, count],
        Agg::Var => vec![sum, count, squares],
        Agg::Min => vec![*values.iter().min().unwrap()],
        Agg::Max => vec![*values.iter().max().unwrap()],
    }
}

/// Sorted groups of a sorted group-by answer: (keys, words) per group.
pub fn sorted_groups(result: &Result3, keys: usize, per_group: usize) -> Vec<Vec<i64>> {
    match result {
        Result3::Answer { passed, words } => {
            let groups = passed.iter().filter(|p| **p).count();
            assert_eq!(words.len(), groups * (keys + per_group));
            let mut out: Vec<Vec<i64>> =
                words.chunks(keys + per_group).map(|c| c.to_vec()).collect();
            out.sort();
            out
        }
        _ => panic!("not an answer"),
    }
}

/// A column reference, for plans built by hand.
pub fn c(name: &str) -> Box<Expr> {
    Box::new(Expr::Column(name.into()))
}

/// An integer literal.
pub fn lit(v: i64) -> Box<Expr> {
    Box::new(Expr::Literal { value: v, scale: 0 })
}

/// `l op r`.
pub fn bin(op: BinOp, l: Box<Expr>, r: Box<Expr>) -> Box<Expr> {
    Box::new(Expr::Binary {
        op,
        left: l,
        right: r,
    })
}
