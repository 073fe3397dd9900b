//! Column files: one party's two components of one column.
//!
//! ```text
//! offset  bytes  field
//!      0      8  magic "TRIADCOL"
//!      8      4  format version, u32 LE (STORE_FORMAT_VERSION)
//!     12      4  party index, u32 LE
//!     16      8  element count n, u64 LE
//!     24     32  checksum
//!     56     8n  `own` component, n x u64 LE
//!  56+8n     8n  `next` component, n x u64 LE
//! ```
//!
//! The file's size must be exactly `56 + 16 n`. The checksum is
//! `BLAKE3-derive-key("triad-node column checksum v1";
//!   header[0..24] || BLAKE3(own bytes) || BLAKE3(next bytes))`:
//! it covers every header field as well as the payload, so any flipped byte
//! anywhere is caught, and it is computed in one pass over the payload.
//!
//! The checksum is a plain (unkeyed) hash of this party's components. It
//! stays on this node: together with the two components it holds, the third
//! party could test guesses of a low-entropy column against it.
//!
//! The pure [`encode_column`] and [`decode_column`] work on bytes (and are
//! what fuzzing drives); the store reads files with the same header checks
//! but straight into the share vectors, with no intermediate copy.

use std::borrow::Cow;
use std::fs::File;
use std::io::{self, Read, Write};
use std::path::Path;

use triad_ring::{Arith, PartyId};

use crate::store::STORE_FORMAT_VERSION;
use crate::store::error::{ColumnProblem, StoreError};
use crate::store::fsutil;
use crate::store::ids::Digest;

/// First bytes of every column file.
pub const COLUMN_MAGIC: [u8; 8] = *b"TRIADCOL";

/// Bytes of the fixed header.
pub const COLUMN_HEADER_BYTES: usize = 56;

/// Header bytes covered by the checksum (all but the checksum itself).
const FIELDS_BYTES: usize = 24;

const CHECKSUM_CONTEXT: &str = "triad-node column checksum v1";

/// The file name of share column number `index` of a table. Names come
/// from positions, not column names, so that no user string reaches a path.
pub(crate) fn file_name(index: usize) -> String {
    format!("{index:04}.col")
}

/// A vector's little-endian bytes: a view on little-endian hosts, a copy
/// elsewhere.
pub(crate) fn le_bytes(words: &[u64]) -> Cow<'_, [u8]> {
    if cfg!(target_endian = "little") {
        Cow::Borrowed(bytemuck::cast_slice(words))
    } else {
        Cow::Owned(words.iter().flat_map(|w| w.to_le_bytes()).collect())
    }
}

/// Size of a file of `count` elements; u128 so that no count overflows.
fn file_bytes(count: u64) -> u128 {
    COLUMN_HEADER_BYTES as u128 + 16 * u128::from(count)
}

fn header_fields(party: PartyId, count: u64) -> [u8; FIELDS_BYTES] {
    let mut fields = [0u8; FIELDS_BYTES];
    fields[..8].copy_from_slice(&COLUMN_MAGIC);
    fields[8..12].copy_from_slice(&STORE_FORMAT_VERSION.to_le_bytes());
    fields[12..16].copy_from_slice(&(party.index() as u32).to_le_bytes());
    fields[16..24].copy_from_slice(&count.to_le_bytes());
    fields
}

fn checksum(fields: &[u8], own: &blake3::Hash, next: &blake3::Hash) -> Digest {
    let mut hasher = blake3::Hasher::new_derive_key(CHECKSUM_CONTEXT);
    hasher.update(fields);
    hasher.update(own.as_bytes());
    hasher.update(next.as_bytes());
    hasher.finalize().into()
}

/// The header of a file holding `shares` for `party`.
fn header(party: PartyId, own: &[u8], next: &[u8], count: u64) -> [u8; COLUMN_HEADER_BYTES] {
    let fields = header_fields(party, count);
    let sum = checksum(&fields, &blake3::hash(own), &blake3::hash(next));
    let mut header = [0u8; COLUMN_HEADER_BYTES];
    header[..FIELDS_BYTES].copy_from_slice(&fields);
    header[FIELDS_BYTES..].copy_from_slice(sum.as_bytes());
    header
}

/// What a header says, once checked against this party.
struct Header {
    count: u64,
    checksum: Digest,
}

