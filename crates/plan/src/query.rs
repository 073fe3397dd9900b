//! The plan as the analyst wrote it, and its canonical encoding.

use serde::{Deserialize, Serialize};

/// Version of the plan encoding; part of every encoded plan and digest.
pub const PLAN_VERSION: u16 = 1;

/// Largest encoded plan accepted.
const MAX_ENCODED: usize = 1 << 20;

/// The deepest nesting of expressions a decoded plan may hold. Decoding,
/// checking, evaluating and dropping an expression all recurse, so without
/// a bound a plan of a few bytes per level (`Not(Not(...))`) within
/// [`Query::decode`]'s byte limit would overflow the stack of the node
/// thread that decodes it; a plan a person writes is far shallower.
pub const EXPR_DEPTH_MAX: usize = 256;

/// Index of a frame in [`Query::frames`]; frames only refer to earlier ones.
pub type FrameId = u32;

/// One query: frames built in order, then one output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Query {
    /// Encoding version ([`PLAN_VERSION`]).
    pub version: u16,
    /// Frame operators; each refers only to frames before it.
    pub frames: Vec<Frame>,
    /// What the query returns.
    pub output: Output,
}

/// A table-valued operator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Frame {
    /// A stored table, by handle (64 hex characters).
    Table {
        /// The handle.
        handle: String,
    },
    /// Rows where `predicate` is true (null counts as false). The row count
    /// stays secret: rows are masked, not removed.
    Filter {
        /// Input frame.
        input: FrameId,
        /// A truth-valued expression.
        predicate: Expr,
        /// Minimum rows any aggregate over this selection must count
        /// (`with_threshold`).
        threshold: Option<u64>,
    },
    /// Oblivious join of two frames on equal keys.
    Merge {
        /// Left frame.
        left: FrameId,
        /// Right frame.
        right: FrameId,
        /// Inner or left join.
        how: How,
        /// Key columns of the left frame.
        left_on: Vec<String>,
        /// Key columns of the right frame, pairwise with `left_on`.
        right_on: Vec<String>,
        /// Suffixes for non-key columns present on both sides.
        suffixes: [String; 2],
    },
    /// Adds (or replaces) a column computed row by row.
    WithColumn {
        /// Input frame.
        input: FrameId,
        /// Name of the new column.
        name: String,
        /// The value.
        expr: Expr,
    },
    /// Keeps only the named columns, in this order.
    Select {
        /// Input frame.
        input: FrameId,
        /// Columns kept.
        columns: Vec<String>,
    },
}

/// Join kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum How {
    /// Rows with a match on both sides.
    Inner,
    /// Every selected left row; right columns null where unmatched.
    Left,
}

/// A row-wise expression.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Expr {
    /// A column of the frame.
    Column(String),
    /// An integer literal in the column's encoding: `value / 10^scale`
    /// (dates as days since 1970-01-01, booleans as 0/1).
    Literal {
        /// Scaled value.
        value: i64,
        /// Decimal places.
        scale: u32,
    },
    /// `left op right`.
    Binary {
        /// Operator.
        op: BinOp,
        /// Left operand.
        #[serde(deserialize_with = "nested")]
        left: Box<Expr>,
        /// Right operand.
        #[serde(deserialize_with = "nested")]
        right: Box<Expr>,
    },
    /// Logical negation.
    Not(#[serde(deserialize_with = "nested")] Box<Expr>),
    /// True where the value is null.
    IsNull(#[serde(deserialize_with = "nested")] Box<Expr>),
    /// True where the value equals one of a small set of literals.
    IsIn {
        /// The value.
        #[serde(deserialize_with = "nested")]
        expr: Box<Expr>,
        /// Scaled literals, all with `scale`.
        values: Vec<i64>,
        /// Decimal places of the literals.
        scale: u32,
    },
}

thread_local! {
    /// How many expressions the decoder on this thread is inside of.
    /// Deserialisation is synchronous, so a per-thread count is the depth.
    static EXPR_DEPTH: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// Decodes an operand of an expression, refusing one nested deeper than
/// [`EXPR_DEPTH_MAX`] before descending into it.
fn nested<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Box<Expr>, D::Error> {
    /// Leaves a level when dropped, on success and error alike.
    struct Level;
    impl Drop for Level {
        fn drop(&mut self) {
            EXPR_DEPTH.with(|depth| depth.set(depth.get().saturating_sub(1)));
        }
    }
    let depth = EXPR_DEPTH.with(|depth| {
        depth.set(depth.get() + 1);
        depth.get()
    });
    let _level = Level;
    if depth > EXPR_DEPTH_MAX {
        return Err(serde::de::Error::custom(format_args!(
            "expressions nested deeper than {EXPR_DEPTH_MAX}"
        )));
    }
    Box::<Expr>::deserialize(deserializer)
}

/// Binary operators.
#[allow(missing_docs)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum BinOp {
    Add,
    Sub,
    Mul,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    And,
    Or,
}

impl BinOp {
    /// The operator as written in the DataFrame API.
    pub fn symbol(&self) -> &'static str {
        match self {
            BinOp::Add => "+",
            BinOp::Sub => "-",
            BinOp::Mul => "*",
            BinOp::Eq => "==",
            BinOp::Ne => "!=",
            BinOp::Lt => "<",
            BinOp::Le => "<=",
            BinOp::Gt => ">",
            BinOp::Ge => ">=",
            BinOp::And => "&",
            BinOp::Or => "|",
        }
    }
}

