//! Public column types and ranges, as the nodes store them.

use serde::{Deserialize, Serialize};

/// Largest fixed-point scale (decimal places).
pub const MAX_SCALE: u32 = 18;
/// Largest string width in bytes.
pub const MAX_WIDTH: u32 = 64;

/// The type of a column or of a value computed from columns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Ty {
    /// A 64-bit signed integer.
    Int,
    /// 0 or 1.
    Bool,
    /// Days since 1970-01-01.
    Date,
    /// A decimal held as the value times `10^scale`.
    Fixed(u32),
    /// A UTF-8 string of at most this many bytes in `ceil(width / 8)` limbs.
    String(u32),
}

impl Ty {
    /// Parses the tag the store keeps: `int`, `bool`, `date`, `fixed(2)`,
    /// `string(16)`.
    pub fn from_tag(tag: &str) -> Option<Ty> {
        let arg = |prefix: &str| -> Option<u32> {
            tag.strip_prefix(prefix)?
                .strip_prefix('(')?
                .strip_suffix(')')
                .filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))?
                .parse()
                .ok()
        };
        match tag {
            "int" => Some(Ty::Int),
            "bool" => Some(Ty::Bool),
            "date" => Some(Ty::Date),
            _ => {
                if let Some(scale) = arg("fixed") {
                    (scale <= MAX_SCALE).then_some(Ty::Fixed(scale))
                } else {
                    arg("string")
                        .filter(|w| (1..=MAX_WIDTH).contains(w))
                        .map(Ty::String)
                }
            }
        }
    }

    /// The stored tag.
    pub fn tag(&self) -> String {
        match self {
            Ty::Int => "int".to_owned(),
            Ty::Bool => "bool".to_owned(),
            Ty::Date => "date".to_owned(),
            Ty::Fixed(s) => format!("fixed({s})"),
            Ty::String(w) => format!("string({w})"),
        }
    }

    /// Share columns per value (strings have several limbs).
    pub fn limbs(&self) -> usize {
        match self {
            Ty::String(w) => (*w as usize).div_ceil(8),
            _ => 1,
        }
    }

    /// Decimal places (0 for everything but fixed).
    pub fn scale(&self) -> u32 {
        match self {
            Ty::Fixed(s) => *s,
            _ => 0,
        }
    }
}

impl std::fmt::Display for Ty {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.tag())
    }
}

/// One column's public description.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ColumnInfo {
    /// Column name.
    pub name: String,
    /// Type.
    pub ty: Ty,
    /// Smallest possible encoded value.
    pub min: i128,
    /// Largest possible encoded value.
    pub max: i128,
    /// Whether the column has a validity column.
    pub nullable: bool,
}

/// A table's public description: row count (of the stored arrays, which
/// after a filter or merge includes rows masked out) and columns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableSchema {
    /// Rows stored.
    pub rows: u64,
    /// Columns in order.
    pub columns: Vec<ColumnInfo>,
}

impl TableSchema {
    /// The column called `name`.
    pub fn column(&self, name: &str) -> Option<&ColumnInfo> {
        self.columns.iter().find(|c| c.name == name)
    }
}

/// Type and range of a numeric value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ValueInfo {
    /// Type.
    pub ty: Ty,
    /// Smallest possible value.
    pub min: i128,
    /// Largest possible value.
    pub max: i128,
}

/// What an expression yields.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ExprInfo {
    /// A number (or 0/1 bool column used as a number).
    Value {
        /// Type and range.
        value: ValueInfo,
        /// Whether it can be null.
        nullable: bool,
    },
    /// A truth value from a comparison or logic.
    Truth {
        /// Whether it can be null (a comparison with a null operand).
        nullable: bool,
    },
}

impl ExprInfo {
    /// Whether the expression can be null.
    pub fn nullable(&self) -> bool {
        match self {
            ExprInfo::Value { nullable, .. } | ExprInfo::Truth { nullable } => *nullable,
        }
    }
}

/// Bits `w` such that every value of magnitude at most `max_abs` satisfies
/// `|v| < 2^w`; 64 when no bound under 2^63 holds.
pub fn bits_for(max_abs: u128) -> u32 {
    let w = (128 - max_abs.leading_zeros()).max(1);
    if w > 63 { 64 } else { w }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_round_trip_and_refuse_nonsense() {
        for ty in [Ty::Int, Ty::Bool, Ty::Date, Ty::Fixed(2), Ty::String(16)] {
            assert_eq!(Ty::from_tag(&ty.tag()), Some(ty));
        }
        for bad in [
            "",
            "i64",
            "fixed()",
            "fixed(19)",
            "string(0)",
            "string(65)",
            "fixed(-1)",
        ] {
            assert_eq!(Ty::from_tag(bad), None, "{bad}");
        }
    }

    #[test]
    fn bits_cover_the_bound() {
        assert_eq!(bits_for(0), 1);
        assert_eq!(bits_for(1), 1);
        assert_eq!(bits_for(2), 2);
        assert_eq!(bits_for(255), 8);
        assert_eq!(bits_for(256), 9);
        assert_eq!(bits_for((1u128 << 63) - 1), 63);
        assert_eq!(bits_for(1u128 << 63), 64);
    }
}
