//! Replay protection: the nonces each signer used recently, kept in memory
//! and in an append-only log that survives restarts and crashes.
//!
//! # The log
//!
//! `nonces.log` in the store's directory: a 32-byte header, then 64-byte
//! records, all integers little-endian.
//!
//! | part | bytes |
//! | --- | --- |
//! | header | magic `triad-nonces-v1\n` (16), floor (u64), checksum (8) |
//! | record | signer (32), nonce (16), issued_at (u64), checksum (8) |
//!
//! A checksum is the first 8 bytes of the BLAKE3 hash of what precedes it
//! in the header or record. The floor is the oldest issue time still
//! accepted after the last compaction (below).
//!
//! Each record is written at the end of the log and fsynced before the
//! request it records is accepted, so an accepted request is never
//! forgotten. A crash can tear only the record being appended, which is
//! then the last thing in the file: at open, a partial last record or a
//! last record failing its checksum is dropped and the file truncated
//! (its request was never accepted). A bad record anywhere else is not a
//! torn write but damage, and opening fails.
//!
//! # Compaction and the floor
//!
//! A request issued more than the window before now is refused whatever its
//! nonce, so records older than that can be forgotten:
//! [`NonceStore::compact`] writes the live records to a temporary file,
//! fsyncs it and renames it over the log. The new log's header keeps the
//! compaction's cutoff as the floor, and requests issued before the floor
//! stay refused even if the clock later goes backwards, when the window
//! alone would let a forgotten nonce be replayed. The cost is that a clock
//! set far ahead during a compaction keeps refusing requests until the
//! operator removes the log.
//!
//! One process owns a store's directory at a time: the store takes no lock
//! and two writers would interleave records.

use std::collections::HashMap;
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::error::{AuthError, NonceLogProblem};
use crate::fs::{file_error, temp_path, write_atomic};
use crate::key::UserPublicKey;
use crate::request::{Nonce, SignedRequest};

/// The log's file name in the store's directory.
const LOG_FILE: &str = "nonces.log";
const MAGIC: &[u8; 16] = b"triad-nonces-v1\n";
const HEADER_BYTES: usize = 32;
const RECORD_BYTES: usize = 64;
const CHECKSUM_BYTES: usize = 8;

/// The nonces each signer used within the replay window. Methods take
/// `&mut self`: a node shares one store behind a mutex, and one process
/// owns its directory. `Debug` shows counts, not every nonce.
pub struct NonceStore {
    /// The log file.
    path: PathBuf,
    file: File,
    /// Bytes of valid log: where the next record goes.
    log_bytes: u64,
    /// Requests issued before this are refused (set by compaction).
    floor: u64,
    /// Each recorded (signer, nonce) and its request's issue time.
    seen: HashMap<(UserPublicKey, Nonce), u64>,
    discarded_tail_bytes: u64,
    /// Set when a write failed and the file's end is no longer known.
    poisoned: bool,
}

impl fmt::Debug for NonceStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NonceStore")
            .field("path", &self.path)
            .field("nonces", &self.seen.len())
            .field("log_bytes", &self.log_bytes)
            .field("floor", &self.floor)
            .field("poisoned", &self.poisoned)
            .finish_non_exhaustive()
    }
}

/// One accepted request, as the log remembers it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Record {
    signer: UserPublicKey,
    nonce: Nonce,
    issued_at: u64,
}

/// A parsed log: its floor, its valid records, and how many of its bytes
/// are valid (the rest is a torn last record).
#[derive(Debug)]
struct ParsedLog {
    floor: u64,
    records: Vec<Record>,
    valid_bytes: u64,
}

