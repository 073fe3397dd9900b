//! Answers released under the deployment's release policy
//! (`Policy::release`) by query execution: against hand-computed tables and
//! the plaintext reference (`common::reference_released`), the word layout
//! and the client's split (`released_layout`), refusals, and the nodes'
//! view and its cost.

mod common;

use common::{PlainTable, Result3, Run, bin, c, column, info, lit, reference_released, run_policy};
use proptest::prelude::*;
use triad_exec::release::released_layout;
use triad_exec::{Policy, ReleasePolicy};
use triad_plan::{Agg, Aggregation, BinOp, Expr, Frame, Output, Query, Ty};
use triad_ring::{SortAlgorithm, Stats};

/// Tables of up to `MAX_ROWS` rows get summed values near the ends of
/// `i64` (`BIG`), still summable over all rows: the plan refuses sums that
/// could wrap.
const MAX_ROWS: usize = 120;
const BIG: i64 = i64::MAX / MAX_ROWS as i64;

/// The declared bound of `v` for a table of `rows` rows.
fn bound(rows: usize) -> i64 {
    i64::MAX / rows.max(MAX_ROWS) as i64
}

fn agg(agg: Agg, column: Option<&str>) -> Aggregation {
    Aggregation {
        agg,
        column: column.map(String::from),
    }
}

/// Columns: `k` a small key (0..=11), `w` a wide key (`k * 1000`, grouped
/// by sorting), `v` big summed values (within `bound`), `a` small nullable
/// values.
fn table(rows: &[(i64, i64, Option<i64>)]) -> PlainTable {
    let big = bound(rows.len());
    PlainTable {
        columns: vec![
            column(
                info("k", Ty::Int, 0, 11, false),
                rows.iter().map(|r| Some(r.0)).collect(),
            ),
            column(
                info("w", Ty::Int, 0, 1_000_000, false),
                rows.iter().map(|r| Some(r.0 * 1000)).collect(),
            ),
            column(
                info("v", Ty::Int, -(big as i128), big as i128, false),
                rows.iter().map(|r| Some(r.1)).collect(),
            ),
            column(
                info("a", Ty::Int, -1000, 1000, true),
                rows.iter().map(|r| r.2).collect(),
            ),
        ],
    }
}

/// `sizes[k]` rows in group `k`; `v` alternates in sign between groups and
/// sits at the top of its range; `a` is non-null unless `nulls[k]` says
/// how many of the group's rows are null.
fn grouped(sizes: &[usize], nulls: &[usize]) -> PlainTable {
    let big = bound(sizes.iter().sum());
    let mut rows = Vec::new();
    for (k, &n) in sizes.iter().enumerate() {
        let sign = if k % 2 == 0 { 1 } else { -1 };
        for i in 0..n {
            let null = i < nulls.get(k).copied().unwrap_or(0);
            rows.push((
                k as i64,
                sign * (big - i as i64),
                (!null).then_some(i as i64 % 7 - 3),
            ));
        }
    }
    table(&rows)
}

fn policy(release: Option<ReleasePolicy>) -> Policy {
    Policy {
        min_threshold: 1,
        sort: SortAlgorithm::Radix,
        release,
    }
}

fn group_query(key: &str, aggregations: Vec<Aggregation>, filter: Option<Expr>) -> Query {
    let mut frames = vec![Frame::Table { handle: "t".into() }];
    if let Some(predicate) = filter {
        frames.push(Frame::Filter {
            input: 0,
            predicate,
            threshold: None,
        });
    }
    Query::new(
        frames.clone(),
        Output::GroupBy {
            frame: frames.len() as u32 - 1,
            keys: vec![key.into()],
            aggregations,
            threshold: None,
        },
    )
}

fn aggregate_query(aggregation: Aggregation, filter: Option<Expr>) -> Query {
    let mut frames = vec![Frame::Table { handle: "t".into() }];
    if let Some(predicate) = filter {
        frames.push(Frame::Filter {
            input: 0,
            predicate,
            threshold: None,
        });
    }
    Query::new(
        frames.clone(),
        Output::Aggregate {
            frame: frames.len() as u32 - 1,
            aggregation,
            threshold: None,
        },
    )
}

