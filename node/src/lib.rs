//! The triad compute node: its configuration ([`config`]), the durable
//! share store ([`store`]), the messages clients send it ([`api`]), request
//! handling and the engine that agrees with the other two nodes
//! ([`server`]), the hash-chained audit log ([`audit`]), the Prometheus
//! endpoint ([`metrics`]), and the `triad-node` commands ([`cli`]).
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
//! - The store does no networking and reads no clock: the server moves
//!   reports between nodes and passes commit times and deadlines in.
//! - No polars and no client-side code: clients reach the node only through
//!   the messages in [`api`].
//! - No secrets outside the shares themselves: errors and logs carry
//!   handles, upload ids, column names and paths, never share values,
//!   component keys or plain share checksums (which would let the third
//!   party test guesses of a low-entropy column; see
//!   [`store::component_digest`]).
//! - No panics on anything read from disk or received from a peer: every
//!   malformed file or report is a typed error.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod api;
pub mod audit;
pub mod cli;
pub mod config;
pub mod jobs;
pub mod metrics;
pub mod pending;
pub mod server;
pub mod store;