impl NonceStore {
    /// Opens the store in `dir` (created if missing), reading every
    /// recorded nonce. A torn last record left by a crash is dropped and
    /// the file truncated ([`NonceStore::discarded_tail_bytes`] says how
    /// much); damage anywhere else is [`AuthError::NonceLogCorrupt`].
    pub fn open(dir: &Path) -> Result<NonceStore, AuthError> {
        fs::create_dir_all(dir).map_err(file_error(dir))?;
        let path = dir.join(LOG_FILE);
        // Left by a compaction that crashed before its rename: the log
        // itself is intact.
        let temp = temp_path(&path);
        match fs::remove_file(&temp) {
            Err(error) if error.kind() != io::ErrorKind::NotFound => {
                return Err(file_error(&temp)(error));
            }
            _ => {}
        }
        if !path.try_exists().map_err(file_error(&path))? {
            // Created whole through a rename, so a log without a full
            // header is damage, never a crash.
            write_atomic(&path, &encode_header(0), false)?;
        }
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .map_err(file_error(&path))?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).map_err(file_error(&path))?;
        let parsed = parse_log(&bytes).map_err(|(offset, problem)| AuthError::NonceLogCorrupt {
            path: path.clone(),
            offset,
            problem,
        })?;
        let discarded_tail_bytes = bytes.len() as u64 - parsed.valid_bytes;
        if discarded_tail_bytes > 0 {
            file.set_len(parsed.valid_bytes)
                .and_then(|()| file.sync_all())
                .map_err(file_error(&path))?;
        }
        let mut seen = HashMap::with_capacity(parsed.records.len());
        for record in parsed.records {
            let issued_at = seen.entry((record.signer, record.nonce)).or_insert(0);
            *issued_at = record.issued_at.max(*issued_at);
        }
        Ok(NonceStore {
            path,
            file,
            log_bytes: parsed.valid_bytes,
            floor: parsed.floor,
            seen,
            discarded_tail_bytes,
            poisoned: false,
        })
    }

    /// Accepts a request once: verifies its signature (so a forged request
    /// can neither fill the store nor use up a signer's nonce), refuses it
    /// if it was issued more than `window_secs` before or after `now` (unix
    /// seconds), or before the store's floor, or if its signer used its
    /// nonce before; otherwise records the nonce durably (fsynced) before
    /// returning. A refused request leaves no trace.
    pub fn check_and_record(
        &mut self,
        request: &SignedRequest,
        now: u64,
        window_secs: u64,
    ) -> Result<(), AuthError> {
        self.check_writable()?;
        request.verify()?;
        let request = &request.request;
        let signer = request.signer;
        let oldest_accepted = now.saturating_sub(window_secs).max(self.floor);
        if request.issued_at < oldest_accepted {
            return Err(AuthError::RequestTooOld {
                signer,
                issued_at: request.issued_at,
                oldest_accepted,
            });
        }
        let newest_accepted = now.saturating_add(window_secs);
        if request.issued_at > newest_accepted {
            return Err(AuthError::RequestFromFuture {
                signer,
                issued_at: request.issued_at,
                newest_accepted,
            });
        }
        if self.seen.contains_key(&(signer, request.nonce)) {
            return Err(AuthError::Replay {
                signer,
                nonce: request.nonce,
            });
        }
        let record = Record {
            signer,
            nonce: request.nonce,
            issued_at: request.issued_at,
        };
        self.append(&record)?;
        self.seen
            .insert((record.signer, record.nonce), record.issued_at);
        Ok(())
    }

    /// Forgets the nonces of requests issued before `now - window_secs`,
    /// which are refused as too old anyway, and rewrites the log without
    /// them (temporary file, fsync, rename). The cutoff becomes the floor
    /// below which requests stay refused; the floor never moves back.
    ///
    /// If this fails, the log on disk is the old one or the new one, but
    /// the store cannot tell which and refuses further use
    /// ([`AuthError::NonceStorePoisoned`]) until reopened.
    pub fn compact(&mut self, now: u64, window_secs: u64) -> Result<(), AuthError> {
        self.check_writable()?;
        let floor = now.saturating_sub(window_secs).max(self.floor);
        let mut live: Vec<Record> = self
            .seen
            .iter()
            .filter(|&(_, &issued_at)| issued_at >= floor)
            .map(|(&(signer, nonce), &issued_at)| Record {
                signer,
                nonce,
                issued_at,
            })
            .collect();
        // Sorted so that the same records always give the same file.
        live.sort_unstable_by_key(|record| (record.issued_at, record.signer, record.nonce));
        let mut bytes = Vec::with_capacity(HEADER_BYTES + live.len() * RECORD_BYTES);
        bytes.extend_from_slice(&encode_header(floor));
        for record in &live {
            bytes.extend_from_slice(&encode_record(record));
        }
        // Until the new file is open, a failure may leave the store's handle
        // on the replaced log, where appends would be lost.
        self.poisoned = true;
        write_atomic(&self.path, &bytes, false)?;
        self.file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&self.path)
            .map_err(file_error(&self.path))?;
        self.poisoned = false;
        self.log_bytes = bytes.len() as u64;
        self.floor = floor;
        self.seen.retain(|_, issued_at| *issued_at >= floor);
        Ok(())
    }

    /// How many nonces the store remembers.
    pub fn len(&self) -> usize {
        self.seen.len()
    }

    /// Whether the store remembers no nonce.
    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }

    /// Requests issued before this (unix seconds) are refused whatever the
    /// window: the last compaction's cutoff.
    pub fn floor(&self) -> u64 {
        self.floor
    }

    /// Bytes of a torn last record dropped at open: a crash in the middle
    /// of an append. Worth a log line; not an error.
    pub fn discarded_tail_bytes(&self) -> u64 {
        self.discarded_tail_bytes
    }

    /// The log file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn check_writable(&self) -> Result<(), AuthError> {
        if self.poisoned {
            Err(AuthError::NonceStorePoisoned {
                path: self.path.clone(),
            })
        } else {
            Ok(())
        }
    }

    /// Writes and fsyncs one record at the end of the valid log. On failure
    /// the store is poisoned: after a failed fsync the kernel may have
    /// dropped the written pages, so only rereading the file (reopening)
    /// tells what is durable.
    fn append(&mut self, record: &Record) -> Result<(), AuthError> {
        self.poisoned = true;
        self.file
            .seek(SeekFrom::Start(self.log_bytes))
            .and_then(|_| self.file.write_all(&encode_record(record)))
            .and_then(|()| self.file.sync_data())
            .map_err(file_error(&self.path))?;
        self.poisoned = false;
        self.log_bytes += RECORD_BYTES as u64;
        Ok(())
    }
}

