//! `Query::decode` on hostile bytes (plans arrive from clients inside call
//! headers and inside approved scripts): arbitrary bytes and edited valid
//! encodings never panic, whatever decodes is canonical, nesting is
//! bounded before it can exhaust a stack, and forged length prefixes are
//! refused without allocating what they announce.

use proptest::prelude::*;
use triad_plan::{
    Agg, Aggregation, BinOp, EXPR_DEPTH_MAX, Expr, Frame, How, Output, PLAN_VERSION, PlanError,
    Query,
};

/// One edit of an encoding: what a fuzzer does to a valid input to reach
/// past the first field.
#[path = "../../../testkit/mutate.rs"]
mod mutate;
use mutate::{apply, edit};

fn name() -> impl Strategy<Value = String> {
    "[a-z_]{1,8}"
}

fn expr() -> impl Strategy<Value = Expr> {
    let leaf = prop_oneof![
        name().prop_map(Expr::Column),
        (any::<i64>(), 0u32..6).prop_map(|(value, scale)| Expr::Literal { value, scale }),
    ];
    leaf.prop_recursive(4, 24, 3, |inner| {
        prop_oneof![
            (0usize..11, inner.clone(), inner.clone()).prop_map(|(op, left, right)| {
                let ops = [
                    BinOp::Add,
                    BinOp::Sub,
                    BinOp::Mul,
                    BinOp::Eq,
                    BinOp::Ne,
                    BinOp::Lt,
                    BinOp::Le,
                    BinOp::Gt,
                    BinOp::Ge,
                    BinOp::And,
                    BinOp::Or,
                ];
                Expr::Binary {
                    op: ops[op],
                    left: Box::new(left),
                    right: Box::new(right),
                }
            }),
            inner.clone().prop_map(|e| Expr::Not(Box::new(e))),
            inner.clone().prop_map(|e| Expr::IsNull(Box::new(e))),
            (inner, prop::collection::vec(any::<i64>(), 0..4), 0u32..4).prop_map(
                |(e, values, scale)| Expr::IsIn {
                    expr: Box::new(e),
                    values,
                    scale,
                }
            ),
        ]
    })
}

fn aggregation() -> impl Strategy<Value = Aggregation> {
    (0usize..6, prop::option::of(name())).prop_map(|(agg, column)| Aggregation {
        agg: [
            Agg::Sum,
            Agg::Count,
            Agg::Mean,
            Agg::Var,
            Agg::Min,
            Agg::Max,
        ][agg],
        column,
    })
}

/// Plans of every frame and output kind (not necessarily well typed: the
/// decoder does not type them).
fn query() -> impl Strategy<Value = Query> {
    let frame = prop_oneof![
        "[0-9a-f]{64}".prop_map(|handle| Frame::Table { handle }),
        (any::<u32>(), expr(), any::<Option<u64>>()).prop_map(|(input, predicate, threshold)| {
            Frame::Filter {
                input,
                predicate,
                threshold,
            }
        }),
        (
            any::<u32>(),
            any::<u32>(),
            any::<bool>(),
            prop::collection::vec(name(), 0..3),
            prop::collection::vec(name(), 0..3),
        )
            .prop_map(|(left, right, inner, left_on, right_on)| Frame::Merge {
                left,
                right,
                how: if inner { How::Inner } else { How::Left },
                left_on,
                right_on,
                suffixes: ["_l".into(), "_r".into()],
            }),
        (any::<u32>(), name(), expr()).prop_map(|(input, name, expr)| Frame::WithColumn {
            input,
            name,
            expr
        }),
        (any::<u32>(), prop::collection::vec(name(), 0..4))
            .prop_map(|(input, columns)| Frame::Select { input, columns }),
    ];
    let output = prop_oneof![
        (any::<u32>(), aggregation(), any::<Option<u64>>()).prop_map(
            |(frame, aggregation, threshold)| Output::Aggregate {
                frame,
                aggregation,
                threshold,
            }
        ),
        (
            any::<u32>(),
            prop::collection::vec(name(), 0..3),
            prop::collection::vec(aggregation(), 0..3),
            any::<Option<u64>>(),
        )
            .prop_map(|(frame, keys, aggregations, threshold)| Output::GroupBy {
                frame,
                keys,
                aggregations,
                threshold,
            }),
        any::<u32>().prop_map(|frame| Output::Store { frame }),
    ];
    (prop::collection::vec(frame, 0..4), output)
        .prop_map(|(frames, output)| Query::new(frames, output))
}

/// `Not(Not(... Column("c")))` with `depth` negations.
fn negations(depth: usize) -> Expr {
    let mut expr = Expr::Column("c".into());
    for _ in 0..depth {
        expr = Expr::Not(Box::new(expr));
    }
    expr
}