fn run(query: &Query, t: &PlainTable, release: Option<ReleasePolicy>) -> Run {
    run_policy(query, &[("t", t)], &policy(release))
}

fn words_u64(result: &Result3) -> (&[bool], Vec<u64>) {
    match result {
        Result3::Answer { passed, words } => (passed, words.iter().map(|w| *w as u64).collect()),
        Result3::Rows(_) => panic!("not an answer"),
    }
}

/// The passing groups of a released answer as the client splits them:
/// (the group's words, redacted), sorted (a sorted group-by's groups come
/// shuffled). Checks the layout on the way.
fn released_groups(result: &Result3, per_group: usize) -> Vec<(Vec<i64>, bool)> {
    let (passed, words) = words_u64(result);
    let (body, redacted) = released_layout(&words, passed).expect("a released layout");
    assert_eq!(redacted.len(), passed.iter().filter(|p| **p).count());
    assert_eq!(body.len(), redacted.len() * per_group);
    let mut groups: Vec<(Vec<i64>, bool)> = body
        .chunks(per_group.max(1))
        .map(|c| c.iter().map(|w| *w as i64).collect())
        .zip(redacted)
        .collect();
    groups.sort();
    groups
}

/// The executor under `release` agrees with the reference; for sorted
/// group-bys (`per_group` given), as sets of groups.
fn agree(query: &Query, t: &PlainTable, release: ReleasePolicy, per_group: Option<usize>) {
    let got = run(query, t, Some(release));
    agrees(&got, query, t, release, per_group);
}

/// [`agree`] for a run made already.
fn agrees(
    got: &Run,
    query: &Query,
    t: &PlainTable,
    release: ReleasePolicy,
    per_group: Option<usize>,
) {
    let want = reference_released(query, &[("t", t)], 1, Some(&release));
    match (&got.result, &want, per_group) {
        (Ok(g), Ok(w), Some(per_group)) => {
            assert_eq!(
                released_groups(g, per_group),
                released_groups(w, per_group),
                "query {query:?}"
            );
        }
        (g, w, _) => assert_eq!(g, w, "query {query:?}"),
    }
    if got.result.is_ok() {
        assert_eq!(got.rule.as_deref(), Some(&release.describe()[..]));
    }
}

const HAND_SIZES: [usize; 10] = [0, 2, 3, 7, 8, 10, 12, 13, 15, 17];

/// Every aggregation the release handles, 7 words per group: count, sum,
/// mean (sum, count), var (sum, count, sum of squares).
fn all_aggregations() -> Vec<Aggregation> {
    vec![
        agg(Agg::Count, None),
        agg(Agg::Sum, Some("v")),
        agg(Agg::Mean, Some("a")),
        agg(Agg::Var, Some("a")),
    ]
}

/// Plain (sum of v, sum of a, sum of a squared) of group `k` of
/// [`grouped`] with no nulls, at most `MAX_ROWS` rows in all.
fn plain_sums(k: usize, n: usize) -> (i64, i64, i64) {
    let sign = if k % 2 == 0 { 1 } else { -1 };
    let v: i64 = (0..n as i64).map(|i| sign * (BIG - i)).sum();
    let a: Vec<i64> = (0..n as i64).map(|i| i % 7 - 3).collect();
    (v, a.iter().sum(), a.iter().map(|x| x * x).sum())
}

#[test]
fn small_domain_group_by_at_the_boundaries_by_hand() {
    let t = grouped(&HAND_SIZES, &[]);
    let release = ReleasePolicy::default();
    let query = group_query("k", all_aggregations(), None);
    let got = run(&query, &t, Some(release));
    let result = got.result.unwrap();
    assert_eq!(
        got.rule.as_deref(),
        Some("counts <= 7 redacted; counts rounded to the nearest 5; threshold >= 3")
    );
    let (passed, words) = words_u64(&result);
    // The gate is at 3 (the policy's minimum over the deployment's 1);
    // groups 0 and 2 are not answered at all, 3 and 7 are redacted.
    let mut expected_passed = vec![false, false];
    expected_passed.extend([true; 8]);
    expected_passed.extend([false; 2]);
    assert_eq!(passed, expected_passed);
    let (body, redacted) = released_layout(&words, passed).unwrap();
    assert_eq!(
        redacted,
        vec![true, true, false, false, false, false, false, false]
    );
    // Half up to a multiple of 5, as `c + 2 - (c + 2) % 5`: 8 -> 10,
    // 10 -> 10, 12 -> 10, 13 -> 15, 15 -> 15, 17 -> 15.
    let counts = [0, 0, 10, 10, 10, 15, 15, 15];
    for (g, group) in body.chunks(7).enumerate() {
        let k = g + 2;
        let (v, a, a2) = plain_sums(k, HAND_SIZES[k]);
        let expected: Vec<u64> = if redacted[g] {
            vec![0; 7]
        } else {
            let n = counts[g];
            vec![n, v as u64, a as u64, n, a as u64, n, a2 as u64]
        };
        assert_eq!(group, expected, "group {k}");
    }
    agree(&query, &t, release, None);
}

