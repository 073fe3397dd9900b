//! Names the store hands out and accepts: table handles, upload ids, owner
//! keys and BLAKE3 digests. All of them are public; each is a validated
//! newtype so that a value that reaches a path or a manifest has already
//! been checked (an upload id names a directory, so it must never hold a
//! `/` or `..`).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Longest upload id, in characters.
pub const UPLOAD_ID_CHARS_MAX: usize = 64;

/// Longest owner key, in hex characters (a 128-byte key; ed25519 keys are 32).
pub const OWNER_KEY_CHARS_MAX: usize = 256;

/// Why a string is not a valid handle, digest, upload id or owner key.
/// Carries lengths and positions, never the string itself, which may be
/// arbitrary bytes from a peer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IdError {
    /// A handle or digest has the wrong number of characters.
    #[error("a {kind} is {expected} lowercase hex characters, not {length}")]
    HexLength {
        /// What was being parsed.
        kind: &'static str,
        /// Characters required.
        expected: usize,
        /// Characters found.
        length: usize,
    },
    /// A character outside `0-9a-f`.
    #[error("a {kind} is lowercase hex, but character {position} is not")]
    NotHex {
        /// What was being parsed.
        kind: &'static str,
        /// Byte position of the first bad character.
        position: usize,
    },
    /// An upload id is empty or too long.
    #[error("an upload id is 1 to {UPLOAD_ID_CHARS_MAX} characters, not {length}")]
    UploadIdLength {
        /// Characters found.
        length: usize,
    },
    /// An upload id holds a character other than `a-z`, `0-9`, `-`, `_`.
    #[error("an upload id is made of a-z, 0-9, '-' and '_', but character {position} is not")]
    UploadIdCharacter {
        /// Byte position of the first bad character.
        position: usize,
    },
    /// An owner key is empty, too long or of odd length.
    #[error(
        "an owner key is an even number of 2 to {OWNER_KEY_CHARS_MAX} hex characters, not {length}"
    )]
    OwnerKeyLength {
        /// Characters found.
        length: usize,
    },
}

/// A BLAKE3 digest: printed and serialised as 64 lowercase hex characters.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Digest([u8; 32]);

/// The name of a committed table: 64 lowercase hex characters, the same on
/// all three nodes (see [`handle_for`](crate::store::handle_for)).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Handle([u8; 32]);

/// The client's name for one upload, the same on all three nodes: 1 to 64
/// characters of `a-z`, `0-9`, `-`, `_`. Lowercase only, so that two ids
/// never collide on a case-insensitive file system; it names the staging
/// directory.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct UploadId(String);

/// The data owner's public key, opaque lowercase hex until the auth crate
/// gives it a type. Public: it says who may delete the table.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct OwnerKey(String);

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 15)] as char);
    }
    out
}

fn hex_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    }
}

/// Position of the first byte that is not lowercase hex.
fn first_non_hex(s: &str) -> Option<usize> {
    s.bytes().position(|c| hex_value(c).is_none())
}

fn parse_hex32(s: &str, kind: &'static str) -> Result<[u8; 32], IdError> {
    if s.len() != 64 {
        return Err(IdError::HexLength {
            kind,
            expected: 64,
            length: s.len(),
        });
    }
    if let Some(position) = first_non_hex(s) {
        return Err(IdError::NotHex { kind, position });
    }
    let mut out = [0u8; 32];
    for (byte, pair) in out.iter_mut().zip(s.as_bytes().chunks_exact(2)) {
        // Both are hex digits: checked above.
        let high = hex_value(pair[0]).unwrap_or(0);
        let low = hex_value(pair[1]).unwrap_or(0);
        *byte = (high << 4) | low;
    }
    Ok(out)
}