fn filter_plan(predicate: Expr) -> Query {
    Query::new(
        vec![
            Frame::Table {
                handle: "ab".repeat(32),
            },
            Frame::Filter {
                input: 0,
                predicate,
                threshold: None,
            },
        ],
        Output::Store { frame: 1 },
    )
}

/// Runs `f` on a thread with `stack_bytes` of stack: a stack overflow
/// aborts the test process, so the bound shows as a crash if it fails.
fn on_stack<T: Send>(stack_bytes: usize, f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|scope| {
        std::thread::Builder::new()
            .stack_size(stack_bytes)
            .spawn_scoped(scope, f)
            .expect("spawn")
            .join()
            .expect("no panic")
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    #[test]
    fn arbitrary_bytes_decode_to_an_error_or_a_canonical_plan(
        bytes in prop::collection::vec(any::<u8>(), 0..2000),
    ) {
        if let Ok(query) = Query::decode(&bytes) {
            prop_assert_eq!(query.encode(), bytes);
        }
    }

    #[test]
    fn edited_plans_decode_to_an_error_or_a_canonical_plan(
        query in query(),
        edits in prop::collection::vec(edit(), 1..5),
    ) {
        let mut bytes = query.encode();
        prop_assert_eq!(Query::decode(&bytes), Ok(query));
        apply(&mut bytes, &edits);
        if let Ok(decoded) = Query::decode(&bytes) {
            prop_assert_eq!(decoded.encode(), bytes);
        }
    }
}

#[test]
fn expression_nesting_is_bounded_on_decode() {
    let deepest = filter_plan(negations(EXPR_DEPTH_MAX));
    assert_eq!(Query::decode(&deepest.encode()), Ok(deepest));
    let error = Query::decode(&filter_plan(negations(EXPR_DEPTH_MAX + 1)).encode()).unwrap_err();
    assert!(
        matches!(&error, PlanError::Malformed(m) if m.contains("nested")),
        "{error}"
    );
}

#[test]
fn a_megabyte_of_negations_is_refused_on_a_small_stack() {
    // Version 1, two frames: a table with an empty handle, a filter of
    // frame 0 whose predicate follows.
    let prefix = [PLAN_VERSION as u8, 2, 0, 0, 1, 0];
    // Three negations (variant 3) of column "", no threshold, store frame 1.
    let shallow = [&prefix[..], &[3, 3, 3, 0, 0, 0, 2, 1]].concat();
    let mut expected = filter_plan(negations(3));
    expected.frames[0] = Frame::Table {
        handle: String::new(),
    };
    if let Frame::Filter { predicate, .. } = &mut expected.frames[1] {
        *predicate = Expr::Not(Box::new(Expr::Not(Box::new(Expr::Not(Box::new(
            Expr::Column(String::new()),
        ))))));
    }
    assert_eq!(Query::decode(&shallow), Ok(expected));
    // Negations for as long as the byte limit allows: a million levels if
    // nothing stopped the decoder.
    let mut bytes = prefix.to_vec();
    bytes.resize(1 << 20, 3);
    // 256 KiB is an eighth of a tokio worker's default stack.
    let result = on_stack(256 << 10, move || Query::decode(&bytes));
    assert!(
        matches!(&result, Err(PlanError::Malformed(m)) if m.contains("nested")),
        "{result:?}"
    );
}

#[test]
fn the_deepest_plan_decodes_on_a_small_stack() {
    let bytes = filter_plan(negations(EXPR_DEPTH_MAX)).encode();
    let decoded = on_stack(256 << 10, move || Query::decode(&bytes).map(|_| ()));
    assert_eq!(decoded, Ok(()));
}

#[test]
fn forged_length_prefixes_are_refused_before_allocation() {
    // version 1, then a frame count of 2^60 (varint: 0xfd and 8 bytes).
    let mut frames = vec![PLAN_VERSION as u8, 0xfd];
    frames.extend_from_slice(&(1u64 << 60).to_le_bytes());
    // One table frame whose handle claims 2^60 bytes.
    let mut handle = vec![PLAN_VERSION as u8, 1, 0, 0xfd];
    handle.extend_from_slice(&(1u64 << 60).to_le_bytes());
    for bytes in [frames, handle] {
        let started = std::time::Instant::now();
        assert!(matches!(
            Query::decode(&bytes),
            Err(PlanError::Malformed(_))
        ));
        assert!(started.elapsed() < std::time::Duration::from_secs(1));
    }
    // Over the byte limit: refused before decoding.
    assert!(Query::decode(&vec![0; (1 << 20) + 1]).is_err());
}
