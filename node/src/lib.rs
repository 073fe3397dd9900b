//! The triad compute node. For now this crate holds the node's durable
//! share storage, [`store`]; configuration, request handling, the audit log
//! and the `triad-node` binary come later, on top of it.
//!
//! # What this crate owns
//!
//! - The data directory: one file per share column holding this party's two
//!   components, with a checksummed header; a JSON manifest per table; the
//!   staging area where uploads wait for the three nodes to agree.
//! - The node side of an upload: staging, the keyed component digests the
//!   nodes cross-check, the table handle all three derive from them, and
//!   the atomic commit.
//! - Crash safety: write to a temporary name, fsync, rename, fsync the
//!   directory; tables appear and disappear with single renames.
//!
//! # What it must not do
//!
//! - No networking and no protocol logic: the store hands out reports and
//!   takes agreed uploads; moving them between nodes is the caller's job.
//! - No clock: commit times and clean-up deadlines come from the caller.
//! - No secrets outside the shares themselves: errors and logs carry
//!   handles, upload ids, column names and paths, never share values,
//!   component keys or plain share checksums (which would let the third
//!   party test guesses of a low-entropy column; see
//!   [`store::component_digest`]).
//! - No panics on anything read from disk or received from a peer: every
//!   malformed file or report is a typed error.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod store;