#[test]
fn sorted_group_by_by_hand() {
    let t = grouped(&HAND_SIZES, &[]);
    let release = ReleasePolicy::default();
    let query = group_query("w", all_aggregations(), None);
    let got = run(&query, &t, Some(release));
    let result = got.result.unwrap();
    let groups = released_groups(&result, 8);
    let counts = [0, 0, 10, 10, 10, 15, 15, 15];
    let mut expected: Vec<(Vec<i64>, bool)> = (2..10)
        .map(|k| {
            let (v, a, a2) = plain_sums(k, HAND_SIZES[k]);
            let n = counts[k - 2];
            if n == 0 {
                // The key stays; everything else is 0.
                (vec![k as i64 * 1000, 0, 0, 0, 0, 0, 0, 0], true)
            } else {
                (vec![k as i64 * 1000, n, v, a, n, a, n, a2], false)
            }
        })
        .collect();
    expected.sort();
    assert_eq!(groups, expected);
    agree(&query, &t, release, Some(8));
}

#[test]
fn a_group_with_few_non_null_values_is_redacted_whole() {
    // Group 0: 20 rows but only 5 non-null `a`; group 1: 20 rows, 12
    // non-null; group 2: 9 rows, all non-null.
    let t = grouped(&[20, 20, 9], &[15, 8, 0]);
    let release = ReleasePolicy::default();
    for key in ["k", "w"] {
        let query = group_query(
            key,
            vec![
                agg(Agg::Count, None),
                agg(Agg::Count, Some("a")),
                agg(Agg::Sum, Some("a")),
                agg(Agg::Sum, Some("v")),
            ],
            None,
        );
        let result = run(&query, &t, Some(release)).result.unwrap();
        let keys = usize::from(key == "w");
        let groups = released_groups(&result, keys + 4);
        let with_key = |k: i64, rest: Vec<i64>| -> Vec<i64> {
            let mut w = if keys == 1 { vec![k * 1000] } else { vec![] };
            w.extend(rest);
            w
        };
        let a_sum = |skip: i64, n: i64| (skip..n).map(|i| i % 7 - 3).sum::<i64>();
        let mut expected = vec![
            (with_key(0, vec![0, 0, 0, 0]), true),
            (
                with_key(1, vec![20, 10, a_sum(8, 20), plain_sums(1, 20).0]),
                false,
            ),
            (
                with_key(2, vec![10, 10, a_sum(0, 9), plain_sums(2, 9).0]),
                false,
            ),
        ];
        expected.sort();
        assert_eq!(groups, expected, "key {key}");
        agree(&query, &t, release, (keys == 1).then_some(keys + 4));
    }
}

