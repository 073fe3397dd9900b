//! Edits of valid encodings for the hostile-input property tests: flipped,
//! inserted and deleted bytes and truncations reach much deeper into a
//! decoder than random bytes do. Shared by several crates' tests through
//! `#[path]`, so that no crate depends on another only for its tests.

// Each including test uses what it needs.
#![allow(dead_code)]

use proptest::prelude::*;
use proptest::sample::Index;

/// One edit of an encoding.
#[derive(Debug, Clone)]
pub enum Edit {
    Flip(Index, u8),
    Insert(Index, u8),
    Delete(Index),
    Truncate(Index),
}

/// Any one edit.
pub fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (any::<Index>(), 1u8..).prop_map(|(at, mask)| Edit::Flip(at, mask)),
        (any::<Index>(), any::<u8>()).prop_map(|(at, byte)| Edit::Insert(at, byte)),
        any::<Index>().prop_map(Edit::Delete),
        any::<Index>().prop_map(Edit::Truncate),
    ]
}

/// One to four edits.
pub fn edits() -> impl Strategy<Value = Vec<Edit>> {
    prop::collection::vec(edit(), 1..5)
}

/// Applies `edits` in order; edits that need a byte do nothing to an
/// empty encoding.
pub fn apply(bytes: &mut Vec<u8>, edits: &[Edit]) {
    for edit in edits {
        match edit {
            Edit::Flip(at, mask) if !bytes.is_empty() => {
                let at = at.index(bytes.len());
                bytes[at] ^= mask;
            }
            Edit::Insert(at, byte) => {
                let at = at.index(bytes.len() + 1);
                bytes.insert(at, *byte);
            }
            Edit::Delete(at) if !bytes.is_empty() => {
                bytes.remove(at.index(bytes.len()));
            }
            Edit::Truncate(at) => bytes.truncate(at.index(bytes.len() + 1)),
            _ => {}
        }
    }
}