/// Aggregate functions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Agg {
    /// Sum of the selected non-null values.
    Sum,
    /// Selected rows (non-null in the column, when one is named).
    Count,
    /// Sum and count; the client divides.
    Mean,
    /// Sum, count and sum of squares; the client computes the sample
    /// variance.
    Var,
    /// Smallest selected value: reveals one row's value.
    Min,
    /// Largest selected value: reveals one row's value.
    Max,
}

impl Agg {
    /// Lower-case name.
    pub fn name(&self) -> &'static str {
        match self {
            Agg::Sum => "sum",
            Agg::Count => "count",
            Agg::Mean => "mean",
            Agg::Var => "var",
            Agg::Min => "min",
            Agg::Max => "max",
        }
    }

    /// Result words the nodes return for it: sum, count, min and max one;
    /// mean two (sum, count); var three (sum, count, sum of squares).
    pub fn words(&self) -> usize {
        match self {
            Agg::Sum | Agg::Count | Agg::Min | Agg::Max => 1,
            Agg::Mean => 2,
            Agg::Var => 3,
        }
    }

    /// Whether the result is one row's value rather than a summary of many.
    pub fn reveals_a_row(&self) -> bool {
        matches!(self, Agg::Min | Agg::Max)
    }
}

/// One aggregate of a column (or of the rows, for a count with no column).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Aggregation {
    /// Function.
    pub agg: Agg,
    /// Column; only a count may omit it.
    pub column: Option<String>,
}

/// What a query returns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Output {
    /// One aggregate of a frame, behind a threshold gate.
    Aggregate {
        /// Frame.
        frame: FrameId,
        /// The aggregate.
        aggregation: Aggregation,
        /// `threshold=n` on the aggregate.
        threshold: Option<u64>,
    },
    /// Aggregates per group of equal keys, each group behind the gate.
    GroupBy {
        /// Frame.
        frame: FrameId,
        /// Key columns.
        keys: Vec<String>,
        /// Aggregates computed per group.
        aggregations: Vec<Aggregation>,
        /// Per-group threshold.
        threshold: Option<u64>,
    },
    /// The frame, stored as a new secret table with its own handle.
    Store {
        /// Frame.
        frame: FrameId,
    },
}

/// Why a plan is refused. Messages name columns, handles and operators,
/// never values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// Encoding version this build does not run.
    #[error("plan version {found} is not supported (this build runs version {PLAN_VERSION})")]
    Version {
        /// Version found.
        found: u16,
    },
    /// Bytes that do not decode as a plan.
    #[error("malformed plan: {0}")]
    Malformed(String),
    /// A frame refers to itself or a later frame.
    #[error("frame {frame} refers to frame {target}, which does not come before it")]
    BadReference {
        /// The referring frame.
        frame: u32,
        /// The frame referred to.
        target: u32,
    },
    /// An input handle the nodes do not hold.
    #[error("unknown table {handle}")]
    UnknownTable {
        /// The handle.
        handle: String,
    },
    /// A column the frame does not have.
    #[error("frame {frame} has no column {column:?}")]
    UnknownColumn {
        /// Frame index.
        frame: u32,
        /// Column.
        column: String,
    },
    /// Operands of the wrong kind.
    #[error("{0}")]
    Type(String),
    /// A result that could leave the 64-bit range.
    #[error("{what} could overflow 64 bits: {detail}")]
    Overflow {
        /// What could overflow (names the column or operator).
        what: String,
        /// The range that would be needed.
        detail: String,
    },
    /// A valid plan this version cannot run.
    #[error("not supported: {0}")]
    Unsupported(String),
}

