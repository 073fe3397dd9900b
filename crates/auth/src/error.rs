use std::path::PathBuf;

use crate::bytes::HexProblem;
use crate::key::UserPublicKey;
use crate::request::Nonce;

/// Everything this crate can fail with. No variant carries a secret byte:
/// key files are named, never quoted; signers appear as the fingerprints of
/// their (public) keys.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// The OS random generator failed.
    #[error("the OS random generator failed: {0}")]
    Randomness(getrandom::Error),
    /// Reading or writing a file or directory failed.
    #[error("{path}: {source}")]
    File {
        /// The file or directory.
        path: PathBuf,
        /// What went wrong.
        #[source]
        source: std::io::Error,
    },
    /// A key would have replaced an existing file, which may hold another
    /// key that nothing else can recover.
    #[error("{path} already exists; refusing to overwrite it with a new key")]
    KeyFileExists {
        /// The file.
        path: PathBuf,
    },
    /// A user key file could not be parsed.
    #[error("{path}: {problem}")]
    KeyFile {
        /// The file.
        path: PathBuf,
        /// What is wrong with it (never its contents).
        problem: KeyFileProblem,
    },
    /// A user key file may be read or written by other users, as `ssh`
    /// refuses too: a key others could read is no longer the user's alone.
    #[error(
        "{path} is accessible to other users (mode {mode:03o}); \
         make it readable by its owner only (chmod 600)"
    )]
    KeyFilePermissions {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// A text is not the hex form of a public value.
    #[error("not a valid {what}: {problem}")]
    Hex {
        /// What the text should have been ("user public key", ...).
        what: &'static str,
        /// What is wrong with it.
        problem: HexProblem,
    },
    /// 32 bytes that are not a usable ed25519 public key (not a curve point,
    /// or one of small order, which would let signatures verify for any
    /// message).
    #[error("{key} is not a valid ed25519 public key")]
    InvalidPublicKey {
        /// The bytes, which are public.
        key: UserPublicKey,
    },
    /// A request signature does not verify under the key the request names.
    #[error("the signature on a request from {} does not verify", .signer.fingerprint())]
    BadSignature {
        /// The key the request claims to be from.
        signer: UserPublicKey,
    },
    /// A request names another signer than the key asked to sign it.
    #[error(
        "the request names signer {} but the key signing it is {}",
        .named.fingerprint(),
        .key.fingerprint()
    )]
    SignerMismatch {
        /// The signer named in the request.
        named: UserPublicKey,
        /// The public half of the signing key.
        key: UserPublicKey,
    },
    /// A request of a version this build does not speak.
    #[error("request version {actual}; this build speaks version {expected}")]
    RequestVersion {
        /// The version this build speaks.
        expected: u32,
        /// The request's version.
        actual: u32,
    },
    /// Bytes longer than any encoded signed request, refused before
    /// decoding.
    #[error("an encoded request of {bytes} bytes; at most {bytes_max} are possible")]
    RequestTooLong {
        /// Length given.
        bytes: usize,
        /// The longest possible encoding.
        bytes_max: usize,
    },
    /// Bytes that are not the canonical encoding of a signed request.
    #[error("malformed request encoding: {0}")]
    RequestDecode(#[source] bincode::error::DecodeError),
    /// A well-formed request followed by more bytes, which a canonical
    /// encoding never has.
    #[error("{trailing} bytes after the end of an encoded request")]
    RequestTrailingBytes {
        /// Bytes left over.
        trailing: usize,
    },
    /// The signer used this nonce before: the request is a replay.
    #[error("replayed request: {} already used nonce {nonce}", .signer.fingerprint())]
    Replay {
        /// The request's signer.
        signer: UserPublicKey,
        /// The nonce.
        nonce: Nonce,
    },
    /// The request was issued before the replay window (or before the
    /// nonce store last forgot nonces), so its nonce can no longer be
    /// checked.
    #[error(
        "request from {} issued at {issued_at} is too old; \
         the oldest accepted now is {oldest_accepted} (unix seconds)",
        .signer.fingerprint()
    )]
    RequestTooOld {
        /// The request's signer.
        signer: UserPublicKey,
        /// When the request says it was issued.
        issued_at: u64,
        /// The earliest issue time accepted.
        oldest_accepted: u64,
    },
    /// The request says it was issued further in the future than clocks can
    /// plausibly disagree; accepting it would keep its nonce live for too
    /// long.
    #[error(
        "request from {} issued at {issued_at} is in the future; \
         the newest accepted now is {newest_accepted} (unix seconds)",
        .signer.fingerprint()
    )]
    RequestFromFuture {
        /// The request's signer.
        signer: UserPublicKey,
        /// When the request says it was issued.
        issued_at: u64,
        /// The latest issue time accepted.
        newest_accepted: u64,
    },
    /// The nonce log is damaged somewhere other than a torn last record.
    #[error("{path}: damaged at byte {offset}: {problem}")]
    NonceLogCorrupt {
        /// The log file.
        path: PathBuf,
        /// Where the damage starts.
        offset: u64,
        /// What is damaged.
        problem: NonceLogProblem,
    },
    /// An earlier append to the nonce log failed and could not be undone,
    /// so the file's end is unknown; reopen the store to recover.
    #[error("{path}: an earlier write failed and could not be rolled back; reopen the nonce store")]
    NonceStorePoisoned {
        /// The log file.
        path: PathBuf,
    },
    /// The result key is one of the few x25519 public keys whose shared
    /// secret is the same whatever the other side's secret: sealing to it
    /// would not be secret.
    #[error(
        "the result key {key} is a low-order x25519 point; nothing can be sealed to it secretly"
    )]
    WeakResultKey {
        /// The key, which is public.
        key: crate::seal::X25519Public,
    },
    /// A sealed result does not open: the wrong result key, the wrong
    /// context, or bytes changed in transit. Deliberately not more precise.
    #[error("sealed result does not open (wrong key or context, or tampered)")]
    SealOpen,
    /// A plaintext too long for one ChaCha20-Poly1305 message (256 GiB).
    #[error("{bytes} bytes are too many to seal in one message")]
    SealTooLong {
        /// Length given.
        bytes: usize,
    },
    /// A text that names no role.
    #[error("unknown role {text:?} (owner, analyst, approver)")]
    UnknownRole {
        /// The text (at most 40 characters of it).
        text: String,
    },
    /// A roles file could not be read or written as a document.
    #[error("{path}: {problem}")]
    RolesFile {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        problem: crate::roles::RolesFileProblem,
    },
    /// A roles document that is not valid whoever signed it.
    #[error("invalid roles document: {0}")]
    RolesInvalid(crate::roles::RolesProblem),
    /// A roles document for another deployment.
    #[error("the roles document is for deployment {actual}, this node serves {expected}")]
    RolesDeployment {
        /// The deployment it was checked against.
        expected: crate::request::DeploymentId,
        /// The document's.
        actual: crate::request::DeploymentId,
    },
    /// A node's operator has not signed the roles document.
    #[error("the roles document has no signature from node {node}'s operator")]
    RolesSignatureMissing {
        /// The node.
        node: u8,
    },
    /// A node's signature on the roles document does not verify under
    /// that node's operator key: signed by another key, or the document
    /// changed since.
    #[error(
        "node {node}'s signature on the roles document does not verify under its operator key {} \
         (signed with another key, or the document changed after signing)",
        .operator.fingerprint()
    )]
    RolesSignatureBad {
        /// The node.
        node: u8,
        /// The operator key it was checked against.
        operator: UserPublicKey,
    },
    /// A signature for a node that does not exist.
    #[error("the roles document has a signature for node {node}; nodes are 0, 1 and 2")]
    RolesSignatureNode {
        /// The node named.
        node: u8,
    },
    /// Two signatures for one node.
    #[error("the roles document has two signatures for node {node}")]
    RolesSignatureTwice {
        /// The node.
        node: u8,
    },
    /// Two nodes with one operator key: whoever holds it could sign for
    /// both, and the three-operator rule would be two.
    #[error("nodes {first} and {second} have the same operator key")]
    OperatorKeysNotDistinct {
        /// The first node.
        first: u8,
        /// The second.
        second: u8,
    },
}

