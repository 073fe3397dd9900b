//! Every operator against the plaintext reference on random tables.

mod common;

use common::{
    PlainTable, Result3, bin, c, column, info, lit, reference, run, run_with, sorted_groups,
};
use proptest::prelude::*;
use triad_plan::{Agg, Aggregation, BinOp, Expr, Frame, How, Output, Query, Ty};
use triad_ring::SortAlgorithm;

fn predicate(which: usize) -> Expr {
    *match which {
        0 => bin(BinOp::Eq, c("k"), lit(1)),
        1 => bin(
            BinOp::And,
            bin(BinOp::Gt, c("a"), lit(0)),
            bin(BinOp::Lt, c("k"), lit(3)),
        ),
        2 => bin(BinOp::Lt, c("b"), lit(0)),
        3 => bin(
            BinOp::Or,
            Box::new(Expr::Not(bin(BinOp::Le, c("a"), lit(3)))),
            c("c"),
        ),
        4 => Box::new(Expr::IsNull(c("a"))),
        5 => Box::new(Expr::IsIn {
            expr: c("k"),
            values: vec![0, 2],
            scale: 0,
        }),
        6 => bin(
            BinOp::Ge,
            bin(BinOp::Mul, bin(BinOp::Add, c("a"), c("k")), lit(2)),
            lit(4),
        ),
        7 => bin(BinOp::Ne, c("b"), lit(i64::MIN)),
        8 => c("c"),
        9 => bin(BinOp::And, c("c"), bin(BinOp::Ge, c("a"), c("k"))),
        _ => bin(
            BinOp::Lt,
            c("f"),
            Box::new(Expr::Literal { value: 5, scale: 1 }),
        ),
    }
}

const EDGES: [i64; 6] = [0, -1, 1, i64::MIN, i64::MAX, 42];

fn table_strategy(max_rows: usize) -> impl Strategy<Value = PlainTable> {
    (0..=max_rows).prop_flat_map(|n| {
        (
            prop::collection::vec(0i64..4, n),
            prop::collection::vec(prop::option::weighted(0.8, -1000i64..=1000), n),
            prop::collection::vec(
                prop_oneof![prop::sample::select(EDGES.to_vec()), any::<i64>()],
                n,
            ),
            prop::collection::vec(prop::option::weighted(0.8, 0i64..=1), n),
            prop::collection::vec(-10_000i64..=10_000, n),
        )
            .prop_map(|(k, a, b, cc, f)| PlainTable {
                columns: vec![
                    column(
                        info("k", Ty::Int, 0, 3, false),
                        k.into_iter().map(Some).collect(),
                    ),
                    column(info("a", Ty::Int, -1000, 1000, true), a),
                    column(
                        info("b", Ty::Int, i64::MIN as i128, i64::MAX as i128, false),
                        b.into_iter().map(Some).collect(),
                    ),
                    column(info("c", Ty::Bool, 0, 1, true), cc),
                    column(
                        info("f", Ty::Fixed(2), -10_000, 10_000, false),
                        f.into_iter().map(Some).collect(),
                    ),
                ],
            })
    })
}

fn aggregation(which: usize) -> Aggregation {
    let (agg, column) = match which {
        0 => (Agg::Sum, Some("a")),
        1 => (Agg::Count, None),
        2 => (Agg::Count, Some("a")),
        3 => (Agg::Mean, Some("a")),
        4 => (Agg::Var, Some("a")),
        5 => (Agg::Min, Some("a")),
        6 => (Agg::Max, Some("b")),
        7 => (Agg::Min, Some("b")),
        _ => (Agg::Sum, Some("f")),
    };
    Aggregation {
        agg,
        column: column.map(String::from),
    }
}