fn checksum(bytes: &[u8]) -> [u8; CHECKSUM_BYTES] {
    let mut sum = [0u8; CHECKSUM_BYTES];
    sum.copy_from_slice(&blake3::hash(bytes).as_bytes()[..CHECKSUM_BYTES]);
    sum
}

fn encode_header(floor: u64) -> [u8; HEADER_BYTES] {
    let mut header = [0u8; HEADER_BYTES];
    header[..16].copy_from_slice(MAGIC);
    header[16..24].copy_from_slice(&floor.to_le_bytes());
    let sum = checksum(&header[..24]);
    header[24..].copy_from_slice(&sum);
    header
}

fn encode_record(record: &Record) -> [u8; RECORD_BYTES] {
    let mut bytes = [0u8; RECORD_BYTES];
    bytes[..32].copy_from_slice(record.signer.as_bytes());
    bytes[32..48].copy_from_slice(record.nonce.as_bytes());
    bytes[48..56].copy_from_slice(&record.issued_at.to_le_bytes());
    let sum = checksum(&bytes[..56]);
    bytes[56..].copy_from_slice(&sum);
    bytes
}

/// The `N` bytes of `bytes` at offset `at`. Callers pass offsets inside a
/// header or record whose length they have checked, so the slice is always
/// in range.
fn array<const N: usize>(bytes: &[u8], at: usize) -> [u8; N] {
    let mut out = [0u8; N];
    out.copy_from_slice(&bytes[at..at + N]);
    out
}