#[test]
fn plain_aggregates_by_hand() {
    let release = ReleasePolicy::default();
    let one_group = |n: usize, nulls: usize| grouped(&[n], &[nulls]);
    let (v12, a12, a2_12) = plain_sums(0, 12);
    let (v13, _, _) = plain_sums(0, 13);
    // (table, aggregation, words with the redaction bit last).
    let cases: Vec<(PlainTable, Aggregation, Vec<u64>)> = vec![
        (one_group(3, 0), agg(Agg::Count, None), vec![0, 1]),
        (one_group(7, 0), agg(Agg::Count, None), vec![0, 1]),
        (one_group(8, 0), agg(Agg::Count, None), vec![10, 0]),
        (one_group(10, 0), agg(Agg::Count, None), vec![10, 0]),
        (one_group(12, 0), agg(Agg::Count, None), vec![10, 0]),
        (one_group(13, 0), agg(Agg::Count, None), vec![15, 0]),
        (one_group(7, 0), agg(Agg::Sum, Some("v")), vec![0, 1]),
        (
            one_group(12, 0),
            agg(Agg::Sum, Some("v")),
            vec![v12 as u64, 0],
        ),
        (
            one_group(13, 0),
            agg(Agg::Mean, Some("v")),
            vec![v13 as u64, 15, 0],
        ),
        (
            one_group(12, 0),
            agg(Agg::Var, Some("a")),
            vec![a12 as u64, 10, a2_12 as u64, 0],
        ),
        // 12 rows, 5 non-null: the count of the column is what is gated.
        (one_group(12, 7), agg(Agg::Count, Some("a")), vec![0, 1]),
        (one_group(12, 7), agg(Agg::Mean, Some("a")), vec![0, 0, 1]),
    ];
    for (t, aggregation, expected) in cases {
        let query = aggregate_query(aggregation.clone(), None);
        let got = run(&query, &t, Some(release));
        assert_eq!(
            got.result.as_ref().unwrap(),
            &Result3::Answer {
                passed: vec![true],
                words: expected.iter().map(|w| *w as i64).collect()
            },
            "{aggregation:?} over {} rows",
            t.rows()
        );
        agrees(&got, &query, &t, release, None);
    }
    // Below the policy's minimum: refused as before, nothing released.
    let err = run(
        &aggregate_query(agg(Agg::Count, None), None),
        &one_group(2, 0),
        Some(release),
    )
    .result
    .unwrap_err();
    assert!(err.contains("at least 3 rows"), "{err}");
}

#[test]
fn extreme_sums_within_the_declared_range() {
    // 16 rows of i64::MIN / 16 + 1 and of i64::MAX / 16: sums of
    // -(2^63 - 16) and 2^63 - 16 fit exactly.
    for value in [i64::MIN / 16 + 1, i64::MAX / 16] {
        let bound = i64::MAX / 16;
        let t = PlainTable {
            columns: vec![
                column(info("k", Ty::Int, 0, 1, false), vec![Some(0); 16]),
                column(
                    info("x", Ty::Int, -(bound as i128), bound as i128, false),
                    vec![Some(value); 16],
                ),
            ],
        };
        let release = ReleasePolicy::default();
        let query = aggregate_query(agg(Agg::Mean, Some("x")), None);
        let result = run(&query, &t, Some(release)).result.unwrap();
        assert_eq!(
            result,
            Result3::Answer {
                passed: vec![true],
                words: vec![value * 16, 15, 0]
            }
        );
        agree(&query, &t, release, None);
        let query = Query::new(
            vec![Frame::Table { handle: "t".into() }],
            Output::GroupBy {
                frame: 0,
                keys: vec!["k".into()],
                aggregations: vec![agg(Agg::Sum, Some("x")), agg(Agg::Count, None)],
                threshold: None,
            },
        );
        agree(&query, &t, release, None);
        let result = run(&query, &t, Some(release)).result.unwrap();
        assert_eq!(
            result,
            Result3::Answer {
                passed: vec![true, false],
                words: vec![value * 16, 15, 0]
            }
        );
    }
}

