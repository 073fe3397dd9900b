//! The node's audit log: an append-only, hash-chained record of every
//! request this node handled, and the signed heads its peers sent it.
//!
//! # What this module owns
//!
//! - `<data_dir>/audit/log.jsonl` ([`LOG_FILE`]): one JSON line per request,
//!   `{"seq":N,"prev":"<hex>","hash":"<hex>","entry":{...}}`. Each line is
//!   written and fsynced before [`AuditLog::append`] returns, so a request
//!   the node reports as done is never missing from its log.
//! - `<data_dir>/audit/peer-heads.jsonl` ([`PEER_HEADS_FILE`]): one
//!   [`SignedHead`] per line, each a head another node signed and sent here.
//!   These are what make one operator's rewrite visible: an operator can
//!   recompute every hash of its own log, but not the heads it already
//!   signed and that sit on the other two nodes' disks.
//! - The checks: [`AuditLog::open`] and [`verify_chain`] verify one chain;
//!   [`cross_verify`] checks every recorded head against the log of the node
//!   that signed it.
//!
//! # The chain
//!
//! Entry `seq` (from 0) has
//! `hash = BLAKE3("triad/audit/v1" || seq (u64 LE) || prev (32) || entry)`,
//! where `prev` is the previous entry's hash (32 zero bytes for entry 0) and
//! `entry` is the canonical encoding of the [`AuditEntry`]: its fields in
//! declaration order, every integer little-endian and fixed-width, which is
//! what bincode 2.0.1's serde path writes with
//! `standard().with_fixed_int_encoding()` (a test checks that they agree):
//!
//! | field | bytes |
//! | --- | --- |
//! | `time` | 8: u64 |
//! | `user`, `request`, `kind`, `mode` | 8 (u64 length) + UTF-8 bytes, each |
//! | `script` | 1: 0, or 1 then 8 + UTF-8 bytes |
//! | `step` | 1: 0, or 1 then 4: u32 |
//! | `plan` | 1: 0, or 1 then 8 + UTF-8 bytes |
//! | `revealed`, `status` | 8 + UTF-8 bytes, each |
//!
//! The hash covers the decoded entry, not the JSON text, so the JSON's key
//! order and escaping are free; unknown fields are refused so that nothing
//! outside the hash can ride along in the file.
//!
//! A [`Head`] is (deployment, node, number of entries, last hash); a
//! [`SignedHead`] is signed by the node's operator key over
//! `"triad/audit-head/v1" || deployment (32) || node (1) || seq (u64 LE) ||
//! hash (32)` ([`Head::signed_bytes`]).
//!
//! A log may also be *continued*: a node rebuilt from the other two after
//! losing its disk has lost its log, but its peers still hold heads it
//! signed, and a new log from seq 0 would look to them like a rollback.
//! So the new log continues from the highest head (S, H) they recorded
//! ([`AuditLog::continue_from`]): its first line has seq S and prev H, the
//! hash of entry S - 1, which this log does not hold. That first entry must
//! be a [`RECOVER_KIND`] entry, or cutting the front off a log would
//! verify; the survivors log the recovery too. Such a chain verifies from
//! its first line on ([`ChainReport::first_seq`]); [`cross_verify`] checks
//! the recorded heads from seq S on as usual (the one at S against the
//! first line's prev) and notes those below S as lost, not as damage
//! ([`ProblemKind::BeforeRecovery`]).
//!
//! # Crashes and damage
//!
//! A crash can tear only the line being appended, which is then the last
//! thing in the file and has no newline: opening truncates it and returns
//! an [`AuditWarning`] (its request was never reported done). Anything else
//! that does not verify is an [`AuditError`] naming the file and line. A
//! torn-looking tail can also be an operator deleting the last newline; that
//! is a truncation, which the peers' recorded heads catch like any other.
//!
//! # What it must not do
//!
//! - No networking, no clock, no policy: the server passes the time in each
//!   entry, moves heads between nodes, and decides what to log.
//! - No secrets: entries hold public keys, digests, handles and statuses,
//!   never share values, result keys or plaintext results; errors quote only
//!   paths, line numbers, hashes and what is wrong.
//! - No panics on anything read from disk or received from a peer.
//! - One process owns an audit directory at a time: there is no lock, and
//!   two writers would interleave lines.

use std::collections::BTreeMap;
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use triad_auth::{DeploymentId, Digest, Signature, UserKey, UserPublicKey};

/// The audit directory's name under the node's data directory.
pub const AUDIT_DIR: &str = "audit";
/// The chained log's file name in the audit directory.
pub const LOG_FILE: &str = "log.jsonl";
/// The recorded peer heads' file name in the audit directory.
pub const PEER_HEADS_FILE: &str = "peer-heads.jsonl";
/// Domain of the entry hashes.
pub const ENTRY_DOMAIN: &str = "triad/audit/v1";
/// Domain of the head signatures; no other signed document's domain is a
/// prefix of it, or it of them.
pub const HEAD_DOMAIN: &str = "triad/audit-head/v1";
/// Length of [`Head::signed_bytes`].
pub const HEAD_BYTES: usize = 32 + 1 + 8 + 32;
/// The [`AuditEntry::kind`] of a node recovery: the first entry of a
/// continued log (see [`AuditLog::continue_from`]), and an ordinary entry
/// on the two nodes it was rebuilt from.
pub const RECOVER_KIND: &str = "recover";

const NODES: u8 = 3;
const ZERO_HASH: [u8; 32] = [0; 32];

/// The audit directory of a node whose data directory is `data_dir`.
pub fn audit_dir(data_dir: &Path) -> PathBuf {
    data_dir.join(AUDIT_DIR)
}

// ---------------------------------------------------------------------------
// Entries and heads.

/// One request as this node saw it. Every field is public information; the
/// strings are hex or short words so that the log reads without tools.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditEntry {
    /// When the node finished with the request, unix seconds; from the
    /// server's clock, since this module reads none.
    pub time: u64,
    /// Who asked: the signer's public key, hex.
    pub user: String,
    /// Which request: its digest, hex, the same on all three nodes, so the
    /// three logs can be lined up.
    pub request: String,
    /// What was asked: upload, query, sum, ...
    pub kind: String,
    /// design or authorized: the namespace the request ran in.
    pub mode: String,
    /// The approval digest, hex, for authorized requests.
    pub script: Option<String>,
    /// The step of the approved script.
    pub step: Option<u32>,
    /// The body or plan digest, hex: what exactly ran.
    pub plan: Option<String>,
    /// What left the node and to whom, e.g. "1 word sealed to `<key hex>`",
    /// "handle `<h>`", "nothing".
    pub revealed: String,
    /// How it ended: ok, or the error's name.
    pub status: String,
}

impl AuditEntry {
    /// The canonical encoding the chain hashes (see the module docs).
    pub fn canonical_bytes(&self) -> Vec<u8> {
        fn string(out: &mut Vec<u8>, text: &str) {
            out.extend_from_slice(&(text.len() as u64).to_le_bytes());
            out.extend_from_slice(text.as_bytes());
        }
        fn optional_string(out: &mut Vec<u8>, text: &Option<String>) {
            match text {
                None => out.push(0),
                Some(text) => {
                    out.push(1);
                    string(out, text);
                }
            }
        }
        let mut out = Vec::with_capacity(
            64 + self.user.len()
                + self.request.len()
                + self.kind.len()
                + self.mode.len()
                + self.revealed.len()
                + self.status.len(),
        );
        out.extend_from_slice(&self.time.to_le_bytes());
        string(&mut out, &self.user);
        string(&mut out, &self.request);
        string(&mut out, &self.kind);
        string(&mut out, &self.mode);
        optional_string(&mut out, &self.script);
        match self.step {
            None => out.push(0),
            Some(step) => {
                out.push(1);
                out.extend_from_slice(&step.to_le_bytes());
            }
        }
        optional_string(&mut out, &self.plan);
        string(&mut out, &self.revealed);
        string(&mut out, &self.status);
        out
    }
}

/// The hash of entry `seq`, chained to `prev`.
pub fn entry_hash(seq: u64, prev: &[u8; 32], entry: &AuditEntry) -> [u8; 32] {
    let mut hasher = blake3::Hasher::new();
    hasher.update(ENTRY_DOMAIN.as_bytes());
    hasher.update(&seq.to_le_bytes());
    hasher.update(prev);
    hasher.update(&entry.canonical_bytes());
    *hasher.finalize().as_bytes()
}

/// Where one node's log stands: enough for anyone holding a later copy of
/// the log to check that it still starts with what the head committed to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Head {
    /// The deployment, so that a head cannot be replayed into another.
    pub deployment: DeploymentId,
    /// The node whose log this is: 0, 1 or 2.
    pub node: u8,
    /// The number of entries.
    pub seq: u64,
    /// The hash of entry `seq - 1`; zeros for an empty log.
    #[serde(with = "hash_serde")]
    pub hash: [u8; 32],
}

impl Head {
    /// The bytes the operator signs, after [`HEAD_DOMAIN`].
    pub fn signed_bytes(&self) -> [u8; HEAD_BYTES] {
        let mut out = [0u8; HEAD_BYTES];
        out[..32].copy_from_slice(self.deployment.as_bytes());
        out[32] = self.node;
        out[33..41].copy_from_slice(&self.seq.to_le_bytes());
        out[41..].copy_from_slice(&self.hash);
        out
    }

    /// The last hash as hex.
    pub fn hash_hex(&self) -> String {
        Digest::from_bytes(self.hash).to_string()
    }
}

impl fmt::Display for Head {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "node {} at {} entries, hash {}",
            self.node,
            self.seq,
            self.hash_hex()
        )
    }
}