fn word<const N: usize>(bytes: &[u8], at: usize) -> [u8; N] {
    let mut out = [0u8; N];
    out.copy_from_slice(&bytes[at..at + N]);
    out
}

/// Checks magic, version and party, in that order.
fn parse_header(
    bytes: &[u8; COLUMN_HEADER_BYTES],
    party: PartyId,
) -> Result<Header, ColumnProblem> {
    if bytes[..8] != COLUMN_MAGIC {
        return Err(ColumnProblem::BadMagic);
    }
    let version = u32::from_le_bytes(word(bytes, 8));
    if version != STORE_FORMAT_VERSION {
        return Err(ColumnProblem::UnsupportedVersion {
            found: version,
            supported: STORE_FORMAT_VERSION,
        });
    }
    let found = u32::from_le_bytes(word(bytes, 12));
    if found as usize != party.index() {
        return Err(ColumnProblem::WrongParty {
            found,
            expected: party,
        });
    }
    Ok(Header {
        count: u64::from_le_bytes(word(bytes, 16)),
        checksum: Digest::from_bytes(word(bytes, FIELDS_BYTES)),
    })
}

/// The element count as a length, once the file size is known to match it.
fn check_length(count: u64, actual_bytes: u64) -> Result<usize, ColumnProblem> {
    let expected_bytes = file_bytes(count);
    if expected_bytes != u128::from(actual_bytes) {
        return Err(ColumnProblem::Length {
            count,
            expected_bytes,
            actual_bytes,
        });
    }
    usize::try_from(count).map_err(|_| ColumnProblem::TooLarge { count })
}

fn too_short(bytes: u64) -> ColumnProblem {
    ColumnProblem::TooShort {
        bytes,
        header_bytes: COLUMN_HEADER_BYTES,
    }
}

/// The column file for `shares` held by `party`.
pub fn encode_column(party: PartyId, shares: &Arith) -> Vec<u8> {
    let (own, next) = shares.components();
    let (own, next) = (le_bytes(own), le_bytes(next));
    let mut out = Vec::with_capacity(COLUMN_HEADER_BYTES + own.len() + next.len());
    out.extend_from_slice(&header(party, &own, &next, shares.len() as u64));
    out.extend_from_slice(&own);
    out.extend_from_slice(&next);
    out
}

/// Decodes a column file held by `party`, checking magic, version, party,
/// exact length and checksum. Never panics, whatever the bytes.
pub fn decode_column(bytes: &[u8], party: PartyId) -> Result<Arith, ColumnProblem> {
    let actual_bytes = bytes.len() as u64;
    let Some(head) = bytes.first_chunk::<COLUMN_HEADER_BYTES>() else {
        return Err(too_short(actual_bytes));
    };
    let header = parse_header(head, party)?;
    let n = check_length(header.count, actual_bytes)?;
    let payload = &bytes[COLUMN_HEADER_BYTES..];
    let (own, next) = payload.split_at(8 * n);
    let computed = checksum(
        &head[..FIELDS_BYTES],
        &blake3::hash(own),
        &blake3::hash(next),
    );
    if computed != header.checksum {
        return Err(ColumnProblem::Checksum);
    }
    let words = |b: &[u8]| -> Vec<u64> {
        b.chunks_exact(8)
            .map(|c| u64::from_le_bytes(word(c, 0)))
            .collect()
    };
    // Both halves have n words by construction.
    Arith::from_components(words(own), words(next)).map_err(|_| ColumnProblem::Checksum)
}

/// Writes the column file `dir/name` atomically; returns its checksum. The
/// caller fsyncs `dir`.
pub(crate) fn write_column_file(
    dir: &Path,
    name: &str,
    party: PartyId,
    shares: &Arith,
) -> Result<Digest, StoreError> {
    let (own, next) = shares.components();
    let (own, next) = (le_bytes(own), le_bytes(next));
    let head = header(party, &own, &next, shares.len() as u64);
    fsutil::write_atomic(dir, name, |file| {
        file.write_all(&head)?;
        file.write_all(&own)?;
        file.write_all(&next)
    })?;
    Ok(Digest::from_bytes(word(&head, FIELDS_BYTES)))
}

fn open(path: &Path) -> Result<(File, u64), ColumnProblem> {
    let file = File::open(path).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => ColumnProblem::Missing,
        _ => ColumnProblem::Io(e),
    })?;
    let size = file.metadata().map_err(ColumnProblem::Io)?.len();
    Ok((file, size))
}