#[test]
fn empty_single_row_and_filtered_out_tables() {
    let release = ReleasePolicy::default();
    let lenient = ReleasePolicy {
        min_threshold: 1,
        redact_at_most: 0,
        round_to: 5,
    };
    let empty = table(&[]);
    let one = table(&[(4, BIG, Some(2))]);
    let many = grouped(&[9, 9, 9], &[]);
    let none_kept = bin(BinOp::Gt, c("a"), lit(1000));
    let count = agg(Agg::Count, None);

    // Aggregates: the gate refuses, under any policy.
    for (t, filter) in [
        (&empty, None),
        (&one, None),
        (&many, Some(*none_kept.clone())),
    ] {
        let query = aggregate_query(count.clone(), filter);
        let err = run(&query, t, Some(release)).result.unwrap_err();
        assert!(err.contains("at least 3 rows"), "{err}");
        agree(&query, t, release, None);
    }
    // One row under a lenient policy: 1 rounds to 0, released (bit 0).
    let query = aggregate_query(count.clone(), None);
    assert_eq!(
        run(&query, &one, Some(lenient)).result.unwrap(),
        Result3::Answer {
            passed: vec![true],
            words: vec![0, 0]
        }
    );
    agree(&query, &one, lenient, None);

    // Group-bys: nothing passes, no words at all, and the rule is there.
    for key in ["k", "w"] {
        for (t, filter) in [
            (&empty, None),
            (&one, None),
            (&many, Some(*none_kept.clone())),
        ] {
            let query = group_query(key, all_aggregations(), filter);
            let got = run(&query, t, Some(release));
            let (passed, words) = words_u64(got.result.as_ref().unwrap());
            assert!(passed.iter().all(|p| !p), "key {key}");
            assert!(words.is_empty());
            assert_eq!(got.rule, Some(release.describe()));
            assert_eq!(released_layout(&words, passed).unwrap(), (&[][..], vec![]));
            agree(&query, t, release, (key == "w").then_some(8));
        }
        let query = group_query(key, all_aggregations(), None);
        agree(&query, &one, lenient, (key == "w").then_some(8));
    }
}

#[test]
fn the_policy_minimum_raises_the_gate() {
    let release = ReleasePolicy {
        min_threshold: 9,
        ..ReleasePolicy::default()
    };
    let t = grouped(&[8, 9, 20], &[]);
    let query = group_query("k", vec![agg(Agg::Count, None)], None);
    let result = run(&query, &t, Some(release)).result.unwrap();
    let (passed, words) = words_u64(&result);
    assert_eq!(&passed[..3], &[false, true, true]);
    // The redaction bound is max(7, 9 - 1) = 8: 9 is released, as 10.
    assert_eq!(words, vec![10, 20, 0, 0]);
    agree(&query, &t, release, None);
    let err = run(
        &aggregate_query(agg(Agg::Count, None), None),
        &grouped(&[8], &[]),
        Some(release),
    )
    .result
    .unwrap_err();
    assert!(err.contains("at least 9 rows"), "{err}");
    // The deployment's own minimum wins when larger.
    let mut strict = policy(Some(release));
    strict.min_threshold = 10;
    assert_eq!(strict.threshold(0), 10);
    assert_eq!(strict.threshold(12), 12);
    assert_eq!(policy(Some(release)).threshold(2), 9);
    assert_eq!(policy(None).threshold(0), 1);
    let result = run_policy(&query, &[("t", &t)], &strict).result.unwrap();
    assert_eq!(&words_u64(&result).0[..3], &[false, false, true]);
}

#[test]
fn min_max_and_invalid_policies_are_refused_before_anything_is_sent() {
    let t = grouped(&[20], &[]);
    for a in [Agg::Min, Agg::Max] {
        let query = aggregate_query(agg(a, Some("v")), None);
        let got = run(&query, &t, Some(ReleasePolicy::default()));
        let err = got.result.unwrap_err();
        assert!(
            err.contains(&format!(
                "{} under the deployment's release policy",
                a.name()
            )),
            "{err}"
        );
        assert_eq!(got.stats, [Stats::default(); 3]);
        agree(&query, &t, ReleasePolicy::default(), None);
        // Without a policy they run as before.
        assert!(run(&query, &t, None).result.is_ok());
    }
    let invalid = ReleasePolicy {
        round_to: 0,
        ..ReleasePolicy::default()
    };
    for query in [
        aggregate_query(agg(Agg::Count, None), None),
        group_query("k", vec![agg(Agg::Sum, Some("v"))], None),
    ] {
        let got = run(&query, &t, Some(invalid));
        let err = got.result.unwrap_err();
        assert!(err.contains("release policy: round_to 0"), "{err}");
        assert_eq!(got.stats, [Stats::default(); 3]);
    }
}

#[test]
fn stored_tables_are_not_released() {
    let t = grouped(&[3, 4], &[1, 0]);
    let query = Query::new(
        vec![
            Frame::Table { handle: "t".into() },
            Frame::Filter {
                input: 0,
                predicate: *bin(BinOp::Ge, c("k"), lit(1)),
                threshold: None,
            },
        ],
        Output::Store { frame: 1 },
    );
    let got = run(&query, &t, Some(ReleasePolicy::default()));
    assert_eq!(got.rule, None);
    assert_eq!(
        got.result.unwrap(),
        reference_released(&query, &[("t", &t)], 1, None).unwrap()
    );
}