/// A [`Head`] signed by its node's operator key. Nodes send these to their
/// peers after each request, and clients receive the three with each
/// result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedHead {
    /// What is signed.
    pub head: Head,
    /// The operator's signature over [`HEAD_DOMAIN`] and
    /// [`Head::signed_bytes`].
    pub signature: Signature,
}

impl SignedHead {
    /// Signs `head` with `key`, the operator key of `head.node`.
    pub fn sign(head: Head, key: &UserKey) -> SignedHead {
        SignedHead {
            head,
            signature: key.sign_in_domain(HEAD_DOMAIN, &head.signed_bytes()),
        }
    }

    /// Whether `operator` signed this head.
    pub fn verify(&self, operator: &UserPublicKey) -> Result<(), AuditError> {
        operator
            .verify_in_domain(HEAD_DOMAIN, &self.head.signed_bytes(), &self.signature)
            .map_err(|_| AuditError::PeerHead {
                node: self.head.node,
                problem: PeerHeadProblem::BadSignature,
            })
    }
}

/// Hashes as hex in JSON and as 32 raw bytes in bincode, the way
/// [`Digest`] does it.
mod hash_serde {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    use triad_auth::Digest;

    pub(super) fn serialize<S: Serializer>(
        hash: &[u8; 32],
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        Digest::from_bytes(*hash).serialize(serializer)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<[u8; 32], D::Error> {
        Digest::deserialize(deserializer).map(|digest| *digest.as_bytes())
    }
}

// ---------------------------------------------------------------------------
// Errors.

/// Why the audit log cannot be opened, verified or written, or a head is
/// refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuditError {
    /// Reading or writing a file failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: io::Error,
    },
    /// A line of a file does not verify.
    #[error("{} line {line}: {problem}", path.display())]
    Line {
        /// The file.
        path: PathBuf,
        /// The line, from 1.
        line: u64,
        /// What is wrong with it.
        problem: LineProblem,
    },
    /// A head from a peer was refused.
    #[error("head from node {node} refused: {problem}")]
    PeerHead {
        /// The node the head names.
        node: u8,
        /// Why.
        problem: PeerHeadProblem,
    },
    /// A node index outside 0..=2, or given twice.
    #[error("node {node}: {problem}")]
    Node {
        /// The index.
        node: u8,
        /// What is wrong with it.
        problem: &'static str,
    },
    /// [`AuditLog::continue_from`] or [`AuditLog::append`] refused: the
    /// head is not this log's, the log already has entries, or a continued
    /// log's first entry is not a recovery.
    #[error("{}: {problem}", path.display())]
    Refused {
        /// The log file.
        path: PathBuf,
        /// Why.
        problem: &'static str,
    },
    /// An earlier write failed and its partial line could not be removed;
    /// appending more would bury it mid-file.
    #[error("{}: an earlier write failed and could not be undone; reopen the log", path.display())]
    Poisoned {
        /// The file.
        path: PathBuf,
    },
}

/// What is wrong with one line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LineProblem {
    /// The line is not UTF-8.
    #[error("not UTF-8")]
    NotUtf8,
    /// The line is not a record of this file's shape.
    #[error("not JSON of the expected shape: {reason}")]
    NotJson {
        /// serde_json's explanation.
        reason: String,
    },
    /// Lines are numbered from 0 with no gaps: one was removed or moved.
    #[error("wrong seq: expected {expected}, found {found}")]
    WrongSeq {
        /// The line's position.
        expected: u64,
        /// What it says.
        found: u64,
    },
    /// The first line's seq is not 0 and it is not a [`RECOVER_KIND`]
    /// entry: only a recovery may begin a log past seq 0.
    #[error("wrong seq: the log starts at {found}, not 0, without a \"{RECOVER_KIND}\" entry")]
    NotARecovery {
        /// What the line says.
        found: u64,
    },
    /// The seq is `u64::MAX`: no head could count the entry.
    #[error("wrong seq: {found} is too large")]
    SeqTooLarge {
        /// What the line says.
        found: u64,
    },
    /// The line does not chain to the one before it.
    #[error("wrong prev: the previous entry's hash is {expected}, the line says {found}")]
    WrongPrev {
        /// The previous line's hash.
        expected: Digest,
        /// What this line says.
        found: Digest,
    },
    /// The stated hash is not the hash of the entry: the entry was changed.
    #[error("bad hash: the line says {stated}, its entry hashes to {computed}")]
    BadHash {
        /// What the line says.
        stated: Digest,
        /// What the entry hashes to.
        computed: Digest,
    },
    /// A recorded peer head that would have been refused when received.
    #[error("{0}")]
    PeerHead(PeerHeadProblem),
}

/// Why a peer head is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PeerHeadProblem {
    /// The signature does not verify with the node's operator key.
    #[error("bad signature")]
    BadSignature,
    /// The head names a node that does not exist.
    #[error("node index out of range")]
    NodeOutOfRange,
    /// The head names the node that received it.
    #[error("it names this node itself")]
    OwnNode,
    /// The head is for another deployment.
    #[error("deployment {found}, expected {expected}")]
    WrongDeployment {
        /// This node's.
        expected: DeploymentId,
        /// The head's.
        found: DeploymentId,
    },
    /// The peer's log is shorter than a head it signed earlier.
    #[error("rolled back: {recorded} entries recorded earlier, now {offered}")]
    RolledBack {
        /// The highest seq recorded from that node.
        recorded: u64,
        /// The offered head's seq.
        offered: u64,
    },
    /// The peer signed two different heads with the same seq.
    #[error("forked: a different hash was recorded earlier at {seq} entries")]
    Forked {
        /// The seq.
        seq: u64,
    },
}

/// Something [`AuditLog::open`] repaired.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum AuditWarning {
    /// A final line without a newline, from a crash mid-append, was cut.
    TornTail {
        /// The file.
        path: PathBuf,
        /// How many bytes were cut.
        bytes: u64,
    },
}

impl fmt::Display for AuditWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AuditWarning::TornTail { path, bytes } => write!(
                f,
                "{}: cut a torn final line of {bytes} bytes (a crash mid-append)",
                path.display()
            ),
        }
    }
}

fn io_error(path: &Path) -> impl FnOnce(io::Error) -> AuditError + '_ {
    move |source| AuditError::Io {
        path: path.to_owned(),
        source,
    }
}

// ---------------------------------------------------------------------------
// Reading files.

/// One line of `log.jsonl`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Record {
    seq: u64,
    prev: Digest,
    hash: Digest,
    entry: AuditEntry,
}

/// What a scan of a line file found besides its lines.
#[derive(Debug, Default)]
struct Scan {
    /// Bytes of complete lines: where the next line goes.
    valid_bytes: u64,
    /// Bytes of a final line without a newline.
    torn_bytes: u64,
}

/// Calls `each` with every complete line of `path` (without its newline)
/// and its number from 1. `None` if the file does not exist.
fn scan_lines(
    path: &Path,
    mut each: impl FnMut(u64, &[u8]) -> Result<(), LineProblem>,
) -> Result<Option<Scan>, AuditError> {
    let file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_error(path)(e)),
    };
    let mut reader = BufReader::new(file);
    let mut scan = Scan::default();
    let mut line = Vec::new();
    let mut number = 0u64;
    loop {
        line.clear();
        let read = reader
            .read_until(b'\n', &mut line)
            .map_err(io_error(path))?;
        if read == 0 {
            return Ok(Some(scan));
        }
        if line.last() != Some(&b'\n') {
            scan.torn_bytes = read as u64;
            return Ok(Some(scan));
        }
        number += 1;
        each(number, &line[..line.len() - 1]).map_err(|problem| AuditError::Line {
            path: path.to_owned(),
            line: number,
            problem,
        })?;
        scan.valid_bytes += read as u64;
    }
}

fn parse_json<'a, T: Deserialize<'a>>(line: &'a [u8]) -> Result<T, LineProblem> {
    let text = std::str::from_utf8(line).map_err(|_| LineProblem::NotUtf8)?;
    serde_json::from_str(text).map_err(|e| LineProblem::NotJson {
        reason: e.to_string(),
    })
}

/// A chain read so far.
#[derive(Debug)]
struct Chain {
    /// The seq of the first line: 0, or S for a continued log.
    first_seq: u64,
    /// The first line's prev: zeros, or for a continued log the hash of
    /// entry S - 1, which only the peers' recorded heads can vouch for.
    first_prev: [u8; 32],
    /// The seq the next line must have: lost entries of a continued log
    /// count, so that this is the head's seq.
    entries: u64,
    last: [u8; 32],
    /// The hash of every entry held (from `first_seq`), when the caller
    /// needs to look heads up.
    hashes: Option<Vec<[u8; 32]>>,
}

impl Chain {
    fn new(keep_hashes: bool) -> Chain {
        Chain {
            first_seq: 0,
            first_prev: ZERO_HASH,
            entries: 0,
            last: ZERO_HASH,
            hashes: keep_hashes.then(Vec::new),
        }
    }

