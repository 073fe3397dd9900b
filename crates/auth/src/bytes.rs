//! Fixed-size public byte strings (keys, digests, nonces): hex text and
//! serde. Binary formats get the raw bytes with no length prefix, so the
//! width is part of the type and not of the encoding; human-readable
//! formats get lowercase hex.

use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::ser::{SerializeTuple, Serializer};

/// Why a text is not the hex form of a fixed-size value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HexProblem {
    /// The text has the wrong length.
    #[error("expected {expected} hex digits, got a text of {actual} bytes")]
    Length {
        /// Hex digits expected (twice the byte width).
        expected: usize,
        /// Length of the text, in bytes.
        actual: usize,
    },
    /// A character is not a hex digit.
    #[error("byte {position} of the text is not a hex digit")]
    Digit {
        /// Its offset in the text, from 0.
        position: usize,
    },
}

/// Lowercase hex of `bytes`.
pub(crate) fn encode_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut text = String::with_capacity(bytes.len() * 2);
    for &byte in bytes {
        text.push(char::from(DIGITS[usize::from(byte >> 4)]));
        text.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
    }
    text
}

/// Decodes exactly `out.len()` bytes of hex (either case) into `out`. Writes
/// into a caller's buffer so that secret keys can be decoded straight into
/// memory that is zeroized on drop.
pub(crate) fn decode_hex_into(text: &str, out: &mut [u8]) -> Result<(), HexProblem> {
    let digits = text.as_bytes();
    if digits.len() != out.len() * 2 {
        return Err(HexProblem::Length {
            expected: out.len() * 2,
            actual: digits.len(),
        });
    }
    for (index, (pair, byte)) in digits.chunks_exact(2).zip(out.iter_mut()).enumerate() {
        let high = hex_value(pair[0]).ok_or(HexProblem::Digit {
            position: 2 * index,
        })?;
        let low = hex_value(pair[1]).ok_or(HexProblem::Digit {
            position: 2 * index + 1,
        })?;
        *byte = (high << 4) | low;
    }
    Ok(())
}

/// Decodes exactly `N` bytes of hex.
pub(crate) fn decode_hex<const N: usize>(text: &str) -> Result<[u8; N], HexProblem> {
    let mut out = [0u8; N];
    decode_hex_into(text, &mut out)?;
    Ok(out)
}

fn hex_value(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        b'A'..=b'F' => Some(digit - b'A' + 10),
        _ => None,
    }
}

/// Serialises `N` bytes: a tuple of `N` bytes for binary formats (no length
/// prefix, and serde's own array impls stop at 32), a hex string otherwise.
pub(crate) fn serialize_fixed<S: Serializer, const N: usize>(
    bytes: &[u8; N],
    serializer: S,
) -> Result<S::Ok, S::Error> {
    if serializer.is_human_readable() {
        serializer.serialize_str(&encode_hex(bytes))
    } else {
        let mut tuple = serializer.serialize_tuple(N)?;
        for byte in bytes {
            tuple.serialize_element(byte)?;
        }
        tuple.end()
    }
}

/// The inverse of [`serialize_fixed`].
pub(crate) fn deserialize_fixed<'de, D: Deserializer<'de>, const N: usize>(
    deserializer: D,
) -> Result<[u8; N], D::Error> {
    if deserializer.is_human_readable() {
        deserializer.deserialize_str(FixedVisitor::<N>(PhantomData))
    } else {
        deserializer.deserialize_tuple(N, FixedVisitor::<N>(PhantomData))
    }
}

struct FixedVisitor<const N: usize>(PhantomData<[u8; N]>);

impl<'de, const N: usize> Visitor<'de> for FixedVisitor<N> {
    type Value = [u8; N];

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{N} bytes, or {} hex digits", 2 * N)
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<[u8; N], E> {
        decode_hex(text).map_err(E::custom)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<[u8; N], A::Error> {
        let mut out = [0u8; N];
        for (index, byte) in out.iter_mut().enumerate() {
            *byte = seq
                .next_element()?
                .ok_or_else(|| de::Error::invalid_length(index, &self))?;
        }
        Ok(out)
    }
}

/// Implements, for a newtype over `[u8; N]` with private field `0`:
/// `from_bytes`, `as_bytes`, hex `Display`, `Debug` as `Name(hex)`, and
/// serde through [`serialize_fixed`]. Only for public values.
macro_rules! public_bytes {
    ($name:ident, $width:expr) => {
        impl $name {
            /// Wraps raw bytes.
            pub const fn from_bytes(bytes: [u8; $width]) -> Self {
                $name(bytes)
            }

            /// The raw bytes.
            pub const fn as_bytes(&self) -> &[u8; $width] {
                &self.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&$crate::bytes::encode_hex(&self.0))
            }
        }

        impl std::fmt::Debug for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "{}({})", stringify!($name), self)
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                $crate::bytes::serialize_fixed(&self.0, serializer)
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                $crate::bytes::deserialize_fixed(deserializer).map($name)
            }
        }
    };
}

/// Implements `FromStr` from hex for a [`public_bytes!`] type; `$what`
/// names the value in errors.
macro_rules! hex_from_str {
    ($name:ident, $what:expr) => {
        impl std::str::FromStr for $name {
            type Err = $crate::AuthError;

            fn from_str(text: &str) -> Result<Self, Self::Err> {
                $crate::bytes::decode_hex(text)
                    .map($name)
                    .map_err(|problem| $crate::AuthError::Hex {
                        what: $what,
                        problem,
                    })
            }
        }
    };
}

pub(crate) use hex_from_str;
pub(crate) use public_bytes;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trips_and_reports_the_problem() {
        let bytes = [0x00, 0x7f, 0x80, 0xff, 0x12];
        let text = encode_hex(&bytes);
        assert_eq!(text, "007f80ff12");
        assert_eq!(decode_hex::<5>(&text), Ok(bytes));
        assert_eq!(decode_hex::<5>("007F80FF12"), Ok(bytes));
        assert_eq!(
            decode_hex::<5>("007f80ff1"),
            Err(HexProblem::Length {
                expected: 10,
                actual: 9
            })
        );
        assert_eq!(
            decode_hex::<5>("007f80fg12"),
            Err(HexProblem::Digit { position: 7 })
        );
        // Multi-byte characters are counted in bytes and never split.
        assert!(decode_hex::<2>("é00").is_err());
        assert!(decode_hex::<1>("é").is_err());
    }
}