#[test]
fn released_layout_splits_and_checks() {
    let passed = [false, true, true];
    let words = [10, 20, 0, 0, 0, 1];
    let (body, redacted) = released_layout(&words, &passed).unwrap();
    assert_eq!(body, &[10, 20, 0, 0]);
    assert_eq!(redacted, vec![false, true]);
    assert!(released_layout(&[1], &passed).is_err());
    assert!(released_layout(&[1, 2, 3, 0, 0], &passed).is_err());
    assert!(released_layout(&[1, 2, 0, 2], &passed).is_err());
    assert!(released_layout(&[1], &[false]).is_err());
    assert_eq!(released_layout(&[], &[false]).unwrap(), (&[][..], vec![]));
    // A plain aggregate: one group, no keys.
    assert_eq!(
        released_layout(&[15, 0], &[true]).unwrap(),
        (&[15][..], vec![false])
    );
}

/// Two tables of the same shape whose groups all pass but differ in
/// sizes, sums and which groups are redacted.
fn same_shape_tables(rows: usize, groups: usize) -> (PlainTable, PlainTable) {
    let uniform: Vec<usize> = (0..groups)
        .map(|g| rows / groups + usize::from(g < rows % groups))
        .collect();
    // Skewed: groups of 3, 5, 7, 8, 12, 13 and the rest in the last.
    let mut skewed: Vec<usize> = [3, 5, 7, 8, 12, 13]
        .iter()
        .copied()
        .cycle()
        .take(groups - 1)
        .collect();
    skewed.push(rows - skewed.iter().sum::<usize>());
    let a = grouped(&uniform, &vec![1; groups]);
    // Nulls in the larger groups only: every group passes its gate.
    let nulls: Vec<usize> = skewed
        .iter()
        .map(|s| if *s >= 6 { s / 3 } else { 0 })
        .collect();
    let b = grouped(&skewed, &nulls);
    assert_eq!(a.rows(), b.rows());
    (a, b)
}

#[test]
fn the_nodes_view_does_not_depend_on_counts_or_redactions() {
    let (a, b) = same_shape_tables(90, 12);
    for key in ["k", "w"] {
        for aggregations in [
            vec![agg(Agg::Count, None), agg(Agg::Sum, Some("v"))],
            vec![agg(Agg::Count, None), agg(Agg::Mean, Some("a"))],
        ] {
            let query = group_query(key, aggregations, None);
            let ra = run(&query, &a, Some(ReleasePolicy::default()));
            let rb = run(&query, &b, Some(ReleasePolicy::default()));
            let (pa, wa) = words_u64(ra.result.as_ref().unwrap());
            let (pb, wb) = words_u64(rb.result.as_ref().unwrap());
            assert_eq!(
                pa.iter().filter(|p| **p).count(),
                pb.iter().filter(|p| **p).count()
            );
            assert_ne!(
                released_layout(&wa, pa).unwrap().1,
                released_layout(&wb, pb).unwrap().1,
                "the redactions should differ"
            );
            assert_eq!(ra.stats, rb.stats, "key {key}");
        }
    }
}