/// What is wrong with a user key file. Never carries the file's contents.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyFileProblem {
    /// Larger than any key file.
    #[error("{bytes} bytes is too large for a key file")]
    TooLarge {
        /// The file's length.
        bytes: u64,
    },
    /// Not a triad user key file at all (no header line).
    #[error("not a triad user key file (no `{expected}` header line)")]
    NotAKeyFile {
        /// The header expected.
        expected: &'static str,
    },
    /// A required line is missing.
    #[error("no `{field}` line")]
    MissingLine {
        /// The line's field name.
        field: &'static str,
    },
    /// A line is not part of the format.
    #[error("line {line} is not part of the format")]
    UnexpectedLine {
        /// Its number, from 1.
        line: usize,
    },
    /// The `secret` line is not 64 hex digits. Deliberately without detail.
    #[error("the secret line is malformed")]
    Secret,
    /// The `public` line is not 64 hex digits.
    #[error("the public line is malformed: {0}")]
    Public(HexProblem),
    /// The `public` line is not the public half of the `secret` line: the
    /// file was edited or damaged.
    #[error(
        "the public line ({}) is not the public key of the secret ({})",
        .stated.fingerprint(),
        .derived.fingerprint()
    )]
    PublicMismatch {
        /// The public key the file states.
        stated: UserPublicKey,
        /// The public key of its secret.
        derived: UserPublicKey,
    },
}

/// What is damaged in a nonce log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NonceLogProblem {
    /// Not a triad nonce log (wrong or missing magic).
    #[error("not a triad nonce log")]
    NotANonceLog,
    /// The header's checksum does not match.
    #[error("the header checksum does not match")]
    HeaderChecksum,
    /// A record that is not the last fails its checksum, so it is not a
    /// write torn by a crash.
    #[error("record {record} fails its checksum and is not the last")]
    RecordChecksum {
        /// Its index, from 0.
        record: u64,
    },
}