fn agree(query: &Query, tables: &[(&str, &PlainTable)], min_threshold: u64) {
    let got = run(query, tables, min_threshold).map(|(r, _, _)| r);
    let want = reference(query, tables, min_threshold);
    assert_eq!(got, want, "query {query:?}");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn filter_then_aggregate(
        t in table_strategy(40),
        which in 0usize..11,
        agg in 0usize..9,
        threshold in prop::option::of(0u64..8),
        gate_on_filter in any::<bool>(),
    ) {
        let (filter_threshold, agg_threshold) = if gate_on_filter { (threshold, None) } else { (None, threshold) };
        let query = Query::new(
            vec![
                Frame::Table { handle: "t".into() },
                Frame::Filter { input: 0, predicate: predicate(which), threshold: filter_threshold },
            ],
            Output::Aggregate { frame: 1, aggregation: aggregation(agg), threshold: agg_threshold },
        );
        agree(&query, &[("t", &t)], 1);
    }

    #[test]
    fn with_column_and_store(t in table_strategy(20), which in 0usize..11) {
        let query = Query::new(
            vec![
                Frame::Table { handle: "t".into() },
                Frame::WithColumn {
                    input: 0,
                    name: "z".into(),
                    expr: *bin(BinOp::Sub, bin(BinOp::Mul, c("a"), c("k")), c("f")),
                },
                Frame::WithColumn { input: 1, name: "p".into(), expr: predicate(which) },
                Frame::Filter { input: 2, predicate: predicate((which + 3) % 11), threshold: None },
                Frame::Select { input: 3, columns: vec!["z".into(), "p".into(), "k".into()] },
            ],
            Output::Store { frame: 4 },
        );
        agree(&query, &[("t", &t)], 1);
    }

    #[test]
    fn group_by_small_domain(t in table_strategy(40), threshold in 0u64..5, which in 0usize..11) {
        let query = Query::new(
            vec![
                Frame::Table { handle: "t".into() },
                Frame::Filter { input: 0, predicate: predicate(which), threshold: None },
            ],
            Output::GroupBy {
                frame: 1,
                keys: vec!["k".into(), "c2".into()].into_iter().take(1).collect(),
                aggregations: vec![aggregation(0), aggregation(1), aggregation(3), aggregation(4)],
                threshold: Some(threshold),
            },
        );
        agree(&query, &[("t", &t)], 1);
    }

    #[test]
    fn group_by_sorted(t in table_strategy(30), threshold in 0u64..4) {
        // `f` spans 20001 values: too many to enumerate, so the sort runs.
        let query = Query::new(
            vec![
                Frame::Table { handle: "t".into() },
                Frame::WithColumn { input: 0, name: "g".into(), expr: *bin(BinOp::Sub, c("f"), c("f")) },
                Frame::WithColumn { input: 1, name: "g".into(), expr: *bin(BinOp::Add, c("g"), bin(BinOp::Mul, c("k"), lit(1000))) },
            ],
            Output::GroupBy {
                frame: 2,
                keys: vec!["g".into()],
                aggregations: vec![aggregation(0), aggregation(1)],
                threshold: Some(threshold),
            },
        );
        let got = run(&query, &[("t", &t)], 1).map(|(r, _, _)| r).unwrap();
        let want = reference(&query, &[("t", &t)], 1).unwrap();
        prop_assert_eq!(sorted_groups(&got, 1, 2), sorted_groups(&want, 1, 2));
    }
}

fn keyed_strategy(
    max_rows: usize,
    unique: bool,
    value: &'static str,
) -> impl Strategy<Value = PlainTable> {
    (0..=max_rows).prop_flat_map(move |n| {
        (
            prop::collection::vec((0i64..4, prop::option::weighted(0.9, -1i64..=1)), n),
            prop::collection::vec(prop::option::weighted(0.85, -50i64..=50), n),
            prop::collection::vec(0i64..10, n),
        )
            .prop_map(move |(mut keys, x, y)| {
                if unique {
                    let mut seen = std::collections::BTreeSet::new();
                    keys.retain(|k| seen.insert(*k));
                }
                let n = keys.len();
                PlainTable {
                    columns: vec![
                        column(
                            info("k1", Ty::Int, 0, 3, false),
                            keys.iter().map(|k| Some(k.0)).collect(),
                        ),
                        column(
                            info("k2", Ty::Int, -1, 1, true),
                            keys.iter().map(|k| k.1).collect(),
                        ),
                        column(info("x", Ty::Int, -50, 50, true), x[..n].to_vec()),
                        column(
                            info(value, Ty::Int, 0, 9, false),
                            y[..n].iter().map(|v| Some(*v)).collect(),
                        ),
                    ],
                }
            })
    })
}