/// `FromStr`, `TryFrom<String>`, `Display`, `Debug` and `From<_> for String`
/// for the hex newtypes.
macro_rules! hex32 {
    ($name:ident, $kind:literal) => {
        impl $name {
            /// From raw bytes.
            pub fn from_bytes(bytes: [u8; 32]) -> $name {
                $name(bytes)
            }

            /// The raw bytes.
            pub fn as_bytes(&self) -> &[u8; 32] {
                &self.0
            }
        }

        impl FromStr for $name {
            type Err = IdError;
            fn from_str(s: &str) -> Result<$name, IdError> {
                parse_hex32(s, $kind).map($name)
            }
        }

        impl TryFrom<String> for $name {
            type Error = IdError;
            fn try_from(s: String) -> Result<$name, IdError> {
                s.parse()
            }
        }

        impl From<$name> for String {
            fn from(value: $name) -> String {
                value.to_string()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&hex(&self.0))
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self)
            }
        }
    };
}

hex32!(Digest, "digest");
hex32!(Handle, "handle");

impl From<blake3::Hash> for Digest {
    fn from(hash: blake3::Hash) -> Digest {
        Digest(*hash.as_bytes())
    }
}

impl UploadId {
    /// The id as given.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for UploadId {
    type Err = IdError;
    fn from_str(s: &str) -> Result<UploadId, IdError> {
        if s.is_empty() || s.len() > UPLOAD_ID_CHARS_MAX {
            return Err(IdError::UploadIdLength { length: s.len() });
        }
        let allowed =
            |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-' || c == b'_';
        if let Some(position) = s.bytes().position(|c| !allowed(c)) {
            return Err(IdError::UploadIdCharacter { position });
        }
        Ok(UploadId(s.to_owned()))
    }
}

impl OwnerKey {
    /// The key as lowercase hex.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for OwnerKey {
    type Err = IdError;
    fn from_str(s: &str) -> Result<OwnerKey, IdError> {
        if s.is_empty() || s.len() > OWNER_KEY_CHARS_MAX || s.len() % 2 != 0 {
            return Err(IdError::OwnerKeyLength { length: s.len() });
        }
        if let Some(position) = first_non_hex(s) {
            return Err(IdError::NotHex {
                kind: "owner key",
                position,
            });
        }
        Ok(OwnerKey(s.to_owned()))
    }
}

/// The same impls for the string newtypes.
macro_rules! string_id {
    ($name:ident) => {
        impl TryFrom<String> for $name {
            type Error = IdError;
            fn try_from(s: String) -> Result<$name, IdError> {
                s.parse()
            }
        }

        impl From<$name> for String {
            fn from(value: $name) -> String {
                value.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.0)
            }
        }
    };
}

string_id!(UploadId);
string_id!(OwnerKey);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_roundtrip() {
        let handle = Handle::from_bytes(*blake3::hash(b"x").as_bytes());
        let text = handle.to_string();
        assert_eq!(text.len(), 64);
        assert_eq!(text.parse::<Handle>(), Ok(handle));
        assert_eq!(
            serde_json::to_string(&handle).ok(),
            Some(format!("\"{text}\""))
        );
    }

    #[test]
    fn bad_hex_is_refused() {
        let upper = "A".repeat(64);
        assert_eq!(
            upper.parse::<Handle>(),
            Err(IdError::NotHex {
                kind: "handle",
                position: 0
            })
        );
        assert!(matches!(
            "ab".parse::<Digest>(),
            Err(IdError::HexLength { length: 2, .. })
        ));
        // A multi-byte character must not split a hex pair (or panic).
        let mut tricky = "0".repeat(62);
        tricky.push('é');
        assert!(tricky.parse::<Handle>().is_err());
    }

    #[test]
    fn upload_ids_cannot_escape_their_directory() {
        for bad in ["", "..", "a/b", "A", "a b", ".hidden", &"x".repeat(65)] {
            assert!(bad.parse::<UploadId>().is_err(), "{bad:?}");
        }
        for good in ["a", "upload-1_2", &"x".repeat(64)] {
            assert!(good.parse::<UploadId>().is_ok(), "{good:?}");
        }
    }

    #[test]
    fn owner_keys_are_even_hex() {
        assert!("ab01".parse::<OwnerKey>().is_ok());
        assert!("abc".parse::<OwnerKey>().is_err());
        assert!("zz".parse::<OwnerKey>().is_err());
        assert!("".parse::<OwnerKey>().is_err());
    }
}