    fn push_line(&mut self, line: &[u8]) -> Result<(), LineProblem> {
        let record: Record = parse_json(line)?;
        // Refused here so that `entries + 1` cannot overflow on a crafted
        // file; `append` never writes it.
        if record.seq == u64::MAX {
            return Err(LineProblem::SeqTooLarge { found: record.seq });
        }
        // Every line increments `entries`, so 0 means this is the first.
        if self.entries == 0 && record.seq != 0 {
            // A log that lost its front must say so, in an entry the
            // survivors' heads from seq S + 1 on commit to.
            if record.entry.kind != RECOVER_KIND {
                return Err(LineProblem::NotARecovery { found: record.seq });
            }
            self.first_seq = record.seq;
            self.first_prev = *record.prev.as_bytes();
            self.entries = record.seq;
            self.last = self.first_prev;
        }
        if record.seq != self.entries {
            return Err(LineProblem::WrongSeq {
                expected: self.entries,
                found: record.seq,
            });
        }
        if *record.prev.as_bytes() != self.last {
            return Err(LineProblem::WrongPrev {
                expected: Digest::from_bytes(self.last),
                found: record.prev,
            });
        }
        let computed = entry_hash(record.seq, &self.last, &record.entry);
        if computed != *record.hash.as_bytes() {
            return Err(LineProblem::BadHash {
                stated: record.hash,
                computed: Digest::from_bytes(computed),
            });
        }
        self.entries += 1;
        self.last = computed;
        if let Some(hashes) = &mut self.hashes {
            hashes.push(computed);
        }
        Ok(())
    }

    /// The hash a head at `seq` must carry, if the chain holds it: `None`
    /// past the end, and before `first_seq` (lost with a rebuilt node's
    /// disk).
    fn hash_at(&self, seq: u64) -> Option<[u8; 32]> {
        if seq < self.first_seq || seq > self.entries {
            return None;
        }
        if seq == self.first_seq {
            return Some(self.first_prev);
        }
        let index = usize::try_from(seq - self.first_seq - 1).ok()?;
        self.hashes.as_ref()?.get(index).copied()
    }

    fn report(&self, scan: &Scan) -> ChainReport {
        ChainReport {
            entries: self.entries,
            hash: self.last,
            torn_tail_bytes: scan.torn_bytes,
            first_seq: self.first_seq,
        }
    }
}

fn read_chain(path: &Path, keep_hashes: bool) -> Result<Option<(Chain, Scan)>, AuditError> {
    let mut chain = Chain::new(keep_hashes);
    let scan = scan_lines(path, |_, line| chain.push_line(line))?;
    Ok(scan.map(|scan| (chain, scan)))
}

/// Every head in a peer-heads file, with its line number; only the shape is
/// checked here.
/// Heads with the lines they were read from.
type NumberedHeads = Vec<(u64, SignedHead)>;

fn read_peer_heads(path: &Path) -> Result<Option<(NumberedHeads, Scan)>, AuditError> {
    let mut heads = Vec::new();
    let scan = scan_lines(path, |number, line| {
        heads.push((number, parse_json(line)?));
        Ok(())
    })?;
    Ok(scan.map(|scan| (heads, scan)))
}

/// What a node checks of a peer head before the signature: everything
/// that does not need the operator's key.
fn check_peer_head_shape(
    head: &Head,
    deployment: DeploymentId,
    own_node: u8,
) -> Result<(), PeerHeadProblem> {
    if head.node >= NODES {
        return Err(PeerHeadProblem::NodeOutOfRange);
    }
    if head.node == own_node {
        return Err(PeerHeadProblem::OwnNode);
    }
    if head.deployment != deployment {
        return Err(PeerHeadProblem::WrongDeployment {
            expected: deployment,
            found: head.deployment,
        });
    }
    Ok(())
}

/// Whether `offered` may follow `recorded`: `Ok(true)` to record it,
/// `Ok(false)` for a repeat of the same head.
fn check_peer_head_order(recorded: Option<&Head>, offered: &Head) -> Result<bool, PeerHeadProblem> {
    let Some(recorded) = recorded else {
        return Ok(true);
    };
    if offered.seq < recorded.seq {
        return Err(PeerHeadProblem::RolledBack {
            recorded: recorded.seq,
            offered: offered.seq,
        });
    }
    if offered.seq == recorded.seq {
        if offered.hash != recorded.hash {
            return Err(PeerHeadProblem::Forked { seq: offered.seq });
        }
        return Ok(false);
    }
    Ok(true)
}

// ---------------------------------------------------------------------------
// Appending.

/// A line file opened for appending, which knows where its last complete
/// line ends so that a failed write can be cut off again.
#[derive(Debug)]
struct AppendFile {
    path: PathBuf,
    file: File,
    bytes: u64,
    poisoned: bool,
}

impl AppendFile {
    /// Opens `path`, creating it, and cuts anything after `valid_bytes`.
    fn open(path: &Path, valid_bytes: u64) -> Result<AppendFile, AuditError> {
        let existed = path.exists();
        let file = OpenOptions::new()
            .append(true)
            .create(true)
            .open(path)
            .map_err(io_error(path))?;
        let length = file.metadata().map_err(io_error(path))?.len();
        if length != valid_bytes {
            file.set_len(valid_bytes).map_err(io_error(path))?;
            file.sync_all().map_err(io_error(path))?;
        }
        if !existed {
            sync_parent(path)?;
        }
        Ok(AppendFile {
            path: path.to_owned(),
            file,
            bytes: valid_bytes,
            poisoned: false,
        })
    }

    fn append_line(&mut self, mut line: Vec<u8>) -> Result<(), AuditError> {
        if self.poisoned {
            return Err(AuditError::Poisoned {
                path: self.path.clone(),
            });
        }
        line.push(b'\n');
        let written = self
            .file
            .write_all(&line)
            .and_then(|()| self.file.sync_data());
        if let Err(source) = written {
            // Part of the line may be on disk; the next append would land
            // after it and turn a torn tail into damage mid-file.
            let undone = self
                .file
                .set_len(self.bytes)
                .and_then(|()| self.file.sync_all());
            if undone.is_err() {
                self.poisoned = true;
            }
            return Err(AuditError::Io {
                path: self.path.clone(),
                source,
            });
        }
        self.bytes += line.len() as u64;
        Ok(())
    }
}