fn merge_query(how: How, two_keys: bool, filter_left: bool, output: Output) -> Query {
    let keys: Vec<String> = if two_keys {
        vec!["k1".into(), "k2".into()]
    } else {
        vec!["k1".into()]
    };
    let mut frames = vec![
        Frame::Table { handle: "l".into() },
        Frame::Table { handle: "r".into() },
    ];
    let left = if filter_left {
        frames.push(Frame::Filter {
            input: 0,
            predicate: *bin(BinOp::Gt, c("x"), lit(0)),
            threshold: None,
        });
        2
    } else {
        0
    };
    frames.push(Frame::Merge {
        left,
        right: 1,
        how,
        left_on: keys.clone(),
        right_on: keys,
        suffixes: ["_x".into(), "_y".into()],
    });
    let merged = frames.len() as u32 - 1;
    let output = match output {
        Output::Store { .. } => Output::Store { frame: merged },
        Output::Aggregate {
            aggregation,
            threshold,
            ..
        } => Output::Aggregate {
            frame: merged,
            aggregation,
            threshold,
        },
        other => other,
    };
    Query::new(frames, output)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 40, ..ProptestConfig::default() })]

    #[test]
    fn merge_matches_reference(
        l in keyed_strategy(12, false, "u"),
        r in keyed_strategy(12, false, "v"),
        left_unique in any::<bool>(),
        how_left in any::<bool>(),
        two_keys in any::<bool>(),
        filter_left in any::<bool>(),
    ) {
        // Make at least one side unique most of the time; duplicates on
        // both sides must be refused.
        let dedupe = |t: &PlainTable, keys: usize| -> PlainTable {
            let mut seen = std::collections::BTreeSet::new();
            let rows: Vec<usize> = (0..t.rows()).filter(|i| {
                let k: Vec<Option<i64>> = t.columns[..keys].iter().map(|c| c.values[*i]).collect();
                k.iter().any(Option::is_none) || seen.insert(k)
            }).collect();
            PlainTable { columns: t.columns.iter().map(|c| common::PlainColumn { info: c.info.clone(), values: rows.iter().map(|i| c.values[*i]).collect() }).collect() }
        };
        let keys = if two_keys { 2 } else { 1 };
        let (l, r) = if left_unique { (dedupe(&l, keys), r) } else { (l, dedupe(&r, keys)) };
        let how = if how_left { How::Left } else { How::Inner };
        let query = merge_query(how, two_keys, filter_left, Output::Store { frame: 0 });
        agree(&query, &[("l", &l), ("r", &r)], 1);
    }

    #[test]
    fn merge_duplicates_anywhere(
        l in keyed_strategy(10, false, "u"),
        r in keyed_strategy(10, false, "v"),
        how_left in any::<bool>(),
    ) {
        let how = if how_left { How::Left } else { How::Inner };
        let query = merge_query(how, false, true, Output::Aggregate {
            frame: 0,
            aggregation: Aggregation { agg: Agg::Sum, column: Some("v".into()) },
            threshold: Some(2),
        });
        agree(&query, &[("l", &l), ("r", &r)], 1);
    }
}

fn small(keys: &[(i64, i64)], value: &str, values: &[i64]) -> PlainTable {
    PlainTable {
        columns: vec![
            column(
                info("k1", Ty::Int, 0, 3, false),
                keys.iter().map(|k| Some(k.0)).collect(),
            ),
            column(
                info("k2", Ty::Int, -1, 1, true),
                keys.iter().map(|k| Some(k.1)).collect(),
            ),
            column(
                info("x", Ty::Int, -50, 50, true),
                keys.iter().map(|_| Some(1)).collect(),
            ),
            column(
                info(value, Ty::Int, 0, 9, false),
                values.iter().map(|v| Some(*v)).collect(),
            ),
        ],
    }
}