/// Parses a whole log (see the module documentation for what is tolerated).
/// Errors carry the byte offset of the damage.
fn parse_log(bytes: &[u8]) -> Result<ParsedLog, (u64, NonceLogProblem)> {
    if bytes.len() < HEADER_BYTES || &bytes[..16] != MAGIC {
        return Err((0, NonceLogProblem::NotANonceLog));
    }
    if checksum(&bytes[..24]) != bytes[24..HEADER_BYTES] {
        return Err((16, NonceLogProblem::HeaderChecksum));
    }
    let floor = u64::from_le_bytes(array(bytes, 16));
    let body = &bytes[HEADER_BYTES..];
    let complete = body.len() / RECORD_BYTES;
    let partial = body.len() % RECORD_BYTES;
    let mut records = Vec::with_capacity(complete);
    for (index, chunk) in body.chunks_exact(RECORD_BYTES).enumerate() {
        if checksum(&chunk[..56]) != chunk[56..] {
            if index + 1 == complete && partial == 0 {
                // The last record, torn by a crash mid-append.
                break;
            }
            return Err((
                (HEADER_BYTES + index * RECORD_BYTES) as u64,
                NonceLogProblem::RecordChecksum {
                    record: index as u64,
                },
            ));
        }
        records.push(Record {
            signer: UserPublicKey::from_bytes(array(chunk, 0)),
            nonce: Nonce::from_bytes(array(chunk, 32)),
            issued_at: u64::from_le_bytes(array(chunk, 48)),
        });
    }
    Ok(ParsedLog {
        floor,
        valid_bytes: (HEADER_BYTES + records.len() * RECORD_BYTES) as u64,
        records,
    })
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::fs::temp_dir;
    use crate::key::UserKey;
    use crate::request::{DeploymentId, Digest, Mode, REQUEST_VERSION, Request};
    use crate::seal::X25519Public;

    const NOW: u64 = 1_700_000_000;
    const WINDOW: u64 = 300;

    fn signed(key: &UserKey, issued_at: u64) -> SignedRequest {
        Request {
            version: REQUEST_VERSION,
            deployment: DeploymentId::from_bytes([1; 32]),
            mode: Mode::Design,
            body: Digest::of(b"plan"),
            approval: None,
            nonce: Nonce::generate().unwrap(),
            issued_at,
            result_key: X25519Public::from_bytes([6; 32]),
            signer: key.public(),
        }
        .sign(key)
        .unwrap()
    }

    fn log_len(store: &NonceStore) -> u64 {
        fs::metadata(store.path()).unwrap().len()
    }

    #[test]
    fn a_replay_is_refused_also_after_a_restart() {
        let dir = temp_dir("nonce-restart");
        let key = UserKey::generate().unwrap();
        let first = signed(&key, NOW);
        let second = signed(&key, NOW - 10);
        {
            let mut store = NonceStore::open(&dir).unwrap();
            assert!(store.is_empty());
            store.check_and_record(&first, NOW, WINDOW).unwrap();
            let error = store.check_and_record(&first, NOW, WINDOW).unwrap_err();
            assert!(matches!(error, AuthError::Replay { .. }), "{error}");
            store.check_and_record(&second, NOW, WINDOW).unwrap();
            assert_eq!(store.len(), 2);
        }
        let mut store = NonceStore::open(&dir).unwrap();
        assert_eq!(store.len(), 2);
        assert_eq!(store.discarded_tail_bytes(), 0);
        for request in [&first, &second] {
            let error = store
                .check_and_record(request, NOW + 1, WINDOW)
                .unwrap_err();
            assert!(matches!(error, AuthError::Replay { .. }), "{error}");
        }
        // Another signer may use the same nonce.
        let other = UserKey::generate().unwrap();
        let mut same_nonce = first.request.clone();
        same_nonce.signer = other.public();
        let same_nonce = same_nonce.sign(&other).unwrap();
        store.check_and_record(&same_nonce, NOW, WINDOW).unwrap();
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn the_window_bounds_are_inclusive() {
        let dir = temp_dir("nonce-window");
        let key = UserKey::generate().unwrap();
        let mut store = NonceStore::open(&dir).unwrap();
        store
            .check_and_record(&signed(&key, NOW - WINDOW), NOW, WINDOW)
            .unwrap();
        store
            .check_and_record(&signed(&key, NOW + WINDOW), NOW, WINDOW)
            .unwrap();
        let error = store
            .check_and_record(&signed(&key, NOW - WINDOW - 1), NOW, WINDOW)
            .unwrap_err();
        assert!(
            matches!(
                error,
                AuthError::RequestTooOld {
                    oldest_accepted,
                    ..
                } if oldest_accepted == NOW - WINDOW
            ),
            "{error}"
        );
        let error = store
            .check_and_record(&signed(&key, NOW + WINDOW + 1), NOW, WINDOW)
            .unwrap_err();
        assert!(
            matches!(error, AuthError::RequestFromFuture { .. }),
            "{error}"
        );
        // Near the ends of u64 nothing overflows.
        store
            .check_and_record(&signed(&key, u64::MAX), 0, u64::MAX)
            .unwrap();
        let error = store
            .check_and_record(&signed(&key, 0), u64::MAX, 10)
            .unwrap_err();
        assert!(matches!(error, AuthError::RequestTooOld { .. }), "{error}");
        assert_eq!(store.len(), 3);
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_bad_signature_is_refused_and_not_recorded() {
        let dir = temp_dir("nonce-forged");
        let key = UserKey::generate().unwrap();
        let mut store = NonceStore::open(&dir).unwrap();
        let genuine = signed(&key, NOW);
        let mut forged = genuine.clone();
        forged.request.body = Digest::of(b"another plan");
        let error = store.check_and_record(&forged, NOW, WINDOW).unwrap_err();
        assert!(matches!(error, AuthError::BadSignature { .. }), "{error}");
        assert!(store.is_empty());
        // The forgery did not use up the genuine request's nonce.
        store.check_and_record(&genuine, NOW, WINDOW).unwrap();
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn compaction_forgets_old_nonces_and_keeps_its_floor() {
        let dir = temp_dir("nonce-compact");
        let key = UserKey::generate().unwrap();
        let old = signed(&key, NOW - 200);
        let recent = signed(&key, NOW);
        let mut store = NonceStore::open(&dir).unwrap();
        store.check_and_record(&old, NOW, WINDOW).unwrap();
        store.check_and_record(&recent, NOW, WINDOW).unwrap();
        let before = log_len(&store);
        // 200 seconds later the old request is outside the window.
        store.compact(NOW + 200, WINDOW).unwrap();
        assert_eq!(store.len(), 1);
        assert_eq!(store.floor(), NOW + 200 - WINDOW);
        assert_eq!(log_len(&store), before - RECORD_BYTES as u64);
        assert!(!temp_path(store.path()).exists());
        // Still appendable after the rename.
        store
            .check_and_record(&signed(&key, NOW + 200), NOW + 200, WINDOW)
            .unwrap();
        drop(store);
        let mut store = NonceStore::open(&dir).unwrap();
        assert_eq!(store.len(), 2);
        assert_eq!(store.floor(), NOW + 200 - WINDOW);
        assert!(matches!(
            store.check_and_record(&recent, NOW + 200, WINDOW),
            Err(AuthError::Replay { .. })
        ));
        // The clock going back does not bring the forgotten nonce back.
        let error = store.check_and_record(&old, NOW, WINDOW).unwrap_err();
        assert!(
            matches!(
                error,
                AuthError::RequestTooOld {
                    oldest_accepted,
                    ..
                } if oldest_accepted == NOW + 200 - WINDOW
            ),
            "{error}"
        );
        // Nor does compacting with an earlier clock move the floor back.
        store.compact(NOW, WINDOW).unwrap();
        assert_eq!(store.floor(), NOW + 200 - WINDOW);
        assert_eq!(store.len(), 2);
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_torn_last_record_is_dropped_and_truncated() {
        let dir = temp_dir("nonce-torn");
        let key = UserKey::generate().unwrap();
        let kept = signed(&key, NOW);
        let path = {
            let mut store = NonceStore::open(&dir).unwrap();
            store.check_and_record(&kept, NOW, WINDOW).unwrap();
            store.path().to_path_buf()
        };
        let good_len = fs::metadata(&path).unwrap().len();
        for tail in [
            vec![0xaa; 10],
            vec![0; RECORD_BYTES],
            vec![0x55; RECORD_BYTES - 1],
        ] {
            let mut file = OpenOptions::new().append(true).open(&path).unwrap();
            file.write_all(&tail).unwrap();
            drop(file);
            let mut store = NonceStore::open(&dir).unwrap();
            assert_eq!(store.discarded_tail_bytes(), tail.len() as u64);
            assert_eq!(fs::metadata(&path).unwrap().len(), good_len);
            assert!(matches!(
                store.check_and_record(&kept, NOW, WINDOW),
                Err(AuthError::Replay { .. })
            ));
        }
        // A stale temporary file from a crashed compaction is removed.
        fs::write(temp_path(&path), b"half a compaction").unwrap();
        let store = NonceStore::open(&dir).unwrap();
        assert_eq!(store.len(), 1);
        assert!(!temp_path(&path).exists());
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn damage_in_the_middle_is_an_error() {
        let dir = temp_dir("nonce-damage");
        let key = UserKey::generate().unwrap();
        let path = {
            let mut store = NonceStore::open(&dir).unwrap();
            for offset in 0..3 {
                store
                    .check_and_record(&signed(&key, NOW + offset), NOW, WINDOW)
                    .unwrap();
            }
            store.path().to_path_buf()
        };
        let mut bytes = fs::read(&path).unwrap();
        bytes[HEADER_BYTES + RECORD_BYTES + 40] ^= 1;
        fs::write(&path, &bytes).unwrap();
        let error = NonceStore::open(&dir).unwrap_err();
        assert!(
            matches!(
                &error,
                AuthError::NonceLogCorrupt {
                    offset: 96,
                    problem: NonceLogProblem::RecordChecksum { record: 1 },
                    ..
                }
            ),
            "{error}"
        );
        assert!(error.to_string().contains("nonces.log"), "{error}");
        // Nothing was truncated: the damage is for an operator to look at.
        assert_eq!(fs::read(&path).unwrap(), bytes);
        fs::write(&path, b"something else entirely, at some length").unwrap();
        assert!(matches!(
            NonceStore::open(&dir),
            Err(AuthError::NonceLogCorrupt {
                problem: NonceLogProblem::NotANonceLog,
                ..
            })
        ));
        let mut header = encode_header(7);
        header[20] ^= 1;
        fs::write(&path, header).unwrap();
        assert!(matches!(
            NonceStore::open(&dir),
            Err(AuthError::NonceLogCorrupt {
                problem: NonceLogProblem::HeaderChecksum,
                ..
            })
        ));
        fs::remove_dir_all(dir).unwrap();
    }

    fn arbitrary_record() -> impl Strategy<Value = Record> {
        (any::<[u8; 32]>(), any::<[u8; 16]>(), any::<u64>()).prop_map(
            |(signer, nonce, issued_at)| Record {
                signer: UserPublicKey::from_bytes(signer),
                nonce: Nonce::from_bytes(nonce),
                issued_at,
            },
        )
    }

    proptest! {
        #[test]
        fn parsing_arbitrary_bytes_never_panics(
            bytes in proptest::collection::vec(any::<u8>(), 0..400),
            with_header in any::<bool>(),
        ) {
            let mut log = if with_header { encode_header(3).to_vec() } else { Vec::new() };
            log.extend_from_slice(&bytes);
            if let Ok(parsed) = parse_log(&log) {
                prop_assert!(parsed.valid_bytes <= log.len() as u64);
                prop_assert!(log.len() as u64 - parsed.valid_bytes <= RECORD_BYTES as u64);
            }
        }

        #[test]
        fn records_round_trip_and_any_torn_tail_is_tolerated(
            floor in any::<u64>(),
            records in proptest::collection::vec(arbitrary_record(), 0..8),
            tail in proptest::collection::vec(any::<u8>(), 0..=RECORD_BYTES),
        ) {
            let mut log = encode_header(floor).to_vec();
            for record in &records {
                log.extend_from_slice(&encode_record(record));
            }
            let valid = log.len() as u64;
            log.extend_from_slice(&tail);
            let parsed = parse_log(&log).unwrap();
            prop_assert_eq!(parsed.floor, floor);
            // A full-length tail may happen to be a valid record.
            prop_assert!(parsed.records.len() == records.len()
                || (parsed.records.len() == records.len() + 1 && tail.len() == RECORD_BYTES));
            prop_assert_eq!(&parsed.records[..records.len()], &records[..]);
            prop_assert!(parsed.valid_bytes >= valid);
        }

        #[test]
        fn a_changed_byte_before_the_last_record_is_never_ignored(
            records in proptest::collection::vec(arbitrary_record(), 2..6),
            position in any::<prop::sample::Index>(),
            flip in 1u8..,
        ) {
            let mut log = encode_header(0).to_vec();
            for record in &records {
                log.extend_from_slice(&encode_record(record));
            }
            let before_last = log.len() - RECORD_BYTES;
            let position = position.index(before_last);
            log[position] ^= flip;
            prop_assert!(parse_log(&log).is_err());
        }
    }
}
