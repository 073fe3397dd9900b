//! What one node that tampers with its own shares can do to a threshold
//! gate, and what catches it. The security model is semi-honest
//! (docs/security.md): these tests pin down, on small tables, how far an
//! actively deviating node gets, so that the docs say no more and no less.
//!
//! The tampering node adds an offset to its copy of one component of one
//! stored element (a filter column, a summed column, or the stored row
//! mask) before the plan runs, then follows the protocol honestly. Every
//! other part is the real executor. The requester's side is mirrored from
//! `Client::query_reply`/`Client::combine` (client/src/remote.rs): any node
//! refusing means `ThresholdNotMet`; the gate outcomes must agree; each
//! result component must be reported equally by its two holders.

use std::collections::BTreeSet;

use triad_exec::{ExecError, Outcome, Policy, SecretColumn, SecretTable, TableSource, execute};
use triad_plan::{
    Agg, Aggregation, BinOp, ColumnInfo, Expr, Frame, Output, Query, TableSchema, Ty, check,
};
use triad_ring::outside::deal_with_seeds;
use triad_ring::testing::run3;
use triad_ring::{Arith, SessionConfig, SortAlgorithm};

/// A stored table in the clear: non-null integer columns and, for a table
/// an earlier query stored, its 0/1 row mask.
struct Plain {
    columns: Vec<(&'static str, Vec<i64>)>,
    mask: Option<Vec<u64>>,
}

impl Plain {
    fn rows(&self) -> usize {
        self.columns[0].1.len()
    }

    fn info(name: &str) -> ColumnInfo {
        ColumnInfo {
            name: name.into(),
            ty: Ty::Int,
            min: 0,
            max: 1000,
            nullable: false,
        }
    }

    fn schema(&self) -> TableSchema {
        TableSchema {
            rows: self.rows() as u64,
            columns: self.columns.iter().map(|(n, _)| Plain::info(n)).collect(),
        }
    }