/// Extra rounds and bytes the release adds, per party, to a group-by of
/// 10,000 rows in 12 groups; the same for two data sets. Prints them.
#[test]
fn overhead_on_ten_thousand_rows_in_twelve_groups() {
    let (a, b) = same_shape_tables(10_000, 12);
    let release = ReleasePolicy::default();
    for (key, form) in [("k", "small-domain"), ("w", "sorted")] {
        for (aggregations, what) in [
            (
                vec![
                    agg(Agg::Count, None),
                    agg(Agg::Sum, Some("v")),
                    agg(Agg::Mean, Some("v")),
                ],
                "count, sum, mean of a non-null column (1 gated count)",
            ),
            (
                vec![agg(Agg::Count, None), agg(Agg::Mean, Some("a"))],
                "count, mean of a nullable column (2 gated counts)",
            ),
        ] {
            let words: usize = aggregations.iter().map(|a| a.agg.words()).sum();
            let per_group = usize::from(key == "w") + words;
            let query = group_query(key, aggregations, None);
            let plain = run(&query, &a, None);
            let released = run(&query, &a, Some(release));
            let other = run(&query, &b, Some(release));
            let plain_other = run(&query, &b, None);
            assert_eq!(
                released.stats, other.stats,
                "{form}: the cost must not depend on the data"
            );
            assert_eq!(plain.stats, plain_other.stats);
            agrees(
                &released,
                &query,
                &a,
                release,
                (key == "w").then_some(per_group),
            );
            let extra: Vec<(u32, u64, u64)> = (0..3)
                .map(|p| {
                    (
                        released.stats[p].rounds - plain.stats[p].rounds,
                        released.stats[p].bytes_sent - plain.stats[p].bytes_sent,
                        released.stats[p].messages_sent - plain.stats[p].messages_sent,
                    )
                })
                .collect();
            println!(
                "{form} group-by, 10000 rows, 12 groups, {what}: without release {} rounds, \
                 {:?} bytes per party; release adds (rounds, bytes, messages) per party {extra:?}",
                plain.stats[0].rounds,
                plain.stats.iter().map(|s| s.bytes_sent).collect::<Vec<_>>(),
            );
        }
    }
}

// ---------------------------------------------------------------------
// Random tables against the reference.

fn table_strategy(max_rows: usize) -> impl Strategy<Value = PlainTable> {
    prop::collection::vec(
        (
            0i64..4,
            prop_oneof![
                Just(BIG),
                Just(-BIG),
                Just(0i64),
                Just(1i64),
                Just(-1i64),
                -BIG..=BIG
            ],
            prop::option::weighted(0.8, -1000i64..=1000),
        ),
        0..=max_rows,
    )
    .prop_map(|rows| table(&rows))
}

fn release_strategy() -> impl Strategy<Value = ReleasePolicy> {
    (
        0u64..6,
        0u64..12,
        prop::sample::select(vec![1u64, 2, 3, 5, 7, 10]),
    )
        .prop_map(|(min_threshold, redact_at_most, round_to)| ReleasePolicy {
            min_threshold,
            redact_at_most,
            round_to,
        })
}

fn predicate(which: usize) -> Option<Expr> {
    match which {
        0 => None,
        1 => Some(*bin(BinOp::Gt, c("a"), lit(0))),
        2 => Some(*bin(BinOp::Lt, c("v"), lit(0))),
        3 => Some(Expr::Not(Box::new(Expr::IsNull(c("a"))))),
        _ => Some(*bin(BinOp::Ge, c("a"), lit(-300))),
    }
}

fn aggregation(which: usize) -> Aggregation {
    match which {
        0 => agg(Agg::Count, None),
        1 => agg(Agg::Count, Some("a")),
        2 => agg(Agg::Sum, Some("v")),
        3 => agg(Agg::Sum, Some("a")),
        4 => agg(Agg::Mean, Some("a")),
        5 => agg(Agg::Var, Some("a")),
        6 => agg(Agg::Mean, Some("v")),
        _ => agg(Agg::Max, Some("a")),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn aggregates_match_the_reference(
        t in table_strategy(40),
        which in 0usize..5,
        a in 0usize..8,
        release in release_strategy(),
    ) {
        let query = aggregate_query(aggregation(a), predicate(which));
        agree(&query, &t, release, None);
    }

    #[test]
    fn small_domain_group_bys_match_the_reference(
        t in table_strategy(MAX_ROWS / 2),
        which in 0usize..5,
        aggs in prop::collection::vec(0usize..7, 1..4),
        release in release_strategy(),
    ) {
        let query = group_query("k", aggs.into_iter().map(aggregation).collect(), predicate(which));
        agree(&query, &t, release, None);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn sorted_group_bys_match_the_reference(
        t in table_strategy(40),
        which in 0usize..5,
        aggs in prop::collection::vec(0usize..7, 1..3),
        release in release_strategy(),
    ) {
        let aggregations: Vec<Aggregation> = aggs.into_iter().map(aggregation).collect();
        let per_group = 1 + aggregations.iter().map(|a| a.agg.words()).sum::<usize>();
        let query = group_query("w", aggregations, predicate(which));
        agree(&query, &t, release, Some(per_group));
    }
}
