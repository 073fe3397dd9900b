//! Who may ask triad for what, and who may read the answer: user keys,
//! signed requests, replay protection and sealed results.
//!
//! # What this crate owns
//!
//! - User keys ([`UserKey`]): ed25519 signing keys made from the OS generator
//!   on the machine that uses them, saved as a small text file readable by
//!   its owner only. Public keys ([`UserPublicKey`]) are 32 bytes shown as
//!   hex, with a short [`UserPublicKey::fingerprint`] for logs and errors.
//! - Requests ([`Request`], [`SignedRequest`]): what a client asks the nodes
//!   to do, signed by its sender over a canonical encoding. The nodes verify
//!   the signature, then compare [`SignedRequest::digest`] among themselves
//!   so that all three run the same request or none does.
//! - Replay protection ([`NonceStore`]): a persistent, crash-tolerant record
//!   of the nonces each signer used within a time window.
//! - The roles document ([`SignedRoles`], [`VerifiedRoles`]): the users,
//!   their roles and the revocations, signed by all three operators; see
//!   the `roles` module for its encoding and file.
//! - Result sealing ([`seal`], [`open`]): a node encrypts its result shares
//!   to the fresh x25519 key the client put into its signed request, so only
//!   that client can read them.
//!
//! # The canonical request encoding
//!
//! A signature covers `"triad/request/v1" || bincode(request)`, where bincode
//! is version 2.0.1 (pinned exactly) with its *standard* configuration
//! switched to **fixed-width integers** (little-endian). Every field has a
//! fixed width, so the layout can be reimplemented from this table alone:
//!
//! | field | bytes | encoding |
//! | --- | --- | --- |
//! | `version` | 4 | u32 LE, [`REQUEST_VERSION`] |
//! | `deployment` | 32 | raw |
//! | `mode` | 4 | u32 LE: 0 design, 1 authorized |
//! | `body` | 32 | raw BLAKE3 digest |
//! | `approval` | 1 or 37 | 0, or 1 then digest (32 raw) and step (u32 LE) |
//! | `nonce` | 16 | raw |
//! | `issued_at` | 8 | u64 LE, unix seconds |
//! | `result_key` | 32 | raw x25519 public key |
//! | `signer` | 32 | raw ed25519 public key |
//!
//! A [`SignedRequest`] on the wire is that encoding followed by the 64-byte
//! signature. Decoding is strict (no trailing bytes, no other tag values), so
//! every accepted byte string re-encodes to itself: one request, one
//! encoding, one digest. Fixed-width integers rather than varints because
//! the format is then a plain table, and requests are too small for the few
//! bytes saved to matter. bincode's serde path never writes a byte in
//! human-readable form, so the [`Serialize`](serde::Serialize) impls here,
//! which switch to hex strings for human-readable formats such as JSON, do
//! not change what is signed.
//!
//! # What it must not do
//!
//! - No networking, no clock, no runtime: callers pass the current time in,
//!   and move bytes themselves. It does not log either; what a caller may
//!   want to log (such as [`NonceStore::discarded_tail_bytes`]) it returns.
//! - No secrets in `Debug`, `Display` or errors: secret keys show as their
//!   public half, key files are never quoted, and no error carries a secret
//!   byte. Public keys, nonces and digests are public and may appear.
//! - No randomness but the OS generator (through `getrandom`), for user keys,
//!   nonces, result keys and sealing keys alike.
//! - No policy: whether a signer may send a request of this mode for this
//!   deployment and approval is the node's decision; this crate only proves
//!   who signed what, once.
//!
//! Secret key material is cleared from memory when dropped (`zeroize`), as
//! far as this crate owns the buffers; copies the compiler makes in
//! registers or on the stack are out of its reach.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod bytes;
mod error;
mod fs;
mod key;
mod nonce_store;
mod request;
mod roles;
mod script;
mod seal;

pub use bytes::HexProblem;
pub use error::{AuthError, KeyFileProblem, NonceLogProblem};
pub use key::{UserKey, UserPublicKey};
pub use nonce_store::NonceStore;
pub use request::{
    ApprovalStep, DeploymentId, Digest, Mode, Nonce, REQUEST_BYTES_MAX, REQUEST_DOMAIN,
    REQUEST_VERSION, Request, RequestDigest, Signature, SignedRequest,
};
pub use roles::{
    OperatorSignature, ROLES_DOMAIN, ROLES_FILE_BYTES_MAX, ROLES_SIGNATURE_DOMAIN, ROLES_VERSION,
    Role, RoleUser, RolesDocument, RolesFileProblem, RolesProblem, SignedRoles, VerifiedRoles,
};
pub use script::{
    APPROVAL_DOMAIN, APPROVED_BYTES_MAX, Approval, ApprovedScript, SCRIPT_DOMAIN, SCRIPT_VERSION,
    Script, ScriptError, ScriptStep, SignedApproval, output_reference, parse_output_reference,
    parse_step_reference, step_reference,
};
pub use seal::{ResultContext, ResultSecret, SEAL_DOMAIN, Sealed, X25519Public, open, seal};