    /// The three parties' shares, dealt from fixed seeds so every run sees
    /// the same components.
    fn deal(&self) -> [SecretTable; 3] {
        let shares = |values: &[u64], which: u8| -> [Arith; 3] {
            deal_with_seeds(values, [2 * which + 1; 32], [2 * which + 2; 32])
                .map(|d| d.into_shares().expect("dealt lengths match"))
        };
        let mut parties: [Vec<SecretColumn>; 3] = Default::default();
        for (k, (name, values)) in self.columns.iter().enumerate() {
            let raw: Vec<u64> = values.iter().map(|v| *v as u64).collect();
            let dealt = shares(&raw, k as u8);
            for (p, share) in dealt.into_iter().enumerate() {
                parties[p].push(SecretColumn {
                    info: Plain::info(name),
                    limbs: vec![share],
                    valid: None,
                });
            }
        }
        let mask = self.mask.as_ref().map(|m| shares(m, 100));
        let mut p = 0;
        parties.map(|columns| {
            let table = SecretTable {
                rows: self.rows(),
                columns,
                mask: mask.as_ref().map(|m| m[p].clone()),
            };
            p += 1;
            table
        })
    }
}

struct Source(SecretTable);

impl TableSource for Source {
    fn load(&mut self, _: &str, columns: &BTreeSet<String>) -> Result<SecretTable, ExecError> {
        let mut table = self.0.clone();
        table.columns.retain(|c| columns.contains(&c.info.name));
        Ok(table)
    }
}

/// Which stored element the tampering node changes.
#[derive(Clone, Copy, Debug)]
enum Target {
    Column(&'static str),
    Mask,
}

/// Which of its two copies: component `i` (`Own`) or `i + 1` (`Next`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Held {
    Own,
    Next,
}

const BOTH: [Held; 2] = [Held::Own, Held::Next];

/// Adds `offset` to `party`'s copy `held` of `target` at `row`: the
/// component it changes is `party` (own) or `party + 1` (next).
fn add(table: &mut SecretTable, target: Target, held: Held, row: usize, offset: u64) {
    let shares = match target {
        Target::Column(name) => {
            let c = table
                .columns
                .iter_mut()
                .find(|c| c.info.name == name)
                .expect("the column is stored");
            &mut c.limbs[0]
        }
        Target::Mask => table.mask.as_mut().expect("the table has a mask"),
    };
    let (mut own, mut next) = shares.clone().into_components();
    let v = if held == Held::Own {
        &mut own
    } else {
        &mut next
    };
    v[row] = v[row].wrapping_add(offset);
    *shares = Arith::from_components(own, next).expect("lengths unchanged");
}

/// One node's outcome.
#[derive(Debug, PartialEq, Eq)]
enum Node {
    Passed,
    NotMet,
    /// Any other error (a peer left mid-protocol).
    Failed,
}

/// What the requester ends up with.
#[derive(Debug, PartialEq, Eq)]
enum Seen {
    /// A node refused: the client reports `ThresholdNotMet`.
    ThresholdNotMet,
    /// A node failed otherwise: the client reports the refusal.
    Failed,
    /// The result components do not fit: `bad` lists the components whose
    /// two holders disagree; `blamed` is the node holding both copies
    /// that disagree when there are exactly two such components.
    Caught {
        bad: Vec<usize>,
        blamed: Option<usize>,
    },
    /// Every check passed; these are the words the client reads.
    Opened(Vec<i64>),
}

struct Observed {
    nodes: [Node; 3],
    seen: Seen,
}

/// Runs `query` on `table` with `tamper` applied to each party's shares
/// (it gets the party index and decides what, if anything, to change).
fn run_tampered(
    query: &Query,
    table: &Plain,
    tamper: impl Fn(usize, &mut SecretTable) + Sync,
) -> Observed {
    let schema = table.schema();
    let checked = check(query, &|_| Some(schema.clone())).expect("the plan checks");
    let dealt = table.deal();
    let policy = Policy {
        min_threshold: 1,
        sort: SortAlgorithm::Quick,
        release: None,
    };
    let results = run3(7, SessionConfig::default(), |s| {
        let party = s.id().index();
        let mut shares = dealt[party].clone();
        tamper(party, &mut shares);
        let outcome = execute(s, &checked, &mut Source(shares), &policy);
        Ok(match outcome {
            Ok(Outcome::Answer(a)) => {
                assert_eq!(a.passed, vec![true], "one gate, and it passed");
                let (own, next) = a.words.into_components();
                (Node::Passed, Some((own, next)))
            }
            Ok(Outcome::Table(_)) => panic!("an aggregate query stores no table"),
            Err(ExecError::ThresholdNotMet { .. }) => (Node::NotMet, None),
            Err(_) => (Node::Failed, None),
        })
    });
    let [a, b, c] = results.map(|r| r.expect("the session starts"));
    let nodes = [a.0, b.0, c.0];
    let seen = if nodes.contains(&Node::NotMet) {
        Seen::ThresholdNotMet
    } else if nodes.contains(&Node::Failed) {
        Seen::Failed
    } else {
        let words = [a.1, b.1, c.1].map(|w| w.expect("a passing node sends its words"));
        combine(&words)
    };
    Observed { nodes, seen }
}

/// The requester's check (`Client::combine`): component `j` is node `j`'s
/// own and node `j - 1`'s next; both must agree before the words are added.
fn combine(words: &[(Vec<u64>, Vec<u64>); 3]) -> Seen {
    let bad: Vec<usize> = (0..3)
        .filter(|&j| words[j].0 != words[(j + 2) % 3].1)
        .collect();
    let holders = |j: usize| [j, (j + 2) % 3];
    match bad[..] {
        [] => Seen::Opened(
            (0..words[0].0.len())
                .map(|e| {
                    words[0].0[e]
                        .wrapping_add(words[1].0[e])
                        .wrapping_add(words[2].0[e]) as i64
                })
                .collect(),
        ),
        [x, y] => Seen::Caught {
            bad: bad.clone(),
            blamed: holders(x).into_iter().find(|n| holders(y).contains(n)),
        },
        _ => Seen::Caught { bad, blamed: None },
    }
}

fn col(name: &str) -> Box<Expr> {
    Box::new(Expr::Column(name.into()))
}

fn lit(value: i64) -> Box<Expr> {
    Box::new(Expr::Literal { value, scale: 0 })
}

/// `agg(b)` (or a plain count) over the rows of `t` with `k > 10`, or over
/// the stored selection when `filter` is false, behind `threshold`.
fn gated(agg: Agg, filter: bool, threshold: u64) -> Query {
    let mut frames = vec![Frame::Table { handle: "t".into() }];
    if filter {
        frames.push(Frame::Filter {
            input: 0,
            predicate: Expr::Binary {
                op: BinOp::Gt,
                left: col("k"),
                right: lit(10),
            },
            threshold: None,
        });
    }
    Query::new(
        frames.clone(),
        Output::Aggregate {
            frame: frames.len() as u32 - 1,
            aggregation: Aggregation {
                agg,
                column: (agg != Agg::Count).then(|| "b".into()),
            },
            threshold: Some(threshold),
        },
    )
}

/// Five rows, two with `k > 10` (rows 1 and 2).
fn people() -> Plain {
    Plain {
        columns: vec![
            ("k", vec![5, 20, 30, 7, 8]),
            ("b", vec![100, 200, 300, 400, 500]),
        ],
        mask: None,
    }
}

/// The same rows as a stored selection: rows 0 and 1 selected.
fn selection() -> Plain {
    Plain {
        mask: Some(vec![1, 1, 0, 0, 0]),
        ..people()
    }
}

/// `sum(b)` over every row of `t`: no filter, no mask, so the sum is
/// computed locally from the stored components.
fn plain_sum() -> Query {
    Query::new(
        vec![Frame::Table { handle: "t".into() }],
        Output::Aggregate {
            frame: 0,
            aggregation: Aggregation {
                agg: Agg::Sum,
                column: Some("b".into()),
            },
            threshold: Some(3),
        },
    )
}

/// A tampering of `party`'s shares only.
fn by(
    party: usize,
    target: Target,
    held: Held,
    row: usize,
    offset: u64,
) -> impl Fn(usize, &mut SecretTable) + Sync {
    move |p, table| {
        if p == party {
            add(table, target, held, row, offset);
        }
    }
}

fn honest(_: usize, _: &mut SecretTable) {}

/// The component a party's copy `held` is: `party` or `party + 1`.
fn component(party: usize, held: Held) -> usize {
    match held {
        Held::Own => party,
        Held::Next => (party + 1) % 3,
    }
}

/// `a^-1 mod 2^64` for odd `a` (Newton's iteration doubles the correct
/// low bits each step, from 3).
fn inverse(a: u64) -> u64 {
    assert_eq!(a & 1, 1, "only odd numbers are invertible");
    let mut x = a;
    for _ in 0..5 {
        x = x.wrapping_mul(2u64.wrapping_sub(a.wrapping_mul(x)));
    }
    x
}

#[test]
fn honest_gates_refuse_two_rows_and_open_at_threshold_two() {
    for (query, table, open) in [
        (gated(Agg::Sum, true, 3), people(), None),
        (gated(Agg::Sum, true, 2), people(), Some(200 + 300)),
        (gated(Agg::Sum, false, 3), selection(), None),
        (gated(Agg::Sum, false, 2), selection(), Some(100 + 200)),
    ] {
        let o = run_tampered(&query, &table, honest);
        match open {
            None => {
                assert_eq!(o.nodes, [Node::NotMet, Node::NotMet, Node::NotMet]);
                assert_eq!(o.seen, Seen::ThresholdNotMet);
            }
            Some(sum) => assert_eq!(o.seen, Seen::Opened(vec![sum])),
        }
    }
}

/// Two rows have `k > 10`; the gate wants 3. Party 0 inputs the summand
/// `u = x_0 + x_1` of every comparison over the first block of rows, so
/// raising either of its copies of `k` at row 0 (k = 5) by 100 makes the
/// comparison see 105: the filter keeps row 0, the count is 3, all three
/// nodes see the gate pass, and the requester gets the sum of `b` over
/// rows 0, 1 and 2 with every component consistent. Nothing notices.
#[test]
fn a_tampered_filter_column_flips_the_gate_unnoticed() {
    for held in BOTH {
        let tamper = by(0, Target::Column("k"), held, 0, 100);
        let o = run_tampered(&gated(Agg::Sum, true, 3), &people(), &tamper);
        assert_eq!(o.nodes, [Node::Passed, Node::Passed, Node::Passed]);
        assert_eq!(o.seen, Seen::Opened(vec![100 + 200 + 300]), "{held:?}");
        // The count it opens agrees with the forged gate.
        let o = run_tampered(&gated(Agg::Count, true, 3), &people(), &tamper);
        assert_eq!(o.seen, Seen::Opened(vec![3]), "{held:?}");
    }
    // The same change by parties 1 and 2 (whose copies of row 0 enter
    // this comparison only through `v = x_2`, or not at all) left the
    // filter as it was here: the gate still refused.
    for party in [1, 2] {
        for held in BOTH {
            let tamper = by(party, Target::Column("k"), held, 0, 100);
            let o = run_tampered(&gated(Agg::Sum, true, 3), &people(), &tamper);
            assert_eq!(o.seen, Seen::ThresholdNotMet, "party {party} {held:?}");
        }
    }
}

/// Comparisons split a column into three word-aligned blocks and party `j`
/// inputs `u` for block `j`, so with enough rows every node can add rows
/// of its own block to a filter. 320 rows: blocks 0..128, 128..256,
/// 256..320; two rows match, the gate wants 3.
#[test]
fn every_node_can_flip_the_filter_on_rows_of_its_block() {
    let n = 320;
    let mut k = vec![5i64; n];
    k[1] = 20;
    k[2] = 30;
    let b: Vec<i64> = (0..n as i64).collect();
    let table = Plain {
        columns: vec![("k", k), ("b", b)],
        mask: None,
    };
    let query = gated(Agg::Sum, true, 3);
    assert_eq!(
        run_tampered(&query, &table, honest).seen,
        Seen::ThresholdNotMet
    );
    for party in 0..3 {
        let row = 128 * party + 10;
        let o = run_tampered(
            &query,
            &table,
            by(party, Target::Column("k"), Held::Own, row, 100),
        );
        assert_eq!(o.nodes, [Node::Passed, Node::Passed, Node::Passed]);
        assert_eq!(
            o.seen,
            Seen::Opened(vec![1 + 2 + row as i64]),
            "party {party}"
        );
    }
}

/// A stored selection (rows 0 and 1) and a change of one copy of the mask
/// at row 2 by 1. The count is a local sum of the mask, so the gate sees 3
/// wherever the changed copy feeds the comparison. The sum is an inner
/// product, which reshares: the error `(b_0 + b_1)` at row 2 (for party 0's
/// own copy) lands in consistent components, so the requester opens a
/// garbled number and the two-holder check passes. A count, being linear,
/// opens the changed component as it is: its two holders disagree and the
/// check catches it, naming the component but no single node.
#[test]
fn a_tampered_mask_passes_the_gate_garbles_a_sum_and_is_caught_on_a_count() {
    let flips = [(0, Held::Own), (0, Held::Next), (1, Held::Next)];
    for (party, held) in flips {
        let tamper = by(party, Target::Mask, held, 2, 1);
        let o = run_tampered(&gated(Agg::Sum, false, 3), &selection(), &tamper);
        assert_eq!(o.nodes, [Node::Passed, Node::Passed, Node::Passed]);
        let Seen::Opened(words) = &o.seen else {
            panic!("party {party} {held:?}: {:?}", o.seen)
        };
        // Five values in 0..=1000 sum to at most 5000: this is garbage,
        // yet nothing flags it.
        assert!(
            words[0].unsigned_abs() > 5000,
            "party {party} {held:?}: {words:?}"
        );
        let o = run_tampered(&gated(Agg::Count, false, 3), &selection(), &tamper);
        assert_eq!(o.nodes, [Node::Passed, Node::Passed, Node::Passed]);
        assert_eq!(
            o.seen,
            Seen::Caught {
                bad: vec![component(party, held)],
                blamed: None
            },
            "party {party} {held:?}"
        );
    }
    for (party, held) in [(1, Held::Own), (2, Held::Own), (2, Held::Next)] {
        let tamper = by(party, Target::Mask, held, 2, 1);
        let o = run_tampered(&gated(Agg::Sum, false, 3), &selection(), &tamper);
        assert_eq!(o.seen, Seen::ThresholdNotMet, "party {party} {held:?}");
    }
}

/// With no filter and no mask the gate counts public rows and the sum is
/// a local sum of components: a changed copy of the summed column reaches
/// the requester unchanged, disagrees with the other holder's copy, and
/// is caught. A changed copy of a column the query does not read (`k`
/// here, which is not even loaded) changes nothing.
#[test]
fn a_linear_answer_cannot_be_changed_unnoticed() {
    for party in 0..3 {
        for held in BOTH {
            let o = run_tampered(
                &plain_sum(),
                &people(),
                by(party, Target::Column("b"), held, 2, 7),
            );
            assert_eq!(
                o.seen,
                Seen::Caught {
                    bad: vec![component(party, held)],
                    blamed: None
                },
                "party {party} {held:?}"
            );
            let o = run_tampered(
                &plain_sum(),
                &people(),
                by(party, Target::Column("k"), held, 2, 7),
            );
            assert_eq!(o.seen, Seen::Opened(vec![1500]), "party {party} {held:?}");
        }
    }
}

/// The error a change makes inside a product is not only garbage: party 0
/// knows its components `w_0, w_1` of the weights, and the inner product
/// adds `delta * (w_0 + w_1)[r]` for a change `delta` of its own copy of
/// `b` at row `r`. Where that factor is odd it can divide, and shift the
/// opened sum by an amount of its choosing. The check passes.
#[test]
fn a_chosen_shift_through_a_product_is_not_caught() {
    let shift = 1000u64;
    let tamper = |party: usize, table: &mut SecretTable| {
        if party != 0 {
            return;
        }
        let mask = table.mask.as_ref().expect("a stored selection");
        let (w0, w1) = mask.components();
        let row = (0..table.rows)
            .find(|&r| w0[r].wrapping_add(w1[r]) & 1 == 1)
            .expect("some row's w_0 + w_1 is odd for these seeds");
        let delta = shift.wrapping_mul(inverse(w0[row].wrapping_add(w1[row])));
        add(table, Target::Column("b"), Held::Own, row, delta);
    };
    let query = gated(Agg::Sum, false, 2);
    assert_eq!(
        run_tampered(&query, &selection(), honest).seen,
        Seen::Opened(vec![300])
    );
    let o = run_tampered(&query, &selection(), tamper);
    assert_eq!(o.nodes, [Node::Passed, Node::Passed, Node::Passed]);
    assert_eq!(o.seen, Seen::Opened(vec![300 + shift as i64]));
}

/// The gate bit is public to the nodes, so a tampering node can use it to
/// ask a question of its choosing: "is `k` at row 3, plus my offset,
/// above 10?". Two matching rows, threshold 3: the gate passes exactly when
/// the offset lifts row 3 (k = 7) over 10, and the smallest passing offset
/// gives the value away, one gate bit per query.
#[test]
fn the_public_gate_bit_answers_the_tamperers_question() {
    let query = gated(Agg::Count, true, 3);
    let passes: Vec<bool> = (0..8u64)
        .map(|offset| {
            let o = run_tampered(
                &query,
                &people(),
                by(0, Target::Column("k"), Held::Own, 3, offset),
            );
            o.nodes[0] == Node::Passed
        })
        .collect();
    assert_eq!(passes, [false, false, false, false, true, true, true, true]);
    let first = passes.iter().position(|p| *p).expect("some offset passes") as i64;
    assert_eq!(10 + 1 - first, 7, "k at row 3");
}

#[test]
fn inverse_inverts() {
    for a in [1u64, 3, 0xdead_beef, u64::MAX] {
        assert_eq!(a.wrapping_mul(inverse(a)), 1);
    }
}