/// Makes a new directory entry durable.
fn sync_parent(path: &Path) -> Result<(), AuditError> {
    #[cfg(unix)]
    if let Some(parent) = path.parent() {
        let parent = if parent.as_os_str().is_empty() {
            Path::new(".")
        } else {
            parent
        };
        File::open(parent)
            .and_then(|dir| dir.sync_all())
            .map_err(io_error(parent))?;
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

// ---------------------------------------------------------------------------
// The log.

/// This node's audit log, open for appending. Methods take `&mut self`: the
/// server keeps one behind a mutex.
#[derive(Debug)]
pub struct AuditLog {
    deployment: DeploymentId,
    node: u8,
    dir: PathBuf,
    log: AppendFile,
    head: Head,
    peers: AppendFile,
    /// The latest head recorded from each peer: a lower one is a rollback.
    peer_heads: BTreeMap<u8, Head>,
    warnings: Vec<AuditWarning>,
    /// Set by [`AuditLog::continue_from`] until the recover entry is
    /// written: nothing else may begin a continued log.
    awaiting_recover: bool,
}

impl AuditLog {
    /// Opens (creating if needed) the audit directory `dir` of node `node`
    /// (see [`audit_dir`]), verifying the whole chain and the recorded peer
    /// heads. A torn final line in either file is cut; see
    /// [`AuditLog::warnings`].
    pub fn open(dir: &Path, deployment: DeploymentId, node: u8) -> Result<AuditLog, AuditError> {
        if node >= NODES {
            return Err(AuditError::Node {
                node,
                problem: "not 0, 1 or 2",
            });
        }
        if !dir.is_dir() {
            fs::create_dir_all(dir).map_err(io_error(dir))?;
            sync_parent(dir)?;
        }
        let mut warnings = Vec::new();

        let log_path = dir.join(LOG_FILE);
        let (chain, scan) =
            read_chain(&log_path, false)?.unwrap_or_else(|| (Chain::new(false), Scan::default()));
        if scan.torn_bytes > 0 {
            warnings.push(AuditWarning::TornTail {
                path: log_path.clone(),
                bytes: scan.torn_bytes,
            });
        }
        let log = AppendFile::open(&log_path, scan.valid_bytes)?;

        let peers_path = dir.join(PEER_HEADS_FILE);
        let (heads, scan) = read_peer_heads(&peers_path)?.unwrap_or_default();
        let mut peer_heads = BTreeMap::new();
        for (line, signed) in heads {
            let head = signed.head;
            check_peer_head_shape(&head, deployment, node)
                .and_then(|()| check_peer_head_order(peer_heads.get(&head.node), &head))
                .map_err(|problem| AuditError::Line {
                    path: peers_path.clone(),
                    line,
                    problem: LineProblem::PeerHead(problem),
                })?;
            peer_heads.insert(head.node, head);
        }
        if scan.torn_bytes > 0 {
            warnings.push(AuditWarning::TornTail {
                path: peers_path.clone(),
                bytes: scan.torn_bytes,
            });
        }
        let peers = AppendFile::open(&peers_path, scan.valid_bytes)?;

        Ok(AuditLog {
            deployment,
            node,
            dir: dir.to_owned(),
            log,
            head: Head {
                deployment,
                node,
                seq: chain.entries,
                hash: chain.last,
            },
            peers,
            peer_heads,
            warnings,
            awaiting_recover: false,
        })
    }

    /// What opening repaired, for the caller to log.
    pub fn warnings(&self) -> &[AuditWarning] {
        &self.warnings
    }

    /// The audit directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Makes this empty log continue from `head`, the highest head the
    /// peers recorded for this node before it lost its disk: the next
    /// [`AuditLog::append`] writes seq `head.seq` with prev `head.hash`, and
    /// must be a [`RECOVER_KIND`] entry. Nothing is written until then, so a
    /// crash in between leaves an empty log and the recovery is redone.
    ///
    /// Refused if `head` is another deployment's or node's, or this log has
    /// entries (or was continued already). A head at seq 0 changes nothing.
    pub fn continue_from(&mut self, head: Head) -> Result<(), AuditError> {
        let refuse = |problem| AuditError::Refused {
            path: self.log.path.clone(),
            problem,
        };
        if head.deployment != self.deployment {
            return Err(refuse("cannot continue from a head of another deployment"));
        }
        if head.node != self.node {
            return Err(refuse("cannot continue from a head of another node"));
        }
        if self.head.seq != 0 || self.log.bytes != 0 {
            return Err(refuse(
                "cannot continue a log that has entries or was continued already",
            ));
        }
        if head.seq == 0 {
            if head.hash != ZERO_HASH {
                return Err(refuse(
                    "cannot continue from a head at seq 0 with a nonzero hash",
                ));
            }
            return Ok(());
        }
        self.head.seq = head.seq;
        self.head.hash = head.hash;
        self.awaiting_recover = true;
        Ok(())
    }

    /// Appends `entry` durably (written and fsynced) and returns the new
    /// head.
    pub fn append(&mut self, entry: AuditEntry) -> Result<Head, AuditError> {
        let seq = self.head.seq;
        let prev = self.head.hash;
        // Opening would refuse the log otherwise: a continued log's first
        // line must be a recovery.
        if self.awaiting_recover && entry.kind != RECOVER_KIND {
            return Err(AuditError::Refused {
                path: self.log.path.clone(),
                problem: "a continued log must start with a \"recover\" entry",
            });
        }
        // Reading refuses this seq too, so that no head overflows.
        if seq == u64::MAX {
            return Err(AuditError::Refused {
                path: self.log.path.clone(),
                problem: "the log is full",
            });
        }
        let hash = entry_hash(seq, &prev, &entry);
        let record = Record {
            seq,
            prev: Digest::from_bytes(prev),
            hash: Digest::from_bytes(hash),
            entry,
        };
        // Cannot fail: the record has only strings, integers and options,
        // and no maps whose keys JSON could not represent.
        let line = serde_json::to_vec(&record).expect("an audit record serialises to JSON");
        self.log.append_line(line)?;
        self.head.seq = seq + 1;
        self.head.hash = hash;
        self.awaiting_recover = false;
        Ok(self.head)
    }

    /// Where the log stands now.
    pub fn head(&self) -> Head {
        self.head
    }

    /// The head, signed with this node's operator key, to send to the peers
    /// and to clients.
    pub fn sign_head(&self, key: &UserKey) -> SignedHead {
        SignedHead::sign(self.head, key)
    }

    /// The latest head recorded from `node`.
    pub fn peer_head(&self, node: u8) -> Option<Head> {
        self.peer_heads.get(&node).copied()
    }

    /// Checks a head a peer sent and records it durably. `operator` is the
    /// operator key of the node the head names (`signed.head.node`). A
    /// repeat of the latest recorded head is accepted without writing; a
    /// lower seq (the peer rolled its log back) or a different hash at the
    /// same seq (the peer forked it) is refused and not recorded, and the
    /// caller should raise it with the operators.
    pub fn record_peer_head(
        &mut self,
        signed: &SignedHead,
        operator: &UserPublicKey,
    ) -> Result<(), AuditError> {
        let head = signed.head;
        let refuse = |problem| AuditError::PeerHead {
            node: head.node,
            problem,
        };
        check_peer_head_shape(&head, self.deployment, self.node).map_err(refuse)?;
        signed.verify(operator)?;
        if !check_peer_head_order(self.peer_heads.get(&head.node), &head).map_err(refuse)? {
            return Ok(());
        }
        // Cannot fail, as for `append`.
        let line = serde_json::to_vec(signed).expect("a signed head serialises to JSON");
        self.peers.append_line(line)?;
        self.peer_heads.insert(head.node, head);
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// Verification.

/// One verified chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainReport {
    /// How many entries, counting for a continued log the `first_seq`
    /// entries it does not hold: the head's seq.
    pub entries: u64,
    /// The last entry's hash; zeros for an empty log.
    pub hash: [u8; 32],
    /// Bytes of a torn final line, not part of the chain; [`AuditLog::open`]
    /// would cut them.
    pub torn_tail_bytes: u64,
    /// The seq of the first entry held: 0, or where a continued log starts
    /// (see [`AuditLog::continue_from`]).
    pub first_seq: u64,
}

impl ChainReport {
    /// The head of node `node` of `deployment` whose log this is.
    pub fn head(&self, deployment: DeploymentId, node: u8) -> Head {
        Head {
            deployment,
            node,
            seq: self.entries,
            hash: self.hash,
        }
    }
}

/// Verifies the chain in the audit directory `dir` without changing
/// anything. A missing log is an error.
pub fn verify_chain(dir: &Path) -> Result<ChainReport, AuditError> {
    let path = dir.join(LOG_FILE);
    match read_chain(&path, false)? {
        Some((chain, scan)) => Ok(chain.report(&scan)),
        None => Err(AuditError::Io {
            path,
            source: io::Error::from(io::ErrorKind::NotFound),
        }),
    }
}

/// What [`cross_verify`] found about one node.
#[derive(Debug)]
pub struct NodeReport {
    /// The node.
    pub node: u8,
    /// Its chain, if its log was given and verifies.
    pub chain: Option<ChainReport>,
    /// Whether the directory given for it has no log (only peer heads).
    pub log_absent: bool,
    /// Heads this node signed, recorded by the others, that were checked
    /// against its chain and matched.
    pub peer_heads_checked: u64,
    /// Heads this node signed, recorded by the others, that could not be
    /// checked because its chain is absent or broken, or because they are
    /// older than its recovery (see `notes`).
    pub peer_heads_unchecked: u64,
    /// Heads of the others this node recorded.
    pub heads_recorded: u64,
    /// What is wrong with this node's log or with what it recorded.
    pub problems: Vec<Problem>,
    /// What an auditor should know but is not wrong: heads this node signed
    /// before it was rebuilt ([`ProblemKind::BeforeRecovery`]).
    pub notes: Vec<Problem>,
}

/// One finding of [`cross_verify`]: a problem, or a note (see
/// [`NodeReport::notes`]).
#[derive(Debug)]
pub struct Problem {
    /// The node whose log (or recorded heads) is at fault.
    pub node: u8,
    /// The seq (number of entries) of the head involved, if any.
    pub seq: Option<u64>,
    /// What.
    pub kind: ProblemKind,
}

/// What [`cross_verify`] found wrong, or for
/// [`ProblemKind::BeforeRecovery`] worth noting.
#[derive(Debug)]
#[non_exhaustive]
pub enum ProblemKind {
    /// The node's own chain does not verify.
    Chain(AuditError),
    /// The node's peer-heads file cannot be read.
    PeerHeadsFile(AuditError),
    /// A head the node recorded would have been refused on receipt (bad
    /// signature, wrong node or deployment): the file was edited.
    InvalidRecordedHead {
        /// Its line in the node's peer-heads file.
        line: u64,
        /// Why it is refused.
        problem: PeerHeadProblem,
    },
    /// The node signed a head at a seq its log does not reach: the log was
    /// truncated or rolled back.
    Truncated {
        /// The node that recorded the head.
        recorded_by: u8,
        /// How many entries the log has.
        entries: u64,
    },
    /// The node signed a head whose hash its log does not have at that seq:
    /// the log was rewritten.
    Rewritten {
        /// The node that recorded the head.
        recorded_by: u8,
        /// The signed hash.
        signed: Digest,
        /// The log's hash at that seq.
        actual: Digest,
    },
    /// The node signed two different hashes at the same seq.
    Forked {
        /// The nodes that recorded the two heads.
        recorded_by: [u8; 2],
    },
    /// Not a fault, and reported in [`NodeReport::notes`]: the node's log
    /// was rebuilt and continues from seq `first_seq`, so the heads below
    /// it that a peer recorded cannot be checked.
    BeforeRecovery {
        /// The node that recorded the heads.
        recorded_by: u8,
        /// Where the log starts.
        first_seq: u64,
        /// How many of its heads are below `first_seq`.
        heads: u64,
    },
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "node {}", self.node)?;
        if let Some(seq) = self.seq {
            write!(f, " at {seq} entries")?;
        }
        f.write_str(": ")?;
        match &self.kind {
            ProblemKind::Chain(error) => write!(f, "its log does not verify: {error}"),
            ProblemKind::PeerHeadsFile(error) => {
                write!(f, "its recorded peer heads cannot be read: {error}")
            }
            ProblemKind::InvalidRecordedHead { line, problem } => write!(
                f,
                "{PEER_HEADS_FILE} line {line} holds a head it should have refused ({problem})"
            ),
            ProblemKind::Truncated {
                recorded_by,
                entries,
            } => write!(
                f,
                "node {recorded_by} holds a head it signed, but its log has only {entries} entries: truncated or rolled back"
            ),
            ProblemKind::Rewritten {
                recorded_by,
                signed,
                actual,
            } => write!(
                f,
                "node {recorded_by} holds a head it signed with hash {signed}, but its log has {actual} there: rewritten"
            ),
            ProblemKind::Forked { recorded_by } => write!(
                f,
                "nodes {} and {} hold two different heads it signed at the same seq: forked",
                recorded_by[0], recorded_by[1]
            ),
            ProblemKind::BeforeRecovery {
                recorded_by,
                first_seq,
                heads,
            } => write!(
                f,
                "its log was rebuilt at seq {first_seq} and the entries before are lost; {heads} heads below it recorded by node {recorded_by} cannot be checked"
            ),
        }
    }
}

/// What [`cross_verify`] found, per node.
#[derive(Debug)]
pub struct CrossReport {
    /// Nodes 0, 1 and 2, in order.
    pub nodes: Vec<NodeReport>,
}

impl CrossReport {
    /// Every problem found.
    pub fn problems(&self) -> impl Iterator<Item = &Problem> {
        self.nodes.iter().flat_map(|node| node.problems.iter())
    }

    /// Every note: findings that are not problems, to show an auditor.
    pub fn notes(&self) -> impl Iterator<Item = &Problem> {
        self.nodes.iter().flat_map(|node| node.notes.iter())
    }

    /// Whether nothing is wrong; notes do not count.
    pub fn is_clean(&self) -> bool {
        self.problems().next().is_none()
    }
}

/// Verifies the audit directories `logs` (node, directory) of deployment
/// `deployment`, then checks every head a node recorded from a peer: it must
/// be signed by that peer's operator (`operators[peer]`) and match the
/// peer's chain at its seq. A node rewriting or truncating its own log
/// still holds a valid chain, but no longer matches what it signed for the
/// others.
///
/// A directory may hold only a peer-heads file (a verifier with one node's
/// log and the others' recorded heads); heads about a node without a log
/// are counted as unchecked, and so are heads below the start of a
/// continued log, which are also noted ([`CrossReport::notes`]). Damage
/// found is reported, not returned as an error: the error is only for a
/// node index out of range or given twice.
pub fn cross_verify(
    deployment: DeploymentId,
    logs: &[(u8, PathBuf)],
    operators: &[UserPublicKey; 3],
) -> Result<CrossReport, AuditError> {
    let mut dirs: [Option<&Path>; 3] = [None; 3];
    for (node, dir) in logs {
        let slot = dirs.get_mut(usize::from(*node)).ok_or(AuditError::Node {
            node: *node,
            problem: "not 0, 1 or 2",
        })?;
        if slot.replace(dir).is_some() {
            return Err(AuditError::Node {
                node: *node,
                problem: "given twice",
            });
        }
    }

    let mut reports: Vec<NodeReport> = (0..NODES)
        .map(|node| NodeReport {
            node,
            chain: None,
            log_absent: true,
            peer_heads_checked: 0,
            peer_heads_unchecked: 0,
            heads_recorded: 0,
            problems: Vec::new(),
            notes: Vec::new(),
        })
        .collect();

    let mut chains: [Option<Chain>; 3] = [None, None, None];
    let mut recorded: Vec<(u8, u64, SignedHead)> = Vec::new();
    for (node, dir) in (0..NODES).zip(dirs) {
        let Some(dir) = dir else { continue };
        let report = &mut reports[usize::from(node)];
        match read_chain(&dir.join(LOG_FILE), true) {
            Ok(None) => {}
            Ok(Some((chain, scan))) => {
                report.log_absent = false;
                report.chain = Some(chain.report(&scan));
                chains[usize::from(node)] = Some(chain);
            }
            Err(error) => {
                report.log_absent = false;
                report.problems.push(Problem {
                    node,
                    seq: None,
                    kind: ProblemKind::Chain(error),
                });
            }
        }
        match read_peer_heads(&dir.join(PEER_HEADS_FILE)) {
            Ok(None) => {}
            Ok(Some((heads, _))) => {
                report.heads_recorded = heads.len() as u64;
                recorded.extend(heads.into_iter().map(|(line, head)| (node, line, head)));
            }
            Err(error) => report.problems.push(Problem {
                node,
                seq: None,
                kind: ProblemKind::PeerHeadsFile(error),
            }),
        }
    }

    // The first valid head seen at each (signer, seq), to catch forks even
    // where the signer's log is absent.
    let mut seen: BTreeMap<(u8, u64), (u8, [u8; 32])> = BTreeMap::new();
    // Heads older than their signer's recovery, per (signer, recorder):
    // one note each rather than one per head, which would be every request
    // before the recovery.
    let mut lost: BTreeMap<(u8, u8), (u64, u64)> = BTreeMap::new();
    for (recorder, line, signed) in recorded {
        let head = signed.head;
        let shape = check_peer_head_shape(&head, deployment, recorder).and_then(|()| {
            // The shape check bounds head.node.
            signed
                .verify(&operators[usize::from(head.node)])
                .map_err(|_| PeerHeadProblem::BadSignature)
        });
        if let Err(problem) = shape {
            reports[usize::from(recorder)].problems.push(Problem {
                node: recorder,
                seq: Some(head.seq),
                kind: ProblemKind::InvalidRecordedHead { line, problem },
            });
            continue;
        }
        let signer = usize::from(head.node);
        match seen.get(&(head.node, head.seq)) {
            Some(&(first, hash)) if hash != head.hash => reports[signer].problems.push(Problem {
                node: head.node,
                seq: Some(head.seq),
                kind: ProblemKind::Forked {
                    recorded_by: [first, recorder],
                },
            }),
            Some(_) => {}
            None => {
                seen.insert((head.node, head.seq), (recorder, head.hash));
            }
        }
        let Some(chain) = &chains[signer] else {
            reports[signer].peer_heads_unchecked += 1;
            continue;
        };
        if head.seq < chain.first_seq {
            reports[signer].peer_heads_unchecked += 1;
            lost.entry((head.node, recorder))
                .or_insert((chain.first_seq, 0))
                .1 += 1;
            continue;
        }
        match chain.hash_at(head.seq) {
            None => reports[signer].problems.push(Problem {
                node: head.node,
                seq: Some(head.seq),
                kind: ProblemKind::Truncated {
                    recorded_by: recorder,
                    entries: chain.entries,
                },
            }),
            Some(actual) if actual != head.hash => reports[signer].problems.push(Problem {
                node: head.node,
                seq: Some(head.seq),
                kind: ProblemKind::Rewritten {
                    recorded_by: recorder,
                    signed: Digest::from_bytes(head.hash),
                    actual: Digest::from_bytes(actual),
                },
            }),
            Some(_) => reports[signer].peer_heads_checked += 1,
        }
    }
    for ((signer, recorder), (first_seq, heads)) in lost {
        reports[usize::from(signer)].notes.push(Problem {
            node: signer,
            seq: None,
            kind: ProblemKind::BeforeRecovery {
                recorded_by: recorder,
                first_seq,
                heads,
            },
        });
    }
    Ok(CrossReport { nodes: reports })
}

#[cfg(test)]
mod tests {
    use super::*;

    use proptest::prelude::*;

    const DEPLOYMENT: DeploymentId = DeploymentId::from_bytes([7; 32]);

    fn entry(n: u64) -> AuditEntry {
        let authorized = n % 2 == 1;
        AuditEntry {
            time: 1_700_000_000 + n,
            user: "ab".repeat(32),
            request: format!("{n:064x}"),
            kind: "query".into(),
            mode: if authorized { "authorized" } else { "design" }.into(),
            script: authorized.then(|| "cd".repeat(32)),
            step: authorized.then_some(n as u32),
            plan: Some("ef".repeat(32)),
            revealed: format!("1 word sealed to {}", "12".repeat(32)),
            status: "ok".into(),
        }
    }

    fn keys() -> [UserKey; 3] {
        [(); 3].map(|()| UserKey::generate().expect("OS random generator"))
    }

    fn publics(keys: &[UserKey; 3]) -> [UserPublicKey; 3] {
        [keys[0].public(), keys[1].public(), keys[2].public()]
    }

    /// Three nodes' audit directories under one temporary directory.
    struct Trio {
        _root: tempfile::TempDir,
        dirs: [PathBuf; 3],
        keys: [UserKey; 3],
    }

    impl Trio {
        fn new() -> Trio {
            let root = tempfile::tempdir().expect("temporary directory");
            let dirs = [0, 1, 2].map(|node| audit_dir(&root.path().join(format!("node{node}"))));
            Trio {
                _root: root,
                dirs,
                keys: keys(),
            }
        }

        fn open(&self, node: u8) -> AuditLog {
            AuditLog::open(&self.dirs[usize::from(node)], DEPLOYMENT, node).expect("open")
        }

        /// Runs `requests` requests through all three logs, each node
        /// sending its signed head to the other two after each.
        fn run(&self, requests: u64) {
            let mut logs = [0, 1, 2].map(|node| self.open(node));
            let operators = publics(&self.keys);
            for n in 0..requests {
                for log in &mut logs {
                    log.append(entry(n)).expect("append");
                }
                let heads: Vec<SignedHead> =
                    (0..3).map(|i| logs[i].sign_head(&self.keys[i])).collect();
                for (i, log) in logs.iter_mut().enumerate() {
                    for (j, head) in heads.iter().enumerate() {
                        if i != j {
                            log.record_peer_head(head, &operators[j]).expect("record");
                        }
                    }
                }
            }
        }

        fn cross(&self) -> CrossReport {
            let logs: Vec<(u8, PathBuf)> = (0..3u8).zip(self.dirs.iter().cloned()).collect();
            cross_verify(DEPLOYMENT, &logs, &publics(&self.keys)).expect("cross_verify")
        }

        /// The head of `node` that `recorder` recorded last.
        fn recorded(&self, recorder: u8, node: u8) -> Head {
            self.open(recorder).peer_head(node).expect("recorded head")
        }

        /// Node `node` loses its disk and is rebuilt, its log continuing
        /// from `head`.
        fn rebuild(&self, node: u8, head: Head) {
            fs::remove_dir_all(&self.dirs[usize::from(node)]).expect("remove");
            let mut log = self.open(node);
            log.continue_from(head).expect("continue");
            log.append(recover_entry(head.seq)).expect("recover");
        }
    }

    fn recover_entry(n: u64) -> AuditEntry {
        AuditEntry {
            kind: RECOVER_KIND.into(),
            revealed: "nothing".into(),
            ..entry(n)
        }
    }

    /// Writes a log by hand, hashes computed: `entries` from seq
    /// `first_seq`, the first chained to `prev`.
    fn write_chain(path: &Path, first_seq: u64, prev: [u8; 32], entries: &[AuditEntry]) {
        let mut last = prev;
        let mut records = Vec::new();
        for (offset, entry) in (0u64..).zip(entries) {
            let seq = first_seq + offset;
            let hash = entry_hash(seq, &last, entry);
            let record = Record {
                seq,
                prev: Digest::from_bytes(last),
                hash: Digest::from_bytes(hash),
                entry: entry.clone(),
            };
            records.push(serde_json::to_string(&record).expect("json"));
            last = hash;
        }
        write_lines(path, &records);
    }

    fn entries_of(path: &Path) -> Vec<AuditEntry> {
        lines(path)
            .iter()
            .map(|line| serde_json::from_str::<Record>(line).expect("record").entry)
            .collect()
    }

    fn log_path(dir: &Path) -> PathBuf {
        dir.join(LOG_FILE)
    }

    fn lines(path: &Path) -> Vec<String> {
        fs::read_to_string(path)
            .expect("read")
            .lines()
            .map(str::to_owned)
            .collect()
    }

    fn write_lines(path: &Path, lines: &[String]) {
        let mut text = lines.join("\n");
        text.push('\n');
        fs::write(path, text).expect("write");
    }

    /// Rewrites `dir`'s log with `change` applied to the entries, hashes
    /// recomputed: what an operator with write access can do.
    fn rewrite(dir: &Path, node: u8, change: impl Fn(&mut Vec<AuditEntry>)) {
        let path = log_path(dir);
        let mut entries: Vec<AuditEntry> = lines(&path)
            .iter()
            .map(|line| serde_json::from_str::<Record>(line).expect("record").entry)
            .collect();
        change(&mut entries);
        fs::remove_file(&path).expect("remove");
        let mut log = AuditLog::open(dir, DEPLOYMENT, node).expect("open");
        for entry in entries {
            log.append(entry).expect("append");
        }
    }

    #[test]
    fn canonical_bytes_are_bincode_fixint() {
        let encoding = bincode::config::standard().with_fixed_int_encoding();
        for n in 0..4 {
            let entry = entry(n);
            let bincode = bincode::serde::encode_to_vec(&entry, encoding).expect("bincode");
            assert_eq!(entry.canonical_bytes(), bincode, "entry {n}");
        }
    }

    #[test]
    fn appends_survive_reopen_and_verify() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let dir = audit_dir(dir.path());
        let mut log = AuditLog::open(&dir, DEPLOYMENT, 1).expect("open");
        assert_eq!(log.head().seq, 0);
        assert_eq!(log.head().hash, ZERO_HASH);
        let mut last = log.head();
        for n in 0..5 {
            last = log.append(entry(n)).expect("append");
        }
        assert_eq!(last.seq, 5);
        assert_eq!(last.node, 1);
        drop(log);

        let mut log = AuditLog::open(&dir, DEPLOYMENT, 1).expect("reopen");
        assert!(log.warnings().is_empty());
        assert_eq!(log.head(), last);
        let next = log.append(entry(5)).expect("append after reopen");
        let report = verify_chain(&dir).expect("verify");
        assert_eq!(report.entries, 6);
        assert_eq!(report.hash, next.hash);
        assert_eq!(report.head(DEPLOYMENT, 1), next);
        assert_eq!(report.torn_tail_bytes, 0);

        let records = lines(&log_path(&dir));
        assert_eq!(records.len(), 6);
        assert!(
            records[0].starts_with(r#"{"seq":0,"prev":"0000"#),
            "{}",
            records[0]
        );
    }

    #[test]
    fn a_torn_tail_is_cut_with_a_warning() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let mut log = AuditLog::open(dir.path(), DEPLOYMENT, 0).expect("open");
        for n in 0..3 {
            log.append(entry(n)).expect("append");
        }
        let head = log.head();
        drop(log);
        let path = log_path(dir.path());
        let full = fs::read(&path).expect("read");
        let tail = br#"{"seq":3,"prev":"ab"#;
        let mut torn = full.clone();
        torn.extend_from_slice(tail);
        fs::write(&path, &torn).expect("write");

        let tail_bytes = tail.len() as u64;
        assert_eq!(
            verify_chain(dir.path()).expect("verify").torn_tail_bytes,
            tail_bytes
        );
        let mut log = AuditLog::open(dir.path(), DEPLOYMENT, 0).expect("open torn");
        assert_eq!(
            log.warnings(),
            &[AuditWarning::TornTail {
                path: path.clone(),
                bytes: tail_bytes
            }]
        );
        assert_eq!(log.head(), head);
        assert_eq!(fs::read(&path).expect("read"), full);
        log.append(entry(3)).expect("append after repair");
        assert_eq!(verify_chain(dir.path()).expect("verify").entries, 4);
    }

    #[test]
    fn a_changed_entry_is_named_by_line() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let mut log = AuditLog::open(dir.path(), DEPLOYMENT, 0).expect("open");
        for n in 0..5 {
            log.append(entry(n)).expect("append");
        }
        drop(log);
        let path = log_path(dir.path());
        let mut records = lines(&path);
        records[2] = records[2].replace(r#""status":"ok""#, r#""status":"refused""#);
        write_lines(&path, &records);

        let error = verify_chain(dir.path()).expect_err("changed entry");
        assert!(
            matches!(
                &error,
                AuditError::Line {
                    line: 3,
                    problem: LineProblem::BadHash { .. },
                    ..
                }
            ),
            "{error}"
        );
        assert!(error.to_string().contains("line 3: bad hash"), "{error}");
        let error = AuditLog::open(dir.path(), DEPLOYMENT, 0).expect_err("open refuses");
        assert!(matches!(error, AuditError::Line { line: 3, .. }), "{error}");
    }

    #[test]
    fn a_deleted_middle_entry_is_named_by_line() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let mut log = AuditLog::open(dir.path(), DEPLOYMENT, 0).expect("open");
        for n in 0..5 {
            log.append(entry(n)).expect("append");
        }
        drop(log);
        let path = log_path(dir.path());
        let mut records = lines(&path);
        records.remove(1);
        write_lines(&path, &records);
        let error = verify_chain(dir.path()).expect_err("deleted entry");
        assert!(
            matches!(
                error,
                AuditError::Line {
                    line: 2,
                    problem: LineProblem::WrongSeq {
                        expected: 1,
                        found: 2
                    },
                    ..
                }
            ),
            "{error}"
        );

        // Renumbering hides the gap from the seq check but not the chain.
        records[1] = records[1].replace(r#""seq":2"#, r#""seq":1"#);
        write_lines(&path, &records);
        let error = verify_chain(dir.path()).expect_err("renumbered");
        assert!(
            matches!(
                error,
                AuditError::Line {
                    line: 2,
                    problem: LineProblem::WrongPrev { .. },
                    ..
                }
            ),
            "{error}"
        );

        records[1] = "not json".into();
        write_lines(&path, &records);
        let error = verify_chain(dir.path()).expect_err("not json");
        assert!(
            matches!(
                error,
                AuditError::Line {
                    line: 2,
                    problem: LineProblem::NotJson { .. },
                    ..
                }
            ),
            "{error}"
        );
    }

    #[test]
    fn honest_nodes_cross_verify_clean() {
        let trio = Trio::new();
        trio.run(4);
        let report = trio.cross();
        assert!(
            report.is_clean(),
            "{:?}",
            report.problems().collect::<Vec<_>>()
        );
        for node in &report.nodes {
            assert_eq!(node.chain.as_ref().map(|c| c.entries), Some(4));
            assert_eq!(node.peer_heads_checked, 8, "node {}", node.node);
            assert_eq!(node.heads_recorded, 8);
        }
    }

    #[test]
    fn a_rewritten_log_is_caught_by_a_peers_recorded_head() {
        let trio = Trio::new();
        trio.run(4);
        // Node 0's operator erases what was revealed in request 1 and
        // recomputes every hash: its chain verifies on its own.
        rewrite(&trio.dirs[0], 0, |entries| {
            entries[1].revealed = "nothing".into()
        });
        verify_chain(&trio.dirs[0]).expect("the rewritten chain is self-consistent");

        let report = trio.cross();
        let problems: Vec<&Problem> = report.problems().collect();
        assert!(!problems.is_empty());
        assert!(problems.iter().all(|p| p.node == 0), "{problems:?}");
        // Heads at seq 2..=4 no longer match; seq 1 still does.
        for seq in 2..=4 {
            for recorder in [1, 2] {
                assert!(
                    problems.iter().any(|p| p.seq == Some(seq)
                        && matches!(p.kind, ProblemKind::Rewritten { recorded_by, .. } if recorded_by == recorder)),
                    "seq {seq} from {recorder}: {problems:?}"
                );
            }
        }
        assert_eq!(report.nodes[0].peer_heads_checked, 2);
        assert!(
            problems[0].to_string().contains("rewritten"),
            "{}",
            problems[0]
        );
    }

    #[test]
    fn a_truncated_log_is_caught() {
        let trio = Trio::new();
        trio.run(3);
        rewrite(&trio.dirs[2], 2, |entries| entries.truncate(1));
        let report = trio.cross();
        let problems: Vec<&Problem> = report.problems().collect();
        assert!(
            problems.iter().any(|p| p.node == 2
                && p.seq == Some(3)
                && matches!(p.kind, ProblemKind::Truncated { entries: 1, .. })),
            "{problems:?}"
        );
    }

    #[test]
    fn one_log_and_the_others_peer_heads_suffice() {
        let trio = Trio::new();
        trio.run(3);
        rewrite(&trio.dirs[1], 1, |entries| {
            entries[0].user = "00".repeat(32)
        });
        // The verifier has node 1's log, and only the peer-heads files of
        // nodes 0 and 2.
        fs::remove_file(log_path(&trio.dirs[0])).expect("remove");
        fs::remove_file(log_path(&trio.dirs[2])).expect("remove");
        let report = trio.cross();
        assert!(report.nodes[0].log_absent);
        assert_eq!(report.nodes[0].peer_heads_unchecked, 6);
        let problems: Vec<&Problem> = report.problems().collect();
        assert_eq!(problems.len(), 6, "{problems:?}");
        assert!(problems.iter().all(|p| p.node == 1), "{problems:?}");
    }

    #[test]
    fn an_edited_peer_heads_file_is_reported() {
        let trio = Trio::new();
        trio.run(2);
        let path = trio.dirs[1].join(PEER_HEADS_FILE);
        let mut records = lines(&path);
        let mut signed: SignedHead = serde_json::from_str(&records[0]).expect("head");
        signed.head.seq = 7;
        records[0] = serde_json::to_string(&signed).expect("json");
        write_lines(&path, &records);
        let report = trio.cross();
        let problems: Vec<&Problem> = report.problems().collect();
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            matches!(
                problems[0].kind,
                ProblemKind::InvalidRecordedHead {
                    line: 1,
                    problem: PeerHeadProblem::BadSignature
                }
            ),
            "{problems:?}"
        );
        assert_eq!(problems[0].node, 1);
    }

    #[test]
    fn bad_peer_heads_are_refused_and_not_recorded() {
        let trio = Trio::new();
        let operators = publics(&trio.keys);
        let mut log0 = trio.open(0);
        let mut log1 = trio.open(1);
        log1.append(entry(0)).expect("append");
        let good = log1.sign_head(&trio.keys[1]);

        // Signed by the wrong operator.
        let forged = log1.sign_head(&trio.keys[2]);
        let error = log0
            .record_peer_head(&forged, &operators[1])
            .expect_err("forged");
        assert!(
            matches!(
                error,
                AuditError::PeerHead {
                    node: 1,
                    problem: PeerHeadProblem::BadSignature
                }
            ),
            "{error}"
        );
        // A bit flipped in a good signature.
        let mut flipped = good;
        let mut bytes = *flipped.signature.as_bytes();
        bytes[5] ^= 1;
        flipped.signature = Signature::from_bytes(bytes);
        assert!(log0.record_peer_head(&flipped, &operators[1]).is_err());
        // Claiming to be node 0's own head.
        let own = SignedHead::sign(
            Head {
                node: 0,
                ..good.head
            },
            &trio.keys[0],
        );
        let error = log0.record_peer_head(&own, &operators[0]).expect_err("own");
        assert!(
            matches!(
                error,
                AuditError::PeerHead {
                    problem: PeerHeadProblem::OwnNode,
                    ..
                }
            ),
            "{error}"
        );
        // A node that does not exist.
        let ghost = SignedHead::sign(
            Head {
                node: 3,
                ..good.head
            },
            &trio.keys[1],
        );
        let error = log0
            .record_peer_head(&ghost, &operators[1])
            .expect_err("ghost");
        assert!(
            matches!(
                error,
                AuditError::PeerHead {
                    problem: PeerHeadProblem::NodeOutOfRange,
                    ..
                }
            ),
            "{error}"
        );
        // Another deployment.
        let other = SignedHead::sign(
            Head {
                deployment: DeploymentId::from_bytes([8; 32]),
                ..good.head
            },
            &trio.keys[1],
        );
        let error = log0
            .record_peer_head(&other, &operators[1])
            .expect_err("deployment");
        assert!(
            matches!(
                error,
                AuditError::PeerHead {
                    problem: PeerHeadProblem::WrongDeployment { .. },
                    ..
                }
            ),
            "{error}"
        );
        assert!(log0.peer_head(1).is_none());
        assert_eq!(
            fs::read(trio.dirs[0].join(PEER_HEADS_FILE)).expect("read"),
            b""
        );

        log0.record_peer_head(&good, &operators[1]).expect("good");
        // Receiving the same head again is harmless and writes nothing.
        log0.record_peer_head(&good, &operators[1]).expect("repeat");
        assert_eq!(lines(&trio.dirs[0].join(PEER_HEADS_FILE)).len(), 1);
        assert_eq!(log0.peer_head(1), Some(good.head));
    }

    #[test]
    fn a_rolled_back_or_forked_peer_head_is_refused() {
        let trio = Trio::new();
        let operators = publics(&trio.keys);
        let mut log0 = trio.open(0);
        let mut log2 = trio.open(2);
        for n in 0..3 {
            log2.append(entry(n)).expect("append");
        }
        let at3 = log2.sign_head(&trio.keys[2]);
        log0.record_peer_head(&at3, &operators[2]).expect("record");
        drop(log0);

        // Node 2 rolls back to one entry and signs that.
        drop(log2);
        rewrite(&trio.dirs[2], 2, |entries| entries.truncate(1));
        let log2 = AuditLog::open(&trio.dirs[2], DEPLOYMENT, 2).expect("open");
        let at1 = log2.sign_head(&trio.keys[2]);
        // The record survives a restart of the recording node.
        let mut log0 = trio.open(0);
        assert_eq!(log0.peer_head(2), Some(at3.head));
        let error = log0
            .record_peer_head(&at1, &operators[2])
            .expect_err("rolled back");
        assert!(
            matches!(
                error,
                AuditError::PeerHead {
                    node: 2,
                    problem: PeerHeadProblem::RolledBack {
                        recorded: 3,
                        offered: 1
                    }
                }
            ),
            "{error}"
        );
        let forked = SignedHead::sign(
            Head {
                hash: [9; 32],
                ..at3.head
            },
            &trio.keys[2],
        );
        let error = log0
            .record_peer_head(&forked, &operators[2])
            .expect_err("forked");
        assert!(
            matches!(
                error,
                AuditError::PeerHead {
                    problem: PeerHeadProblem::Forked { seq: 3 },
                    ..
                }
            ),
            "{error}"
        );
        assert_eq!(lines(&trio.dirs[0].join(PEER_HEADS_FILE)).len(), 1);
    }

    #[test]
    fn a_continued_log_appends_reopens_and_verifies() {
        let trio = Trio::new();
        trio.run(3);
        let recorded = trio.recorded(0, 2);
        assert_eq!(recorded.seq, 3);
        fs::remove_dir_all(&trio.dirs[2]).expect("remove");

        let mut log = trio.open(2);
        log.continue_from(recorded).expect("continue");
        assert_eq!(log.head(), recorded);
        assert_eq!(fs::read(log_path(&trio.dirs[2])).expect("read"), b"");
        assert_eq!(log.append(recover_entry(3)).expect("recover").seq, 4);
        let head = log.append(entry(4)).expect("append");
        assert_eq!(head.seq, 5);
        drop(log);

        let log = trio.open(2);
        assert_eq!(log.head(), head);
        let report = verify_chain(&trio.dirs[2]).expect("verifies");
        assert_eq!(
            (report.first_seq, report.entries, report.hash),
            (3, 5, head.hash)
        );
        assert_eq!(report.head(DEPLOYMENT, 2), head);
        let (chain, _) = read_chain(&log_path(&trio.dirs[2]), true)
            .expect("read")
            .expect("exists");
        assert_eq!(chain.hash_at(2), None);
        assert_eq!(chain.hash_at(3), Some(recorded.hash));
        assert_eq!(chain.hash_at(5), Some(head.hash));
        assert_eq!(chain.hash_at(6), None);
        // An ordinary log starts at 0.
        assert_eq!(verify_chain(&trio.dirs[0]).expect("verifies").first_seq, 0);

        // The survivors take its heads as following the ones they hold.
        let operators = publics(&trio.keys);
        let signed = log.sign_head(&trio.keys[2]);
        drop(log);
        for node in [0, 1] {
            let mut survivor = trio.open(node);
            survivor
                .record_peer_head(&signed, &operators[2])
                .expect("after the old heads");
            assert_eq!(survivor.peer_head(2), Some(head));
        }
        trio.run(2);
    }

    #[test]
    fn a_continued_log_must_start_with_a_recover_entry() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let path = log_path(dir.path());
        let head = Head {
            deployment: DEPLOYMENT,
            node: 0,
            seq: 5,
            hash: [4; 32],
        };
        let mut log = AuditLog::open(dir.path(), DEPLOYMENT, 0).expect("open");
        log.continue_from(head).expect("continue");
        let error = log.append(entry(5)).expect_err("not a recovery");
        assert!(matches!(error, AuditError::Refused { .. }), "{error}");
        assert!(error.to_string().contains(LOG_FILE), "{error}");
        assert!(error.to_string().contains(RECOVER_KIND), "{error}");
        assert_eq!(fs::read(&path).expect("read"), b"");
        assert_eq!(log.head(), head);
        log.append(recover_entry(5)).expect("recover");
        log.append(entry(6)).expect("anything after");
        drop(log);
        assert_eq!(verify_chain(dir.path()).expect("verifies").first_seq, 5);

        // The same log by hand, beginning with something else: a log cut at
        // the front.
        write_chain(&path, 5, [4; 32], &[entry(5), entry(6)]);
        let error = verify_chain(dir.path()).expect_err("no recovery");
        assert!(
            matches!(
                error,
                AuditError::Line {
                    line: 1,
                    problem: LineProblem::NotARecovery { found: 5 },
                    ..
                }
            ),
            "{error}"
        );
        assert!(error.to_string().contains("line 1: wrong seq"), "{error}");
        let error = AuditLog::open(dir.path(), DEPLOYMENT, 0).expect_err("open refuses");
        assert!(matches!(error, AuditError::Line { line: 1, .. }), "{error}");

        // A recovery may only begin a log, not hide a gap in one.
        write_chain(&path, 0, ZERO_HASH, &[entry(0)]);
        let mut records = lines(&path);
        write_chain(&path, 5, [4; 32], &[recover_entry(5)]);
        records.extend(lines(&path));
        write_lines(&path, &records);
        let error = verify_chain(dir.path()).expect_err("gap");
        assert!(
            matches!(
                error,
                AuditError::Line {
                    line: 2,
                    problem: LineProblem::WrongSeq {
                        expected: 1,
                        found: 5
                    },
                    ..
                }
            ),
            "{error}"
        );

        // No seq can follow the largest.
        write_chain(&path, u64::MAX, [4; 32], &[recover_entry(0)]);
        let error = verify_chain(dir.path()).expect_err("too large");
        assert!(
            matches!(
                error,
                AuditError::Line {
                    line: 1,
                    problem: LineProblem::SeqTooLarge { .. },
                    ..
                }
            ),
            "{error}"
        );

        // A crash tearing the recover line leaves an empty log, continued
        // again.
        write_chain(&path, 5, [4; 32], &[recover_entry(5)]);
        let text = fs::read_to_string(&path).expect("read");
        fs::write(&path, text.trim_end()).expect("write");
        let mut log = AuditLog::open(dir.path(), DEPLOYMENT, 0).expect("open");
        assert_eq!(log.warnings().len(), 1);
        assert_eq!(log.head().seq, 0);
        log.continue_from(head).expect("continue again");
        log.append(recover_entry(5)).expect("recover");
    }

    #[test]
    fn continue_from_refuses_a_log_with_entries_or_a_foreign_head() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let head = Head {
            deployment: DEPLOYMENT,
            node: 1,
            seq: 4,
            hash: [2; 32],
        };
        let mut log = AuditLog::open(dir.path(), DEPLOYMENT, 1).expect("open");
        for foreign in [
            Head {
                deployment: DeploymentId::from_bytes([8; 32]),
                ..head
            },
            Head { node: 2, ..head },
            Head { seq: 0, ..head },
        ] {
            let error = log.continue_from(foreign).expect_err("foreign");
            assert!(matches!(error, AuditError::Refused { .. }), "{error}");
        }
        let empty = Head {
            seq: 0,
            hash: ZERO_HASH,
            ..head
        };
        log.continue_from(empty).expect("seq 0 changes nothing");
        assert_eq!(log.head(), empty);
        // Without a head to continue, an ordinary log starts at 0.
        log.append(entry(0)).expect("append");
        let error = log.continue_from(head).expect_err("has entries");
        assert!(matches!(error, AuditError::Refused { .. }), "{error}");
        assert!(error.to_string().contains(LOG_FILE), "{error}");
        assert_eq!(log.head().seq, 1);
        drop(log);
        let mut log = AuditLog::open(dir.path(), DEPLOYMENT, 1).expect("open");
        assert!(log.continue_from(head).is_err());
        assert_eq!(lines(&log_path(dir.path())).len(), 1);

        // Continued twice before the recover entry.
        let dir = tempfile::tempdir().expect("temporary directory");
        let mut log = AuditLog::open(dir.path(), DEPLOYMENT, 1).expect("open");
        log.continue_from(head).expect("continue");
        assert!(log.continue_from(Head { seq: 6, ..head }).is_err());
        assert_eq!(log.head(), head);
    }

    #[test]
    fn heads_before_a_recovery_are_noted_not_failed() {
        let trio = Trio::new();
        trio.run(3);
        let recorded = trio.recorded(0, 2);
        assert_eq!(trio.recorded(1, 2), recorded);
        trio.rebuild(2, recorded);
        trio.run(2);

        let report = trio.cross();
        assert!(
            report.is_clean(),
            "{:?}",
            report.problems().collect::<Vec<_>>()
        );
        let node2 = &report.nodes[2];
        let chain = node2.chain.as_ref().expect("chain");
        assert_eq!((chain.first_seq, chain.entries), (3, 6));
        // Heads 1 and 2 from each survivor are lost; 3 (against the
        // recover entry's prev), 5 and 6 are checked.
        assert_eq!(node2.peer_heads_unchecked, 4);
        assert_eq!(node2.peer_heads_checked, 6);
        let notes: Vec<&Problem> = report.notes().collect();
        assert_eq!(notes.len(), 2, "{notes:?}");
        for (note, recorder) in notes.iter().zip([0, 1]) {
            assert_eq!(note.node, 2);
            assert!(
                matches!(
                    note.kind,
                    ProblemKind::BeforeRecovery {
                        recorded_by,
                        first_seq: 3,
                        heads: 2,
                    } if recorded_by == recorder
                ),
                "{note}"
            );
        }
        let text = notes[0].to_string();
        assert!(
            text.contains("node 2") && text.contains("rebuilt at seq 3"),
            "{text}"
        );
    }

    #[test]
    fn a_continued_log_that_does_not_match_its_heads_is_caught() {
        // Continued from a hash node 2 never signed at seq 3.
        let trio = Trio::new();
        trio.run(3);
        let recorded = trio.recorded(0, 2);
        trio.rebuild(
            2,
            Head {
                hash: [9; 32],
                ..recorded
            },
        );
        trio.run(2);
        let report = trio.cross();
        assert!(!report.is_clean());
        let problems: Vec<&Problem> = report.problems().collect();
        assert_eq!(problems.len(), 2, "{problems:?}");
        for (problem, recorder) in problems.iter().zip([0, 1]) {
            assert!(
                problem.node == 2
                    && problem.seq == Some(3)
                    && matches!(problem.kind, ProblemKind::Rewritten { recorded_by, .. } if recorded_by == recorder),
                "{problem}"
            );
        }
        assert_eq!(report.notes().count(), 2);

        // Honestly continued, then rewritten after the recovery.
        let trio = Trio::new();
        trio.run(3);
        let recorded = trio.recorded(0, 2);
        trio.rebuild(2, recorded);
        trio.run(2);
        let path = log_path(&trio.dirs[2]);
        let mut entries = entries_of(&path);
        entries[1].revealed = "nothing".into();
        write_chain(&path, 3, recorded.hash, &entries);
        verify_chain(&trio.dirs[2]).expect("the rewritten chain is self-consistent");
        let report = trio.cross();
        let problems: Vec<&Problem> = report.problems().collect();
        assert_eq!(problems.len(), 4, "{problems:?}");
        assert!(
            problems.iter().all(|p| p.node == 2
                && matches!(p.seq, Some(5 | 6))
                && matches!(p.kind, ProblemKind::Rewritten { .. })),
            "{problems:?}"
        );
        assert_eq!(report.nodes[2].peer_heads_checked, 2);
    }

    #[test]
    fn signed_heads_round_trip_through_json_and_bincode() {
        let key = UserKey::generate().expect("OS random generator");
        let head = Head {
            deployment: DEPLOYMENT,
            node: 2,
            seq: 9,
            hash: [3; 32],
        };
        let signed = SignedHead::sign(head, &key);
        let json = serde_json::to_string(&signed).expect("json");
        assert!(json.contains(&"03".repeat(32)), "{json}");
        let back: SignedHead = serde_json::from_str(&json).expect("from json");
        assert_eq!(back, signed);
        let encoding = bincode::config::standard().with_fixed_int_encoding();
        let bytes = bincode::serde::encode_to_vec(signed, encoding).expect("bincode");
        assert_eq!(bytes.len(), HEAD_BYTES + 64);
        let (back, read): (SignedHead, usize) =
            bincode::serde::decode_from_slice(&bytes, encoding).expect("from bincode");
        assert_eq!((back, read), (signed, bytes.len()));
        back.verify(&key.public()).expect("verifies");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn arbitrary_files_never_panic(
            log in proptest::collection::vec(any::<u8>(), 0..512),
            peers in proptest::collection::vec(any::<u8>(), 0..512),
            good_prefix in any::<bool>(),
        ) {
            let trio = Trio::new();
            if good_prefix {
                trio.run(2);
            } else {
                fs::create_dir_all(&trio.dirs[0]).expect("mkdir");
            }
            let mut log_bytes = if good_prefix { fs::read(log_path(&trio.dirs[0])).expect("read") } else { Vec::new() };
            log_bytes.extend_from_slice(&log);
            fs::write(log_path(&trio.dirs[0]), &log_bytes).expect("write");
            fs::write(trio.dirs[0].join(PEER_HEADS_FILE), &peers).expect("write");
            let _ = verify_chain(&trio.dirs[0]);
            let _ = trio.cross();
            let _ = AuditLog::open(&trio.dirs[0], DEPLOYMENT, 0);
        }

        #[test]
        fn arbitrary_lines_never_panic(lines in proptest::collection::vec("[ -~]{0,80}", 0..6)) {
            // Near-JSON text reaches the record parsers, not just the
            // UTF-8 check.
            let trio = Trio::new();
            fs::create_dir_all(&trio.dirs[1]).expect("mkdir");
            let text: String = lines.iter().map(|l| format!("{{\"seq\":0,{l}}}\n")).collect();
            fs::write(log_path(&trio.dirs[1]), &text).expect("write");
            fs::write(trio.dirs[1].join(PEER_HEADS_FILE), &text).expect("write");
            let _ = verify_chain(&trio.dirs[1]);
            let _ = trio.cross();
            let _ = AuditLog::open(&trio.dirs[1], DEPLOYMENT, 1);
        }
    }
}