#[test]
fn empty_and_single_row_tables() {
    let empty = small(&[], "u", &[]);
    let one = small(&[(1, 0)], "v", &[3]);
    for how in [How::Inner, How::Left] {
        for (l, r) in [
            (&empty, &one),
            (&one, &empty),
            (&empty, &empty),
            (&one, &one),
        ] {
            let query = merge_query(how, true, false, Output::Store { frame: 0 });
            agree(&query, &[("l", l), ("r", r)], 1);
        }
    }
}

#[test]
fn duplicates_only_among_filtered_out_rows_are_fine() {
    // Left has key 1 twice, but one of them has x <= 0 and is filtered
    // out; right has key 1 twice too.
    let mut l = small(&[(1, 0), (1, 0), (2, 0)], "u", &[1, 2, 3]);
    l.columns[2].values = vec![Some(5), Some(-5), Some(5)];
    let r = small(&[(1, 0), (1, 0), (2, 0)], "v", &[4, 5, 6]);
    let query = merge_query(How::Inner, true, true, Output::Store { frame: 0 });
    agree(&query, &[("l", &l), ("r", &r)], 1);
    let (result, _, _) = run(&query, &[("l", &l), ("r", &r)], 1).unwrap();
    let Result3::Rows(rows) = result else {
        panic!()
    };
    assert_eq!(rows.len(), 3);
    // Without the filter both sides have duplicates: refused.
    let query = merge_query(How::Inner, true, false, Output::Store { frame: 0 });
    let err = run(&query, &[("l", &l), ("r", &r)], 1).unwrap_err();
    assert!(err.contains("not unique"), "{err}");
}

#[test]
fn threshold_exactly_at_n_and_below() {
    let t = small(&[(1, 0), (1, 1), (1, -1), (2, 0)], "v", &[1, 2, 3, 4]);
    for (threshold, passes) in [(3, true), (4, false)] {
        let query = Query::new(
            vec![
                Frame::Table { handle: "t".into() },
                Frame::Filter {
                    input: 0,
                    predicate: *bin(BinOp::Eq, c("k1"), lit(1)),
                    threshold: Some(threshold),
                },
            ],
            Output::Aggregate {
                frame: 1,
                aggregation: Aggregation {
                    agg: Agg::Sum,
                    column: Some("v".into()),
                },
                threshold: None,
            },
        );
        let got = run(&query, &[("t", &t)], 1);
        if passes {
            assert_eq!(
                got.unwrap().0,
                Result3::Answer {
                    passed: vec![true],
                    words: vec![6]
                }
            );
        } else {
            assert!(got.unwrap_err().contains("threshold not met"));
        }
    }
    // The deployment minimum wins over a lower threshold in the query.
    let query = Query::new(
        vec![Frame::Table { handle: "t".into() }],
        Output::Aggregate {
            frame: 0,
            aggregation: Aggregation {
                agg: Agg::Count,
                column: None,
            },
            threshold: Some(1),
        },
    );
    assert!(
        run(&query, &[("t", &t)], 5)
            .unwrap_err()
            .contains("at least 5")
    );
}

#[test]
fn gate_counts_non_null_values_of_the_aggregated_column() {
    let mut t = small(&[(1, 0), (1, 1), (1, -1)], "v", &[1, 2, 3]);
    t.columns[2].values = vec![None, None, Some(7)];
    let query = Query::new(
        vec![
            Frame::Table { handle: "t".into() },
            Frame::Filter {
                input: 0,
                predicate: *bin(BinOp::Eq, c("k1"), lit(1)),
                threshold: Some(2),
            },
        ],
        Output::Aggregate {
            frame: 1,
            aggregation: Aggregation {
                agg: Agg::Sum,
                column: Some("x".into()),
            },
            threshold: None,
        },
    );
    assert!(
        run(&query, &[("t", &t)], 1)
            .unwrap_err()
            .contains("threshold not met")
    );
}

#[test]
fn sums_that_could_wrap_are_refused_naming_the_column() {
    let t = PlainTable {
        columns: vec![column(
            info("big", Ty::Int, 0, i64::MAX as i128, false),
            vec![Some(1), Some(2)],
        )],
    };
    let query = Query::new(
        vec![Frame::Table { handle: "t".into() }],
        Output::Aggregate {
            frame: 0,
            aggregation: Aggregation {
                agg: Agg::Sum,
                column: Some("big".into()),
            },
            threshold: None,
        },
    );
    let err = run(&query, &[("t", &t)], 1).unwrap_err();
    assert!(err.contains("\"big\"") && err.contains("overflow"), "{err}");
}