impl Query {
    /// A query of the current version.
    pub fn new(frames: Vec<Frame>, output: Output) -> Query {
        Query {
            version: PLAN_VERSION,
            frames,
            output,
        }
    }

    /// The canonical encoding: bincode (standard configuration) of the
    /// query, version first. Equal queries encode to equal bytes.
    pub fn encode(&self) -> Vec<u8> {
        // Encoding a plain enum tree into a Vec cannot fail.
        bincode::serde::encode_to_vec(self, bincode::config::standard()).unwrap_or_default()
    }

    /// Decodes and checks the version; refuses trailing bytes, so every
    /// plan has exactly one encoding.
    pub fn decode(bytes: &[u8]) -> Result<Query, PlanError> {
        if bytes.len() > MAX_ENCODED {
            return Err(PlanError::Malformed(format!(
                "{} bytes, more than the limit of {MAX_ENCODED}",
                bytes.len()
            )));
        }
        let config = bincode::config::standard().with_limit::<MAX_ENCODED>();
        let (query, used): (Query, usize) = bincode::serde::decode_from_slice(bytes, config)
            .map_err(|e| PlanError::Malformed(e.to_string()))?;
        if query.version != PLAN_VERSION {
            return Err(PlanError::Version {
                found: query.version,
            });
        }
        if used != bytes.len() {
            return Err(PlanError::Malformed(format!(
                "{} trailing bytes",
                bytes.len() - used
            )));
        }
        // bincode also reads integers written in a longer varint form than
        // it writes (`[251, 1, 0]` for 1): refuse those, so that the bytes
        // of a plan, not only its digest, are unique.
        if query.encode() != bytes {
            return Err(PlanError::Malformed(
                "integers not in their shortest encoding".into(),
            ));
        }
        Ok(query)
    }

    /// Digest of the canonical encoding (BLAKE3, domain separated).
    pub fn digest(&self) -> [u8; 32] {
        *blake3::Hasher::new_derive_key("triad-plan query v1")
            .update(&self.encode())
            .finalize()
            .as_bytes()
    }

    /// Handles of the stored tables the query reads, in frame order.
    pub fn inputs(&self) -> Vec<&str> {
        self.frames
            .iter()
            .filter_map(|f| match f {
                Frame::Table { handle } => Some(handle.as_str()),
                _ => None,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Query {
        Query::new(
            vec![
                Frame::Table {
                    handle: "ab".repeat(32),
                },
                Frame::Filter {
                    input: 0,
                    predicate: Expr::Binary {
                        op: BinOp::Eq,
                        left: Box::new(Expr::Column("month".into())),
                        right: Box::new(Expr::Literal { value: 5, scale: 0 }),
                    },
                    threshold: Some(3),
                },
            ],
            Output::Aggregate {
                frame: 1,
                aggregation: Aggregation {
                    agg: Agg::Sum,
                    column: Some("condition_y".into()),
                },
                threshold: None,
            },
        )
    }

    #[test]
    fn encoding_round_trips_and_is_stable() {
        let q = sample();
        let bytes = q.encode();
        assert_eq!(Query::decode(&bytes).unwrap(), q);
        // The encoding is what approvals will sign: changing it is a new
        // plan version.
        assert_eq!(bytes[0], PLAN_VERSION as u8);
        let again = sample().digest();
        assert_eq!(q.digest(), again);
        let mut other = sample();
        other.frames.pop();
        other.output = Output::Store { frame: 0 };
        assert_ne!(other.digest(), q.digest());
    }

    #[test]
    fn decode_refuses_trailing_bytes_and_other_versions() {
        let mut bytes = sample().encode();
        bytes.push(0);
        assert!(matches!(
            Query::decode(&bytes),
            Err(PlanError::Malformed(_))
        ));
        let mut q = sample();
        q.version = 99;
        assert!(matches!(
            Query::decode(&q.encode()),
            Err(PlanError::Version { found: 99 })
        ));
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..512)) {
            let _ = Query::decode(&bytes);
        }
    }
}