/// Checks that the file of a `rows`-row column exists with the right size
/// (cheap: one `stat`, no read).
pub(crate) fn check_column_file(path: &Path, rows: u64) -> Result<(), ColumnProblem> {
    let size = match std::fs::metadata(path) {
        Ok(metadata) => metadata.len(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(ColumnProblem::Missing),
        Err(e) => return Err(ColumnProblem::Io(e)),
    };
    check_length(rows, size).map(drop)
}

/// Reads and fully verifies the file of a `rows`-row column whose manifest
/// records checksum `recorded`. Reads the payload straight into the share
/// vectors: three reads per file whatever its length.
pub(crate) fn read_column_file(
    path: &Path,
    party: PartyId,
    rows: u64,
    recorded: &Digest,
) -> Result<Arith, ColumnProblem> {
    let (mut file, size) = open(path)?;
    if size < COLUMN_HEADER_BYTES as u64 {
        return Err(too_short(size));
    }
    let mut head = [0u8; COLUMN_HEADER_BYTES];
    file.read_exact(&mut head).map_err(ColumnProblem::Io)?;
    let header = parse_header(&head, party)?;
    if header.count != rows {
        return Err(ColumnProblem::RowCount {
            found: header.count,
            expected: rows,
        });
    }
    let n = check_length(rows, size)?;
    let mut read_words = || -> Result<(Vec<u64>, blake3::Hash), ColumnProblem> {
        let mut words = vec![0u64; n];
        let bytes: &mut [u8] = bytemuck::cast_slice_mut(&mut words);
        file.read_exact(bytes).map_err(|e| match e.kind() {
            // The file shrank after the size check.
            io::ErrorKind::UnexpectedEof => ColumnProblem::Length {
                count: rows,
                expected_bytes: file_bytes(rows),
                actual_bytes: size,
            },
            _ => ColumnProblem::Io(e),
        })?;
        // Hash the bytes as stored, before any byte-order conversion.
        let hash = blake3::hash(bytes);
        if cfg!(target_endian = "big") {
            words.iter_mut().for_each(|w| *w = u64::from_le(*w));
        }
        Ok((words, hash))
    };
    let (own, own_hash) = read_words()?;
    let (next, next_hash) = read_words()?;
    if checksum(&head[..FIELDS_BYTES], &own_hash, &next_hash) != header.checksum {
        return Err(ColumnProblem::Checksum);
    }
    if header.checksum != *recorded {
        return Err(ColumnProblem::NotInManifest);
    }
    // Both have n elements by construction.
    Arith::from_components(own, next).map_err(|_| ColumnProblem::Checksum)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Arith {
        Arith::from_components(vec![1, 2, u64::MAX], vec![4, 5, 6]).unwrap_or_default()
    }

    #[test]
    fn encode_decode_roundtrip() {
        let shares = sample();
        let bytes = encode_column(PartyId::P1, &shares);
        assert_eq!(bytes.len(), COLUMN_HEADER_BYTES + 48);
        assert_eq!(decode_column(&bytes, PartyId::P1).ok(), Some(shares));
        let empty = encode_column(PartyId::P0, &Arith::zeros(0));
        assert_eq!(
            decode_column(&empty, PartyId::P0).ok(),
            Some(Arith::zeros(0))
        );
    }

    #[test]
    fn every_single_byte_flip_is_caught() {
        let bytes = encode_column(PartyId::P2, &sample());
        for at in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[at] ^= 0x10;
            assert!(decode_column(&bad, PartyId::P2).is_err(), "byte {at}");
        }
    }

    #[test]
    fn header_problems_are_named() {
        let bytes = encode_column(PartyId::P0, &sample());
        assert!(matches!(
            decode_column(&bytes, PartyId::P1),
            Err(ColumnProblem::WrongParty {
                found: 0,
                expected: PartyId::P1
            })
        ));
        assert!(matches!(
            decode_column(&bytes[..10], PartyId::P0),
            Err(ColumnProblem::TooShort { bytes: 10, .. })
        ));
        let mut long = bytes.clone();
        long.push(0);
        assert!(matches!(
            decode_column(&long, PartyId::P0),
            Err(ColumnProblem::Length { count: 3, .. })
        ));
        let mut huge = bytes;
        huge[16..24].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(matches!(
            decode_column(&huge, PartyId::P0),
            Err(ColumnProblem::Length { .. })
        ));
    }
}