#[test]
fn the_nodes_view_does_not_depend_on_how_many_rows_match() {
    // Same sizes and uniqueness, different numbers of matches and of
    // filtered rows: same bytes and rounds.
    let l1 = small(&[(0, 0), (1, 0), (2, 0), (3, 0)], "u", &[1, 1, 1, 1]);
    let r1 = small(&[(0, 0), (1, 0), (2, 0), (3, 0)], "v", &[1, 1, 1, 1]);
    let l2 = small(&[(0, 0), (1, 1), (2, -1), (3, 1)], "u", &[1, 1, 1, 1]);
    let mut r2 = small(&[(3, -1), (2, 1), (1, 1), (0, 1)], "v", &[9, 9, 9, 9]);
    r2.columns[2].values = vec![Some(-3), None, Some(3), Some(-3)];
    let query = merge_query(
        How::Inner,
        true,
        true,
        Output::Aggregate {
            frame: 0,
            aggregation: Aggregation {
                agg: Agg::Count,
                column: None,
            },
            threshold: Some(0),
        },
    );
    // Radix sort: quicksort's rounds vary with its random shuffle.
    let (a1, b1, r1r) =
        run_with(&query, &[("l", &l1), ("r", &r1)], 0, SortAlgorithm::Radix).unwrap();
    let (a2, b2, r2r) =
        run_with(&query, &[("l", &l2), ("r", &r2)], 0, SortAlgorithm::Radix).unwrap();
    assert_ne!(a1, a2, "the two cases should differ in their matches");
    assert_eq!((b1, r1r), (b2, r2r));
}

#[test]
fn group_by_views_do_not_depend_on_group_sizes() {
    // Same sizes, same gate outcomes, different counts and sums per group:
    // same bytes and rounds, for both group-by forms.
    let a = small(
        &[(0, 0), (0, 1), (1, 0), (2, 0), (3, 1), (3, 0)],
        "v",
        &[1, 2, 3, 4, 5, 6],
    );
    let b = small(
        &[(1, 0), (1, 1), (1, -1), (2, 0), (3, 1), (0, 0)],
        "v",
        &[9, 8, 7, 6, 5, 4],
    );
    // `g` spans 9004 values: grouped by sorting, not by enumeration.
    for (keys, sorted) in [
        (vec!["k1".to_string()], false),
        (vec!["g".to_string()], true),
    ] {
        let query = Query::new(
            vec![
                Frame::Table { handle: "t".into() },
                Frame::WithColumn {
                    input: 0,
                    name: "g".into(),
                    expr: *bin(BinOp::Add, bin(BinOp::Mul, c("v"), lit(1000)), c("k1")),
                },
                Frame::Filter {
                    input: 1,
                    predicate: *bin(BinOp::Ge, c("x"), lit(0)),
                    threshold: None,
                },
            ],
            Output::GroupBy {
                frame: 2,
                keys: keys.clone(),
                aggregations: vec![Aggregation {
                    agg: Agg::Sum,
                    column: Some("x".into()),
                }],
                threshold: Some(1),
            },
        );
        let (ra, ba, rounds_a) = run_with(&query, &[("t", &a)], 1, SortAlgorithm::Radix).unwrap();
        let (rb, bb, rounds_b) = run_with(&query, &[("t", &b)], 1, SortAlgorithm::Radix).unwrap();
        let passed = |r: &Result3| match r {
            Result3::Answer { passed, .. } => passed.iter().filter(|p| **p).count(),
            Result3::Rows(_) => panic!("not an answer"),
        };
        // The data sets are chosen so that as many groups pass in both.
        assert_eq!(passed(&ra), passed(&rb), "keys {keys:?}");
        assert_ne!(
            ra, rb,
            "the groups' contents should differ (sorted: {sorted})"
        );
        assert_eq!((ba, rounds_a), (bb, rounds_b), "keys {keys:?}");
    }
}
